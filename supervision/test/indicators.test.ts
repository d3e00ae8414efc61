/**
 * Indicators as MeasureReports, checked against numbers computed by hand from the seeded data; the antimicrobial
 * rule over a period; silent data feeds; the monthly reports.
 */
import type { CarePlan, DocumentReference, MeasureReport, MeasureReportGroup, ServiceRequest, Task } from '@medplum/fhirtypes';
import request from 'supertest';
import { localDate, localMonth, startOfLocalDay } from '../../referral-workflow';
import { createHarness, DAY, iso, JSON_TYPE, type Harness } from './harness';
import { encounter, organization, patient, rx } from './fixtures';

let h: Harness;
const A = 'Organization/a';
const B = 'Organization/b';
const DEPT = 'Organization/a-card';
const SEPT = Date.parse('2026-09-01T00:00:00Z');

beforeAll(async () => {
  h = await createHarness();
  await organization(h, 'a');
  await organization(h, 'b');
  await organization(h, 'quiet');
  await organization(h, 'a-card', A);
  await h.evaluated('Organization/a', 'Organization/b', 'Organization/quiet', 'Organization/a-card');

  // Outpatient prescriptions in September: A 4 prescriptions (2 with an antimicrobial), B 5 (1 with one).
  const pa = await patient(h, A, 'female', '1980-01-01');
  const pb = await patient(h, B, 'female', '1981-01-01');
  const outpatient = { authored: SEPT + 3 * DAY, days: 3 };
  const lines: Array<[string, string, string]> = [
    [A, 'g1', 'C09AA02'], [A, 'g1', 'J01CA04'], [A, 'g2', 'C09AA02'], [A, 'g3', 'J01FA10'], [A, 'g4', 'C10AA05'],
    [B, 'h1', 'J01MA12'], [B, 'h2', 'C09AA02'], [B, 'h3', 'C09AA02'], [B, 'h4', 'C10AA05'], [B, 'h5', 'C10AA05'],
  ];
  const refs: string[] = [];
  for (const [org, group, atc] of lines) {
    const mr = await h.write(org, { ...rx(org === A ? pa : pb, { ...outpatient, group, atc }), category: [{ coding: [{ code: 'outpatient' }] }] });
    refs.push(`MedicationRequest/${mr.id}`);
  }
  // Inpatient stays at A discharged in September: 4 bed-days with amoxicillin 500 mg tid for 4 days (6 g = 4 DDD), and
  // 6 bed-days without an antimicrobial (in A's cardiology department).
  const stay1 = await encounter(h, A, pa, 'IMP', SEPT + 1 * DAY, SEPT + 5 * DAY, 'J18.9', { serviceProvider: { reference: DEPT } });
  await encounter(h, A, pa, 'IMP', SEPT + 10 * DAY, SEPT + 16 * DAY, 'I50.0');
  const amox = await h.write(A, rx(pa, { atc: 'J01CA04', days: 4, doseMg: 500, encounter: `Encounter/${stay1.id}`, authored: SEPT + 1 * DAY }));
  refs.push(`MedicationRequest/${amox.id}`);
  await h.evaluated(...refs);
});

afterAll(async () => {
  await h.close();
});

async function evaluate(measure: string, periodStart: string, periodEnd: string, subject?: string, token?: string, expect = 200): Promise<MeasureReport> {
  const q = new URLSearchParams({ periodStart, periodEnd, ...(subject ? { subject } : {}) });
  const res = await request(token ? h.server.rawApp : h.server.app)
    .get(`/fhir/Measure/${measure}/$evaluate-measure?${q}`)
    .set(token ? { Authorization: `Bearer ${token}` } : {});
  if (res.status !== expect) throw new Error(`${res.status} ${JSON.stringify(res.body)}`);
  return res.body as MeasureReport;
}

function groupOf(report: MeasureReport, code: string): MeasureReportGroup {
  return report.group?.find((g) => g.code?.coding?.[0]?.code === code) as MeasureReportGroup;
}

const count = (g: MeasureReportGroup, code: string): number | undefined => g.population?.find((p) => p.code?.coding?.[0]?.code === code)?.count;

describe('antimicrobial indicators', () => {
  it('per institution: A 2/4 outpatient, 1/2 inpatient, 40 DDDs per 100 bed-days; B 1/5 outpatient', async () => {
    const a = await evaluate('supervision-antimicrobials', '2026-09-01', '2026-09-30', A);
    expect(a.subject?.reference).toBe(A);
    // September in China Standard Time (the default HUIMIN_TIME_ZONE): from local midnight, 16:00 UTC the day before.
    expect(a.period).toEqual({ start: '2026-08-31T16:00:00.000Z', end: '2026-09-30T16:00:00.000Z' });
    expect(groupOf(a, 'outpatient-rate').measureScore?.value).toBe(0.5);
    expect(count(groupOf(a, 'outpatient-rate'), 'denominator')).toBe(4);
    expect(groupOf(a, 'inpatient-rate').measureScore?.value).toBe(0.5);
    expect(groupOf(a, 'ddd-per-100-bed-days').measureScore?.value).toBe(40);
    expect(count(groupOf(a, 'ddd-per-100-bed-days'), 'denominator')).toBe(10);
    const b = await evaluate('supervision-antimicrobials', '2026-09-01', '2026-09-30', B);
    expect(groupOf(b, 'outpatient-rate').measureScore?.value).toBe(0.2);
    const city = await evaluate('supervision-antimicrobials', '2026-09-01', '2026-09-30');
    expect(groupOf(city, 'outpatient-rate').measureScore?.value).toBeCloseTo(3 / 9, 4);
  });

  it("per department: A's cardiology had the one stay with an antimicrobial (100 DDDs per 100 bed-days)", async () => {
    const dept = await evaluate('supervision-antimicrobials', '2026-09-01', '2026-09-30', DEPT);
    expect(groupOf(dept, 'inpatient-rate').measureScore?.value).toBe(1);
    expect(groupOf(dept, 'ddd-per-100-bed-days').measureScore?.value).toBe(100);
  });

  it('the rule over September raises A (outpatient rate 0.5 > 0.2) and nothing at the thresholds (B 0.2, A 40 DDDs)', async () => {
    const supervisor = await h.token('supervisor', 'Organization/health-bureau');
    await request(h.server.rawApp)
      .post('/fhir/$supervision-reevaluate')
      .set('Authorization', `Bearer ${supervisor}`)
      .set('Content-Type', JSON_TYPE)
      .send({ resourceType: 'Parameters', parameter: [{ name: 'periodStart', valueDate: '2026-09-01' }, { name: 'periodEnd', valueDate: '2026-09-30' }, { name: 'rule', valueCode: 'ANTIMICROBIAL-INDICATORS' }] })
      .expect(202);
    const deadline = Date.now() + 15_000;
    let issues = await h.issues('ANTIMICROBIAL-INDICATORS');
    while (issues.length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      issues = await h.issues('ANTIMICROBIAL-INDICATORS');
    }
    expect(issues).toHaveLength(1);
    expect(issues[0].detail).toContain('outpatient antimicrobial prescription rate 0.5');
    expect(issues[0].implicated?.[0]?.reference).toBe(A);
    const findings = await evaluate('supervision-findings', '2026-09-01', '2026-09-30', A);
    expect(groupOf(findings, 'findings').measureScore?.value).toBe(1);
    expect(groupOf(findings, 'findings').stratifier?.[0]?.stratum?.[0]?.value?.text).toBe('ANTIMICROBIAL-INDICATORS');
    expect(groupOf(await evaluate('supervision-findings', '2026-09-01', '2026-09-30', B), 'findings').measureScore?.value).toBe(0);
  });
});

describe('referral figures', () => {
  it('counts up and down referrals, the acceptance rate and the time to accept', async () => {
    const p = await patient(h, A, 'male', '1960-01-01');
    const authored = Date.now() - 5 * 3600_000;
    const referral = async (from: string, to: string, direction: 'up' | 'down'): Promise<Task> => {
      // A downward referral travels with its follow-up CarePlan and discharge summary (the referral workflow's rule).
      const supportingInfo =
        direction === 'down'
          ? [
              { reference: `CarePlan/${(await h.write<CarePlan>(from, { resourceType: 'CarePlan', status: 'active', intent: 'plan', subject: { reference: p } })).id}` },
              {
                reference: `DocumentReference/${(await h.write<DocumentReference>(from, { resourceType: 'DocumentReference', status: 'current', subject: { reference: p }, content: [{ attachment: { contentType: 'text/plain', data: 'ZGlzY2hhcmdlZA==' } }] })).id}`,
              },
            ]
          : undefined;
      const sr = await h.write<ServiceRequest>(from, {
        ...(supportingInfo ? { supportingInfo } : {}),
        resourceType: 'ServiceRequest',
        status: 'active',
        intent: 'order',
        subject: { reference: p },
        category: [{ coding: [{ system: 'http://snomed.info/sct', code: '3457005' }] }],
        extension: [{ url: 'http://huimin.health/fhir/StructureDefinition/referral-direction', valueCode: direction }],
        authoredOn: iso(authored),
      });
      return h.write<Task>(from, {
        resourceType: 'Task',
        status: 'requested',
        intent: 'order',
        focus: { reference: `ServiceRequest/${sr.id}` },
        requester: { reference: from },
        owner: { reference: to },
        authoredOn: iso(authored),
      });
    };
    const t1 = await referral(A, B, 'up');
    const t2 = await referral(A, B, 'up');
    await referral(A, B, 'up');
    const t4 = await referral(B, A, 'down');
    await request(h.server.app).put(`/fhir/Task/${t1.id}`).set('Content-Type', JSON_TYPE).send({ ...t1, status: 'accepted' }).expect(200);
    await request(h.server.app).put(`/fhir/Task/${t2.id}`).set('Content-Type', JSON_TYPE).send({ ...t2, status: 'rejected' }).expect(200);
    await h.evaluated(`Task/${t1.id}/2`, `Task/${t2.id}/2`, `Task/${t4.id}`);
    const start = iso(Date.now() - DAY);
    const end = iso(Date.now() + DAY);
    const a = await evaluate('supervision-referrals', start, end, A);
    expect(groupOf(a, 'up-referrals').measureScore?.value).toBe(3);
    expect(groupOf(a, 'down-referrals').measureScore?.value).toBe(0);
    expect(count(groupOf(a, 'acceptance-rate'), 'denominator')).toBe(1);
    expect(groupOf(a, 'acceptance-rate').measureScore?.value).toBe(0);
    const b = await evaluate('supervision-referrals', start, end, B);
    expect(groupOf(b, 'down-referrals').measureScore?.value).toBe(1);
    expect(groupOf(b, 'acceptance-rate').measureScore?.value).toBeCloseTo(1 / 3, 4);
    expect(groupOf(b, 'hours-to-accept').measureScore?.value).toBeCloseTo(5, 1);
    const city = await evaluate('supervision-referrals', start, end);
    expect(groupOf(city, 'acceptance-rate').measureScore?.value).toBe(0.25);
  });
});

describe('data feeds', () => {
  it('completeness per day: A and B sent data today, the quiet hospital never', async () => {
    // Days of the data feed are local days (Asia/Shanghai): "today" is the local date.
    const { year, month, day } = localDate(Date.now(), 'Asia/Shanghai');
    const localIso = (ms: number): string => iso(ms + 8 * 3600_000).slice(0, 10);
    const today = localIso(startOfLocalDay(year, month, day, 'Asia/Shanghai'));
    const start = localIso(startOfLocalDay(year, month, day - 2, 'Asia/Shanghai'));
    const city = await evaluate('supervision-data-feed', start, today);
    const g = groupOf(city, 'feed-completeness');
    expect(count(g, 'denominator')).toBe(9);
    expect(count(g, 'numerator')).toBe(2);
    expect(g.stratifier?.[0]?.stratum?.map((s) => s.measureScore?.value)).toEqual([0, 0, 0.6667]);
    expect(groupOf(await evaluate('supervision-data-feed', start, today, A), 'feed-completeness').measureScore?.value).toBe(0.3333);
  });

  it('a provider that never sent data is raised at once, one silent for 25 hours when the clock gets there', async () => {
    await h.supervision.engine.tick();
    const never = await h.issues('FEED-SILENT');
    expect(never.map((i) => i.implicated?.[0]?.reference ?? i.extension?.[1]?.extension?.find((e) => e.url === 'institution')?.valueReference?.reference)).toEqual(['Organization/quiet']);
    h.clock.offset = 25 * 3600_000;
    try {
      await h.supervision.engine.tick();
    } finally {
      h.clock.offset = 0;
    }
    const silent = await h.issues('FEED-SILENT');
    expect(silent).toHaveLength(3);
    expect(silent.map((i) => i.detail).join(' ')).toContain('no data received for 25');
  });

  it('the tick stored last month’s MeasureReports for each institution, restricted to it', async () => {
    const hospital = await h.token('facility-system', A);
    const reports = (await request(h.server.rawApp).get('/fhir/MeasureReport?_count=100').set('Authorization', `Bearer ${hospital}`).expect(200)).body as { entry?: Array<{ resource: MeasureReport }> };
    const subjects = new Set((reports.entry ?? []).map((e) => e.resource.subject?.reference));
    expect(subjects).toEqual(new Set([A]));
    expect((reports.entry ?? []).length).toBe(4);
    // A hospital evaluates its own figures, not another's.
    await evaluate('supervision-referrals', '2026-09-01', '2026-09-30', A, hospital);
    await evaluate('supervision-referrals', '2026-09-01', '2026-09-30', B, hospital, 403);
    await evaluate('recognition-rate', '2026-09-01', '2026-09-30', A, undefined, 404);
    expect(h.errors).toEqual([]);
  });
});

describe('the monthly run', () => {
  const lastMonth = (): ReturnType<typeof localMonth> => localMonth(Date.now(), 'Asia/Shanghai', -1);
  const reportsFor = async (start: string): Promise<MeasureReport[]> => {
    const bundle = (await request(h.server.app).get(`/fhir/MeasureReport?subject=${A}&_count=100`).expect(200)).body as { entry?: Array<{ resource: MeasureReport }> };
    return (bundle.entry ?? []).map((e) => e.resource).filter((r) => r.period?.start === start);
  };

  it('is claimed once: a run in progress is left alone, one whose process died (no progress for 10 minutes) is run again', async () => {
    const month = lastMonth();
    const name = `monthly:${month.month}`;
    expect((await h.db.query<{ position: number }>('SELECT position FROM sv_cursor WHERE name = $1', [name]))[0].position).toEqual(1);
    expect(await h.supervision.engine.monthly()).toEqual([]);
    // Interrupted: claimed, never finished, and the claim is recent: another process is still on it.
    await h.db.query(`UPDATE sv_cursor SET position = 0, updated_at = now() WHERE name = $1`, [name]);
    expect(await h.supervision.engine.monthly()).toEqual([]);
    // No progress for an hour: the process died. The next tick runs the month again; reports are not duplicated.
    await h.db.query(`UPDATE sv_cursor SET updated_at = now() - interval '1 hour' WHERE name = $1`, [name]);
    expect(await h.supervision.engine.monthly()).toEqual([month.month]);
    expect((await h.db.query<{ position: number }>('SELECT position FROM sv_cursor WHERE name = $1', [name]))[0].position).toEqual(1);
    expect(await reportsFor(month.start)).toHaveLength(4);
  });

  it('a month missed altogether (the platform was down) is run when data reach into it', async () => {
    const before = localMonth(Date.now(), 'Asia/Shanghai', -2);
    const day = `${before.month}-15`;
    await h.db.query(`INSERT INTO sv_feed (institution, day, resources, last_at) VALUES ($1, $2::date, 1, $3) ON CONFLICT DO NOTHING`, [A, day, `${day}T04:00:00Z`]);
    expect(await reportsFor(before.start)).toHaveLength(0);
    expect(await h.supervision.engine.monthly()).toEqual([before.month]);
    const reports = await reportsFor(before.start);
    expect(reports).toHaveLength(4);
    expect(reports[0].period).toEqual({ start: before.start, end: before.end });
    expect(await h.supervision.engine.monthly()).toEqual([]);
    expect(h.errors).toEqual([]);
  });
});
