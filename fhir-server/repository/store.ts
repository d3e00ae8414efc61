/**
 * SQL for the `resource` and `resource_version` tables. Writes are set-based: one CTE per table for a whole batch
 * of versions, however many resources a transaction bundle holds.
 */
import type { CompositeWrite, Queryable } from '../db';
import type { ResourceKey } from './references';

export type Interaction = 'create' | 'update' | 'patch' | 'delete';

/** The current row of a resource. `content` is the stored JSON text, null for a deleted resource. */
export interface CurrentRow {
  versionId: number;
  lastUpdated: Date;
  deleted: boolean;
  content: string | null;
}

/** One new version to be written. */
export interface VersionWrite {
  resourceType: string;
  id: string;
  versionId: number;
  lastUpdated: string;
  interaction: Interaction;
  /** JSON text of the resource with its new meta; undefined for a deletion. */
  content?: string;
  compartments: string[];
}

export interface VersionRow extends ResourceKey {
  versionId: number;
  lastUpdated: Date;
  interaction: Interaction;
  content: string | null;
}

interface RawCurrent {
  version_id: number;
  last_updated: Date | string;
  deleted: boolean;
  content: string | null;
}

function toCurrent(row: RawCurrent): CurrentRow {
  return {
    versionId: Number(row.version_id),
    lastUpdated: new Date(row.last_updated),
    deleted: row.deleted,
    content: row.content,
  };
}

/** The current row, optionally locked until the transaction ends (so that concurrent writers queue up). */
export async function readCurrent(
  q: Queryable,
  resourceType: string,
  id: string,
  lock = false,
): Promise<CurrentRow | undefined> {
  const rows = await q.query<RawCurrent>(
    `SELECT version_id, last_updated, deleted, content FROM resource WHERE res_type = $1 AND id = $2${lock ? ' FOR UPDATE' : ''}`,
    [resourceType, id],
    { prepare: true },
  );
  return rows.length > 0 ? toCurrent(rows[0]) : undefined;
}

export async function readVersion(
  q: Queryable,
  resourceType: string,
  id: string,
  versionId: number,
): Promise<VersionRow | undefined> {
  const rows = await q.query<RawVersion>(
    `SELECT res_type, id, version_id, last_updated, interaction, content FROM resource_version
     WHERE res_type = $1 AND id = $2 AND version_id = $3`,
    [resourceType, id, versionId],
  );
  return rows.length > 0 ? toVersion(rows[0]) : undefined;
}

/** Which of `keys` exist and are not deleted. */
export async function existingResources(q: Queryable, keys: ResourceKey[]): Promise<Set<string>> {
  if (keys.length === 0) {
    return new Set();
  }
  const rows = await q.query<{ res_type: string; id: string }>(
    `SELECT r.res_type, r.id FROM resource r
     JOIN unnest($1::text[], $2::text[]) AS k(res_type, id) ON r.res_type = k.res_type AND r.id = k.id
     WHERE NOT r.deleted`,
    [keys.map((k) => k.resourceType), keys.map((k) => k.id)],
    { prepare: true },
  );
  return new Set(rows.map((r) => `${r.res_type}/${r.id}`));
}

/** Adds to `statement` the new versions: the upsert of the current rows and the history rows. */
export function addVersionWrites(statement: CompositeWrite, writes: VersionWrite[]): void {
  if (writes.length === 0) {
    return;
  }
  const types = writes.map((w) => w.resourceType);
  const ids = writes.map((w) => w.id);
  const versions = writes.map((w) => w.versionId);
  const times = writes.map((w) => w.lastUpdated);
  const contents = writes.map((w) => w.content ?? null);
  statement.add(
    (p) => `INSERT INTO resource (res_type, id, version_id, last_updated, deleted, content, compartments)
     SELECT t, i, v, u, c IS NULL, c, ARRAY(SELECT jsonb_array_elements_text(comp::jsonb))
     FROM ${statement.rows(`unnest(${p.array(types, 'text')}, ${p.array(ids, 'text')}, ${p.array(versions, 'int')}, ${p.array(times, 'timestamptz')},
       ${p.array(contents, 'text')}, ${p.array(writes.map((w) => JSON.stringify(w.compartments)), 'text')}) AS x0(t, i, v, u, c, comp)`, 'x')}
     ON CONFLICT (res_type, id) DO UPDATE SET version_id = EXCLUDED.version_id, last_updated = EXCLUDED.last_updated,
       deleted = EXCLUDED.deleted, content = EXCLUDED.content, compartments = EXCLUDED.compartments`,
  );
  statement.add(
    (p) => `INSERT INTO resource_version (res_type, id, version_id, last_updated, interaction, content)
     SELECT * FROM ${statement.rows(`unnest(${p.array(types, 'text')}, ${p.array(ids, 'text')}, ${p.array(versions, 'int')}, ${p.array(times, 'timestamptz')},
       ${p.array(writes.map((w) => w.interaction), 'text')}, ${p.array(contents, 'text')}) AS h0`, 'h')}`,
  );
}

interface RawVersion {
  res_type: string;
  id: string;
  version_id: number;
  last_updated: Date | string;
  interaction: Interaction;
  content: string | null;
}

function toVersion(row: RawVersion): VersionRow {
  return {
    resourceType: row.res_type,
    id: row.id,
    versionId: Number(row.version_id),
    lastUpdated: new Date(row.last_updated),
    interaction: row.interaction,
    content: row.content,
  };
}

export interface HistoryQuery {
  resourceType?: string;
  id?: string;
  since?: string;
  at?: string;
  count: number;
  offset: number;
}

/** The WHERE clause shared by a history page and its count. */
function historyFilter(query: Omit<HistoryQuery, 'count' | 'offset'>, params: unknown[]): string {
  const add = (value: unknown): string => {
    params.push(value);
    return `$${params.length}`;
  };
  const where: string[] = [];
  if (query.resourceType) {
    where.push(`v.res_type = ${add(query.resourceType)}`);
  }
  if (query.id) {
    where.push(`v.id = ${add(query.id)}`);
  }
  if (query.since) {
    where.push(`v.last_updated >= ${add(query.since)}::timestamptz`);
  }
  if (query.at) {
    const at = add(query.at);
    where.push(`v.last_updated <= ${at}::timestamptz`);
    where.push(`NOT EXISTS (SELECT 1 FROM resource_version n WHERE n.res_type = v.res_type AND n.id = v.id
      AND n.version_id > v.version_id AND n.last_updated <= ${at}::timestamptz)`);
  }
  return where.length > 0 ? `WHERE ${where.join(' AND ')}` : '';
}

/**
 * Versions newest first. `at` gives, per resource, the version current at that instant; `since` those written
 * at or after it (http.html#history). One extra row is fetched so the caller knows whether a next page exists.
 */
export async function readHistory(q: Queryable, query: HistoryQuery): Promise<VersionRow[]> {
  const params: unknown[] = [];
  const where = historyFilter(query, params);
  params.push(query.count + 1, query.offset);
  const sql = `SELECT v.res_type, v.id, v.version_id, v.last_updated, v.interaction, v.content FROM resource_version v
    ${where} ORDER BY v.last_updated DESC, v.res_type, v.id, v.version_id DESC
    LIMIT $${params.length - 1} OFFSET $${params.length}`;
  return (await q.query<RawVersion>(sql, params)).map(toVersion);
}

export async function countHistory(q: Queryable, query: Omit<HistoryQuery, 'count' | 'offset'>): Promise<number> {
  const params: unknown[] = [];
  const where = historyFilter(query, params);
  const rows = await q.query<{ n: number }>(`SELECT count(*)::int AS n FROM resource_version v ${where}`, params);
  return Number(rows[0].n);
}
