/**
 * `$reindex` as FHIR operations of the store's router, administrators only:
 *  - `POST [base]/$reindex` and `POST [base]/[type]/$reindex`: asynchronous (the FHIR asynchronous request pattern,
 *    async-bundle.html): 202 with the status URL in Content-Location, whatever the `Prefer` header says, because a
 *    large store cannot be reindexed within one request;
 *  - `GET [base]/$reindex-status?_jobId=`: 202 with `X-Progress` and `Retry-After` while waiting or running; 200
 *    with a batch-response Bundle whose entry holds the Parameters result (resources reindexed, in all and per type)
 *    when done; the error's status and OperationOutcome when it failed; `DELETE` cancels (after the batch in
 *    flight, whose work stays);
 *  - `POST [base]/[type]/[id]/$reindex`: one resource, synchronously, answered with the same Parameters.
 */
import type { Bundle, Parameters } from '@medplum/fhirtypes';
import { r4ResourceTypes } from '../definitions';
import { badRequest, issue, notFound, outcome } from '../errors';
import { reindexResource } from '../repository';
import { type FhirOperation, type FhirRequest, type FhirResponse, type OperationTarget, type RouteContext } from '../rest';
import { runtimeParams } from '../search';
import { newReindexJobId, type ReindexJob } from './jobs';
import type { ReindexWorker } from './worker';

export const REINDEX_DEFINITION = 'http://huimin.health/fhir/OperationDefinition/reindex';
const JOB_ID = /^[0-9a-f]{32}$/;
/** Seconds a client is asked to wait between polls. */
const RETRY_AFTER_S = 2;
/** Reindexing rewrites every resource's index rows under a lock: a platform operation, not a facility's. */
const ADMIN_ONLY = ['admin'] as const;

export function reindexStatusUrl(baseUrl: string, jobId: string): string {
  return `${baseUrl}/$reindex-status?_jobId=${jobId}`;
}

/** The operation's result: resources reindexed in all and per type (types with none left out). */
export function reindexResult(counts: Record<string, number>): Parameters {
  const types = Object.keys(counts)
    .filter((type) => counts[type] > 0)
    .sort();
  return {
    resourceType: 'Parameters',
    parameter: [
      { name: 'resources', valueInteger: types.reduce((sum, type) => sum + counts[type], 0) },
      ...types.map((type) => ({
        name: 'type',
        part: [
          { name: 'resourceType', valueCode: type },
          { name: 'resources', valueInteger: counts[type] },
        ],
      })),
    ],
  };
}

async function kickOff(worker: ReindexWorker, ctx: RouteContext, request: FhirRequest, target: OperationTarget): Promise<FhirResponse> {
  if (ctx.session) {
    throw badRequest('$reindex of a type or of the whole store is asynchronous and cannot be an entry of a transaction');
  }
  const types = target.level === 'type' ? [target.type as string] : [...r4ResourceTypes()].sort();
  const id = newReindexJobId();
  const query = request.query.toString();
  await worker.jobs.create({ id, types, requestUrl: `${ctx.baseUrl}/${request.path}${query ? `?${query}` : ''}`, clientId: ctx.caller?.clientId });
  worker.wake();
  return {
    status: 202,
    headers: { 'Content-Location': reindexStatusUrl(ctx.baseUrl, id) },
    body: outcome([
      issue('information', 'informational', `The reindex was accepted (${types.length} resource types); poll the URL in Content-Location for its progress`),
    ]),
  };
}

async function reindexInstance(ctx: RouteContext, target: OperationTarget): Promise<FhirResponse> {
  const resourceType = target.type as string;
  const id = target.id as string;
  await runtimeParams.refresh(ctx.session?.tx ?? ctx.repo.db, true);
  const found = ctx.session ? await reindexResource(ctx.session.tx, resourceType, id) : await ctx.repo.db.transaction((tx) => reindexResource(tx, resourceType, id));
  if (!found) {
    throw notFound(`${resourceType}/${id} is not known, or was deleted`);
  }
  return { status: 200, body: reindexResult({ [resourceType]: 1 }) };
}

function jobIdOf(request: FhirRequest): string {
  const id = request.query.get('_jobId');
  if (!id || !JOB_ID.test(id)) {
    throw badRequest('_jobId must be the id of a reindex, as given in the Content-Location of its kick-off');
  }
  return id;
}

/** "Observation (3 of 12 types): 12000 of about 50000; 34500 resources reindexed in all". */
export function progressOf(job: ReindexJob): string {
  if (job.status === 'accepted' && job.paramsAt === undefined) {
    return 'waiting for a worker';
  }
  const total = Object.values(job.counts).reduce((sum, n) => sum + n, 0);
  const type = job.types[job.typeIndex];
  if (type === undefined) {
    return `finishing; ${total} resources reindexed`;
  }
  const about = job.typeEstimate === undefined ? '' : ` of about ${job.typeEstimate}`;
  return `${type} (${job.typeIndex + 1} of ${job.types.length} types): ${job.counts[type] ?? 0}${about}; ${total} resources reindexed in all`;
}

async function status(worker: ReindexWorker, request: FhirRequest): Promise<FhirResponse> {
  const id = jobIdOf(request);
  if (request.method === 'DELETE') {
    if (!(await worker.jobs.remove(id))) {
      throw notFound('No reindex has this id: it never existed, was cancelled, or finished long ago');
    }
    return { status: 202, body: outcome([issue('information', 'informational', 'The reindex was cancelled; the batches it finished stay reindexed')]) };
  }
  const job = await worker.jobs.find(id);
  if (!job) {
    throw notFound('No reindex has this id: it never existed, was cancelled, or finished long ago');
  }
  if (job.status === 'accepted' || job.status === 'in-progress') {
    return { status: 202, headers: { 'X-Progress': progressOf(job), 'Retry-After': String(RETRY_AFTER_S) } };
  }
  if (job.status === 'failed') {
    const failure = job.failure ?? { status: 500, outcome: outcome([issue('error', 'exception', 'The reindex failed')]) };
    return { status: failure.status, body: failure.outcome };
  }
  const bundle: Bundle = {
    resourceType: 'Bundle',
    type: 'batch-response',
    entry: [{ resource: reindexResult(job.counts), response: { status: '200 OK', lastModified: job.finishedAt?.toISOString() } }],
  };
  return { status: 200, body: bundle };
}

/** The operations, bound to this process's worker (which a kick-off wakes). */
export function reindexOperations(worker: ReindexWorker): FhirOperation[] {
  return [
    {
      name: 'reindex',
      definition: REINDEX_DEFINITION,
      levels: ['system', 'type', 'instance'],
      affectsState: true,
      roles: ADMIN_ONLY,
      invoke: (ctx, request, target) => (target.level === 'instance' ? reindexInstance(ctx, target) : kickOff(worker, ctx, request, target)),
    },
    {
      name: 'reindex-status',
      definition: 'http://huimin.health/fhir/OperationDefinition/reindex-status',
      levels: ['system'],
      affectsState: false,
      methods: ['GET', 'HEAD', 'DELETE'],
      roles: ADMIN_ONLY,
      advertised: false,
      invoke: (_ctx, request) => status(worker, request),
    },
  ];
}
