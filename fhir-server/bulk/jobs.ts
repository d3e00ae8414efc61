/**
 * Export jobs and their files in the database (migration 60): bulk_export_job holds each request and its state,
 * bulk_export_part the NDJSON files as consecutive parts. Every worker process of the platform sees the same jobs,
 * claims them with FOR UPDATE SKIP LOCKED, and serves any job's files, and everything survives a restart.
 */
import { randomBytes } from 'node:crypto';
import type { OperationOutcome } from '@medplum/fhirtypes';
import type { Database } from '../db';
import type { Role } from '../auth/roles';
import type { ExportSpec } from './parameters';

/** The caller's identity and rights as they were at kick-off, so that a worker exports with exactly those. */
export interface CallerSnapshot {
  clientId: string;
  role: Role;
  organization?: string;
  practitioner?: string;
  /** The scopes granted to the token that started the export. */
  scope: string;
}

export type JobStatus = 'accepted' | 'in-progress' | 'completed' | 'failed';

export interface ExportJob {
  id: string;
  clientId: string;
  status: JobStatus;
  requestUrl: string;
  spec: ExportSpec;
  caller: CallerSnapshot;
  transactionTime: Date;
  exported: number;
  progress?: string;
  failure?: { status: number; outcome: OperationOutcome };
  expiresAt: Date;
}

/** The manifest's three lists: resources, problems (OperationOutcome), deletions of a `_since` export (Bundle). */
export type FileKind = 'output' | 'error' | 'deleted';

/** One file of a finished job, as the manifest lists it. */
export interface ExportFile {
  kind: FileKind;
  type: string;
  fileNo: number;
  count: number;
}

interface JobRow {
  id: string;
  client_id: string;
  status: JobStatus;
  request_url: string;
  spec: string;
  caller: string;
  transaction_time: Date | string;
  exported: number | string;
  progress: string | null;
  failure: string | null;
  expires_at: Date | string;
}

function toJob(row: JobRow): ExportJob {
  return {
    id: row.id,
    clientId: row.client_id,
    status: row.status,
    requestUrl: row.request_url,
    spec: JSON.parse(row.spec) as ExportSpec,
    caller: JSON.parse(row.caller) as CallerSnapshot,
    transactionTime: new Date(row.transaction_time),
    exported: Number(row.exported),
    progress: row.progress ?? undefined,
    failure: row.failure ? (JSON.parse(row.failure) as ExportJob['failure']) : undefined,
    expiresAt: new Date(row.expires_at),
  };
}

const JOB_COLUMNS = 'id, client_id, status, request_url, spec, caller, transaction_time, exported, progress, failure, expires_at';

/** An id no client can guess: the poll and file URLs carry it, and only the owner may use them anyway. */
export function newJobId(): string {
  return randomBytes(16).toString('hex');
}

export class ExportJobs {
  constructor(private readonly db: Database) {}

  async create(job: { id: string; caller: CallerSnapshot; requestUrl: string; spec: ExportSpec; transactionTime: Date; lifetimeS: number }): Promise<void> {
    await this.db.query(
      `INSERT INTO bulk_export_job (id, client_id, status, request_url, spec, caller, transaction_time, expires_at)
       VALUES ($1, $2, 'accepted', $3, $4, $5, $6, $6::timestamptz + make_interval(secs => $7))`,
      [job.id, job.caller.clientId, job.requestUrl, JSON.stringify(job.spec), JSON.stringify(job.caller), job.transactionTime.toISOString(), job.lifetimeS],
    );
  }

  /** Jobs of this client that are waiting or running. */
  async activeCount(clientId: string): Promise<number> {
    const rows = await this.db.query<{ n: number | string }>(
      `SELECT count(*) AS n FROM bulk_export_job WHERE client_id = $1 AND status IN ('accepted', 'in-progress')`,
      [clientId],
    );
    return Number(rows[0]?.n ?? 0);
  }

  /** The client's job, unless it expired (an expired job is as gone as a deleted one, even before cleanup). */
  async find(id: string, clientId: string): Promise<ExportJob | undefined> {
    const rows = await this.db.query<JobRow>(
      `SELECT ${JOB_COLUMNS} FROM bulk_export_job
       WHERE id = $1 AND client_id = $2 AND (status IN ('accepted', 'in-progress') OR expires_at > now())`,
      [id, clientId],
    );
    return rows[0] ? toJob(rows[0]) : undefined;
  }

  /** Deletes the client's job and its files (a running worker notices at its next part); false when unknown. */
  async remove(id: string, clientId: string): Promise<boolean> {
    const rows = await this.db.query(
      `WITH job AS (DELETE FROM bulk_export_job WHERE id = $1 AND client_id = $2 RETURNING id),
         parts AS (DELETE FROM bulk_export_part WHERE job_id IN (SELECT id FROM job))
       SELECT id FROM job`,
      [id, clientId],
    );
    return rows.length > 0;
  }

  /**
   * Takes the oldest waiting job, or one whose worker stopped beating (its process died): that job starts over,
   * its partial files removed. Undefined when there is nothing to do.
   */
  async claim(workerId: string, staleAfterMs: number): Promise<ExportJob | undefined> {
    return this.db.transaction(async (tx) => {
      const rows = await tx.query<JobRow>(
        `UPDATE bulk_export_job SET status = 'in-progress', claimed_by = $1, heartbeat_at = now(), exported = 0,
           progress = 'starting'
         WHERE id = (SELECT id FROM bulk_export_job
                     WHERE status = 'accepted'
                        OR (status = 'in-progress' AND heartbeat_at < now() - make_interval(secs => $2))
                     ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING ${JOB_COLUMNS}`,
        [workerId, staleAfterMs / 1000],
      );
      if (!rows[0]) {
        return undefined;
      }
      await tx.query('DELETE FROM bulk_export_part WHERE job_id = $1', [rows[0].id]);
      return toJob(rows[0]);
    });
  }

  /** Records the consistency point the worker chose (the manifest's transactionTime); false when no longer this worker's. */
  async setTransactionTime(id: string, workerId: string, transactionTime: Date): Promise<boolean> {
    const rows = await this.db.query(
      `UPDATE bulk_export_job SET transaction_time = $3 WHERE id = $1 AND claimed_by = $2 AND status = 'in-progress' RETURNING id`,
      [id, workerId, transactionTime.toISOString()],
    );
    return rows.length > 0;
  }

  /** Records progress; false when the job is no longer this worker's (cancelled, or taken over). */
  async beat(id: string, workerId: string, exported?: number, progress?: string): Promise<boolean> {
    const rows = await this.db.query(
      `UPDATE bulk_export_job SET heartbeat_at = now(), exported = coalesce($3, exported), progress = coalesce($4, progress)
       WHERE id = $1 AND claimed_by = $2 AND status = 'in-progress' RETURNING id`,
      [id, workerId, exported ?? null, progress ?? null],
    );
    return rows.length > 0;
  }

  /** Gives a running job back to the queue (this process is stopping), so that another process takes it at once. */
  async release(id: string, workerId: string): Promise<void> {
    await this.db.query(
      `UPDATE bulk_export_job SET status = 'accepted', claimed_by = NULL, heartbeat_at = NULL WHERE id = $1 AND claimed_by = $2 AND status = 'in-progress'`,
      [id, workerId],
    );
  }

  /** Finishes the job; its files are kept for `lifetimeS` from now. */
  async finish(id: string, workerId: string, lifetimeS: number, failure?: ExportJob['failure']): Promise<boolean> {
    const rows = await this.db.query(
      `UPDATE bulk_export_job SET status = $3, failure = $4, finished_at = now(), heartbeat_at = now(),
         expires_at = now() + make_interval(secs => $5), progress = NULL
       WHERE id = $1 AND claimed_by = $2 AND status = 'in-progress' RETURNING id`,
      [id, workerId, failure ? 'failed' : 'completed', failure ? JSON.stringify(failure) : null, lifetimeS],
    );
    if (failure) {
      await this.db.query('DELETE FROM bulk_export_part WHERE job_id = $1', [id]);
    }
    return rows.length > 0;
  }

  /** The files of a job, in the order of its types, with their line counts. */
  async files(id: string): Promise<ExportFile[]> {
    const rows = await this.db.query<{ kind: FileKind; res_type: string; file_no: number; count: number | string; first: number | string }>(
      `SELECT kind, res_type, file_no, sum(lines) AS count, min(seq) AS first FROM bulk_export_part WHERE job_id = $1
       GROUP BY kind, res_type, file_no ORDER BY kind DESC, min(seq)`,
      [id],
    );
    return rows.map((r) => ({ kind: r.kind, type: r.res_type, fileNo: Number(r.file_no), count: Number(r.count) }));
  }

  /** Whether a file exists. */
  async hasFile(id: string, kind: string, type: string, fileNo: number): Promise<boolean> {
    const rows = await this.db.query('SELECT 1 FROM bulk_export_part WHERE job_id = $1 AND kind = $2 AND res_type = $3 AND file_no = $4 LIMIT 1', [id, kind, type, fileNo]);
    return rows.length > 0;
  }

  /** A file's text, one part per query (keyset by seq), so that only one part is in memory at a time. */
  async *fileParts(id: string, kind: string, type: string, fileNo: number): AsyncGenerator<string> {
    let after = -1;
    for (;;) {
      const rows = await this.db.query<{ seq: number; content: string }>(
        `SELECT seq, content FROM bulk_export_part WHERE job_id = $1 AND kind = $2 AND res_type = $3 AND file_no = $4 AND seq > $5
         ORDER BY seq LIMIT 1`,
        [id, kind, type, fileNo, after],
      );
      if (!rows[0]) {
        return;
      }
      after = Number(rows[0].seq);
      yield rows[0].content;
    }
  }

  /**
   * Removes finished jobs whose time is up, with their files, and parts whose job is gone: a worker's transaction
   * that committed just as its job was cancelled (it finds out at its next heartbeat, after the commit).
   */
  async removeExpired(): Promise<number> {
    const rows = await this.db.query(
      `WITH job AS (DELETE FROM bulk_export_job WHERE expires_at < now() AND status IN ('completed', 'failed') RETURNING id),
         parts AS (DELETE FROM bulk_export_part WHERE job_id IN (SELECT id FROM job))
       SELECT id FROM job`,
    );
    await this.db.query('DELETE FROM bulk_export_part p WHERE NOT EXISTS (SELECT 1 FROM bulk_export_job j WHERE j.id = p.job_id)');
    return rows.length;
  }
}
