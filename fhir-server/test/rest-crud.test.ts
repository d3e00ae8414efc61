import request from 'supertest';
import type { Bundle, OperationOutcome, Patient } from '@medplum/fhirtypes';
import { createTestServer, type TestServer } from '../../test/server';
import type { Backend } from '../../test/databases';

const FHIR_JSON = 'application/fhir+json';

function patient(family = 'Zhang', extra: Partial<Patient> = {}): Patient {
  return { resourceType: 'Patient', name: [{ family, given: ['Wei'] }], gender: 'male', birthDate: '1980-02-03', ...extra };
}

describe.each<Backend>(['postgres', 'pglite'])('FHIR REST interactions on %s', (backend) => {
  let server: TestServer;
  const api = () => request(server.app);

  beforeAll(async () => {
    server = await createTestServer(backend);
  });
  afterAll(async () => {
    await server.close();
  });

  it('creates with a server id, version 1, Location, ETag and Last-Modified', async () => {
    const res = await api().post('/fhir/Patient').set('Content-Type', FHIR_JSON).send(patient());
    expect(res.status).toBe(201);
    expect(res.body.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.body.meta.versionId).toBe('1');
    expect(res.headers.etag).toBe('W/"1"');
    expect(res.headers.location).toBe(`${server.baseUrl}/Patient/${res.body.id}/_history/1`);
    expect(res.headers['last-modified']).toBe(new Date(res.body.meta.lastUpdated).toUTCString());
    expect(res.headers['content-type']).toMatch(/^application\/fhir\+json/);
  });

  it('reads, vreads, and answers 304 to If-None-Match and If-Modified-Since', async () => {
    const created = (await api().post('/fhir/Patient').set('Content-Type', FHIR_JSON).send(patient())).body as Patient;
    const read = await api().get(`/fhir/Patient/${created.id}`);
    expect(read.status).toBe(200);
    expect(read.body).toEqual(created);
    expect(read.headers.etag).toBe('W/"1"');
    expect((await api().get(`/fhir/Patient/${created.id}/_history/1`)).body).toEqual(created);
    expect((await api().get(`/fhir/Patient/${created.id}`).set('If-None-Match', 'W/"1"')).status).toBe(304);
    expect((await api().get(`/fhir/Patient/${created.id}`).set('If-None-Match', 'W/"2"')).status).toBe(200);
    const later = new Date(Date.now() + 60_000).toUTCString();
    expect((await api().get(`/fhir/Patient/${created.id}`).set('If-Modified-Since', later)).status).toBe(304);
    expect((await api().get(`/fhir/Patient/${created.id}/_history/9`)).status).toBe(404);
    expect((await api().get('/fhir/Patient/does-not-exist')).status).toBe(404);
  });

  it('updates with If-Match, refuses a stale version with 412, and keeps every version', async () => {
    const created = (await api().post('/fhir/Patient').set('Content-Type', FHIR_JSON).send(patient())).body as Patient;
    const v2 = await api().put(`/fhir/Patient/${created.id}`).set('Content-Type', FHIR_JSON).set('If-Match', 'W/"1"').send({ ...created, gender: 'female' });
    expect(v2.status).toBe(200);
    expect(v2.body.meta.versionId).toBe('2');
    expect(v2.headers.location).toBe(`${server.baseUrl}/Patient/${created.id}/_history/2`);
    const stale = await api().put(`/fhir/Patient/${created.id}`).set('Content-Type', FHIR_JSON).set('If-Match', 'W/"1"').send(created);
    expect(stale.status).toBe(412);
    expect((stale.body as OperationOutcome).issue?.[0].diagnostics).toContain('does not match the current version');
    const history = (await api().get(`/fhir/Patient/${created.id}/_history`)).body as Bundle;
    expect(history.type).toBe('history');
    expect(history.total).toBe(2);
    expect(history.entry?.map((e) => e.resource?.meta?.versionId)).toEqual(['2', '1']);
    expect(history.entry?.map((e) => e.request?.method)).toEqual(['PUT', 'POST']);
  });

  it('If-Match on an unknown resource answers 412; on a deleted one, matching its deletion, re-creates it', async () => {
    const unknown = await api().put('/fhir/Patient/never-was').set('Content-Type', FHIR_JSON).set('If-Match', 'W/"1"').send(patient('X', { id: 'never-was' }));
    expect(unknown.status).toBe(412);
    const created = (await api().post('/fhir/Patient').set('Content-Type', FHIR_JSON).send(patient())).body as Patient;
    await api().delete(`/fhir/Patient/${created.id}`);
    const revived = await api().put(`/fhir/Patient/${created.id}`).set('Content-Type', FHIR_JSON).set('If-Match', 'W/"2"').send(created);
    expect(revived.status).toBe(201);
    expect(revived.body.meta.versionId).toBe('3');
    const history = (await api().get(`/fhir/Patient/${created.id}/_history`)).body as Bundle;
    expect(history.entry?.map((e) => e.response?.etag)).toEqual(['W/"3"', 'W/"2"', 'W/"1"']);
    expect(history.entry?.[1].request?.method).toBe('DELETE');
  });

  it('update-as-create with a client id answers 201; id mismatch answers 400', async () => {
    const res = await api().put('/fhir/Patient/client-chosen-1').set('Content-Type', FHIR_JSON).send(patient('Li', { id: 'client-chosen-1' }));
    expect(res.status).toBe(201);
    expect(res.body.meta.versionId).toBe('1');
    const mismatch = await api().put('/fhir/Patient/client-chosen-1').set('Content-Type', FHIR_JSON).send(patient('Li', { id: 'other' }));
    expect(mismatch.status).toBe(400);
  });

  it('honours Prefer: return=minimal and return=OperationOutcome', async () => {
    const minimal = await api().post('/fhir/Patient').set('Content-Type', FHIR_JSON).set('Prefer', 'return=minimal').send(patient());
    expect(minimal.status).toBe(201);
    expect(minimal.text).toBe('');
    expect(minimal.headers.location).toBeDefined();
    const oo = await api().post('/fhir/Patient').set('Content-Type', FHIR_JSON).set('Prefer', 'return=OperationOutcome').send(patient());
    expect(oo.body.resourceType).toBe('OperationOutcome');
  });

  it('patches with JSON Patch, honouring If-Match', async () => {
    const created = (await api().post('/fhir/Patient').set('Content-Type', FHIR_JSON).send(patient())).body as Patient;
    const patched = await api()
      .patch(`/fhir/Patient/${created.id}`)
      .set('Content-Type', 'application/json-patch+json')
      .set('If-Match', 'W/"1"')
      .send(JSON.stringify([{ op: 'replace', path: '/gender', value: 'female' }]));
    expect(patched.status).toBe(200);
    expect(patched.body.gender).toBe('female');
    expect(patched.body.meta.versionId).toBe('2');
    const invalid = await api()
      .patch(`/fhir/Patient/${created.id}`)
      .set('Content-Type', 'application/json-patch+json')
      .send(JSON.stringify([{ op: 'replace', path: '/gender', value: 'robot' }]));
    expect(invalid.status).toBe(400);
  });

  it('patches with FHIRPath Patch (a Parameters body)', async () => {
    const created = (await api().post('/fhir/Patient').set('Content-Type', FHIR_JSON).send(patient())).body as Patient;
    const parameters = {
      resourceType: 'Parameters',
      parameter: [
        { name: 'operation', part: [{ name: 'type', valueCode: 'replace' }, { name: 'path', valueString: 'Patient.birthDate' }, { name: 'value', valueDate: '1981-03-04' }] },
        { name: 'operation', part: [{ name: 'type', valueCode: 'add' }, { name: 'path', valueString: 'Patient' }, { name: 'name', valueString: 'active' }, { name: 'value', valueBoolean: true }] },
      ],
    };
    const patched = await api().patch(`/fhir/Patient/${created.id}`).set('Content-Type', FHIR_JSON).send(parameters);
    expect(patched.status).toBe(200);
    expect(patched.body.birthDate).toBe('1981-03-04');
    expect(patched.body.active).toBe(true);
    const bad = await api().patch(`/fhir/Patient/${created.id}`).set('Content-Type', FHIR_JSON).send({
      resourceType: 'Parameters', parameter: [{ name: 'operation', part: [{ name: 'type', valueCode: 'delete' }, { name: 'path', valueString: 'Patient.(' }] }],
    });
    expect(bad.status).toBe(422);
    expect(bad.body.issue[0].diagnostics).toMatch(/^FHIRPath Patch failed/);
  });

  it('deletes softly: 410 on read, history keeps the deletion, a new version revives it', async () => {
    const created = (await api().post('/fhir/Patient').set('Content-Type', FHIR_JSON).send(patient())).body as Patient;
    expect((await api().delete(`/fhir/Patient/${created.id}`)).status).toBe(200);
    expect((await api().get(`/fhir/Patient/${created.id}`)).status).toBe(410);
    const history = (await api().get(`/fhir/Patient/${created.id}/_history`)).body as Bundle;
    expect(history.entry?.[0].request?.method).toBe('DELETE');
    expect(history.entry?.[0].resource).toBeUndefined();
    const revived = await api().put(`/fhir/Patient/${created.id}`).set('Content-Type', FHIR_JSON).send(created);
    expect(revived.status).toBe(201);
    expect(revived.body.meta.versionId).toBe('3');
  });

  it('conditional create, update and delete follow the spec, 412 on several matches', async () => {
    const body = patient('Wang', { identifier: [{ system: 'urn:test:mrn', value: 'C-1' }] });
    const first = await api().post('/fhir/Patient').set('Content-Type', FHIR_JSON).set('If-None-Exist', 'identifier=urn:test:mrn|C-1').send(body);
    expect(first.status).toBe(201);
    const second = await api().post('/fhir/Patient').set('Content-Type', FHIR_JSON).set('If-None-Exist', 'identifier=urn:test:mrn|C-1').send(body);
    expect(second.status).toBe(200);
    expect(second.body.id).toBe(first.body.id);
    const updated = await api().put('/fhir/Patient?identifier=urn:test:mrn|C-1').set('Content-Type', FHIR_JSON).send({ ...body, gender: 'female' });
    expect(updated.status).toBe(200);
    expect(updated.body.id).toBe(first.body.id);
    const createdByUpdate = await api().put('/fhir/Patient?identifier=urn:test:mrn|C-2').set('Content-Type', FHIR_JSON)
      .send(patient('Wang', { identifier: [{ system: 'urn:test:mrn', value: 'C-2' }] }));
    expect(createdByUpdate.status).toBe(201);
    await api().post('/fhir/Patient').set('Content-Type', FHIR_JSON).send(patient('Dup', { identifier: [{ system: 'urn:test:dup', value: 'D' }] }));
    await api().post('/fhir/Patient').set('Content-Type', FHIR_JSON).send(patient('Dup', { identifier: [{ system: 'urn:test:dup', value: 'D' }] }));
    const ambiguous = await api().post('/fhir/Patient').set('Content-Type', FHIR_JSON).set('If-None-Exist', 'identifier=urn:test:dup|D').send(patient());
    expect(ambiguous.status).toBe(412);
    expect((await api().put('/fhir/Patient?identifier=urn:test:dup|D').set('Content-Type', FHIR_JSON).send(patient())).status).toBe(412);
    expect((await api().delete('/fhir/Patient?identifier=urn:test:dup|D')).status).toBe(412);
    expect((await api().delete('/fhir/Patient?identifier=urn:test:mrn|C-2')).status).toBe(200);
    expect((await api().get(`/fhir/Patient/${createdByUpdate.body.id}`)).status).toBe(410);
  });

  it('checks local references on write and refuses to delete a referenced resource', async () => {
    const dangling = await api().post('/fhir/Observation').set('Content-Type', FHIR_JSON).send({
      resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: 'Patient/nope' },
    });
    expect(dangling.status).toBe(422);
    expect(dangling.body.issue[0].diagnostics).toContain('Patient/nope');
    const p = (await api().post('/fhir/Patient').set('Content-Type', FHIR_JSON).send(patient())).body as Patient;
    const obs = await api().post('/fhir/Observation').set('Content-Type', FHIR_JSON).send({
      resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: `Patient/${p.id}` },
    });
    expect(obs.status).toBe(201);
    const refused = await api().delete(`/fhir/Patient/${p.id}`);
    expect(refused.status).toBe(409);
    expect(refused.body.issue[0].diagnostics).toContain(`Observation/${obs.body.id}`);
    expect((await api().delete(`/fhir/Patient/${p.id}?_force=true`)).status).toBe(200);
  });

  it('answers bad input with precise OperationOutcomes', async () => {
    const invalid = await api().post('/fhir/Patient').set('Content-Type', FHIR_JSON).send(patient('X', { gender: 'robot' as Patient['gender'] }));
    expect(invalid.status).toBe(400);
    expect(invalid.body.resourceType).toBe('OperationOutcome');
    expect(JSON.stringify(invalid.body)).toContain('Patient.gender');
    const notJson = await api().post('/fhir/Patient').set('Content-Type', FHIR_JSON).send('{"resourceType": ');
    expect(notJson.status).toBe(400);
    expect(notJson.body.issue[0].diagnostics).toMatch(/not valid JSON/);
    const wrongType = await api().post('/fhir/Patient').set('Content-Type', FHIR_JSON).send({ resourceType: 'Observation' });
    expect(wrongType.status).toBe(400);
    expect((await api().get('/fhir/NotAType/1')).status).toBe(404);
    const xml = await api().get('/fhir/metadata').set('Accept', 'application/fhir+xml');
    expect(xml.status).toBe(406);
    expect(xml.body.issue[0].diagnostics).toMatch(/XML/);
    const deep = await api().post('/fhir/Basic').set('Content-Type', FHIR_JSON).send(`{"resourceType":"Basic","x":${'['.repeat(100)}${']'.repeat(100)}}`);
    expect(deep.status).toBe(400);
    expect(deep.body.issue[0].diagnostics).toMatch(/nests deeper/);
    const badId = await api().get('/fhir/Patient/bad$id');
    expect(badId.status).toBe(400);
  });

  it('$validate gives the write-time verdict without storing', async () => {
    const ok = await api().post('/fhir/Patient/$validate').set('Content-Type', FHIR_JSON).send(patient());
    expect(ok.status).toBe(200);
    expect(ok.body.issue.every((i: { severity: string }) => i.severity === 'information')).toBe(true);
    const bad = await api().post('/fhir/Patient/$validate').set('Content-Type', FHIR_JSON).send({
      resourceType: 'Parameters', parameter: [{ name: 'resource', resource: patient('X', { gender: 'robot' as Patient['gender'] }) }],
    });
    expect(bad.status).toBe(200);
    expect(bad.body.issue.some((i: { severity: string }) => i.severity === 'error')).toBe(true);
    const count = (await api().get('/fhir/Patient?family=X&_summary=count')).body as Bundle;
    expect(count.total).toBe(0);
  });

  it('serves a CapabilityStatement generated from the code', async () => {
    const res = await api().get('/fhir/metadata');
    expect(res.status).toBe(200);
    expect(res.body.fhirVersion).toBe('4.0.1');
    const types = res.body.rest[0].resource.map((r: { type: string }) => r.type);
    expect(types).toContain('Patient');
    expect(types).not.toContain('Bot');
    expect(types).not.toContain('SubscriptionStatus');
    expect(types.length).toBe(146);
    const patientEntry = res.body.rest[0].resource.find((r: { type: string }) => r.type === 'Patient');
    expect(patientEntry.searchParam.map((p: { name: string }) => p.name)).toEqual(expect.arrayContaining(['identifier', 'name', 'birthdate', '_id']));
    expect(patientEntry.operation.map((o: { name: string }) => o.name)).toEqual(['validate', 'everything', 'reindex', 'export', 'consent-notice']);
  });

  it('has health endpoints', async () => {
    expect((await api().get('/healthz')).status).toBe(200);
    const ready = await api().get('/readyz');
    expect(ready.body.checks.database).toBe('ok');
  });
});
