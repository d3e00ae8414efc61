/**
 * A resident's shared record as the pages show it: every hospital's resources for the resident (the golden record's
 * linked source records too), turned into timeline entries that say which hospital each came from.
 */
import type {
  AllergyIntolerance,
  Condition,
  DetectedIssue,
  DiagnosticReport,
  DocumentReference,
  Encounter,
  ImagingStudy,
  Immunization,
  MedicationRequest,
  MedicationStatement,
  Observation,
  Patient,
  Resource,
  ServiceRequest,
} from '@medplum/fhirtypes';
import { codeText, displayNames, recognitionMark, refId, search, sourceOrganization, type RequestOptions } from '../../fhir';

export type Kind = 'encounter' | 'condition' | 'observation' | 'report' | 'imaging' | 'document' | 'medication' | 'allergy' | 'immunization' | 'referral';
export const KINDS: Kind[] = ['encounter', 'condition', 'observation', 'report', 'imaging', 'document', 'medication', 'allergy', 'immunization', 'referral'];

export interface Entry {
  key: string;
  kind: Kind;
  date?: string;
  title: string;
  detail?: string;
  organization?: string;
  mark?: string;
  resource: Resource;
}

export interface SharedRecord {
  patientIds: string[];
  entries: Entry[];
  observations: Observation[];
  documents: DocumentReference[];
  advisories: DetectedIssue[];
  names: Record<string, string>;
}

/** The record's ids: the resident's, and when it is a golden record, each hospital's record it links. */
export function recordIds(patient: Patient): string[] {
  const linked = (patient.link ?? []).filter((l) => l.type === 'seealso').map((l) => refId(l.other)).filter((x): x is string => !!x);
  return [patient.id as string, ...linked];
}

function quantity(o: Observation): string {
  if (o.valueQuantity) return `${o.valueQuantity.value ?? ''} ${o.valueQuantity.unit ?? o.valueQuantity.code ?? ''}`.trim();
  if (o.valueCodeableConcept) return codeText(o.valueCodeableConcept);
  if (o.valueString) return o.valueString;
  if (o.component?.length) return o.component.map((c) => `${c.valueQuantity?.value ?? ''}`).join('/') + ` ${o.component[0].valueQuantity?.unit ?? ''}`;
  return '';
}

export function valueText(o: Observation): string {
  return quantity(o);
}

const ADVISORY_SYSTEM = 'http://huimin.health/fhir/CodeSystem/recognition-issue';
const ADVISORY_CODES = `${ADVISORY_SYSTEM}|duplicate-test,${ADVISORY_SYSTEM}|duplicate-medication`;

export async function loadRecord(ids: string[], options: RequestOptions): Promise<SharedRecord> {
  const patient = ids.map((id) => `Patient/${id}`).join(',');
  const s = <T extends Resource>(type: string, count = 200, extra: Record<string, string> = {}): Promise<T[]> =>
    search<T>(type, { patient, _count: String(count), ...extra }, options).then((r) => r.resources);
  const [encounters, conditions, observations, reports, imaging, documents, medications, statements, allergies, immunizations, referrals, advisories] = await Promise.all([
    s<Encounter>('Encounter'),
    s<Condition>('Condition'),
    s<Observation>('Observation', 500, { _sort: '-date' }),
    s<DiagnosticReport>('DiagnosticReport'),
    s<ImagingStudy>('ImagingStudy', 50),
    s<DocumentReference>('DocumentReference', 100),
    s<MedicationRequest>('MedicationRequest'),
    s<MedicationStatement>('MedicationStatement', 100),
    s<AllergyIntolerance>('AllergyIntolerance', 50),
    s<Immunization>('Immunization', 100),
    s<ServiceRequest>('ServiceRequest', 100),
    // Only the recognition module's advisories: supervision's findings about the same resident are the bureau's
    // business, shown on the supervisor's pages.
    s<DetectedIssue>('DetectedIssue', 50, { code: ADVISORY_CODES }).catch(() => [] as DetectedIssue[]),
  ]);
  const encounterOrg = new Map(encounters.map((e) => [`Encounter/${e.id}`, e.serviceProvider?.reference]));
  /** Where a resource came from: its owner tag, else its encounter's provider. */
  const orgOf = (r: Resource & { encounter?: { reference?: string }; context?: { encounter?: { reference?: string }[] } }): string | undefined =>
    sourceOrganization(r) ?? (r.resourceType === 'Encounter' ? (r as Encounter).serviceProvider?.reference : undefined) ?? encounterOrg.get(r.encounter?.reference ?? r.context?.encounter?.[0]?.reference ?? '');
  const entries: Entry[] = [];
  const add = (kind: Kind, r: Resource, date: string | undefined, title: string, detail?: string): void => {
    entries.push({ key: `${r.resourceType}/${r.id}`, kind, date, title, detail, organization: orgOf(r), mark: recognitionMark(r), resource: r });
  };
  for (const e of encounters) add('encounter', e, e.period?.start, codeText(e.type?.[0]), e.class?.display ?? e.class?.code);
  for (const c of conditions) add('condition', c, c.onsetDateTime ?? c.recordedDate, codeText(c.code), c.clinicalStatus ? codeText(c.clinicalStatus) : undefined);
  for (const o of observations) add('observation', o, o.effectiveDateTime ?? o.issued, codeText(o.code), valueText(o));
  for (const r of reports) add('report', r, r.effectiveDateTime ?? r.issued, codeText(r.code), r.conclusion);
  for (const i of imaging) add('imaging', i, i.started, i.description ?? codeText(i.procedureCode?.[0]), i.modality?.map((m) => m.code).join(', '));
  for (const d of documents) add('document', d, d.date ?? d.context?.period?.start, d.description ?? codeText(d.type), d.content?.[0]?.attachment?.contentType);
  for (const m of medications) add('medication', m, m.authoredOn, codeText(m.medicationCodeableConcept), m.dosageInstruction?.[0]?.text ?? m.status);
  for (const m of statements) add('medication', m, m.effectiveDateTime ?? m.dateAsserted, codeText(m.medicationCodeableConcept), m.status);
  for (const a of allergies) add('allergy', a, a.recordedDate ?? a.onsetDateTime, codeText(a.code), a.criticality);
  for (const i of immunizations) add('immunization', i, i.occurrenceDateTime, codeText(i.vaccineCode), i.status);
  for (const r of referrals.filter((x) => x.category?.some((c) => c.coding?.some((k) => k.code === '3457005')))) add('referral', r, r.authoredOn, codeText(r.reasonCode?.[0]), r.status);
  entries.sort((a, b) => (b.date ?? '').localeCompare(a.date ?? ''));
  const names = await displayNames(entries.map((e) => e.organization));
  return { patientIds: ids, entries, observations, documents, advisories, names };
}

export interface Trend {
  key: string;
  label: string;
  unit: string;
  series: string[];
  points: Record<string, string | number>[];
  low?: number;
  high?: number;
}

/** Repeated numeric results by code (blood pressure by its components), oldest first, with the reference range. */
export function trends(observations: Observation[], names: Record<string, string>, hospitalLabel: string): Trend[] {
  const groups = new Map<string, Observation[]>();
  for (const o of observations) {
    const coding = o.code?.coding?.[0];
    if (!coding?.code || (!o.valueQuantity?.value && !o.component?.some((c) => c.valueQuantity?.value !== undefined))) continue;
    const key = `${coding.system ?? ''}|${coding.code}`;
    groups.set(key, [...(groups.get(key) ?? []), o]);
  }
  const out: Trend[] = [];
  for (const [key, list] of groups) {
    if (list.length < 2) continue;
    const sorted = [...list].sort((a, b) => (a.effectiveDateTime ?? '').localeCompare(b.effectiveDateTime ?? ''));
    const first = sorted[0];
    const components = !first.valueQuantity && first.component ? first.component.map((c) => codeText(c.code)) : undefined;
    const series = components ?? [codeText(first.code)];
    const points = sorted.map((o) => {
      const point: Record<string, string | number> = { date: (o.effectiveDateTime ?? o.issued ?? '').slice(0, 10), [hospitalLabel]: names[sourceOrganization(o) ?? ''] ?? '' };
      if (components) o.component?.forEach((c, i) => c.valueQuantity?.value !== undefined && (point[series[i] ?? `#${i}`] = c.valueQuantity.value));
      else if (o.valueQuantity?.value !== undefined) point[series[0]] = o.valueQuantity.value;
      return point;
    });
    const range = first.referenceRange?.[0];
    out.push({
      key,
      label: codeText(first.code),
      unit: first.valueQuantity?.unit ?? first.component?.[0]?.valueQuantity?.unit ?? '',
      series,
      points,
      low: range?.low?.value,
      high: range?.high?.value,
    });
  }
  return out.sort((a, b) => b.points.length - a.points.length);
}
