/**
 * Parsing a search's query string. The filters on the type's own search parameters, R4 and stored at runtime
 * (and chains, `_has`), are parsed here (filter-parse.ts), as are `_include`/`_revinclude` (include-parse.ts);
 * everything else (result parameters, unknown names) goes to @medplum/core's parser. It reports most bad input as
 * an OperationOutcomeError, but throws a plain Error for some; those are the client's input too, so they become a
 * 400 rather than an internal error.
 */
import { OperationOutcomeError, parseSearchRequest, type Filter, type IncludeTarget, type SearchRequest } from '@medplum/core';
import { badRequest } from '../errors';
import { isFilterKey, parseFilter } from './filter-parse';
import { parseInclude } from './include-parse';

export function parseSearch(resourceType: string, query: Record<string, string[]>): SearchRequest {
  const rest: Record<string, string[]> = {};
  const filters: Filter[] = [];
  const include: IncludeTarget[] = [];
  const revInclude: IncludeTarget[] = [];
  for (const [key, values] of Object.entries(query)) {
    const name = key.split(':')[0];
    for (const value of values) {
      if (name === '_include' || name === '_revinclude') {
        (name === '_include' ? include : revInclude).push(parseInclude(key, value));
      } else if (isFilterKey(resourceType, key)) {
        filters.push(parseFilter(resourceType, key, value));
      } else {
        (rest[key] ??= []).push(value);
      }
    }
  }
  let request: SearchRequest;
  try {
    request = parseSearchRequest(resourceType, rest);
  } catch (err) {
    if (err instanceof OperationOutcomeError) {
      throw err;
    }
    throw badRequest(`The search could not be parsed: ${err instanceof Error ? err.message : String(err)}`);
  }
  return {
    ...request,
    filters: [...filters, ...(request.filters ?? [])],
    ...(include.length > 0 ? { include } : {}),
    ...(revInclude.length > 0 ? { revInclude } : {}),
  };
}

/** The parameters of a query string, repeated names kept, as the parser takes them. */
export function queryRecord(query: URLSearchParams): Record<string, string[]> {
  const record: Record<string, string[]> = {};
  for (const [name, value] of query) {
    (record[name] ??= []).push(value);
  }
  return record;
}
