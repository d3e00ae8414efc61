/**
 * A platform for a supervision test file: its own database (with supervision's tables), its own Redis prefix, the
 * store with supervision's operations and event queue, the workers, a movable clock, and helpers to write as a
 * hospital and to wait until a resource's change has been evaluated.
 */
import { randomBytes } from 'node:crypto';
import type { Bundle, DetectedIssue, Resource } from '@medplum/fhirtypes';
import request from 'supertest';
import type { Database } from '../../fhir-server';
import { createTestDatabase } from '../../test/databases';
import { deleteKeysWithPrefix } from '../../test/redis-keys';
import { createTestServer, type TestServer } from '../../test/server';
import { loadWorkflowConfig, workflowStoreExtensions } from '../../referral-workflow';
import { createSupervision, loadSupervisionConfig, supervisionMigrations, type RaisedFinding, type Supervision, type SupervisionOptions } from '..';

export interface Harness {
  server: TestServer;
  db: Database;
  supervision: Supervision;
  /** The engine's clock: real time moved by `offset` ms. */
  clock: { offset: number };
  errors: Error[];
  findings: RaisedFinding[];
  /** Writes as a hospital's facility-system client (owner-stamped), returns the stored resource. */
  write<T extends Resource>(org: string, resource: T): Promise<T>;
  /** Token of a client with this role and organisation (cached). */
  token(role: 'facility-system' | 'clinician' | 'supervisor' | 'admin', org: string, practitioner?: string): Promise<string>;
  /** Waits until the change events of these resources (`Type/id`) have been evaluated. */
  evaluated(...refs: string[]): Promise<void>;
  /** Findings (DetectedIssues) of a rule, by key. */
  issues(ruleId: string): Promise<DetectedIssue[]>;
  close(): Promise<void>;
}

export const JSON_TYPE = 'application/fhir+json';

export async function createHarness(env: NodeJS.ProcessEnv = {}, options: SupervisionOptions = {}): Promise<Harness> {
  const config = loadSupervisionConfig({ SUPERVISION_TICK: 'PT1H', ...env });
  const db = await createTestDatabase('postgres', supervisionMigrations);
  const redisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
  const prefix = `${process.env.TEST_REDIS_PREFIX ?? 'huimin-test'}-sv-${randomBytes(4).toString('hex')}`;
  const clock = { offset: 0 };
  const supervision = createSupervision(config, { now: () => Date.now() + clock.offset, ...options });
  // The platform's Task write rules (the referral workflow's state machine) hold for the review Tasks too.
  const taskRules = workflowStoreExtensions(loadWorkflowConfig({})).writeInterceptors;
  const server = await createTestServer('postgres', { redisUrl, redisPrefix: prefix, operations: supervision.operations, eventQueues: supervision.eventQueues, writeInterceptors: taskRules }, db);
  const errors: Error[] = [];
  const findings: RaisedFinding[] = [];
  const seen = new Set<string>();
  await supervision.attach(
    { db, repository: server.repository },
    {
      onError: (err) => {
        errors.push(err);
        if (process.env.DEBUG_SUPERVISION) console.log('supervision error', err);
      },
      onFinding: (f) => findings.push(f),
      onEvaluated: (event) => seen.add(`${event.resourceType}/${event.id}/${event.versionId}`),
    },
  );
  supervision.startWorkers({ redisUrl, prefix });
  const tokens = new Map<string, string>();
  const token = async (role: 'facility-system' | 'clinician' | 'supervisor' | 'admin', org: string, practitioner?: string): Promise<string> => {
    const key = `${role} ${org} ${practitioner ?? ''}`;
    if (!tokens.has(key)) {
      tokens.set(key, (await server.tokenFor({ role, organization: org, practitioner: practitioner ?? (role === 'clinician' ? 'Practitioner/test-clinician' : undefined) })).token);
    }
    return tokens.get(key) as string;
  };
  const write = async <T extends Resource>(org: string, resource: T): Promise<T> => {
    const res = await request(server.rawApp)
      .post(`/fhir/${resource.resourceType}`)
      .set('Authorization', `Bearer ${await token('facility-system', org)}`)
      .set('Content-Type', JSON_TYPE)
      .send(resource);
    if (res.status !== 201) {
      throw new Error(`write of ${resource.resourceType} failed: ${res.status} ${JSON.stringify(res.body)}`);
    }
    return res.body as T;
  };
  const evaluated = async (...refs: string[]): Promise<void> => {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const pending = refs.filter((r) => ![...seen].some((s) => s === r || s.startsWith(`${r}/`)));
      if (pending.length === 0) return;
      if (Date.now() > deadline) throw new Error(`Timed out waiting for the evaluation of ${pending.join(', ')}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  const issues = async (ruleId: string): Promise<DetectedIssue[]> => {
    const bundle = (await request(server.app).get(`/fhir/DetectedIssue?code=${encodeURIComponent(`https://huimin.health/fhir/CodeSystem/supervision-rule|${ruleId}`)}&_count=100`).expect(200)).body as Bundle<DetectedIssue>;
    return (bundle.entry ?? []).map((e) => e.resource as DetectedIssue);
  };
  return {
    server,
    db,
    supervision,
    clock,
    errors,
    findings,
    write,
    token,
    evaluated,
    issues,
    close: async () => {
      await supervision.close();
      await server.close();
      await deleteKeysWithPrefix(redisUrl, prefix);
    },
  };
}

export const DAY = 86_400_000;
export const iso = (ms: number): string => new Date(ms).toISOString();
export const ATC = 'http://www.whocc.no/atc';
