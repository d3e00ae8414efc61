/**
 * Which search parameters are indexed for a resource type, with their FHIRPath parsed once and cached.
 *
 * Each parameter's expression is cut down to the resource type's own branch
 * (`getParsedExpressionForResourceType`): the shared R4 expressions are unions over many types, and evaluating
 * every branch made extraction ~34× slower (DESIGN-NOTES). search-extract-agreement.test.ts checks, on every
 * official R4 example, that the cut-down form yields what the full expression yields (up to duplicates, which
 * a union drops). It agrees for every non-composite parameter; the composites whose expression has a bare
 * `Observation` branch (`combo-code-value-*`) lose it when cut down, so composite support must parse its own.
 */
import {
  badRequest,
  getParsedExpressionForResourceType,
  getSearchParameter,
  getSearchParameters,
  OperationOutcomeError,
  type FhirPathAtom,
} from '@medplum/core';
import type { SearchParameter } from '@medplum/fhirtypes';
import { dateType } from './param-date';
import { numberType } from './param-number';
import { quantityType } from './param-quantity';
import { referenceType } from './param-reference';
import { stringType } from './param-string';
import { tokenType } from './param-token';
import { uriType } from './param-uri';
import { r4ResourceTypes } from '../definitions';
import { RuntimeSearchParams } from './runtime-params';
import type { SearchType } from './search-type';

/** The handler of each indexed SearchParameter.type; composite and special parameters are not indexed here. */
export const SEARCH_TYPES: Partial<Record<SearchParameter['type'], SearchType>> = {
  token: tokenType,
  string: stringType,
  date: dateType,
  number: numberType,
  quantity: quantityType,
  reference: referenceType,
  uri: uriType,
};

/** Parameters answered from the `resource` row itself, not from index rows. */
export const RESOURCE_COLUMN_PARAMS: ReadonlySet<string> = new Set(['_id', '_lastUpdated']);

/**
 * Only the standard R4 parameters: @medplum/core adds its own (`_project`, `_compartment`), which are not indexed
 * (`_compartment` is answered from resource.compartments, see compile.ts). It also re-issues the R4 Resource-level parameters per type without their url, hence the list of those.
 */
const STANDARD_URL_PREFIX = 'http://hl7.org/fhir/SearchParameter/';
const RESOURCE_LEVEL_PARAMS: ReadonlySet<string> = new Set(['_tag', '_security', '_profile', '_source']);

function isStandard(param: SearchParameter): boolean {
  return param.url?.startsWith(STANDARD_URL_PREFIX) || RESOURCE_LEVEL_PARAMS.has(param.code);
}

export interface IndexedParam {
  readonly code: string;
  readonly param: SearchParameter;
  readonly expression: FhirPathAtom;
  readonly type: SearchType;
  /** Set for a parameter stored at runtime: its expression may use what the evaluator lacks. */
  readonly runtime?: boolean;
}

const cache = new Map<string, IndexedParam[]>();

/**
 * The SearchParameter resources stored on this server, as this process knows them; the repository refreshes it
 * before searches and writes (see runtime-params.ts).
 */
export const runtimeParams = new RuntimeSearchParams({
  searchTypes: SEARCH_TYPES,
  isBuiltIn: (resourceType, code) =>
    RESOURCE_COLUMN_PARAMS.has(code) || r4Params(resourceType).some((p) => p.code === code) || isR4Composite(resourceType, code),
  r4Definition: (url, bases) => {
    for (const base of bases) {
      const found = Object.values(getSearchParameters(base) ?? {}).find((p) => p.url === url && isStandard(p));
      if (found) {
        return found;
      }
    }
    return undefined;
  },
  allTypes: () => ['Resource', ...r4ResourceTypes()],
});

function isR4Composite(resourceType: string, code: string): boolean {
  const param = getSearchParameter(resourceType, code);
  return param !== undefined && param.type === 'composite' && isStandard(param);
}

/**
 * The indexed parameters of `resourceType` (empty for an unknown type): the R4 ones, then those stored at runtime.
 * Call loadFhirDefinitions() first.
 */
export function indexedParams(resourceType: string): readonly IndexedParam[] {
  const runtime = runtimeParams.forType(resourceType);
  return runtime.length === 0 ? r4Params(resourceType) : [...r4Params(resourceType), ...runtime];
}

function r4Params(resourceType: string): IndexedParam[] {
  let list = cache.get(resourceType);
  if (!list) {
    list = [];
    for (const param of Object.values(getSearchParameters(resourceType) ?? {})) {
      const type = SEARCH_TYPES[param.type];
      if (!type || !param.expression || !isStandard(param) || RESOURCE_COLUMN_PARAMS.has(param.code)) {
        continue;
      }
      const expression = getParsedExpressionForResourceType(resourceType, param.expression);
      list.push({ code: param.code, param, expression, type });
    }
    cache.set(resourceType, list);
  }
  return list;
}

/**
 * The definition of `code` on `resourceType`: the R4 one, else a stored one. The store's own parsing and chaining
 * look parameters up here, so that a parameter stored at runtime is parsed (no prefix read into a token) and
 * chained through like an R4 one.
 */
export function findSearchParameter(resourceType: string, code: string): SearchParameter | undefined {
  return getSearchParameter(resourceType, code) ?? runtimeParameter(resourceType, code);
}

/** The stored SearchParameter that defines `code` on `resourceType`, when no R4 parameter does. */
export function runtimeParameter(resourceType: string, code: string): SearchParameter | undefined {
  return (
    runtimeParams.forType(resourceType).find((p) => p.code === code)?.param ??
    runtimeParams.compositesFor(resourceType).find((p) => p.code === code)?.param
  );
}

/** The indexed parameter named `code`, or a 400 that says why the search cannot use it. */
export function findIndexedParam(resourceType: string, code: string): IndexedParam {
  const indexed = indexedParams(resourceType).find((p) => p.code === code);
  if (indexed) {
    return indexed;
  }
  if (code.includes('.') || code === '_has') {
    throw new OperationOutcomeError(badRequest(`Chained and reverse-chained search ('${code}') is not supported`, code));
  }
  const param = findSearchParameter(resourceType, code);
  if (param && (param.type === 'composite' || param.type === 'special')) {
    throw new OperationOutcomeError(
      badRequest(`Search parameter '${code}' of ${resourceType} is of type ${param.type}, which is not supported`, code),
    );
  }
  throw new OperationOutcomeError(badRequest(`Unknown search parameter '${code}' for resource type ${resourceType}`, code));
}
