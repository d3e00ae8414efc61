/**
 * The health bureau's figures as FHIR MeasureReports, computed from the referral Tasks and the slots:
 * `GET [base]/$referral-report?period-start=2026-11-01&period-end=2026-12-01` answers a Bundle of MeasureReports
 * (type summary, measure http://huimin.health/fhir/Measure/referral-figures), one per institution and month.
 *
 * - As referring institution (Task.requester): up- and down-referrals sent, each split outpatient/inpatient
 *   (ServiceRequest.category v3-ActCode AMB/IMP; "unspecified" otherwise).
 * - As receiving institution (Task.owner): referrals received, accepted, rejected, acceptance rate (accepted of
 *   those answered), median and p90 time from authoredOn to acceptance (from the Task's history, in minutes),
 *   overdue count (went overdue at any time).
 * - Reserved slots (by the Schedule's actor): reserved, used by referrals, released to the public.
 *
 * Months are calendar months of Task.authoredOn (slots: Slot.start) in the deployment's time zone (HUIMIN_TIME_ZONE,
 * default Asia/Shanghai): a month and the period's dates begin at local midnight.
 */
import type { Bundle, MeasureReport, MeasureReportGroup, Reference, Schedule, ServiceRequest, Slot, Task } from '@medplum/fhirtypes';
import { badRequest, operationParameters, parameterValue, type FhirOperation, type FhirRepository, type RouteContext, type FhirRequest } from '../fhir-server';
import { businessStatusOf, directionOf, isReferral, localRef, RESERVATION_SYSTEM, searchAll } from './fhir';
import { DEFAULT_TIME_ZONE, localDate, localMonth, startOfLocalDate } from './local-time';

export const REFERRAL_MEASURE = 'http://huimin.health/fhir/Measure/referral-figures';
const GROUP_SYSTEM = 'http://huimin.health/fhir/CodeSystem/referral-measure-group';
const ACT_CODE = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';
const ACCEPTED = new Set(['accepted', 'ready', 'in-progress', 'on-hold', 'completed']);

interface Figures {
  reporter: string;
  month: string;
  counts: Map<string, number>;
  acceptMinutes: number[];
}

/** The local month (`YYYY-MM`) of an instant. */
function monthOf(instant: string, timeZone: string): string {
  const { year, month } = localDate(Date.parse(instant), timeZone);
  return `${year}-${String(month).padStart(2, '0')}`;
}

function settingOf(sr: ServiceRequest): string {
  const code = sr.category?.flatMap((c) => c.coding ?? []).find((c) => c.system === ACT_CODE)?.code;
  return code === 'AMB' ? 'outpatient' : code === 'IMP' ? 'inpatient' : 'unspecified';
}

/** The p-quantile (0–1) of sorted values, nearest rank. */
export function quantile(sorted: number[], p: number): number | undefined {
  if (sorted.length === 0) {
    return undefined;
  }
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

class Tally {
  readonly byKey = new Map<string, Figures>();
  get(reporter: string, month: string): Figures {
    const key = `${reporter} ${month}`;
    let figures = this.byKey.get(key);
    if (!figures) {
      figures = { reporter, month, counts: new Map(), acceptMinutes: [] };
      this.byKey.set(key, figures);
    }
    return figures;
  }
  add(reporter: string | undefined, month: string, name: string, n = 1): void {
    if (reporter) {
      const counts = this.get(reporter, month).counts;
      counts.set(name, (counts.get(name) ?? 0) + n);
    }
  }
}

/** When the Task first became accepted, and whether it ever went overdue, from its history. */
async function historyFacts(repo: FhirRepository, id: string): Promise<{ acceptedAt?: string; everOverdue: boolean }> {
  const { rows } = await repo.history({ resourceType: 'Task', id, count: 200, offset: 0 });
  let acceptedAt: string | undefined;
  let everOverdue = false;
  for (const row of rows) {
    if (!row.content) {
      continue;
    }
    const version = JSON.parse(row.content) as Task;
    if (ACCEPTED.has(version.status)) {
      acceptedAt = new Date(row.lastUpdated).toISOString(); // newest first: the last one seen is the earliest
    }
    everOverdue ||= businessStatusOf(version) === 'overdue';
  }
  return { acceptedAt, everOverdue };
}

/** The figures of the local dates [start, end) (`YYYY-MM-DD`), per institution and local month. */
export async function referralFigures(repo: FhirRepository, start: string, end: string, timeZone = DEFAULT_TIME_ZONE): Promise<MeasureReport[]> {
  const tally = new Tally();
  // The local dates as instants (their local midnight), so that the search and the months agree.
  const from = new Date(startOfLocalDate(start, timeZone)).toISOString();
  const to = new Date(startOfLocalDate(end, timeZone)).toISOString();
  const tasks = await searchAll<Task>(repo, 'Task', `authored-on=ge${from}&authored-on=lt${to}`, 100_000);
  const requests = new Map<string, ServiceRequest | undefined>();
  for (const task of tasks) {
    const focus = localRef(task.focus);
    if (focus?.resourceType !== 'ServiceRequest' || !task.authoredOn || task.status === 'draft') {
      continue;
    }
    if (!requests.has(focus.id)) {
      const found = await searchAll<ServiceRequest>(repo, 'ServiceRequest', `_id=${focus.id}`, 1);
      requests.set(focus.id, found[0]);
    }
    const sr = requests.get(focus.id);
    if (!sr || !isReferral(sr)) {
      continue;
    }
    const month = monthOf(task.authoredOn, timeZone);
    const sender = task.requester?.reference;
    const receiver = task.owner?.reference;
    const direction = directionOf(sr) ?? 'up';
    tally.add(sender, month, `${direction}-sent-${settingOf(sr)}`);
    tally.add(sender, month, `${direction}-sent`);
    tally.add(receiver, month, 'received');
    const facts = await historyFacts(repo, task.id as string);
    if (facts.acceptedAt) {
      tally.add(receiver, month, 'accepted');
      if (receiver) {
        tally.get(receiver, month).acceptMinutes.push((Date.parse(facts.acceptedAt) - Date.parse(task.authoredOn)) / 60_000);
      }
    } else if (task.status === 'rejected' || task.status === 'failed') {
      tally.add(receiver, month, 'rejected');
    }
    if (facts.everOverdue) {
      tally.add(receiver, month, 'overdue');
    }
  }
  await tallySlots(repo, tally, from, to, timeZone);
  return [...tally.byKey.values()].map((f) => toReport(f));
}

async function tallySlots(repo: FhirRepository, tally: Tally, start: string, end: string, timeZone: string): Promise<void> {
  const actors = new Map<string, string | undefined>();
  for (const state of ['reserved', 'used', 'released']) {
    const slots = await searchAll<Slot>(repo, 'Slot', `_tag=${encodeURIComponent(`${RESERVATION_SYSTEM}|${state}`)}&start=ge${start}&start=lt${end}`, 100_000);
    for (const slot of slots) {
      const schedule = localRef(slot.schedule);
      if (!schedule || !slot.start) {
        continue;
      }
      if (!actors.has(schedule.id)) {
        const found = await searchAll<Schedule>(repo, 'Schedule', `_id=${schedule.id}`, 1);
        actors.set(schedule.id, found[0]?.actor?.[0]?.reference);
      }
      const month = monthOf(slot.start, timeZone);
      tally.add(actors.get(schedule.id), month, 'slots-reserved');
      tally.add(actors.get(schedule.id), month, `slots-${state === 'reserved' ? 'unused' : state}`);
    }
  }
}

function countGroup(code: string, display: string, count: number): MeasureReportGroup {
  return { code: { coding: [{ system: GROUP_SYSTEM, code, display }] }, population: [{ code: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/measure-population', code: 'initial-population' }] }, count }] };
}

function scoreGroup(code: string, display: string, value: number | undefined, unit: string): MeasureReportGroup | undefined {
  return value === undefined ? undefined : { code: { coding: [{ system: GROUP_SYSTEM, code, display }] }, measureScore: { value: Math.round(value * 1000) / 1000, unit, system: 'http://unitsofmeasure.org', code: unit === '%' ? '%' : 'min' } };
}

const COUNT_GROUPS: Array<[string, string]> = [
  ['up-sent', 'Up-referrals sent'],
  ['up-sent-outpatient', 'Up-referrals sent, outpatient'],
  ['up-sent-inpatient', 'Up-referrals sent, inpatient'],
  ['down-sent', 'Down-referrals sent'],
  ['down-sent-outpatient', 'Down-referrals sent, outpatient'],
  ['down-sent-inpatient', 'Down-referrals sent, inpatient'],
  ['received', 'Referrals received'],
  ['accepted', 'Referrals accepted'],
  ['rejected', 'Referrals rejected or refused'],
  ['overdue', 'Referrals not answered by their deadline'],
  ['slots-reserved', 'Slots reserved for referrals'],
  ['slots-used', 'Reserved slots booked by referrals'],
  ['slots-unused', 'Reserved slots still held for referrals'],
  ['slots-released', 'Reserved slots released to the public'],
];

function toReport(f: Figures): MeasureReport {
  const [year, month] = f.month.split('-').map(Number);
  const periodEnd = new Date(Date.UTC(year, month, 0)).toISOString().slice(0, 10);
  const count = (name: string): number => f.counts.get(name) ?? 0;
  const sorted = [...f.acceptMinutes].sort((a, b) => a - b);
  const answered = count('accepted') + count('rejected');
  const groups: MeasureReportGroup[] = COUNT_GROUPS.filter(([code]) => f.counts.has(code)).map(([code, display]) => countGroup(code, display, count(code)));
  for (const g of [
    scoreGroup('acceptance-rate', 'Accepted, of the referrals answered', answered > 0 ? (100 * count('accepted')) / answered : undefined, '%'),
    scoreGroup('time-to-accept-median', 'Median time to accept', quantile(sorted, 0.5), 'min'),
    scoreGroup('time-to-accept-p90', '90th percentile time to accept', quantile(sorted, 0.9), 'min'),
  ]) {
    if (g) {
      groups.push(g);
    }
  }
  return {
    resourceType: 'MeasureReport',
    status: 'complete',
    type: 'summary',
    measure: REFERRAL_MEASURE,
    date: new Date().toISOString(),
    reporter: { reference: f.reporter } as Reference<never>,
    period: { start: `${f.month}-01`, end: periodEnd },
    group: groups,
  };
}

function dateParam(request: FhirRequest, name: string, fallback: string): string {
  const value = parameterValue(operationParameters(request), name) ?? fallback;
  if (!/^\d{4}-\d{2}(-\d{2})?$/.test(value)) {
    throw badRequest(`Parameter "${name}" is a date (YYYY-MM-DD or YYYY-MM), got "${value}"`);
  }
  return value.length === 7 ? `${value}-01` : value;
}

export const referralReportOperation = (timeZone: string): FhirOperation => ({
  name: 'referral-report',
  definition: 'http://huimin.health/fhir/OperationDefinition/referral-report',
  levels: ['system'],
  affectsState: false,
  invoke: async (ctx: RouteContext, request: FhirRequest) => {
    // By default this local month.
    const start = dateParam(request, 'period-start', `${localMonth(Date.now(), timeZone).month}-01`);
    const end = dateParam(request, 'period-end', `${localMonth(Date.now(), timeZone, 1).month}-01`);
    const reports = await referralFigures(ctx.repo, start, end, timeZone);
    const body: Bundle = {
      resourceType: 'Bundle',
      type: 'collection',
      timestamp: new Date().toISOString(),
      entry: reports.map((resource) => ({ resource })),
    };
    return { status: 200, body };
  },
});
