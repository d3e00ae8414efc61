/**
 * Patient consent (Consent, scope patient-privacy) enforced on read, search, counts, _include and $everything:
 * what it denies is filtered in SQL, so pages and totals never reveal it; the owner always sees its own data.
 */
import type { Bundle, Consent } from '@medplum/fhirtypes';
import request from 'supertest';
import { createTestServer, type TestServer } from '../../../test/server';
import type { Backend } from '../../../test/databases';

const FHIR_JSON = 'application/fhir+json';
const HIV = { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'HIV' };

function consent(patientRef: string): Consent {
  return {
    resourceType: 'Consent',
    status: 'active',
    scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
    category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
    patient: { reference: patientRef },
    policyRule: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'OPTIN' }] },
    provision: {
      type: 'permit',
      provision: [
        {
          type: 'deny',
          actor: [{ role: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'IRCP' }] }, reference: { reference: 'Organization/hosp-b' } }],
        },
        { type: 'deny', securityLabel: [HIV] },
      ],
    },
  };
}

const ids = (bundle: Bundle): string[] => (bundle.entry ?? []).map((e) => `${e.resource?.resourceType}/${e.resource?.id}`).sort();

describe.each<Backend>(['postgres', 'pglite'])('patient consent on %s', (backend) => {
  let server: TestServer;
  const tokens: Record<string, string> = {};
  let patientRef: string;
  let plainObs: string;
  let hivObs: string;
  let encounterOfB: string;
  let consentId: string;
  const as = (who: string) => ({
    get: (path: string) => request(server.rawApp).get(path).set('Authorization', `Bearer ${tokens[who]}`),
    post: (path: string, body: object) => request(server.rawApp).post(path).set('Authorization', `Bearer ${tokens[who]}`).set('Content-Type', FHIR_JSON).send(body),
    delete: (path: string) => request(server.rawApp).delete(path).set('Authorization', `Bearer ${tokens[who]}`),
  });

  beforeAll(async () => {
    server = await createTestServer(backend);
    for (const id of ['hosp-a', 'hosp-b', 'hosp-d', 'bureau']) {
      await request(server.app).put(`/fhir/Organization/${id}`).set('Content-Type', FHIR_JSON).send({ resourceType: 'Organization', id, name: id });
    }
    tokens.a = (await server.tokenFor({ role: 'facility-system', organization: 'Organization/hosp-a' })).token;
    tokens.b = (await server.tokenFor({ role: 'facility-system', organization: 'Organization/hosp-b' })).token;
    tokens.d = (await server.tokenFor({ role: 'facility-system', organization: 'Organization/hosp-d' })).token;
    tokens.supervisor = (await server.tokenFor({ role: 'supervisor', organization: 'Organization/bureau' })).token;
    tokens.admin = server.adminToken;
    const patient = await as('a').post('/fhir/Patient', { resourceType: 'Patient', name: [{ family: 'Private' }], identifier: [{ system: 'urn:test:id', value: 'P-1' }] });
    patientRef = `Patient/${patient.body.id}`;
    const obs = (extra: object) => ({ resourceType: 'Observation', status: 'final', code: { text: 'lab' }, subject: { reference: patientRef }, ...extra });
    plainObs = `Observation/${(await as('a').post('/fhir/Observation', obs({}))).body.id}`;
    hivObs = `Observation/${(await as('a').post('/fhir/Observation', obs({ meta: { security: [HIV] } }))).body.id}`;
    encounterOfB = `Encounter/${(await as('b').post('/fhir/Encounter', { resourceType: 'Encounter', status: 'finished', class: { code: 'AMB' }, subject: { reference: patientRef } })).body.id}`;
    // Before the consent, hospital B sees the patient.
    expect((await as('b').get(`/fhir/${patientRef}`)).status).toBe(200);
    const created = await as('a').post('/fhir/Consent', consent(patientRef));
    expect(created.status).toBe(201);
    consentId = created.body.id;
  });
  afterAll(async () => {
    await server.close();
  });

  it('hides the whole shared record from a denied organisation: read, search, counts, $everything', async () => {
    expect((await as('b').get(`/fhir/${patientRef}`)).status).toBe(404);
    expect((await as('b').get(`/fhir/${plainObs}`)).status).toBe(404);
    const search = await as('b').get(`/fhir/Observation?subject=${patientRef}&_total=accurate`);
    expect(search.body.total).toBe(0);
    expect(search.body.entry ?? []).toEqual([]);
    expect((await as('b').get(`/fhir/Observation?subject=${patientRef}&_summary=count`)).body.total).toBe(0);
    expect((await as("b").get(`/fhir/${patientRef}/Observation`)).body.entry ?? []).toEqual([]);
    expect((await as('b').get(`/fhir/${patientRef}/$everything`)).status).toBe(404);
    // A conditional create does not hand over the hidden patient either.
    const conditional = await request(server.rawApp).post('/fhir/Patient').set('Authorization', `Bearer ${tokens.b}`).set('Content-Type', FHIR_JSON)
      .set('If-None-Exist', 'identifier=urn:test:id|P-1').send({ resourceType: 'Patient' });
    expect(conditional.status).toBe(412);
    expect(JSON.stringify(conditional.body)).not.toContain('Private');
    // Its own Encounter stays visible to it, but an _include does not bring the patient along.
    const included = await as('b').get(`/fhir/Encounter?_id=${encounterOfB.split('/')[1]}&_include=Encounter:subject`);
    expect(ids(included.body)).toEqual([encounterOfB]);
    const reverse = await as('b').get(`/fhir/Encounter?_id=${encounterOfB.split('/')[1]}&_revinclude=Observation:encounter`);
    expect(ids(reverse.body)).toEqual([encounterOfB]);
  });

  it('hides data with a denied security label from everyone else, without counts revealing it', async () => {
    const search = await as('d').get(`/fhir/Observation?subject=${patientRef}&_total=accurate`);
    expect(search.body.total).toBe(1);
    expect(ids(search.body)).toEqual([plainObs]);
    expect((await as('d').get(`/fhir/${hivObs}`)).status).toBe(404);
    const everything = await as('d').get(`/fhir/${patientRef}/$everything`);
    expect(everything.status).toBe(200);
    const all = ids(everything.body);
    expect(all).toContain(patientRef);
    expect(all).toContain(plainObs);
    expect(all).not.toContain(hivObs);
    const withInclude = await as('d').get(`/fhir/Patient?_id=${patientRef.split('/')[1]}&_revinclude=Observation:subject`);
    expect(ids(withInclude.body)).not.toContain(hivObs);
    expect((await as('supervisor').get(`/fhir/${hivObs}`)).status).toBe(404);
  });

  it('tells a viewer that part of the record is withheld ($consent-notice), never what, and a denied one nothing', async () => {
    const notice = async (who: string): Promise<{ status: number; withheld?: boolean; extent?: string }> => {
      const res = await as(who).get(`/fhir/${patientRef}/$consent-notice`);
      const param = (name: string) => (res.body.parameter ?? []).find((p: { name: string }) => p.name === name);
      return { status: res.status, withheld: param('withheld')?.valueBoolean, extent: param('extent')?.valueCode };
    };
    // The HIV label is denied to everyone: another hospital and the bureau are told part is withheld.
    expect(await notice('d')).toEqual({ status: 200, withheld: true, extent: 'part' });
    expect(await notice('supervisor')).toEqual({ status: 200, withheld: true, extent: 'part' });
    // Administrators see everything; the denied hospital cannot see the patient at all, notice included.
    expect(await notice('admin')).toEqual({ status: 200, withheld: false, extent: undefined });
    expect((await notice('b')).status).toBe(404);
    const text = JSON.stringify((await as('d').get(`/fhir/${patientRef}/$consent-notice`)).body);
    expect(text).not.toContain(consentId);
    expect(text).not.toContain('HIV');
  });

  it('leaves the owner its own data, and administrators everything', async () => {
    expect((await as('a').get(`/fhir/${hivObs}`)).status).toBe(200);
    expect((await as('a').get(`/fhir/Observation?subject=${patientRef}&_total=accurate`)).body.total).toBe(2);
    expect((await as('admin').get(`/fhir/Observation?subject=${patientRef}&_total=accurate`)).body.total).toBe(2);
  });

  it('applies again once the consent is withdrawn', async () => {
    expect((await as('a').delete(`/fhir/Consent/${consentId}`)).status).toBe(200);
    expect((await as('b').get(`/fhir/${patientRef}`)).status).toBe(200);
    expect((await as('d').get(`/fhir/${hivObs}`)).status).toBe(200);
    // And it takes effect again when a new one is recorded.
    expect((await as('a').post('/fhir/Consent', consent(patientRef))).status).toBe(201);
    expect((await as('b').get(`/fhir/${patientRef}`)).status).toBe(404);
  });
});
