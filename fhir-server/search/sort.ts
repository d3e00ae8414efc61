/**
 * `_sort` keys: `_id` and `_lastUpdated` from the resource row, other parameters from their index rows — the
 * smallest value when ascending, the largest when descending (the value that puts the resource first), as a
 * correlated subquery. Resources without a value sort last either way.
 */
import { badRequest, OperationOutcomeError, type SortRule } from '@medplum/core';
import { findIndexedParam } from './indexed-params';
import { INDEX_TABLES, type FilterContext } from './search-type';

export function compileSort(resourceType: string, rules: SortRule[], ctx: FilterContext): string[] {
  const r = ctx.alias;
  const keys: string[] = [];
  let sortedById = false;
  for (const { code, descending } of rules) {
    const direction = descending ? 'DESC' : 'ASC';
    if (code === '_id') {
      keys.push(`${r}.id ${direction}`);
      sortedById = true;
      continue;
    }
    if (code === '_lastUpdated') {
      keys.push(`${r}.last_updated ${direction}`);
      continue;
    }
    const { type } = findIndexedParam(resourceType, code);
    if (!type.sort) {
      throw new OperationOutcomeError(badRequest(`Cannot sort by '${code}': ${type.kind} parameters are not sortable`, code));
    }
    const t = ctx.nextAlias();
    const aggregate = descending ? type.sort.descending(t) : type.sort.ascending(t);
    keys.push(
      `(SELECT ${aggregate} FROM ${INDEX_TABLES[type.kind]} ${t} WHERE ${t}.res_type = ${r}.res_type AND ${t}.res_id = ${r}.id` +
        ` AND ${t}.code = ${ctx.params.add(code)}) ${direction} NULLS LAST`,
    );
  }
  // Ids are unique within a type; the type makes the key unique across types too, so paging is stable.
  if (!sortedById) {
    keys.push(`${r}.id ASC`);
  }
  keys.push(`${r}.res_type ASC`);
  return keys;
}
