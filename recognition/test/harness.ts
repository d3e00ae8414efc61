/**
 * A whole platform for recognition tests, wired as main.ts wires it: the store with the referral workflow's and
 * this module's operations and event queues, terminology (hospital CSV ConceptMaps), the HL7 adapters on an MLLP
 * port, the subscription workers, and the recognition engine. Its own database and Redis prefix.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import type { DetectedIssue, Organization, Resource } from '@medplum/fhirtypes';
import { adapterMigrations, createAdapters, FACILITY_TAG_CODE, FACILITY_TAG_SYSTEM, hl7Operations, MllpClient, TerminologyTranslator, type Adapters, type OutboundJob } from '../../adapters';
import { ConsentDecisions, FhirRepository, parseSearch, queryRecord } from '../../fhir-server';
import { loadWorkflowConfig, referralMigrations, startWorkflow, workflowStoreExtensions, type Workflow } from '../../referral-workflow';
import { createTerminologyService, HOT_PATH_MAX_AGE_MS, hospitalLabSystem, loadConceptMapCsv, terminologyMigrations, type TerminologyService } from '../../terminology';
import { createTestDatabase } from '../../test/databases';
import { deleteKeysWithPrefix } from '../../test/redis-keys';
import { createTestServer, type TestServer } from '../../test/server';
import { Hl7AdvisoryNotice, installRecognitionContent, recognitionMigrations, recognitionStoreExtensions, startRecognition, type RecognitionEngine } from '..';

export const BUREAU = 'Organization/health-bureau';

export interface Platform {
  server: TestServer;
  adapters: Adapters;
  terminology: TerminologyService;
  engine: RecognitionEngine;
  workflow: Workflow;
  /** Orders checked by the engine (`Type/id` → the advisory raised, or null). */
  checked: Map<string, DetectedIssue | null>;
  /** HL7 outbound jobs the advisories asked for. */
  outbound: OutboundJob[];
  errors: Error[];
  registerFacility(key: string, name: string): Promise<string>;
  loadConceptMap(hospital: string, rows: Array<[string, string, string, string]>): Promise<void>;
  send(...segments: string[]): Promise<string>;
  search<T extends Resource>(resourceType: string, query: string): Promise<T[]>;
  close(): Promise<void>;
}

export async function startPlatform(): Promise<Platform> {
  const db = await createTestDatabase('postgres', [...terminologyMigrations, ...adapterMigrations, ...referralMigrations, ...recognitionMigrations]);
  const redisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
  const prefix = `${process.env.TEST_REDIS_PREFIX ?? 'huimin-test'}-${randomBytes(4).toString('hex')}`;
  const baseUrl = 'http://127.0.0.1:8080/fhir';
  const readRepo = new FhirRepository(db, { enforceReferentialIntegrity: true, baseUrl });
  const terminology = createTerminologyService(db, readRepo);
  const workflowRules = workflowStoreExtensions(loadWorkflowConfig({ SUBSCRIPTION_DELIVERY_BACKOFF_MS: '50' }));
  const recognition = recognitionStoreExtensions({ db, repository: readRepo, terminology, consent: new ConsentDecisions(db), authorities: [BUREAU] });
  const server = await createTestServer(
    'postgres',
    {
      redisUrl,
      redisPrefix: prefix,
      operations: [...hl7Operations, ...workflowRules.operations, ...recognition.operations],
      writeInterceptors: workflowRules.writeInterceptors,
      eventQueues: [...workflowRules.eventQueues, ...recognition.eventQueues],
    },
    db,
  );
  await installRecognitionContent(server.repository);
  const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const adapters = createAdapters({ repo: server.repository, logger, translator: new TerminologyTranslator(terminology, HOT_PATH_MAX_AGE_MS, hospitalLabSystem) });
  const port = await adapters.listen({ port: 0, host: '127.0.0.1', maxMessageBytes: 1024 * 1024, idleTimeoutMs: 30_000 });
  const errors: Error[] = [];
  const onError = (err: Error): void => {
    errors.push(err);
    if (process.env.DEBUG_RECOGNITION) console.log('recognition error', err);
  };
  const workflow = startWorkflow({ repository: server.repository, db, queues: { redisUrl, prefix }, config: loadWorkflowConfig({ SUBSCRIPTION_DELIVERY_BACKOFF_MS: '50' }), baseUrl, onError });
  const outbound: OutboundJob[] = [];
  const checked = new Map<string, DetectedIssue | null>();
  const engine = startRecognition({
    repository: server.repository,
    db,
    finder: recognition.finder,
    queues: { redisUrl, prefix },
    // The adapters' outbound queue, recording what it is asked to send (its delivery is the adapters' own test).
    notifier: new Hl7AdvisoryNotice({ enqueue: async (job) => (outbound.push(job), job.controlId ?? '') }, server.repository),
    onError,
    onChecked: (order, issue) => checked.set(order, issue ?? null),
  });
  const dir = mkdtempSync(path.join(os.tmpdir(), 'huimin-recognition-'));
  const client = await new MllpClient('127.0.0.1', port).connect();
  return {
    server,
    adapters,
    terminology,
    engine,
    workflow,
    checked,
    outbound,
    errors,
    async registerFacility(key, name) {
      const org: Organization = {
        resourceType: 'Organization',
        id: key,
        meta: { tag: [{ system: FACILITY_TAG_SYSTEM, code: FACILITY_TAG_CODE }] },
        identifier: [{ system: 'urn:huimin:facility', value: key }],
        name,
        active: true,
      };
      await server.repository.write((s) => s.update('Organization', key, org));
      adapters.facilities.clear();
      return `Organization/${key}`;
    },
    async loadConceptMap(hospital, rows) {
      const file = path.join(dir, `${hospital}.csv`);
      writeFileSync(file, ['本地编码,本地名称,LOINC编码,LOINC名称,等价关系,备注', ...rows.map((r) => `${r.join(',')},equivalent,`)].join('\n') + '\n');
      await loadConceptMapCsv(server.repository, terminology, { file, hospital });
    },
    async send(...segments) {
      const ack = (await client.send(Buffer.from(segments.join('\r') + '\r', 'utf8'))).toString('utf8');
      const msa = ack.split('\r').find((l) => l.startsWith('MSA')) ?? '';
      return msa.split('|')[1] ?? '';
    },
    async search<T extends Resource>(resourceType: string, query: string) {
      const page = await server.repository.search(parseSearch(resourceType, queryRecord(new URLSearchParams(query))), { count: 1000, offset: 0 });
      return page.rows.map((r) => JSON.parse(r.content) as T);
    },
    async close() {
      client.close();
      await engine.close();
      await workflow.close();
      await adapters.stop();
      await server.close();
      await deleteKeysWithPrefix(redisUrl, prefix);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Polls until `check` gives a value (not undefined/false) or the time is up. */
export async function waitFor<T>(check: () => Promise<T | undefined | false> | T | undefined | false, what = 'condition', timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** An HL7 timestamp (China Standard Time) `days` before now. */
export function hl7Time(daysAgo: number): string {
  const t = new Date(Date.now() - daysAgo * 24 * 3600 * 1000 + 8 * 3600 * 1000);
  return `${t.toISOString().replace(/[-:T]/g, '').slice(0, 14)}+0800`;
}
