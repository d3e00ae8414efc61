/**
 * Test databases. Each test file gets its own PostgreSQL schema inside the run's database (so files running in
 * parallel never collide), or an in-memory PGlite.
 */
import { randomBytes } from 'node:crypto';
import { securityMigrations } from '../fhir-server';
import { migrate, openDatabase, type Database, type Migration } from '../fhir-server/db';

export type Backend = 'postgres' | 'pglite';

/**
 * A migrated database: the store's tables, security's (every server needs them), and `migrations`, the tables of
 * the modules under test.
 */
export async function createTestDatabase(backend: Backend = 'postgres', migrations: readonly Migration[] = []): Promise<Database> {
  let db: Database;
  if (backend === 'pglite') {
    db = await openDatabase(undefined, undefined);
  } else {
    const base = process.env.TEST_DATABASE_URL;
    if (!base) {
      throw new Error('TEST_DATABASE_URL is not set: run the tests through jest (test/global-setup.ts)');
    }
    const schema = `t_${randomBytes(6).toString('hex')}`;
    const admin = await openDatabase(base, undefined);
    await admin.exec(`CREATE SCHEMA ${schema}`);
    await admin.close();
    const url = new URL(base);
    url.searchParams.set('options', `-c search_path=${schema}`);
    db = await openDatabase(url.toString(), undefined);
  }
  const modules = [...securityMigrations, ...migrations.filter((m) => !securityMigrations.includes(m))];
  await migrate(db, modules);
  return db;
}
