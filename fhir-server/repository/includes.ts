/**
 * `_include` and `_revinclude` (with `:iterate`, and `*` for every reference parameter), resolved through the
 * `search_reference` index as joins, so that a page's included resources cost one query per include parameter and
 * round, not one per resource.
 */
import type { IncludeTarget } from '@medplum/core';
import { SqlParams, type Queryable } from '../db';
import { isR4ResourceType } from '../definitions';
import { badRequest } from '../errors';
import { ALL_REFERENCE_PARAMS, findSearchParameter } from '../search';
import type { ResourceKey } from './references';
import type { RowFilter } from './search-sql';

/** The caller's read filter as ` AND …` on the resource alias `r`, its values appended to `params`. */
function filtered(params: unknown[], filter: RowFilter | undefined, types?: readonly string[]): string {
  if (!filter) {
    return '';
  }
  const sqlParams = new SqlParams();
  sqlParams.values.push(...params);
  const condition = filter('r', sqlParams, types);
  params.splice(0, params.length, ...sqlParams.values);
  return ` AND ${condition}`;
}

export interface IncludedRow extends ResourceKey {
  content: string;
}

/** How many rounds `:iterate` may take; each round follows the references of what the last one added. */
const MAX_ITERATIONS = 4;
/** Most resources one page may include, so that `_revinclude` on a popular target stays bounded. */
const MAX_INCLUDED = 5000;

function checkReferenceParam(target: IncludeTarget, kind: string): void {
  if (target.searchParam === ALL_REFERENCE_PARAMS) {
    if (target.resourceType !== ALL_REFERENCE_PARAMS && !isR4ResourceType(target.resourceType)) {
      throw badRequest(`${kind}=${target.resourceType}:*: '${target.resourceType}' is not a FHIR R4 resource type`);
    }
    return;
  }
  // A reference parameter stored at runtime is included through like an R4 one.
  const param = findSearchParameter(target.resourceType, target.searchParam);
  if (!param || param.type !== 'reference') {
    throw badRequest(`${kind}=${target.resourceType}:${target.searchParam}: ${target.resourceType} has no reference search parameter "${target.searchParam}"`);
  }
}

/**
 * The conditions on `search_reference s` that a target adds beside the join: the source type and parameter, unless
 * `*` stands for any; and, for `_include`, the target type when it is named.
 */
function targetConditions(target: IncludeTarget, params: unknown[], withTargetType: boolean): string {
  const conditions: string[] = [];
  const add = (sql: string, value: unknown) => {
    params.push(value);
    conditions.push(` AND ${sql} $${params.length}`);
  };
  if (target.resourceType !== ALL_REFERENCE_PARAMS) {
    add('s.res_type =', target.resourceType);
  }
  if (target.searchParam !== ALL_REFERENCE_PARAMS) {
    add('s.code =', target.searchParam);
  }
  if (withTargetType && target.targetType) {
    add('s.target_type =', target.targetType);
  }
  return conditions.join('');
}

/** Resources the `keys` refer to through `target` (an `_include`). */
async function forward(q: Queryable, keys: ResourceKey[], target: IncludeTarget, filter?: RowFilter): Promise<IncludedRow[]> {
  const sources = target.resourceType === ALL_REFERENCE_PARAMS ? keys : keys.filter((k) => k.resourceType === target.resourceType);
  if (sources.length === 0) {
    return [];
  }
  const params: unknown[] = [sources.map((k) => k.resourceType), sources.map((k) => k.id)];
  const conditions = targetConditions(target, params, true);
  const access = filtered(params, filter, target.targetType ? [target.targetType] : undefined);
  params.push(MAX_INCLUDED);
  const rows = await q.query<{ res_type: string; id: string; content: string }>(
    `SELECT DISTINCT r.res_type, r.id, r.content FROM search_reference s
     JOIN unnest($1::text[], $2::text[]) AS k(t, i) ON s.res_type = k.t AND s.res_id = k.i
     JOIN resource r ON r.res_type = s.target_type AND r.id = s.target_id AND NOT r.deleted
     WHERE true${conditions}${access}
     LIMIT $${params.length}`,
    params,
    { prepare: true },
  );
  return rows.map((r) => ({ resourceType: r.res_type, id: r.id, content: r.content }));
}

/** Resources of `target.resourceType` that refer to the `keys` through `target.searchParam` (a `_revinclude`). */
async function reverse(q: Queryable, keys: ResourceKey[], target: IncludeTarget, filter?: RowFilter): Promise<IncludedRow[]> {
  if (keys.length === 0) {
    return [];
  }
  const params: unknown[] = [keys.map((k) => k.resourceType), keys.map((k) => k.id)];
  const conditions = targetConditions(target, params, false);
  const access = filtered(params, filter, target.resourceType === ALL_REFERENCE_PARAMS ? undefined : [target.resourceType]);
  params.push(MAX_INCLUDED);
  const rows = await q.query<{ res_type: string; id: string; content: string }>(
    `SELECT DISTINCT r.res_type, r.id, r.content FROM search_reference s
     JOIN unnest($1::text[], $2::text[]) AS k(t, i) ON s.target_type = k.t AND s.target_id = k.i
     JOIN resource r ON r.res_type = s.res_type AND r.id = s.res_id AND NOT r.deleted
     WHERE true${conditions}${access}
     LIMIT $${params.length}`,
    params,
    { prepare: true },
  );
  return rows.map((r) => ({ resourceType: r.res_type, id: r.id, content: r.content }));
}

/**
 * The resources that `_include`/`_revinclude` add to a page of matches, each once and none that is already a
 * match.
 */
export async function resolveIncludes(
  q: Queryable,
  matches: ResourceKey[],
  include: IncludeTarget[] = [],
  revInclude: IncludeTarget[] = [],
  filter?: RowFilter,
): Promise<IncludedRow[]> {
  include.forEach((t) => checkReferenceParam(t, '_include'));
  revInclude.forEach((t) => checkReferenceParam(t, '_revinclude'));
  const seen = new Set(matches.map((k) => `${k.resourceType}/${k.id}`));
  const added: IncludedRow[] = [];
  let frontier = matches;
  for (let round = 0; round < MAX_ITERATIONS && frontier.length > 0; round++) {
    // The first round applies every include to the matches; later rounds only the `:iterate` ones, to what was just added.
    const forwardTargets = round === 0 ? include : include.filter((t) => t.modifier === 'iterate');
    const reverseTargets = round === 0 ? revInclude : revInclude.filter((t) => t.modifier === 'iterate');
    const found: IncludedRow[] = [];
    for (const target of forwardTargets) {
      found.push(...(await forward(q, frontier, target, filter)));
    }
    for (const target of reverseTargets) {
      found.push(...(await reverse(q, frontier, target, filter)));
    }
    const fresh = found.filter((row) => {
      const k = `${row.resourceType}/${row.id}`;
      if (seen.has(k)) {
        return false;
      }
      seen.add(k);
      return true;
    });
    added.push(...fresh);
    frontier = fresh;
    if (added.length >= MAX_INCLUDED) {
      break;
    }
  }
  return added;
}
