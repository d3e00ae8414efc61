/**
 * A whole FHIR server for a test file: its own database (PostgreSQL schema or PGlite) and its own Redis prefix.
 *
 * Every FHIR request needs an access token. So that tests about other things need not care, `app` acts as a fully
 * privileged administrator: a request without an Authorization header gets a real admin token, signed by the
 * server's own key. Security tests use `rawApp` (the server as the world sees it) and `tokenFor` (a client with the
 * given role, organisation and scopes, registered in the database, and a token issued to it).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { createFhirServer, type Client, type Database, type FhirServer, type FhirServerOptions, type Role } from '../fhir-server';
import type { HttpHandler } from '../fhir-server/http/app';
import { createTestDatabase, type Backend } from './databases';

export interface TestClient {
  role: Role;
  organization?: string;
  scope?: string;
  practitioner?: string;
  /** Token lifetime in seconds (default 1 h, so that slow test files never see one expire). */
  lifetimeS?: number;
}

export interface TestServer extends FhirServer {
  db: Database;
  baseUrl: string;
  /** The HTTP listener without the admin token injection: what a client on the network reaches. */
  rawApp: HttpHandler;
  /** The admin token that `app` adds to requests without an Authorization header. */
  adminToken: string;
  /** Registers a client with this role (and organisation, scopes) and returns a token issued to it. */
  tokenFor(client: TestClient): Promise<{ token: string; client: Client }>;
  close(): Promise<void>;
}

export const TEST_PUBLIC_URL = 'http://127.0.0.1:8080';

export async function createTestServer(
  backend: Backend = 'postgres',
  overrides: Partial<Omit<FhirServerOptions, 'db' | 'logger'>> = {},
  /** A database the caller made (e.g. with its module's migrations); the server closes it. */
  database?: Database,
): Promise<TestServer> {
  const db = database ?? (await createTestDatabase(backend));
  const auditJournalDir = mkdtempSync(path.join(os.tmpdir(), 'huimin-test-audit-'));
  const server = createFhirServer({
    auditJournalDir,
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
    // Tests fire requests as fast as they can: no rate limit unless a test asks for one.
    security: { rateLimitPerClient: 0, rateLimitTokenEndpoint: 0, ...overrides.security },
  });
  const tokens = await server.security.tokens;
  const tokenFor = async (spec: TestClient): Promise<{ token: string; client: Client }> => {
    const client: Client = {
      clientId: `test-${spec.role}-${randomBytes(6).toString('hex')}`,
      clientName: `test ${spec.role}`,
      role: spec.role,
      organization: spec.organization,
      practitioner: spec.practitioner,
      scope: spec.scope ?? 'system/*.cruds',
      authMethod: 'client_secret_basic',
      disabled: false,
    };
    await server.security.clients.insert(client);
    const issued = await tokens.issue(client, undefined, undefined, spec.lifetimeS ?? 3600);
    return { token: issued.access_token, client };
  };
  const { token: adminToken } = await tokenFor({ role: 'admin' });
  const rawApp = server.app;
  const app: HttpHandler = (req, res) => {
    if (req.headers.authorization === undefined) {
      req.headers.authorization = `Bearer ${adminToken}`;
    }
    rawApp(req, res);
  };
  return {
    ...server,
    app,
    rawApp,
    adminToken,
    tokenFor,
    db,
    baseUrl: `${TEST_PUBLIC_URL}/fhir`,
    close: async () => {
      await server.stop();
      await db.close();
      rmSync(auditJournalDir, { recursive: true, force: true });
    },
  };
}
