/**
 * End to end: results arrive by HL7 ORU^R01 from hospital A with A's local codes; hospital B orders the same LOINC
 * test with its own local codes (FHIR ServiceRequest, or HL7 ORM^O01); the engine advises when a result is within
 * the item's window and from a lab holding an HR grant, and not otherwise; the ordering doctor accepts or overrides;
 * the bureau's figures add up over the month.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Bundle, Consent, DetectedIssue, DiagnosticReport, Encounter, HealthcareService, List, MeasureReport, MedicationRequest, Observation, Parameters, Patient, ServiceRequest } from '@medplum/fhirtypes';
import request from 'supertest';
import { OWNER_TAG_SYSTEM } from '../../fhir-server';
import { hospitalLabSystem } from '../../terminology';
import { recognitionCodes, recognitionIndicator, recognitionWindows, residentPatients } from '..';
import { BUREAU, hl7Time, startPlatform, waitFor, type Platform } from './harness';

const { ADVISORY_ID, GRANT_EXTENSION, GRANT_TAG_CODE, GRANT_TAG_SYSTEM, MARK_SYSTEM, SCOPE_SYSTEM, ISSUE_SYSTEM, EXCEPTION_REASON_SYSTEM, STATUS_REASON_EXTENSION } = recognitionCodes;
const JSON_TYPE = 'application/fhir+json';
const LOINC = 'http://loinc.org';

let p: Platform;
const tokens: Record<string, string> = {};
let hook: { url: string; bodies: string[]; close(): Promise<void> };

function auth(name: string): { Authorization: string } {
  return { Authorization: `Bearer ${tokens[name]}` };
}

async function post<T>(path: string, body: unknown, as: string, expect = 201): Promise<T> {
  const res = await request(p.server.rawApp).post(`/fhir/${path}`).set(auth(as)).set('Content-Type', JSON_TYPE).send(body as object);
  if (res.status !== expect) throw new Error(`POST ${path} answered ${res.status}: ${JSON.stringify(res.body)}`);
  return res.body as T;
}

async function startHook(): Promise<typeof hook> {
  const bodies: string[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      bodies.push(`${req.method} ${req.url} ${Buffer.concat(chunks).toString('utf8')}`);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    bodies,
    close: () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  };
}

let seq = 0;
/**
 * An ORU^R01 from a hospital: one OBR (taken `daysAgo`) with OBX lines [local code, name, value, unit], and OBX-23
 * (performing organization, XON) when the sender names the department.
 */
async function sendResults(hospital: string, mrn: string, daysAgo: number, lines: Array<[string, string, string, string]>, performer = '', specimenType = ''): Promise<void> {
  seq++;
  const taken = hl7Time(daysAgo);
  const obr = ['OBR', '1', `P${seq}`, `F${seq}`, 'CHEM^生化^L', '', '', taken, ...Array(14).fill(''), hl7Time(daysAgo - 0.1), '', '', 'F'].join('|');
  const ack = await p.send(
    `MSH|^~\\&|LIS|${hospital}|HUIMIN|CITY|${hl7Time(0)}||ORU^R01^ORU_R01|M${seq}|P|2.5|||||CHN|UNICODE UTF-8`,
    `PID|1||${mrn}^^^${hospital}^MR||TEST^${mrn}||19800101|F`,
    obr,
    ...lines.map(([code, name, value, unit], i) => `OBX|${i + 1}|NM|${code}^${name}^L||${value}|${unit}|||||F|||${taken}${performer ? `|||||||||${performer}` : ''}`),
    ...(specimenType ? [`SPM|1|S${seq}||${specimenType}|||||||||||||${taken}`] : []),
  );
  expect(ack).toBe('AA');
}

async function patientByMrn(mrn: string): Promise<Patient> {
  return waitFor(async () => (await p.search<Patient>('Patient', `identifier=${mrn}`))[0], `patient ${mrn}`);
}

/** Hand-links a resident's records the way the master patient index does: source → golden (refer), golden → sources (seealso). */
async function link(...sources: Patient[]): Promise<void> {
  const golden = await post<Patient>('Patient', { resourceType: 'Patient', link: sources.map((s) => ({ other: { reference: `Patient/${s.id}` }, type: 'seealso' })) }, 'admin');
  for (const source of sources) {
    const current = (await request(p.server.app).get(`/fhir/Patient/${source.id}`).expect(200)).body as Patient;
    await request(p.server.app).put(`/fhir/Patient/${source.id}`).set('Content-Type', JSON_TYPE).send({ ...current, link: [{ other: { reference: `Patient/${golden.id}` }, type: 'refer' }] }).expect(200);
  }
}

/** Hospital B's patient for a resident, with a visit (so B's clinicians have a care relationship). */
async function patientAtB(name: string): Promise<{ patient: Patient; encounter: Encounter }> {
  const patient = await post<Patient>('Patient', { resourceType: 'Patient', identifier: [{ system: 'urn:huimin:hosp-b:mrn', value: name }], name: [{ family: name }] }, 'b-system');
  const encounter = await post<Encounter>('Encounter', { resourceType: 'Encounter', status: 'in-progress', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' }, subject: { reference: `Patient/${patient.id}` }, serviceProvider: { reference: 'Organization/HOSP-B' } }, 'b-system');
  return { patient, encounter };
}

async function orderAtB(patient: Patient, encounter: Encounter, localCode: string, specimen?: string): Promise<ServiceRequest> {
  return post<ServiceRequest>(
    'ServiceRequest',
    {
      resourceType: 'ServiceRequest',
      status: 'active',
      intent: 'order',
      category: [{ coding: [{ system: 'http://snomed.info/sct', code: '108252007', display: 'Laboratory procedure' }] }],
      code: { coding: [{ system: hospitalLabSystem('HOSP-B'), code: localCode }] },
      subject: { reference: `Patient/${patient.id}` },
      encounter: { reference: `Encounter/${encounter.id}` },
      requester: { reference: 'PractitionerRole/doc-b-im' },
      authoredOn: new Date().toISOString(),
      ...(specimen ? { specimen: [{ reference: specimen }] } : {}),
    },
    'b-system',
  );
}

/** Waits until the engine checked the order, then gives its advisory (if any). */
async function advisoryOf(order: { resourceType: string; id?: string }): Promise<DetectedIssue | undefined> {
  await waitFor(() => p.checked.has(`${order.resourceType}/${order.id}`), `check of ${order.resourceType}/${order.id}`);
  // The order's own advisory (another order's advisory may implicate it too: the prescription at A, once B's exists).
  return (await p.search<DetectedIssue>('DetectedIssue', `identifier=${encodeURIComponent(ADVISORY_ID)}|${order.resourceType}-${order.id}`))[0];
}

async function decide(issue: DetectedIssue, operation: string, as: string, parameters: Parameters['parameter'] = []) {
  return request(p.server.rawApp).post(`/fhir/DetectedIssue/${issue.id}/$${operation}`).set(auth(as)).set('Content-Type', JSON_TYPE).send({ resourceType: 'Parameters', parameter: parameters });
}

const r1: Record<string, string> = {};

beforeAll(async () => {
  p = await startPlatform();
  hook = await startHook();
  await p.registerFacility('HOSP-A', 'Hospital A');
  await p.registerFacility('HOSP-B', 'Hospital B');
  await p.registerFacility('HOSP-C', 'Hospital C');
  // Hospital A's and B's staff map their own local codes to LOINC (the terminology module's CSV ConceptMaps).
  await p.loadConceptMap('HOSP-A', [
    ['K', '血钾', '2823-3', 'Potassium [Moles/volume] in Serum or Plasma'],
    ['GLU', '血糖', '14749-6', 'Glucose [Moles/volume] in Serum or Plasma'],
    ['UK', '尿钾', '2828-2', 'Potassium [Moles/volume] in Urine'],
  ]);
  await p.loadConceptMap('HOSP-B', [
    ['XK', '钾', '2823-3', 'Potassium [Moles/volume] in Serum or Plasma'],
    ['XGLU', '葡萄糖', '14749-6', 'Glucose [Moles/volume] in Serum or Plasma'],
  ]);
  await p.loadConceptMap('HOSP-C', [['KC', '钾', '2823-3', 'Potassium [Moles/volume] in Serum or Plasma']]);
  for (const [name, spec] of Object.entries({
    admin: { role: 'admin' as const },
    bureau: { role: 'facility-system' as const, organization: BUREAU },
    supervisor: { role: 'supervisor' as const, organization: BUREAU },
    'a-system': { role: 'facility-system' as const, organization: 'Organization/HOSP-A' },
    'b-system': { role: 'facility-system' as const, organization: 'Organization/HOSP-B' },
    'b-doctor': { role: 'clinician' as const, organization: 'Organization/HOSP-B', practitioner: 'Practitioner/doc-b' },
    'c-system': { role: 'facility-system' as const, organization: 'Organization/HOSP-C' },
    'c-doctor': { role: 'clinician' as const, organization: 'Organization/HOSP-C', practitioner: 'Practitioner/doc-c' },
  })) {
    tokens[name] = (await p.server.tokenFor(spec)).token;
  }
  // B's internal medicine department and its doctor.
  const fhir = (body: object) => request(p.server.app).put(`/fhir/${(body as { resourceType: string }).resourceType}/${(body as { id: string }).id}`).set('Content-Type', JSON_TYPE).send(body).expect((r) => expect([200, 201]).toContain(r.status));
  // A's departments, registered with the codes A's LIS sends in OBX-23: the laboratory (the grant holder) and the
  // emergency laboratory (no grant).
  await fhir({ resourceType: 'Organization', id: 'HOSP-A-LAB', name: 'Hospital A laboratory', identifier: [{ system: 'urn:huimin:hosp-a:department', value: 'LAB01' }], partOf: { reference: 'Organization/HOSP-A' } });
  await fhir({ resourceType: 'Organization', id: 'HOSP-A-ER', name: 'Hospital A emergency laboratory', identifier: [{ system: 'urn:huimin:hosp-a:department', value: 'ELAB' }], partOf: { reference: 'Organization/HOSP-A' } });
  await fhir({ resourceType: 'Organization', id: 'HOSP-B-IM', name: 'Hospital B internal medicine', partOf: { reference: 'Organization/HOSP-B' } });
  await fhir({ resourceType: 'Practitioner', id: 'doc-b', name: [{ family: '李' }] });
  await fhir({ resourceType: 'PractitionerRole', id: 'doc-b-im', practitioner: { reference: 'Practitioner/doc-b' }, organization: { reference: 'Organization/HOSP-B-IM' } });
  // The bureau grants A's laboratory the provincial mark for potassium and glucose, valid this year and next.
  const year = new Date().getUTCFullYear();
  const grant = (holder: string, scope: string, items: string[]): HealthcareService => ({
    resourceType: 'HealthcareService',
    meta: { tag: [{ system: GRANT_TAG_SYSTEM, code: GRANT_TAG_CODE }] },
    active: true,
    providedBy: { reference: holder },
    name: 'Recognised laboratory items',
    type: items.map((code) => ({ coding: [{ system: LOINC, code }] })),
    extension: [{ url: GRANT_EXTENSION, extension: [{ url: 'scope', valueCoding: { system: SCOPE_SYSTEM, code: 'provincial', display: scope } }, { url: 'period', valuePeriod: { start: `${year - 1}-01-01`, end: `${year + 1}-12-31` } }] }],
  });
  await post('HealthcareService', grant('Organization/HOSP-A-LAB', '本省', ['2823-3', '14749-6', '2828-2']), 'bureau');
  // Hospital C "grants" itself a mark: not the bureau's, so it does not count.
  await post('HealthcareService', grant('Organization/HOSP-C', '本省', ['2823-3']), 'c-system');
  // B's ordering system subscribes to its advisories (the resource is PUT to [endpoint]/DetectedIssue/[id]).
  await post('Subscription', { resourceType: 'Subscription', status: 'requested', reason: 'recognition advisories', criteria: `DetectedIssue?_security=${OWNER_TAG_SYSTEM}|Organization/HOSP-B`, channel: { type: 'rest-hook', endpoint: hook.url, payload: JSON_TYPE } }, 'admin');
  // The bureau prices potassium (cost saved).
  const priced = await request(p.server.rawApp).post('/fhir/$recognition-item-set').set(auth('supervisor')).set('Content-Type', JSON_TYPE)
    .send({ resourceType: 'Parameters', parameter: [{ name: 'code', valueString: '2823-3' }, { name: 'windowDays', valueInteger: 7 }, { name: 'price', valueDecimal: 12.5 }] });
  expect(priced.status).toBe(200);
});

afterAll(async () => {
  await p?.close();
  await hook?.close();
});

afterEach(() => {
  expect(p.errors).toEqual([]);
});

describe('an order from hospital B for a test the resident had at hospital A', () => {
  it('is advised when the result is within the window and from a qualified lab, with the mark and a notification', async () => {
    await sendResults('HOSP-A', 'R1-A', 2, [['K', '血钾', '4.1', 'mmol/L'], ['GLU', '血糖', '6.0', 'mmol/L']]);
    const { patient, encounter } = await patientAtB('R1');
    await link(await patientByMrn('R1-A'), patient);
    r1.patient = patient.id as string;
    r1.encounter = encounter.id as string;
    const order = await orderAtB(patient, encounter, 'XK');
    const issue = await advisoryOf(order);
    expect(issue).toBeDefined();
    r1.order = order.id as string;
    r1.issue = issue?.id as string;
    expect(issue?.code?.coding?.[0]).toMatchObject({ system: ISSUE_SYSTEM, code: 'duplicate-test' });
    expect(issue?.implicated?.[0].reference).toBe(`ServiceRequest/${order.id}`);
    const potassium = (await p.search<Observation>('Observation', `code=${LOINC}|2823-3&subject=Patient/${(await patientByMrn('R1-A')).id}`))[0];
    expect(issue?.implicated?.map((r) => r.reference)).toContain(`Observation/${potassium.id}`);
    expect(issue?.detail).toContain('本省HR');
    expect(issue?.meta?.security).toContainEqual(expect.objectContaining({ system: OWNER_TAG_SYSTEM, code: 'Organization/HOSP-B' }));
    // B's ordering system is told through its Subscription.
    await waitFor(() => hook.bodies.some((b) => b.startsWith(`PUT /hook/DetectedIssue/${issue?.id} `)), 'subscription notification');

    // The same question on demand, by B's code or LOINC, from B's doctor: the result carries its mark.
    const noCode = await request(p.server.rawApp).get(`/fhir/Patient/${patient.id}/$recognizable-results`).set(auth('b-doctor'));
    expect([noCode.status, noCode.body.issue?.[0]?.diagnostics]).toEqual([400, expect.stringContaining('"code" is required')]);
    for (const code of [`${LOINC}|2823-3`, `${hospitalLabSystem('HOSP-B')}|XK`]) {
      const res = await request(p.server.rawApp).get(`/fhir/Patient/${patient.id}/$recognizable-results`).query({ code }).set(auth('b-doctor')).expect(200);
      const bundle = res.body as Bundle<Observation>;
      expect(bundle.entry?.map((e) => e.resource?.id)).toEqual([potassium.id]);
      expect(bundle.entry?.[0].resource?.meta?.tag).toContainEqual({ system: MARK_SYSTEM, code: '本省HR', display: '本省HR' });
    }
  });

  it('is not advised outside the item window, though another item of the same age is', async () => {
    await sendResults('HOSP-A', 'R2-A', 10, [['K', '血钾', '4.0', 'mmol/L'], ['GLU', '血糖', '5.5', 'mmol/L']]);
    const { patient, encounter } = await patientAtB('R2');
    await link(await patientByMrn('R2-A'), patient);
    expect(await advisoryOf(await orderAtB(patient, encounter, 'XK'))).toBeUndefined(); // potassium: 7 days
    expect(await advisoryOf(await orderAtB(patient, encounter, 'XGLU'))).toBeDefined(); // glucose: 30 days
  });

  it('is not advised for a result from a lab without the bureau grant', async () => {
    await sendResults('HOSP-C', 'R3-C', 1, [['KC', '钾', '4.2', 'mmol/L']]);
    const { patient, encounter } = await patientAtB('R3');
    await link(await patientByMrn('R3-C'), patient);
    expect(await advisoryOf(await orderAtB(patient, encounter, 'XK'))).toBeUndefined();
  });

  it('is not advised for a result of another specimen (urine potassium for a serum potassium order)', async () => {
    await sendResults('HOSP-A', 'R4-A', 1, [['UK', '尿钾', '40', 'mmol/L']]);
    const { patient, encounter } = await patientAtB('R4');
    await link(await patientByMrn('R4-A'), patient);
    expect(await advisoryOf(await orderAtB(patient, encounter, 'XK'))).toBeUndefined();
  });

  it('follows the performing department (OBX-23): the granted laboratory qualifies, another department of the same hospital does not', async () => {
    await sendResults('HOSP-A', 'R6-A', 1, [['K', '血钾', '4.3', 'mmol/L']], '检验科^^^^^HOSP-A^XX^^^LAB01');
    await sendResults('HOSP-A', 'R7-A', 1, [['K', '血钾', '4.4', 'mmol/L']], '急诊检验科^^^^^HOSP-A^XX^^^ELAB');
    const lab = (await p.search<Observation>('Observation', `subject=Patient/${(await patientByMrn('R6-A')).id}`))[0];
    expect(lab.performer).toEqual([{ reference: 'Organization/HOSP-A-LAB', display: '检验科' }]);
    const er = (await p.search<Observation>('Observation', `subject=Patient/${(await patientByMrn('R7-A')).id}`))[0];
    expect(er.performer).toEqual([{ reference: 'Organization/HOSP-A-ER', display: '急诊检验科' }]);

    const six = await patientAtB('R6');
    await link(await patientByMrn('R6-A'), six.patient);
    const advised = await advisoryOf(await orderAtB(six.patient, six.encounter, 'XK'));
    expect(advised?.implicated?.map((r) => r.reference)).toContain(`Observation/${lab.id}`);

    // The emergency laboratory is part of hospital A too, but the grant is the laboratory's.
    const seven = await patientAtB('R7');
    await link(await patientByMrn('R7-A'), seven.patient);
    expect(await advisoryOf(await orderAtB(seven.patient, seven.encounter, 'XK'))).toBeUndefined();
  });

  it('compares specimen types only in a code system both sides use (SPM with a local table says nothing to B)', async () => {
    const serum = await post<{ id: string }>('Specimen', { resourceType: 'Specimen', type: { coding: [{ system: 'http://snomed.info/sct', code: '119364003', display: 'Serum specimen' }] } }, 'b-system');
    // A's LIS names the specimen in its own table: not comparable with B's SNOMED type, LOINC decides.
    await sendResults('HOSP-A', 'R8-A', 1, [['K', '血钾', '4.2', 'mmol/L']], '', 'SER^血清^L');
    const eight = await patientAtB('R8');
    await link(await patientByMrn('R8-A'), eight.patient);
    expect(await advisoryOf(await orderAtB(eight.patient, eight.encounter, 'XK', `Specimen/${serum.id}`))).toBeDefined();
    // Both in SNOMED, and different: plasma is not the serum the order asks for.
    await sendResults('HOSP-A', 'R9-A', 1, [['K', '血钾', '4.2', 'mmol/L']], '', '119361006^Plasma specimen^SCT');
    const nine = await patientAtB('R9');
    await link(await patientByMrn('R9-A'), nine.patient);
    expect(await advisoryOf(await orderAtB(nine.patient, nine.encounter, 'XK', `Specimen/${serum.id}`))).toBeUndefined();
  });

  it('finds every linked record of the resident, from any of them', async () => {
    const a = await patientByMrn('R1-A');
    const fromB = await residentPatients(p.server.repository, r1.patient);
    const fromA = await residentPatients(p.server.repository, a.id as string);
    expect(fromB).toContain(`Patient/${a.id}`);
    expect(new Set(fromA)).toEqual(new Set(fromB));
  });
});

describe('the ordering doctor decides', () => {
  it('refuses decisions from other roles and institutions', async () => {
    const issue = { id: r1.issue } as DetectedIssue;
    expect((await decide(issue, 'recognition-accept', 'supervisor')).status).toBe(403);
    expect([403, 404]).toContain((await decide(issue, 'recognition-accept', 'c-doctor')).status);
  });

  it('accepts: the order is revoked as recognised and the result is listed for the encounter', async () => {
    const res = await decide({ id: r1.issue } as DetectedIssue, 'recognition-accept', 'b-doctor');
    expect(res.status).toBe(200);
    expect((res.body as DetectedIssue).mitigation?.[0]).toMatchObject({ action: { coding: [{ code: 'recognised' }] }, author: { reference: 'Practitioner/doc-b' } });
    const order = (await request(p.server.app).get(`/fhir/ServiceRequest/${r1.order}`).expect(200)).body as ServiceRequest;
    expect(order.status).toBe('revoked');
    expect(order.extension?.find((e) => e.url === STATUS_REASON_EXTENSION)?.valueCodeableConcept?.coding?.[0].code).toBe('recognised');
    const lists = await p.search<List>('List', `encounter=Encounter/${r1.encounter}`);
    expect(lists).toHaveLength(1);
    expect(lists[0].entry?.[0].item.reference).toMatch(/^Observation\//);
    // Decided once only.
    expect((await decide({ id: r1.issue } as DetectedIssue, 'recognition-accept', 'b-doctor')).status).toBe(409);
    // On the audit record, like every request: the decision names the advisory.
    await waitFor(async () => {
      const audit = await request(p.server.rawApp).get('/fhir/AuditEvent').query({ entity: `DetectedIssue/${r1.issue}` }).set(auth('supervisor'));
      return audit.status === 200 && JSON.stringify(audit.body).includes('recognition-accept');
    }, 'the audit event of the decision');
  });

  it('overrides with a coded reason; serial monitoring must name the disease', async () => {
    const patient = { id: r1.patient } as Patient;
    const encounter = { id: r1.encounter } as Encounter;
    const glucose = await advisoryOf(await orderAtB(patient, encounter, 'XGLU'));
    expect(glucose).toBeDefined();
    const missing = await decide(glucose as DetectedIssue, 'recognition-override', 'b-doctor', [{ name: 'reason', valueCoding: { system: EXCEPTION_REASON_SYSTEM, code: 'serial-monitoring' } }]);
    expect(missing.status).toBe(400);
    expect(JSON.stringify(missing.body)).toContain('disease');
    expect((await decide(glucose as DetectedIssue, 'recognition-override', 'b-doctor', [{ name: 'reason', valueCode: 'no-such-reason' }])).status).toBe(400);
    const monitored = await decide(glucose as DetectedIssue, 'recognition-override', 'b-doctor', [
      { name: 'reason', valueCoding: { system: EXCEPTION_REASON_SYSTEM, code: 'serial-monitoring' } },
      { name: 'disease', valueCodeableConcept: { coding: [{ system: 'http://hl7.org/fhir/sid/icd-10', code: 'E11.9' }], text: '2型糖尿病' } },
    ]);
    expect(monitored.status).toBe(200);
    expect((monitored.body as DetectedIssue).mitigation?.[0].action.coding?.[0]).toMatchObject({ system: EXCEPTION_REASON_SYSTEM, code: 'serial-monitoring' });
    // A second potassium order: advised again, overridden because the condition changed. The order stays active.
    const again = await orderAtB(patient, encounter, 'XK');
    const issue = await advisoryOf(again);
    expect(issue).toBeDefined();
    expect((await decide(issue as DetectedIssue, 'recognition-override', 'b-doctor', [{ name: 'reason', valueCode: 'condition-changed' }, { name: 'note', valueString: '血钾波动' }])).status).toBe(200);
    expect(((await request(p.server.app).get(`/fhir/ServiceRequest/${again.id}`).expect(200)).body as ServiceRequest).status).toBe('active');
  });
});

describe('orders by HL7 and prescriptions', () => {
  it('advises an ORM^O01 from hospital B, answers the order with ORR^O02 and sends the prior result to its HIS as ORU^R01', async () => {
    await post('Endpoint', {
      resourceType: 'Endpoint',
      status: 'active',
      connectionType: { system: 'http://terminology.hl7.org/CodeSystem/endpoint-connection-type', code: 'hl7v2-mllp' },
      managingOrganization: { reference: 'Organization/HOSP-B' },
      payloadType: [{ text: 'HL7 v2' }],
      address: 'mllp://127.0.0.1:9',
    }, 'admin');
    await sendResults('HOSP-A', 'R5-A', 1, [['K', '血钾', '3.9', 'mmol/L']]);
    expect(await p.send(`MSH|^~\\&|HIS|HOSP-B|HUIMIN|CITY|${hl7Time(0)}||ADT^A04^ADT_A01|B5-1|P|2.5|||||CHN|UNICODE UTF-8`, `EVN|A04|${hl7Time(0)}`, 'PID|1||R5-B^^^HOSP-B^MR||TEST^R5||19800101|F', 'PV1|1|O')).toBe('AA');
    await link(await patientByMrn('R5-A'), await patientByMrn('R5-B'));
    expect(await p.send(
      `MSH|^~\\&|HIS|HOSP-B|HUIMIN|CITY|${hl7Time(0)}||ORM^O01^ORM_O01|B5-2|P|2.5|||||CHN|UNICODE UTF-8`,
      'PID|1||R5-B^^^HOSP-B^MR||TEST^R5||19800101|F',
      `ORC|NW|ORD-R5||||||||||`,
      'OBR|1|ORD-R5||XK^钾^L',
    )).toBe('AA');
    const order = await waitFor(async () => (await p.search<ServiceRequest>('ServiceRequest', 'identifier=ORD-R5'))[0], 'the HL7 order');
    expect(order.code?.coding?.[0]).toMatchObject({ system: LOINC, code: '2823-3' });
    const issue = await advisoryOf(order);
    expect(issue).toBeDefined();
    const report = (await p.search<DiagnosticReport>('DiagnosticReport', `subject=Patient/${(await patientByMrn('R5-A')).id}`))[0];
    expect(p.outbound).toContainEqual(expect.objectContaining({ kind: 'result', resource: `DiagnosticReport/${report.id}`, facility: 'HOSP-B', facilityKey: 'HOSP-B' }));
    // The order is answered as an order: ORR^O02 (the adapters' outbound builds it from the ORM^O01 it came in).
    expect(p.outbound).toContainEqual(expect.objectContaining({ kind: 'order-response', resource: `ServiceRequest/${order.id}`, advisory: `DetectedIssue/${issue?.id}`, facility: 'HOSP-B' }));
  });

  it('advises a prescription whose ingredient is active at another hospital (WS/T 790.18)', async () => {
    const a = await patientByMrn('R1-A');
    const metformin = { coding: [{ system: 'http://www.whocc.no/atc', code: 'A10BA02', display: 'metformin' }] };
    await post('MedicationRequest', { resourceType: 'MedicationRequest', status: 'active', intent: 'order', medicationCodeableConcept: metformin, subject: { reference: `Patient/${a.id}` } }, 'a-system');
    const mine = await post<MedicationRequest>('MedicationRequest', { resourceType: 'MedicationRequest', status: 'active', intent: 'order', medicationCodeableConcept: metformin, subject: { reference: `Patient/${r1.patient}` }, requester: { reference: 'PractitionerRole/doc-b-im' } }, 'b-system');
    const issue = await advisoryOf(mine);
    expect(issue?.code?.coding?.map((c) => c.code)).toEqual(['duplicate-medication', 'DUPTHPY']);
    const other = await post<MedicationRequest>('MedicationRequest', { resourceType: 'MedicationRequest', status: 'active', intent: 'order', medicationCodeableConcept: { coding: [{ system: 'http://www.whocc.no/atc', code: 'C09AA05' }] }, subject: { reference: `Patient/${r1.patient}` } }, 'b-system');
    expect(await advisoryOf(other)).toBeUndefined();
    expect((await decide(issue as DetectedIssue, 'recognition-accept', 'b-doctor')).status).toBe(200);
    expect(((await request(p.server.app).get(`/fhir/MedicationRequest/${mine.id}`).expect(200)).body as MedicationRequest).status).toBe('cancelled');
  });
});

describe('consent and the bureau', () => {
  it("leaves out records whose consent denies sharing with the asker", async () => {
    const a = await patientByMrn('R2-A');
    const [b] = await p.search<Patient>('Patient', 'identifier=urn:huimin:hosp-b:mrn|R2');
    const ask = () => request(p.server.rawApp).get(`/fhir/Patient/${b.id}/$recognizable-results`).query({ code: `${LOINC}|14749-6` }).set(auth('b-doctor')).expect(200);
    expect((await ask()).body.total).toBe(1);
    await post<Consent>('Consent', {
      resourceType: 'Consent',
      status: 'active',
      scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
      category: [{ coding: [{ system: LOINC, code: '59284-0' }] }],
      patient: { reference: `Patient/${a.id}` },
      policyRule: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'OPTIN' }] },
      provision: { type: 'permit', provision: [{ type: 'deny', actor: [{ role: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'IRCP' }] }, reference: { reference: 'Organization/HOSP-B' } }] }] },
    }, 'admin');
    expect((await ask()).body.total).toBe(0);
  });

  it('edits the item table (supervisors and administrators only) and serves the windows to other modules', async () => {
    const windows = recognitionWindows(p.server.repository);
    expect(await windows.windowDays(LOINC, '2823-3')).toBe(7);
    expect(await windows.windowDays(LOINC, '4548-4')).toBe(60);
    expect(await windows.windowDays(LOINC, '2885-2')).toBe(30);
    expect(await windows.windowDays(LOINC, '0000-0')).toBeUndefined();
    const set = (as: string, parameter: Parameters['parameter']) => request(p.server.rawApp).post('/fhir/$recognition-item-set').set(auth(as)).set('Content-Type', JSON_TYPE).send({ resourceType: 'Parameters', parameter });
    expect((await set('b-doctor', [{ name: 'code', valueString: '2885-2' }, { name: 'windowDays', valueInteger: 14 }])).status).toBe(403);
    expect((await set('supervisor', [{ name: 'code', valueString: '2885-2' }, { name: 'windowDays', valueInteger: 0 }])).status).toBe(400);
    expect((await set('supervisor', [{ name: 'code', valueString: '2885-2' }, { name: 'windowDays', valueInteger: 14 }])).status).toBe(200);
    await waitFor(async () => (await windows.windowDays(LOINC, '2885-2')) === 14, 'the new window', 10_000);
    const list = await request(p.server.rawApp).get('/fhir/$recognition-items').set(auth('b-doctor')).expect(200);
    expect(JSON.stringify(list.body)).toContain('4548-4');
  });

  it("reports the month's figures per institution, department and doctor", async () => {
    expect((await request(p.server.rawApp).get('/fhir/$recognition-report').set(auth('b-doctor'))).status).toBe(403);
    const res = await request(p.server.rawApp).get('/fhir/$recognition-report').set(auth('supervisor')).expect(200);
    const reports = ((res.body as Bundle<MeasureReport>).entry ?? []).map((e) => e.resource as MeasureReport);
    const b = reports.find((r) => r.reporter?.reference === 'Organization/HOSP-B');
    const group = (code: string) => b?.group?.find((g) => g.code?.coding?.[0].code === code);
    const count = (code: string) => group(code)?.population?.[0].count;
    expect(count('recognised')).toBe(1);
    expect(count('not-recognised')).toBe(1);
    expect(count('not-recognised-uncounted')).toBe(1);
    expect(group('recognition-rate')?.measureScore?.value).toBe(50);
    expect(count('tests-avoided')).toBe(1);
    expect(group('cost-saved')?.measureScore?.value).toBe(12.5);
    expect(count('medication-recognised')).toBe(1);
    // Look-ups: every checked order of B, and B's doctor's on-demand questions.
    expect(count('lookups')).toBeGreaterThanOrEqual(10);
    expect(count('lookups-found')).toBeGreaterThanOrEqual(5);
    const byReason = group('not-recognised-by-reason')?.stratifier?.[0].stratum?.map((s) => [s.value?.coding?.[0].code, s.population?.[0].count]);
    expect(byReason).toEqual(expect.arrayContaining([['condition-changed', 1], ['serial-monitoring', 1]]));
    const byDepartment = group('recognised')?.stratifier?.find((s) => s.code?.[0].text === 'department')?.stratum;
    expect(byDepartment).toContainEqual(expect.objectContaining({ value: { text: 'Organization/HOSP-B-IM' } }));
    const byDoctor = group('recognised')?.stratifier?.find((s) => s.code?.[0].text === 'doctor')?.stratum;
    expect(byDoctor?.[0].value?.text).toBe('Practitioner/doc-b');

    // The same figures as supervision's indicator, for any subject: hospital B, its department, the doctor.
    const month = new Date();
    const period = { start: new Date(Date.UTC(month.getUTCFullYear(), month.getUTCMonth(), 1)).toISOString(), end: new Date(Date.UTC(month.getUTCFullYear(), month.getUTCMonth() + 1, 1)).toISOString() };
    const rate = async (subject: { kind: 'institution' | 'practitioner'; reference: string }) =>
      (await recognitionIndicator.evaluate(p.server.db, period, subject)).find((g) => g.code?.coding?.[0].code === 'recognition-rate')?.measureScore?.value;
    expect(await rate({ kind: 'institution', reference: 'Organization/HOSP-B' })).toBe(50);
    expect(await rate({ kind: 'practitioner', reference: 'Practitioner/doc-b' })).toBeDefined();
    expect(await rate({ kind: 'institution', reference: 'Organization/nobody' })).toBeUndefined();
  });
});
