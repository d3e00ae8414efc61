/**
 * The registries and document sharing (WS/T 790's institution, health-worker and service registries; health-record
 * storage, retrieval and document subscription as IHE MHD on FHIR R4). It talks to the store only through
 * `fhir-server/index.ts`: write interceptors, an operation, and the BinaryContentStore seam.
 *
 * - `registryStoreExtensions(db, config)`: what createFhirServer needs: the write rules (identifier checks, codes,
 *   partOf loops, endpoint addresses; Binary content into the content store, CDA headers into DocumentReference
 *   metadata, replacement), `DocumentReference/$render`, `$collect-content` (administrators: removes content no
 *   Binary uses), and the content store for Binary.
 * - `installRegistryContent(repository)`: the code systems, naming systems and search parameter, at start.
 * - `loadInstitutionCsv(repository, stream)`: the city's institution list (npm run registry:load-institutions).
 */
import type { BinaryContentStore, Database, FhirOperation, WriteInterceptor } from '../fhir-server';
import type { RegistryConfig } from './config';
import { collectContentOperation } from './content-collection';
import { ChunkedContentStore } from './content-store';
import { binaryContentRule, documentReferenceRule } from './documents/document-rules';
import { renderOperation } from './documents/render';
import { registryRule } from './registry-rules';

export { loadRegistryConfig, type RegistryConfig } from './config';
export { registryMigrations } from './migrations';
export { installRegistryContent, registryContent } from './content';
export { ChunkedContentStore, CONTENT_EXTENSION, contentRefOf } from './content-store';
export { collectUnusedContent, COLLECT_CONTENT_DEFINITION, DEFAULT_CONTENT_GRACE_MS } from './content-collection';
export { loadInstitutionCsv, loadInstitutionCsvFile, INSTITUTION_TYPE_SYSTEM, LEVEL_GRADE_SYSTEM, type LoadReport, type RowReport } from './institution-csv';
export { readCdaHeader, renderCdaHtml, cdaTimeToFhir, CDA_CONTENT_TYPE, CdaFormatError, type CdaHeader } from './documents/cda';
export { DOCUMENT_TYPE_SYSTEM, documentTypeDisplay } from './documents/document-types';
export { DIVISION_EXTENSION } from './registry-rules';
export * from './identifiers';

/** At start (one process): removes the chunks of uploads a crashed process left unfinished a day or more ago. */
export function sweepAbandonedUploads(db: Database): Promise<number> {
  return new ChunkedContentStore(db, 0).sweepAbandonedUploads();
}

export interface RegistryStoreExtensions {
  writeInterceptors: WriteInterceptor[];
  operations: FhirOperation[];
  binaryStore: BinaryContentStore;
}

/** Pass all three to createFhirServer (the database needs registryMigrations). */
export function registryStoreExtensions(db: Database, config: RegistryConfig): RegistryStoreExtensions {
  const store = new ChunkedContentStore(db, config.documentMaxBytes);
  return {
    writeInterceptors: [registryRule(), binaryContentRule(store), documentReferenceRule(store)],
    operations: [renderOperation(store), collectContentOperation(db)],
    binaryStore: store,
  };
}
