import { createHash } from 'node:crypto';
import pg from 'pg';
import type { Database, Queryable, QueryOptions } from './database';

// numeric and bigint come back as strings by default; int8 counts fit in a JS number for our purposes.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

/** Prepared-statement names by statement text: the same text gets the same name on every connection. */
const statementNames = new Map<string, string>();
/** Bounds the names remembered (and so the statements each connection may keep prepared). */
const MAX_PREPARED = 2000;

function queryConfig(sql: string, params: unknown[], options?: QueryOptions): pg.QueryConfig {
  if (!options?.prepare) {
    return { text: sql, values: params };
  }
  let name = statementNames.get(sql);
  if (!name) {
    if (statementNames.size >= MAX_PREPARED) {
      return { text: sql, values: params };
    }
    name = `huimin_${createHash('sha1').update(sql).digest('hex').slice(0, 24)}`;
    statementNames.set(sql, name);
  }
  return { name, text: sql, values: params };
}

export class PostgresDatabase implements Database {
  readonly description: string;
  private readonly pool: pg.Pool;

  constructor(connectionString: string, poolSize = 20) {
    this.pool = new pg.Pool({ connectionString, max: poolSize });
    // An idle client losing its connection must not crash the process; the next query reconnects.
    this.pool.on('error', () => undefined);
    const url = new URL(connectionString);
    // Connection options (a schema on the search path) are part of where the data is; credentials are not.
    const options = url.searchParams.get('options');
    this.description = `PostgreSQL at ${url.hostname}:${url.port || 5432}${url.pathname}${options ? ` (${options})` : ''}`;
  }

  async query<T>(sql: string, params: unknown[] = [], options?: QueryOptions): Promise<T[]> {
    const result = await this.pool.query(queryConfig(sql, params, options));
    return result.rows as T[];
  }

  async exec(sql: string): Promise<void> {
    await this.pool.query(sql);
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    const tx: Queryable = {
      query: async <R>(sql: string, params: unknown[] = [], options?: QueryOptions) =>
        (await client.query(queryConfig(sql, params, options))).rows as R[],
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
