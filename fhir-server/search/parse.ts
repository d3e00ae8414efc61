/**
 * Parsing a search's query string with @medplum/core. Its parser reports most bad input as an OperationOutcomeError,
 * but throws a plain Error for some (a composite parameter, for one); those are the client's input too, so they
 * become a 400 rather than an internal error.
 */
import { Operator, OperationOutcomeError, parseSearchRequest, type Filter, type SearchRequest } from '@medplum/core';
import { runtimeParams } from './indexed-params';
import { badRequest } from '../errors';

export function parseSearch(resourceType: string, query: Record<string, string[]>): SearchRequest {
  try {
    return parseWithRuntimeParams(resourceType, query);
  } catch (err) {
    if (err instanceof OperationOutcomeError) {
      throw err;
    }
    throw badRequest(`The search could not be parsed: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** The parameters of a query string, repeated names kept, as the parser takes them. */
export function queryRecord(query: URLSearchParams): Record<string, string[]> {
  const record: Record<string, string[]> = {};
  for (const [name, value] of query) {
    (record[name] ??= []).push(value);
  }
  return record;
}

/** Types whose values never carry a comparison prefix. */
const UNPREFIXED_TYPES: ReadonlySet<string> = new Set(['token', 'string', 'reference', 'uri']);

/**
 * The parser knows the R4 parameters only, and reads any other parameter's value starting with "eq", "ge", …
 * and a digit as prefixed. A parameter stored at runtime whose type takes no prefix (a token "ge2") is therefore
 * taken out of the query before parsing and made a filter here: the modifier, if any, is the operator.
 */
function parseWithRuntimeParams(resourceType: string, query: Record<string, string[]>): SearchRequest {
  const unprefixed = new Set(
    runtimeParams
      .forType(resourceType)
      .filter((p) => UNPREFIXED_TYPES.has(p.param.type))
      .map((p) => p.code),
  );
  if (unprefixed.size === 0) {
    return parseSearchRequest(resourceType, query);
  }
  const rest: Record<string, string[]> = {};
  const filters: Filter[] = [];
  for (const [name, values] of Object.entries(query)) {
    const [code, modifier] = name.split(':', 2);
    if (!unprefixed.has(code)) {
      rest[name] = values;
      continue;
    }
    for (const value of values) {
      filters.push({ code, operator: (modifier as Operator | undefined) ?? Operator.EQUALS, value });
    }
  }
  const request = parseSearchRequest(resourceType, rest);
  request.filters = [...(request.filters ?? []), ...filters];
  return request;
}
