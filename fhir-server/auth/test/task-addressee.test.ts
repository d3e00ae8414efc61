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
