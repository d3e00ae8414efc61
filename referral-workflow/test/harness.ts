/**
 * A platform for a workflow test file: its own database (with the workflow's tables), its own Redis prefix, the
 * store with the workflow's rules and operations, the workers with a manual clock, and a helper to wait.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Bundle, Resource } from '@medplum/fhirtypes';
import request from 'supertest';
import type { Database, FhirServer } from '../../fhir-server';
import { createTestDatabase } from '../../test/databases';
import { deleteKeysWithPrefix } from '../../test/redis-keys';
import { createTestServer, type TestServer } from '../../test/server';
import {
  ManualClock,
  loadWorkflowConfig,
  referralMigrations,
  startWorkflow,
  workflowStoreExtensions,
  type WorkflowConfig,
  type Workflow,
  type WorkflowOptions,
} from '..';

export interface Harness {
  /** Its `app` acts as an administrator (see test/server.ts). */
  server: TestServer;
  db: Database;
  clock: ManualClock;
  config: WorkflowConfig;
  prefix: string;
  redisUrl: string;
  workflow: Workflow;
  errors: Error[];
  /** Starts another set of workers on the same database and Redis (a second process, or a restart). */
  startWorkers(extra?: Partial<WorkflowOptions>): Workflow;
  close(): Promise<void>;
}

export const BASE = 'http://127.0.0.1:8080/fhir';

export async function createHarness(
  env: NodeJS.ProcessEnv = {},
  /** More workflow options, or a function of the test server that gives them (for options built on its store). */
  extra: Partial<WorkflowOptions> | ((server: TestServer) => Partial<WorkflowOptions>) = {},
  tuning: { lockDurationMs?: number; stalledIntervalMs?: number } = {},
): Promise<Harness> {
  const config = loadWorkflowConfig({ REFERRAL_SLOT_SHARE: '0', SUBSCRIPTION_DELIVERY_BACKOFF_MS: '50', ...env });
  const db = await createTestDatabase('postgres', referralMigrations);
  const redisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
  const prefix = `${process.env.TEST_REDIS_PREFIX ?? 'huimin-test'}-${randomBytes(4).toString('hex')}`;
  const extensions = workflowStoreExtensions(config);
  const server = await createTestServer(
    'postgres',
    {
      redisUrl,
      redisPrefix: prefix,
      operations: extensions.operations,
      writeInterceptors: extensions.writeInterceptors,
      eventQueues: extensions.eventQueues,
    },
    db,
  );
  const options = typeof extra === 'function' ? extra(server) : extra;
  const clock = new ManualClock();
  const errors: Error[] = [];
  const workers: Workflow[] = [];
  const startWorkers = (more: Partial<WorkflowOptions> = {}): Workflow => {
    const workflow = startWorkflow({
      repository: server.repository,
      db,
      queues: { redisUrl, prefix, ...tuning },
      config,
      baseUrl: BASE,
      clock,
      onError: (err, job) => {
        errors.push(err);
        if (process.env.DEBUG_WORKFLOW) {
          console.log('workflow error', job?.name, job?.id, err);
        }
      },
      ...options,
      ...more,
    });
    workers.push(workflow);
    return workflow;
  };
  const workflow = startWorkers(process.env.DEBUG_WORKFLOW ? { onStep: (step, id) => console.log('step', step, id) } : {});
  return {
    server,
    db,
    clock,
    config,
    prefix,
    redisUrl,
    workflow,
    errors,
    startWorkers,
    close: async () => {
      await Promise.all(workers.map((w) => w.close()));
      await server.close();
      await deleteKeysWithPrefix(redisUrl, prefix);
    },
  };
}

/** Polls until `check` returns a value (not undefined/false) or the time is up. */
export async function waitFor<T>(check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`Timed out waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** HTTP helpers over the in-process server. */
export function api(server: FhirServer) {
  const json = 'application/fhir+json';
  return {
    create: async <T extends Resource>(resource: T, expect = 201): Promise<T> =>
      (await request(server.app).post(`/fhir/${resource.resourceType}`).set('Content-Type', json).send(resource).expect(expect)).body as T,
    update: async <T extends Resource>(resource: T, expect = 200) =>
      request(server.app).put(`/fhir/${resource.resourceType}/${resource.id}`).set('Content-Type', json).send(resource).expect(expect),
    read: async <T extends Resource>(type: string, id: string): Promise<T> => (await request(server.app).get(`/fhir/${type}/${id}`).expect(200)).body as T,
    search: async (path: string): Promise<Bundle> => (await request(server.app).get(`/fhir/${path}`).expect(200)).body as Bundle,
    post: (path: string, body: unknown) => request(server.app).post(`/fhir/${path}`).set('Content-Type', json).send(body as object),
  };
}

export interface ReceivedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A rest-hook endpoint on port 0 that records requests and answers `status()`. */
export async function startReceiver(status: () => number = () => 200): Promise<{ url: string; received: ReceivedRequest[]; close(): Promise<void> }> {
  const received: ReceivedRequest[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.statusCode = status();
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
