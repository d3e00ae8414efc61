/**
 * The store's linked-patient seam (createFhirServer's `patientLinkParameter`): a Patient reference in a search and
 * `$everything` also cover the patients named by that parameter's rows of the referenced Patient (an MPI's golden
 * record and its sources). Here the R4 `link` parameter plays that part; without the option nothing is expanded.
 */
import type { Bundle } from '@medplum/fhirtypes';
import request from 'supertest';
import type { Backend } from '../../test/databases';
import { createTestServer, type TestServer } from '../../test/server';

const FHIR_JSON = 'application/fhir+json';
const ids = (b: Bundle): string[] => (b.entry ?? []).filter((e) => e.search?.mode !== 'outcome').map((e) => `${e.resource?.resourceType}/${e.resource?.id}`).sort();

describe.each<Backend>(['postgres', 'pglite'])('linked patients on %s', (backend) => {
  let expanding: TestServer;
  let plain: TestServer;

  async function seed(server: TestServer): Promise<void> {
    const put = (path: string, body: object) => request(server.app).put(`/fhir/${path}`).set('Content-Type', FHIR_JSON).send(body).expect(201);
    await put('Patient/s1', { resourceType: 'Patient', id: 's1' });
    await put('Patient/s2', { resourceType: 'Patient', id: 's2' });
    await put('Patient/g', { resourceType: 'Patient', id: 'g', link: [{ other: { reference: 'Patient/s1' }, type: 'seealso' }, { other: { reference: 'Patient/s2' }, type: 'seealso' }] });
    for (const [id, patient, code] of [['o1', 's1', 'a'], ['o2', 's2', 'b'], ['o3', 'g', 'a'], ['o4', 'other', 'a']]) {
      if (patient === 'other') await put('Patient/other', { resourceType: 'Patient', id: 'other' });
      await put(`Observation/${id}`, { resourceType: 'Observation', id, status: 'final', code: { coding: [{ system: 'urn:x', code }] }, subject: { reference: `Patient/${patient}` } });
    }
  }

  beforeAll(async () => {
    expanding = await createTestServer(backend, { patientLinkParameter: 'link' });
    plain = await createTestServer(backend);
    await seed(expanding);
    await seed(plain);
    // Two servers on PGlite: slow to start on a loaded machine.
  }, 180_000);
  afterAll(async () => {
    await expanding?.close();
    await plain?.close();
  });

  it('expands patient=, subject= and subject:Patient= to the linked patients, with totals', async () => {
    for (const query of ['patient=g', 'subject=Patient/g', 'subject:Patient=g', 'patient=Patient/g&_total=accurate', 'patient=g,other']) {
      const res = await request(expanding.app).get(`/fhir/Observation?${query}`);
      expect([query, ids(res.body)]).toEqual([query, ['Observation/o1', 'Observation/o2', 'Observation/o3', ...(query.includes('other') ? ['Observation/o4'] : [])]]);
      if (query.includes('_total')) expect(res.body.total).toBe(3);
    }
    // Combined with other conditions, and paged.
    expect(ids((await request(expanding.app).get('/fhir/Observation?patient=g&code=urn:x|a')).body)).toEqual(['Observation/o1', 'Observation/o3']);
    const first = (await request(expanding.app).get('/fhir/Observation?patient=g&_count=2')).body as Bundle;
    const next = first.link?.find((l) => l.relation === 'next')?.url as string;
    const second = (await request(expanding.app).get(next.replace('http://127.0.0.1:8080', ''))).body as Bundle;
    expect([...ids(first), ...ids(second)].sort()).toEqual(['Observation/o1', 'Observation/o2', 'Observation/o3']);
  });

  it('leaves a linked patient’s own search, Patient searches and other servers alone', async () => {
    expect(ids((await request(expanding.app).get('/fhir/Observation?patient=s1')).body)).toEqual(['Observation/o1']);
    expect(ids((await request(expanding.app).get('/fhir/Patient?link=Patient/s1')).body)).toEqual(['Patient/g']);
    expect(ids((await request(plain.app).get('/fhir/Observation?patient=g')).body)).toEqual(['Observation/o3']);
  });

  it('$everything of the linking patient holds the linked patients and their records', async () => {
    const res = await request(expanding.app).get('/fhir/Patient/g/$everything');
    expect(ids(res.body)).toEqual(['Observation/o1', 'Observation/o2', 'Observation/o3', 'Patient/g', 'Patient/s1', 'Patient/s2']);
    expect(res.body.entry[0].resource.resourceType).toBe('Patient');
    expect(ids((await request(plain.app).get('/fhir/Patient/g/$everything')).body)).toEqual(['Observation/o3', 'Patient/g']);
  });
});
