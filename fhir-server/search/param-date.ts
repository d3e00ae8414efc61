/**
 * Date parameters: date, dateTime, instant, Period and Timing values, each indexed as the instant range it
 * covers (see instant.ts), and searched with the FHIR R4 range semantics of the comparison prefixes.
 */
import { type Filter, type TypedValue } from '@medplum/core';
import type { Period, Timing } from '@medplum/fhirtypes';
import { unescape } from './escape';
import type { IndexRows } from './index-rows';
import { FAR_FUTURE, FAR_PAST, instantRange, toIso, type InstantRange } from './instant';
import { prefixedValues, splitPrefix, type Prefix } from './prefix';
import { indexMatch, invalidValue, orValues, unsupportedModifier, type FilterContext, type SearchType } from './search-type';

export const dateType: SearchType = {
  kind: 'date',

  extract(code: string, values: TypedValue[], rows: IndexRows): void {
    for (const { type, value } of values) {
      if (type === 'Period') {
        const { start, end } = value as Period;
        const low = start === undefined ? FAR_PAST : instantRange(start)?.low;
        const high = end === undefined ? FAR_FUTURE : instantRange(end)?.high;
        if (low !== undefined && high !== undefined && (start !== undefined || end !== undefined)) {
          rows.date.push({ code, low, high });
        }
      } else if (type === 'Timing') {
        for (const event of (value as Timing).event ?? []) {
          pushInstant(code, event, rows);
        }
      } else if (typeof value === 'string') {
        pushInstant(code, value, rows);
      }
    }
  },

  compile(filter: Filter, ctx: FilterContext): string {
    const conditions = parseDateValues(filter);
    return indexMatch(ctx, 'date', filter.code, (t) =>
      conditions.map(({ prefix, range }) => dateCondition(`${t}.low`, `${t}.high`, prefix, range, ctx)).join(' OR '),
    );
  },

  valueCondition(value: string, t: string, ctx: FilterContext, filter: Filter): string {
    const { prefix, value: date } = splitPrefix(unescape(value));
    const range = instantRange(date);
    if (!range) {
      throw invalidValue(filter, `'${date}' is not a FHIR date or dateTime`);
    }
    return dateCondition(`${t}.low`, `${t}.high`, prefix, range, ctx);
  },

  sort: {
    ascending: (t) => `min(${t}.low)`,
    descending: (t) => `max(${t}.high)`,
  },
};

function pushInstant(code: string, value: string, rows: IndexRows): void {
  const range = instantRange(value);
  if (range) {
    rows.date.push({ code, ...range });
  }
}

/** The filter's OR'ed values as prefixed instant ranges; a bad date is a 400. */
export function parseDateValues(filter: Filter): Array<{ prefix: Prefix; range: InstantRange }> {
  return prefixedValues(filter, orValues(filter)).map(({ prefix, value }) => {
    if (prefix === undefined) {
      throw unsupportedModifier(filter, 'date');
    }
    const range = instantRange(value);
    if (!range) {
      throw invalidValue(filter, `'${value}' is not a FHIR date or dateTime`);
    }
    return { prefix, range };
  });
}

/**
 * FHIR R4 search.html, "prefixes": the target range [low, high] (SQL expressions) against the search range.
 * `ap` widens the search range by 10% of its distance from now on each side, then asks for overlap.
 */
export function dateCondition(low: string, high: string, prefix: Prefix, range: InstantRange, ctx: FilterContext): string {
  const p = (instant: string) => `${ctx.params.add(instant)}::timestamptz`;
  const contained = () => `(${low} >= ${p(range.low)} AND ${high} <= ${p(range.high)})`;
  switch (prefix) {
    case 'eq':
      return contained();
    case 'ne':
      return `NOT ${contained()}`;
    case 'gt':
      return `${high} > ${p(range.high)}`;
    case 'lt':
      return `${low} < ${p(range.low)}`;
    case 'ge':
      return `(${high} > ${p(range.high)} OR ${contained()})`;
    case 'le':
      return `(${low} < ${p(range.low)} OR ${contained()})`;
    case 'sa':
      return `${low} > ${p(range.high)}`;
    case 'eb':
      return `${high} < ${p(range.low)}`;
    case 'ap': {
      const now = Date.now();
      const lowMs = Date.parse(range.low);
      const highMs = Date.parse(range.high);
      const wideLow = toIso(lowMs - Math.abs(now - lowMs) * 0.1);
      const wideHigh = toIso(highMs + Math.abs(now - highMs) * 0.1);
      return `(${low} <= ${p(wideHigh)} AND ${high} >= ${p(wideLow)})`;
    }
  }
}
