/**
 * Reference parameters: Reference.reference values that name a resource on this server (`Type/id`, or an absolute
 * URL under this server's base, local-base.ts) are indexed as (target_type, target_id), which chaining and includes
 * join on; other absolute URLs, URNs and canonicals as target_url (absolute local ones keep their URL there too).
 * Reference.identifier is indexed as a token row under `{code}:identifier`, for the `:identifier` modifier.
 */
import { getSearchParameter, Operator, type Filter, type TypedValue } from '@medplum/core';
import type { Reference } from '@medplum/fhirtypes';
import { isR4ResourceType } from '../definitions';
import { unescape } from './escape';
import type { IndexRows } from './index-rows';
import { underLocalBase } from './local-base';
import { tokenCondition } from './param-token';
import {
  indexMatch,
  invalidValue,
  orValues,
  orValuesEscaped,
  unsupportedModifier,
  type FilterContext,
  type SearchType,
} from './search-type';

/** `Type/id`, optionally followed by `/_history/version`, which a search never distinguishes. */
const LOCAL_REFERENCE = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[^/]+)?$/;

/** A `:Type` modifier: filter-parse.ts keeps it as the filter's operator. */
const RESOURCE_TYPE = /^[A-Z][A-Za-z]+$/;

/** The index code of the identifiers in a reference parameter's References. */
export const identifierCode = (code: string) => `${code}:identifier`;

export function parseLocalReference(reference: string): { targetType: string; targetId: string } | undefined {
  const match = LOCAL_REFERENCE.exec(reference);
  return match ? { targetType: match[1], targetId: match[2] } : undefined;
}

export const referenceType: SearchType = {
  kind: 'reference',

  extract(code: string, values: TypedValue[], rows: IndexRows): void {
    for (const { type, value } of values) {
      if (type === 'Reference') {
        const { system, value: idValue } = (value as Reference).identifier ?? {};
        if (system !== undefined || idValue !== undefined) {
          rows.token.push({ code: identifierCode(code), system, value: idValue });
        }
      }
      // A Reference with only an identifier, or one to a contained resource (#id), has no target to index.
      const reference = type === 'Reference' ? (value as Reference).reference : typeof value === 'string' ? value : undefined;
      if (!reference || reference.startsWith('#')) {
        continue;
      }
      const local = parseLocalReference(reference);
      if (local) {
        // A canonical or uri written as "Type/id" keeps its text too, so that it is found both ways.
        rows.reference.push({ code, ...local, ...(type === 'Reference' ? {} : { targetUrl: reference }) });
        continue;
      }
      // An absolute URL under this server's base is a local reference too (joined on like one), and keeps its text.
      const path = underLocalBase(reference);
      const atBase = path === undefined ? undefined : parseLocalReference(path);
      rows.reference.push(atBase ? { code, ...atBase, targetUrl: reference } : { code, targetUrl: reference });
    }
  },

  compile(filter: Filter, ctx: FilterContext): string {
    if (filter.operator === Operator.IDENTIFIER) {
      // search.html: `subject:identifier=system|value` matches Reference.identifier, as a token.
      return indexMatch(ctx, 'token', identifierCode(filter.code), (t) =>
        orValuesEscaped(filter)
          .map((v) => tokenCondition(v, t, ctx))
          .join(' OR '),
      );
    }
    if (filter.operator === Operator.ABOVE || filter.operator === Operator.BELOW) {
      return canonicalHierarchy(filter, ctx);
    }
    let requiredType: string | undefined;
    if (RESOURCE_TYPE.test(filter.operator)) {
      if (!isR4ResourceType(filter.operator)) {
        throw invalidValue(filter, `':${filter.operator}' is not a FHIR R4 resource type`);
      }
      requiredType = filter.operator;
    } else if (filter.operator !== Operator.EQUALS) {
      throw unsupportedModifier(filter, 'reference');
    } else {
      // A parameter that can only point to one type (Observation.patient) names it, so that a bare id searches
      // the unique (target_id, target_type, res_id) index range, in resource-id order (migration 50).
      const targets = getSearchParameter(ctx.resourceType, filter.code)?.target;
      requiredType = targets?.length === 1 ? targets[0] : undefined;
    }
    return indexMatch(ctx, 'reference', filter.code, (t) =>
      orValues(filter)
        .map((value) => referenceCondition(t, value, requiredType, ctx))
        .join(' OR '),
    );
  },

  valueCondition(value: string, t: string, ctx: FilterContext): string {
    return referenceCondition(t, unescape(value), undefined, ctx);
  },

  // Sorted by the reference as written locally (`Type/id`), or its URL when it points elsewhere.
  sort: {
    ascending: (t) => `min(coalesce(${t}.target_type || '/' || ${t}.target_id, ${t}.target_url))`,
    descending: (t) => `max(coalesce(${t}.target_type || '/' || ${t}.target_id, ${t}.target_url))`,
  },
};

/**
 * `:below`/`:above` on canonical references, as on uri parameters: the stored URL starts with the value (`:below`,
 * so `questionnaire:below=http://x/Questionnaire/q` finds `…/q|1.0` and `…/q|2.0`), or the value starts with it
 * (`:above`). Only URLs are compared: a reference to a resource on this server has no hierarchy.
 */
function canonicalHierarchy(filter: Filter, ctx: FilterContext): string {
  return indexMatch(ctx, 'reference', filter.code, (t) =>
    orValues(filter)
      .map((v) =>
        filter.operator === Operator.BELOW
          ? `starts_with(${t}.target_url, ${ctx.params.add(v)})`
          : `starts_with(${ctx.params.add(v)}::text, ${t}.target_url)`,
      )
      .join(' OR '),
  );
}

function referenceCondition(t: string, value: string, requiredType: string | undefined, ctx: FilterContext): string {
  const p = (v: string) => ctx.params.add(v);
  const base = ctx.baseUrl?.replace(/\/+$/, '');
  const relative = base && value.startsWith(base + '/') ? value.slice(base.length + 1) : value;
  const local = parseLocalReference(relative);
  if (local) {
    const typeMatches = requiredType === undefined || requiredType === local.targetType;
    if (!typeMatches) {
      return 'false';
    }
    // One equality on the indexed (target_type, target_id): canonicals written as "Type/id" are indexed that way too.
    const byId = `(${t}.target_type = ${p(local.targetType)} AND ${t}.target_id = ${p(local.targetId)})`;
    // An absolute URL at this server's base may also be stored as written (the index does not know the base).
    return relative === value ? byId : `(${byId} OR ${t}.target_url = ${p(value)})`;
  }
  if (/^[A-Za-z0-9\-.]{1,64}$/.test(value)) {
    const byType = requiredType === undefined ? '' : ` AND ${t}.target_type = ${p(requiredType)}`;
    return `(${t}.target_id = ${p(value)}${byType})`;
  }
  return `${t}.target_url = ${p(value)}`;
}
