import { LATEST_SCHEMA_VERSION, migrate } from '../fhir-server/db';
import { createTestDatabase, type Backend } from './databases';

describe.each<Backend>(['postgres', 'pglite'])('schema migrations on %s', (backend) => {
  it('applies once and is a no-op the second time, also when two run at once', async () => {
    const db = await createTestDatabase(backend);
    try {
      const again = await Promise.all([migrate(db), migrate(db)]);
      expect(again).toEqual([[], []]);
      const rows = await db.query<{ version: number }>('SELECT max(version) AS version FROM schema_migration WHERE version < 1000');
      // The store's own range (modules' migrations start at 1000).
      expect(Number(rows[0].version)).toBe(LATEST_SCHEMA_VERSION);
    } finally {
      await db.close();
    }
  });
});
