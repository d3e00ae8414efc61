/**
 * Every shipped rule over seeded clinical data: one case that fires and one near miss that does not. Data is
 * written by hospital clients through the API (so it is owner-stamped like real data); the rules run on the change
 * events through BullMQ.
 */
import type { Bundle, DetectedIssue, Extension, MedicationRequest, ServiceRequest, Task } from '@medplum/fhirtypes';
import request from 'supertest';
import { createHarness, DAY, iso, JSON_TYPE, type Harness } from './harness';
import { encounter, labOrder, labResult, organization, patient, procedureOrder, rx } from './fixtures';

let h: Harness;
const H1 = 'Organization/h1';
const H2 = 'Organization/h2';

beforeAll(async () => {
  h = await createHarness({}, {
    // The recognition module's table, as the platform will wire it: 2093-3 (cholesterol) recognised for 30 days.
    windows: { windowDays: async (system, code) => (system === 'http://loinc.org' && code === '2093-3' ? 30 : undefined) },
  });
  await organization(h, 'h1');
  await organization(h, 'h2');
});

afterAll(async () => {
  await h.close();
});

/** Waits for a resource's evaluation, then the findings of a rule implicating it. */
async function findingsAbout(ruleId: string, ref: string): Promise<DetectedIssue[]> {
  await h.evaluated(ref);
  return (await h.issues(ruleId)).filter((i) => i.implicated?.some((r) => r.reference === ref));
}

async function writeRx(org: string, mr: MedicationRequest): Promise<string> {
  return `MedicationRequest/${(await h.write(org, mr)).id}`;
}

function ext(issue: DetectedIssue, url: string, name: string): Extension | undefined {
  return issue.extension?.find((e) => e.url === url)?.extension?.find((e) => e.url === name);
}

describe('prescriptions (处方管理办法)', () => {
  let p: string;
  let amb: string;
  let emer: string;
  beforeAll(async () => {
    p = await patient(h, H1, 'female', '1970-05-01');
    amb = `Encounter/${(await encounter(h, H1, p, 'AMB', Date.now())).id}`;
    emer = `Encounter/${(await encounter(h, H1, p, 'EMER', Date.now())).id}`;
  });

  it("fires on 10 days' outpatient supply, not on 7, not with a stated reason; 3 days for emergencies", async () => {
    const over = await writeRx(H1, rx(p, { encounter: amb, days: 10 }));
    const limit = await writeRx(H1, rx(p, { encounter: amb, days: 7 }));
    const reasoned = await writeRx(H1, rx(p, { encounter: amb, days: 14, reason: 'elderly patient, stable hypertension' }));
    const emergency = await writeRx(H1, rx(p, { encounter: emer, days: 4 }));
    const [issue] = await findingsAbout('RX-DAYS-SUPPLY', over);
    expect(issue).toBeDefined();
    expect(issue.detail).toContain('10 days');
    expect(ext(issue, 'https://huimin.health/fhir/StructureDefinition/supervision-rule', 'version')?.valueInteger).toBe(1);
    expect(ext(issue, 'https://huimin.health/fhir/StructureDefinition/supervision-finding', 'threshold')?.valueDecimal).toBe(7);
    expect(ext(issue, 'https://huimin.health/fhir/StructureDefinition/supervision-finding', 'measured')?.valueDecimal).toBe(10);
    expect(issue.patient?.reference).toBe(p);
    expect(await findingsAbout('RX-DAYS-SUPPLY', limit)).toHaveLength(0);
    expect(await findingsAbout('RX-DAYS-SUPPLY', reasoned)).toHaveLength(0);
    expect(await findingsAbout('RX-DAYS-SUPPLY', emergency)).toHaveLength(1);
  });

  it('fires on a prescription of 6 drugs, not on one of 5', async () => {
    const six: string[] = [];
    for (let i = 0; i < 6; i++) six.push(await writeRx(H1, rx(p, { encounter: amb, days: 3, group: 'rx-six', atc: `C0${i}AA01` })));
    const five: string[] = [];
    for (let i = 0; i < 5; i++) five.push(await writeRx(H1, rx(p, { encounter: amb, days: 3, group: 'rx-five', atc: `C0${i}AA01` })));
    await h.evaluated(...six, ...five);
    const issues = await findingsAbout('RX-DRUG-COUNT', six[5]);
    expect(issues).toHaveLength(1);
    expect(issues[0].implicated?.map((r) => r.reference).sort()).toEqual([...six].sort());
    expect(await findingsAbout('RX-DRUG-COUNT', five[4])).toHaveLength(0);
  });

  it('fires on a long-term prescription over 4 weeks or of an excluded class; 12 weeks for stable chronic patients; tuberculosis drugs allowed', async () => {
    const over = await writeRx(H1, rx(p, { encounter: amb, days: 35, longTerm: true }));
    const fourWeeks = await writeRx(H1, rx(p, { encounter: amb, days: 28, longTerm: true }));
    const chronic = await writeRx(H1, rx(p, { encounter: amb, days: 84, longTerm: true, stableChronic: true }));
    const antibiotic = await writeRx(H1, rx(p, { encounter: amb, days: 14, longTerm: true, atc: 'J01CA04' }));
    const tuberculosis = await writeRx(H1, rx(p, { encounter: amb, days: 28, longTerm: true, atc: 'J04AC01' }));
    expect(await findingsAbout('RX-LONG-TERM', over)).toHaveLength(1);
    const [excluded] = await findingsAbout('RX-LONG-TERM', antibiotic);
    expect(excluded.detail).toContain('antimicrobial');
    expect(await findingsAbout('RX-LONG-TERM', fourWeeks)).toHaveLength(0);
    expect(await findingsAbout('RX-LONG-TERM', chronic)).toHaveLength(0);
    expect(await findingsAbout('RX-LONG-TERM', tuberculosis)).toHaveLength(0);
  });

  it('fires on a validity of 5 days, not of 3', async () => {
    const five = await writeRx(H1, rx(p, { encounter: amb, days: 3, validityDays: 5 }));
    const three = await writeRx(H1, rx(p, { encounter: amb, days: 3, validityDays: 3 }));
    expect(await findingsAbout('RX-VALIDITY', five)).toHaveLength(1);
    expect(await findingsAbout('RX-VALIDITY', three)).toHaveLength(0);
  });
});

describe('duplicates across hospitals', () => {
  it('fires on an ingredient prescribed while active at another hospital, not after that prescription ran out', async () => {
    const p = await patient(h, H2, 'male', '1960-01-01');
    const q = await patient(h, H2, 'male', '1961-01-01');
    const now = Date.now();
    const active = await writeRx(H2, rx(p, { atc: 'C10AA05', days: 7, authored: now - 2 * DAY }));
    const dup = await writeRx(H1, rx(p, { atc: 'C10AA05', days: 7, authored: now }));
    await writeRx(H2, rx(q, { atc: 'C10AA05', days: 7, authored: now - 10 * DAY }));
    const later = await writeRx(H1, rx(q, { atc: 'C10AA05', days: 7, authored: now }));
    const [issue] = await findingsAbout('RX-DUPLICATE-DRUG', dup);
    expect(issue.implicated?.map((r) => r.reference)).toEqual(expect.arrayContaining([dup, active]));
    expect(await findingsAbout('RX-DUPLICATE-DRUG', later)).toHaveLength(0);
  });

  it("fires on a test repeated within its recognition window without a reason, not outside it or with a reason; the recognition module's windows apply", async () => {
    const p = await patient(h, H2, 'female', '1980-01-01');
    const now = Date.now();
    await h.write(H2, labResult(p, '718-7', now - 3 * DAY));
    await h.write(H2, labResult(p, '4548-4', now - 100 * DAY));
    await h.write(H2, labResult(p, '2093-3', now - 20 * DAY));
    const repeated = `ServiceRequest/${(await h.write(H1, labOrder(p, '718-7', now))).id}`;
    const withReason = `ServiceRequest/${(await h.write(H1, labOrder(p, '718-7', now, 'bleeding since the last count'))).id}`;
    const outside = `ServiceRequest/${(await h.write(H1, labOrder(p, '4548-4', now))).id}`;
    const recognised = `ServiceRequest/${(await h.write(H1, labOrder(p, '2093-3', now))).id}`;
    const [issue] = await findingsAbout('TEST-DUPLICATE', repeated);
    expect(issue.detail).toContain('7-day recognition window');
    expect(await findingsAbout('TEST-DUPLICATE', withReason)).toHaveLength(0);
    expect(await findingsAbout('TEST-DUPLICATE', outside)).toHaveLength(0);
    expect(await findingsAbout('TEST-DUPLICATE', recognised)).toHaveLength(1);
  });
});

describe('sex- and age-restricted drugs and procedures', () => {
  it('fires on a contraceptive for a man and a fluoroquinolone for a child, not for a woman or an adult', async () => {
    const man = await patient(h, H1, 'male', '1990-01-01');
    const woman = await patient(h, H1, 'female', '1990-01-01');
    const child = await patient(h, H1, 'female', iso(Date.now() - 12 * 365 * DAY).slice(0, 10));
    const adult = await patient(h, H1, 'female', iso(Date.now() - 19 * 365 * DAY).slice(0, 10));
    const forMan = await writeRx(H1, rx(man, { atc: 'G03AA07', days: 3 }));
    const forWoman = await writeRx(H1, rx(woman, { atc: 'G03AA07', days: 3 }));
    const forChild = await writeRx(H1, rx(child, { atc: 'J01MA12', days: 3 }));
    const forAdult = await writeRx(H1, rx(adult, { atc: 'J01MA12', days: 3 }));
    expect(await findingsAbout('DRUG-SEX-AGE', forMan)).toHaveLength(1);
    expect((await findingsAbout('DRUG-SEX-AGE', forChild))[0].detail).toContain('from age 18');
    expect(await findingsAbout('DRUG-SEX-AGE', forWoman)).toHaveLength(0);
    expect(await findingsAbout('DRUG-SEX-AGE', forAdult)).toHaveLength(0);
  });

  it('fires on a hysterectomy ordered for a man, not for a woman', async () => {
    const man = await patient(h, H1, 'male', '1970-01-01');
    const woman = await patient(h, H1, 'female', '1970-01-01');
    const wrong = `ServiceRequest/${(await h.write(H1, procedureOrder(man, '236886002', Date.now()))).id}`;
    const right = `ServiceRequest/${(await h.write(H1, procedureOrder(woman, '236886002', Date.now()))).id}`;
    expect(await findingsAbout('PROC-SEX-AGE', wrong)).toHaveLength(1);
    expect(await findingsAbout('PROC-SEX-AGE', right)).toHaveLength(0);
  });
});

describe('admissions', () => {
  const base = Date.now() - 120 * DAY;

  it('an unplanned readmission within 31 days fires; at 35 days, planned, or for chemotherapy (Z51) it does not', async () => {
    const p = await patient(h, H1, 'male', '1950-01-01');
    await encounter(h, H1, p, 'IMP', base, base + 5 * DAY, 'I21.0');
    const re = await encounter(h, H1, p, 'IMP', base + 25 * DAY, base + 28 * DAY, 'I21.0');
    const late = await encounter(h, H1, p, 'IMP', base + 63 * DAY, base + 65 * DAY, 'I21.0');
    const planned = await encounter(h, H1, p, 'IMP', base + 70 * DAY, base + 72 * DAY, 'I21.0', {
      priority: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActPriority', code: 'EL' }] },
    });
    const q = await patient(h, H1, 'female', '1955-01-01');
    await encounter(h, H1, q, 'IMP', base, base + 3 * DAY, 'Z51.1');
    const chemo = await encounter(h, H1, q, 'IMP', base + 10 * DAY, base + 12 * DAY, 'Z51.1');
    const [issue] = await findingsAbout('READMISSION-31', `Encounter/${re.id}`);
    expect(issue.detail).toContain('20 days');
    expect(await findingsAbout('READMISSION-31', `Encounter/${late.id}`)).toHaveLength(0);
    expect((await findingsAbout('READMISSION-31', `Encounter/${planned.id}`)).filter((i) => i.implicated?.[1]?.reference === `Encounter/${planned.id}`)).toHaveLength(0);
    expect(await findingsAbout('READMISSION-31', `Encounter/${chemo.id}`)).toHaveLength(0);
    // 20 days is outside the split-admission window (15 days).
    expect(await findingsAbout('SPLIT-ADMISSION-15', `Encounter/${re.id}`)).toHaveLength(0);
  });

  it('a re-admission within 15 days for the same disease is a split admission; at another hospital it is not', async () => {
    const p = await patient(h, H1, 'male', '1952-01-01');
    await encounter(h, H1, p, 'IMP', base, base + 4 * DAY, 'J18.9');
    const split = await encounter(h, H1, p, 'IMP', base + 10 * DAY, base + 14 * DAY, 'J18.9');
    const elsewhere = await encounter(h, H2, p, 'IMP', base + 16 * DAY, base + 18 * DAY, 'J18.9');
    expect(await findingsAbout('SPLIT-ADMISSION-15', `Encounter/${split.id}`)).toHaveLength(1);
    expect(await findingsAbout('SPLIT-ADMISSION-15', `Encounter/${elsewhere.id}`)).toHaveLength(0);
  });

  it('a stay of 35 days fires, one of 30 does not; a stay still going on is found by the tick', async () => {
    const p = await patient(h, H1, 'male', '1940-01-01');
    const long = await encounter(h, H1, p, 'IMP', base, base + 35 * DAY, 'I50.0');
    const month = await encounter(h, H1, p, 'IMP', base + 40 * DAY, base + 70 * DAY, 'I50.0');
    const ongoing = await encounter(h, H1, p, 'IMP', Date.now() - 40 * DAY, undefined, 'I50.0');
    expect(await findingsAbout('LOS-30', `Encounter/${long.id}`)).toHaveLength(1);
    expect(await findingsAbout('LOS-30', `Encounter/${month.id}`)).toHaveLength(0);
    await h.supervision.engine.tick();
    const [still] = await findingsAbout('LOS-30', `Encounter/${ongoing.id}`);
    expect(still.detail).toContain('still going on');
  });
});

describe('referral deadlines', () => {
  async function referral(deadline: number, status: Task['status']): Promise<string> {
    const p = await patient(h, H2, 'male', '1970-01-01');
    const sr = await h.write<ServiceRequest>(H2, {
      resourceType: 'ServiceRequest',
      status: 'active',
      intent: 'order',
      subject: { reference: p },
      category: [{ coding: [{ system: 'http://snomed.info/sct', code: '3457005' }] }],
      extension: [{ url: 'http://huimin.health/fhir/StructureDefinition/referral-direction', valueCode: 'up' }],
      authoredOn: iso(deadline - 2 * DAY),
    });
    const task = await h.write<Task>(H2, {
      resourceType: 'Task',
      status,
      intent: 'order',
      focus: { reference: `ServiceRequest/${sr.id}` },
      requester: { reference: H2 },
      owner: { reference: H1 },
      authoredOn: iso(deadline - 2 * DAY),
      restriction: { period: { end: iso(deadline) } },
    });
    return `Task/${task.id}`;
  }

  it('an unanswered referral past its deadline fires on the tick; one within its deadline does not', async () => {
    const overdue = await referral(Date.now() - 3600_000, 'requested');
    const pending = await referral(Date.now() + DAY, 'requested');
    await h.evaluated(overdue, pending);
    await h.supervision.engine.tick();
    const [issue] = await findingsAbout('REFERRAL-DEADLINE', overdue);
    expect(ext(issue, 'https://huimin.health/fhir/StructureDefinition/supervision-finding', 'institution')?.valueReference?.reference).toBe(H1);
    expect(await findingsAbout('REFERRAL-DEADLINE', pending)).toHaveLength(0);
  });
});

describe('runtime changes of rules', () => {
  it('a supervisor raises a threshold at runtime: it takes effect for new prescriptions and findings name version 2; a retired rule raises nothing', async () => {
    const supervisor = await h.token('supervisor', 'Organization/health-bureau');
    const clinician = await h.token('clinician', H1);
    const change = {
      resourceType: 'Parameters',
      parameter: [
        { name: 'id', valueCode: 'RX-DAYS-SUPPLY' },
        { name: 'expectedVersion', valueInteger: 1 },
        { name: 'parameter', part: [{ name: 'name', valueString: 'outpatientMaxDays' }, { name: 'value', valueDecimal: 10 }] },
      ],
    };
    await request(h.server.rawApp).post('/fhir/$supervision-rule-update').set('Authorization', `Bearer ${clinician}`).set('Content-Type', JSON_TYPE).send(change).expect(403);
    const bad = { ...change, parameter: [change.parameter[0], { name: 'parameter', part: [{ name: 'name', valueString: 'outpatientMaxDays' }, { name: 'value', valueString: 'ten' }] }] };
    const refused = await request(h.server.rawApp).post('/fhir/$supervision-rule-update').set('Authorization', `Bearer ${supervisor}`).set('Content-Type', JSON_TYPE).send(bad).expect(400);
    expect(JSON.stringify(refused.body)).toContain('outpatientMaxDays');
    const res = await request(h.server.rawApp).post('/fhir/$supervision-rule-update').set('Authorization', `Bearer ${supervisor}`).set('Content-Type', JSON_TYPE).send(change).expect(200);
    expect(JSON.stringify(res.body)).toContain('"valueInteger":2');
    await request(h.server.rawApp).post('/fhir/$supervision-rule-update').set('Authorization', `Bearer ${supervisor}`).set('Content-Type', JSON_TYPE).send(change).expect(409);

    const p = await patient(h, H1, 'male', '1975-01-01');
    const amb = `Encounter/${(await encounter(h, H1, p, 'AMB', Date.now())).id}`;
    const nine = await writeRx(H1, rx(p, { encounter: amb, days: 9 }));
    const twelve = await writeRx(H1, rx(p, { encounter: amb, days: 12 }));
    expect(await findingsAbout('RX-DAYS-SUPPLY', nine)).toHaveLength(0);
    const [issue] = await findingsAbout('RX-DAYS-SUPPLY', twelve);
    expect(ext(issue, 'https://huimin.health/fhir/StructureDefinition/supervision-rule', 'version')?.valueInteger).toBe(2);
    expect(issue.detail).toContain('limit is 10 days');

    const list = await request(h.server.rawApp).get('/fhir/$supervision-rules?id=RX-DAYS-SUPPLY&history=true').set('Authorization', `Bearer ${supervisor}`).expect(200);
    expect((list.body as { parameter: unknown[] }).parameter).toHaveLength(2);

    await request(h.server.rawApp)
      .post('/fhir/$supervision-rule-update')
      .set('Authorization', `Bearer ${supervisor}`)
      .set('Content-Type', JSON_TYPE)
      .send({ resourceType: 'Parameters', parameter: [{ name: 'id', valueCode: 'RX-VALIDITY' }, { name: 'status', valueCode: 'retired' }] })
      .expect(200);
    const retired = await writeRx(H1, rx(p, { encounter: amb, days: 3, validityDays: 6 }));
    expect(await findingsAbout('RX-VALIDITY', retired)).toHaveLength(0);
  });

  it('a lowered threshold re-evaluates the recent period in batch: an earlier near miss becomes a finding of the new version', async () => {
    const p = await patient(h, H1, 'female', '1985-01-01');
    const amb = `Encounter/${(await encounter(h, H1, p, 'AMB', Date.now())).id}`;
    const fiveWeeks = await writeRx(H1, rx(p, { encounter: amb, days: 35, longTerm: true, stableChronic: true, authored: Date.now() - 5 * DAY }));
    expect(await findingsAbout('RX-LONG-TERM', fiveWeeks)).toHaveLength(0);
    const supervisor = await h.token('supervisor', 'Organization/health-bureau');
    const res = await request(h.server.rawApp)
      .post('/fhir/$supervision-rule-update')
      .set('Authorization', `Bearer ${supervisor}`)
      .set('Content-Type', JSON_TYPE)
      .send({ resourceType: 'Parameters', parameter: [{ name: 'id', valueCode: 'RX-LONG-TERM' }, { name: 'parameter', part: [{ name: 'name', valueString: 'stableChronicMaxWeeks' }, { name: 'value', valueInteger: 4 }] }] })
      .expect(200);
    expect(JSON.stringify(res.body)).toContain('reevaluation');
    const deadline = Date.now() + 15_000;
    let issues: DetectedIssue[] = [];
    while (issues.length === 0 && Date.now() < deadline) {
      issues = (await h.issues('RX-LONG-TERM')).filter((i) => i.implicated?.some((r) => r.reference === fiveWeeks));
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(issues).toHaveLength(1);
    expect(ext(issues[0], 'https://huimin.health/fhir/StructureDefinition/supervision-rule', 'version')?.valueInteger).toBe(2);
  });
});

describe('findings are restricted to the bureau and the hospital concerned', () => {
  it('a hospital sees the findings about itself and no other; supervisors see all', async () => {
    const p = await patient(h, H2, 'male', '1966-01-01');
    const emer = `Encounter/${(await encounter(h, H2, p, 'EMER', Date.now())).id}`;
    expect(await findingsAbout('RX-DAYS-SUPPLY', await writeRx(H2, rx(p, { encounter: emer, days: 5 })))).toHaveLength(1);
    const search = async (token: string): Promise<string[]> =>
      (((await request(h.server.rawApp).get('/fhir/DetectedIssue?_count=500').set('Authorization', `Bearer ${token}`).expect(200)).body as Bundle<DetectedIssue>).entry ?? []).map(
        (e) => ext(e.resource as DetectedIssue, 'https://huimin.health/fhir/StructureDefinition/supervision-finding', 'institution')?.valueReference?.reference ?? '?',
      );
    const all = await search(await h.token('supervisor', 'Organization/health-bureau'));
    expect(new Set(all)).toEqual(new Set([H1, H2]));
    const mine = await search(await h.token('facility-system', H2));
    expect(mine.length).toBeGreaterThan(0);
    expect(new Set(mine)).toEqual(new Set([H2]));
    expect(mine.length).toBe(all.filter((i) => i === H2).length);
    const other = (await request(h.server.rawApp).get('/fhir/DetectedIssue?_count=500').set('Authorization', `Bearer ${await h.token('facility-system', H1)}`).expect(200)).body as Bundle;
    const anyH2 = all.findIndex((i) => i === H2);
    expect(anyH2).toBeGreaterThanOrEqual(0);
    expect((other.entry ?? []).length).toBe(all.filter((i) => i === H1).length);
    expect(h.errors).toEqual([]);
  });
});
