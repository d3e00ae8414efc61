/**
 * Indicators computed in SQL over the fact tables, for one period and one subject (an institution, a department,
 * a doctor, or the whole city): rule counts, referral figures, antimicrobial use, data-feed completeness. Each is an
 * `IndicatorProvider` that gives the groups of a MeasureReport; measures.ts wraps them into FHIR Measure and
 * MeasureReport resources. Another module adds its own indicators through the same interface (the recognition
 * module's recognition rate: see README.md).
 */
import type { Measure, MeasureReportGroup, MeasureReportGroupPopulation } from '@medplum/fhirtypes';
import type { Queryable } from '../fhir-server';
import type { Rule } from './rules/catalogue';

export interface Period {
  /** ISO instants, [start, end). */
  start: string;
  end: string;
}

/** Whose figures: an institution, one of its departments (an Organization partOf it), a doctor, or the city. */
export type Subject =
  | { kind: 'city' }
  | { kind: 'institution'; reference: string }
  | { kind: 'department'; reference: string }
  | { kind: 'practitioner'; reference: string };

export interface IndicatorProvider {
  /** The Measure it computes (canonical url, id, groups). */
  measure: Measure;
  /** The groups of its MeasureReport for a period and subject. */
  evaluate(q: Queryable, period: Period, subject: Subject): Promise<MeasureReportGroup[]>;
}

export const MEASURE_BASE = 'https://huimin.health/fhir/Measure';
export const GROUP_SYSTEM = 'https://huimin.health/fhir/CodeSystem/supervision-indicator';
const POPULATION = 'http://terminology.hl7.org/CodeSystem/measure-population';

/** The subject as a condition on a fact table's institution, department and practitioner columns. */
function subjectFilter(subject: Subject, alias: string, params: unknown[], columns = { institution: 'institution', department: 'department', practitioner: 'practitioner' }): string {
  if (subject.kind === 'city') {
    return 'true';
  }
  params.push(subject.reference);
  return `${alias}.${columns[subject.kind]} = $${params.length}`;
}

function population(code: 'numerator' | 'denominator' | 'initial-population', count: number): MeasureReportGroupPopulation {
  return { code: { coding: [{ system: POPULATION, code }] }, count };
}

function group(code: string, display: string, populations: MeasureReportGroupPopulation[], score?: number, unit?: string): MeasureReportGroup {
  return {
    code: { coding: [{ system: GROUP_SYSTEM, code, display }], text: display },
    population: populations,
    ...(score !== undefined && Number.isFinite(score) ? { measureScore: { value: Math.round(score * 10000) / 10000, ...(unit ? { unit, system: 'http://unitsofmeasure.org', code: unit } : {}) } } : {}),
  };
}

const n = (v: unknown): number => (v === null || v === undefined ? 0 : Number(v));
const ratio = (num: number, den: number): number | undefined => (den > 0 ? num / den : undefined);

function measure(id: string, title: string, description: string, groups: Array<[string, string]>): Measure {
  return {
    resourceType: 'Measure',
    id,
    url: `${MEASURE_BASE}/${id}`,
    version: '1',
    name: id.replace(/(^|-)(\w)/g, (_m, _d, c: string) => c.toUpperCase()),
    title,
    status: 'active',
    experimental: false,
    publisher: 'Huimin supervision',
    description,
    subjectCodeableConcept: { coding: [{ system: 'http://hl7.org/fhir/resource-types', code: 'Organization' }] },
    scoring: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/measure-scoring', code: 'continuous-variable' }] },
    group: groups.map(([code, display]) => ({ code: { coding: [{ system: GROUP_SYSTEM, code, display }], text: display }, description: display })),
  };
}

/** Findings raised in the period (by the date of what they are about), per rule, and how their reviews closed. */
export const findingsIndicator: IndicatorProvider = {
  measure: measure('supervision-findings', 'Supervision findings per rule', 'Findings (DetectedIssues) whose facts fall in the period, per rule, with their review outcomes.', [
    ['findings', 'Findings raised'],
    ['confirmed', 'Findings confirmed'],
    ['dismissed', 'Findings dismissed'],
    ['corrected', 'Findings corrected'],
    ['open', 'Findings under review'],
  ]),
  async evaluate(q, period, subject) {
    const params: unknown[] = [period.start, period.end];
    const rows = await q.query<{ rule_id: string; total: string; confirmed: string; dismissed: string; corrected: string; open: string }>(
      `SELECT f.rule_id, count(*) AS total, count(*) FILTER (WHERE f.outcome = 'confirmed') AS confirmed,
         count(*) FILTER (WHERE f.outcome = 'dismissed') AS dismissed, count(*) FILTER (WHERE f.outcome = 'corrected') AS corrected,
         count(*) FILTER (WHERE f.closed_at IS NULL) AS open
       FROM sv_finding f WHERE f.occurred_at >= $1 AND f.occurred_at < $2 AND ${subjectFilter(subject, 'f', params)}
       GROUP BY f.rule_id ORDER BY f.rule_id`,
      params,
    );
    const total = (k: 'total' | 'confirmed' | 'dismissed' | 'corrected' | 'open'): number => rows.reduce((s, r) => s + n(r[k]), 0);
    const stratified = (code: string, display: string, k: 'total' | 'confirmed' | 'dismissed' | 'corrected' | 'open'): MeasureReportGroup => ({
      ...group(code, display, [population('initial-population', total(k))], total(k)),
      // FHIR wants no empty arrays: without findings there is no stratum, so no stratifier.
      stratifier: rows.length === 0 ? undefined : [
        {
          code: [{ coding: [{ system: GROUP_SYSTEM, code: 'rule' }], text: 'rule' }],
          stratum: rows.map((r) => ({ value: { text: r.rule_id }, population: [population('initial-population', n(r[k]))], measureScore: { value: n(r[k]) } })),
        },
      ],
    });
    return [
      stratified('findings', 'Findings raised', 'total'),
      stratified('confirmed', 'Findings confirmed', 'confirmed'),
      stratified('dismissed', 'Findings dismissed', 'dismissed'),
      stratified('corrected', 'Findings corrected', 'corrected'),
      stratified('open', 'Findings under review', 'open'),
    ];
  },
};

/**
 * Referrals authored in the period: up and down referrals sent (by the referring institution, its department
 * through the referral's encounter, or the requesting doctor), and for an institution or the city the referrals
 * received, how many were accepted (acceptance rate) and the mean time from authoring to acceptance.
 */
export const referralIndicator: IndicatorProvider = {
  measure: measure('supervision-referrals', 'Two-way referral figures', 'Up- and down-referrals sent, referrals received and accepted, acceptance rate, mean hours to accept.', [
    ['up-referrals', 'Up-referrals sent'],
    ['down-referrals', 'Down-referrals sent'],
    ['acceptance-rate', 'Referrals received and accepted (acceptance rate)'],
    ['hours-to-accept', 'Mean hours from referral to acceptance'],
  ]),
  async evaluate(q, period, subject) {
    const params: unknown[] = [period.start, period.end];
    const sent =
      subject.kind === 'department'
        ? subjectFilter(subject, 'e', params)
        : subjectFilter(subject, 'r', params, { institution: 'referrer', department: 'referrer', practitioner: 'practitioner' });
    const received = subject.kind === 'institution' ? `r.receiver = $${params.length}` : subject.kind === 'city' ? 'true' : 'false';
    const [row] = await q.query<Record<string, string | null>>(
      `SELECT count(*) FILTER (WHERE r.direction = 'up' AND ${sent}) AS up_sent,
         count(*) FILTER (WHERE r.direction = 'down' AND ${sent}) AS down_sent,
         count(*) FILTER (WHERE ${received}) AS received,
         count(*) FILTER (WHERE ${received} AND r.accepted_at IS NOT NULL) AS accepted,
         avg(extract(epoch FROM r.accepted_at - r.authored) / 3600) FILTER (WHERE ${received} AND r.accepted_at IS NOT NULL) AS hours
       FROM sv_referral r LEFT JOIN sv_encounter e ON e.id = r.encounter
       WHERE r.authored >= $1 AND r.authored < $2 AND r.status NOT IN ('draft', 'entered-in-error')`,
      params,
    );
    const up = n(row.up_sent);
    const down = n(row.down_sent);
    const rec = n(row.received);
    const acc = n(row.accepted);
    return [
      group('up-referrals', 'Up-referrals sent', [population('initial-population', up)], up),
      group('down-referrals', 'Down-referrals sent', [population('initial-population', down)], down),
      group('acceptance-rate', 'Referrals received and accepted (acceptance rate)', [population('denominator', rec), population('numerator', acc)], ratio(acc, rec)),
      group('hours-to-accept', 'Mean hours from referral to acceptance', [population('initial-population', acc)], row.hours === null ? undefined : n(row.hours), 'h'),
    ];
  },
};

export interface AntimicrobialFigures {
  institution: string | null;
  outpatientPrescriptions: number;
  outpatientWithAntimicrobial: number;
  discharged: number;
  dischargedWithAntimicrobial: number;
  bedDays: number;
  ddds: number;
}

/**
 * The three antimicrobial indicators per institution (bureau definitions):
 * - outpatient prescription rate: outpatient and emergency prescriptions (prescription = groupIdentifier) with an
 *   antimicrobial, of all, authored in the period;
 * - inpatient use rate: patients discharged in the period who had an antimicrobial during the stay, of all discharged;
 * - intensity: DDDs of antimicrobials prescribed during those stays × 100 / their bed-days (discharge date −
 *   admission date, at least 1).
 * The antimicrobial ATC prefixes and DDDs are the ANTIMICROBIAL-INDICATORS rule's parameters.
 */
export async function antimicrobialFigures(q: Queryable, period: Period, subject: Subject, params: Rule['params']): Promise<AntimicrobialFigures[]> {
  const values: unknown[] = [period.start, period.end, params.antimicrobialAtc, JSON.stringify(params.ddd ?? {})];
  const rxFilter = subjectFilter(subject, 'p', values);
  const encFilter = subjectFilter(subject, 'e', values);
  const rows = await q.query<Record<string, string | null>>(
    `WITH outp AS (
       SELECT coalesce(p.institution, '') AS institution, count(DISTINCT p.group_id) AS total,
         count(DISTINCT p.group_id) FILTER (WHERE EXISTS (SELECT 1 FROM unnest($3::text[]) a WHERE p.ingredient LIKE a || '%')) AS anti
       FROM sv_prescription p
       WHERE p.setting IN ('outpatient', 'emergency') AND p.status NOT IN ('cancelled', 'entered-in-error', 'draft')
         AND p.authored >= $1 AND p.authored < $2 AND ${rxFilter}
       GROUP BY 1),
     stays AS (
       SELECT coalesce(e.institution, '') AS institution, e.id, greatest(1, e.end_at::date - e.start_at::date) AS bed_days,
         (SELECT count(*) FROM sv_prescription p WHERE p.encounter = e.id AND p.status NOT IN ('cancelled', 'entered-in-error', 'draft')
            AND EXISTS (SELECT 1 FROM unnest($3::text[]) a WHERE p.ingredient LIKE a || '%')) AS anti_lines,
         (SELECT coalesce(sum(p.amount_g / d.value::numeric), 0) FROM sv_prescription p JOIN jsonb_each_text($4::jsonb) d ON d.key = p.ingredient
           WHERE p.encounter = e.id AND p.status NOT IN ('cancelled', 'entered-in-error', 'draft') AND p.amount_g IS NOT NULL AND d.value::numeric > 0) AS ddds
       FROM sv_encounter e
       WHERE e.class = 'inpatient' AND e.status NOT IN ('cancelled', 'entered-in-error') AND e.start_at IS NOT NULL
         AND e.end_at >= $1 AND e.end_at < $2 AND ${encFilter}),
     inp AS (
       SELECT institution, count(*) AS discharged, count(*) FILTER (WHERE anti_lines > 0) AS users, sum(bed_days) AS bed_days, sum(ddds) AS ddds
       FROM stays GROUP BY institution)
     SELECT nullif(coalesce(outp.institution, inp.institution), '') AS institution, outp.total, outp.anti, inp.discharged, inp.users, inp.bed_days, inp.ddds
     FROM outp FULL JOIN inp ON inp.institution = outp.institution`,
    values,
  );
  return rows.map((r) => ({
    institution: r.institution,
    outpatientPrescriptions: n(r.total),
    outpatientWithAntimicrobial: n(r.anti),
    discharged: n(r.discharged),
    dischargedWithAntimicrobial: n(r.users),
    bedDays: n(r.bed_days),
    ddds: n(r.ddds),
  }));
}

export function antimicrobialIndicator(params: () => Promise<Rule['params']>): IndicatorProvider {
  return {
    measure: measure('supervision-antimicrobials', 'Antimicrobial use', 'Outpatient antimicrobial prescription rate, inpatient antimicrobial use rate, and use intensity in DDDs per 100 bed-days.', [
      ['outpatient-rate', 'Outpatient prescriptions with an antimicrobial'],
      ['inpatient-rate', 'Discharged inpatients who used an antimicrobial'],
      ['ddd-per-100-bed-days', 'Antimicrobial use intensity (DDDs per 100 bed-days)'],
    ]),
    async evaluate(q, period, subject) {
      const figures = await antimicrobialFigures(q, period, subject, await params());
      const sum = (k: keyof AntimicrobialFigures): number => figures.reduce((s, f) => s + n(f[k]), 0);
      const bedDays = sum('bedDays');
      return [
        group('outpatient-rate', 'Outpatient prescriptions with an antimicrobial', [population('denominator', sum('outpatientPrescriptions')), population('numerator', sum('outpatientWithAntimicrobial'))], ratio(sum('outpatientWithAntimicrobial'), sum('outpatientPrescriptions'))),
        group('inpatient-rate', 'Discharged inpatients who used an antimicrobial', [population('denominator', sum('discharged')), population('numerator', sum('dischargedWithAntimicrobial'))], ratio(sum('dischargedWithAntimicrobial'), sum('discharged'))),
        group('ddd-per-100-bed-days', 'Antimicrobial use intensity (DDDs per 100 bed-days)', [population('denominator', bedDays)], bedDays > 0 ? (sum('ddds') * 100) / bedDays : undefined),
      ];
    },
  };
}

/**
 * Data-feed completeness: for each day of the period, which institutions sent data. For the city, the institutions
 * expected are the active top-level provider Organizations and every institution that ever sent data; the score is
 * institution-days with data over institution-days expected, with one stratum per day. For an institution, the
 * share of days on which it sent data.
 */
export const feedIndicator = (timeZone: string): IndicatorProvider => ({
  measure: measure('supervision-data-feed', 'Data-feed completeness', 'Which institutions sent data on each day of the period (the 100% connection target).', [
    ['feed-completeness', 'Institution-days with data received'],
  ]),
  async evaluate(q, period, subject) {
    if (subject.kind === 'department' || subject.kind === 'practitioner') {
      return [];
    }
    // Days are local days (sv_feed's are, see facts.ts).
    const params: unknown[] = [period.start, period.end, timeZone];
    const only = subject.kind === 'institution' ? (params.push(subject.reference), `AND x.institution = $${params.length}`) : '';
    const rows = await q.query<{ day: string; expected: string; sent: string }>(
      `WITH days AS (SELECT d::date AS day FROM generate_series(($1::timestamptz AT TIME ZONE $3)::date, (($2::timestamptz - interval '1 microsecond') AT TIME ZONE $3)::date, interval '1 day') d),
       expected AS (
         SELECT id AS institution FROM sv_organization WHERE provider AND active AND part_of IS NULL
         UNION SELECT DISTINCT institution FROM sv_feed)
       SELECT to_char(days.day, 'YYYY-MM-DD') AS day, count(x.institution) AS expected,
         count(x.institution) FILTER (WHERE EXISTS (SELECT 1 FROM sv_feed f WHERE f.institution = x.institution AND f.day = days.day)) AS sent
       FROM days CROSS JOIN expected x WHERE true ${only}
       GROUP BY days.day ORDER BY days.day`,
      params,
    );
    const expected = rows.reduce((s, r) => s + n(r.expected), 0);
    const sent = rows.reduce((s, r) => s + n(r.sent), 0);
    return [
      {
        ...group('feed-completeness', 'Institution-days with data received', [population('denominator', expected), population('numerator', sent)], ratio(sent, expected)),
        stratifier: [
          {
            code: [{ coding: [{ system: GROUP_SYSTEM, code: 'day' }], text: 'day' }],
            stratum: rows.map((r) => ({
              value: { text: r.day },
              population: [population('denominator', n(r.expected)), population('numerator', n(r.sent))],
              ...(n(r.expected) > 0 ? { measureScore: { value: Math.round((n(r.sent) / n(r.expected)) * 10000) / 10000 } } : {}),
            })),
          },
        ],
      },
    ];
  },
});
