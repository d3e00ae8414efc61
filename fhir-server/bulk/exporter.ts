/**
 * Runs one export job inside PostgreSQL. Every type is cut into ranges of about `partSize` rows of the index on
 * (res_type, last_updated, id) — boundaries found by one index-only scan — and each range becomes one part of NDJSON
 * by one `INSERT … SELECT`: the stored JSON text joined by newlines (the store keeps compact JSON, whose strings
 * never hold a raw newline), so no resource passes through this process. Ranges are written by `parallelism`
 * connections at once, each part in a short transaction that imports the export's snapshot (consistency.ts): the
 * files are one consistent picture of the store, whatever runs during the export, and this process only waits.
 * The caller's read filter, the patients' compartments and the `_typeFilter` searches are SQL conditions of the same
 * statement. With `_elements`, the part's rows are read and reduced by the search's `_elements` code (rest module)
 * before the part is written. At the end, parts are grouped into files of at most `resourcesPerFile` resources.
 */
import type { OperationOutcome, Resource } from '@medplum/fhirtypes';
import { AccessPolicy } from '../auth/access-policy';
import { rulesOf } from '../auth/roles';
import { Permissions } from '../auth/scopes';
import type { Caller } from '../auth/tokens';
import type { Database, Queryable } from '../db';
import { describeError, issue, outcome } from '../errors';
import { subsetResource } from '../rest';
import { compileSearch, parseSearch, queryRecord, runtimeParams, SqlParams } from '../search';
import { consistencyPoint, inSnapshot, withSnapshot, type SnapshotId } from './consistency';
import type { CallerSnapshot, ExportJob } from './jobs';

export interface ExporterSettings {
  /** Resources per part (one statement, and what a download holds in memory at a time). */
  partSize: number;
  /** A type's file is split after this many resources, so that clients can fetch files in parallel. */
  resourcesPerFile: number;
  /** Parts written at once, each on its own database connection. */
  parallelism: number;
  /**
   * How far a write's `lastUpdated` (the writing process's clock, read as its transaction starts) may lag the start
   * of its database transaction, clock differences between hosts included (consistency.ts).
   */
  clockMarginMs: number;
  /** The server's base URL, for absolute references in `_typeFilter` searches. */
  baseUrl: string;
}

/** Thrown when the job stopped being this worker's (deleted by its client, or taken over by another process). */
export class JobLost extends Error {}

type ReadFilter = ((alias: string, params: SqlParams, types?: readonly string[]) => string) | undefined;

/** The read filter of the caller who started the export, as the security module would apply it to its searches. */
function readFilterOf(snapshot: CallerSnapshot): ReadFilter {
  const caller: Caller = {
    ...snapshot,
    clientName: snapshot.clientId,
    permissions: Permissions.parse(snapshot.scope).permissions,
    tokenId: '',
    expiresAt: 0,
  };
  const policy = new AccessPolicy(caller, {
    // An export reads resources only; the audit log is never part of it.
    auditReader: () => Promise.reject(new Error('the audit log is not exported')),
  });
  const filter = policy.repositoryAccess()?.readFilter;
  return filter?.bind(policy);
}

/** One range of a type's rows in (last_updated, id) order: after `from` (exclusive), up to `to` (inclusive). */
interface Range {
  type: string;
  seq: number;
  from?: { lastUpdated: string; id: string };
  to?: { lastUpdated: string; id: string };
}

/** What every part of the job shares. */
interface RunContext {
  db: Database;
  job: ExportJob;
  settings: ExporterSettings;
  snapshot: SnapshotId;
  transactionTime: string;
  readFilter: ReadFilter;
}

/** The conditions (besides the range) that select a type's current resources for the job. */
function conditions(ctx: RunContext, type: string, params: SqlParams): string[] {
  const { spec } = ctx.job;
  const where = [`r.res_type = ${params.add(type)}`, 'NOT r.deleted', ...windowOf(ctx, params)];
  if (spec.patients) {
    where.push(`r.compartments && ${params.add(spec.patients)}::text[]`);
  } else if (spec.level !== 'system') {
    // Every patient's compartment: rows that belong to at least one.
    where.push('cardinality(r.compartments) > 0');
  }
  const queries = spec.typeFilters[type] ?? [];
  if (queries.length > 0) {
    const alternatives = queries.map((query) => {
      const compiled = compileSearch(parseSearch(type, queryRecord(new URLSearchParams(query))), params, { alias: 'r', baseUrl: ctx.settings.baseUrl });
      return compiled.where.length > 0 ? `(${compiled.where.join(' AND ')})` : 'true';
    });
    where.push(`(${alternatives.join(' OR ')})`);
  }
  if (ctx.readFilter) {
    where.push(ctx.readFilter('r', params, [type]));
  }
  return where;
}

/** `_since` and the consistency point: the time window of the export. */
function windowOf(ctx: RunContext, params: SqlParams): string[] {
  const window = [`r.last_updated <= ${params.add(ctx.transactionTime)}::timestamptz`];
  if (ctx.job.spec.since) {
    window.push(`r.last_updated >= ${params.add(ctx.job.spec.since)}::timestamptz`);
  }
  return window;
}

function rangeConditions(range: Range, params: SqlParams): string[] {
  const where: string[] = [];
  if (range.from) {
    where.push(`(r.last_updated, r.id) > (${params.add(range.from.lastUpdated)}::timestamptz, ${params.add(range.from.id)})`);
  }
  if (range.to) {
    where.push(`(r.last_updated, r.id) <= (${params.add(range.to.lastUpdated)}::timestamptz, ${params.add(range.to.id)})`);
  }
  return where;
}

/**
 * Cuts a type into ranges of `partSize` index entries (deleted and filtered-out rows included, so parts may be
 * smaller): every partSize-th key of the window, by an index-only scan, in the export's snapshot.
 */
async function rangesOf(ctx: RunContext, q: Queryable, type: string, firstSeq: number): Promise<Range[]> {
  const params = new SqlParams();
  const where = [`r.res_type = ${params.add(type)}`, ...windowOf(ctx, params)];
  const rows = await q.query<{ last_updated: string; id: string }>(
    `SELECT last_updated, id FROM (
       SELECT r.last_updated::text AS last_updated, r.id, row_number() OVER (ORDER BY r.last_updated, r.id) AS n
       FROM resource r WHERE ${where.join(' AND ')}) k
     WHERE n % ${params.add(ctx.settings.partSize)} = 0 ORDER BY n`,
    params.values,
  );
  const ranges: Range[] = [];
  let from: Range['from'];
  for (const row of [...rows, undefined]) {
    const to = row ? { lastUpdated: row.last_updated, id: row.id } : undefined;
    ranges.push({ type, seq: firstSeq + ranges.length, from, to });
    from = to;
  }
  return ranges;
}

const INSERT_PART = 'INSERT INTO bulk_export_part (job_id, kind, res_type, file_no, seq, lines, content)';

/** Writes one range as a part (nothing when no row matches); resolves with its resource count. */
async function writePart(ctx: RunContext, q: Queryable, range: Range): Promise<number> {
  const params = new SqlParams();
  const where = [...conditions(ctx, range.type, params), ...rangeConditions(range, params)];
  const elements = ctx.job.spec.elements?.[range.type];
  if (elements) {
    // The subset is computed by the search's own `_elements` code: the part's rows pass through this process.
    const rows = await q.query<{ content: string }>(
      `SELECT r.content FROM resource r WHERE ${where.join(' AND ')} ORDER BY r.last_updated, r.id LIMIT ${params.add(ctx.settings.partSize)}`,
      params.values,
    );
    if (rows.length === 0) {
      return 0;
    }
    const lines = rows.map((row) => JSON.stringify(subsetResource(JSON.parse(row.content) as Resource, { elements })));
    await q.query(`${INSERT_PART} VALUES ($1, 'output', $2, 0, $3, $4, $5)`, [ctx.job.id, range.type, range.seq, lines.length, `${lines.join('\n')}\n`]);
    return lines.length;
  }
  // A range holds at most partSize index entries; the ORDER BY … LIMIT keeps the planner on the index range (its
  // estimate for a range inside one write's timestamp can be wild, and a table scan then costs 10 times more).
  const page = `SELECT r.content FROM resource r WHERE ${where.join(' AND ')} ORDER BY r.last_updated, r.id LIMIT ${params.add(ctx.settings.partSize)}`;
  const rows = await q.query<{ lines: number }>(
    `${INSERT_PART}
     SELECT ${params.add(ctx.job.id)}, 'output', ${params.add(range.type)}, 0, ${params.add(range.seq)}, count(*), string_agg(page.content, E'\\n') || E'\\n'
     FROM (${page}) page HAVING count(*) > 0
     RETURNING lines`,
    params.values,
  );
  return Number(rows[0]?.lines ?? 0);
}

/**
 * Runs `work` on `parallelism` connections. With a snapshot, each connection writes its parts in one transaction
 * that imports it (one round trip per part). No connection commits before all have finished and `confirm` has
 * checked that the job is still this worker's: a failed, cancelled or taken-over export leaves nothing (every
 * connection rolls back), and a process that lost its job cannot add parts to the new owner's run. On a
 * single-session engine, one loop of autocommitted statements (a transaction held open there would block the
 * heartbeat).
 */
async function onConnections(
  ctx: RunContext,
  parallelism: number,
  work: (q: Queryable, failed: () => boolean) => Promise<void>,
  confirm: () => Promise<void>,
): Promise<void> {
  if (!ctx.snapshot) {
    await work(ctx.db, () => false);
    return;
  }
  const count = Math.max(1, parallelism);
  let failure: unknown;
  let working = count;
  let release!: () => void;
  const allDone = new Promise<void>((resolve) => (release = resolve));
  const arrive = async (): Promise<void> => {
    if (--working === 0) {
      if (failure === undefined) {
        await confirm().catch((err: unknown) => {
          failure ??= err;
        });
      }
      release();
    }
  };
  const connection = async (): Promise<void> => {
    let arrived = false;
    const arriveOnce = async (): Promise<void> => {
      if (!arrived) {
        arrived = true;
        await arrive();
      }
    };
    try {
      await inSnapshot(ctx.db, ctx.snapshot, async (tx) => {
        try {
          await work(tx, () => failure !== undefined);
        } catch (err) {
          failure ??= err;
        }
        await arriveOnce();
        await allDone;
        if (failure !== undefined) {
          // This connection's parts roll back with the others'.
          throw failure;
        }
      });
    } catch (err) {
      failure ??= err;
      await arriveOnce();
    }
  };
  await Promise.all(Array.from({ length: count }, connection));
  if (failure !== undefined) {
    throw failure;
  }
}

/**
 * Bulk Data's `deleted` output of a `_since` export: each resource of the exported types deleted in the window, as
 * one line holding a transaction Bundle with a DELETE entry. Keyset pages of `partSize`, in the export's snapshot.
 */
async function writeDeleted(ctx: RunContext, q: Queryable, type: string, nextSeq: () => number): Promise<number> {
  let after: Range['from'];
  let total = 0;
  for (;;) {
    const params = new SqlParams();
    const where = [`r.res_type = ${params.add(type)}`, 'r.deleted', ...windowOf(ctx, params), ...rangeConditions({ type, seq: 0, from: after }, params)];
    const seq = nextSeq();
    const rows = await q.query<{ lines: number; last_updated: string; last_id: string }>(
        `WITH page AS (
           SELECT r.res_type, r.id, r.last_updated FROM resource r WHERE ${where.join(' AND ')}
           ORDER BY r.last_updated, r.id LIMIT ${params.add(ctx.settings.partSize)}
         ), last AS (
           SELECT last_updated::text AS last_updated, id FROM page ORDER BY last_updated DESC, id DESC LIMIT 1
         )
         ${INSERT_PART}
         SELECT ${params.add(ctx.job.id)}, 'deleted', 'Bundle', 0, ${params.add(seq)}, count(*),
           string_agg(json_build_object('resourceType', 'Bundle', 'type', 'transaction',
             'meta', json_build_object('lastUpdated', to_char(page.last_updated AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')),
             'entry', json_build_array(json_build_object('request', json_build_object('method', 'DELETE', 'url', page.res_type || '/' || page.id))))::text,
             E'\\n') || E'\\n'
         FROM page HAVING count(*) > 0
         RETURNING lines, (SELECT last_updated FROM last) AS last_updated, (SELECT id FROM last) AS last_id`,
      params.values,
    );
    const part = rows[0];
    if (!part) {
      return total;
    }
    total += Number(part.lines);
    if (Number(part.lines) < ctx.settings.partSize) {
      return total;
    }
    after = { lastUpdated: part.last_updated, id: part.last_id };
  }
}

/**
 * Whether deletions can be reported to this caller: a deleted resource keeps neither its compartments nor its
 * search index rows, so consent, care relationships, owners and `_typeFilter` cannot be checked on it. They are
 * reported to callers whose reads are not restricted by those (administrators), at system level.
 */
function deletionsReportable(job: ExportJob): boolean {
  return job.spec.since !== undefined && job.spec.level === 'system' && rulesOf(job.caller.role).unrestricted;
}

/**
 * Exports every type of the job; calls `beat` after each part with the running total (false stops the run with
 * JobLost). Records the job's `transactionTime` (the consistency point) through `onConsistencyPoint` before the
 * first part. Resolves when all parts are written and grouped into files.
 */
export async function runExport(
  db: Database,
  job: ExportJob,
  settings: ExporterSettings,
  beat: (exported: number, progress: string) => Promise<boolean>,
  onConsistencyPoint: (transactionTime: Date) => Promise<void> = async () => undefined,
): Promise<void> {
  await runtimeParams.refresh(db);
  const readFilter = readFilterOf(job.caller);
  const transactionTime = await consistencyPoint(db, job.transactionTime, settings.clockMarginMs);
  await onConsistencyPoint(transactionTime);
  let seq = 0;
  await writeErrors(db, job, [...(job.spec.notes ?? []), ...deletionNotes(job)], () => seq++);
  await withSnapshot(db, async (snapshot, tx) => {
    // A part never holds more than a file may.
    const partSize = Math.min(settings.partSize, settings.resourcesPerFile);
    const ctx: RunContext = { db, job, settings: { ...settings, partSize }, snapshot, transactionTime: transactionTime.toISOString(), readFilter };
    const ranges: Range[] = [];
    for (const type of job.spec.types) {
      // On the snapshot's own connection when there is one (it is idle otherwise), so that ranges match the parts.
      const typeRanges = await rangesOf(ctx, tx ?? db, type, seq);
      seq += typeRanges.length;
      ranges.push(...typeRanges);
    }
    let exported = 0;
    let next = 0;
    let lost = false;
    const beatOrStop = async (type: string): Promise<void> => {
      if (lost || !(await beat(exported, `${exported} resources exported; now ${type}`))) {
        lost = true;
        throw new JobLost('the export was cancelled or taken over');
      }
    };
    await onConnections(
      ctx,
      settings.parallelism,
      async (q, failed) => {
        while (!failed() && next < ranges.length) {
          const range = ranges[next++];
          exported += await writePart(ctx, q, range);
          await beatOrStop(range.type);
        }
      },
      () => beatOrStop(job.spec.types[job.spec.types.length - 1] ?? ''),
    );
    if (deletionsReportable(job)) {
      await onConnections(
        ctx,
        1,
        async (q) => {
          for (const type of job.spec.types) {
            exported += await writeDeleted(ctx, q, type, () => seq++);
            await beatOrStop(type);
          }
        },
        () => beatOrStop('deleted resources'),
      );
    }
  });
  await groupIntoFiles(db, job.id, settings.resourcesPerFile);
}

/** Why a `_since` export has no `deleted` output, when it cannot have one. */
function deletionNotes(job: ExportJob): string[] {
  if (job.spec.since === undefined || deletionsReportable(job)) {
    return [];
  }
  return [
    'Deleted resources are not reported in this export (no "deleted" output): a deleted resource keeps neither its patient compartments nor its owner, so they are reported only by system-level exports of administrators',
  ];
}

/**
 * Numbers the files: a type's parts, in range order, go into one file until the next would take it past
 * `resourcesPerFile`. Only the parts' small columns are rewritten (their content stays where it is).
 */
async function groupIntoFiles(db: Database, jobId: string, resourcesPerFile: number): Promise<void> {
  const parts = await db.query<{ kind: string; res_type: string; seq: number; lines: number }>(
    'SELECT kind, res_type, seq, lines FROM bulk_export_part WHERE job_id = $1 ORDER BY kind, res_type, seq',
    [jobId],
  );
  const seqs: number[] = [];
  const files: number[] = [];
  let current = '';
  let fileNo = 0;
  let inFile = 0;
  for (const part of parts) {
    const key = `${part.kind}/${part.res_type}`;
    if (key !== current || inFile + Number(part.lines) > resourcesPerFile) {
      fileNo = key === current ? fileNo + 1 : 1;
      inFile = 0;
      current = key;
    }
    inFile += Number(part.lines);
    seqs.push(Number(part.seq));
    files.push(fileNo);
  }
  if (seqs.length > 0) {
    await db.query(
      `UPDATE bulk_export_part p SET file_no = u.file_no FROM unnest($2::int[], $3::int[]) AS u(seq, file_no)
       WHERE p.job_id = $1 AND p.seq = u.seq`,
      [jobId, seqs, files],
    );
  }
}

/** Problems found at kick-off that did not stop the export (e.g. Group members that are not patients). */
async function writeErrors(db: Database, job: ExportJob, notes: string[], nextSeq: () => number): Promise<void> {
  if (notes.length === 0) {
    return;
  }
  const lines = notes.map((note) => JSON.stringify(outcome([issue('warning', 'processing', note)]) satisfies OperationOutcome)).join('\n');
  await db.query(`${INSERT_PART} VALUES ($1, 'error', 'OperationOutcome', 0, $2, $3, $4)`, [job.id, nextSeq(), notes.length, `${lines}\n`]);
}

/** What a failed job's poll answers: the error's status and OperationOutcome, or a 500 for an unexpected one. */
export function failureOf(err: unknown): { status: number; outcome: OperationOutcome } {
  const described = describeError(err);
  if (described.unexpected) {
    return { status: 500, outcome: outcome([issue('error', 'exception', 'The export failed on an unexpected error; the server log has the details')]) };
  }
  return { status: described.status, outcome: described.outcome };
}
