/** Other modules' write rules (createFhirServer's writeInterceptors) run inside each write's transaction. */
import type { Basic, Bundle, Patient, Practitioner } from '@medplum/fhirtypes';
import request from 'supertest';
import { conflict, type WriteInterceptor } from '..';
import { createTestServer, type TestServer } from '../../test/server';

/** Patients need a name; each patient write also records a Basic "audit" resource in the same transaction. */
const patientRule: WriteInterceptor = {
  resourceTypes: ['Patient'],
  async beforeWrite(session, write) {
    const patient = write.resource as Patient | undefined;
    if (patient && !patient.name?.length) {
      throw conflict('A patient needs a name here');
    }
    await session.create({ resourceType: 'Basic', code: { text: `${write.interaction} Patient/${write.id} (before: ${(write.previous as Patient | undefined)?.gender ?? 'none'})` } } as Basic);
    return patient && !patient.gender ? { ...patient, gender: 'unknown' } : undefined;
  },
};

/** A pure rule (it looks at the write alone): a practitioner keeps its gender when an update leaves it out. */
const practitionerRule: WriteInterceptor = {
  resourceTypes: ['Practitioner'],
  pure: true,
  async beforeWrite(_session, write) {
    const practitioner = write.resource as Practitioner | undefined;
    const previous = write.previous as Practitioner | undefined;
    return practitioner && !practitioner.gender && previous?.gender ? { ...practitioner, gender: previous.gender } : undefined;
  },
};

let server: TestServer;
beforeAll(async () => {
  server = await createTestServer('postgres', { writeInterceptors: [patientRule, practitionerRule] });
});
afterAll(() => server.close());

const json = 'application/fhir+json';
const audits = async (): Promise<string[]> =>
  ((await request(server.app).get('/fhir/Basic?_count=100').expect(200)).body as Bundle).entry?.map((e) => (e.resource as Basic).code.text as string) ?? [];

describe('write interceptors', () => {
  it('amend the write and add writes to its transaction, with the previous version at hand', async () => {
    const created = await request(server.app).post('/fhir/Patient').set('Content-Type', json).send({ resourceType: 'Patient', name: [{ family: '王' }] }).expect(201);
    expect(created.body.gender).toBe('unknown');
    await request(server.app).put(`/fhir/Patient/${created.body.id}`).set('Content-Type', json).set('If-Match', 'W/"1"').send({ ...created.body, gender: 'female' }).expect(200);
    expect(await audits()).toEqual(expect.arrayContaining([`create Patient/${created.body.id} (before: none)`, `update Patient/${created.body.id} (before: unknown)`]));
  });

  it('refuse a write with their OperationOutcome, and nothing of the transaction is kept', async () => {
    const before = (await audits()).length;
    const bundle: Bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { resource: { resourceType: 'Patient', name: [{ family: '李' }] }, request: { method: 'POST', url: 'Patient' } },
        { resource: { resourceType: 'Patient' }, request: { method: 'POST', url: 'Patient' } },
      ],
    };
    const res = await request(server.app).post('/fhir').set('Content-Type', json).send(bundle).expect(409);
    expect(JSON.stringify(res.body)).toContain('A patient needs a name here');
    expect((await audits()).length).toBe(before);
    expect(((await request(server.app).get('/fhir/Patient?family=李').expect(200)).body as Bundle).entry ?? []).toHaveLength(0);
  });

  it('a pure rule sees the expected version on the If-Match fast path; stale versions and missing references are still refused', async () => {
    const created = (await request(server.app).post('/fhir/Practitioner').set('Content-Type', json).send({ resourceType: 'Practitioner', gender: 'male' }).expect(201)).body as Practitioner;
    const { gender: _gender, ...withoutGender } = created;
    const updated = await request(server.app).put(`/fhir/Practitioner/${created.id}`).set('Content-Type', json).set('If-Match', 'W/"1"').send({ ...withoutGender, active: true }).expect(200);
    expect(updated.body).toMatchObject({ gender: 'male', active: true, meta: { versionId: '2' } });
    const stale = await request(server.app).put(`/fhir/Practitioner/${created.id}`).set('Content-Type', json).set('If-Match', 'W/"1"').send(created);
    expect(stale.status).toBe(412);
    const dangling = await request(server.app)
      .put(`/fhir/Practitioner/${created.id}`)
      .set('Content-Type', json)
      .set('If-Match', 'W/"2"')
      .send({ ...updated.body, qualification: [{ code: { text: 'MD' }, issuer: { reference: 'Organization/nowhere' } }] });
    expect(dangling.status).toBe(422);
    expect(JSON.stringify(dangling.body)).toContain('Organization/nowhere');
    const current = await request(server.app).get(`/fhir/Practitioner/${created.id}`).expect(200);
    expect(current.body.meta.versionId).toBe('2');
  });
});
