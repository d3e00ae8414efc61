export type { Database, Queryable, QueryOptions } from './database';
export { isRetryableConflict, sqlState } from './database';
export { migrate, LATEST_SCHEMA_VERSION, type Migration } from './migrations';
export { CompositeWrite, SqlParams } from './statement';
export { StatisticsKeeper } from './statistics';
export { ClaimLoop, withHeartbeat } from './claim-loop';
import type { Database } from './database';
import { PgliteDatabase } from './pglite';
import { PostgresDatabase } from './postgres';

/** PostgreSQL when a connection string is given, otherwise embedded PGlite in `dataDir` (in memory if undefined). */
export async function openDatabase(databaseUrl: string | undefined, dataDir: string | undefined, poolSize?: number): Promise<Database> {
  return databaseUrl ? new PostgresDatabase(databaseUrl, poolSize) : PgliteDatabase.open(dataDir);
}
