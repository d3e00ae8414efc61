/**
 * Parsing a search's query string with @medplum/core. Its parser reports most bad input as an OperationOutcomeError,
 * but throws a plain Error for some (a composite parameter, for one); those are the client's input too, so they
 * become a 400 rather than an internal error.
 */
import { OperationOutcomeError, parseSearchRequest, type SearchRequest } from '@medplum/core';
import { badRequest } from '../errors';

export function parseSearch(resourceType: string, query: Record<string, string[]>): SearchRequest {
  try {
    return parseSearchRequest(resourceType, query);
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
