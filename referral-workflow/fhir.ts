/** Code systems, extensions and small helpers for reading and writing resources through the store's public face. */
import type { Reference, Resource, ServiceRequest, Task } from '@medplum/fhirtypes';
import { FhirError, parseSearch, queryRecord, type FhirRepository } from '../fhir-server';

export const SNOMED = 'http://snomed.info/sct';
/** SNOMED CT 3457005 "Patient referral": the category that makes a ServiceRequest a referral. */
export const REFERRAL_CATEGORY = '3457005';
export const DIRECTION_EXTENSION = 'http://huimin.health/fhir/StructureDefinition/referral-direction';
export const GREEN_CHANNEL_EXTENSION = 'http://huimin.health/fhir/StructureDefinition/referral-green-channel';
/** Task.businessStatus codes of the engine (routed, overdue, booked, no-slot, consent-refused, …). */
export const BUSINESS_STATUS = 'http://huimin.health/fhir/CodeSystem/referral-business-status';
export const REASON_SYSTEM = 'http://huimin.health/fhir/CodeSystem/referral-reason';
/** Identifier systems that make the engine's own creations idempotent (conditional creates). */
export const NOTIFICATION_ID = 'http://huimin.health/fhir/sid/referral-notification';
export const APPOINTMENT_ID = 'http://huimin.health/fhir/sid/referral-appointment';
export const FLAG_ID = 'http://huimin.health/fhir/sid/referral-flag';
export const FOLLOW_UP_ID = 'http://huimin.health/fhir/sid/referral-follow-up';
/** Meta tag of slots held back for referrals. */
export const RESERVATION_SYSTEM = 'http://huimin.health/fhir/CodeSystem/slot-reservation';
/** Task.input / Task.output types. */
export const TASK_IO = 'http://huimin.health/fhir/CodeSystem/referral-task-io';

export type Direction = 'up' | 'down';

export function isReferral(sr: ServiceRequest): boolean {
  return (sr.category ?? []).some((c) => c.coding?.some((x) => x.system === SNOMED && x.code === REFERRAL_CATEGORY));
}

export function directionOf(sr: ServiceRequest): Direction | undefined {
  const value = sr.extension?.find((e) => e.url === DIRECTION_EXTENSION)?.valueCode;
  return value === 'up' || value === 'down' ? value : undefined;
}

export function isGreenChannel(sr: ServiceRequest): boolean {
  return sr.extension?.some((e) => e.url === GREEN_CHANNEL_EXTENSION && e.valueBoolean === true) ?? false;
}

/** `Type/id` of a local reference, or undefined for absolute, contained or logical ones. */
export function localRef(ref: Reference | undefined): { resourceType: string; id: string } | undefined {
  const m = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/.exec(ref?.reference ?? '');
  return m ? { resourceType: m[1], id: m[2] } : undefined;
}

export function businessStatusOf(task: Task): string | undefined {
  return task.businessStatus?.coding?.find((c) => c.system === BUSINESS_STATUS)?.code;
}

export function businessStatus(code: string, display: string): Task['businessStatus'] {
  return { coding: [{ system: BUSINESS_STATUS, code, display }], text: display };
}

/** The current version of a resource with its version number, or undefined when it does not exist or was deleted. */
export async function readResource<T extends Resource>(
  repo: FhirRepository,
  resourceType: string,
  id: string,
): Promise<(T & { meta: { versionId: string } }) | undefined> {
  try {
    const stored = await repo.read(resourceType, id);
    return JSON.parse(stored.json) as T & { meta: { versionId: string } };
  } catch (err) {
    if (err instanceof FhirError && (err.status === 404 || err.status === 410)) {
      return undefined;
    }
    throw err;
  }
}

/** Every resource a search matches (follows pages), for the workflow's own bounded searches. */
export async function searchAll<T extends Resource>(repo: FhirRepository, resourceType: string, query: string, limit = 10_000): Promise<T[]> {
  const request = parseSearch(resourceType, queryRecord(new URLSearchParams(query)));
  const found: T[] = [];
  // Cursor paging: exact even while the workflow itself writes matching resources between pages.
  let cursor: string | undefined;
  do {
    const page = await repo.search(request, { count: Math.min(500, limit), offset: 0, cursor });
    found.push(...page.rows.map((r) => JSON.parse(r.content) as T));
    cursor = page.next;
  } while (cursor !== undefined && found.length < limit);
  return found.slice(0, limit);
}
