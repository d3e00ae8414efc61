/**
 * The Bulk Data Access (STU2) endpoints as FHIR operations of the store's router:
 *  - kick-off `$export` at system level, on Patient (every patient) and on a Group instance (its members);
 *  - `$export-poll-status?_jobId=` (GET: 202 with X-Progress while running, 200 with the manifest when done, the
 *    error's status and OperationOutcome when it failed; DELETE: cancel and remove);
 *  - `$export-file?_jobId=&file=`: one NDJSON file of the manifest, streamed.
 * Status and files belong to the client that started the export: any other caller gets a 404, as for an unknown
 * job, whatever its scopes or role.
 */
import type { Group } from '@medplum/fhirtypes';
import { isRole } from '../auth/roles';
import { FhirError, badRequest, forbidden, issue, notFound, notSupported, outcome } from '../errors';
import { type FhirOperation, type FhirRequest, type FhirResponse, type RouteContext } from '../rest';
import { newJobId, type CallerSnapshot, type ExportJob, type FileKind } from './jobs';
import { assertRespondAsync, groupMembers, parseKickOff, type ExportLevel } from './parameters';
import type { BulkExportWorker, BulkExportSettings } from './worker';

const DEFINITION_BASE = 'http://hl7.org/fhir/uv/bulkdata/OperationDefinition';
const JOB_ID = /^[0-9a-f]{32}$/;
const FILE_NAME = /^(?:(error|deleted)-)?([A-Z][A-Za-z]+)-([1-9][0-9]{0,5})\.ndjson$/;
/** Seconds a client is asked to wait between polls. */
const RETRY_AFTER_S = 2;

function callerOf(ctx: RouteContext): NonNullable<RouteContext['caller']> {
  if (!ctx.caller) {
    throw new FhirError(401, outcome([issue('error', 'login', 'A bulk export belongs to the client that starts it: an access token is required')]));
  }
  return ctx.caller;
}

function requestUrl(ctx: RouteContext, request: FhirRequest): string {
  const query = request.query.toString();
  return `${ctx.baseUrl}/${request.path}${query ? `?${query}` : ''}`;
}

export function pollUrl(baseUrl: string, jobId: string): string {
  return `${baseUrl}/$export-poll-status?_jobId=${jobId}`;
}

function fileName(kind: FileKind, type: string, fileNo: number): string {
  return `${kind === 'output' ? '' : `${kind}-`}${type}-${fileNo}.ndjson`;
}

function fileUrl(baseUrl: string, jobId: string, name: string): string {
  return `${baseUrl}/$export-file?_jobId=${jobId}&file=${name}`;
}

async function kickOff(
  worker: BulkExportWorker,
  settings: BulkExportSettings,
  ctx: RouteContext,
  request: FhirRequest,
  level: ExportLevel,
  groupId?: string,
): Promise<FhirResponse> {
  const caller = callerOf(ctx);
  if (ctx.session) {
    throw notSupported(400, '$export is asynchronous and cannot be an entry of a transaction');
  }
  assertRespondAsync(request);
  const spec = parseKickOff(request, level, caller);
  if (groupId) {
    // Read with the caller's rights: a Group it may not see is a 404, like one that does not exist.
    const group = JSON.parse((await ctx.repo.read('Group', groupId)).json) as Group;
    const { patients, skipped } = groupMembers(group);
    spec.groupId = groupId;
    spec.patients = spec.patients ? spec.patients.filter((p) => patients.includes(p)) : patients;
    spec.notes = [...(spec.notes ?? []), ...skipped.map((ref) => `Group/${groupId} member ${ref} is not a Patient reference; only patients' compartments are exported`)];
  }
  const active = await worker.jobs.activeCount(caller.clientId);
  if (active >= settings.maxActivePerClient) {
    throw new FhirError(
      429,
      outcome([issue('error', 'throttled', `This client already has ${active} exports waiting or running (at most ${settings.maxActivePerClient}); wait for one to finish or cancel one`)]),
      { 'Retry-After': '60' },
    );
  }
  if (!isRole(caller.role) || caller.scope === undefined) {
    throw forbidden('A bulk export is run later with the rights of the client that starts it; this caller has no role and scopes to run it with');
  }
  const snapshot: CallerSnapshot = {
    clientId: caller.clientId,
    role: caller.role,
    organization: caller.organization,
    practitioner: caller.practitioner,
    scope: caller.scope,
  };
  const id = newJobId();
  await worker.jobs.create({ id, caller: snapshot, requestUrl: requestUrl(ctx, request), spec, transactionTime: new Date(), lifetimeS: settings.lifetimeS });
  worker.wake();
  return {
    status: 202,
    headers: { 'Content-Location': pollUrl(ctx.baseUrl, id) },
    body: outcome([issue('information', 'informational', `The export was accepted (${spec.types.length} resource types); poll the URL in Content-Location for its status`)]),
  };
}

function jobIdOf(request: FhirRequest): string {
  const id = request.query.get('_jobId');
  if (!id || !JOB_ID.test(id)) {
    throw badRequest('_jobId must be the id of an export, as given in the Content-Location of its kick-off');
  }
  return id;
}

async function ownJob(worker: BulkExportWorker, ctx: RouteContext, request: FhirRequest): Promise<ExportJob> {
  const job = await worker.jobs.find(jobIdOf(request), callerOf(ctx).clientId);
  if (!job) {
    throw notFound('No export of this client has this id: it never existed, belongs to another client, was cancelled or has expired');
  }
  return job;
}

async function pollStatus(worker: BulkExportWorker, ctx: RouteContext, request: FhirRequest): Promise<FhirResponse> {
  if (request.method === 'DELETE') {
    const removed = await worker.jobs.remove(jobIdOf(request), callerOf(ctx).clientId);
    if (!removed) {
      throw notFound('No export of this client has this id: it never existed, belongs to another client, was cancelled or has expired');
    }
    return { status: 202, body: outcome([issue('information', 'informational', 'The export was cancelled; its files are removed')]) };
  }
  const job = await ownJob(worker, ctx, request);
  if (job.status === 'accepted' || job.status === 'in-progress') {
    return {
      status: 202,
      headers: { 'X-Progress': job.status === 'accepted' ? 'waiting for a worker' : (job.progress ?? 'in progress'), 'Retry-After': String(RETRY_AFTER_S) },
    };
  }
  if (job.status === 'failed') {
    const failure = job.failure ?? { status: 500, outcome: outcome([issue('error', 'exception', 'The export failed')]) };
    return { status: failure.status, body: failure.outcome };
  }
  const files = await worker.jobs.files(job.id);
  const entry = (f: (typeof files)[number]) => ({ type: f.type, url: fileUrl(ctx.baseUrl, job.id, fileName(f.kind, f.type, f.fileNo)), count: f.count });
  const manifest = {
    transactionTime: job.transactionTime.toISOString(),
    request: job.requestUrl,
    requiresAccessToken: true,
    output: files.filter((f) => f.kind === 'output').map(entry),
    error: files.filter((f) => f.kind === 'error').map(entry),
    // Bulk Data v2: a `_since` export's deletions, as transaction Bundles of DELETE entries (omitted otherwise).
    ...(job.spec.since !== undefined ? { deleted: files.filter((f) => f.kind === 'deleted').map(entry) } : {}),
  };
  return {
    status: 200,
    headers: { Expires: job.expiresAt.toUTCString() },
    stream: {
      contentType: 'application/json',
      chunks: async function* () {
        yield JSON.stringify(manifest);
      },
    },
  };
}

async function exportFile(worker: BulkExportWorker, ctx: RouteContext, request: FhirRequest): Promise<FhirResponse> {
  const job = await ownJob(worker, ctx, request);
  const name = request.query.get('file') ?? '';
  const match = FILE_NAME.exec(name);
  if (job.status !== 'completed' || !match) {
    throw notFound(`The export has no file "${name}"${job.status !== 'completed' ? ' (it is not complete)' : ''}`);
  }
  const kind: FileKind = match[1] === 'error' || match[1] === 'deleted' ? match[1] : 'output';
  const type = match[2];
  const fileNo = Number(match[3]);
  if (!(await worker.jobs.hasFile(job.id, kind, type, fileNo))) {
    throw notFound(`The export has no file "${name}"`);
  }
  return {
    status: 200,
    headers: { Expires: job.expiresAt.toUTCString() },
    stream: { contentType: 'application/fhir+ndjson', chunks: () => worker.jobs.fileParts(job.id, kind, type, fileNo) },
  };
}

/** The four operations, bound to this process's worker (which a kick-off wakes). */
export function bulkExportOperations(worker: BulkExportWorker, settings: BulkExportSettings): FhirOperation[] {
  return [
    {
      name: 'export',
      definition: `${DEFINITION_BASE}/export`,
      levels: ['system'],
      affectsState: false,
      invoke: (ctx, request) => kickOff(worker, settings, ctx, request, 'system'),
    },
    {
      name: 'export',
      definition: `${DEFINITION_BASE}/patient-export`,
      levels: ['type'],
      resourceTypes: ['Patient'],
      affectsState: false,
      invoke: (ctx, request) => kickOff(worker, settings, ctx, request, 'patient'),
    },
    {
      name: 'export',
      definition: `${DEFINITION_BASE}/group-export`,
      levels: ['instance'],
      resourceTypes: ['Group'],
      affectsState: false,
      invoke: (ctx, request, target) => kickOff(worker, settings, ctx, request, 'group', target.id),
    },
    {
      name: 'export-poll-status',
      definition: 'https://huimin.health/fhir/OperationDefinition/export-poll-status',
      levels: ['system'],
      affectsState: false,
      methods: ['GET', 'HEAD', 'DELETE'],
      authorizesCaller: true,
      advertised: false,
      invoke: (ctx, request) => pollStatus(worker, ctx, request),
    },
    {
      name: 'export-file',
      definition: 'https://huimin.health/fhir/OperationDefinition/export-file',
      levels: ['system'],
      affectsState: false,
      methods: ['GET', 'HEAD'],
      authorizesCaller: true,
      advertised: false,
      invoke: (ctx, request) => exportFile(worker, ctx, request),
    },
  ];
}
