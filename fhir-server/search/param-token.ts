/**
 * Token parameters: codes, codings, identifiers, contact points and booleans, indexed as (system, value, display).
 *
 * An Identifier with a type also gets, per type coding, a row under `{code}:of-type` (system and code of the
 * type) in the same group as its own row, for `identifier:of-type=type-system|type-code|value`.
 */
import { Operator, type Filter, type TypedValue } from '@medplum/core';
import type { CodeableConcept, Coding, ContactPoint, Identifier } from '@medplum/fhirtypes';
import { splitEscaped, splitUnescaped, unescape } from './escape';
import { newGroup, type IndexRows, type TokenRow } from './index-rows';
import { escapeLike, normalizeString } from './normalize';
import {
  indexMatch,
  invalidValue,
  orValues,
  orValuesEscaped,
  unsupportedModifier,
  type FilterContext,
  type SearchType,
} from './search-type';

/** The index code of an Identifier's type codings, beside the parameter's own rows. */
export const ofTypeCode = (code: string) => `${code}:of-type`;

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
            rows.token.push({ code, display: normalizeString(concept.text) });
          }
          break;
        }
        case 'Identifier':
          pushIdentifier(code, value as Identifier, rows);
          break;
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
        // search.html: :not matches resources that have no matching token, including those with no value at all.
        return `NOT ${indexMatch(ctx, 'token', filter.code, (t) => anyValue(filter, ctx, t))}`;
      case Operator.TEXT:
        // Coding.display, CodeableConcept.text and Identifier.type.text that start with the text, compared as a
        // string search's default compares (both sides lower-cased, accents removed: normalize.ts).
        return indexMatch(ctx, 'token', filter.code, (t) =>
          orValues(filter)
            .map((v) => `${t}.display LIKE ${ctx.params.add(escapeLike(normalizeString(v)) + '%')}`)
            .join(' OR '),
        );
      case Operator.OF_TYPE:
        return ofType(filter, ctx);
      case Operator.IN:
      case Operator.NOT_IN:
      case Operator.ABOVE:
      case Operator.BELOW:
        throw unsupportedModifier(filter, 'token', 'it needs a terminology service, which this server does not have yet');
      default:
        throw unsupportedModifier(filter, 'token');
    }
  },

  valueCondition(value: string, t: string, ctx: FilterContext): string {
    return tokenCondition(value, t, ctx);
  },

  sort: {
    ascending: (t) => `min(${t}.value)`,
    descending: (t) => `max(${t}.value)`,
  },
};

function pushCoding(code: string, coding: Coding, rows: TokenRow[]): void {
  if (coding.system !== undefined || coding.code !== undefined || coding.display !== undefined) {
    rows.push({ code, system: coding.system, value: coding.code, display: coding.display === undefined ? undefined : normalizeString(coding.display) });
  }
}

function pushIdentifier(code: string, identifier: Identifier, rows: IndexRows): void {
  const { system, value, type } = identifier;
  if (system === undefined && value === undefined) {
    return;
  }
  // Identifier.type.text is what `:text` searches on an identifier (search.html).
  const display = type?.text ? normalizeString(type.text) : undefined;
  const typeCodings = (type?.coding ?? []).filter((c) => c.code !== undefined);
  if (typeCodings.length === 0) {
    rows.token.push({ code, system, value, display });
    return;
  }
  // The ordinary row serves every other search; the grouped copy ties the value to this Identifier's type codings
  // for :of-type, which alone reads grouped rows (search-type.ts, indexMatch).
  rows.token.push({ code, system, value, display });
  const group = newGroup(rows);
  rows.token.push({ code, system, value, group });
  for (const coding of typeCodings) {
    rows.token.push({ code: ofTypeCode(code), system: coding.system, value: coding.code, group });
  }
}

/** `code`, `system|code`, `|code` (no system) and `system|` (any code in the system), OR'ed. */
function anyValue(filter: Filter, ctx: FilterContext, t: string): string {
  return orValuesEscaped(filter)
    .map((v) => tokenCondition(v, t, ctx))
    .join(' OR ');
}

/** One token value (escapes kept) against the index alias `t`. */
export function tokenCondition(escaped: string, t: string, ctx: FilterContext): string {
  const parts = splitUnescaped(escaped, '|');
  if (parts.length === 1) {
    return `${t}.value = ${ctx.params.add(unescape(parts[0]))}`;
  }
  // Only the first bare `|` separates; an escaped one belongs to the system or code.
  const system = unescape(parts[0]);
  const value = unescape(parts.slice(1).join('|'));
  if (system === '') {
    return `(${t}.system IS NULL AND ${t}.value = ${ctx.params.add(value)})`;
  }
  if (value === '') {
    return `${t}.system = ${ctx.params.add(system)}`;
  }
  return `(${t}.system = ${ctx.params.add(system)} AND ${t}.value = ${ctx.params.add(value)})`;
}

/**
 * `identifier:of-type=type-system|type-code|value`: an Identifier whose type has that coding and whose value is
 * that value, both from the same Identifier (the rows share a group).
 */
function ofType(filter: Filter, ctx: FilterContext): string {
  return orValuesEscaped(filter)
    .map((v) => {
      const parts = splitEscaped(v, '|');
      if (parts.length !== 3 || parts.some((p) => p === '')) {
        throw invalidValue(filter, ':of-type takes type-system|type-code|value');
      }
      const [typeSystem, typeCode, value] = parts;
      // From the identifier's value, which is selective, to its type codings (which are not: most are MR).
      return indexMatch(ctx, 'token', filter.code, (k) => {
        const t = ctx.nextAlias();
        return (
          `${k}.value = ${ctx.params.add(value)} AND EXISTS (SELECT 1 FROM search_token ${t}` +
          ` WHERE ${t}.res_type = ${k}.res_type AND ${t}.res_id = ${k}.res_id AND ${t}.grp = ${k}.grp AND ${t}.code = ${ctx.params.add(ofTypeCode(filter.code))}` +
          ` AND ${t}.system = ${ctx.params.add(typeSystem)} AND ${t}.value = ${ctx.params.add(typeCode)})`
        );
      }, 'grouped');
    })
    .join(' OR ');
}
