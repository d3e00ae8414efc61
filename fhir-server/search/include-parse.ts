/**
 * `_include` and `_revinclude` values: `Source:param[:TargetType]`, with `:iterate` on the name. `*` stands for
 * every reference parameter: `Source:*` of that type, and a bare `*` (as search.html writes it) of the type the
 * include applies to, resolved in repository/includes.ts.
 */
import { Operator, type IncludeTarget } from '@medplum/core';
import { searchError } from './search-type';

export const ALL_REFERENCE_PARAMS = '*';

export function parseInclude(key: string, value: string): IncludeTarget {
  const modifier = key.includes(':') ? key.slice(key.indexOf(':') + 1) : undefined;
  if (modifier !== undefined && modifier !== 'iterate') {
    throw searchError(`${key}: the only modifier of _include and _revinclude is :iterate`);
  }
  const iterate = modifier === 'iterate' ? { modifier: Operator.ITERATE } : {};
  if (value === ALL_REFERENCE_PARAMS) {
    return { resourceType: ALL_REFERENCE_PARAMS, searchParam: ALL_REFERENCE_PARAMS, ...iterate };
  }
  const parts = value.split(':');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === '')) {
    throw searchError(`Invalid ${key} value '${value}': expected ResourceType:search-parameter[:TargetType], or *`);
  }
  const [resourceType, searchParam, targetType] = parts;
  return { resourceType, searchParam, ...(targetType ? { targetType } : {}), ...iterate };
}
