/** Canonical URLs of the module's code systems and extensions, and small helpers over the store's public face. */
import type { CodeableConcept, Coding, Reference, Resource } from '@medplum/fhirtypes';

export const BASE = 'http://huimin.health/fhir';
export const LOINC = 'http://loinc.org';
export const SNOMED = 'http://snomed.info/sct';

/** Why a new test is needed although a recognisable result exists (the bureau's list; see content/). */
export const EXCEPTION_REASON_SYSTEM = `${BASE}/CodeSystem/recognition-exception-reason`;
/** The property of an exception reason that leaves it out of the recognition rate (serial monitoring, not obtainable). */
export const COUNTS_AS_REFUSAL = 'counts-as-refusal';
/** What the DetectedIssue is about: duplicate-test, duplicate-medication. */
export const ISSUE_SYSTEM = `${BASE}/CodeSystem/recognition-issue`;
/** DetectedIssue.mitigation.action of an accepted advisory; ServiceRequest statusReason "recognised". */
export const OUTCOME_SYSTEM = `${BASE}/CodeSystem/recognition-outcome`;
/** The scope of a recognition grant: national (全国), provincial (本省), regional (a city: 合肥). */
export const SCOPE_SYSTEM = `${BASE}/CodeSystem/recognition-scope`;

/**
 * The "HR" mark a result carries as shared: meta.tag with this system and the code "<scope>HR" (全国HR, 本省HR, 合肥HR).
 * A tag, not an extension, so that it is searchable (`_tag`) and travels on every copy of the result.
 */
export const MARK_SYSTEM = `${BASE}/CodeSystem/recognition-mark`;

/**
 * A recognition grant is a HealthcareService tagged with this (meta.tag), owned by the health bureau, whose
 * providedBy is the lab or imaging department and whose `type` lists the recognised items (LOINC). The extension
 * carries the scope and the validity period.
 */
export const GRANT_TAG_SYSTEM = `${BASE}/CodeSystem/platform-role`;
export const GRANT_TAG_CODE = 'recognition-grant';
export const GRANT_EXTENSION = `${BASE}/StructureDefinition/recognition-grant`;

/** R4 core extension for the reason of a request's status (ServiceRequest has no statusReason in R4). */
export const STATUS_REASON_EXTENSION = 'http://hl7.org/fhir/StructureDefinition/request-statusReason';
/** Identifier systems of what the engine creates, so that repeated jobs create nothing twice. */
export const ADVISORY_ID = `${BASE}/sid/recognition-advisory`;
export const RECOGNISED_LIST_ID = `${BASE}/sid/recognition-recognised-results`;

export const ADAPTER_SOURCE = /^urn:huimin:hl7v2:(Organization\/[A-Za-z0-9\-.]{1,64}):/;

/** `Type/id` of a local reference, or undefined for absolute, contained or logical ones. */
export function localRef(ref: Reference | string | undefined): { resourceType: string; id: string } | undefined {
  const m = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/.exec(typeof ref === 'string' ? ref : (ref?.reference ?? ''));
  return m ? { resourceType: m[1], id: m[2] } : undefined;
}

export function codings(cc: CodeableConcept | CodeableConcept[] | undefined): Coding[] {
  return (Array.isArray(cc) ? cc : cc ? [cc] : []).flatMap((c) => c.coding ?? []);
}

/** The store helpers the referral workflow already has: the current version of a resource, every match of a search. */
export { readResource, searchAll } from '../referral-workflow';

/** The organisation a resource came from: its owner tag (written through the API) or the HL7 facility (adapters). */
export function sourceOrganization(resource: Resource, ownerOf: (meta: Resource['meta']) => string | undefined): string | undefined {
  return ownerOf(resource.meta) ?? ADAPTER_SOURCE.exec(resource.meta?.source ?? '')?.[1];
}
