/**
 * Read-time compilation: a parsed FHIR search (`parseSearchRequest` from @medplum/core) becomes SQL conditions and
 * sort keys over one row of the `resource` table. Every user value goes through `params.add`, never into the text.
 *
 * Each filter is one boolean (AND between repeated parameters, OR between comma-separated values inside it);
 * index lookups are correlated EXISTS subqueries, see `indexMatch` in search-type.ts for the measurement.
 */
import { Operator, type Filter, type SearchRequest } from '@medplum/core';
import type { SqlParams } from './index-rows';
import { compileChain } from './chain';
import { compileComposite, compositePresent, findCompositeParam } from './composite';
import { findIndexedParam, RESOURCE_COLUMN_PARAMS } from './indexed-params';
import { identifierCode } from './param-reference';
import { compileReverseChain } from './reverse-chain';
import { dateCondition, parseDateValues } from './param-date';
import { compileSort, type SortKey } from './sort';
import { indexMatch, invalidValue, orValues, unsupportedModifier, type FilterContext } from './search-type';

export interface CompileOptions {
  /** Alias of the `resource` table row in the enclosing query. */
  alias: string;
  /** This server's base URL, so that absolute references to it count as local. */
  baseUrl?: string;
  /**
   * Set when the page continues after a resource id (keyset paging by id): a parameter placeholder that index
   * lookups repeat on their own res_id, so that their range starts there (see `indexMatch`).
   */
  idAfter?: string;
  /** Told of every parameter the search uses, with the type it is used on (see used-params.ts). */
  onParam?: (resourceType: string, code: string) => void;
}

export interface CompiledSearch {
  /** Conditions to AND together. */
  where: string[];
  /** Sort keys, always ending with the id so that paging is stable within a type. */
  orderBy: SortKey[];
}

export function compileSearch(request: SearchRequest, params: SqlParams, options: CompileOptions): CompiledSearch {
  let aliasCount = 0;
  const ctx: FilterContext = {
    params,
    alias: options.alias,
    resourceType: request.resourceType,
    baseUrl: options.baseUrl,
    idAfter: options.idAfter === undefined ? undefined : { alias: options.alias, param: options.idAfter },
    nextAlias: () => `${options.alias}_${++aliasCount}`,
    onParam: options.onParam,
  };
  return {
    where: (request.filters ?? []).map((filter) => compileFilter(filter, ctx)),
    orderBy: compileSort(request.resourceType, request.sortRules ?? [], ctx),
  };
}

function compileFilter(filter: Filter, ctx: FilterContext): string {
  // `_has:` first: its inner parameter may itself be a chain with a dot.
  if (filter.code.startsWith('_has:')) {
    return compileReverseChain(filter, ctx, compileFilter);
  }
  if (filter.code.includes('.')) {
    return compileChain(filter, ctx, compileFilter);
  }
  ctx.onParam?.(ctx.resourceType, filter.code);
  const r = ctx.alias;
  if (filter.operator === Operator.MISSING) {
    return compileMissing(filter, ctx);
  }
  switch (filter.code) {
    case '_id': {
      const ids = `${r}.id = ANY(${ctx.params.add(orValues(filter))}::text[])`;
      if (filter.operator === Operator.EQUALS) {
        return ids;
      }
      if (filter.operator === Operator.NOT) {
        return `NOT (${ids})`;
      }
      throw unsupportedModifier(filter, 'token');
    }
    case '_lastUpdated': {
      // The resource's last_updated is an instant: a range with both ends at that moment.
      const column = `${r}.last_updated`;
      const conditions = parseDateValues(filter).map(({ prefix, range }) => dateCondition(column, column, prefix, range, ctx));
      return `(${conditions.join(' OR ')})`;
    }
    case '_compartment':
      // Maintained on the resource row (compartmentsOf), so this needs no index table.
      return `${r}.compartments && ${ctx.params.add(orValues(filter))}::text[]`;
  }
  const composite = findCompositeParam(ctx.resourceType, filter.code);
  if (composite) {
    return compileComposite(composite, filter, ctx);
  }
  return findIndexedParam(ctx.resourceType, filter.code).type.compile(filter, ctx);
}

/**
 * `:missing=true` matches resources without any value for the parameter, `:missing=false` those with one. A
 * reference counts as present with only an identifier.
 */
function compileMissing(filter: Filter, ctx: FilterContext): string {
  if (filter.value !== 'true' && filter.value !== 'false') {
    throw invalidValue(filter, ':missing takes true or false');
  }
  let present: string;
  if (RESOURCE_COLUMN_PARAMS.has(filter.code)) {
    present = 'true'; // every resource has an id and a lastUpdated
  } else {
    const composite = findCompositeParam(ctx.resourceType, filter.code);
    if (composite) {
      present = compositePresent(composite, ctx);
    } else {
      const { kind } = findIndexedParam(ctx.resourceType, filter.code).type;
      present = indexMatch(ctx, kind, filter.code);
      if (kind === 'reference') {
        present = `(${present} OR ${indexMatch(ctx, 'token', identifierCode(filter.code))})`;
      }
    }
  }
  return filter.value === 'true' ? `NOT ${present}` : present;
}
