/**
 * A Task written by one organisation and addressed to another (Task.owner): the addressee may work it (a referral
 * accepted by the receiving hospital); a third organisation may not.
 */
import request from 'supertest';
import { createTestServer, type TestServer } from '../../../test/server';

describe('changing a Task addressed to one’s organisation', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await createTestServer('postgres');
  });
  afterAll(async () => {
    await server.close();
  });

  it('lets the addressee change it, and nobody else but the owner', async () => {
    const { token: clinic } = await server.tokenFor({ role: 'facility-system', organization: 'Organization/clinic' });
    const { token: receiver } = await server.tokenFor({ role: 'referral-coordinator', organization: 'Organization/hospital' });
    const { token: other } = await server.tokenFor({ role: 'referral-coordinator', organization: 'Organization/elsewhere' });
    for (const id of ['clinic', 'hospital', 'elsewhere']) {
      await request(server.app).put(`/fhir/Organization/${id}`).set('Content-Type', 'application/fhir+json').send({ resourceType: 'Organization', id, name: id }).expect((r) => expect(r.status).toBeLessThan(300));
    }
    const created = await request(server.rawApp)
      .post('/fhir/Task')
      .set('Authorization', `Bearer ${clinic}`)
      .set('Content-Type', 'application/fhir+json')
      .send({ resourceType: 'Task', status: 'requested', intent: 'order', requester: { reference: 'Organization/clinic' }, owner: { reference: 'Organization/hospital' } });
    expect(created.status).toBe(201);
    const update = (token: string): request.Test =>
      request(server.rawApp).put(`/fhir/Task/${created.body.id}`).set('Authorization', `Bearer ${token}`).set('Content-Type', 'application/fhir+json').send({ ...created.body, status: 'received', meta: undefined });
    expect((await update(other)).status).toBe(403);
    expect((await update(receiver)).status).toBe(200);
  });
});

describe('changing a Task addressed to one of one’s HealthcareServices or PractitionerRoles', () => {
  let server: TestServer;
  const json = 'application/fhir+json';
  beforeAll(async () => {
    server = await createTestServer('postgres');
    for (const id of ['clinic', 'hospital', 'elsewhere']) {
      await request(server.app).put(`/fhir/Organization/${id}`).set('Content-Type', json).send({ resourceType: 'Organization', id, name: id }).expect((r) => expect(r.status).toBeLessThan(300));
    }
    await request(server.app)
      .put('/fhir/HealthcareService/cardiology')
      .set('Content-Type', json)
      .send({ resourceType: 'HealthcareService', id: 'cardiology', providedBy: { reference: 'Organization/hospital' }, name: 'Cardiology' })
      .expect((r) => expect(r.status).toBeLessThan(300));
    await request(server.app)
      .put('/fhir/PractitionerRole/dr-wang')
      .set('Content-Type', json)
      .send({ resourceType: 'PractitionerRole', id: 'dr-wang', organization: { reference: 'Organization/hospital' } })
      .expect((r) => expect(r.status).toBeLessThan(300));
  });
  afterAll(async () => {
    await server.close();
  });

  it.each(['HealthcareService/cardiology', 'PractitionerRole/dr-wang'])('lets the organisation behind %s change it, and nobody else but the owner', async (addressee) => {
    const { token: clinic } = await server.tokenFor({ role: 'facility-system', organization: 'Organization/clinic' });
    const { token: receiver } = await server.tokenFor({ role: 'referral-coordinator', organization: 'Organization/hospital' });
    const { token: other } = await server.tokenFor({ role: 'referral-coordinator', organization: 'Organization/elsewhere' });
    const created = await request(server.rawApp)
      .post('/fhir/Task')
      .set('Authorization', `Bearer ${clinic}`)
      .set('Content-Type', json)
      .send({ resourceType: 'Task', status: 'requested', intent: 'order', requester: { reference: 'Organization/clinic' }, owner: { reference: addressee } });
    expect(created.status).toBe(201);
    const update = (token: string, status: string): request.Test =>
      request(server.rawApp).put(`/fhir/Task/${created.body.id}`).set('Authorization', `Bearer ${token}`).set('Content-Type', json).send({ ...created.body, status, meta: undefined });
    expect((await update(other, 'received')).status).toBe(403);
    const received = await update(receiver, 'received');
    expect(received.status).toBe(200);
    // Still the sender's record: its owner tag is the clinic's, so the clinic may withdraw it.
    expect(received.body.meta.security).toEqual(expect.arrayContaining([expect.objectContaining({ code: 'Organization/clinic' })]));
    expect((await update(clinic, 'cancelled')).status).toBe(200);
  });
});
