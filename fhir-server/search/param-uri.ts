/**
 * Uri parameters (url, canonical, oid, uuid values; meta.profile and meta.source): matched exactly, or as a
 * prefix with `:below` ("the resource's uri starts with the value") and `:above` (the other way round).
 */
import { Operator, type Filter, type TypedValue } from '@medplum/core';
import { unescape } from './escape';
import type { IndexRows } from './index-rows';
import { indexMatch, orValues, unsupportedModifier, type FilterContext, type SearchType } from './search-type';

export const uriType: SearchType = {
  kind: 'uri',

  extract(code: string, values: TypedValue[], rows: IndexRows): void {
    for (const { value } of values) {
      if (typeof value === 'string' && value !== '') {
        rows.uri.push({ code, value });
      }
    }
  },

  compile(filter: Filter, ctx: FilterContext): string {
    let match: (t: string, v: string) => string;
    switch (filter.operator) {
      case Operator.EQUALS:
        match = (t, v) => `${t}.value = ${ctx.params.add(v)}`;
        break;
      case Operator.BELOW:
        match = (t, v) => `starts_with(${t}.value, ${ctx.params.add(v)})`;
        break;
      case Operator.ABOVE:
        match = (t, v) => `starts_with(${ctx.params.add(v)}::text, ${t}.value)`;
        break;
      default:
        throw unsupportedModifier(filter, 'uri');
    }
    return indexMatch(ctx, 'uri', filter.code, (t) =>
      orValues(filter)
        .map((v) => match(t, v))
        .join(' OR '),
    );
  },

  valueCondition(value: string, t: string, ctx: FilterContext): string {
    return `${t}.value = ${ctx.params.add(unescape(value))}`;
  },

  sort: {
    ascending: (t) => `min(${t}.value)`,
    descending: (t) => `max(${t}.value)`,
  },
};
