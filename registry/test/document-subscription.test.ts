/**
 * Document subscription (WS/T 790.14) through FHIR R4 Subscriptions (referral-workflow's delivery): a hospital
 * subscribes to new documents for one patient, for its own patients, or of one type, and is notified when a CDA
 * is published, with the DocumentReference as payload.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DocumentReference, Organization, Patient, Subscription } from '@medplum/fhirtypes';
import request from 'supertest';
import { createTestDatabase } from '../../test/databases';
import { deleteKeysWithPrefix } from '../../test/redis-keys';
import { createTestServer, type TestServer } from '../../test/server';
import { loadWorkflowConfig, referralMigrations, startWorkflow, workflowStoreExtensions, type Workflow } from '../../referral-workflow';
import { DOCUMENT_TYPE_SYSTEM, installRegistryContent, registryMigrations, registryStoreExtensions } from '..';
import { cdaSample, create } from './harness';

interface Delivery {
  method: string;
  url: string;
  body: string;
}

let server: TestServer;
let workflow: Workflow;
let receiver: Server;
let hookUrl: string;
const deliveries: Delivery[] = [];
const redisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `${process.env.TEST_REDIS_PREFIX ?? 'huimin-test'}-${randomBytes(4).toString('hex')}`;
let hospital: Organization;
let patient: Patient;

async function waitFor<T>(check: () => T | undefined | false, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function subscribe(criteria: string, path: string): Promise<Subscription> {
  const created = await create<Subscription>(server, { resourceType: 'Subscription', status: 'requested', reason: 'WS/T 790.14 document subscription', criteria, channel: { type: 'rest-hook', endpoint: `${hookUrl}/${path}`, payload: 'application/fhir+json' } });
  for (let i = 0; i < 400; i++) {
    const s = (await request(server.app).get(`/fhir/Subscription/${created.id}`)).body as Subscription;
    if (s.status !== 'requested') {
      expect(s.status).toBe('active');
      return s;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('subscription not activated');
}

const deliveredTo = (path: string): DocumentReference[] => deliveries.filter((d) => d.url.startsWith(`/hook/${path}/`)).map((d) => JSON.parse(d.body) as DocumentReference);

beforeAll(async () => {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      deliveries.push({ method: req.method ?? '', url: req.url ?? '', body: Buffer.concat(chunks).toString('utf8') });
      res.end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
  const db = await createTestDatabase('postgres', [...referralMigrations, ...registryMigrations]);
  const config = loadWorkflowConfig({ SUBSCRIPTION_DELIVERY_BACKOFF_MS: '50' });
  const workflowRules = workflowStoreExtensions(config);
  const registry = registryStoreExtensions(db, { documentMaxBytes: 5 * 1024 * 1024 });
  server = await createTestServer(
    'postgres',
    { redisUrl, redisPrefix: prefix, eventQueues: workflowRules.eventQueues, writeInterceptors: [...workflowRules.writeInterceptors, ...registry.writeInterceptors], operations: [...workflowRules.operations, ...registry.operations], binaryStore: registry.binaryStore },
    db,
  );
  await installRegistryContent(server.repository);
  workflow = startWorkflow({ repository: server.repository, db, queues: { redisUrl, prefix }, config, baseUrl: server.baseUrl });
  hospital = await create(server, { resourceType: 'Organization', name: '医院 A', identifier: [{ system: 'urn:oid:2.16.156.10011.1.5', value: 'HM-HOSP-A' }] });
  patient = await create(server, { resourceType: 'Patient', managingOrganization: { reference: `Organization/${hospital.id}` }, identifier: [{ system: 'urn:oid:2.16.156.10011.1.3', value: '340104198001011234' }] });
});

afterAll(async () => {
  await workflow.close();
  await server.close();
  await deleteKeysWithPrefix(redisUrl, prefix);
  receiver.closeAllConnections();
  await new Promise((resolve) => receiver.close(resolve));
});

describe('document subscription', () => {
  it('notifies subscribers by patient, by their own patients and by document type when a CDA is published', async () => {
    await subscribe(`DocumentReference?patient=Patient/${patient.id}&status=current`, 'by-patient');
    await subscribe(`DocumentReference?patient.organization=Organization/${hospital.id}&status=current`, 'our-patients');
    await subscribe(`DocumentReference?type=${DOCUMENT_TYPE_SYSTEM}|C0002`, 'outpatient-records');
    const published = await request(server.app).post('/fhir/Binary').set('Content-Type', 'application/hl7-cda+xml').send(Buffer.from(cdaSample()));
    expect(published.status).toBe(201);
    const docId = published.body.securityContext.reference.split('/')[1];
    const [byPatient] = await waitFor(() => deliveredTo('by-patient').length > 0 && deliveredTo('by-patient'), 'the by-patient notification');
    const [ours] = await waitFor(() => deliveredTo('our-patients').length > 0 && deliveredTo('our-patients'), 'the our-patients notification');
    for (const doc of [byPatient, ours]) {
      expect(doc).toMatchObject({ resourceType: 'DocumentReference', id: docId, subject: { reference: `Patient/${patient.id}` }, type: { coding: [{ code: 'C0001' }] } });
    }
    expect(deliveries.find((d) => d.url.startsWith('/hook/by-patient/'))?.method).toBe('PUT');
    // A C0001 document is not what the C0002 subscriber asked for.
    await new Promise((r) => setTimeout(r, 500));
    expect(deliveredTo('outpatient-records')).toHaveLength(0);
  });

  it('notifies the replacement, not the superseded document', async () => {
    const before = deliveredTo('by-patient').length;
    const replacement = cdaSample({
      'HM-DOC-0001': 'HM-DOC-0002',
      'code="C0001"': 'code="C0002"',
      '<title>病历概要</title>': '<title>门(急)诊病历</title>',
      '<component>\n    <structuredBody>': '<relatedDocument typeCode="RPLC"><parentDocument><id root="2.16.156.10011.1.1" extension="HM-DOC-0001"/></parentDocument></relatedDocument>\n  <component>\n    <structuredBody>',
    });
    const published = await request(server.app).post('/fhir/Binary').set('Content-Type', 'application/hl7-cda+xml').send(Buffer.from(replacement));
    expect(published.status).toBe(201);
    const [outpatient] = await waitFor(() => deliveredTo('outpatient-records').length > 0 && deliveredTo('outpatient-records'), 'the C0002 notification');
    expect(outpatient.relatesTo?.[0].code).toBe('replaces');
    await waitFor(() => deliveredTo('by-patient').length > before, 'the replacement notification');
    await new Promise((r) => setTimeout(r, 500));
    const byPatient = deliveredTo('by-patient').slice(before);
    expect(byPatient.map((d) => d.status)).toEqual(['current']);
  });
});
