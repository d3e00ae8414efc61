/**
 * Chained search (`Observation?subject:Patient.name=zhang`, `Encounter?patient.general-practitioner.name=…`): each
 * link is a reference parameter, followed through `search_reference` to the target resource's row, where the
 * rest of the chain applies. The whole chain is one nested correlated EXISTS, so PostgreSQL plans it as semi-joins
 * (from the selective end when the last parameter is selective): one statement, no per-resource round trips.
 *
 * A link's target type is its `:Type` modifier, or else the one type among the parameter's targets that has the
 * next parameter; when several have it, the chain is ambiguous and answered with a 400 that asks for `:Type`.
 */
import type { Filter } from '@medplum/core';
import { keyCode, parseFilter } from './filter-parse';
import { findSearchParameter } from './indexed-params';
import { contextFor, type FilterContext, searchError } from './search-type';

export type FilterCompiler = (filter: Filter, ctx: FilterContext) => string;

/** Parameters every resource type has, though not every type lists them. */
const COMMON_PARAMS: ReadonlySet<string> = new Set(['_id', '_lastUpdated', '_has']);

export function compileChain(filter: Filter, ctx: FilterContext, compileFilter: FilterCompiler): string {
  const links = filter.code.split('.');
  const last = links.pop() as string;
  if (links.some((l) => l === '') || last === '') {
    throw searchError(`Invalid chained parameter '${filter.code}'`);
  }
  const step = (i: number, at: FilterContext): string => {
    if (i === links.length) {
      return compileFilter(parseFilter(at.resourceType, last, filter.value), at);
    }
    const [code, explicitType, ...extra] = links[i].split(':');
    const param = findSearchParameter(at.resourceType, code);
    at.onParam?.(at.resourceType, code);
    if (!param || param.type !== 'reference' || extra.length > 0) {
      throw searchError(`Cannot chain through '${links[i]}' in '${filter.code}': ${at.resourceType} has no reference search parameter '${code}'`);
    }
    const nextCode = keyCode(i + 1 < links.length ? links[i + 1] : last);
    const targetType = chainTarget(at.resourceType, code, param.target ?? [], explicitType, nextCode, filter.code);
    const s = at.nextAlias();
    const target = at.nextAlias();
    const inner = step(i + 1, contextFor(at, target, targetType));
    return (
      `EXISTS (SELECT 1 FROM search_reference ${s} JOIN resource ${target} ON ${target}.res_type = ${s}.target_type AND ${target}.id = ${s}.target_id` +
      ` WHERE ${s}.res_type = ${at.alias}.res_type AND ${s}.res_id = ${at.alias}.id AND ${s}.code = ${at.params.add(code)}` +
      ` AND ${s}.target_type = ${at.params.add(targetType)} AND NOT ${target}.deleted AND ${inner})`
    );
  };
  return step(0, ctx);
}

function chainTarget(
  resourceType: string,
  code: string,
  targets: readonly string[],
  explicitType: string | undefined,
  nextCode: string,
  chain: string,
): string {
  if (explicitType !== undefined) {
    if (!targets.includes(explicitType)) {
      throw searchError(`In '${chain}': ${resourceType}.${code} cannot refer to ${explicitType} (it refers to ${targets.join(', ')})`);
    }
    return explicitType;
  }
  const candidates = targets.filter((t) => COMMON_PARAMS.has(nextCode) || findSearchParameter(t, nextCode) !== undefined);
  if (candidates.length === 1) {
    return candidates[0];
  }
  if (candidates.length === 0) {
    throw searchError(`In '${chain}': no type that ${resourceType}.${code} refers to (${targets.join(', ')}) has a search parameter '${nextCode}'`);
  }
  throw searchError(
    `'${chain}' is ambiguous: ${resourceType}.${code} may refer to ${candidates.join(', ')}, which all have '${nextCode}'; ` +
      `name the type, e.g. '${code}:${candidates[0]}.${chain.slice(chain.indexOf('.') + 1)}'`,
  );
}
