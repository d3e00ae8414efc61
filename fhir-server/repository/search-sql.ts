/**
 * Runs compiled searches against the `resource` table.
 */
import type { SearchRequest } from '@medplum/core';
import type { Queryable } from '../db';
import { compileSearch, findSearchParameter, orderByClause, SqlParams, type SortKey } from '../search';
import { decodeCursor, encodeCursor } from './cursor';

/** An extra SQL condition on the resource row `alias` (the caller's read filter, see access.ts). */
/** `types`: the resource types the rows can have, when the query fixes them (a filter may then leave out what cannot apply). */
export type RowFilter = (alias: string, params: SqlParams, types?: readonly string[]) => string;

export interface SearchPage {
  rows: Array<{ resourceType: string; id: string; content: string }>;
  /** The cursor of the next page (keyset: the last row's sort keys) when another page follows. */
  next?: string;
}

/** Extra conditions that are not search parameters, e.g. the patient compartment. */
export interface SearchScope {
  compartment?: string;
  /** Rows the caller may see (security): applied in SQL, so that paging and counts never reveal what it hides. */
  filter?: RowFilter;
  /** A search over several types (system level); empty means every type. Unset: the request's resourceType. */
  types?: string[];
}

export interface PageOptions {
  count: number;
  /** Rows to skip (`_offset`); links use cursors instead, so this is only for clients that ask for it. */
  offset: number;
  /** `_cursor` from a next link. */
  cursor?: string;
  baseUrl: string;
  scope?: SearchScope;
}

/** The sort key of the default order, by id. */
const ID_KEY: SortKey = { expr: 'r.id', descending: false, sqlType: 'text', nullable: false };

function buildQuery(
  request: SearchRequest,
  baseUrl: string,
  scope: SearchScope,
  params = new SqlParams(),
  idAfter?: string,
): { from: string; params: SqlParams; orderBy: SortKey[] } {
  const compiled = compileSearch(request, params, { alias: 'r', baseUrl, idAfter });
  const where = ['NOT r.deleted', ...compiled.where];
  if (scope.types === undefined) {
    where.unshift(`r.res_type = ${params.add(request.resourceType)}`);
  } else if (scope.types.length > 0) {
    where.unshift(`r.res_type = ANY(${params.add(scope.types)}::text[])`);
  }
  if (scope.compartment) {
    where.push(`r.compartments @> ARRAY[${params.add(scope.compartment)}]::text[]`);
  }
  if (scope.filter) {
    where.push(scope.filter('r', params, scope.types === undefined ? [request.resourceType] : scope.types.length > 0 ? scope.types : undefined));
  }
  const orderBy = [...compiled.orderBy];
  if (!oneType(scope)) {
    // Ids are unique only within a type: across types the type completes the key, so that paging stays exact.
    orderBy.push({ expr: 'r.res_type', descending: false, sqlType: 'text', nullable: false });
  }
  return { from: `FROM resource r WHERE ${where.join(' AND ')}`, params, orderBy };
}

const oneType = (scope: SearchScope): boolean => scope.types === undefined || scope.types.length === 1;

/** Whether the page is in the default order, by id alone: then a cursor is one id. */
function ordersByIdOnly(request: SearchRequest, scope: SearchScope): boolean {
  const [first] = request.sortRules ?? [];
  return oneType(scope) && (first === undefined || (first.code === '_id' && !first.descending));
}

/** What a cursor is bound to: the same sort over the same types. */
function sortSignature(request: SearchRequest, scope: SearchScope): string {
  const sort = (request.sortRules ?? []).map((rule) => `${rule.descending ? '-' : ''}${rule.code}`).join(',');
  return `${sort}|${scope.types === undefined ? request.resourceType : scope.types.join(',')}`;
}

/**
 * Rows strictly after the cursor's in the order of `keys` (NULLs last, as they sort): for keys (a, b, id) that is
 * a > va OR (a = va AND (b > vb OR (b = vb AND id > vid))). With the default sort it is just `id > vid`, a range
 * of the primary key or of the index that finds the matches.
 */
function afterCursor(keys: SortKey[], values: Array<string | null>, params: SqlParams, i = 0): string {
  const key = keys[i];
  const value = values[i] === null ? undefined : `${params.add(values[i])}::${key.sqlType}`;
  // Nothing sorts after NULL on this key (NULLs are last); otherwise greater (or smaller when descending), or NULL.
  const beyond =
    value === undefined
      ? undefined
      : `${key.expr} ${key.descending ? '<' : '>'} ${value}${key.nullable ? ` OR ${key.expr} IS NULL` : ''}`;
  if (i === keys.length - 1) {
    return beyond === undefined ? 'false' : `(${beyond})`;
  }
  const same = value === undefined ? `${key.expr} IS NULL` : `${key.expr} = ${value}`;
  const rest = `${same} AND ${afterCursor(keys, values, params, i + 1)}`;
  return beyond === undefined ? `(${rest})` : `(${beyond} OR (${rest}))`;
}

/** Parameter types whose condition is an equality lookup, estimated alike whatever the value. */
const EQUALITY_TYPES = new Set(['token', 'reference', 'uri']);

/**
 * Whether a search's plan may be kept and reused. A kept (generic) plan is blind to the values, which is harmless
 * until a search has two equality lookups: which one to start from then depends on the values (a patient's 40
 * Observations, or the 800 with a common code), and the generic plan was measured starting from the wrong one
 * (16 ms against 0.3 ms, plus 1 ms of planning for a plan made for the values). Ranges (dates, numbers) and single
 * conditions keep their prepared plans, whose planning would otherwise cost more than running them.
 */
function preparable(request: SearchRequest): boolean {
  const equalities = (request.filters ?? []).filter((f) => {
    const code = f.code.split(':')[0];
    if (code.includes('.') || code.startsWith('_has')) {
      return true;
    }
    const type = findSearchParameter(request.resourceType, code)?.type;
    return type === undefined || EQUALITY_TYPES.has(type);
  });
  return equalities.length <= 1;
}

export async function searchPage(q: Queryable, request: SearchRequest, options: PageOptions): Promise<SearchPage> {
  const scope = options.scope ?? {};
  const signature = sortSignature(request, scope);
  const params = new SqlParams();
  // In the default order a cursor is one id, which index lookups repeat so that their range starts there.
  const idAfter =
    options.cursor !== undefined && ordersByIdOnly(request, scope)
      ? `${params.add(decodeCursor(options.cursor, signature, [ID_KEY])[0])}::text`
      : undefined;
  const { from, orderBy } = buildQuery(request, options.baseUrl, scope, params, idAfter);
  let sql = `SELECT r.res_type, r.id, r.content, ${orderBy.map((k, i) => `(${k.expr})::text AS k${i}`).join(', ')} ${from}`;
  if (idAfter !== undefined) {
    sql += ` AND r.id > ${idAfter}`;
  } else if (options.cursor !== undefined) {
    sql += ` AND ${afterCursor(orderBy, decodeCursor(options.cursor, signature, orderBy), params)}`;
  }
  sql += ` ORDER BY ${orderByClause(orderBy)} LIMIT ${params.add(options.count + 1)}`;
  if (options.offset > 0) {
    sql += ` OFFSET ${params.add(options.offset)}`;
  }
  const rows = await q.query<Record<string, string | null>>(sql, params.values, { prepare: preparable(request) });
  const page = rows.slice(0, options.count);
  const last = page[page.length - 1];
  return {
    rows: page.map((r) => ({ resourceType: r.res_type as string, id: r.id as string, content: r.content as string })),
    next: rows.length > options.count && last ? encodeCursor(signature, orderBy.map((_, i) => last[`k${i}`])) : undefined,
  };
}

export async function countMatches(q: Queryable, request: SearchRequest, baseUrl: string, scope: SearchScope = {}): Promise<number> {
  const { from, params } = buildQuery(request, baseUrl, scope);
  const rows = await q.query<{ n: number }>(`SELECT count(*)::int AS n ${from}`, params.values);
  return Number(rows[0].n);
}

/**
 * The planner's estimate of the number of matches (`_total=estimate`): EXPLAIN's row estimate, which costs a
 * planning but no execution, however many resources match.
 */
export async function estimateMatches(q: Queryable, request: SearchRequest, baseUrl: string, scope: SearchScope = {}): Promise<number> {
  const { from, params } = buildQuery(request, baseUrl, scope);
  const rows = await q.query<{ 'QUERY PLAN': Array<{ Plan: { 'Plan Rows': number } }> | string }>(
    `EXPLAIN (FORMAT JSON) SELECT 1 ${from}`,
    params.values,
  );
  const plan = rows[0]['QUERY PLAN'];
  const parsed = typeof plan === 'string' ? (JSON.parse(plan) as Array<{ Plan: { 'Plan Rows': number } }>) : plan;
  return Math.round(parsed[0].Plan['Plan Rows']);
}

export async function findResourceIds(q: Queryable, request: SearchRequest, limit: number, baseUrl: string): Promise<string[]> {
  const { from, params } = buildQuery(request, baseUrl, {});
  const rows = await q.query<{ id: string }>(`SELECT r.id ${from} LIMIT ${params.add(limit)}`, params.values);
  return rows.map((r) => r.id);
}

export interface CompartmentQuery {
  compartment: string;
  /** More compartments whose resources belong to this one (a golden record's linked patients). */
  also?: string[];
  since?: string;
  types: string[];
  count: number;
  offset: number;
}

/** Every resource of a compartment (the patient itself first), for `$everything`. */
export async function compartmentPage(
  q: Queryable,
  query: CompartmentQuery,
  filter?: RowFilter,
): Promise<{ rows: Array<{ resourceType: string; id: string; content: string }>; hasMore: boolean }> {
  const params = new SqlParams();
  const compartments = [query.compartment, ...(query.also ?? [])];
  const where = [
    'NOT r.deleted',
    compartments.length === 1
      ? `r.compartments @> ARRAY[${params.add(query.compartment)}]::text[]`
      : `r.compartments && ${params.add(compartments)}::text[]`,
  ];
  if (query.since) {
    where.push(`r.last_updated >= ${params.add(query.since)}::timestamptz`);
  }
  if (query.types.length > 0) {
    where.push(`r.res_type = ANY(${params.add(query.types)}::text[])`);
  }
  if (filter) {
    where.push(filter('r', params, query.types.length > 0 ? query.types : undefined));
  }
  const rows = await q.query<{ res_type: string; id: string; content: string }>(
    `SELECT r.res_type, r.id, r.content FROM resource r WHERE ${where.join(' AND ')}
     ORDER BY (r.res_type = 'Patient') DESC, r.res_type, r.id LIMIT ${params.add(query.count + 1)} OFFSET ${params.add(query.offset)}`,
    params.values,
  );
  return {
    rows: rows.slice(0, query.count).map((r) => ({ resourceType: r.res_type, id: r.id, content: r.content })),
    hasMore: rows.length > query.count,
  };
}
