/**
 * Number parameters: decimals and integers, indexed with their implicit precision range. A search value's own
 * precision decides `eq` ("5.4" matches [5.35, 5.45)); the other prefixes compare the stored value exactly.
 */
import type { Filter, TypedValue } from '@medplum/core';
import { decimalRange, type DecimalRange } from './decimal';
import { unescape } from './escape';
import type { IndexRows } from './index-rows';
import { prefixedValues, splitPrefix, type Prefix } from './prefix';
import { indexMatch, invalidValue, orValues, unsupportedModifier, type FilterContext, type SearchType } from './search-type';

export const numberType: SearchType = {
  kind: 'number',

  extract(code: string, values: TypedValue[], rows: IndexRows): void {
    for (const { value } of values) {
      const range = typeof value === 'number' || typeof value === 'string' ? decimalRange(String(value)) : undefined;
      if (range) {
        rows.number.push({ code, ...range });
      }
    }
  },

  compile(filter: Filter, ctx: FilterContext): string {
    const values = prefixedValues(filter, orValues(filter)).map(({ prefix, value }) => ({
      prefix: requirePrefix(filter, prefix),
      range: requireDecimal(filter, value),
    }));
    return indexMatch(ctx, 'number', filter.code, (t) =>
      values.map(({ prefix, range }) => numberCondition(`${t}.value`, prefix, range, ctx)).join(' OR '),
    );
  },

  valueCondition(value: string, t: string, ctx: FilterContext, filter: Filter): string {
    const { prefix, value: number } = splitPrefix(unescape(value));
    return numberCondition(`${t}.value`, prefix, requireDecimal(filter, number), ctx);
  },

  sort: {
    ascending: (t) => `min(${t}.value)`,
    descending: (t) => `max(${t}.value)`,
  },
};

export function requirePrefix(filter: Filter, prefix: Prefix | undefined): Prefix {
  if (prefix === undefined) {
    throw unsupportedModifier(filter, 'number or quantity');
  }
  return prefix;
}

export function requireDecimal(filter: Filter, value: string): DecimalRange {
  const range = decimalRange(value);
  if (!range) {
    throw invalidValue(filter, `'${value}' is not a number`);
  }
  return range;
}

/** `column` (a numeric SQL expression) against a search value with its precision range. */
export function numberCondition(column: string, prefix: Prefix, range: DecimalRange, ctx: FilterContext): string {
  const p = (decimal: string) => `${ctx.params.add(decimal)}::numeric`;
  switch (prefix) {
    case 'eq':
      return `(${column} >= ${p(range.low)} AND ${column} < ${p(range.high)})`;
    case 'ne':
      return `NOT (${column} >= ${p(range.low)} AND ${column} < ${p(range.high)})`;
    case 'gt':
    case 'sa':
      return `${column} > ${p(range.value)}`;
    case 'lt':
    case 'eb':
      return `${column} < ${p(range.value)}`;
    case 'ge':
      return `${column} >= ${p(range.value)}`;
    case 'le':
      return `${column} <= ${p(range.value)}`;
    case 'ap': {
      // Within 10% of the search value.
      const v = p(range.value);
      return `${column} BETWEEN ${v} - abs(${v}) * 0.1 AND ${v} + abs(${v}) * 0.1`;
    }
  }
}
