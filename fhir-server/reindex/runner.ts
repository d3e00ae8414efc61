/**
 * Runs one `$reindex` job: its types one after the other, each walked by id in batches (repository/reindex.ts),
 * each batch one transaction that also advances the job's position and, for a type's last batch, records that
 * the type is indexed (jobs.ts). Stopping, cancelling or losing the job rolls back only the batch in flight.
 */
import type { OperationOutcome } from '@medplum/fhirtypes';
import { isRetryableConflict, type Database, type Queryable } from '../db';
import { describeError, issue, outcome } from '../errors';
import { reindexBatch } from '../repository';
import { runtimeParams } from '../search';
import { markTypeIndexed, type ReindexJob, type ReindexJobs, type ReindexPosition } from './jobs';

/** Thrown when the job stopped being this worker's (cancelled, taken over, or this process is stopping). */
export class JobLost extends Error {}

export interface RunnerSettings {
  batchSize: number;
}

/**
 * The planner's estimate of a type's current resources, for progress: EXPLAIN costs a planning, where count(*)
 * would read every row of a type of millions.
 */
export async function estimateResources(q: Queryable, resourceType: string): Promise<number> {
  const rows = await q.query<{ 'QUERY PLAN': Array<{ Plan: { 'Plan Rows': number } }> | string }>(
    `EXPLAIN (FORMAT JSON) SELECT 1 FROM resource WHERE res_type = $1 AND NOT deleted`,
    [resourceType],
  );
  const plan = rows[0]['QUERY PLAN'];
  const parsed = typeof plan === 'string' ? (JSON.parse(plan) as Array<{ Plan: { 'Plan Rows': number } }>) : plan;
  return Math.round(parsed[0].Plan['Plan Rows']);
}

/**
 * Runs `job` from its recorded position to the end. `goOn` is asked before each batch whether to go on (false
 * when this process is stopping).
 */
export async function runReindex(
  db: Database,
  jobs: ReindexJobs,
  job: ReindexJob,
  workerId: string,
  settings: RunnerSettings,
  goOn: () => boolean,
): Promise<void> {
  const paramsAt = job.paramsAt ?? new Date();
  // Every SearchParameter stored before paramsAt is in use from here (the claim set paramsAt before this reload).
  await runtimeParams.refresh(db, true);
  let counts = { ...job.counts };
  for (let typeIndex = job.typeIndex; typeIndex < job.types.length; typeIndex++) {
    const resourceType = job.types[typeIndex];
    const resuming = typeIndex === job.typeIndex;
    let afterId = resuming ? job.afterId : '';
    const typeEstimate = (resuming ? job.typeEstimate : undefined) ?? (await estimateResources(db, resourceType));
    for (let last = false; !last; ) {
      if (!goOn()) {
        throw new JobLost('this process is stopping');
      }
      // A SearchParameter stored while the job runs applies to the batches after it (see runtime-params.ts).
      await runtimeParams.refresh(db);
      const result = await withRetries(() => db.transaction(async (tx) => {
        const { count, lastId } = await reindexBatch(tx, resourceType, afterId, settings.batchSize);
        const done = count < settings.batchSize;
        const next = count > 0 ? { ...counts, [resourceType]: (counts[resourceType] ?? 0) + count } : counts;
        const position: ReindexPosition = done
          ? { typeIndex: typeIndex + 1, afterId: '', counts: next }
          : { typeIndex, afterId: lastId as string, counts: next, typeEstimate };
        if (done) {
          await markTypeIndexed(tx, resourceType, paramsAt);
        }
        if (!(await jobs.advance(tx, job.id, workerId, position))) {
          throw new JobLost('the job was cancelled or taken over by another process');
        }
        return { done, lastId, next };
      }));
      counts = result.next;
      afterId = result.lastId ?? afterId;
      last = result.done;
    }
  }
}

/** How often a batch that lost a race (a deadlock with a writer locking the same resources) is tried again. */
const MAX_ATTEMPTS = 5;

/** Runs `batch` again when it lost a race: it changed nothing, and its position advances only when it commits. */
async function withRetries<T>(batch: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await batch();
    } catch (err) {
      if (attempt >= MAX_ATTEMPTS || !isRetryableConflict(err)) {
        throw err;
      }
    }
  }
}

/** What a failed job's status answers. */
export function failureOf(err: unknown): { status: number; outcome: OperationOutcome } {
  const described = describeError(err);
  if (described.unexpected) {
    return { status: 500, outcome: outcome([issue('error', 'exception', 'The reindex failed on an unexpected error; the server log has the details')]) };
  }
  return { status: described.status, outcome: described.outcome };
}
