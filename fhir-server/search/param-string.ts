/**
 * String parameters: names, addresses and plain text, indexed both as written and normalised (lower case,
 * accents removed) for the default starts-with and `:contains` searches.
 */
import { Operator, type Filter, type TypedValue } from '@medplum/core';
import type { Address, HumanName } from '@medplum/fhirtypes';
import type { IndexRows, StringRow } from './index-rows';
import { unescape } from './escape';
import { escapeLike, normalizeString } from './normalize';
import { indexMatch, orValues, unsupportedModifier, type FilterContext, type SearchType } from './search-type';

export const stringType: SearchType = {
  kind: 'string',

  extract(code: string, values: TypedValue[], rows: IndexRows): void {
    for (const { type, value } of values) {
      if (type === 'HumanName') {
        const name = value as HumanName;
        pushAll(code, [name.family, ...(name.given ?? []), ...(name.prefix ?? []), ...(name.suffix ?? []), name.text], rows.string);
      } else if (type === 'Address') {
        const a = value as Address;
        pushAll(code, [...(a.line ?? []), a.city, a.district, a.state, a.postalCode, a.country, a.text], rows.string);
      } else if (typeof value === 'string') {
        pushAll(code, [value], rows.string);
      }
    }
  },

  compile(filter: Filter, ctx: FilterContext): string {
    const values = orValues(filter);
    let match: (t: string, v: string) => string;
    switch (filter.operator) {
      case Operator.EQUALS:
        match = (t, v) => `${t}.value_norm LIKE ${ctx.params.add(escapeLike(normalizeString(v)) + '%')}`;
        break;
      case Operator.EXACT:
        // The value_norm equality adds nothing to the result but lets the lookup index find the rows.
        match = (t, v) => `(${t}.value_norm = ${ctx.params.add(normalizeString(v))} AND ${t}.value = ${ctx.params.add(v)})`;
        break;
      case Operator.CONTAINS:
        match = (t, v) => `${t}.value_norm LIKE ${ctx.params.add('%' + escapeLike(normalizeString(v)) + '%')}`;
        break;
      default:
        throw unsupportedModifier(filter, 'string');
    }
    return indexMatch(ctx, 'string', filter.code, (t) => values.map((v) => match(t, v)).join(' OR '));
  },

  valueCondition(value: string, t: string, ctx: FilterContext): string {
    return `${t}.value_norm LIKE ${ctx.params.add(escapeLike(normalizeString(unescape(value))) + '%')}`;
  },

  sort: {
    ascending: (t) => `min(${t}.value_norm)`,
    descending: (t) => `max(${t}.value_norm)`,
  },
};

function pushAll(code: string, values: Array<string | undefined>, rows: StringRow[]): void {
  for (const value of values) {
    if (value) {
      rows.push({ code, value, valueNorm: normalizeString(value) });
    }
  }
}
