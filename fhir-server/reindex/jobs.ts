/**
 * `$reindex` jobs in the database (migration 70): every process of the platform sees the same jobs, claims them
 * with FOR UPDATE SKIP LOCKED, and serves any job's status. A job's position (the type it is in and the last id
 * done there) advances in the same transaction as each batch's index rows, so a job taken over after its process
 * died resumes after the last committed batch, neither skipping nor repeating one.
 */
import { randomBytes } from 'node:crypto';
import type { OperationOutcome } from '@medplum/fhirtypes';
import type { Database, Queryable } from '../db';

export type ReindexJobStatus = 'accepted' | 'in-progress' | 'completed' | 'failed';

export interface ReindexJob {
  id: string;
  status: ReindexJobStatus;
  types: string[];
  requestUrl: string;
  clientId?: string;
  /** When the job first took the stored SearchParameters (set at its first claim). */
  paramsAt?: Date;
  typeIndex: number;
  afterId: string;
  /** Resources reindexed so far, per type. */
  counts: Record<string, number>;
  typeEstimate?: number;
  failure?: { status: number; outcome: OperationOutcome };
  createdAt: Date;
  finishedAt?: Date;
}

interface JobRow {
  id: string;
  status: ReindexJobStatus;
  types: string;
  request_url: string;
  client_id: string | null;
  params_at: Date | string | null;
  type_index: number;
  after_id: string;
  counts: string;
  type_estimate: number | string | null;
  failure: string | null;
  created_at: Date | string;
  finished_at: Date | string | null;
}

const JOB_COLUMNS = 'id, status, types, request_url, client_id, params_at, type_index, after_id, counts, type_estimate, failure, created_at, finished_at';

function toJob(row: JobRow): ReindexJob {
  return {
    id: row.id,
    status: row.status,
    types: JSON.parse(row.types) as string[],
    requestUrl: row.request_url,
    clientId: row.client_id ?? undefined,
    paramsAt: row.params_at === null ? undefined : new Date(row.params_at),
    typeIndex: Number(row.type_index),
    afterId: row.after_id,
    counts: JSON.parse(row.counts) as Record<string, number>,
    typeEstimate: row.type_estimate === null ? undefined : Number(row.type_estimate),
    failure: row.failure ? (JSON.parse(row.failure) as ReindexJob['failure']) : undefined,
    createdAt: new Date(row.created_at),
    finishedAt: row.finished_at === null ? undefined : new Date(row.finished_at),
  };
}

/** The status URL carries the id; only administrators may use it anyway. */
export function newReindexJobId(): string {
  return randomBytes(16).toString('hex');
}

/** The job's position after a batch, written with that batch's index rows. */
export interface ReindexPosition {
  typeIndex: number;
  afterId: string;
  counts: Record<string, number>;
  typeEstimate?: number;
}

export class ReindexJobs {
  constructor(private readonly db: Database) {}

  async create(job: { id: string; types: string[]; requestUrl: string; clientId?: string }): Promise<void> {
    await this.db.query(`INSERT INTO reindex_job (id, status, types, request_url, client_id) VALUES ($1, 'accepted', $2, $3, $4)`, [
      job.id,
      JSON.stringify(job.types),
      job.requestUrl,
      job.clientId ?? null,
    ]);
  }

  async find(id: string): Promise<ReindexJob | undefined> {
    const rows = await this.db.query<JobRow>(`SELECT ${JOB_COLUMNS} FROM reindex_job WHERE id = $1`, [id]);
    return rows[0] ? toJob(rows[0]) : undefined;
  }

  /** Deletes the job (a running worker notices at its next batch, whose position no longer updates); false when unknown. */
  async remove(id: string): Promise<boolean> {
    const rows = await this.db.query('DELETE FROM reindex_job WHERE id = $1 RETURNING id', [id]);
    return rows.length > 0;
  }

  /**
   * Takes the oldest waiting job, or one whose worker stopped beating (its process died), which resumes where its
   * last batch committed. `paramsAt` is kept from the first claim: the batches done before were done with the
   * SearchParameters of then. Undefined when there is nothing to do.
   */
  async claim(workerId: string, staleAfterMs: number, now: Date): Promise<ReindexJob | undefined> {
    const rows = await this.db.query<JobRow>(
      `UPDATE reindex_job SET status = 'in-progress', claimed_by = $1, heartbeat_at = now(), params_at = coalesce(params_at, $3)
       WHERE id = (SELECT id FROM reindex_job
                   WHERE status = 'accepted'
                      OR (status = 'in-progress' AND heartbeat_at < now() - make_interval(secs => $2))
                   ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
       RETURNING ${JOB_COLUMNS}`,
      [workerId, staleAfterMs / 1000, now.toISOString()],
    );
    return rows[0] ? toJob(rows[0]) : undefined;
  }

  /**
   * Records the position after a batch, inside the batch's transaction; false when the job is no longer this
   * worker's (cancelled, or taken over), and the caller then rolls the batch back.
   */
  async advance(tx: Queryable, id: string, workerId: string, position: ReindexPosition): Promise<boolean> {
    const rows = await tx.query(
      `UPDATE reindex_job SET type_index = $3, after_id = $4, counts = $5, type_estimate = $6, heartbeat_at = now()
       WHERE id = $1 AND claimed_by = $2 AND status = 'in-progress' RETURNING id`,
      [id, workerId, position.typeIndex, position.afterId, JSON.stringify(position.counts), position.typeEstimate ?? null],
      { prepare: true },
    );
    return rows.length > 0;
  }

  /** Keeps a long batch's job from being taken for abandoned. */
  async beat(id: string, workerId: string): Promise<boolean> {
    const rows = await this.db.query(
      `UPDATE reindex_job SET heartbeat_at = now() WHERE id = $1 AND claimed_by = $2 AND status = 'in-progress' RETURNING id`,
      [id, workerId],
    );
    return rows.length > 0;
  }

  /** Gives a running job back to the queue (this process is stopping): another process resumes it at once. */
  async release(id: string, workerId: string): Promise<void> {
    await this.db.query(
      `UPDATE reindex_job SET status = 'accepted', claimed_by = NULL, heartbeat_at = NULL WHERE id = $1 AND claimed_by = $2 AND status = 'in-progress'`,
      [id, workerId],
    );
  }

  async finish(id: string, workerId: string, failure?: ReindexJob['failure']): Promise<boolean> {
    const rows = await this.db.query(
      `UPDATE reindex_job SET status = $3, failure = $4, finished_at = now(), heartbeat_at = now()
       WHERE id = $1 AND claimed_by = $2 AND status = 'in-progress' RETURNING id`,
      [id, workerId, failure ? 'failed' : 'completed', failure ? JSON.stringify(failure) : null],
    );
    return rows.length > 0;
  }

  /** Removes jobs that finished more than `keepS` seconds ago. */
  async removeFinished(keepS: number): Promise<number> {
    const rows = await this.db.query(
      `DELETE FROM reindex_job WHERE status IN ('completed', 'failed') AND finished_at < now() - make_interval(secs => $1) RETURNING id`,
      [keepS],
    );
    return rows.length;
  }
}

/**
 * Records, inside the transaction of a type's last batch, that every resource of the type is now indexed with the
 * SearchParameters stored as of `at`. Never moves back: an older job finishing late leaves a newer mark alone.
 */
export async function markTypeIndexed(tx: Queryable, resourceType: string, at: Date): Promise<void> {
  await tx.query(
    `INSERT INTO reindex_state (res_type, indexed_at) VALUES ($1, $2)
     ON CONFLICT (res_type) DO UPDATE SET indexed_at = greatest(reindex_state.indexed_at, excluded.indexed_at)`,
    [resourceType, at.toISOString()],
  );
}
