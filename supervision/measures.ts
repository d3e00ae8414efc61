/**
 * Indicators as FHIR Measures and MeasureReports. The Measures are written into the store at start; a
 * MeasureReport is computed on demand by `Measure/[id]/$evaluate-measure` (or `Measure/$evaluate-measure` with
 * `measure=<url>`), and every month for each institution by the engine, which stores them (identifier
 * measure|subject|period, so a repeated run updates rather than duplicates).
 */
import type { MeasureReport } from '@medplum/fhirtypes';
import { badRequest, notFound, type FhirRepository, type Queryable } from '../fhir-server';
import { startOfLocalDate, startOfLocalDay } from '../referral-workflow';
import { MEASURE_REPORT_ID } from './fhir';
import { findingSecurity } from './findings';
import type { IndicatorProvider, Period, Subject } from './indicators';

export class MeasureCatalogue {
  constructor(readonly providers: readonly IndicatorProvider[]) {}

  byIdOrUrl(idOrUrl: string): IndicatorProvider | undefined {
    const url = idOrUrl.split('|')[0];
    return this.providers.find((p) => p.measure.id === idOrUrl || p.measure.url === url);
  }

  /** Writes the Measures that are missing or changed (by their version) into the store. */
  async install(repo: FhirRepository): Promise<void> {
    await repo.write(async (session) => {
      for (const { measure } of this.providers) {
        const current = await session.read<typeof measure>('Measure', measure.id as string);
        if (!current || current.version !== measure.version || current.url !== measure.url) {
          await session.update('Measure', measure.id as string, measure);
        }
      }
    });
  }

  async report(q: Queryable, provider: IndicatorProvider, period: Period, subject: Subject, bureau: string, now: number): Promise<MeasureReport> {
    const groups = await provider.evaluate(q, period, subject);
    return {
      resourceType: 'MeasureReport',
      status: 'complete',
      type: 'summary',
      measure: `${provider.measure.url}|${provider.measure.version}`,
      ...(subject.kind !== 'city' ? { subject: { reference: subject.reference } } : {}),
      date: new Date(now).toISOString(),
      reporter: { reference: bureau },
      period: { start: period.start, end: period.end },
      group: groups,
    };
  }

  /** Computes and stores the report (restricted to the bureau and the institution it is about). */
  async store(repo: FhirRepository, q: Queryable, provider: IndicatorProvider, period: Period, subject: Subject, bureau: string, now: number): Promise<MeasureReport> {
    const report = await this.report(q, provider, period, subject, bureau, now);
    const key = `${provider.measure.id}|${subject.kind === 'city' ? 'city' : subject.reference}|${period.start}|${period.end}`;
    const institution = subject.kind === 'institution' ? subject.reference : undefined;
    const stored: MeasureReport = {
      ...report,
      meta: { security: findingSecurity(bureau, institution) },
      identifier: [{ system: MEASURE_REPORT_ID, value: key }],
    };
    return repo.write(async (session) => {
      const outcome = await session.conditionalUpdate('MeasureReport', `identifier=${encodeURIComponent(`${MEASURE_REPORT_ID}|${key}`)}`, stored);
      return outcome.resource as MeasureReport;
    });
  }
}

/**
 * `periodStart`/`periodEnd` (dates or instants; a date end is inclusive, as $evaluate-measure defines) → [start, end).
 * Dates are local calendar days in `timeZone` (the bureau's months begin at local midnight).
 */
export function parsePeriod(start: string | undefined, end: string | undefined, timeZone: string): Period {
  if (!start || !end) {
    throw badRequest('$evaluate-measure needs periodStart and periodEnd (dates such as 2026-11-01 and 2026-11-30, or instants)');
  }
  const date = /^\d{4}-\d{2}-\d{2}$/;
  const dayAfter = (d: string): number => {
    const [y, m, day] = d.split('-').map(Number);
    return startOfLocalDay(y, m, day + 1, timeZone);
  };
  const s = date.test(start) && !Number.isNaN(Date.parse(start)) ? startOfLocalDate(start, timeZone) : Date.parse(start);
  const e = date.test(end) && !Number.isNaN(Date.parse(end)) ? dayAfter(end) : Date.parse(end);
  if (Number.isNaN(s) || Number.isNaN(e)) {
    throw badRequest(`periodStart and periodEnd must be dates or instants, got "${start}" and "${end}"`);
  }
  if (e <= s) {
    throw badRequest(`The period ends (${end}) before it starts (${start})`);
  }
  if (e - s > 366 * 86_400_000) {
    throw badRequest('A period is at most one year');
  }
  return { start: new Date(s).toISOString(), end: new Date(e).toISOString() };
}

/** The subject of a report: `Organization/x` (an institution, or a department when it is part of another), `Practitioner/y`, or none (the city). */
export async function parseSubject(q: Queryable, subject: string | undefined): Promise<Subject> {
  if (!subject) {
    return { kind: 'city' };
  }
  const m = /^(Organization|Practitioner)\/([A-Za-z0-9\-.]{1,64})$/.exec(subject);
  if (!m) {
    throw badRequest(`subject must be Organization/<id> or Practitioner/<id>, got "${subject}"`);
  }
  if (m[1] === 'Practitioner') {
    return { kind: 'practitioner', reference: subject };
  }
  const [org] = await q.query<{ part_of: string | null }>('SELECT part_of FROM sv_organization WHERE id = $1', [subject]);
  return org?.part_of ? { kind: 'department', reference: subject } : { kind: 'institution', reference: subject };
}

export function unknownMeasure(id: string): Error {
  return notFound(`Measure ${id} is not one supervision evaluates (recognition rate comes from the recognition module once it registers its indicator)`);
}
