/**
 * What a request touched, for the AuditEvent's entities: the resource itself, the patient(s) it is about, and for a
 * bundle what its entries touched. "Who looked at my record" (`AuditEvent?entity=Patient/{id}`) depends on the
 * patient being named here, so reads of a patient's Observation name the patient too.
 */
import type { Bundle, Resource } from '@medplum/fhirtypes';
import { RawJson, type FhirRequest, type FhirResponse } from '../rest/types';

const MAX_ENTITIES = 100;
const PATIENT_FIELDS = ['subject', 'patient', 'beneficiary', 'individual'];
const ID = /^[A-Za-z0-9\-.]{1,64}$/;
/** The patient reference of a stored resource's top-level subject/patient, found without parsing the JSON. */
const PATIENT_IN_TEXT = /"(?:subject|patient|beneficiary|individual)":\{[^{}]*?"reference":"(Patient\/[A-Za-z0-9\-.]{1,64})"/g;

function patientsOfResource(resource: Resource | undefined, into: Set<string>): void {
  if (!resource || typeof resource !== 'object') {
    return;
  }
  if (resource.resourceType === 'Patient' && typeof resource.id === 'string') {
    into.add(`Patient/${resource.id}`);
  }
  for (const field of PATIENT_FIELDS) {
    const ref = (resource as unknown as Record<string, { reference?: unknown } | undefined>)[field]?.reference;
    if (typeof ref === 'string' && /^Patient\/[A-Za-z0-9\-.]{1,64}$/.test(ref)) {
      into.add(ref);
    }
  }
}

function locationRef(location: string | undefined): string | undefined {
  const match = location ? /([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(\/_history\/\d+)?$/.exec(location) : null;
  return match ? `${match[1]}/${match[2]}` : undefined;
}

export function auditEntities(request: FhirRequest | undefined, response: FhirResponse | undefined): string[] {
  const found = new Set<string>();
  if (!request) {
    return [];
  }
  const segments = request.path.split('/').filter(Boolean);
  const [type, id] = segments;
  if (type && id && /^[A-Z]/.test(type) && ID.test(id)) {
    found.add(`${type}/${id}`);
  }
  // Searches about one patient: `patient=`, `subject=Patient/…`, and `_id` of a Patient search.
  for (const name of ['patient', 'subject', ...(type === 'Patient' ? ['_id'] : [])]) {
    for (const value of request.query.getAll(name).flatMap((v) => v.split(','))) {
      const ref = value.includes('/') ? value.replace(/^.*\/(Patient\/[^/]+)$/, '$1') : `Patient/${value}`;
      if (/^Patient\/[A-Za-z0-9\-.]{1,64}$/.test(ref)) {
        found.add(ref);
      }
    }
  }
  patientsOfResource(request.body as Resource | undefined, found);
  const body = response?.body;
  if (body instanceof RawJson) {
    // A read: the stored resource's patient, found in its text (searches' pages are not scanned: the query says it).
    if (request.method === 'GET' && segments.length >= 2 && !segments[1].startsWith('$') && !segments[1].startsWith('_') && segments.length !== 3) {
      for (const match of body.text.matchAll(PATIENT_IN_TEXT)) {
        found.add(match[1]);
        if (found.size >= MAX_ENTITIES) break;
      }
    }
  } else if (body && (body as Resource).resourceType === 'Bundle') {
    const bundle = request.body as Bundle | undefined;
    for (const entry of bundle?.entry ?? []) {
      patientsOfResource(entry.resource, found);
      if (found.size >= MAX_ENTITIES) break;
    }
    for (const entry of (body as Bundle).entry ?? []) {
      const ref = locationRef(entry.response?.location);
      if (ref) found.add(ref);
      if (found.size >= MAX_ENTITIES) break;
    }
  }
  const location = locationRef(response?.headers?.Location ?? response?.headers?.location);
  if (location) {
    found.add(location);
  }
  return [...found].slice(0, MAX_ENTITIES);
}
