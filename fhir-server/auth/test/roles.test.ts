/**
 * Organisation and role rules over HTTP: ownership stamped on write, no changes to another facility's records
 * (plain, conditional, patch, in a transaction), supervisors read only, coordinators manage referrals, clinicians
 * read patients they care for or by break-the-glass.
 */
import type { Bundle, Patient } from '@medplum/fhirtypes';
import request from 'supertest';
import { OWNER_TAG_SYSTEM } from '../migrations';
import { createTestServer, type TestServer } from '../../../test/server';
import type { Backend } from '../../../test/databases';

const FHIR_JSON = 'application/fhir+json';

describe.each<Backend>(['postgres', 'pglite'])('organisation and role rules on %s', (backend) => {
  let server: TestServer;
  let hospitalA: string;
  let hospitalB: string;
  let supervisor: string;
  let coordinator: string;
  let clinician: string;
  const as = (token: string) => ({
    get: (path: string) => request(server.rawApp).get(path).set('Authorization', `Bearer ${token}`),
    post: (path: string, body: object) => request(server.rawApp).post(path).set('Authorization', `Bearer ${token}`).set('Content-Type', FHIR_JSON).send(body),
    put: (path: string, body: object) => request(server.rawApp).put(path).set('Authorization', `Bearer ${token}`).set('Content-Type', FHIR_JSON).send(body),
    patch: (path: string, body: object) => request(server.rawApp).patch(path).set('Authorization', `Bearer ${token}`).set('Content-Type', 'application/json-patch+json').send(body),
    delete: (path: string) => request(server.rawApp).delete(path).set('Authorization', `Bearer ${token}`),
  });

  beforeAll(async () => {
    server = await createTestServer(backend);
    for (const id of ['hosp-a', 'hosp-b', 'clinic-c', 'bureau']) {
      await request(server.app).put(`/fhir/Organization/${id}`).set('Content-Type', FHIR_JSON).send({ resourceType: 'Organization', id, name: id });
    }
    hospitalA = (await server.tokenFor({ role: 'facility-system', organization: 'Organization/hosp-a' })).token;
    hospitalB = (await server.tokenFor({ role: 'facility-system', organization: 'Organization/hosp-b' })).token;
    supervisor = (await server.tokenFor({ role: 'supervisor', organization: 'Organization/bureau' })).token;
    coordinator = (await server.tokenFor({ role: 'referral-coordinator', organization: 'Organization/hosp-b' })).token;
    clinician = (await server.tokenFor({ role: 'clinician', organization: 'Organization/clinic-c', practitioner: 'Practitioner/doc-1' })).token;
  });
  afterAll(async () => {
    await server.close();
  });

  it('stamps the owner in meta.source and a security tag, replacing any owner the client claimed', async () => {
    const claimed = { resourceType: 'Patient', meta: { security: [{ system: OWNER_TAG_SYSTEM, code: 'Organization/hosp-b' }] } };
    const res = await as(hospitalA).post('/fhir/Patient', claimed);
    expect(res.status).toBe(201);
    expect(res.body.meta.source).toBe('Organization/hosp-a');
    expect(res.body.meta.security).toEqual([{ system: OWNER_TAG_SYSTEM, code: 'Organization/hosp-a', display: 'owning organization' }]);
    const found = await as(hospitalA).get(`/fhir/Patient?_security=${encodeURIComponent(`${OWNER_TAG_SYSTEM}|Organization/hosp-a`)}&_id=${res.body.id}`);
    expect(found.body.total).toBe(1);
  });

  it("refuses changes to another facility's records: update, patch, delete, conditional update, transaction", async () => {
    const patient = (await as(hospitalA).post('/fhir/Patient', { resourceType: 'Patient', identifier: [{ system: 'urn:mrn:a', value: 'A-1' }] })).body as Patient;
    const path = `/fhir/Patient/${patient.id}`;
    const update = await as(hospitalB).put(path, { ...patient, gender: 'female' });
    expect(update.status).toBe(403);
    expect(update.body.issue[0].diagnostics).toMatch(/owned by Organization\/hosp-a/);
    expect((await as(hospitalB).patch(path, [{ op: 'add', path: '/gender', value: 'female' }])).status).toBe(403);
    expect((await as(hospitalB).delete(path)).status).toBe(403);
    expect((await as(hospitalB).put('/fhir/Patient?identifier=urn:mrn:a|A-1', { resourceType: 'Patient', gender: 'female' })).status).toBe(403);
    const bundle: Bundle = { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { ...patient, gender: 'female' }, request: { method: 'PUT', url: `Patient/${patient.id}` } }] };
    expect((await as(hospitalB).post('/fhir', bundle)).status).toBe(403);
    // If-Match updates take their own fast path: it is checked too.
    expect((await as(hospitalB).put(path, { ...patient, gender: 'female' }).set('If-Match', 'W/"1"')).status).toBe(403);
    // Nothing changed; the owner may change it, but not its meta through a patch.
    expect((await as(hospitalA).get(path)).body.meta.versionId).toBe('1');
    expect((await as(hospitalA).put(path, { ...patient, gender: 'female' })).status).toBe(200);
    expect((await as(hospitalA).patch(path, [{ op: 'remove', path: '/meta/security' }])).status).toBe(403);
    expect((await as(hospitalA).delete(path)).status).toBe(200);
  });

  it('lets supervisors read everything and write nothing, and coordinators manage referrals only', async () => {
    const patient = (await as(hospitalA).post('/fhir/Patient', { resourceType: 'Patient' })).body as Patient;
    expect((await as(supervisor).get(`/fhir/Patient/${patient.id}`)).status).toBe(200);
    expect((await as(supervisor).post('/fhir/Observation', { resourceType: 'Observation', status: 'final', code: { text: 'x' } })).status).toBe(403);
    const task = await as(coordinator).post('/fhir/Task', { resourceType: 'Task', status: 'requested', intent: 'order', for: { reference: `Patient/${patient.id}` } });
    expect(task.status).toBe(201);
    expect(task.body.meta.source).toBe('Organization/hosp-b');
    const obs = await as(coordinator).post('/fhir/Observation', { resourceType: 'Observation', status: 'final', code: { text: 'x' } });
    expect(obs.status).toBe(403);
    expect(obs.body.issue[0].diagnostics).toMatch(/coordinators manage Task/);
  });

  it('shows a clinician only patients with a care relationship to its organisation, or by break-the-glass', async () => {
    const patient = (await as(hospitalA).post('/fhir/Patient', { resourceType: 'Patient', name: [{ family: 'Care' }] })).body as Patient;
    const ref = `Patient/${patient.id}`;
    await as(hospitalA).post('/fhir/Observation', { resourceType: 'Observation', status: 'final', code: { text: 'glucose' }, subject: { reference: ref } });
    expect((await as(clinician).get(`/fhir/${ref}`)).status).toBe(404);
    const search = await as(clinician).get(`/fhir/Observation?subject=${ref}&_total=accurate`);
    expect(search.status).toBe(200);
    expect(search.body.total).toBe(0);
    expect((await as(clinician).get(`/fhir/${ref}/$everything`)).status).toBe(404);

    // Break-the-glass: visible, with the reason on record.
    const glass = await as(clinician).get(`/fhir/Observation?subject=${ref}`).set('X-Break-The-Glass', 'unconscious patient in the emergency room');
    expect(glass.body.entry).toHaveLength(1);

    // A referral to the clinic (ServiceRequest with the clinic as performer) makes a care relationship.
    const referral = await as(hospitalA).post('/fhir/ServiceRequest', { resourceType: 'ServiceRequest', status: 'active', intent: 'order', subject: { reference: ref }, performer: [{ reference: 'Organization/clinic-c' }] });
    expect(referral.status).toBe(201);
    expect((await as(clinician).get(`/fhir/${ref}`)).status).toBe(200);
    expect((await as(clinician).get(`/fhir/Observation?subject=${ref}`)).body.entry).toHaveLength(1);
  });

  it('requires a clinician token to name its practitioner', async () => {
    const { client } = await server.tokenFor({ role: 'clinician', organization: 'Organization/clinic-c', practitioner: 'Practitioner/doc-2' });
    const tokens = await server.security.tokens;
    await expect(tokens.issue({ ...client, practitioner: undefined }, undefined)).rejects.toThrow(/practitioner/);
    const issued = await tokens.issue({ ...client, practitioner: undefined }, undefined, 'Practitioner/doc-3');
    const introspected = await request(server.rawApp).post('/auth/introspect').set('Authorization', `Bearer ${server.adminToken}`).type('form').send({ token: issued.access_token });
    expect(introspected.body.fhirUser).toBe('Practitioner/doc-3');
  });

  it('keeps history across resources to administrators', async () => {
    expect((await as(hospitalA).get('/fhir/_history')).status).toBe(403);
    expect((await as(hospitalA).get('/fhir/Patient/_history')).status).toBe(403);
    expect((await request(server.app).get('/fhir/_history')).status).toBe(200);
  });
});
