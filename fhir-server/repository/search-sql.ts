/**
 * Runs compiled searches against the `resource` table.
 */
import type { SearchRequest } from '@medplum/core';
import type { Queryable } from '../db';
import { compileSearch, SqlParams } from '../search';

/** An extra SQL condition on the resource row `alias` (the caller's read filter, see access.ts). */
export type RowFilter = (alias: string, params: SqlParams) => string;

export interface SearchPage {
  rows: Array<{ id: string; content: string }>;
  /** Whether another page follows. */
  hasMore: boolean;
}

/** Extra conditions that are not search parameters, e.g. the patient compartment. */
export interface SearchScope {
  compartment?: string;
  /** Rows the caller may see (security): applied in SQL, so that paging and counts never reveal what it hides. */
  filter?: RowFilter;
}

function buildQuery(
  request: SearchRequest,
  baseUrl: string,
  scope: SearchScope,
  select: string,
): { sql: string; params: SqlParams; orderBy: string[] } {
  const params = new SqlParams();
  const compiled = compileSearch(request, params, { alias: 'r', baseUrl });
  const where = [`r.res_type = ${params.add(request.resourceType)}`, 'NOT r.deleted', ...compiled.where];
  if (scope.compartment) {
    where.push(`r.compartments @> ARRAY[${params.add(scope.compartment)}]::text[]`);
  }
  if (scope.filter) {
    where.push(scope.filter('r', params));
  }
  return { sql: `SELECT ${select} FROM resource r WHERE ${where.join(' AND ')}`, params, orderBy: compiled.orderBy };
}

export async function searchPage(
  q: Queryable,
  request: SearchRequest,
  options: { count: number; offset: number; baseUrl: string; scope?: SearchScope },
): Promise<SearchPage> {
  const { sql, params, orderBy } = buildQuery(request, options.baseUrl, options.scope ?? {}, 'r.id, r.content');
  const order = orderBy.length > 0 ? orderBy.join(', ') : 'r.id';
  const limit = params.add(options.count + 1);
  const offset = params.add(options.offset);
  const rows = await q.query<{ id: string; content: string }>(`${sql} ORDER BY ${order} LIMIT ${limit} OFFSET ${offset}`, params.values, {
    prepare: true,
  });
  return { rows: rows.slice(0, options.count), hasMore: rows.length > options.count };
}

export async function countMatches(q: Queryable, request: SearchRequest, baseUrl: string, scope: SearchScope = {}): Promise<number> {
  const { sql, params } = buildQuery(request, baseUrl, scope, 'count(*)::int AS n');
  const rows = await q.query<{ n: number }>(sql, params.values);
  return Number(rows[0].n);
}

export async function findResourceIds(q: Queryable, request: SearchRequest, limit: number, baseUrl: string): Promise<string[]> {
  const { sql, params } = buildQuery(request, baseUrl, {}, 'r.id');
  const rows = await q.query<{ id: string }>(`${sql} LIMIT ${params.add(limit)}`, params.values);
  return rows.map((r) => r.id);
}

export interface CompartmentQuery {
  compartment: string;
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
  const where = ['NOT r.deleted', `r.compartments @> ARRAY[${params.add(query.compartment)}]::text[]`];
  if (query.since) {
    where.push(`r.last_updated >= ${params.add(query.since)}::timestamptz`);
  }
  if (query.types.length > 0) {
    where.push(`r.res_type = ANY(${params.add(query.types)}::text[])`);
  }
  if (filter) {
    where.push(filter('r', params));
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
