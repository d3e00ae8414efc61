/** Code systems, extensions and identifiers of supervision, and small readers of FHIR data. */
import type { CodeableConcept, Duration, Extension, Meta, Reference } from '@medplum/fhirtypes';
import { OWNER_TAG_SYSTEM } from '../fhir-server';

const BASE = 'https://huimin.health/fhir';
/** DetectedIssue.code: the rule that raised the finding. */
export const RULE_SYSTEM = `${BASE}/CodeSystem/supervision-rule`;
/** DetectedIssue.identifier: `ruleId|key`, unique per suspicion. */
export const FINDING_ID = `${BASE}/sid/supervision-finding`;
/** Task.groupIdentifier of a finding's review steps: the DetectedIssue id. */
export const FINDING_GROUP = `${BASE}/sid/supervision-finding-review`;
export const REVIEW_STEP_ID = `${BASE}/sid/supervision-review-step`;
export const REVIEW_STEP_SYSTEM = `${BASE}/CodeSystem/supervision-review-step`;
export const REVIEW_DECISION_SYSTEM = `${BASE}/CodeSystem/supervision-review-decision`;
export const REVIEW_OUTCOME_SYSTEM = `${BASE}/CodeSystem/supervision-review-outcome`;
export const TASK_IO_SYSTEM = `${BASE}/CodeSystem/supervision-task-io`;
export const BUSINESS_STATUS_SYSTEM = `${BASE}/CodeSystem/supervision-review-status`;
/** DetectedIssue extension naming the rule version (id, version, category, kind, legal basis). */
export const RULE_EXTENSION = `${BASE}/StructureDefinition/supervision-rule`;
/** DetectedIssue extension with what was measured against which threshold, and about which institution. */
export const FINDING_EXTENSION = `${BASE}/StructureDefinition/supervision-finding`;
/** DetectedIssue extension with the review's current step and, once closed, its outcome. */
/** A note on a finding whose records changed after it was raised: when, whether the rule still holds, and why. */
export const FACTS_CHANGED_EXTENSION = `${BASE}/StructureDefinition/supervision-facts-changed`;
export const REVIEW_EXTENSION = `${BASE}/StructureDefinition/supervision-review`;
export const MEASURE_REPORT_ID = `${BASE}/sid/supervision-measure-report`;

/** Extensions on source records that the rules read. */
export const SUPPLY_REASON_EXTENSION = `${BASE}/StructureDefinition/extended-supply-reason`;
export const STABLE_CHRONIC_EXTENSION = `${BASE}/StructureDefinition/stable-chronic-patient`;
export const REPEAT_TEST_REASON_EXTENSION = `${BASE}/StructureDefinition/repeat-test-reason`;
export const PLANNED_READMISSION_EXTENSION = `${BASE}/StructureDefinition/planned-readmission`;

export const ATC = 'http://www.whocc.no/atc';
export const ICD10_SYSTEMS = ['http://hl7.org/fhir/sid/icd-10', 'http://hl7.org/fhir/sid/icd-10-cn', 'urn:oid:2.16.840.1.113883.6.3'];

/** The organisation that owns a resource (the owner tag security stamps on writes), or meta.source as a fallback. */
export function ownerOf(meta: Meta | undefined): string | undefined {
  const tag = meta?.security?.find((c) => c.system === OWNER_TAG_SYSTEM)?.code;
  if (tag) {
    return tag;
  }
  return meta?.source && /^Organization\/[A-Za-z0-9\-.]{1,64}$/.test(meta.source) ? meta.source : undefined;
}

/** `Type/id` of a local reference to one of `types` (any type when omitted), else undefined. */
export function localRef(ref: Reference | undefined, ...types: string[]): string | undefined {
  const m = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/.exec(ref?.reference ?? '');
  return m && (types.length === 0 || types.includes(m[1])) ? `${m[1]}/${m[2]}` : undefined;
}

export function idOf(ref: string): string {
  return ref.slice(ref.indexOf('/') + 1);
}

export function firstCoding(cc: CodeableConcept | undefined, system?: string): { system?: string; code?: string } | undefined {
  const codings = cc?.coding ?? [];
  return (system ? codings.find((c) => c.system === system) : undefined) ?? codings[0];
}

export function hasCode(cc: CodeableConcept | CodeableConcept[] | undefined, code: string): boolean {
  const list = Array.isArray(cc) ? cc : cc ? [cc] : [];
  return list.some((c) => c.coding?.some((x) => x.code === code));
}

/** A duration in days (d, wk, mo as 30 d, h); undefined when it is not a time duration. */
export function durationDays(d: Duration | undefined): number | undefined {
  if (d?.value === undefined) {
    return undefined;
  }
  const unit = d.code ?? d.unit;
  const factor: Record<string, number> = { d: 1, day: 1, days: 1, wk: 7, week: 7, weeks: 7, mo: 30, month: 30, h: 1 / 24, hour: 1 / 24, a: 365 };
  const f = unit ? factor[unit] : undefined;
  return f === undefined ? undefined : d.value * f;
}

export function extensionValue(resource: { extension?: Extension[] } | undefined, url: string): unknown {
  const ext = resource?.extension?.find((e) => e.url === url);
  if (!ext) {
    return undefined;
  }
  for (const [k, v] of Object.entries(ext)) {
    if (k.startsWith('value')) {
      return v;
    }
  }
  return undefined;
}

/** ICD-10 codes compared on their characters without the dot: `I21.0` → `I210`. */
export function normaliseIcd(code: string | undefined): string | undefined {
  return code ? code.replace(/\./g, '').toUpperCase() : undefined;
}
