/**
 * The read filter beyond plain reads: a Binary is hidden wherever the resource that governs it (its
 * securityContext) is hidden — search, history, _include, read alike, in SQL so that totals tell nothing; and
 * consent denials limited to resource types (provision.class) and to a period (provision.period).
 */
import type { Bundle, Consent, ConsentProvision } from '@medplum/fhirtypes';
import request from 'supertest';
import { createTestServer, type TestServer } from '../../../test/server';

const FHIR_JSON = 'application/fhir+json';
const IRCP = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'IRCP' }] };

function consent(patientRef: string, deny: ConsentProvision): Consent {
  return {
    resourceType: 'Consent',
    status: 'active',
    scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
    category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
    patient: { reference: patientRef },
    policyRule: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'OPTIN' }] },
    provision: { type: 'permit', provision: [{ type: 'deny', ...deny }] },
  };
}

const ids = (bundle: Bundle): string[] => (bundle.entry ?? []).map((e) => `${e.resource?.resourceType}/${e.resource?.id}`).sort();
const denyTo = (org: string): ConsentProvision['actor'] => [{ role: IRCP, reference: { reference: org } }];

let server: TestServer;
const tokens: Record<string, string> = {};
const as = (who: string) => ({
  get: (path: string) => request(server.rawApp).get(`/fhir/${path}`).set('Authorization', `Bearer ${tokens[who]}`),
  post: async (path: string, body: object): Promise<string> => {
    const res = await request(server.rawApp).post(`/fhir/${path}`).set('Authorization', `Bearer ${tokens[who]}`).set('Content-Type', FHIR_JSON).send(body);
    expect([res.status, res.status === 201 ? undefined : res.body]).toEqual([201, undefined]);
    return `${(body as { resourceType: string }).resourceType}/${res.body.id}`;
  },
});

beforeAll(async () => {
  server = await createTestServer('postgres');
  for (const id of ['hosp-a', 'hosp-b', 'hosp-c']) {
    await request(server.app).put(`/fhir/Organization/${id}`).set('Content-Type', FHIR_JSON).send({ resourceType: 'Organization', id, name: id });
    tokens[id.slice(-1)] = (await server.tokenFor({ role: 'facility-system', organization: `Organization/${id}` })).token;
  }
});
afterAll(async () => {
  await server.close();
});

describe('a Binary governed by a hidden resource', () => {
  let hiddenBinary: string;
  let visibleBinary: string;
  let list: string;

  beforeAll(async () => {
    const denied = await as('a').post('Patient', { resourceType: 'Patient', name: [{ family: '周' }] });
    const shared = await as('a').post('Patient', { resourceType: 'Patient', name: [{ family: '吴' }] });
    await as('a').post('Consent', consent(denied, { actor: denyTo('Organization/hosp-b') }));
    const doc = (patient: string) => ({ resourceType: 'DocumentReference', status: 'current', subject: { reference: patient }, content: [{ attachment: { contentType: 'text/plain', url: 'http://example.org/x' } }] });
    const hiddenDoc = await as('a').post('DocumentReference', doc(denied));
    const sharedDoc = await as('a').post('DocumentReference', doc(shared));
    const binary = (context: string) => ({ resourceType: 'Binary', contentType: 'text/plain', securityContext: { reference: context }, data: Buffer.from(context).toString('base64') });
    hiddenBinary = await as('a').post('Binary', binary(hiddenDoc));
    visibleBinary = await as('a').post('Binary', binary(sharedDoc));
    // A list of no patient (visible to all) naming both Binaries, for _include.
    list = await as('a').post('List', { resourceType: 'List', status: 'current', mode: 'working', entry: [{ item: { reference: hiddenBinary } }, { item: { reference: visibleBinary } }] });
  });

  it('is left out of searches and their totals', async () => {
    const all = (await as('b').get('Binary?_total=accurate')).body as Bundle;
    expect(ids(all)).toEqual([visibleBinary]);
    expect(all.total).toBe(1);
    const byId = (await as('b').get(`Binary?_id=${hiddenBinary.split('/')[1]}&_total=accurate`)).body as Bundle;
    expect([byId.total, byId.entry ?? []]).toEqual([0, []]);
    // The publisher, and a hospital the consent does not name, see both.
    for (const who of ['a', 'c']) {
      expect(ids((await as(who).get('Binary')).body as Bundle)).toEqual([hiddenBinary, visibleBinary].sort());
    }
  });

  it('is not included', async () => {
    const included = (await as('b').get(`List?_id=${list.split('/')[1]}&_include=List:item`)).body as Bundle;
    expect(ids(included)).toEqual([list, visibleBinary].sort());
    const asC = (await as('c').get(`List?_id=${list.split('/')[1]}&_include=List:item`)).body as Bundle;
    expect(ids(asC)).toEqual([list, hiddenBinary, visibleBinary].sort());
  });

  it('has no history and cannot be read, like a resource that does not exist', async () => {
    expect((await as('b').get(`${hiddenBinary}/_history`)).status).toBe(404);
    expect((await as('b').get(`${hiddenBinary}/_history/1`)).status).toBe(404);
    expect((await as('b').get(hiddenBinary)).status).toBe(404);
    expect((await as('c').get(`${hiddenBinary}/_history`)).status).toBe(200);
    expect((await as('b').get(`${visibleBinary}/_history`)).status).toBe(200);
  });
});

describe('consent denials by resource type, code and period', () => {
  it('hides only the data carrying a denied code (provision.code)', async () => {
    const ICD10 = 'http://hl7.org/fhir/sid/icd-10';
    const patient = await as('a').post('Patient', { resourceType: 'Patient', name: [{ family: '蒋' }] });
    const condition = (code: string) => ({ resourceType: 'Condition', subject: { reference: patient }, code: { coding: [{ system: ICD10, code }] } });
    const depression = await as('a').post('Condition', condition('F32.9'));
    const asthma = await as('a').post('Condition', condition('J45.9'));
    await as('a').post('Consent', consent(patient, { actor: denyTo('Organization/hosp-b'), code: [{ coding: [{ system: ICD10, code: 'F32.9' }] }] }));
    expect((await as('b').get(depression)).status).toBe(404);
    expect((await as('b').get(asthma)).status).toBe(200);
    expect((await as('b').get(patient)).status).toBe(200);
    const found = (await as('b').get(`Condition?patient=${patient}&_total=accurate`)).body as Bundle;
    expect([found.total, ids(found)]).toEqual([1, [asthma]]);
    expect(ids((await as('c').get(`Condition?patient=${patient}`)).body as Bundle)).toEqual([asthma, depression].sort());
  });

  it('hides only the denied resource types (provision.class)', async () => {
    const patient = await as('a').post('Patient', { resourceType: 'Patient', name: [{ family: '郑' }] });
    const doc = await as('a').post('DocumentReference', { resourceType: 'DocumentReference', status: 'current', subject: { reference: patient }, content: [{ attachment: { url: 'http://example.org/d' } }] });
    const obs = await as('a').post('Observation', { resourceType: 'Observation', status: 'final', code: { text: 'lab' }, subject: { reference: patient } });
    const rule = await as('a').post('Consent', consent(patient, { actor: denyTo('Organization/hosp-b'), class: [{ system: 'http://hl7.org/fhir/resource-types', code: 'DocumentReference' }] }));
    expect((await as('b').get(doc)).status).toBe(404);
    expect((await as('b').get(obs)).status).toBe(200);
    expect((await as('b').get(patient)).status).toBe(200);
    const docs = (await as('b').get(`DocumentReference?patient=${patient}&_total=accurate`)).body as Bundle;
    expect([docs.total, docs.entry ?? []]).toEqual([0, []]);
    expect(ids((await as('b').get(`Patient/${patient.split('/')[1]}/$everything`)).body as Bundle)).toEqual([rule, obs, patient].sort());
    expect((await as('c').get(doc)).status).toBe(200);
  });

  it('denies only while the provision is in force (provision.period)', async () => {
    const observation = async (patient: string): Promise<string> => as('a').post('Observation', { resourceType: 'Observation', status: 'final', code: { text: 'lab' }, subject: { reference: patient } });
    const past = await as('a').post('Patient', { resourceType: 'Patient', name: [{ family: '冯' }] });
    const current = await as('a').post('Patient', { resourceType: 'Patient', name: [{ family: '陈' }] });
    const future = await as('a').post('Patient', { resourceType: 'Patient', name: [{ family: '褚' }] });
    const pastObs = await observation(past);
    const currentObs = await observation(current);
    const futureObs = await observation(future);
    await as('a').post('Consent', consent(past, { actor: denyTo('Organization/hosp-b'), period: { start: '2020-01-01', end: '2020-12-31' } }));
    // A date as the end: in force through that day.
    const today = new Date().toISOString().slice(0, 10);
    await as('a').post('Consent', consent(current, { actor: denyTo('Organization/hosp-b'), period: { start: '2020-01', end: today } }));
    await as('a').post('Consent', { ...consent(future, { actor: denyTo('Organization/hosp-b') }), provision: { type: 'permit', period: { start: '2999' }, provision: [{ type: 'deny', actor: denyTo('Organization/hosp-b') }] } });
    expect((await as('b').get(pastObs)).status).toBe(200);
    expect((await as('b').get(currentObs)).status).toBe(404);
    expect((await as('b').get(current)).status).toBe(404);
    expect((await as('b').get(futureObs)).status).toBe(200);
    const search = (await as('b').get(`Observation?_id=${[pastObs, currentObs, futureObs].map((o) => o.split('/')[1]).join(',')}&_total=accurate`)).body as Bundle;
    expect([search.total, ids(search)]).toEqual([2, [pastObs, futureObs].sort()]);
  });
});
