/**
 * Read-time compilation: a parsed FHIR search (`parseSearchRequest` from @medplum/core) becomes SQL conditions and
 * sort keys over one row of the `resource` table. Every user value goes through `params.add`, never into the text.
 *
 * Each filter is one boolean (AND between repeated parameters, OR between comma-separated values inside it);
 * index lookups are correlated EXISTS subqueries, see `indexMatch` in search-type.ts for the measurement.
 */
import { Operator, type Filter, type SearchRequest } from '@medplum/core';
import type { SqlParams } from './index-rows';
import { findIndexedParam } from './indexed-params';
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
  };
  return {
    where: (request.filters ?? []).map((filter) => compileFilter(filter, ctx)),
    orderBy: compileSort(request.resourceType, request.sortRules ?? [], ctx),
  };
}

function compileFilter(filter: Filter, ctx: FilterContext): string {
  const r = ctx.alias;
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
  const indexed = findIndexedParam(ctx.resourceType, filter.code);
  if (filter.operator === Operator.MISSING) {
    if (filter.value !== 'true' && filter.value !== 'false') {
      throw invalidValue(filter, ':missing takes true or false');
    }
    const present = indexMatch(ctx, indexed.type.kind, filter.code);
    return filter.value === 'true' ? `NOT ${present}` : present;
  }
  return indexed.type.compile(filter, ctx);
}
