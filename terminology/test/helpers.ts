/** A FHIR server with the terminology operations over a test database that has the terminology tables. */
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import type { Resource } from '@medplum/fhirtypes';
import { createFhirServer, FhirRepository, type Database, type FhirServer } from '../../fhir-server';
import { createTestDatabase, type Backend } from '../../test/databases';
import { TEST_PUBLIC_URL } from '../../test/server';
import { BindingValidator, TerminologyService, terminologyMigrations, terminologyOperations } from '..';

export interface TerminologyTestServer extends FhirServer {
  db: Database;
  terminology: TerminologyService;
  /** The CodeValidator the store asks for bindings it cannot expand itself. */
  bindings: BindingValidator;
  /** Writes resources into the store (update by id). */
  put(...resources: Resource[]): Promise<void>;
  close(): Promise<void>;
}

export async function createTerminologyTestServer(backend: Backend = 'postgres'): Promise<TerminologyTestServer> {
  const db = await createTestDatabase(backend, terminologyMigrations);
  const baseUrl = `${TEST_PUBLIC_URL}/fhir`;
  const terminology = new TerminologyService(db, new FhirRepository(db, { enforceReferentialIntegrity: false, baseUrl }));
  const bindings = new BindingValidator(terminology);
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
    operations: terminologyOperations(terminology),
    codeValidator: bindings,
  });
  return {
    ...server,
    db,
    terminology,
    bindings,
    put: async (...resources) => {
      await server.repository.write(async (session) => {
        for (const r of resources) {
          await session.update(r.resourceType, r.id as string, r);
        }
      });
    },
    close: async () => {
      await server.stop();
      await db.close();
    },
  };
}
