/**
 * Which SearchParameters stored at runtime a search uses, wherever it uses them: as a filter, a chain's link or
 * last parameter, a `_has` link, a sort key, an `_include`/`_revinclude`. The search is compiled once more for
 * this (compiling costs microseconds), with a listener the compiler tells of every parameter and the type it is
 * used on, so that chains resolve their types exactly as the search itself does.
 */
import type { SearchRequest } from '@medplum/core';
import type { SearchParameter } from '@medplum/fhirtypes';
import { compileSearch } from './compile';
import { SqlParams } from './index-rows';
import { runtimeParameter, runtimeParams } from './indexed-params';

export interface UsedRuntimeParam {
  /** The type the parameter is used on. */
  resourceType: string;
  code: string;
  param: SearchParameter;
}

/**
 * The runtime parameters `request` uses. `types`, for a search over several types (system level), are the types
 * its own filters and sort keys apply to; a type search's are its resourceType's.
 */
export function runtimeParamsUsed(request: SearchRequest, types: readonly string[] = []): UsedRuntimeParam[] {
  if (!runtimeParams.any()) {
    return []; // nothing stored at runtime: no second compilation on the hot path
  }
  const used = new Map<string, UsedRuntimeParam>();
  const note = (resourceType: string, code: string, own: boolean) => {
    for (const type of own && types.length > 0 ? types : [resourceType]) {
      const param = runtimeParameter(type, code);
      if (param) {
        used.set(`${type}|${code}`, { resourceType: type, code, param });
      }
    }
  };
  compileSearch(request, new SqlParams(), {
    alias: 'u',
    onParam: (resourceType, code) => note(resourceType, code, resourceType === request.resourceType),
  });
  for (const include of [...(request.include ?? []), ...(request.revInclude ?? [])]) {
    note(include.resourceType, include.searchParam, false);
  }
  return [...used.values()];
}
