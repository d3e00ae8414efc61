/**
 * The index at work through the REST API: national identifiers normalised and checked on write, deterministic
 * and scored links made from change events, the review worklist, undo, $match, $ihe-pix, $merge, and a golden
 * record's $everything and patient= searches across hospitals (with the security read filter).
 */
import type { Bundle, Consent, Observation, Parameters, Patient } from '@medplum/fhirtypes';
import request from 'supertest';
import { GOLDEN_TAG, MATCH_GRADE_EXTENSION, MPI_SYSTEM, residentIdCheckCharacter, RESIDENT_ID_SYSTEM } from '..';
import { eventually, startMpiPlatform, type MpiTestPlatform } from './platform';

const FHIR_JSON = 'application/fhir+json';
const rid = (first17: string): string => first17 + residentIdCheckCharacter(first17);
const ZHANG = rid('34010419800101123');
const ZHANG_15 = '340104800101123';
const HL7_CHINA_RESIDENT_ID = 'urn:oid:2.16.840.1.113883.2.23.1.9.1';

let p: MpiTestPlatform;
const HIV = { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'HIV' };

function consent(patientId: string, provision: NonNullable<Consent['provision']>): Consent {
  return {
    resourceType: 'Consent',
    status: 'active',
    scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
    category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
    patient: { reference: `Patient/${patientId}` },
    policyRule: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'OPTIN' }] },
    provision: { type: 'permit', provision: [provision] },
  };
}
/** The first hospital's copy of 张伟, created with a 15-digit number. */
let zhangH1: string;

beforeAll(async () => {
  p = await startMpiPlatform();
});
afterAll(async () => {
  await p?.close();
});

async function create(resource: object): Promise<string> {
  const res = await request(p.server.app).post(`/fhir/${(resource as { resourceType: string }).resourceType}`).set('Content-Type', FHIR_JSON).send(resource);
  expect([res.status, res.status === 201 ? undefined : res.body]).toEqual([201, undefined]);
  return res.body.id as string;
}

async function read(id: string): Promise<Patient> {
  const res = await request(p.server.app).get(`/fhir/Patient/${id}`);
  expect(res.status).toBe(200);
  return res.body as Patient;
}

/** The golden record a source is filed under, once the worker has linked it. */
const goldenOf = (id: string): Promise<string> =>
  eventually(async () => {
    const golden = await p.index.goldenOfSource(id);
    const source = await read(id);
    return golden && source.link?.some((l) => l.type === 'refer' && l.other.reference === `Patient/${golden}`) ? golden : undefined;
  });

function patient(mrn: string, hospital: string, extra: Partial<Patient>): Patient {
  return { resourceType: 'Patient', identifier: [{ system: `urn:huimin:hl7:${hospital}:mrn`, value: mrn }], ...extra };
}

async function operation(path: string, body?: Parameters): Promise<request.Response> {
  return body ? request(p.server.app).post(`/fhir/${path}`).set('Content-Type', FHIR_JSON).send(body) : request(p.server.app).get(`/fhir/${path}`);
}

describe('national identifiers on write', () => {
  it('refuses a resident ID number with a wrong check character, saying why', async () => {
    const wrong = ZHANG.slice(0, 17) + (ZHANG[17] === '1' ? '2' : '1');
    const res = await request(p.server.app)
      .post('/fhir/Patient')
      .set('Content-Type', FHIR_JSON)
      .send(patient('X1', 'H1', { identifier: [{ system: RESIDENT_ID_SYSTEM, value: wrong }] }));
    expect(res.status).toBe(422);
    expect(res.body.issue[0]).toMatchObject({ severity: 'error', code: 'value', expression: ['Patient.identifier[0].value'] });
    expect(res.body.issue[0].diagnostics).toContain('invalid check character');
  });

  it('normalises an HL7 China OID to the NHC system and upgrades a 15-digit number, keeping the old one', async () => {
    const id = (zhangH1 = await create(patient('A1', 'H1', { identifier: [{ system: 'urn:huimin:hl7:H1:mrn', value: 'A1' }, { system: HL7_CHINA_RESIDENT_ID, value: ZHANG_15 }], name: [{ family: '张', given: ['伟'] }] })));
    const stored = await read(id);
    expect(stored.identifier).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ system: RESIDENT_ID_SYSTEM, value: ZHANG, use: 'official' }),
        expect.objectContaining({ system: RESIDENT_ID_SYSTEM, value: ZHANG_15, use: 'old' }),
      ]),
    );
    // Found by the old number too.
    const found = await request(p.server.app).get(`/fhir/Patient?identifier=${encodeURIComponent(`${RESIDENT_ID_SYSTEM}|${ZHANG_15}`)}`);
    expect(found.body.entry.map((e: { resource: Patient }) => e.resource.id)).toEqual([id]);
  });
});

describe('linking', () => {
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    ids.zhangH1 = zhangH1;
    ids.zhangH2 = await create(patient('Z2', 'H2', { identifier: [{ system: 'urn:huimin:hl7:H2:mrn', value: 'Z2' }, { system: RESIDENT_ID_SYSTEM, value: ZHANG }], name: [{ text: 'ZHANG Wei' }] }));
    ids.wangH1 = await create(patient('W1', 'H1', { name: [{ family: '王', given: ['伟'] }], birthDate: '1975-03-08', gender: 'male', telecom: [{ system: 'phone', value: '13800001111' }] }));
    ids.wangH2 = await create(patient('W2', 'H2', { name: [{ family: '王', given: ['玮'] }], birthDate: '1975-03-08', gender: 'male', telecom: [{ system: 'phone', value: '+86 138 0000 1111' }] }));
    ids.liH1 = await create(patient('L1', 'H1', { name: [{ family: '李', given: ['娜'] }], birthDate: '1992-05-05', gender: 'female' }));
    ids.liH2 = await create(patient('L2', 'H2', { name: [{ family: '李', given: ['娜'] }], birthDate: '1992-05-05', gender: 'female' }));
  });

  it('links on the national identifier: one golden record, refer and seealso links', async () => {
    const golden = await goldenOf(ids.zhangH1);
    expect(await goldenOf(ids.zhangH2)).toBe(golden);
    const record = await read(golden);
    expect(record.meta?.tag).toEqual([expect.objectContaining({ system: GOLDEN_TAG.system, code: 'golden' })]);
    expect(record.identifier).toEqual([expect.objectContaining({ system: MPI_SYSTEM, value: golden })]);
    expect(record.link?.filter((l) => l.type === 'seealso').map((l) => l.other.reference).sort()).toEqual([`Patient/${ids.zhangH1}`, `Patient/${ids.zhangH2}`].sort());
    expect(record.gender).toBe(undefined); // nothing sent; the index does not invent demographics on the resource
    const decisions = await operation(`Patient/${ids.zhangH2}/$mpi-decisions`);
    expect(decisions.body.parameter.map((d: { part: Array<{ name: string; valueCode?: string }> }) => d.part.find((x) => x.name === 'method')?.valueCode)).toContain('identifier');
  });

  it('is idempotent: a repeated event, or the index’s own writes, change nothing', async () => {
    const golden = await goldenOf(ids.zhangH1);
    const versions = async () => [(await read(golden)).meta?.versionId, (await read(ids.zhangH1)).meta?.versionId];
    const before = await versions();
    expect(await p.index.reconcile(ids.zhangH1)).toEqual({ sourceId: ids.zhangH1, goldenId: golden, action: 'unchanged' });
    expect(await p.index.reconcile(golden)).toEqual({ sourceId: golden, action: 'ignored' });
    expect(await versions()).toEqual(before);
  });

  it('links by score: a homophone typing error with the same birth date, sex and phone', async () => {
    expect(await goldenOf(ids.wangH2)).toBe(await goldenOf(ids.wangH1));
  });

  it('puts a name, birth date and sex alone on the review worklist, and a person decides', async () => {
    const [g1, g2] = [await goldenOf(ids.liH1), await goldenOf(ids.liH2)];
    expect(g1).not.toBe(g2);
    const list = await operation(`Patient/$mpi-review?patient=Patient/${ids.liH2}`);
    expect(list.status).toBe(200);
    const item = (list.body as Parameters).parameter?.[0];
    const reviewId = item?.part?.find((x) => x.name === 'id')?.valueInteger;
    expect(item?.part?.filter((x) => x.name === 'evidence').length).toBeGreaterThanOrEqual(3);
    // Stewardship is the administrators'.
    const { token } = await p.server.tokenFor({ role: 'facility-system', organization: 'Organization/h1' });
    const refused = await request(p.server.rawApp)
      .post('/fhir/Patient/$mpi-review-decide')
      .set('Authorization', `Bearer ${token}`)
      .set('Content-Type', FHIR_JSON)
      .send({ resourceType: 'Parameters', parameter: [{ name: 'review', valueInteger: reviewId }, { name: 'decision', valueCode: 'link' }] });
    expect(refused.status).toBe(403);
    const decided = await operation('Patient/$mpi-review-decide', { resourceType: 'Parameters', parameter: [{ name: 'review', valueInteger: reviewId }, { name: 'decision', valueCode: 'link' }] });
    expect(decided.status).toBe(200);
    const target = item?.part?.find((x) => x.name === 'golden')?.valueReference?.reference?.split('/')[1];
    const source = item?.part?.find((x) => x.name === 'source')?.valueReference?.reference?.split('/')[1] as string;
    expect(await goldenOf(source)).toBe(target);
  });

  it('undoes a link: the source gets its own golden record and is never linked back automatically', async () => {
    const before = await goldenOf(ids.wangH2);
    const res = await operation(`Patient/${ids.wangH2}/$mpi-unlink`, { resourceType: 'Parameters' });
    expect(res.status).toBe(200);
    const after = await goldenOf(ids.wangH2);
    expect(after).not.toBe(before);
    expect((await read(before)).link?.map((l) => l.other.reference)).toEqual([`Patient/${ids.wangH1}`]);
    // A later update of the hospital's record does not bring the link back.
    const current = await read(ids.wangH2);
    await request(p.server.app).put(`/fhir/Patient/${ids.wangH2}`).set('Content-Type', FHIR_JSON).send({ ...current, address: [{ text: '合肥市' }] }).expect(200);
    await p.index.reconcile(ids.wangH2);
    expect(await goldenOf(ids.wangH2)).toBe(after);
    const decisions = (await operation(`Patient/${ids.wangH2}/$mpi-decisions`)).body as Parameters;
    const undone = decisions.parameter?.find((d) => d.part?.some((x) => x.name === 'undoneBy'));
    expect(undone).toBeDefined();
  });

  it('keeps the refer link when a hospital rewrites its Patient without it (an ADT^A08)', async () => {
    const golden = await goldenOf(ids.zhangH2);
    await request(p.server.app)
      .put(`/fhir/Patient/${ids.zhangH2}`)
      .set('Content-Type', FHIR_JSON)
      .send(patient('Z2', 'H2', { id: ids.zhangH2, identifier: [{ system: 'urn:huimin:hl7:H2:mrn', value: 'Z2' }, { system: RESIDENT_ID_SYSTEM, value: ZHANG }], name: [{ text: 'ZHANG Wei' }], gender: 'male' } as Partial<Patient>))
      .expect(200);
    expect((await read(ids.zhangH2)).link).toEqual([{ other: { reference: `Patient/${golden}` }, type: 'refer' }]);
    expect(await eventually(async () => (await read(golden)).gender === 'male')).toBe(true);
  });

  it('$match: a certain match on the resident ID, probable ones by score, with onlyCertainMatches and count', async () => {
    const golden = await goldenOf(ids.zhangH1);
    const certain = await operation('Patient/$match', {
      resourceType: 'Parameters',
      parameter: [{ name: 'resource', resource: { resourceType: 'Patient', identifier: [{ system: 'urn:oid:2.16.156.10011.1.3', value: ZHANG_15 }] } }, { name: 'onlyCertainMatches', valueBoolean: true }],
    });
    expect(certain.status).toBe(200);
    const bundle = certain.body as Bundle;
    expect(bundle.entry?.map((e) => [e.resource?.id, e.search?.score, e.search?.extension?.[0]])).toEqual([[golden, 1, { url: MATCH_GRADE_EXTENSION, valueCode: 'certain' }]]);
    const byName = await operation('Patient/$match', {
      resourceType: 'Parameters',
      parameter: [
        { name: 'resource', resource: { resourceType: 'Patient', name: [{ family: '王', given: ['伟'] }], birthDate: '1975-03-08', gender: 'male', telecom: [{ system: 'phone', value: '13800001111' }] } },
        { name: 'count', valueInteger: 1 },
      ],
    });
    expect(byName.body.entry).toHaveLength(1);
    expect(byName.body.entry[0].search.extension[0].valueCode).toBe('probable');
    expect(byName.body.entry[0].search.score).toBeGreaterThan(0.7);
    const bad = await operation('Patient/$match', { resourceType: 'Parameters', parameter: [{ name: 'resource', resource: { resourceType: 'Patient', identifier: [{ system: RESIDENT_ID_SYSTEM, value: '110105194912310021' }] } }] });
    expect(bad.status).toBe(400);
    expect(bad.body.issue[0].diagnostics).toContain('check character');
    expect((await operation('Patient/$match', { resourceType: 'Parameters' })).status).toBe(400);
  });

  it('$ihe-pix: the identifiers of every hospital copy, and the enterprise id', async () => {
    const golden = await goldenOf(ids.zhangH1);
    const all = await operation(`Patient/$ihe-pix?sourceIdentifier=${encodeURIComponent(`${HL7_CHINA_RESIDENT_ID}|${ZHANG}`)}`);
    expect(all.status).toBe(200);
    const values = (all.body as Parameters).parameter?.filter((x) => x.name === 'targetIdentifier').map((x) => `${x.valueIdentifier?.system}|${x.valueIdentifier?.value}`);
    expect(values).toEqual(expect.arrayContaining(['urn:huimin:hl7:H1:mrn|A1', 'urn:huimin:hl7:H2:mrn|Z2', `${MPI_SYSTEM}|${golden}`]));
    const h2 = await operation(`Patient/$ihe-pix?sourceIdentifier=${encodeURIComponent('urn:huimin:hl7:H1:mrn|A1')}&targetSystem=${encodeURIComponent('urn:huimin:hl7:H2:mrn')}`);
    expect(h2.body.parameter).toEqual([
      { name: 'targetIdentifier', valueIdentifier: { system: 'urn:huimin:hl7:H2:mrn', value: 'Z2' } },
      { name: 'targetId', valueReference: { reference: `Patient/${ids.zhangH2}` } },
    ]);
    expect((await operation(`Patient/$ihe-pix?sourceIdentifier=${encodeURIComponent('urn:huimin:hl7:H1:mrn|nobody')}`)).status).toBe(404);
    expect((await operation(`Patient/$ihe-pix?sourceIdentifier=${encodeURIComponent('urn:nowhere|1')}`)).status).toBe(400);
    expect((await operation(`Patient/$ihe-pix?sourceIdentifier=${encodeURIComponent('urn:huimin:hl7:H1:mrn|A1')}&targetSystem=urn:nowhere`)).status).toBe(403);
  });

  it('$everything and patient= searches on a golden record find every hospital copy’s records, as security allows', async () => {
    const golden = await goldenOf(ids.zhangH1);
    const obs = (patientId: string, code: string): Observation => ({
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code }] },
      subject: { reference: `Patient/${patientId}` },
    });
    const o1 = await create(obs(ids.zhangH1, '2345-7'));
    const o2 = await create(obs(ids.zhangH2, '718-7'));
    const everything = await request(p.server.app).get(`/fhir/Patient/${golden}/$everything`);
    const found = (everything.body as Bundle).entry?.map((e) => `${e.resource?.resourceType}/${e.resource?.id}`) ?? [];
    expect(found.slice(0, 3).sort()).toEqual([`Patient/${golden}`, `Patient/${ids.zhangH1}`, `Patient/${ids.zhangH2}`].sort());
    expect(found).toEqual(expect.arrayContaining([`Observation/${o1}`, `Observation/${o2}`]));
    for (const query of [`patient=${golden}`, `subject=Patient/${golden}`, `subject:Patient=${golden}`, `patient=Patient/${golden}&code=http://loinc.org|718-7`]) {
      const res = await request(p.server.app).get(`/fhir/Observation?${query}`);
      expect([query, (res.body as Bundle).entry?.map((e) => e.resource?.id).sort()]).toEqual([query, query.includes('718-7') ? [o2] : [o1, o2].sort()]);
    }
    // A hospital copy's own search is not widened.
    const own = await request(p.server.app).get(`/fhir/Observation?patient=${ids.zhangH1}`);
    expect((own.body as Bundle).entry?.map((e) => e.resource?.id)).toEqual([o1]);
    // Consent: H2's copy's HIV-labelled records denied to everyone but their owner; the golden record's searches
    // and $everything leave them out.
    await request(p.server.app).put(`/fhir/Observation/${o2}`).set('Content-Type', FHIR_JSON).send({ ...obs(ids.zhangH2, '718-7'), id: o2, meta: { security: [HIV] } }).expect(200);
    await create(consent(ids.zhangH2, { type: 'deny', securityLabel: [HIV] }));
    const { token } = await p.server.tokenFor({ role: 'supervisor', organization: 'Organization/hosp-b', scope: 'system/*.rs' });
    const asB = await request(p.server.rawApp).get(`/fhir/Observation?patient=${golden}`).set('Authorization', `Bearer ${token}`);
    expect(asB.status).toBe(200);
    expect((asB.body as Bundle).entry?.map((e) => e.resource?.id)).toEqual([o1]);
    const everythingB = await request(p.server.rawApp).get(`/fhir/Patient/${golden}/$everything`).set('Authorization', `Bearer ${token}`);
    const seenB = (everythingB.body as Bundle).entry?.map((e) => `${e.resource?.resourceType}/${e.resource?.id}`) ?? [];
    expect(seenB).toContain(`Observation/${o1}`);
    expect(seenB).not.toContain(`Observation/${o2}`);
    // A hospital copy denied to hospital B as a whole hides that copy and its records from B, not the resident's
    // golden record: B still opens it and finds through it what it may see (H1's records).
    await request(p.server.app).put('/fhir/Organization/hosp-b').set('Content-Type', FHIR_JSON).send({ resourceType: 'Organization', id: 'hosp-b', name: 'Hospital B' }).expect(201);
    await create(consent(ids.zhangH2, { type: 'deny', actor: [{ role: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'IRCP' }] }, reference: { reference: 'Organization/hosp-b' } }] }));
    expect((await request(p.server.rawApp).get(`/fhir/Patient/${golden}`).set('Authorization', `Bearer ${token}`)).status).toBe(200);
    expect((await request(p.server.rawApp).get(`/fhir/Patient/${ids.zhangH2}`).set('Authorization', `Bearer ${token}`)).status).toBe(404);
    const deniedEverything = await request(p.server.rawApp).get(`/fhir/Patient/${golden}/$everything`).set('Authorization', `Bearer ${token}`);
    expect(deniedEverything.status).toBe(200);
    const seenDenied = (deniedEverything.body as Bundle).entry?.map((e) => `${e.resource?.resourceType}/${e.resource?.id}`) ?? [];
    expect(seenDenied).toEqual(expect.arrayContaining([`Patient/${golden}`, `Patient/${ids.zhangH1}`, `Observation/${o1}`]));
    expect(seenDenied).not.toContain(`Patient/${ids.zhangH2}`);
    expect(seenDenied).not.toContain(`Observation/${o2}`);
    expect(((await request(p.server.rawApp).get(`/fhir/Observation?patient=${golden}`).set('Authorization', `Bearer ${token}`)).body as Bundle).entry?.map((e) => e.resource?.id)).toEqual([o1]);
    const ownB = (await request(p.server.rawApp).get(`/fhir/Observation?patient=${ids.zhangH1}`).set('Authorization', `Bearer ${token}`)).body as Bundle;
    expect(ownB.entry?.map((e) => e.resource?.id)).toEqual([o1]);
  });

  it('lets a clinician with a care relationship with one hospital copy open the golden record, without break-the-glass', async () => {
    const golden = await goldenOf(ids.zhangH1);
    await request(p.server.app).put('/fhir/Organization/hosp-c').set('Content-Type', FHIR_JSON).send({ resourceType: 'Organization', id: 'hosp-c', name: 'Hospital C' }).expect(201);
    // A document filed under the golden record itself (as shared documents are).
    const doc = await create({ resourceType: 'DocumentReference', status: 'current', subject: { reference: `Patient/${golden}` }, content: [{ attachment: { contentType: 'text/plain', data: 'aGk=' } }] });
    const { token } = await p.server.tokenFor({ role: 'clinician', organization: 'Organization/hosp-c', practitioner: 'Practitioner/dr-c' });
    const get = (path: string): request.Test => request(p.server.rawApp).get(`/fhir/${path}`).set('Authorization', `Bearer ${token}`);
    expect((await get(`Patient/${golden}`)).status).toBe(404);
    expect((await get(`DocumentReference/${doc}`)).status).toBe(404);
    // Hospital C sees the resident: an encounter with its copy at hospital 1.
    await create({ resourceType: 'Encounter', status: 'in-progress', class: { code: 'AMB' }, subject: { reference: `Patient/${ids.zhangH1}` }, serviceProvider: { reference: 'Organization/hosp-c' } });
    expect((await get(`Patient/${golden}`)).status).toBe(200);
    expect((await get(`DocumentReference/${doc}`)).status).toBe(200);
    expect(((await get(`DocumentReference?patient=${golden}`)).body as Bundle).entry?.map((e) => e.resource?.id)).toEqual([doc]);
    const everything = (await get(`Patient/${golden}/$everything`)).body as Bundle;
    expect(everything.entry?.map((e) => `${e.resource?.resourceType}/${e.resource?.id}`)).toEqual(expect.arrayContaining([`Patient/${golden}`, `DocumentReference/${doc}`]));
    // The other hospital's copy is one link further (copy → golden → copy): it keeps needing a care relationship of its own.
    expect(((await get(`Observation?patient=${ids.zhangH2}`)).body as Bundle).entry ?? []).toEqual([]);
  });

  it('$merge: the source kept inactive with replaced-by, its records under the survivor’s golden record', async () => {
    const a = await create(patient('M1', 'H3', { name: [{ family: '孙', given: ['丽'] }], birthDate: '1960-01-01', gender: 'female' }));
    const b = await create(patient('M2', 'H3', { name: [{ family: '钱', given: ['多'] }], birthDate: '1961-02-02', gender: 'male' }));
    const [ga, gb] = [await goldenOf(a), await goldenOf(b)];
    expect(ga).not.toBe(gb);
    const preview = await operation('Patient/$merge', { resourceType: 'Parameters', parameter: [{ name: 'source-patient', valueReference: { reference: `Patient/${a}` } }, { name: 'target-patient', valueReference: { reference: `Patient/${b}` } }, { name: 'preview', valueBoolean: true }] });
    expect(preview.status).toBe(200);
    expect((await read(a)).active).not.toBe(false);
    const res = await operation('Patient/$merge', {
      resourceType: 'Parameters',
      parameter: [{ name: 'source-patient-identifier', valueIdentifier: { system: 'urn:huimin:hl7:H3:mrn', value: 'M1' } }, { name: 'target-patient', valueReference: { reference: `Patient/${b}` } }],
    });
    expect(res.status).toBe(200);
    const result = (res.body as Parameters).parameter?.find((x) => x.name === 'result')?.resource as Patient;
    expect(result.link).toEqual(expect.arrayContaining([{ other: { reference: `Patient/${a}` }, type: 'replaces' }]));
    const prior = await read(a);
    expect(prior.active).toBe(false);
    expect(prior.link).toEqual(expect.arrayContaining([{ other: { reference: `Patient/${b}` }, type: 'replaced-by' }]));
    expect(await goldenOf(a)).toBe(gb);
    // The history of the source is kept.
    const history = await request(p.server.app).get(`/fhir/Patient/${a}/_history`);
    expect((history.body as Bundle).total ?? history.body.entry.length).toBeGreaterThanOrEqual(2);
    // The emptied golden record points to where its source went.
    expect((await read(ga)).link).toEqual([{ other: { reference: `Patient/${gb}` }, type: 'replaced-by' }]);
    const again = await operation('Patient/$merge', { resourceType: 'Parameters', parameter: [{ name: 'source-patient', valueReference: { reference: `Patient/${a}` } }, { name: 'target-patient', valueReference: { reference: `Patient/${b}` } }] });
    expect(again.status).toBe(422);
    const golden = await operation('Patient/$merge', { resourceType: 'Parameters', parameter: [{ name: 'source-patient', valueReference: { reference: `Patient/${gb}` } }, { name: 'target-patient', valueReference: { reference: `Patient/${b}` } }] });
    expect(golden.status).toBe(400);
  });
});
