/**
 * Starts the built platform as a separate process on a fresh PostgreSQL database and Redis prefix, as a
 * deployment would run it, and removes both afterwards.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { deleteKeysWithPrefix } from '../test/redis-keys';
import pg from 'pg';

export interface BenchPlatform {
  baseUrl: string;
  databaseUrl: string;
  stop(): Promise<void>;
}

const ADMIN_URL = process.env.BENCH_POSTGRES_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

async function adminQuery(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: ADMIN_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

async function waitReady(url: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 120; i++) {
    if (child.exitCode !== null) {
      throw new Error(`the platform exited with code ${child.exitCode} before it was ready`);
    }
    try {
      const res = await fetch(url);
      if (res.ok) {
        return;
      }
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`${url} did not become ready within 60 s`);
}

export async function startPlatform(port: number): Promise<BenchPlatform> {
  const runId = `${Date.now().toString(36)}`;
  const dbName = `huimin_bench_${runId}`;
  const prefix = `huimin-bench-${runId}`;
  await adminQuery(`CREATE DATABASE ${dbName}`);
  const dbUrl = new URL(ADMIN_URL);
  dbUrl.pathname = `/${dbName}`;
  const child = spawn(process.execPath, [path.resolve(__dirname, '../main.js')], {
    env: { ...process.env, DATABASE_URL: dbUrl.toString(), PORT: String(port), HOST: '127.0.0.1', REDIS_URL, REDIS_PREFIX: prefix, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  try {
    await waitReady(`http://127.0.0.1:${port}/readyz`, child);
  } catch (err) {
    child.kill('SIGKILL');
    await adminQuery(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    throw err;
  }
  return {
    baseUrl: `http://127.0.0.1:${port}/fhir`,
    databaseUrl: dbUrl.toString(),
    stop: async () => {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      if (process.env.BENCH_KEEP_DATABASE) {
        console.error(`kept the database ${dbName} (BENCH_KEEP_DATABASE is set)`);
      } else {
        await adminQuery(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
      }
      await deleteKeysWithPrefix(REDIS_URL, prefix);
    },
  };
}
