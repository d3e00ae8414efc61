/**
 * Writes the guide's conformance resources into the store at start, so that `StructureDefinition?url=…`,
 * `CodeSystem?url=…` and `ImplementationGuide` answer from it like any other resource. Idempotent: a resource is
 * written only when missing or different from the guide's (so a new platform version updates it, and a restart
 * writes nothing), all in one transaction so a reader never sees the guide half installed.
 */
import type { Resource } from '@medplum/fhirtypes';
import type { FhirRepository } from '../fhir-server';
import { guideResources, type ImplementationGuideContent } from './guide';

/** What is compared: the content, not the store's meta (version, lastUpdated, owner tags). */
const comparable = (r: Resource): string => JSON.stringify({ ...r, meta: undefined });

/** Returns how many resources were written (0 when the store already holds this guide). */
export async function installImplementationGuide(repository: FhirRepository, guide: ImplementationGuideContent): Promise<number> {
  const resources = guideResources(guide);
  return repository.write(async (session) => {
    let written = 0;
    for (const resource of resources) {
      const id = resource.id as string;
      const current = await session.read(resource.resourceType, id);
      if (!current || comparable(current) !== comparable(resource)) {
        await session.update(resource.resourceType, id, resource);
        written++;
      }
    }
    return written;
  });
}
