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
        const range = periodRange(value as Period);
        if (range) {
          rows.date.push({ code, ...range });
        }
      } else if (type === 'Timing') {
        const range = timingRange(value as Timing);
        if (range) {
          rows.date.push({ code, ...range });
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
    return dateCondition(`${t}.low`, `${t}.high`, prefix, searchRange(filter, date), ctx);
  },

  sort: {
    ascending: (t) => `min(${t}.low)`,
    descending: (t) => `max(${t}.high)`,
  },
};

/** A Period's range; a missing end is open (an ongoing period reaches into the far future). */
function periodRange({ start, end }: Period): InstantRange | undefined {
  if (start === undefined && end === undefined) {
    return undefined;
  }
  const low = start === undefined ? FAR_PAST : instantRange(start)?.low;
  const high = end === undefined ? FAR_FUTURE : instantRange(end)?.high;
  return low !== undefined && high !== undefined ? { low, high } : undefined;
}

/**
 * A Timing is one range from its first to its last occurrence (search.html, "date"): its events and its
 * repeat.boundsPeriod together, not each event on its own, so that `eq` asks for the whole schedule inside.
 */
function timingRange(timing: Timing): InstantRange | undefined {
  const ranges = (timing.event ?? []).map((e) => instantRange(e));
  const bounds = timing.repeat?.boundsPeriod;
  if (bounds) {
    ranges.push(periodRange(bounds));
  }
  const known = ranges.filter((r): r is InstantRange => r !== undefined);
  if (known.length === 0) {
    return undefined;
  }
  // ISO instants of one format sort as text.
  return {
    low: known.map((r) => r.low).reduce((a, b) => (b < a ? b : a)),
    high: known.map((r) => r.high).reduce((a, b) => (b > a ? b : a)),
  };
}

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
    return { prefix, range: searchRange(filter, value) };
  });
}

/**
 * A search value's range. A '+' time zone that reached us as a space ("2024-03-01T10:00:00 08:00": the client did
 * not percent-encode the '+', and query strings decode it as a space) is read as the '+' it was meant to be.
 */
function searchRange(filter: Filter, value: string): InstantRange {
  const range = instantRange(value.replace(/T([\d:.]+) (\d{2}:\d{2})$/, 'T$1+$2'));
  if (!range) {
    throw invalidValue(filter, `'${value}' is not a FHIR date or dateTime`);
  }
  return range;
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
