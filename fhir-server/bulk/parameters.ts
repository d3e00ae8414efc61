/**
 * The kick-off request of a bulk export (Bulk Data Access STU2, "Bulk Data Kick-off Request"), checked and turned
 * into an ExportSpec that a worker can run later, in any process. Everything a client can get wrong is a 400 here,
 * before a job exists: a missing `Prefer: respond-async`, an unknown or unreadable `_type`, a bad `_since`, an
 * unsupported `_outputFormat`, a `_typeFilter` that is not a search this server can run.
 */
import type { Parameters, ParametersParameter } from '@medplum/fhirtypes';
import { isR4ResourceType, r4ResourceTypes } from '../definitions';
import { badRequest, FhirError, forbidden, issue, outcome } from '../errors';
import { assertValidId } from '../repository';
import { compileSearch, indexedParams, parseSearch, patientCompartmentTypes, queryRecord, SqlParams } from '../search';
import { Permissions } from '../auth/scopes';
import type { CallerIdentity } from '../repository';
import { operationParameters, type FhirRequest } from '../rest';

export type ExportLevel = 'system' | 'patient' | 'group';

/** What a job exports: stored as JSON in bulk_export_job.spec. */
export interface ExportSpec {
  level: ExportLevel;
  /** Group level: the group (members are resolved at kick-off into `patients`). */
  groupId?: string;
  /** The types to export, in this order. */
  types: string[];
  /** `_since`, as given (a FHIR instant). */
  since?: string;
  /** `_typeFilter` queries by type (`code=x&status=final`); a resource matches when any query of its type does. */
  typeFilters: Record<string, string[]>;
  /**
   * Group members or the `patient` parameter, as compartment names `Patient/{id}`: only resources in these
   * patients' compartments are exported. Undefined: every patient's (patient level) or everything (system level).
   */
  patients?: string[];
  /** Problems that did not stop the export (Group members that are not patients): the manifest's error file. */
  notes?: string[];
  /**
   * `_elements`, by exported type: the top-level elements each resource keeps (with the mandatory ones, id and
   * meta; tagged SUBSETTED). Undefined: resources are exported whole.
   */
  elements?: Record<string, string[]>;
}

/** `_outputFormat` values that mean NDJSON (the specification's abbreviations included). */
export const NDJSON_FORMATS = new Set(['application/fhir+ndjson', 'application/ndjson', 'ndjson']);

/** Parameters the kick-off understands; `patient` only by POST (it is a reference). */
const KNOWN = new Set(['_outputFormat', '_since', '_type', '_typeFilter', '_elements', 'includeAssociatedData', 'patient']);

/** Parameters of the specification this server does not implement: a 400, or ignored under `handling=lenient`. */
const UNSUPPORTED: Record<string, string> = {
  _until: '_until is not supported (Bulk Data STU2 has no such parameter)',
};

/** Why each value of includeAssociatedData (Bulk Data v2) is not exported. */
const ASSOCIATED_DATA: Record<string, string> = {
  LatestProvenanceResources:
    'includeAssociatedData=LatestProvenanceResources is not supported: Provenance is exported only as a resource type of its own (add it to _type)',
  RelevantProvenanceResources:
    'includeAssociatedData=RelevantProvenanceResources is not supported: Provenance is exported only as a resource type of its own (add it to _type)',
};

const MAX_ELEMENTS = 200;
const ELEMENT = /^(?:([A-Z][A-Za-z]+)\.)?([a-z][A-Za-z0-9]*)$/;

/** Search parameters a `_typeFilter` query may use beside the type's indexed ones (result parameters may not). */
const FILTER_BUILT_INS = new Set(['_id', '_lastUpdated', '_tag', '_profile', '_security', '_source']);

const MAX_TYPE_FILTERS = 100;
const MAX_PATIENTS = 100_000;
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

function lenient(request: FhirRequest): boolean {
  return /handling\s*=\s*lenient/i.test(request.headers.prefer ?? '');
}

/** Values of a parameter that may repeat and hold comma-separated lists (`_type`, `_typeFilter`). */
function listValues(params: ParametersParameter[], name: string): string[] {
  return params
    .filter((p) => p.name === name)
    .flatMap((p) => String(p.valueString ?? p.valueCode ?? '').split(','))
    .map((v) => v.trim())
    .filter(Boolean);
}

function singleValue(params: ParametersParameter[], name: string): string | undefined {
  const found = params.filter((p) => p.name === name);
  if (found.length > 1) {
    throw badRequest(`${name} may be given once, got ${found.length} values`);
  }
  const p = found[0];
  if (!p) {
    return undefined;
  }
  const value = p.valueString ?? p.valueInstant ?? p.valueDateTime ?? p.valueCode ?? p.valueUri;
  if (typeof value !== 'string') {
    throw badRequest(`${name} must be a primitive value`);
  }
  return value;
}

/** `Prefer: respond-async` is how a client says it knows this is an asynchronous request. */
export function assertRespondAsync(request: FhirRequest): void {
  if (!/(^|[\s,;])respond-async($|[\s,;])/i.test(request.headers.prefer ?? '')) {
    throw badRequest('A bulk export is asynchronous: send the header "Prefer: respond-async", then poll the URL in Content-Location');
  }
}

/** The types the caller's scopes let it read (undefined: every type). */
function readableTypes(caller: CallerIdentity | undefined): Set<string> | undefined {
  if (caller?.scope === undefined) {
    return undefined;
  }
  const { permissions } = Permissions.parse(caller.scope);
  if (permissions.allowsAll('r') || permissions.allowsAll('s')) {
    return undefined;
  }
  return new Set([...permissions.typesAllowing('r'), ...permissions.typesAllowing('s')]);
}

/**
 * Parses and checks the kick-off parameters (from the query, or a Parameters body by POST). Group members are
 * added by the operation, which reads the Group with the caller's rights.
 */
export function parseKickOff(request: FhirRequest, level: ExportLevel, caller: CallerIdentity | undefined): ExportSpec {
  const input: Parameters = operationParameters(request);
  const params = input.parameter ?? [];
  const strict = !lenient(request);
  for (const p of params) {
    if (KNOWN.has(p.name)) {
      continue;
    }
    const reason = UNSUPPORTED[p.name] ?? `"${p.name}" is not a parameter of $export (known: ${[...KNOWN].join(', ')})`;
    if (strict) {
      throw badRequest(`${reason}; send "Prefer: handling=lenient" to have it ignored`);
    }
  }

  const format = singleValue(params, '_outputFormat');
  if (format !== undefined && !NDJSON_FORMATS.has(format)) {
    throw badRequest(`_outputFormat "${format}" is not supported; this server exports ${[...NDJSON_FORMATS].join(', ')}`);
  }

  const since = singleValue(params, '_since');
  if (since !== undefined && (!INSTANT.test(since) || Number.isNaN(Date.parse(since)))) {
    throw badRequest(`_since must be a FHIR instant with a time zone, such as 2024-01-31T08:00:00Z; got "${since}"`);
  }

  const eligible = level === 'system' ? [...r4ResourceTypes()].sort() : patientCompartmentTypes();
  const readable = readableTypes(caller);
  const requested = [...new Set(listValues(params, '_type'))];
  for (const type of requested) {
    if (!isR4ResourceType(type)) {
      throw badRequest(`_type "${type}" is not a FHIR R4 resource type`);
    }
    if (!eligible.includes(type)) {
      throw badRequest(`_type ${type} cannot be in a patient's compartment, so a ${level}-level export has none; use a system-level export`);
    }
    if (readable && !readable.has(type)) {
      throw forbidden(`The token's scopes (${caller?.scope}) do not allow reading ${type}`);
    }
  }
  const types = requested.length > 0 ? requested : eligible.filter((t) => !readable || readable.has(t));

  const typeFilters: Record<string, string[]> = {};
  const filters = listValues(params, '_typeFilter');
  if (filters.length > MAX_TYPE_FILTERS) {
    throw badRequest(`At most ${MAX_TYPE_FILTERS} _typeFilter queries are accepted, got ${filters.length}`);
  }
  for (const filter of filters) {
    const { type, query } = checkTypeFilter(filter);
    if (!types.includes(type)) {
      throw badRequest(`_typeFilter "${filter}" is on ${type}, which is not exported${requested.length > 0 ? ': add it to _type' : ''}`);
    }
    (typeFilters[type] ??= []).push(query);
  }

  const patients = params.filter((p) => p.name === 'patient');
  if (patients.length > 0 && level === 'system') {
    throw badRequest('The patient parameter is for patient- and group-level exports (Patient/$export, Group/[id]/$export)');
  }
  if (patients.length > MAX_PATIENTS) {
    throw badRequest(`At most ${MAX_PATIENTS} patient parameters are accepted, got ${patients.length}`);
  }
  const patientRefs = patients.map((p) => {
    const reference = p.valueReference?.reference;
    const match = reference === undefined ? null : /^Patient\/([^/]+)$/.exec(reference);
    if (!match) {
      throw badRequest(`patient must be a valueReference to Patient/[id], got ${JSON.stringify(p.valueReference ?? p.valueString ?? null)}`);
    }
    assertValidId(match[1]);
    return `Patient/${match[1]}`;
  });

  const elements = elementsByType(listValues(params, '_elements'), types);
  const notes = associatedDataNotes(listValues(params, 'includeAssociatedData'), strict);

  return {
    level,
    types,
    since,
    typeFilters,
    ...(patientRefs.length > 0 ? { patients: [...new Set(patientRefs)] } : {}),
    ...(elements ? { elements } : {}),
    ...(notes.length > 0 ? { notes } : {}),
  };
}

/**
 * `_elements` (Bulk Data v2): `[Type.]element`, root elements only; an element without a type applies to every
 * exported type, one with a type to that type alone. Every exported type is subsetted once `_elements` is given (a
 * type none of the names applies to keeps its mandatory elements only), as the specification asks.
 */
function elementsByType(values: string[], types: string[]): Record<string, string[]> | undefined {
  if (values.length === 0) {
    return undefined;
  }
  if (values.length > MAX_ELEMENTS) {
    throw badRequest(`At most ${MAX_ELEMENTS} _elements are accepted, got ${values.length}`);
  }
  const common: string[] = [];
  const byType: Record<string, string[]> = {};
  for (const value of values) {
    const match = ELEMENT.exec(value);
    if (!match) {
      throw badRequest(`_elements "${value}" must be a root element, as element or Type.element (such as Observation.code)`);
    }
    const [, type, element] = match;
    if (type === undefined) {
      common.push(element);
    } else if (!types.includes(type)) {
      throw badRequest(`_elements "${value}" is on ${type}, which is not exported${isR4ResourceType(type) ? '' : ' (not a FHIR R4 resource type)'}`);
    } else {
      (byType[type] ??= []).push(element);
    }
  }
  return Object.fromEntries(types.map((type) => [type, [...new Set([...common, ...(byType[type] ?? [])])]]));
}

/** includeAssociatedData: none of its values is supported; a 400 naming each, or notes in the error file when lenient. */
function associatedDataNotes(values: string[], strict: boolean): string[] {
  const reasons = values.map((value) =>
    ASSOCIATED_DATA[value] ??
    (value.startsWith('_')
      ? `includeAssociatedData=${value} is not supported: this server defines no custom associated data`
      : `includeAssociatedData=${value} is not a value of Bulk Data (LatestProvenanceResources, RelevantProvenanceResources, or _custom values)`),
  );
  if (reasons.length > 0 && strict) {
    throw new FhirError(400, outcome(reasons.map((reason) => issue('error', 'not-supported', `${reason}; send "Prefer: handling=lenient" to export without it`))));
  }
  return reasons;
}

/**
 * A `_typeFilter` value is `Type?search`: the search must be one this server can run on that type, with search
 * parameters only (no `_sort`, `_count`, `_include` or other result parameters, which mean nothing in an export).
 */
function checkTypeFilter(filter: string): { type: string; query: string } {
  const match = /^([A-Z][A-Za-z]+)\?(.+)$/.exec(filter);
  if (!match) {
    throw badRequest(`_typeFilter "${filter}" must be a search such as Observation?code=http://loinc.org|2345-7`);
  }
  const [, type, query] = match;
  if (!isR4ResourceType(type)) {
    throw badRequest(`_typeFilter "${filter}": ${type} is not a FHIR R4 resource type`);
  }
  const search = new URLSearchParams(query);
  for (const name of search.keys()) {
    const code = name.split(':')[0];
    if (code.startsWith('_') && !FILTER_BUILT_INS.has(code) && !code.startsWith('_has')) {
      throw badRequest(`_typeFilter "${filter}": ${name} is not a search parameter (result parameters such as _sort, _count and _include are not allowed)`);
    }
    if (!code.startsWith('_') && !code.includes('.') && !indexedParams(type).some((p) => p.code === code)) {
      throw badRequest(`_typeFilter "${filter}": ${code} is not a search parameter of ${type} on this server`);
    }
  }
  // Parsing and compiling find bad values (dates, prefixes, modifiers) now rather than when the job runs.
  compileSearch(parseSearch(type, queryRecord(search)), new SqlParams(), { alias: 'r' });
  return { type, query };
}

/** The Patient/{id} references among a Group's active members; other members are reported, not exported. */
export function groupMembers(group: { member?: Array<{ entity?: { reference?: string }; inactive?: boolean }> }): { patients: string[]; skipped: string[] } {
  const patients: string[] = [];
  const skipped: string[] = [];
  for (const member of group.member ?? []) {
    const reference = member.entity?.reference ?? '';
    if (member.inactive) {
      continue;
    }
    if (/^Patient\/[A-Za-z0-9\-.]{1,64}$/.test(reference)) {
      patients.push(reference);
    } else {
      skipped.push(reference || '(a member without a reference)');
    }
  }
  return { patients: [...new Set(patients)], skipped };
}
