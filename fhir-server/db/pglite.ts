import { PGlite } from '@electric-sql/pglite';
import type { Database, Queryable } from './database';

/**
 * Embedded PostgreSQL (WASM) for running without a database server. PGlite has one connection, so its
 * transactions are serialised; correctness is the same, throughput is that of one session. QueryOptions.prepare is
 * a hint for PostgreSQL servers; PGlite's API does not take it.
 */
export class PgliteDatabase implements Database {
  readonly description: string;
  readonly singleSession = true;

  private constructor(
    private readonly db: PGlite,
    dataDir: string | undefined,
  ) {
    this.description = dataDir ? `embedded PostgreSQL (PGlite) in ${dataDir}` : 'embedded PostgreSQL (PGlite) in memory';
  }

  /** Opens (creating if needed) a PGlite database in `dataDir`, or in memory when it is undefined. */
  static async open(dataDir?: string): Promise<PgliteDatabase> {
    const db = dataDir ? new PGlite(dataDir) : new PGlite();
    await db.waitReady;
    return new PgliteDatabase(db, dataDir);
  }

  async query<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    const result = await this.db.query<T>(sql, params);
    return result.rows;
  }

  async exec(sql: string): Promise<void> {
    await this.db.exec(sql);
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.db.transaction(async (t) => {
      const tx: Queryable = {
        query: async <R>(sql: string, params: unknown[] = []) => (await t.query<R>(sql, params)).rows,
        exec: async (sql: string) => {
          await t.exec(sql);
        },
      };
      return fn(tx);
    });
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}
