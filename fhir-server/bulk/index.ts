/**
 * FHIR Bulk Data Access (STU2) `$export`: asynchronous exports of the store as NDJSON, run by a claim loop in
 * every platform process, with jobs and files in the database (see README.md).
 */
export { bulkExportOperations, pollUrl } from './operations';
export { BulkExportWorker, DEFAULT_BULK_EXPORT, type BulkExportSettings } from './worker';
export { NDJSON_FORMATS, type ExportSpec } from './parameters';
