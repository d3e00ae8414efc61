/**
 * The bureau's figures as MeasureReports, computed in SQL from the module's decision and look-up records (never by
 * loading resources): `GET [base]/$recognition-report?period-start=2026-11&period-end=2026-12` (admin, supervisor)
 * answers a Bundle with one MeasureReport (type summary, measure .../Measure/result-recognition) per institution
 * and month, whose groups are stratified by department and by doctor:
 *
 * - recognised, not-recognised (counted reasons), not-recognised-uncounted (the two reasons that are not refusals),
 *   not-recognised by reason (stratifier "reason");
 * - recognition-rate = recognised / (recognised + not-recognised), in %, leaving out the uncounted reasons;
 * - lookups (look-ups of the resident's results, on demand or for an order) and lookups-finding-other-hospitals;
 * - tests-avoided (recognised test advisories) and cost-saved (their prices in the item table when decided, CNY);
 * - duplicate-medication advisories accepted and overridden are counted apart (medication-recognised/-not-recognised).
 *
 * Months are calendar months in the deployment's time zone (HUIMIN_TIME_ZONE, default Asia/Shanghai), like the
 * referral figures and supervision's indicators: a month and the period's dates begin at local midnight.
 */
import type { Bundle, Measure, MeasureReport, MeasureReportGroup, MeasureReportGroupStratifier, Reference } from '@medplum/fhirtypes';
import { badRequest, operationParameters, parameterValue, type FhirOperation, type FhirRequest, type Queryable } from '../fhir-server';
import { DEFAULT_TIME_ZONE, localMonth, startOfLocalDate } from '../referral-workflow';
import { BASE, EXCEPTION_REASON_SYSTEM } from './fhir';

export const RECOGNITION_MEASURE = `${BASE}/Measure/result-recognition`;
const GROUP_SYSTEM = `${BASE}/CodeSystem/recognition-measure-group`;
const POPULATION = 'http://terminology.hl7.org/CodeSystem/measure-population';

/** One aggregated row: counts of a figure for an institution, department, doctor and month. */
interface Row {
  institution: string | null;
  department: string | null;
  doctor: string | null;
  month: string;
  figure: string;
  reason: string | null;
  n: string;
  amount: string | null;
}

const DECISIONS_SQL = `
  SELECT institution, department, doctor, to_char(decided_at AT TIME ZONE $3, 'YYYY-MM') AS month,
         CASE WHEN kind = 'medication' THEN 'medication-' || outcome
              WHEN outcome = 'recognised' THEN 'recognised'
              WHEN counted THEN 'not-recognised' ELSE 'not-recognised-uncounted' END AS figure,
         reason_code AS reason, count(*) AS n, sum(price) AS amount
    FROM recognition_decision
   WHERE decided_at >= $1::timestamptz AND decided_at < $2::timestamptz
   GROUP BY 1, 2, 3, 4, 5, 6`;

const LOOKUPS_SQL = `
  SELECT institution, department, doctor, to_char(at AT TIME ZONE $3, 'YYYY-MM') AS month,
         CASE WHEN found > 0 THEN 'lookups-found' ELSE 'lookups-none' END AS figure, NULL AS reason, count(*) AS n, NULL AS amount
    FROM recognition_lookup
   WHERE at >= $1::timestamptz AND at < $2::timestamptz
   GROUP BY 1, 2, 3, 4, 5`;

class Tally {
  readonly n = new Map<string, number>();
  amount = 0;
  add(figure: string, n: number): void {
    this.n.set(figure, (this.n.get(figure) ?? 0) + n);
  }
  get(figure: string): number {
    return this.n.get(figure) ?? 0;
  }
}

interface Report {
  institution: string;
  month: string;
  all: Tally;
  byDepartment: Map<string, Tally>;
  byDoctor: Map<string, Tally>;
  byReason: Map<string, number>;
}

function tally(map: Map<string, Tally>, key: string): Tally {
  let t = map.get(key);
  if (!t) {
    t = new Tally();
    map.set(key, t);
  }
  return t;
}

type Figure = { code: string; display: string; value: (t: Tally) => number | undefined; unit?: string };

const FIGURES: Figure[] = [
  { code: 'recognised', display: 'Recognised (prior result used, order revoked)', value: (t) => t.get('recognised') },
  { code: 'not-recognised', display: 'Not recognised (ordered again for a counted reason)', value: (t) => t.get('not-recognised') },
  { code: 'not-recognised-uncounted', display: 'Ordered again for a reason that is not a refusal', value: (t) => t.get('not-recognised-uncounted') },
  {
    code: 'recognition-rate',
    display: 'Recognition rate: recognised / (recognised + not recognised)',
    unit: '%',
    value: (t) => {
      const denominator = t.get('recognised') + t.get('not-recognised');
      return denominator > 0 ? Math.round((100_000 * t.get('recognised')) / denominator) / 1000 : undefined;
    },
  },
  { code: 'lookups', display: "Look-ups of the resident's results across hospitals", value: (t) => t.get('lookups-found') + t.get('lookups-none') },
  { code: 'lookups-found', display: 'Look-ups that found results of other hospitals', value: (t) => t.get('lookups-found') },
  { code: 'tests-avoided', display: 'Tests avoided', value: (t) => t.get('recognised') },
  { code: 'cost-saved', display: 'Patient cost saved (item prices)', unit: 'CNY', value: (t) => Math.round(t.amount * 100) / 100 },
  { code: 'medication-recognised', display: 'Duplicate prescriptions withdrawn', value: (t) => t.get('medication-recognised') },
  { code: 'medication-not-recognised', display: 'Duplicate prescriptions kept for a reason', value: (t) => t.get('medication-not-recognised') },
];

function score(figure: Figure, t: Tally): Pick<MeasureReportGroup, 'measureScore' | 'population'> | undefined {
  const value = figure.value(t);
  if (value === undefined) return undefined;
  if (figure.unit) {
    return { measureScore: { value, unit: figure.unit, ...(figure.unit === '%' ? { system: 'http://unitsofmeasure.org', code: '%' } : { code: 'CNY' }) } };
  }
  return { population: [{ code: { coding: [{ system: POPULATION, code: 'initial-population' }] }, count: value }] };
}

function stratifier(name: string, strata: Map<string, Tally>, figure: Figure): MeasureReportGroupStratifier | undefined {
  const stratum = [...strata.entries()].flatMap(([key, t]) => {
    const s = score(figure, t);
    return s ? [{ value: { text: key }, ...s }] : [];
  });
  return stratum.length ? { code: [{ text: name }], stratum } : undefined;
}

/** The groups of one report: every figure (stratified when strata are given), then the reasons for ordering again. */
function figureGroups(all: Tally, byReason: Map<string, number>, strata: Array<[string, Map<string, Tally>]> = []): MeasureReportGroup[] {
  const group: MeasureReportGroup[] = [];
  for (const figure of FIGURES) {
    const s = score(figure, all);
    if (!s) continue;
    const strat = strata.map(([name, map]) => stratifier(name, map, figure)).filter((x) => x !== undefined);
    group.push({ code: { coding: [{ system: GROUP_SYSTEM, code: figure.code, display: figure.display }] }, ...s, ...(strat.length ? { stratifier: strat } : {}) });
  }
  if (byReason.size > 0) {
    group.push({
      code: { coding: [{ system: GROUP_SYSTEM, code: 'not-recognised-by-reason', display: 'Ordered again, by reason' }] },
      stratifier: [
        {
          code: [{ text: 'reason' }],
          stratum: [...byReason.entries()].map(([reason, count]) => ({
            value: { coding: [{ system: EXCEPTION_REASON_SYSTEM, code: reason }] },
            population: [{ code: { coding: [{ system: POPULATION, code: 'initial-population' }] }, count }],
          })),
        },
      ],
    });
  }
  return group;
}

function toMeasureReport(r: Report): MeasureReport {
  const [year, month] = r.month.split('-').map(Number);
  const group = figureGroups(r.all, r.byReason, [
    ['department', r.byDepartment],
    ['doctor', r.byDoctor],
  ]);
  return {
    resourceType: 'MeasureReport',
    status: 'complete',
    type: 'summary',
    measure: RECOGNITION_MEASURE,
    date: new Date().toISOString(),
    reporter: { reference: r.institution } as Reference<never>,
    period: { start: `${r.month}-01`, end: new Date(Date.UTC(year, month, 0)).toISOString().slice(0, 10) },
    group,
  };
}

/** The figures of [start, end): local dates (`YYYY-MM-DD`, from their local midnight) or instants. */
export async function recognitionFigures(db: Queryable, start: string, end: string, timeZone = DEFAULT_TIME_ZONE): Promise<MeasureReport[]> {
  const instant = (d: string): string => (/^\d{4}-\d{2}-\d{2}$/.test(d) ? new Date(startOfLocalDate(d, timeZone)).toISOString() : d);
  const params = [instant(start), instant(end), timeZone];
  const rows = [...(await db.query<Row>(DECISIONS_SQL, params)), ...(await db.query<Row>(LOOKUPS_SQL, params))];
  const reports = new Map<string, Report>();
  for (const row of rows) {
    const institution = row.institution ?? 'unattributed';
    const key = `${institution} ${row.month}`;
    let report = reports.get(key);
    if (!report) {
      report = { institution, month: row.month, all: new Tally(), byDepartment: new Map(), byDoctor: new Map(), byReason: new Map() };
      reports.set(key, report);
    }
    const n = Number(row.n);
    const amount = row.amount === null ? 0 : Number(row.amount);
    for (const t of [report.all, tally(report.byDepartment, row.department ?? 'unspecified'), tally(report.byDoctor, row.doctor ?? 'unspecified')]) {
      t.add(row.figure, n);
      t.amount += amount;
    }
    if (row.reason && row.figure.startsWith('not-recognised')) {
      report.byReason.set(row.reason, (report.byReason.get(row.reason) ?? 0) + n);
    }
  }
  return [...reports.values()].sort((a, b) => (a.month + a.institution).localeCompare(b.month + b.institution)).map(toMeasureReport);
}

/** Whose figures supervision asks for (its indicators' Subject): the city, an institution, a department or a doctor. */
export type RecognitionSubject =
  | { kind: 'city' }
  | { kind: 'institution'; reference: string }
  | { kind: 'department'; reference: string }
  | { kind: 'practitioner'; reference: string };

const SUBJECT_COLUMN = { institution: 'institution', department: 'department', practitioner: 'doctor' } as const;

/**
 * The recognition figures as one of supervision's indicators (its IndicatorProvider shape), so that the bureau's
 * `Measure/result-recognition/$evaluate-measure` gives them for any period and subject beside the other indicators.
 */
export const recognitionIndicator = {
  measure: {
    resourceType: 'Measure',
    id: 'result-recognition',
    url: RECOGNITION_MEASURE,
    version: '1',
    name: 'ResultRecognition',
    title: 'Mutual recognition of test results',
    status: 'active',
    publisher: 'Huimin recognition',
    description: 'Recognised and not recognised prior results, the recognition rate, look-ups, tests avoided and the cost saved.',
    subjectCodeableConcept: { coding: [{ system: 'http://hl7.org/fhir/resource-types', code: 'Organization' }] },
    group: [...FIGURES.map((f) => ({ code: { coding: [{ system: GROUP_SYSTEM, code: f.code, display: f.display }] }, description: f.display })),
      { code: { coding: [{ system: GROUP_SYSTEM, code: 'not-recognised-by-reason', display: 'Ordered again, by reason' }] } }],
  } as Measure,
  async evaluate(q: Queryable, period: { start: string; end: string }, subject: RecognitionSubject): Promise<MeasureReportGroup[]> {
    // The period is instants (supervision's, already in local time); the zone only names the rows' months.
    const params: unknown[] = [period.start, period.end, DEFAULT_TIME_ZONE];
    let filter = '';
    if (subject.kind !== 'city') {
      params.push(subject.reference);
      filter = ` AND ${SUBJECT_COLUMN[subject.kind]} = $4`;
    }
    const [decisions, lookups] = await Promise.all([
      q.query<Row>(`SELECT * FROM (${DECISIONS_SQL}) d WHERE true${filter}`, params),
      q.query<Row>(`SELECT * FROM (${LOOKUPS_SQL}) l WHERE true${filter}`, params),
    ]);
    const all = new Tally();
    const byReason = new Map<string, number>();
    for (const row of [...decisions, ...lookups]) {
      all.add(row.figure, Number(row.n));
      all.amount += row.amount === null ? 0 : Number(row.amount);
      if (row.reason && row.figure.startsWith('not-recognised')) {
        byReason.set(row.reason, (byReason.get(row.reason) ?? 0) + Number(row.n));
      }
    }
    return figureGroups(all, byReason);
  },
};

function monthParam(request: FhirRequest, name: string, fallback: string): string {
  const value = parameterValue(operationParameters(request), name) ?? fallback;
  if (!/^\d{4}-\d{2}(-\d{2})?$/.test(value) || Number.isNaN(Date.parse(value.length === 7 ? `${value}-01` : value))) {
    throw badRequest(`Parameter "${name}" is a date (YYYY-MM-DD or YYYY-MM), got "${value}"`);
  }
  return value.length === 7 ? `${value}-01` : value;
}

export function reportOperation(db: Queryable, timeZone = DEFAULT_TIME_ZONE): FhirOperation {
  return {
    name: 'recognition-report',
    definition: `${BASE}/OperationDefinition/recognition-report`,
    levels: ['system'],
    affectsState: false,
    roles: ['admin', 'supervisor'],
    async invoke(_ctx, request) {
      const now = new Date();
      // By default this local month.
      const start = monthParam(request, 'period-start', `${localMonth(now.getTime(), timeZone).month}-01`);
      const end = monthParam(request, 'period-end', `${localMonth(now.getTime(), timeZone, 1).month}-01`);
      const reports = await recognitionFigures(db, start, end, timeZone);
      const body: Bundle = { resourceType: 'Bundle', type: 'collection', timestamp: now.toISOString(), entry: reports.map((resource) => ({ resource })) };
      return { status: 200, body };
    },
  };
}
