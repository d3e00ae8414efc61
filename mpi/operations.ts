/**
 * The index's FHIR operations, registered through createFhirServer's `operations`:
 *   Patient/$match                 R4 patient matching: golden records, scored, with the match-grade extension
 *   Patient/$ihe-pix               IHE PIXm (ITI-83): every identifier of the resident, across hospitals
 *   Patient/$merge                 R5/HAPI-style merge on R4, the same shape as ADT^A40 (merge-links.ts)
 *   Patient/$mpi-review            the worklist of uncertain pairs; Patient/$mpi-review-decide decides one
 *   Patient/[id]/$mpi-unlink       undoes a source's link; Patient/[id]/$mpi-link files it by hand
 *   Patient/[id]/$mpi-decisions    every decision about a record, with its evidence
 * Reads of patients go through the caller's repository (`ctx.repo`), so the security read filter applies: a
 * golden record or a source the caller may not see is left out of every answer.
 */
import type { Bundle, BundleEntry, Identifier, OperationOutcome, Parameters, ParametersParameter, Patient, Reference } from '@medplum/fhirtypes';
import { parseSearchRequest } from '@medplum/core';
import {
  badRequest,
  FhirError,
  issue,
  notFound,
  operationParameters,
  outcome,
  parameterValue,
  type FhirOperation,
  type FhirRequest,
  type FhirResponse,
  type RouteContext,
} from '../fhir-server';
import { demographicsOf } from './demographics';
import { idOfRef, isGolden, MPI_SYSTEM } from './golden';
import type { PatientIndex, ReviewItem } from './linker';
import { mergePatients } from './merge-links';
import { NATIONAL_ID_SYSTEMS, nationalIdKindOf, nationalIdToken } from './national-ids';
import { normalisePatientIdentifiers } from './write-rule';

const DEF = 'http://huimin.health/fhir/OperationDefinition';
export const MATCH_GRADE_EXTENSION = 'http://hl7.org/fhir/StructureDefinition/match-grade';
const MAX_MATCHES = 100;

/** Who asked (the person behind a clinician's call, else the client), for the decision record. */
function callerOf(ctx: RouteContext): string {
  return ctx.caller?.practitioner ?? ctx.caller?.clientId ?? 'platform';
}

async function readPatient(ctx: RouteContext, id: string): Promise<Patient | undefined> {
  try {
    return JSON.parse((await ctx.repo.read('Patient', id, ctx.session?.tx)).json) as Patient;
  } catch (err) {
    if (err instanceof FhirError && (err.status === 404 || err.status === 410)) return undefined;
    throw err;
  }
}

async function findPatients(ctx: RouteContext, query: Record<string, string>, count = 10): Promise<Patient[]> {
  const page = await ctx.repo.search(parseSearchRequest('Patient', query), { count, offset: 0 }, ctx.session?.tx);
  return page.rows.map((r) => JSON.parse(r.content) as Patient);
}

const json = (body: Parameters | Bundle | OperationOutcome): FhirResponse => ({ status: 200, body });

// ---- $match ----

async function match(index: PatientIndex, ctx: RouteContext, request: FhirRequest): Promise<FhirResponse> {
  const params = operationParameters(request);
  const input = params.parameter?.find((p) => p.name === 'resource')?.resource;
  if (!input || input.resourceType !== 'Patient') {
    throw badRequest("$match needs the parameter 'resource' holding a Patient");
  }
  const only = parameterValue(params, 'onlyCertainMatches');
  if (only !== undefined && only !== 'true' && only !== 'false') throw badRequest(`onlyCertainMatches must be true or false, got "${only}"`);
  const countText = parameterValue(params, 'count');
  const count = countText === undefined ? 10 : Number(countText);
  if (!Number.isInteger(count) || count < 1 || count > MAX_MATCHES) throw badRequest(`count must be an integer from 1 to ${MAX_MATCHES}, got "${countText}"`);
  const { patient, errors, warnings } = normalisePatientIdentifiers(input as Patient);
  if (errors.length) {
    throw new FhirError(400, outcome(errors.map((e) => issue('error', 'value', e.message, [`Parameters.parameter[resource].resource.identifier[${e.index}].value`]))));
  }
  const demographics = demographicsOf(patient);
  if (demographics.ids.length === 0 && !demographics.pinyin && !demographics.birthDate && demographics.phones.length === 0) {
    throw badRequest('$match needs a national identifier, a name, a birth date or a phone number to match on');
  }
  const candidates = (await index.candidates(demographics)).filter((c) =>
    only === 'true' ? c.result.grade === 'certain' : c.result.grade !== 'certainly-not',
  );
  const entries: BundleEntry[] = [];
  for (const c of candidates) {
    if (entries.length >= count) break;
    const golden = await readPatient(ctx, c.goldenId);
    if (!golden) continue;
    entries.push({
      fullUrl: `${ctx.baseUrl}/Patient/${c.goldenId}`,
      resource: golden,
      search: {
        mode: 'match',
        score: c.result.score,
        extension: [{ url: MATCH_GRADE_EXTENSION, valueCode: c.result.grade }],
      },
    });
  }
  if (warnings.length) {
    entries.push({ resource: outcome(warnings.map((w) => issue('warning', 'value', w))), search: { mode: 'outcome' } });
  }
  const bundle: Bundle = { resourceType: 'Bundle', type: 'searchset', total: entries.filter((e) => e.search?.mode === 'match').length, entry: entries };
  return json(bundle);
}

// ---- $ihe-pix ----

function splitToken(token: string, name: string): { system: string; value: string } {
  const bar = token.indexOf('|');
  if (bar <= 0 || bar === token.length - 1) throw badRequest(`${name} must be system|value, got "${token}"`);
  return { system: token.slice(0, bar), value: token.slice(bar + 1) };
}

/** A national identifier's alias system becomes its canonical one; other systems stay. */
const canonicalSystem = (system: string): string => {
  const kind = nationalIdKindOf(system);
  return kind ? NATIONAL_ID_SYSTEMS[kind] : system;
};

async function pix(index: PatientIndex, ctx: RouteContext, request: FhirRequest): Promise<FhirResponse> {
  const params = operationParameters(request);
  const sourceTokens = (params.parameter ?? []).filter((p) => p.name === 'sourceIdentifier');
  if (sourceTokens.length !== 1) throw badRequest('$ihe-pix needs exactly one sourceIdentifier (system|value)');
  const source = splitToken(parameterValue({ resourceType: 'Parameters', parameter: sourceTokens }, 'sourceIdentifier') ?? '', 'sourceIdentifier');
  const targetSystems = (params.parameter ?? []).filter((p) => p.name === 'targetSystem').flatMap((p) => String(p.valueUri ?? p.valueString ?? '').split(',')).map((s) => s.trim()).filter(Boolean).map(canonicalSystem);
  const system = canonicalSystem(source.system);
  // The patients the source identifier names, then their golden record(s).
  let patientIds: string[];
  if (system === MPI_SYSTEM) {
    patientIds = [source.value];
  } else {
    const token = nationalIdToken({ system, value: source.value });
    patientIds = token ? await index.sourcesWithId(`${token.kind}|${token.value}`) : [];
    if (patientIds.length === 0) {
      patientIds = (await findPatients(ctx, { identifier: `${system}|${source.value}` }, 50)).map((p) => p.id as string);
    }
  }
  const known = async (s: string): Promise<boolean> => s === MPI_SYSTEM || nationalIdKindOf(s) !== undefined || (await findPatients(ctx, { identifier: `${s}|` }, 1)).length > 0;
  if (patientIds.length === 0) {
    if (!(await known(system))) {
      throw new FhirError(400, outcome([issue('error', 'code-invalid', `sourceIdentifier Assigning Authority not found: no patient has an identifier in ${source.system}`)]));
    }
    throw notFound(`sourceIdentifier Patient Identifier not found: no patient has ${source.system}|${source.value}`);
  }
  for (const t of targetSystems) {
    if (!(await known(t))) {
      throw new FhirError(403, outcome([issue('error', 'code-invalid', `targetSystem not found: no patient has an identifier in ${t}`)]));
    }
  }
  const goldens = new Set<string>();
  for (const id of patientIds) {
    const golden = (await index.goldenOfSource(id)) ?? id;
    goldens.add(golden);
  }
  const ids = new Set<string>([...goldens]);
  for (const g of goldens) (await index.sourcesOf(g)).forEach((s) => ids.add(s));
  const out: ParametersParameter[] = [];
  const seen = new Set<string>();
  for (const id of [...ids].sort()) {
    const patient = await readPatient(ctx, id);
    if (!patient) continue;
    const identifiers = (patient.identifier ?? []).filter((i) => i.system && i.value && i.use !== 'old');
    const wanted = targetSystems.length ? identifiers.filter((i) => targetSystems.includes(canonicalSystem(i.system as string))) : identifiers;
    for (const identifier of wanted) {
      const key = `${identifier.system}|${identifier.value}`;
      if (seen.has(key) || (canonicalSystem(identifier.system as string) === system && identifier.value === source.value)) continue;
      seen.add(key);
      out.push({ name: 'targetIdentifier', valueIdentifier: { use: identifier.use, system: identifier.system, value: identifier.value } as Identifier });
    }
    if (targetSystems.length === 0 || wanted.length > 0) {
      out.push({ name: 'targetId', valueReference: { reference: `Patient/${id}` } });
    }
  }
  return json({ resourceType: 'Parameters', parameter: out });
}

// ---- $merge ----

function identifierParams(params: Parameters, name: string): Identifier[] {
  return (params.parameter ?? []).filter((p) => p.name === name).map((p) => {
    if (p.valueIdentifier) return p.valueIdentifier;
    if (p.valueString) return splitToken(p.valueString, name);
    throw badRequest(`${name} must be an Identifier`);
  });
}

async function resolveMergePatient(ctx: RouteContext, params: Parameters, role: 'source' | 'target'): Promise<Patient & { id: string }> {
  const refParam = params.parameter?.find((p) => p.name === `${role}-patient`);
  const reference = refParam?.valueReference?.reference ?? refParam?.valueString;
  const identifiers = identifierParams(params, `${role}-patient-identifier`);
  if (!reference && identifiers.length === 0) throw badRequest(`$merge needs ${role}-patient (a Reference) or ${role}-patient-identifier`);
  let found: Patient[];
  if (reference) {
    const id = idOfRef(reference);
    if (!id) throw badRequest(`${role}-patient must be a reference Patient/<id>, got "${reference}"`);
    const p = await readPatient(ctx, id);
    if (!p) throw notFound(`${role}-patient Patient/${id} is not known, or not visible to this client`);
    found = [p];
  } else {
    const lists = await Promise.all(identifiers.map((i) => findPatients(ctx, { identifier: `${canonicalSystem(i.system ?? '')}|${i.value ?? ''}` }, 3)));
    const sets = lists.map((l) => new Set(l.map((p) => p.id)));
    found = lists[0].filter((p) => sets.every((s) => s.has(p.id)));
    if (found.length === 0) throw notFound(`No patient has ${role}-patient-identifier ${identifiers.map((i) => `${i.system}|${i.value}`).join(', ')}`);
    if (found.length > 1) throw new FhirError(422, outcome([issue('error', 'multiple-matches', `${role}-patient-identifier matches ${found.length} patients; name one by ${role}-patient`)]));
  }
  const patient = found[0] as Patient & { id: string };
  if (isGolden(patient)) {
    throw badRequest(`${role}-patient Patient/${patient.id} is a golden record of the master patient index: merge the hospitals' records, the golden records follow`);
  }
  return patient;
}

async function merge(index: PatientIndex, ctx: RouteContext, request: FhirRequest): Promise<FhirResponse> {
  const params = operationParameters(request);
  if (parameterValue(params, 'delete-source') === 'true') {
    throw new FhirError(400, outcome([issue('error', 'not-supported', 'delete-source is not supported: the source patient is kept, inactive, with its history (replaced-by link)')]));
  }
  const preview = parameterValue(params, 'preview') === 'true';
  const source = await resolveMergePatient(ctx, params, 'source');
  const target = await resolveMergePatient(ctx, params, 'target');
  if (source.id === target.id) throw badRequest('source-patient and target-patient are the same patient');
  if (source.link?.some((l) => l.type === 'replaced-by')) {
    throw new FhirError(422, outcome([issue('error', 'business-rule', `source-patient Patient/${source.id} was already merged (it has a replaced-by link)`)]));
  }
  const result = params.parameter?.find((p) => p.name === 'result-patient')?.resource as Patient | undefined;
  if (result && (result.resourceType !== 'Patient' || (result.id !== undefined && result.id !== target.id))) {
    throw badRequest(`result-patient must be a Patient with the target's id ${target.id}`);
  }
  const merged = mergePatients({ ...(result ?? target), id: target.id, link: result?.link ?? target.link }, source);
  let written: { survivor: Patient & { id: string }; prior: Patient & { id: string } } = merged;
  if (!preview) {
    written = await ctx.repo.write(async (s) => {
      const survivor = await s.update('Patient', target.id, merged.survivor);
      const prior = await s.update('Patient', source.id, merged.prior);
      return { survivor: survivor.resource as Patient & { id: string }, prior: prior.resource as Patient & { id: string } };
    });
    if (!ctx.session) {
      // At once rather than when the change event arrives (that one finds nothing left to do).
      await index.reconcile(target.id, callerOf(ctx));
      await index.reconcile(source.id, callerOf(ctx));
    }
  }
  const out: ParametersParameter[] = [
    { name: 'input', resource: { ...params, parameter: (params.parameter ?? []).filter((p) => p.name !== 'result-patient' || p.resource) } },
    {
      name: 'outcome',
      resource: outcome([issue('information', 'informational', preview ? `Preview: Patient/${source.id} would be merged into Patient/${target.id}` : `Patient/${source.id} merged into Patient/${target.id}; the source is kept, inactive, with link replaced-by`)]),
    },
    { name: 'result', resource: written.survivor },
  ];
  return json({ resourceType: 'Parameters', parameter: out });
}

// ---- review worklist, undo, decisions ----

const reviewParameter = (item: ReviewItem): ParametersParameter => ({
  name: 'item',
  part: [
    { name: 'id', valueInteger: item.id },
    { name: 'source', valueReference: { reference: `Patient/${item.sourceId}` } },
    { name: 'golden', valueReference: { reference: `Patient/${item.goldenId}` } },
    { name: 'weight', valueDecimal: item.weight },
    { name: 'status', valueCode: item.status },
    { name: 'created', valueDateTime: item.createdAt },
    ...(item.decidedBy ? [{ name: 'decidedBy', valueString: item.decidedBy }] : []),
    ...item.evidence.map((e) => ({ name: 'evidence', part: [{ name: 'field', valueCode: e.field }, { name: 'outcome', valueString: e.outcome }, { name: 'weight', valueDecimal: Number.isFinite(e.weight) ? e.weight : 0 }] })),
  ],
});

async function reviewList(index: PatientIndex, request: FhirRequest): Promise<FhirResponse> {
  const params = operationParameters(request);
  const status = parameterValue(params, 'status') ?? 'open';
  if (!['open', 'linked', 'rejected', 'obsolete'].includes(status)) throw badRequest(`status must be open, linked, rejected or obsolete, got "${status}"`);
  const patient = parameterValue(params, 'patient');
  const count = Number(parameterValue(params, '_count') ?? 100);
  if (!Number.isInteger(count) || count < 1 || count > 1000) throw badRequest('_count must be an integer from 1 to 1000');
  const items = await index.reviews({ status, patient: patient ? (idOfRef(patient) ?? patient) : undefined, count });
  return json({ resourceType: 'Parameters', parameter: items.map(reviewParameter) });
}

async function reviewDecide(index: PatientIndex, ctx: RouteContext, request: FhirRequest): Promise<FhirResponse> {
  const params = operationParameters(request);
  const id = Number(parameterValue(params, 'review'));
  if (!Number.isInteger(id) || id < 1) throw badRequest("$mpi-review-decide needs 'review', the item's id");
  const decision = parameterValue(params, 'decision');
  if (decision !== 'link' && decision !== 'no-link') throw badRequest(`decision must be link or no-link, got "${decision ?? ''}"`);
  const item = await index.decideReview(id, decision, callerOf(ctx));
  return json({ resourceType: 'Parameters', parameter: [reviewParameter(item)] });
}

async function unlink(index: PatientIndex, ctx: RouteContext, id: string): Promise<FhirResponse> {
  if (!(await readPatient(ctx, id))) throw notFound(`Patient/${id} is not known, or not visible to this client`);
  const { goldenId, previous } = await index.unlink(id, callerOf(ctx));
  return json({
    resourceType: 'Parameters',
    parameter: [
      { name: 'source', valueReference: { reference: `Patient/${id}` } },
      { name: 'previousGolden', valueReference: { reference: `Patient/${previous}` } },
      { name: 'golden', valueReference: { reference: `Patient/${goldenId}` } },
    ],
  });
}

async function link(index: PatientIndex, ctx: RouteContext, request: FhirRequest, id: string): Promise<FhirResponse> {
  const params = operationParameters(request);
  const golden = params.parameter?.find((p) => p.name === 'golden');
  const goldenId = idOfRef((golden?.valueReference as Reference | undefined)?.reference ?? golden?.valueString);
  if (!goldenId) throw badRequest("$mpi-link needs 'golden', a reference Patient/<id> to a golden record");
  await index.link(id, goldenId, callerOf(ctx));
  return json({ resourceType: 'Parameters', parameter: [{ name: 'source', valueReference: { reference: `Patient/${id}` } }, { name: 'golden', valueReference: { reference: `Patient/${goldenId}` } }] });
}

async function decisions(index: PatientIndex, ctx: RouteContext, id: string): Promise<FhirResponse> {
  if (!(await readPatient(ctx, id))) throw notFound(`Patient/${id} is not known, or not visible to this client`);
  const list = await index.decisions(id);
  return json({
    resourceType: 'Parameters',
    parameter: list.map((d) => ({
      name: 'decision',
      part: [
        { name: 'id', valueInteger: d.id },
        { name: 'action', valueCode: d.action },
        { name: 'method', valueCode: d.method },
        { name: 'source', valueReference: { reference: `Patient/${d.sourceId}` } },
        { name: 'golden', valueReference: { reference: `Patient/${d.goldenId}` } },
        ...(d.weight !== null ? [{ name: 'weight', valueDecimal: d.weight }] : []),
        { name: 'evidence', valueString: JSON.stringify(d.evidence) },
        { name: 'decidedBy', valueString: d.decidedBy },
        { name: 'decidedAt', valueDateTime: d.decidedAt },
        ...(d.undoneBy !== null ? [{ name: 'undoneBy', valueInteger: d.undoneBy }] : []),
      ],
    })),
  });
}

/** Index stewardship (reviews, links by hand) is the platform administrators'. */
const STEWARDS = ['admin'] as const;

/** `index` is asked for at each call: the index needs the store's repository, which exists after the operations. */
export function mpiOperations(indexOf: () => PatientIndex): FhirOperation[] {
  const patientType = { resourceTypes: ['Patient'] as const };
  return [
    { name: 'match', definition: 'http://hl7.org/fhir/OperationDefinition/Patient-match', levels: ['type'], ...patientType, affectsState: false, invoke: (ctx, r) => match(indexOf(), ctx, r) },
    { name: 'ihe-pix', definition: 'https://profiles.ihe.net/ITI/PIXm/OperationDefinition/IHE.PIXm.pix', levels: ['type'], ...patientType, affectsState: false, invoke: (ctx, r) => pix(indexOf(), ctx, r) },
    {
      name: 'merge',
      definition: 'http://hl7.org/fhir/OperationDefinition/Patient-merge',
      levels: ['type'],
      ...patientType,
      affectsState: true,
      // A hospital merges its own records (ownership is checked on the writes); administrators any.
      roles: ['admin', 'facility-system', 'clinician'],
      invoke: (ctx, r) => merge(indexOf(), ctx, r),
    },
    { name: 'mpi-review', definition: `${DEF}/mpi-review`, levels: ['type'], ...patientType, affectsState: false, roles: [...STEWARDS, 'supervisor'], invoke: (_ctx, r) => reviewList(indexOf(), r) },
    { name: 'mpi-review-decide', definition: `${DEF}/mpi-review-decide`, levels: ['type'], ...patientType, affectsState: true, roles: STEWARDS, invoke: (ctx, r) => reviewDecide(indexOf(), ctx, r) },
    { name: 'mpi-unlink', definition: `${DEF}/mpi-unlink`, levels: ['instance'], ...patientType, affectsState: true, roles: STEWARDS, invoke: (ctx, _r, t) => unlink(indexOf(), ctx, t.id as string) },
    { name: 'mpi-link', definition: `${DEF}/mpi-link`, levels: ['instance'], ...patientType, affectsState: true, roles: STEWARDS, invoke: (ctx, r, t) => link(indexOf(), ctx, r, t.id as string) },
    { name: 'mpi-decisions', definition: `${DEF}/mpi-decisions`, levels: ['instance'], ...patientType, affectsState: false, roles: [...STEWARDS, 'supervisor'], invoke: (ctx, _r, t) => decisions(indexOf(), ctx, t.id as string) },
  ];
}
