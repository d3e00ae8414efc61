import request from 'supertest';
import type { Bundle, Patient } from '@medplum/fhirtypes';
import { createTestServer, type TestServer } from '../../test/server';
import type { Backend } from '../../test/databases';

const FHIR_JSON = 'application/fhir+json';
const N = 20;

describe.each<Backend>(['postgres', 'pglite'])('writes under concurrency on %s', (backend) => {
  let server: TestServer;
  const api = () => request(server.app);

  beforeAll(async () => {
    server = await createTestServer(backend);
  });
  afterAll(async () => {
    await server.close();
  });

  it(`${N} simultaneous conditional creates with one identifier leave one resource`, async () => {
    const body: Patient = { resourceType: 'Patient', identifier: [{ system: 'urn:test:race', value: 'R-1' }] };
    const results = await Promise.all(
      Array.from({ length: N }, () => api().post('/fhir/Patient').set('Content-Type', FHIR_JSON).set('If-None-Exist', 'identifier=urn:test:race|R-1').send(body)),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.filter((s) => s === 200)).toHaveLength(N - 1);
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
    const found = (await api().get('/fhir/Patient?identifier=urn:test:race|R-1')).body as Bundle;
    expect(found.entry).toHaveLength(1);
  });

  it(`${N} simultaneous conditional updates with one identifier leave one resource`, async () => {
    const body: Patient = { resourceType: 'Patient', identifier: [{ system: 'urn:test:race', value: 'R-2' }] };
    const results = await Promise.all(
      Array.from({ length: N }, () => api().put('/fhir/Patient?identifier=urn:test:race|R-2').set('Content-Type', FHIR_JSON).send(body)),
    );
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    expect(results.filter((r) => r.status === 200)).toHaveLength(N - 1);
    const found = (await api().get('/fhir/Patient?identifier=urn:test:race|R-2')).body as Bundle;
    expect(found.entry).toHaveLength(1);
    expect(found.entry?.[0].resource?.meta?.versionId).toBe(String(N));
  });

  it(`${N} simultaneous updates with the same If-Match give one success and ${N - 1} 412s`, async () => {
    const created = (await api().post('/fhir/Patient').set('Content-Type', FHIR_JSON).send({ resourceType: 'Patient' })).body as Patient;
    const results = await Promise.all(
      Array.from({ length: N }, (_, i) =>
        api().put(`/fhir/Patient/${created.id}`).set('Content-Type', FHIR_JSON).set('If-Match', 'W/"1"')
          .send({ ...created, name: [{ family: `Writer${i}` }] }),
      ),
    );
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
    expect(results.filter((r) => r.status === 412)).toHaveLength(N - 1);
    expect((await api().get(`/fhir/Patient/${created.id}`)).body.meta.versionId).toBe('2');
  });

  it(`${N} simultaneous unconditional updates lose none: every one becomes a version`, async () => {
    const created = (await api().post('/fhir/Patient').set('Content-Type', FHIR_JSON).send({ resourceType: 'Patient' })).body as Patient;
    const results = await Promise.all(
      Array.from({ length: N }, (_, i) =>
        api().put(`/fhir/Patient/${created.id}`).set('Content-Type', FHIR_JSON).send({ ...created, name: [{ family: `Writer${i}` }] }),
      ),
    );
    expect(results.every((r) => r.status === 200)).toBe(true);
    const versions = results.map((r) => Number(r.body.meta.versionId)).sort((a, b) => a - b);
    expect(versions).toEqual(Array.from({ length: N }, (_, i) => i + 2));
    const history = (await api().get(`/fhir/Patient/${created.id}/_history?_count=100`)).body as Bundle;
    expect(history.entry).toHaveLength(N + 1);
    const families = new Set(history.entry?.map((e) => (e.resource as Patient).name?.[0]?.family).filter(Boolean));
    expect(families.size).toBe(N);
  });

  it(`${N} simultaneous update-as-creates of one new id give one 201 and versions 1..${N}`, async () => {
    const results = await Promise.all(
      Array.from({ length: N }, () =>
        api().put('/fhir/Patient/race-create').set('Content-Type', FHIR_JSON).send({ resourceType: 'Patient', id: 'race-create' }),
      ),
    );
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    expect(results.filter((r) => r.status === 200)).toHaveLength(N - 1);
    expect((await api().get('/fhir/Patient/race-create')).body.meta.versionId).toBe(String(N));
  });
});
