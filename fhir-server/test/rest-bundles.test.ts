import request from 'supertest';
import type { Bundle, BundleEntry, Observation, Patient } from '@medplum/fhirtypes';
import { createTestServer, type TestServer } from '../../test/server';
import type { Backend } from '../../test/databases';

const FHIR_JSON = 'application/fhir+json';

function post(entries: BundleEntry[], type: 'transaction' | 'batch' = 'transaction'): Bundle {
  return { resourceType: 'Bundle', type, entry: entries };
}

describe.each<Backend>(['postgres', 'pglite'])('batch and transaction bundles on %s', (backend) => {
  let server: TestServer;
  const api = () => request(server.app);
  const send = (bundle: Bundle, prefer?: string) => {
    const r = api().post('/fhir').set('Content-Type', FHIR_JSON);
    return prefer ? r.set('Prefer', prefer).send(bundle) : r.send(bundle);
  };

  beforeAll(async () => {
    server = await createTestServer(backend);
  });
  afterAll(async () => {
    await server.close();
  });

  it('resolves urn:uuid fullUrls and rewrites every reference to them', async () => {
    const res = await send(post([
      { fullUrl: 'urn:uuid:11111111-1111-4111-8111-111111111111', resource: { resourceType: 'Patient', name: [{ family: 'Chen' }] }, request: { method: 'POST', url: 'Patient' } },
      {
        fullUrl: 'urn:uuid:22222222-2222-4222-8222-222222222222',
        resource: { resourceType: 'Observation', status: 'final', code: { text: 'glucose' }, subject: { reference: 'urn:uuid:11111111-1111-4111-8111-111111111111' } },
        request: { method: 'POST', url: 'Observation' },
      },
    ]));
    expect(res.status).toBe(200);
    const bundle = res.body as Bundle;
    expect(bundle.type).toBe('transaction-response');
    expect(bundle.entry?.map((e) => e.response?.status)).toEqual(['201 Created', '201 Created']);
    const patient = bundle.entry?.[0].resource as Patient;
    const obs = bundle.entry?.[1].resource as Observation;
    expect(obs.subject?.reference).toBe(`Patient/${patient.id}`);
    expect(bundle.entry?.[0].response?.location).toBe(`${server.baseUrl}/Patient/${patient.id}/_history/1`);
    expect((await api().get(`/fhir/Observation/${obs.id}`)).body.subject.reference).toBe(`Patient/${patient.id}`);
  });

  it('processes DELETE, POST, PUT, GET in that order, whatever the entry order, and answers in entry order', async () => {
    const old = (await api().post('/fhir/Patient').set('Content-Type', FHIR_JSON).send({ resourceType: 'Patient', name: [{ family: 'Old' }] })).body as Patient;
    const res = await send(post([
      { request: { method: 'GET', url: 'Patient?family=Zhou' } },
      { resource: { resourceType: 'Patient', id: 'order-put', name: [{ family: 'Zhou' }] }, request: { method: 'PUT', url: 'Patient/order-put' } },
      { resource: { resourceType: 'Patient', name: [{ family: 'Zhou' }] }, request: { method: 'POST', url: 'Patient' } },
      { request: { method: 'DELETE', url: `Patient/${old.id}` } },
    ]));
    expect(res.status).toBe(200);
    const entries = (res.body as Bundle).entry ?? [];
    expect(entries.map((e) => e.response?.status)).toEqual(['200 OK', '201 Created', '201 Created', '200 OK']);
    // The GET ran last, so it sees both Zhou patients written by this transaction.
    expect(((entries[0].resource as Bundle).entry ?? []).length).toBe(2);
    expect((await api().get(`/fhir/Patient/${old.id}`)).status).toBe(410);
  });

  it('is all or nothing: a failing entry leaves nothing behind and is named in the OperationOutcome', async () => {
    const res = await send(post([
      { resource: { resourceType: 'Patient', name: [{ family: 'Atomic' }] }, request: { method: 'POST', url: 'Patient' } },
      { resource: { resourceType: 'Patient', gender: 'robot' } as unknown as Patient, request: { method: 'POST', url: 'Patient' } },
    ]));
    expect(res.status).toBe(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(res.body.issue[0].diagnostics).toMatch(/^Bundle\.entry\[1\]/);
    const search = (await api().get('/fhir/Patient?family=Atomic')).body as Bundle;
    expect(search.entry ?? []).toHaveLength(0);
  });

  it('resolves conditional references and honours ifNoneExist and ifMatch', async () => {
    await api().post('/fhir/Organization').set('Content-Type', FHIR_JSON).send({ resourceType: 'Organization', identifier: [{ system: 'urn:test:org', value: 'H1' }], name: 'Hospital 1' });
    const entries: BundleEntry[] = [
      {
        fullUrl: 'urn:uuid:33333333-3333-4333-8333-333333333333',
        resource: { resourceType: 'Patient', identifier: [{ system: 'urn:test:mrn', value: 'T-1' }], managingOrganization: { reference: 'Organization?identifier=urn:test:org|H1' } },
        request: { method: 'POST', url: 'Patient', ifNoneExist: 'identifier=urn:test:mrn|T-1' },
      },
      {
        resource: { resourceType: 'Encounter', status: 'finished', class: { code: 'AMB' }, subject: { reference: 'urn:uuid:33333333-3333-4333-8333-333333333333' } },
        request: { method: 'POST', url: 'Encounter' },
      },
    ];
    const first = await send(post(entries));
    expect(first.status).toBe(200);
    const patient = (first.body as Bundle).entry?.[0].resource as Patient;
    expect(patient.managingOrganization?.reference).toMatch(/^Organization\/[0-9a-f-]{36}$/);
    // Again: the patient exists, so the second transaction links the new Encounter to it rather than creating one.
    const second = await send(post(entries));
    expect(second.status).toBe(200);
    expect((second.body as Bundle).entry?.[0].response?.status).toBe('200 OK');
    expect(((second.body as Bundle).entry?.[1].resource as { subject: { reference: string } }).subject.reference).toBe(`Patient/${patient.id}`);
    const stale = await send(post([{ resource: { ...patient }, request: { method: 'PUT', url: `Patient/${patient.id}`, ifMatch: 'W/"7"' } }]));
    expect(stale.status).toBe(412);
    const missing = await send(post([{ resource: { resourceType: 'Patient', managingOrganization: { reference: 'Organization?identifier=urn:test:org|NONE' } }, request: { method: 'POST', url: 'Patient' } }]));
    expect(missing.status).toBe(412);
    expect(missing.body.issue[0].diagnostics).toContain('matched no resource');
  });

  it('applies a JSON Patch carried as a Binary', async () => {
    const p = (await api().post('/fhir/Patient').set('Content-Type', FHIR_JSON).send({ resourceType: 'Patient', gender: 'male' })).body as Patient;
    const data = Buffer.from(JSON.stringify([{ op: 'replace', path: '/gender', value: 'female' }])).toString('base64');
    const res = await send(post([{ resource: { resourceType: 'Binary', contentType: 'application/json-patch+json', data }, request: { method: 'PATCH', url: `Patient/${p.id}` } }]));
    expect(res.status).toBe(200);
    expect(((res.body as Bundle).entry?.[0].resource as Patient).gender).toBe('female');
  });

  it('runs batch entries independently, each with its own status', async () => {
    const res = await send(post([
      { resource: { resourceType: 'Patient', name: [{ family: 'BatchOk' }] }, request: { method: 'POST', url: 'Patient' } },
      { resource: { resourceType: 'Patient', gender: 'robot' } as unknown as Patient, request: { method: 'POST', url: 'Patient' } },
      { request: { method: 'GET', url: 'Patient/does-not-exist' } },
    ], 'batch'));
    expect(res.status).toBe(200);
    const entries = (res.body as Bundle).entry ?? [];
    expect((res.body as Bundle).type).toBe('batch-response');
    expect(entries.map((e) => e.response?.status)).toEqual(['201 Created', '400', '404']);
    expect(entries[1].response?.outcome?.resourceType).toBe('OperationOutcome');
    expect(((await api().get('/fhir/Patient?family=BatchOk')).body as Bundle).entry).toHaveLength(1);
  });

  it('refuses what is not a batch or transaction', async () => {
    const res = await send({ resourceType: 'Bundle', type: 'collection' });
    expect(res.status).toBe(400);
    expect(res.body.issue[0].diagnostics).toContain('batch');
  });
});
