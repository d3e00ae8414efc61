import { deleteKeysWithPrefix } from './redis-keys';
import pg from 'pg';

export default async function globalTeardown(): Promise<void> {
  const adminUrl = process.env.TEST_POSTGRES_ADMIN_URL;
  const dbName = process.env.TEST_DATABASE_NAME;
  if (adminUrl && dbName) {
    const client = new pg.Client({ connectionString: adminUrl });
    await client.connect();
    try {
      await client.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    } finally {
      await client.end();
    }
  }
  const prefix = process.env.TEST_REDIS_PREFIX;
  if (prefix && process.env.TEST_REDIS_URL) {
    await deleteKeysWithPrefix(process.env.TEST_REDIS_URL, prefix);
  }
}
