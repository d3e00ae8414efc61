/**
 * Terminology commands: load licensed releases and hospital ConceptMaps, print the unmapped-code report.
 *
 *   npm run terminology -- loinc --file Loinc.csv --version 2.77 [--zh zhCN…LinguisticVariant.csv]
 *   npm run terminology -- icd10 --file icd10.xml|icd10-cn.csv --version 2.0 [--system URL]
 *   npm run terminology -- snomed --dir SnomedCT_…/Snapshot --version http://snomed.info/sct/…/version/20240101
 *   npm run terminology -- conceptmap --file hospital.csv --hospital ahslyy
 *   npm run terminology -- unmapped [--concept-map URL]        (CSV on stdout)
 *
 * The database is the platform's (DATABASE_URL, or embedded PGlite in DATA_DIR: stop the server first, since
 * PGlite serves one process). Every load can be re-run: it replaces what the previous run of that version wrote.
 */
import { mkdirSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config';
import { FhirRepository, migrate, openDatabase } from '../fhir-server';
import { createTerminologyService, terminologyMigrations } from '.';
import { loadConceptMapCsv, loadIcd10, loadLoinc, loadSnomed } from './loaders';

const USAGE = `usage: npm run terminology -- <loinc|icd10|snomed|conceptmap|unmapped> [options]
  loinc       --file Loinc.csv --version 2.77 [--zh zh-CN linguistic variant CSV]
  icd10       --file ClaML.xml or CSV --version V [--system URL]
  snomed      --dir RF2 release folder --version edition version URI
  conceptmap  --file CSV (local_code, local_display, loinc_code, …) --hospital ID
  unmapped    [--concept-map URL]`;

function csvCell(value: unknown): string {
  const text = value === undefined || value === null ? '' : value instanceof Date ? value.toISOString() : String(value);
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

async function main(): Promise<void> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      file: { type: 'string' },
      dir: { type: 'string' },
      version: { type: 'string' },
      zh: { type: 'string' },
      system: { type: 'string' },
      hospital: { type: 'string' },
      'concept-map': { type: 'string' },
    },
  });
  const command = positionals[0];
  const need = (name: keyof typeof values): string => {
    const value = values[name];
    if (typeof value !== 'string' || value === '') {
      throw new Error(`--${name} is required\n${USAGE}`);
    }
    return value;
  };
  if (!command || !['loinc', 'icd10', 'snomed', 'conceptmap', 'unmapped'].includes(command)) {
    throw new Error(USAGE);
  }
  const config = loadConfig();
  if (!config.databaseUrl) {
    mkdirSync(config.dataDir, { recursive: true });
  }
  const db = await openDatabase(config.databaseUrl, config.dataDir, 2);
  try {
    await migrate(db, terminologyMigrations);
    const repository = new FhirRepository(db, { enforceReferentialIntegrity: config.enforceReferentialIntegrity, baseUrl: `${config.publicBaseUrl}${config.fhirBasePath}` });
    const service = createTerminologyService(db, repository);
    const progress = process.stderr.isTTY;
    switch (command) {
      case 'loinc':
        console.log(await loadLoinc(repository, service, { file: need('file'), version: need('version'), chineseVariantFile: values.zh, progress }));
        break;
      case 'icd10':
        console.log(await loadIcd10(repository, service, { file: need('file'), version: need('version'), system: values.system, progress }));
        break;
      case 'snomed':
        console.log(await loadSnomed(repository, service, { dir: need('dir'), version: need('version'), progress }));
        break;
      case 'conceptmap': {
        const report = await loadConceptMapCsv(repository, service, { file: need('file'), hospital: need('hospital'), progress });
        console.log(JSON.stringify(report, null, 2));
        break;
      }
      case 'unmapped': {
        console.log('concept_map,system,code,display,source,occurrences,first_seen,last_seen');
        for (const u of await service.unmappedCodes(values['concept-map'])) {
          console.log([u.conceptMap, u.system, u.code, u.display, u.source, u.occurrences, u.firstSeen, u.lastSeen].map(csvCell).join(','));
        }
        break;
      }
    }
  } finally {
    await db.close();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
