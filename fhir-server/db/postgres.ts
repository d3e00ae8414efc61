import pg from 'pg';
import type { Database, Queryable } from './database';

// numeric and bigint come back as strings by default; int8 counts fit in a JS number for our purposes.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

export class PostgresDatabase implements Database {
  readonly description: string;
  private readonly pool: pg.Pool;

  constructor(connectionString: string, poolSize = 20) {
    this.pool = new pg.Pool({ connectionString, max: poolSize });
    // An idle client losing its connection must not crash the process; the next query reconnects.
    this.pool.on('error', () => undefined);
    const url = new URL(connectionString);
    this.description = `PostgreSQL at ${url.hostname}:${url.port || 5432}${url.pathname}`;
  }

  async query<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    const result = await this.pool.query(sql, params);
    return result.rows as T[];
  }

  async exec(sql: string): Promise<void> {
    await this.pool.query(sql);
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    const tx: Queryable = {
      query: async <R>(sql: string, params: unknown[] = []) => (await client.query(sql, params)).rows as R[],
      exec: async (sql: string) => {
        await client.query(sql);
      },
    };
    try {
      await client.query('BEGIN');
      const result = await fn(tx);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
