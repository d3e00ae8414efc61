/**
 * Search over REST (FHIR R4 search.html): type, compartment and system-level searches, by GET or by POST
 * `_search` with a form body, answered as a searchset bundle with keyset paging links, `_total`, `_summary`,
 * `_elements`, and an OperationOutcome entry for the parameters it ignored.
 */
import { randomUUID } from 'node:crypto';
import type { Filter, SearchRequest } from '@medplum/core';
import type { BundleLink, OperationOutcomeIssue } from '@medplum/fhirtypes';
import { badRequest } from '../errors';
import type { SearchScope } from '../repository';
import { findSearchParameter, indexedParams, parseSearch, queryRecord, runtimeParamsUsed } from '../search';
import { searchsetBundle, type SearchEntry } from './bundles';
import { assertResourceType } from './interactions';
import { pageOf } from './paging';
import { subsetJson, subsetOf } from './subset';
import type { FhirRequest, FhirResponse, RouteContext } from './types';

/** Parameters answered from the resource row or the router, not from index rows; always supported. */
const BUILT_IN_PARAMS = new Set(['_id', '_lastUpdated', '_compartment']);

/** Result parameters this server does not implement: ignored (or a 400 under `handling=strict`), and reported. */
const UNSUPPORTED_RESULT_PARAMS: Record<string, string> = {
  _contained: 'contained resources are not searched separately; _contained is not supported',
  _containedType: 'contained resources are not searched separately; _containedType is not supported',
};

/**
 * Whether `code` is a parameter this server can search on `resourceType`: 'unknown' when nothing defines it,
 * 'unsupported' when R4 defines it as a special parameter (`_text`, `_content`, `_list`, `near`, …), which this
 * server does not index. Chains, `_has` and composites are left to the compiler, which answers them or says why not.
 */
function parameterSupport(resourceType: string, code: string): 'supported' | 'unknown' | 'unsupported' {
  if (BUILT_IN_PARAMS.has(code) || code.includes('.') || code.startsWith('_has') || indexedParams(resourceType).some((p) => p.code === code)) {
    return 'supported';
  }
  const definition = findSearchParameter(resourceType, code);
  if (!definition) {
    return 'unknown';
  }
  return definition.type === 'special' ? 'unsupported' : 'supported';
}

/** `Prefer: handling=strict` turns ignored parameters into a 400; lenient (the default) reports them. */
function strictHandling(request: FhirRequest): boolean {
  return /handling\s*=\s*strict/i.test(request.headers.prefer ?? '');
}

/**
 * Removes from the parsed search the parameters that are unknown or unsupported on every searched type, and
 * returns the warnings that say so; under strict handling they are a 400 instead.
 */
function dropIgnoredParameters(request: FhirRequest, search: SearchRequest, types: string[]): OperationOutcomeIssue[] {
  const issues: OperationOutcomeIssue[] = [];
  const kept: Filter[] = [];
  for (const filter of search.filters ?? []) {
    if (filter.code in UNSUPPORTED_RESULT_PARAMS) {
      continue; // reported below, as the result parameter it is
    }
    const support = types.map((type) => parameterSupport(type, filter.code));
    if (support.every((s) => s === 'supported')) {
      kept.push(filter);
      continue;
    }
    const which = types.length === 1 ? types[0] : `every one of ${types.join(', ')}`;
    const why = support.includes('unsupported') ? 'is not supported by this server' : 'is not a known search parameter';
    issues.push({
      severity: 'warning',
      code: support.includes('unsupported') ? 'not-supported' : 'not-found',
      diagnostics: `The parameter "${filter.code}" ${why} on ${which}; it was ignored`,
      expression: [filter.code],
    });
  }
  for (const [name, why] of Object.entries(UNSUPPORTED_RESULT_PARAMS)) {
    if (request.query.has(name)) {
      issues.push({ severity: 'warning', code: 'not-supported', diagnostics: `${why}; "${name}" was ignored`, expression: [name] });
    }
  }
  if (issues.length > 0 && strictHandling(request)) {
    const error = badRequest(issues[0].diagnostics as string);
    error.outcome.issue = issues.map((i) => ({ ...i, severity: 'error' }));
    throw error;
  }
  search.filters = kept;
  return issues;
}

/**
 * Warnings for the SearchParameters stored at runtime that the search uses while older resources of their type are
 * not reindexed with them yet: the answer may miss those resources, and says so rather than looking complete.
 */
async function notYetReindexed(ctx: RouteContext, search: SearchRequest, scope: SearchScope): Promise<OperationOutcomeIssue[]> {
  if (!ctx.reindexState) {
    return [];
  }
  const used = runtimeParamsUsed(search, scope.types);
  if (used.length === 0) {
    return [];
  }
  const pending = await ctx.reindexState.pending(used, ctx.session?.tx);
  return pending.map(({ resourceType, code, param }) => ({
    severity: 'warning',
    code: 'incomplete',
    diagnostics:
      `The search parameter "${code}" (SearchParameter/${param.id ?? '?'}) was stored or changed after some ${resourceType} resources were ` +
      `written, and no $reindex of ${resourceType} has finished since: those resources are not found by it yet, so the results may be incomplete`,
    expression: [code],
  }));
}

/** self, first and (when more follow) next. Next carries a keyset cursor instead of an offset. */
function searchLinks(selfUrl: URL, count: number, next: string | undefined): BundleLink[] {
  const first = new URL(selfUrl);
  first.searchParams.delete('_cursor');
  first.searchParams.delete('_offset');
  first.searchParams.set('_count', String(count));
  const links: BundleLink[] = [
    { relation: 'self', url: selfUrl.toString() },
    { relation: 'first', url: first.toString() },
  ];
  if (next !== undefined) {
    const nextUrl = new URL(first);
    nextUrl.searchParams.set('_cursor', next);
    links.push({ relation: 'next', url: nextUrl.toString() });
  }
  return links;
}

/**
 * Runs a parsed search and answers its bundle. `types` are the searched types (one for a type or compartment
 * search, the `_type` list or every type for a system search); `scope` holds what is not a search parameter.
 */
async function answer(
  ctx: RouteContext,
  request: FhirRequest,
  search: SearchRequest,
  types: string[],
  scope: SearchScope,
  selfUrl: URL,
): Promise<FhirResponse> {
  const issues = dropIgnoredParameters(request, search, types);
  const { count, offset } = pageOf(request.query, ctx);
  const cursor = request.query.get('_cursor') ?? undefined;
  const subset = subsetOf(request.query);
  const q = ctx.session?.tx;
  issues.push(...(await notYetReindexed(ctx, search, scope)));
  const outcomeEntry: SearchEntry[] =
    issues.length > 0
      ? [{ fullUrl: `urn:uuid:${randomUUID()}`, json: JSON.stringify({ resourceType: 'OperationOutcome', issue: issues }), mode: 'outcome' }]
      : [];

  // `_summary=count`, and `_count=0` (no page asked for): the number of matches alone.
  if (request.query.get('_summary') === 'count' || (count === 0 && search.total !== 'none')) {
    const total = await ctx.repo.count(search, scope, q);
    return { status: 200, body: searchsetBundle(outcomeEntry, [{ relation: 'self', url: selfUrl.toString() }], total) };
  }
  const page = await ctx.repo.search(search, { count, offset, cursor, scope }, q);
  let total: number | undefined;
  if (search.total === 'accurate') {
    total = await ctx.repo.count(search, scope, q);
  } else if (search.total === 'estimate') {
    total = await ctx.repo.estimate(search, scope, q);
  } else if (search.total !== 'none' && cursor === undefined && offset === 0 && page.next === undefined) {
    // The whole result is on this page: the total is known for free.
    total = page.rows.length;
  }
  const entries: SearchEntry[] = page.rows.map((row) => ({
    fullUrl: `${ctx.baseUrl}/${row.resourceType}/${row.id}`,
    json: subsetJson(row.content, subset),
    mode: 'match',
  }));
  const included = await ctx.repo.includes(search, page.rows, q);
  for (const row of included) {
    entries.push({ fullUrl: `${ctx.baseUrl}/${row.resourceType}/${row.id}`, json: subsetJson(row.content, subset), mode: 'include' });
  }
  entries.push(...outcomeEntry);
  return { status: 200, body: searchsetBundle(entries, searchLinks(selfUrl, count, page.next), total) };
}

/** `GET [type]?…`, `POST [type]/_search`, and compartment searches (`Patient/{id}/Observation?…`). */
export async function search(ctx: RouteContext, request: FhirRequest, type: string, scope: SearchScope = {}, path = type): Promise<FhirResponse> {
  await ctx.repo.refreshSearchParameters(ctx.session?.tx);
  const parsed = parseSearch(type, queryRecord(request.query));
  return answer(ctx, request, parsed, [type], scope, new URL(`${ctx.baseUrl}/${path}?${request.query}`));
}

/**
 * `GET [base]?_type=Patient,Observation&…` and `POST [base]/_search`: a search across the `_type` list (every
 * type when there is none), with the parameters all of them define — the common ones (`_id`, `_lastUpdated`,
 * `_tag`, `_profile`, `_security`, `_source`) and any other that every listed type has.
 */
export async function systemSearch(ctx: RouteContext, request: FhirRequest): Promise<FhirResponse> {
  const types = request.query
    .getAll('_type')
    .flatMap((t) => t.split(','))
    .map((t) => t.trim())
    .filter(Boolean);
  types.forEach(assertResourceType);
  await ctx.repo.refreshSearchParameters(ctx.session?.tx);
  // The parser needs one type to read prefixes and modifiers by; the common parameters read the same on all.
  const query = new URLSearchParams(request.query);
  query.delete('_type');
  const parsed = parseSearch(types[0] ?? 'Resource', queryRecord(query));
  for (const rule of parsed.sortRules ?? []) {
    const support = (types.length > 0 ? types : ['Resource']).map((type) => parameterSupport(type, rule.code));
    if (!support.every((s) => s === 'supported')) {
      throw badRequest(`Cannot sort by "${rule.code}": it is not a search parameter of every searched type`);
    }
  }
  return answer(ctx, request, parsed, types.length > 0 ? types : ['Resource'], { types }, new URL(`${ctx.baseUrl}?${request.query}`));
}
