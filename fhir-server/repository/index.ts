export { FhirRepository, type RepositoryOptions, type StoredResource } from './repository';
export { WriteSession, assertValidId, type SessionOptions, type WriteOutcome, type WriteInterceptor, type InterceptedWrite } from './session';
export { parseLocalReference, visitReferences, type ResourceKey } from './references';
export type { CompartmentQuery, RowFilter, SearchPage, SearchScope } from './search-sql';
export type { CallerAccessResolver, CallerIdentity, RepositoryAccess, ResourceReader } from './access';
export type { HistoryQuery, VersionRow } from './store';
export type { ResourcePatch } from './patch';
export { reindexBatch, reindexResource, REINDEX_BATCH_SIZE } from './reindex';
