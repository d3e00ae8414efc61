/** The public face of search: write-time extraction and indexing, read-time compilation to SQL. */
export { compartmentsOf, extractIndexRows, patientCompartmentTypes } from './extract';
export { addIndexWrites, deleteIndexRows, replaceIndexRows, type ResourceRef } from './write';
export { compileSearch, type CompiledSearch, type CompileOptions } from './compile';
export { parseSearch, queryRecord } from './parse';
export { ALL_REFERENCE_PARAMS } from './include-parse';
export { addLocalBaseUrl } from './local-base';
export { isSearchableComposite } from './composite';
export { findSearchParameter, indexedParams, runtimeParams } from './indexed-params';
export { RuntimeSearchParams, REFRESH_INTERVAL_MS } from './runtime-params';
export { runtimeParamsUsed, type UsedRuntimeParam } from './used-params';
export { orderByClause, type SortKey, type SortSqlType } from './sort';
export {
  SqlParams,
  type DateRow,
  type IndexRows,
  type NumberRow,
  type QuantityRow,
  type ReferenceRow,
  type StringRow,
  type TokenRow,
  type UriRow,
} from './index-rows';
