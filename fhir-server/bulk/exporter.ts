/**
 * Runs one export job: for each type, the matching current resources are copied into NDJSON parts by one
 * INSERT … SELECT per part, inside PostgreSQL. The stored JSON text is joined as it is (one resource per line:
 * the store keeps compact JSON, whose strings never hold a raw newline), so no resource passes through this
 * process, and memory stays bounded whatever the size of the store. Each part is a keyset page
 * (`(last_updated, id) > last`) of the index on (res_type, last_updated, id), which follows the order rows were
 * written in, so that the heap is read nearly sequentially; the caller's read filter, the patients' compartments
 * and the `_typeFilter` searches are SQL conditions of the same statement.
 */
import type { OperationOutcome } from '@medplum/fhirtypes';
import { AccessPolicy } from '../auth/access-policy';
import { Permissions } from '../auth/scopes';
import type { Caller } from '../auth/tokens';
import type { Database } from '../db';
import { describeError, issue, outcome } from '../errors';
import { compileSearch, parseSearch, queryRecord, runtimeParams, SqlParams } from '../search';
import type { CallerSnapshot, ExportJob } from './jobs';

export interface ExporterSettings {
  /** Resources per part (one statement, and what a download holds in memory at a time). */
  partSize: number;
  /** A type's file is split after this many resources, so that clients can fetch files in parallel. */
  resourcesPerFile: number;
  /** The server's base URL, for absolute references in `_typeFilter` searches. */
  baseUrl: string;
}

/** Thrown when the job stopped being this worker's (deleted by its client, or taken over by another process). */
export class JobLost extends Error {}

/** The read filter of the caller who started the export, as the security module would apply it to its searches. */
function readFilterOf(snapshot: CallerSnapshot): ((alias: string, params: SqlParams, types?: readonly string[]) => string) | undefined {
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

/** The conditions (besides the keyset position) that select a type's resources for the job. */
function conditions(job: ExportJob, type: string, params: SqlParams, baseUrl: string, readFilter: ReturnType<typeof readFilterOf>): string[] {
  const { spec } = job;
  const where = [`r.res_type = ${params.add(type)}`, 'NOT r.deleted', `r.last_updated <= ${params.add(job.transactionTime.toISOString())}::timestamptz`];
  if (spec.since) {
    where.push(`r.last_updated >= ${params.add(spec.since)}::timestamptz`);
  }
  if (spec.patients) {
    where.push(`r.compartments && ${params.add(spec.patients)}::text[]`);
  } else if (spec.level !== 'system') {
    // Every patient's compartment: rows that belong to at least one.
    where.push('cardinality(r.compartments) > 0');
  }
  const queries = spec.typeFilters[type] ?? [];
  if (queries.length > 0) {
    const alternatives = queries.map((query) => {
      const compiled = compileSearch(parseSearch(type, queryRecord(new URLSearchParams(query))), params, { alias: 'r', baseUrl });
      return compiled.where.length > 0 ? `(${compiled.where.join(' AND ')})` : 'true';
    });
    where.push(`(${alternatives.join(' OR ')})`);
  }
  if (readFilter) {
    where.push(readFilter('r', params, [type]));
  }
  return where;
}

/**
 * Exports every type of the job; calls `beat` after each part with the running total (false stops the run with
 * JobLost). Resolves when all parts are written.
 */
export async function runExport(
  db: Database,
  job: ExportJob,
  settings: ExporterSettings,
  beat: (exported: number, progress: string) => Promise<boolean>,
): Promise<void> {
  await runtimeParams.refresh(db);
  const readFilter = readFilterOf(job.caller);
  let seq = 0;
  let exported = 0;
  await writeErrors(db, job, job.spec.notes ?? [], () => seq++);
  for (const type of job.spec.types) {
    // Keyset: the last exported row's last_updated (as text, exact to the microsecond) and id.
    let after: { lastUpdated: string; id: string } | undefined;
    let fileNo = 1;
    let inFile = 0;
    for (;;) {
      const params = new SqlParams();
      const where = conditions(job, type, params, settings.baseUrl, readFilter);
      if (after) {
        where.push(`(r.last_updated, r.id) > (${params.add(after.lastUpdated)}::timestamptz, ${params.add(after.id)})`);
      }
      // A part never crosses a file boundary, so that each file holds at most resourcesPerFile resources.
      const limit = Math.min(settings.partSize, settings.resourcesPerFile - inFile);
      const sql = `WITH page AS (
          SELECT r.id, r.last_updated, r.content FROM resource r WHERE ${where.join(' AND ')}
          ORDER BY r.last_updated, r.id LIMIT ${params.add(limit)}
        ), last AS (
          SELECT last_updated::text AS last_updated, id FROM page ORDER BY page.last_updated DESC, page.id DESC LIMIT 1
        )
        INSERT INTO bulk_export_part (job_id, kind, res_type, file_no, seq, lines, content)
        SELECT ${params.add(job.id)}, 'output', ${params.add(type)}, ${params.add(fileNo)}, ${params.add(seq)}, count(*),
          string_agg(page.content, E'\\n' ORDER BY page.last_updated, page.id) || E'\\n'
        FROM page HAVING count(*) > 0
        RETURNING lines, (SELECT last_updated FROM last) AS last_updated, (SELECT id FROM last) AS last_id`;
      let rows: Array<{ lines: number; last_updated: string; last_id: string }>;
      try {
        rows = await db.query<{ lines: number; last_updated: string; last_id: string }>(sql, params.values);
      } catch (err) {
        // The job's row is gone (deleted by its client): the part's foreign key fails.
        if ((err as { code?: string }).code === '23503') {
          throw new JobLost('the export was cancelled');
        }
        throw err;
      }
      const part = rows[0];
      if (!part) {
        break;
      }
      seq++;
      exported += Number(part.lines);
      inFile += Number(part.lines);
      after = { lastUpdated: part.last_updated, id: part.last_id };
      if (!(await beat(exported, `${exported} resources exported; now ${type}`))) {
        throw new JobLost('the export was cancelled or taken over');
      }
      if (Number(part.lines) < limit) {
        break;
      }
      if (inFile >= settings.resourcesPerFile) {
        fileNo++;
        inFile = 0;
      }
    }
  }
}

/** Problems found at kick-off that did not stop the export (e.g. Group members that are not patients). */
async function writeErrors(db: Database, job: ExportJob, notes: string[], nextSeq: () => number): Promise<void> {
  if (notes.length === 0) {
    return;
  }
  const lines = notes.map((note) => JSON.stringify(outcome([issue('warning', 'processing', note)]) satisfies OperationOutcome)).join('\n');
  await db.query(
    `INSERT INTO bulk_export_part (job_id, kind, res_type, file_no, seq, lines, content) VALUES ($1, 'error', 'OperationOutcome', 1, $2, $3, $4)`,
    [job.id, nextSeq(), notes.length, `${lines}\n`],
  );
}

/** What a failed job's poll answers: the error's status and OperationOutcome, or a 500 for an unexpected one. */
export function failureOf(err: unknown): { status: number; outcome: OperationOutcome } {
  const described = describeError(err);
  if (described.unexpected) {
    return { status: 500, outcome: outcome([issue('error', 'exception', 'The export failed on an unexpected error; the server log has the details')]) };
  }
  return { status: described.status, outcome: described.outcome };
}
