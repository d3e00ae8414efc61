/**
 * A platform for adapter tests: its own database (with the adapters' tables), the FHIR server, the adapters and an
 * MLLP listener on a random port; helpers to register facilities and to send messages over a real socket.
 */
import pino from 'pino';
import type { Organization, Resource } from '@medplum/fhirtypes';
import { parseSearchRequest } from '@medplum/core';
import type { Database, FhirServerOptions, Migration } from '../../fhir-server';
import { createTestDatabase } from '../../test/databases';
import { createTestServer, type TestServer } from '../../test/server';
import { adapterMigrations, createAdapters, FACILITY_EXTENSION, FACILITY_TAG_CODE, FACILITY_TAG_SYSTEM, hl7Operations, MllpClient, type Adapters, type CodeTranslator } from '..';

export interface Hl7TestPlatform {
  db: Database;
  /** Its `app` acts as an administrator (see test/server.ts). */
  server: TestServer;
  adapters: Adapters;
  port: number;
  connect(): Promise<MllpClient>;
  registerFacility(key: string, options?: { charset?: string; allowedAddress?: string; tlsSubject?: string; name?: string }): Promise<string>;
  search<T extends Resource>(resourceType: T['resourceType'], query: Record<string, string>): Promise<T[]>;
  close(): Promise<void>;
}

export interface Hl7PlatformOptions {
  maxMessageBytes?: number;
  tls?: { certFile: string; keyFile: string; caFile?: string };
  /** Tables other modules need beside the adapters' (e.g. terminology's). */
  migrations?: readonly Migration[];
  /** Built once the server exists; the default reads ConceptMaps from the store. */
  translator?: (server: TestServer) => CodeTranslator;
  /** Other modules' store extensions (write rules, event queues, operations) beside the adapters' operations. */
  server?: Partial<Omit<FhirServerOptions, 'db' | 'logger'>>;
}

export async function startHl7Platform(options: Hl7PlatformOptions = {}): Promise<Hl7TestPlatform> {
  const db = await createTestDatabase('postgres', [...adapterMigrations, ...(options.migrations ?? [])]);
  const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const server = await createTestServer('postgres', { ...options.server, operations: [...hl7Operations, ...(options.server?.operations ?? [])] }, db);
  const adapters = createAdapters({ repo: server.repository, logger, translator: options.translator?.(server) });
  const port = await adapters.listen({ port: 0, host: '127.0.0.1', maxMessageBytes: options.maxMessageBytes ?? 5 * 1024 * 1024, idleTimeoutMs: 30_000, tls: options.tls });
  const clients: MllpClient[] = [];
  return {
    db,
    server,
    adapters,
    port,
    async connect() {
      const client = await new MllpClient('127.0.0.1', port).connect();
      clients.push(client);
      return client;
    },
    async registerFacility(key, o = {}) {
      const extension = [
        ...(o.charset ? [{ url: 'charset', valueString: o.charset }] : []),
        ...(o.allowedAddress ? [{ url: 'allowedAddress', valueString: o.allowedAddress }] : []),
        ...(o.tlsSubject ? [{ url: 'tlsSubject', valueString: o.tlsSubject }] : []),
      ];
      const org: Organization = {
        resourceType: 'Organization',
        meta: { tag: [{ system: FACILITY_TAG_SYSTEM, code: FACILITY_TAG_CODE }] },
        identifier: [{ system: 'urn:huimin:facility', value: key }],
        name: o.name ?? key,
        active: true,
        ...(extension.length ? { extension: [{ url: FACILITY_EXTENSION, extension }] } : {}),
      };
      const created = await server.repository.write((s) => s.create(org));
      adapters.facilities.clear();
      return created.id as string;
    },
    async search<T extends Resource>(resourceType: T['resourceType'], query: Record<string, string>) {
      const page = await server.repository.search(parseSearchRequest(resourceType, query), { count: 1000, offset: 0 });
      return page.rows.map((r) => JSON.parse(r.content) as T);
    },
    async close() {
      clients.forEach((c) => c.close());
      await adapters.stop();
      await server.close();
    },
  };
}

/** MSA-1 and the ERR lines of an ACK. */
export function readAck(ack: Buffer | string): { code: string; controlId: string; errors: string[]; text: string } {
  const text = typeof ack === 'string' ? ack : ack.toString('utf8');
  const lines = text.split('\r').filter(Boolean);
  const msa = (lines.find((l) => l.startsWith('MSA')) ?? '').split(text[3] ?? '|');
  return { code: msa[1] ?? '', controlId: msa[2] ?? '', errors: lines.filter((l) => l.startsWith('ERR')), text };
}

/** Builds a message from segment lines (joined with CR, as MLLP senders do). */
export function hl7(...segments: string[]): string {
  return segments.join('\r') + '\r';
}
