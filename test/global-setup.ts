/**
 * One fresh PostgreSQL database and one fresh Redis key prefix per test run, so that runs never see each
 * other's state. Workers inherit the environment set here. global-teardown.ts drops both.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export default async function globalSetup(): Promise<void> {
  const adminUrl = process.env.TEST_POSTGRES_ADMIN_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
  const runId = `${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  const dbName = `huimin_test_${runId}`;
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${dbName}`);
  } finally {
    await client.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${dbName}`;
  process.env.TEST_RUN_ID = runId;
  process.env.TEST_DATABASE_NAME = dbName;
  process.env.TEST_DATABASE_URL = url.toString();
  process.env.TEST_POSTGRES_ADMIN_URL = adminUrl;
  process.env.TEST_REDIS_URL = process.env.TEST_REDIS_URL || 'redis://127.0.0.1:6379';
  process.env.TEST_REDIS_PREFIX = `huimin-test-${runId}`;
}
