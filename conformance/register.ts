/**
 * Makes this process's validator know the guide: every extension and profile is registered with the store's
 * validator (fhir-server's `registerProfile`, which runs @medplum/core's `validateResource` against it), so a write
 * or `$validate` of a resource claiming a regional profile in meta.profile is checked against it, and every
 * regional extension is checked for its context and value type wherever it appears.
 *
 * Extensions under the regional base `<base>/StructureDefinition/` that the guide does not define are **errors**
 * (elsewhere unknown extensions stay warnings): the base is the region's own namespace, so an undefined url
 * there is a misspelling (`referal-direction`) that the workflows reading the extension would never see.
 *
 * The CapabilityStatement names the guide (`implementationGuide`) and each type's regional profiles
 * (`supportedProfile`).
 *
 * The validator's registry is per process: every process that serves the API calls this at start.
 */
import { declareImplementationGuide, registerProfile, requireDefinedExtensions } from '../fhir-server';
import type { ImplementationGuideContent } from './guide';

export function registerImplementationGuide(guide: ImplementationGuideContent): void {
  // Extensions first: a profile's extension slices name them.
  const ordered = [...guide.structureDefinitions].sort((a, b) => Number(a.type !== 'Extension') - Number(b.type !== 'Extension'));
  for (const definition of ordered) {
    registerProfile(definition);
  }
  requireDefinedExtensions(`${guide.canonicalBase}/StructureDefinition/`);
  // The CapabilityStatement then names the guide, and lists its profiles as each type's supportedProfile.
  declareImplementationGuide(guide.implementationGuide.url as string);
}
