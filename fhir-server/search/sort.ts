/**
 * `_sort` keys: `_id` and `_lastUpdated` from the resource row, other parameters from their index rows — the
 * smallest value when ascending, the largest when descending (the value that puts the resource first), as a
 * correlated subquery. Resources without a value sort last either way.
 *
 * Each key is returned with its SQL type and whether it can be NULL, so that keyset paging
 * (repository/search-sql.ts) can carry the last row's key values in a cursor and continue after them.
 */
import { badRequest, OperationOutcomeError, type SortRule } from '@medplum/core';
import { findIndexedParam } from './indexed-params';
import { INDEX_TABLES, type FilterContext, type IndexKind } from './search-type';

export type SortSqlType = 'text' | 'timestamptz' | 'numeric';

export interface SortKey {
  /** A SQL expression over the resource alias; its parameters are already bound, so reuse the text as it is. */
  expr: string;
  descending: boolean;
  sqlType: SortSqlType;
  /** Resources without a value have NULL here and sort last. */
  nullable: boolean;
}

/** What each index table's sort aggregate yields (see each type's `sort`). */
const SORT_SQL_TYPES: Record<IndexKind, SortSqlType> = {
  token: 'text',
  string: 'text',
  date: 'timestamptz',
  number: 'numeric',
  quantity: 'numeric',
  reference: 'text',
  uri: 'text',
};

/** The sort keys of `rules`, ending with the id unless the client sorted by it (ids are unique within a type). */
export function compileSort(resourceType: string, rules: SortRule[], ctx: FilterContext): SortKey[] {
  const r = ctx.alias;
  const keys: SortKey[] = [];
  let sortedById = false;
  for (const { code, descending = false } of rules) {
    if (code === '_id') {
      keys.push({ expr: `${r}.id`, descending, sqlType: 'text', nullable: false });
      sortedById = true;
      break; // ids are unique: any later key could never decide anything
    }
    if (code === '_lastUpdated') {
      keys.push({ expr: `${r}.last_updated`, descending, sqlType: 'timestamptz', nullable: false });
      continue;
    }
    ctx.onParam?.(resourceType, code);
    const { type } = findIndexedParam(resourceType, code);
    if (!type.sort) {
      throw new OperationOutcomeError(badRequest(`Cannot sort by '${code}': ${type.kind} parameters are not sortable`, code));
    }
    const t = ctx.nextAlias();
    const aggregate = descending ? type.sort.descending(t) : type.sort.ascending(t);
    keys.push({
      expr:
        `(SELECT ${aggregate} FROM ${INDEX_TABLES[type.kind]} ${t} WHERE ${t}.res_type = ${r}.res_type AND ${t}.res_id = ${r}.id` +
        ` AND ${t}.code = ${ctx.params.add(code)})`,
      descending,
      sqlType: SORT_SQL_TYPES[type.kind],
      nullable: true,
    });
  }
  if (!sortedById) {
    keys.push({ expr: `${r}.id`, descending: false, sqlType: 'text', nullable: false });
  }
  return keys;
}

/** `ORDER BY` terms for `keys`. */
export function orderByClause(keys: SortKey[]): string {
  return keys.map((k) => `${k.expr} ${k.descending ? 'DESC' : 'ASC'}${k.nullable ? ' NULLS LAST' : ''}`).join(', ');
}
