/**
 * Reverse chaining, `_has:Type:param:rest=value` (search.html "_has"): resources that some `Type` refers to through
 * its reference parameter `param`, where that `Type` resource matches `rest=value`. `rest` may itself be a `_has`
 * or a chain, so nesting is recursion. Compiled as a correlated EXISTS from the target's side of
 * `search_reference` (its (target_type, target_id) index), joined to the referring resource's row.
 */
import type { Filter } from '@medplum/core';
import { isR4ResourceType } from '../definitions';
import type { FilterCompiler } from './chain';
import { parseFilter } from './filter-parse';
import { findSearchParameter } from './indexed-params';
import { contextFor, type FilterContext, searchError } from './search-type';

export function compileReverseChain(filter: Filter, ctx: FilterContext, compileFilter: FilterCompiler): string {
  const [, sourceType, code, ...rest] = filter.code.split(':');
  const usage = `expected _has:Type:reference-parameter:parameter, e.g. _has:Observation:patient:code`;
  if (!sourceType || !code || rest.length === 0 || rest[0] === '') {
    throw searchError(`Invalid reverse chain '${filter.code}': ${usage}`);
  }
  if (!isR4ResourceType(sourceType)) {
    throw searchError(`Invalid reverse chain '${filter.code}': '${sourceType}' is not a FHIR R4 resource type`);
  }
  const param = findSearchParameter(sourceType, code);
  ctx.onParam?.(sourceType, code);
  if (!param || param.type !== 'reference') {
    throw searchError(`Invalid reverse chain '${filter.code}': ${sourceType} has no reference search parameter '${code}'`);
  }
  if (!(param.target ?? []).includes(ctx.resourceType as never)) {
    throw searchError(`Invalid reverse chain '${filter.code}': ${sourceType}.${code} never refers to ${ctx.resourceType}`);
  }
  const s = ctx.nextAlias();
  const source = ctx.nextAlias();
  const inner = compileFilter(parseFilter(sourceType, rest.join(':'), filter.value), contextFor(ctx, source, sourceType));
  return (
    `EXISTS (SELECT 1 FROM search_reference ${s} JOIN resource ${source} ON ${source}.res_type = ${s}.res_type AND ${source}.id = ${s}.res_id` +
    ` WHERE ${s}.target_type = ${ctx.alias}.res_type AND ${s}.target_id = ${ctx.alias}.id AND ${s}.res_type = ${ctx.params.add(sourceType)}` +
    ` AND ${s}.code = ${ctx.params.add(code)} AND NOT ${source}.deleted AND ${inner})`
  );
}
