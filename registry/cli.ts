/**
 * Loads the city's institution list into the institution registry:
 *
 *   npm run registry:load-institutions -- --file institutions.csv
 *
 * Prints one CSV line per row (line, uscc, name, outcome, id, message) on stdout and the counts on stderr; exits 1
 * when any row was refused. Re-running it is safe: unchanged institutions are left as they are. The database is
 * the platform's (DATABASE_URL, or embedded PGlite in DATA_DIR: stop the server first, since PGlite serves one
 * process). The columns are described in registry/institution-csv.ts and registry/README.md.
 */
import { mkdirSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config';
import { FhirRepository, migrate, openDatabase } from '../fhir-server';
import { registryMigrations } from './migrations';
import { installRegistryContent } from './content';
import { loadInstitutionCsvFile } from './institution-csv';
import { registryRule } from './registry-rules';

const csvCell = (value: unknown): string => {
  const text = value === undefined || value === null ? '' : String(value);
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
};

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { file: { type: 'string' } } });
  if (!values.file) {
    throw new Error('usage: npm run registry:load-institutions -- --file institutions.csv');
  }
  const config = loadConfig();
  if (!config.databaseUrl) {
    mkdirSync(config.dataDir, { recursive: true });
  }
  const db = await openDatabase(config.databaseUrl, config.dataDir, 2);
  try {
    await migrate(db, registryMigrations);
    // The registry's own rules, so that the load refuses exactly what the API would.
    const repository = new FhirRepository(db, {
      enforceReferentialIntegrity: config.enforceReferentialIntegrity,
      baseUrl: `${config.publicBaseUrl}${config.fhirBasePath}`,
      interceptors: [registryRule()],
    });
    await installRegistryContent(repository);
    const report = await loadInstitutionCsvFile(repository, values.file);
    console.log('line,uscc,name,outcome,id,message');
    for (const row of report.rows) {
      console.log([row.line, row.uscc, row.name, row.outcome, row.id, row.message].map(csvCell).join(','));
    }
    console.error(`created ${report.counts.created}, updated ${report.counts.updated}, unchanged ${report.counts.unchanged}, refused ${report.counts.error}`);
    process.exitCode = report.counts.error > 0 ? 1 : 0;
  } finally {
    await db.close();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
