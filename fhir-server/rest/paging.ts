import { badRequest } from '../errors';
import type { RouteContext } from './types';

function nonNegativeInt(value: string | null, name: string): number | undefined {
  if (value === null || value === '') {
    return undefined;
  }
  if (!/^[0-9]+$/.test(value)) {
    throw badRequest(`${name} must be a non-negative integer, got "${value}"`);
  }
  return Number(value);
}

/** `_count` bounded by the server's maximum, and `_offset`. */
export function pageOf(query: URLSearchParams, ctx: RouteContext): { count: number; offset: number } {
  const count = nonNegativeInt(query.get('_count'), '_count') ?? ctx.defaultPageSize;
  const offset = nonNegativeInt(query.get('_offset'), '_offset') ?? 0;
  return { count: Math.min(count, ctx.maxPageSize), offset };
}

/** A FHIR instant or dateTime parameter such as `_since` or `_at`, checked. */
export function instantParam(query: URLSearchParams, name: string): string | undefined {
  const value = query.get(name);
  if (value === null || value === '') {
    return undefined;
  }
  if (!/^\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?)?)?$/.test(value) || Number.isNaN(Date.parse(value))) {
    throw badRequest(`${name} must be a FHIR instant such as 2024-01-31T08:00:00Z, got "${value}"`);
  }
  return value;
}
