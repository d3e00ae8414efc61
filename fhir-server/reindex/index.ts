/**
 * `$reindex` as asynchronous jobs: kick-off and status operations, a claim loop in every platform process, jobs
 * resumable by keyset after a crash, and the state searches read to warn that a new SearchParameter does not cover
 * older resources yet.
 */
export { reindexOperations, REINDEX_DEFINITION } from './operations';
export { ReindexWorker, DEFAULT_REINDEX, type ReindexSettings } from './worker';
export { ReindexState } from './state';
