/**
 * The terminology module's public face. Other modules use the TerminologyService in-process (the HL7 adapters
 * translate local codes with `translate` and report misses with `recordUnmapped`); the REST API gets the
 * operations through createFhirServer({ operations: terminologyOperations(service) }). This module talks to the
 * store only through fhir-server/index.ts.
 */
import type { Database, FhirRepository } from '../fhir-server';
import { TerminologyService } from './service';

export { terminologyMigrations } from './migrations';
export { terminologyOperations } from './operations';
export {
  TerminologyService,
  HOT_PATH_MAX_AGE_MS,
  MAX_EXPANSION,
  type CallOptions,
  type ExpandRequest,
  type LookupRequest,
  type LookupResult,
  type SubsumesOutcome,
  type TranslateMatch,
  type TranslateRequest,
  type TranslateResult,
  type UnmappedCode,
  type ValidateCodeRequest,
  type ValidateCodeResult,
} from './service';
export { loadBundledContent, loadContent, definitionSources, regionalSources, type ContentSource } from './content';
export { MissingDefinition } from './valueset';
export { BindingValidator, coreBindingValueSets, type BindingValidatorOptions } from './bindings';
export {
  loadConceptMapCsv,
  loadIcd10,
  loadLoinc,
  loadSnomed,
  hospitalLabSystem,
  type ConceptMapCsvOptions,
  type ConceptMapCsvReport,
  type LoadReport,
} from './loaders';

/** Creates the service over a migrated database (terminologyMigrations applied) and the store's repository. */
export function createTerminologyService(db: Database, repository: FhirRepository): TerminologyService {
  return new TerminologyService(db, repository);
}
