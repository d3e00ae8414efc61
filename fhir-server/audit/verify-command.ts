/**
 * `npm run audit:verify`: walks the audit log's hash chain in the configured database (DATABASE_URL, or the
 * embedded database in DATA_DIR while the platform is stopped) and reports any event changed, removed or
 * reordered after it was sealed. Exit code 0 when the chain is intact, 1 when it is not, 2 when it cannot be read.
 */
import { loadConfig } from '../../config';
import { openDatabase } from '../db';
import { verifyAuditChain } from './hash-chain';

async function main(): Promise<number> {
  const config = loadConfig();
  const db = await openDatabase(config.databaseUrl, config.dataDir, 1);
  try {
    const report = await verifyAuditChain(db);
    console.log(`audit chain: ${report.checked} sealed events checked, ${report.unsealed} not yet sealed`);
    for (const problem of report.problems) {
      console.log(`TAMPERING: ${problem}`);
    }
    console.log(report.ok ? 'audit chain intact' : `audit chain BROKEN (${report.problems.length} problems)`);
    return report.ok ? 0 : 1;
  } finally {
    await db.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error('audit verification could not run:', err instanceof Error ? err.message : err);
    process.exit(2);
  },
);
