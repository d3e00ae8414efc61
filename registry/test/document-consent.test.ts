/**
 * A patient's consent (security's Consent rules) hides one hospital's documents from another: the
 * DocumentReference from finds and reads, its Binary from retrieval (through the Binary's securityContext), and
 * the rendered view; the publishing hospital and hospitals the patient did not name still see them. Only the
 * publisher may replace its document.
 */
import type { Consent, Organization, Patient } from '@medplum/fhirtypes';
import request from 'supertest';
import type { TestServer } from '../../test/server';
import { cdaSample, create, createRegistryServer } from './harness';

let server: TestServer;
let hospitalA: Organization;
let hospitalB: Organization;
let hospitalC: Organization;
let patient: Patient;
const tokens: Record<'a' | 'b' | 'c', string> = { a: '', b: '', c: '' };
let docId: string;
let binaryId: string;

const as = (who: 'a' | 'b' | 'c') => ({
  get: (path: string, accept = 'application/fhir+json') => request(server.rawApp).get(path).set('Authorization', `Bearer ${tokens[who]}`).set('Accept', accept),
  post: (path: string, body: unknown, contentType = 'application/fhir+json') => request(server.rawApp).post(path).set('Authorization', `Bearer ${tokens[who]}`).set('Content-Type', contentType).send(body as object),
});

beforeAll(async () => {
  server = await createRegistryServer();
  hospitalA = await create(server, { resourceType: 'Organization', name: '医院 A', identifier: [{ system: 'urn:oid:2.16.156.10011.1.5', value: 'HM-HOSP-A' }] });
  hospitalB = await create(server, { resourceType: 'Organization', name: '医院 B' });
  hospitalC = await create(server, { resourceType: 'Organization', name: '医院 C' });
  patient = await create(server, { resourceType: 'Patient', identifier: [{ system: 'urn:oid:2.16.156.10011.1.3', value: '340104198001011234' }] });
  for (const [who, org] of [['a', hospitalA], ['b', hospitalB], ['c', hospitalC]] as const) {
    tokens[who] = (await server.tokenFor({ role: 'facility-system', organization: `Organization/${org.id}` })).token;
  }
  const uploaded = await as('a').post('/fhir/Binary', Buffer.from(cdaSample({ 'HM-DOC-0001': 'HM-DOC-C001' })), 'application/hl7-cda+xml');
  expect(uploaded.status).toBe(201);
  binaryId = uploaded.body.id;
  docId = uploaded.body.securityContext.reference.split('/')[1];
  const consent: Consent = {
    resourceType: 'Consent',
    status: 'active',
    scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
    category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
    patient: { reference: `Patient/${patient.id}` },
    policyRule: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'OPTIN' }] },
    provision: { type: 'permit', provision: [{ type: 'deny', actor: [{ role: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'IRCP' }] }, reference: { reference: `Organization/${hospitalB.id}` } }] }] },
  };
  expect((await request(server.app).post('/fhir/Consent').set('Content-Type', 'application/fhir+json').send(consent)).status).toBe(201);
});

afterAll(async () => {
  await server.close();
});

describe('a document hidden from one hospital by the patient\'s consent', () => {
  it('is owned by the hospital that published it', async () => {
    const doc = await as('a').get(`/fhir/DocumentReference/${docId}`);
    expect(doc.status).toBe(200);
    expect(doc.body.meta.security).toContainEqual(expect.objectContaining({ code: `Organization/${hospitalA.id}` }));
  });

  it('is not found, read, retrieved or rendered by the denied hospital', async () => {
    const found = await as('b').get(`/fhir/DocumentReference?patient=Patient/${patient.id}&status=current`);
    expect(found.status).toBe(200);
    expect(found.body.entry ?? []).toHaveLength(0);
    expect((await as('b').get(`/fhir/DocumentReference/${docId}`)).status).toBe(404);
    // Hidden through its securityContext (the DocumentReference): not found, like a resource that does not exist.
    const binary = await as('b').get(`/fhir/Binary/${binaryId}`, 'application/hl7-cda+xml');
    expect(binary.status).toBe(404);
    expect((await as('b').get(`/fhir/Binary/${binaryId}`)).status).toBe(404);
    expect((await as('b').get(`/fhir/Binary?_id=${binaryId}`)).body.entry ?? []).toEqual([]);
    expect((await as('b').get(`/fhir/DocumentReference/${docId}/$render`, 'text/html')).status).toBe(404);
  });

  it('is seen by a hospital the patient did not name, and by its publisher', async () => {
    for (const who of ['a', 'c'] as const) {
      const found = await as(who).get(`/fhir/DocumentReference?patient=Patient/${patient.id}&status=current`);
      expect(found.body.entry.map((e: { resource: { id: string } }) => e.resource.id)).toEqual([docId]);
      const binary = await as(who).get(`/fhir/Binary/${binaryId}`, '*/*').buffer(true);
      expect(binary.status).toBe(200);
      const rendered = await as(who).get(`/fhir/DocumentReference/${docId}/$render`, 'text/html');
      expect(rendered.text).toContain('病历概要');
    }
  });

  it('may be replaced by its publisher only', async () => {
    const replacement = cdaSample({
      'HM-DOC-0001': 'HM-DOC-C002',
      '<component>\n    <structuredBody>': '<relatedDocument typeCode="RPLC"><parentDocument><id root="2.16.156.10011.1.1" extension="HM-DOC-C001"/></parentDocument></relatedDocument>\n  <component>\n    <structuredBody>',
    });
    const byC = await as('c').post('/fhir/Binary', Buffer.from(replacement), 'application/hl7-cda+xml');
    expect(byC.status).toBe(403);
    expect(byC.body.issue[0].diagnostics).toMatch(/only its owner may change or delete it/);
    const byA = await as('a').post('/fhir/Binary', Buffer.from(replacement), 'application/hl7-cda+xml');
    expect(byA.status).toBe(201);
    expect((await as('a').get(`/fhir/DocumentReference/${docId}`)).body.status).toBe('superseded');
  });
});
