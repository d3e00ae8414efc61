/**
 * Starts the built platform as a separate process on a fresh PostgreSQL database and Redis prefix, as a
 * deployment would run it, and removes both afterwards.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { deleteKeysWithPrefix } from '../test/redis-keys';
import pg from 'pg';

export interface BenchPlatform {
  baseUrl: string;
  databaseUrl: string;
  /** An administrator's access token (valid for an hour), for the harness's requests. */
  token: string;
  /** The platform's (primary) process, for benchmarks that read its CPU time. */
  pid: number;
  stop(): Promise<void>;
}

const ADMIN_URL = process.env.BENCH_POSTGRES_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Runs one statement on the server's administrative database (CREATE/DROP DATABASE). */
export async function adminQuery(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: ADMIN_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** How long the platform may take to answer ready (its first start loads the terminology content). */
const READY_TIMEOUT_S = Number(process.env.BENCH_READY_TIMEOUT_S ?? 60);

async function waitReady(url: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < READY_TIMEOUT_S * 2; i++) {
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
  throw new Error(`${url} did not become ready within ${READY_TIMEOUT_S} s (BENCH_READY_TIMEOUT_S)`);
}

export async function startPlatform(port: number): Promise<BenchPlatform> {
  const runId = `${Date.now().toString(36)}`;
  const dbName = `huimin_bench_${runId}`;
  const prefix = `huimin-bench-${runId}`;
  await adminQuery(`CREATE DATABASE ${dbName}`);
  const adminSecret = randomBytes(24).toString('base64url');
  const dbUrl = new URL(ADMIN_URL);
  dbUrl.pathname = `/${dbName}`;
  const child = spawn(process.execPath, [path.resolve(__dirname, '../main.js')], {
    env: {
      ...process.env,
      DATABASE_URL: dbUrl.toString(),
      PORT: String(port),
      HOST: '127.0.0.1',
      REDIS_URL,
      REDIS_PREFIX: prefix,
      // A journal directory of this run's own: journals are recovered into whatever database the next start uses.
      AUDIT_JOURNAL_DIR: path.join(os.tmpdir(), `huimin-bench-audit-${runId}`),
      LOG_LEVEL: 'warn',
      // The harness calls as an administrator; its token must outlive the run, and the per-client rate limit is set
      // far above what the harness sends (so that its cost is measured, but it never throttles).
      HUIMIN_ADMIN_CLIENT_ID: 'bench-admin',
      HUIMIN_ADMIN_CLIENT_SECRET: adminSecret,
      ACCESS_TOKEN_LIFETIME_SECONDS: '3600',
      RATE_LIMIT_PER_CLIENT: '1000000',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  try {
    await waitReady(`http://127.0.0.1:${port}/readyz`, child);
  } catch (err) {
    child.kill('SIGKILL');
    await adminQuery(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    throw err;
  }
  const tokenRes = await fetch(`http://127.0.0.1:${port}/auth/token`, {
    method: 'POST',
    headers: { Authorization: `Basic ${Buffer.from(`bench-admin:${adminSecret}`).toString('base64')}`, 'Content-Type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials',
  });
  const { access_token: token } = (await tokenRes.json()) as { access_token: string };
  return {
    baseUrl: `http://127.0.0.1:${port}/fhir`,
    token,
    databaseUrl: dbUrl.toString(),
    pid: child.pid as number,
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
