/**
 * Token parameters: codes, codings, identifiers, contact points and booleans, indexed as (system, value, display).
 */
import { Operator, type Filter, type TypedValue } from '@medplum/core';
import type { CodeableConcept, Coding, ContactPoint, Identifier } from '@medplum/fhirtypes';
import type { IndexRows, TokenRow } from './index-rows';
import { escapeLike, splitEscaped } from './normalize';
import { indexMatch, orValues, unsupportedModifier, type FilterContext, type SearchType } from './search-type';

export const tokenType: SearchType = {
  kind: 'token',

  extract(code: string, values: TypedValue[], rows: IndexRows): void {
    for (const { type, value } of values) {
      switch (type) {
        case 'Coding':
          pushCoding(code, value as Coding, rows.token);
          break;
        case 'CodeableConcept': {
          const concept = value as CodeableConcept;
          for (const coding of concept.coding ?? []) {
            pushCoding(code, coding, rows.token);
          }
          if (concept.text) {
            rows.token.push({ code, display: concept.text });
          }
          break;
        }
        case 'Identifier': {
          const { system, value: idValue } = value as Identifier;
          if (system !== undefined || idValue !== undefined) {
            rows.token.push({ code, system, value: idValue });
          }
          break;
        }
        case 'ContactPoint': {
          // ContactPoint.system is "phone"/"email", not a code system URI: a token search matches the value.
          const { value: contact } = value as ContactPoint;
          if (contact !== undefined) {
            rows.token.push({ code, value: contact });
          }
          break;
        }
        default:
          // Primitives: code, boolean, string, id, uri… (booleans become 'true'/'false').
          if (typeof value === 'string' || typeof value === 'boolean' || typeof value === 'number') {
            rows.token.push({ code, value: String(value) });
          }
      }
    }
  },

  compile(filter: Filter, ctx: FilterContext): string {
    switch (filter.operator) {
      case Operator.EQUALS:
        return indexMatch(ctx, 'token', filter.code, (t) => anyValue(filter, ctx, t));
      case Operator.NOT:
        // :not matches resources that have no matching token, including those with no value at all.
        return `NOT ${indexMatch(ctx, 'token', filter.code, (t) => anyValue(filter, ctx, t))}`;
      case Operator.TEXT:
        return indexMatch(ctx, 'token', filter.code, (t) =>
          orValues(filter)
            .map((v) => `lower(${t}.display) LIKE ${ctx.params.add(escapeLike(v.toLowerCase()) + '%')}`)
            .join(' OR '),
        );
      default:
        throw unsupportedModifier(filter, 'token');
    }
  },

  sort: {
    ascending: (t) => `min(${t}.value)`,
    descending: (t) => `max(${t}.value)`,
  },
};

function pushCoding(code: string, coding: Coding, rows: TokenRow[]): void {
  if (coding.system !== undefined || coding.code !== undefined || coding.display !== undefined) {
    rows.push({ code, system: coding.system, value: coding.code, display: coding.display });
  }
}

/** `code`, `system|code`, `|code` (no system) and `system|` (any code in the system), OR'ed. */
function anyValue(filter: Filter, ctx: FilterContext, t: string): string {
  return orValues(filter)
    .map((v) => {
      const parts = splitEscaped(v, '|');
      if (parts.length === 1) {
        return `${t}.value = ${ctx.params.add(parts[0])}`;
      }
      const [system, value] = [parts[0], parts.slice(1).join('|')];
      if (system === '') {
        return `(${t}.system IS NULL AND ${t}.value = ${ctx.params.add(value)})`;
      }
      if (value === '') {
        return `${t}.system = ${ctx.params.add(system)}`;
      }
      return `(${t}.system = ${ctx.params.add(system)} AND ${t}.value = ${ctx.params.add(value)})`;
    })
    .join(' OR ');
}
