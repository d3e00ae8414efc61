/**
 * A platform for a registry test file: its own database (with the module's tables), the store with the registry
 * and document rules, `$render` and the content store, and the module's content installed.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Resource } from '@medplum/fhirtypes';
import request from 'supertest';
import { createTestDatabase, type Backend } from '../../test/databases';
import { createTestServer, type TestServer } from '../../test/server';
import { installRegistryContent, registryMigrations, registryStoreExtensions } from '..';

export async function createRegistryServer(options: { documentMaxBytes?: number; backend?: Backend } = {}): Promise<TestServer> {
  const backend = options.backend ?? 'postgres';
  const db = await createTestDatabase(backend, registryMigrations);
  const extensions = registryStoreExtensions(db, { documentMaxBytes: options.documentMaxBytes ?? 5 * 1024 * 1024 });
  const server = await createTestServer(backend, extensions, db);
  await installRegistryContent(server.repository);
  return server;
}

/** The synthetic WS/T 500 C0001 sample, optionally with some text replaced (another document id, another patient). */
export function cdaSample(replacements: Record<string, string> = {}): string {
  let xml = readFileSync(path.join(__dirname, 'samples', 'wst500-c0001-synthetic.xml'), 'utf8');
  for (const [from, to] of Object.entries(replacements)) {
    xml = xml.split(from).join(to);
  }
  return xml;
}

/** Creates a resource as the admin and returns it (fails the test on anything but 201). */
export async function create<T extends Resource>(server: TestServer, resource: T, token?: string): Promise<T & { id: string }> {
  const res = await request(server.app)
    .post(`/fhir/${resource.resourceType}`)
    .set('Content-Type', 'application/fhir+json')
    .set(token ? { Authorization: `Bearer ${token}` } : {})
    .send(resource);
  if (res.status !== 201) {
    throw new Error(`create ${resource.resourceType}: ${res.status} ${JSON.stringify(res.body)}`);
  }
  return res.body as T & { id: string };
}
