/**
 * A platform for the index's tests: its own database (with the index's tables), the FHIR server with the index's
 * store extensions, the index started with its linking worker on a Redis prefix of its own.
 */
import { randomBytes } from 'node:crypto';
import type { Migration } from '../../fhir-server';
import { createTestDatabase } from '../../test/databases';
import { deleteKeysWithPrefix } from '../../test/redis-keys';
import { createTestServer, type TestServer } from '../../test/server';
import { loadMpiConfig, MasterPatientIndex, mpiMigrations, type PatientIndex } from '..';

export interface MpiTestPlatform {
  server: TestServer;
  mpi: MasterPatientIndex;
  index: PatientIndex;
  redisPrefix: string;
  close(): Promise<void>;
}

export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export async function startMpiPlatform(options: { migrations?: readonly Migration[]; env?: NodeJS.ProcessEnv } = {}): Promise<MpiTestPlatform> {
  const db = await createTestDatabase('postgres', [...mpiMigrations, ...(options.migrations ?? [])]);
  const mpi = new MasterPatientIndex(loadMpiConfig(options.env ?? {}));
  const redisPrefix = `${process.env.TEST_REDIS_PREFIX ?? 'huimin-test'}-${randomBytes(4).toString('hex')}`;
  const server = await createTestServer('postgres', { ...mpi.storeExtensions(), redisPrefix }, db);
  await mpi.start({ repository: server.repository, redisUrl: REDIS_URL, redisPrefix, onError: (err) => console.error('mpi worker failed', err) });
  return {
    server,
    mpi,
    index: mpi.patientIndex,
    redisPrefix,
    close: async () => {
      await mpi.stop();
      await server.close();
      await deleteKeysWithPrefix(REDIS_URL, redisPrefix);
    },
  };
}

/** Polls until `check` returns a value (not undefined/false), or fails after `timeoutMs` (generous: the CPU is shared). */
export async function eventually<T>(check: () => Promise<T | undefined | false>, timeoutMs = 45_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw new Error(`condition not met within ${timeoutMs} ms${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
