/**
 * Injection strings in every search parameter type, as a facility client (whose searches carry the consent filter)
 * and in AuditEvent searches: each is answered with a 4xx or an empty result, never a 500, never another's data.
 */
import request from 'supertest';
import { createTestServer, type TestServer } from '../../../test/server';

const INJECTIONS = [
  "' OR '1'='1",
  "'; DROP TABLE resource; --",
  '1) OR (1=1',
  "x' UNION SELECT content FROM resource --",
  '$1',
  '\\x00',
  '%00',
  '"; SELECT pg_sleep(5); --',
  "Organization/hosp-a' OR 'x'='x",
  'ge2020-01-01\' OR 1=1 --',
  '*',
  '%',
  '_',
  '[]{}()',
];

/** One parameter of each search type, on a type that has it. */
const PARAMS: Array<[string, string]> = [
  ['Patient', 'family'], // string
  ['Patient', 'identifier'], // token
  ['Patient', 'birthdate'], // date
  ['RiskAssessment', 'probability'], // number
  ['Observation', 'value-quantity'], // quantity
  ['Observation', 'subject'], // reference
  ['ValueSet', 'url'], // uri
  ['Patient', '_id'],
  ['Patient', '_lastUpdated'],
  ['Patient', '_security'],
  ['Patient', '_sort'],
  ['Patient', '_count'],
  ['Patient', '_include'],
  ['Patient', 'family:contains'],
  ['Patient', 'identifier:not'],
];

describe('injection strings in search parameters', () => {
  let server: TestServer;
  let token: string;

  beforeAll(async () => {
    server = await createTestServer('postgres');
    await request(server.app).put('/fhir/Organization/hosp-a').set('Content-Type', 'application/fhir+json').send({ resourceType: 'Organization', id: 'hosp-a' });
    await request(server.app).post('/fhir/Patient').set('Content-Type', 'application/fhir+json').send({ resourceType: 'Patient', name: [{ family: 'Secret' }] });
    token = (await server.tokenFor({ role: 'clinician', organization: 'Organization/hosp-a', practitioner: 'Practitioner/p1' })).token;
  });
  afterAll(async () => {
    await server.close();
  });

  it.each(PARAMS)('%s?%s= answers 4xx or nothing for every injection string', async (type, param) => {
    for (const value of INJECTIONS) {
      const res = await request(server.rawApp).get(`/fhir/${type}`).query({ [param]: value }).set('Authorization', `Bearer ${token}`);
      expect(`${value} -> ${res.status}`).toMatch(/ -> (200|4\d\d)$/);
      if (res.status === 200) {
        // The clinician has no care relationship with the stored patient: a match would be a leak.
        expect(res.body.entry ?? []).toEqual([]);
      }
    }
    // The store is intact.
    expect((await request(server.app).get('/fhir/Patient?family=Secret')).body.total).toBe(1);
  });

  it('answers AuditEvent searches with injection strings with 4xx or nothing', async () => {
    const { token: supervisor } = await server.tokenFor({ role: 'supervisor', organization: 'Organization/bureau' });
    for (const param of ['entity', 'patient', 'agent', 'date', 'outcome', 'action', '_tag', '_id', '_count']) {
      for (const value of INJECTIONS) {
        const res = await request(server.rawApp).get('/fhir/AuditEvent').query({ [param]: value }).set('Authorization', `Bearer ${supervisor}`);
        expect(`${param}=${value} -> ${res.status}`).toMatch(/ -> (200|4\d\d)$/);
        if (res.status === 200) {
          expect(res.body.entry ?? []).toEqual([]);
        }
      }
    }
  });

  it('answers injection strings in the token endpoint and the break-the-glass header without a 500', async () => {
    for (const value of INJECTIONS) {
      const res = await request(server.rawApp)
        .post('/auth/token')
        .set('Authorization', `Basic ${Buffer.from(`${value}:${value}`).toString('base64')}`)
        .type('form')
        .send({ grant_type: 'client_credentials', scope: value });
      expect(res.status).toBe(401);
      const glass = await request(server.rawApp).get('/fhir/Patient').set('Authorization', `Bearer ${token}`).set('X-Break-The-Glass', value);
      expect(glass.status).toBeLessThan(500);
    }
  });
});
