/** The statistics keeper analyses tables that changed past autovacuum's threshold, where autovacuum does not. */
import pino from 'pino';
import { StatisticsKeeper } from '../db';
import { createTestDatabase, type Backend } from '../../test/databases';
import { createTestServer } from '../../test/server';

describe.each<Backend>(['postgres', 'pglite'])('statistics keeper on %s', (backend) => {
  it('analyses the index tables after a load, and nothing once they are analysed', async () => {
    const db = await createTestDatabase(backend);
    const server = await createTestServer(backend, {}, db);
    try {
      await server.repository.write(async (session) => {
        for (let i = 0; i < 120; i++) {
          await session.create({ resourceType: 'Patient', name: [{ family: `Fam${i}` }], gender: i % 2 ? 'male' : 'female' });
        }
      });
      const keeper = new StatisticsKeeper(db, pino({ level: 'silent' }));
      // Sessions report their row counts to the statistics system within a second or so, not at commit.
      let analysed = await keeper.analyseChanged();
      for (let i = 0; backend === 'postgres' && !analysed.includes('search_token') && i < 25; i++) {
        await new Promise((r) => setTimeout(r, 200));
        analysed = [...analysed, ...(await keeper.analyseChanged())];
      }
      if (backend === 'postgres') {
        // 120 new rows in each table, past the threshold of 50 + 10% of the (empty) table.
        expect(analysed).toEqual(expect.arrayContaining(['resource', 'resource_version', 'search_string', 'search_token']));
        expect(await keeper.analyseChanged()).toEqual([]);
      } else {
        // PGlite keeps no activity statistics: nothing is reported as changed, and asking must not fail.
        expect(Array.isArray(analysed)).toBe(true);
      }
    } finally {
      await server.close();
    }
  });
});
