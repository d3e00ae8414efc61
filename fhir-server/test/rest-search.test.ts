import request from 'supertest';
import type { Bundle, BundleEntry } from '@medplum/fhirtypes';
import { createTestServer, type TestServer } from '../../test/server';
import type { Backend } from '../../test/databases';

const FHIR_JSON = 'application/fhir+json';
const ids = (b: Bundle, mode = 'match') => (b.entry ?? []).filter((e) => e.search?.mode === mode).map((e) => e.resource?.id);

describe.each<Backend>(['postgres', 'pglite'])('search, history and compartments over REST on %s', (backend) => {
  let server: TestServer;
  let patientId: string;
  let otherId: string;
  let encounterId: string;
  const api = () => request(server.app);
  const get = async (url: string) => {
    const res = await api().get(url);
    expect(res.status).toBe(200);
    return res.body as Bundle;
  };

  beforeAll(async () => {
    server = await createTestServer(backend);
    const obs = (code: string, date: string, value: number): BundleEntry => ({
      resource: {
        resourceType: 'Observation', status: 'final',
        code: { coding: [{ system: 'http://loinc.org', code }] },
        subject: { reference: 'urn:uuid:aaaaaaaa-0000-4000-8000-000000000001' },
        encounter: { reference: 'urn:uuid:aaaaaaaa-0000-4000-8000-000000000002' },
        effectiveDateTime: date, valueQuantity: { value, system: 'http://unitsofmeasure.org', code: 'mmol/L' },
      },
      request: { method: 'POST', url: 'Observation' },
    });
    const res = await api().post('/fhir').set('Content-Type', FHIR_JSON).send({
      resourceType: 'Bundle', type: 'transaction', entry: [
        { fullUrl: 'urn:uuid:aaaaaaaa-0000-4000-8000-000000000001', resource: { resourceType: 'Patient', name: [{ family: '张', given: ['伟'] }], birthDate: '1970-05-06', identifier: [{ system: 'urn:test:id', value: 'S-1' }] }, request: { method: 'POST', url: 'Patient' } },
        { fullUrl: 'urn:uuid:aaaaaaaa-0000-4000-8000-000000000002', resource: { resourceType: 'Encounter', status: 'finished', class: { code: 'AMB' }, subject: { reference: 'urn:uuid:aaaaaaaa-0000-4000-8000-000000000001' } }, request: { method: 'POST', url: 'Encounter' } },
        obs('2345-7', '2024-03-01T08:00:00Z', 5.1),
        obs('2345-7', '2025-03-01T08:00:00Z', 6.3),
        obs('718-7', '2025-04-01T08:00:00Z', 140),
        { resource: { resourceType: 'Patient', name: [{ family: 'Müller' }], birthDate: '1990-01-01' }, request: { method: 'POST', url: 'Patient' } },
      ],
    });
    expect(res.status).toBe(200);
    const entries = (res.body as Bundle).entry ?? [];
    patientId = entries[0].resource?.id as string;
    encounterId = entries[1].resource?.id as string;
    otherId = entries[5].resource?.id as string;
  });
  afterAll(async () => {
    await server.close();
  });

  it('answers the common parameter types, with search.mode and links', async () => {
    const byName = await get('/fhir/Patient?family=张');
    expect(ids(byName)).toEqual([patientId]);
    expect(byName.type).toBe('searchset');
    expect(byName.link?.find((l) => l.relation === 'self')?.url).toContain('/fhir/Patient?');
    expect(ids(await get('/fhir/Patient?family=muller'))).toEqual([otherId]);
    expect(ids(await get('/fhir/Patient?identifier=urn:test:id|S-1'))).toEqual([patientId]);
    expect(ids(await get('/fhir/Patient?birthdate=lt1980'))).toEqual([patientId]);
    expect(ids(await get(`/fhir/Patient?_id=${otherId}`))).toEqual([otherId]);
    expect((await get(`/fhir/Observation?subject=Patient/${patientId}&code=http://loinc.org|2345-7`)).entry).toHaveLength(2);
    expect((await get(`/fhir/Observation?patient=${patientId}&date=ge2025-01-01`)).entry).toHaveLength(2);
    expect((await get('/fhir/Observation?value-quantity=lt6|http://unitsofmeasure.org|mmol/L')).entry).toHaveLength(1);
    expect((await get('/fhir/Patient?_lastUpdated=gt2000-01-01')).total).toBe(2);
  });

  it('pages with _count and next/previous links, bounding _count', async () => {
    const first = await get('/fhir/Observation?_count=2');
    expect(first.entry).toHaveLength(2);
    const next = first.link?.find((l) => l.relation === 'next')?.url as string;
    expect(next).toContain('_cursor=');
    expect(next).not.toContain('_offset');
    const second = await get(next.replace(server.baseUrl, '/fhir'));
    expect(second.entry).toHaveLength(1);
    expect(second.link?.find((l) => l.relation === 'first')?.url).not.toContain('_cursor');
    expect(second.link?.find((l) => l.relation === 'next')).toBeUndefined();
    const all = new Set([...ids(first), ...ids(second)]);
    expect(all.size).toBe(3);
    expect((await get('/fhir/Observation?_total=accurate&_count=1')).total).toBe(3);
    expect((await api().get('/fhir/Observation?_count=abc')).status).toBe(400);
  });

  it('includes and reverse-includes without duplicates', async () => {
    const rev = await get(`/fhir/Encounter?patient=${patientId}&_revinclude=Observation:encounter`);
    expect(ids(rev)).toEqual([encounterId]);
    expect(ids(rev, 'include')).toHaveLength(3);
    const inc = await get(`/fhir/Observation?patient=${patientId}&_include=Observation:subject&_include=Observation:patient`);
    expect(ids(inc)).toHaveLength(3);
    expect(ids(inc, 'include')).toEqual([patientId]);
    expect((await api().get('/fhir/Observation?_include=Observation:status')).status).toBe(400);
  });

  it('searches a patient compartment and answers $everything', async () => {
    expect((await get(`/fhir/Patient/${patientId}/Observation`)).entry).toHaveLength(3);
    expect((await get(`/fhir/Patient/${patientId}/Observation?code=718-7`)).entry).toHaveLength(1);
    expect((await get(`/fhir/Patient/${otherId}/Observation`)).entry ?? []).toHaveLength(0);
    const everything = await get(`/fhir/Patient/${patientId}/$everything`);
    expect(everything.entry?.[0].resource?.resourceType).toBe('Patient');
    expect(everything.entry?.map((e) => e.resource?.resourceType).sort()).toEqual(['Encounter', 'Observation', 'Observation', 'Observation', 'Patient']);
    expect((await get(`/fhir/Patient/${patientId}/$everything?_type=Encounter`)).entry).toHaveLength(1);
    const paged = await get(`/fhir/Patient/${patientId}/$everything?_count=2`);
    expect(paged.entry).toHaveLength(2);
    expect(paged.link?.find((l) => l.relation === 'next')).toBeDefined();
    const future = new Date(Date.now() + 3_600_000).toISOString();
    expect((await get(`/fhir/Patient/${patientId}/$everything?_since=${encodeURIComponent(future)}`)).entry ?? []).toHaveLength(0);
    expect((await api().get('/fhir/Patient/nobody/$everything')).status).toBe(404);
  });

  it('answers type and system history with _since, _at and paging', async () => {
    const before = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 5));
    const p = (await api().put(`/fhir/Patient/${otherId}`).set('Content-Type', FHIR_JSON).send({ resourceType: 'Patient', id: otherId, name: [{ family: 'Müller-2' }] })).body;
    expect(p.meta.versionId).toBe('2');
    const since = await get(`/fhir/Patient/_history?_since=${encodeURIComponent(before)}`);
    expect(since.entry?.map((e) => e.resource?.id)).toEqual([otherId]);
    const at = await get(`/fhir/Patient/${otherId}/_history?_at=${encodeURIComponent(before)}`);
    expect(at.entry?.map((e) => e.resource?.meta?.versionId)).toEqual(['1']);
    const system = await get('/fhir/_history?_count=2');
    expect(system.entry).toHaveLength(2);
    expect(system.total).toBeGreaterThanOrEqual(7);
    expect(system.link?.find((l) => l.relation === 'next')).toBeDefined();
    expect((await api().get('/fhir/_history?_since=yesterday')).status).toBe(400);
  });
});
