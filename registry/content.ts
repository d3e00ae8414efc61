/**
 * The registries' regional content, written into the store at start: code systems (WS 218 institution types,
 * hospital level and grade, clinical departments, WS/T 500 document types), the NamingSystems of the registries'
 * identifiers and the `division` SearchParameter. Each resource is written only when it is missing or differs
 * from the bundled version, so every process may call this at start.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Bundle, Resource } from '@medplum/fhirtypes';
import type { FhirRepository } from '../fhir-server';

/** registry/content in the sources, also when running from dist/ (tsc copies only the JSON files code imports). */
const CONTENT_DIR = [path.join(__dirname, '..', '..', 'registry', 'content'), path.join(__dirname, 'content')].find(existsSync) ?? path.join(__dirname, 'content');

export function registryContent(dir: string = CONTENT_DIR): Resource[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .flatMap((file) => {
      const json = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as Resource;
      return json.resourceType === 'Bundle' ? ((json as Bundle).entry ?? []).map((e) => e.resource as Resource) : [json];
    });
}

const comparable = (r: Resource): string => JSON.stringify({ ...r, meta: undefined });

/** Writes what is missing or changed; returns how many resources were written. */
export async function installRegistryContent(repository: FhirRepository): Promise<number> {
  let written = 0;
  for (const resource of registryContent()) {
    await repository.write(async (session) => {
      const current = await session.read(resource.resourceType, resource.id as string);
      if (!current || comparable(current) !== comparable({ ...resource })) {
        await session.update(resource.resourceType, resource.id as string, resource);
        written++;
      }
    });
  }
  return written;
}
