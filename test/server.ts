/**
 * A whole FHIR server for a test file: its own database (PostgreSQL schema or PGlite) and its own Redis prefix.
 */
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { createFhirServer, type Database, type FhirServer, type FhirServerOptions } from '../fhir-server';
import { createTestDatabase, type Backend } from './databases';

export interface TestServer extends FhirServer {
  db: Database;
  baseUrl: string;
  close(): Promise<void>;
}

export const TEST_PUBLIC_URL = 'http://127.0.0.1:8080';

export async function createTestServer(
  backend: Backend = 'postgres',
  overrides: Partial<Omit<FhirServerOptions, 'db' | 'logger'>> = {},
): Promise<TestServer> {
  const db = await createTestDatabase(backend);
  const server = createFhirServer({
    db,
    logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    publicBaseUrl: TEST_PUBLIC_URL,
    fhirBasePath: '/fhir',
    redisUrl: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
    redisPrefix: `${process.env.TEST_REDIS_PREFIX ?? 'huimin-test'}-${randomBytes(4).toString('hex')}`,
    maxBodyBytes: 10 * 1024 * 1024,
    maxJsonDepth: 64,
    maxPageSize: 1000,
    defaultPageSize: 20,
    enforceReferentialIntegrity: true,
    ...overrides,
  });
  return {
    ...server,
    db,
    baseUrl: `${TEST_PUBLIC_URL}/fhir`,
    close: async () => {
      await server.stop();
      await db.close();
    },
  };
}
