/** A FHIR server with the terminology operations over a test database that has the terminology tables. */
import type { Resource } from '@medplum/fhirtypes';
import { FhirRepository } from '../../fhir-server';
import { createTestDatabase, type Backend } from '../../test/databases';
import { createTestServer, TEST_PUBLIC_URL, type TestServer } from '../../test/server';
import { BindingValidator, TerminologyService, terminologyMigrations, terminologyOperations } from '..';

export interface TerminologyTestServer extends TestServer {
  terminology: TerminologyService;
  /** The CodeValidator the store asks for bindings it cannot expand itself. */
  bindings: BindingValidator;
  /** Writes resources into the store (update by id). */
  put(...resources: Resource[]): Promise<void>;
}

export async function createTerminologyTestServer(backend: Backend = 'postgres'): Promise<TerminologyTestServer> {
  const db = await createTestDatabase(backend, terminologyMigrations);
  const terminology = new TerminologyService(db, new FhirRepository(db, { enforceReferentialIntegrity: false, baseUrl: `${TEST_PUBLIC_URL}/fhir` }));
  const bindings = new BindingValidator(terminology);
  const server = await createTestServer(backend, { operations: terminologyOperations(terminology), codeValidator: bindings }, db);
  return {
    ...server,
    terminology,
    bindings,
    put: async (...resources) => {
      await server.repository.write(async (session) => {
        for (const r of resources) {
          await session.update(r.resourceType, r.id as string, r);
        }
      });
    },
  };
}
