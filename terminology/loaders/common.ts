/**
 * What every release loader shares: streaming a file with a progress bar, writing concepts to tx_concept in
 * batches inside one transaction (so that readers see the previous load until the new one is complete), and
 * writing the CodeSystem resource (content not-present, concepts in the tables) when the concepts are in.
 */
import { createReadStream, statSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { SingleBar, Presets } from 'cli-progress';
import type { CodeSystem } from '@medplum/fhirtypes';
import type { FhirRepository, Queryable } from '../../fhir-server';
import type { ConceptPropertyValue, Designation } from '../model';
import type { TerminologyService } from '../service';

export interface LoaderOptions {
  /** Show a progress bar on stderr (the commands do; tests do not). */
  progress?: boolean;
}

export interface LoadedConcept {
  code: string;
  display?: string;
  definition?: string;
  inactive?: boolean;
  abstract?: boolean;
  parents?: string[];
  designations?: Designation[];
  properties?: ConceptPropertyValue[];
}

export interface LoadReport {
  system: string;
  version: string;
  concepts: number;
  seconds: number;
}

/** Rows per INSERT statement. */
export const BATCH_SIZE = 2000;

/** A read stream over a file whose bytes move a progress bar (when asked for). */
export function progressStream(file: string, label: string, options: LoaderOptions): { stream: Readable; done(): void } {
  const stream = createReadStream(file);
  if (!options.progress) {
    return { stream, done: () => undefined };
  }
  const bar = new SingleBar({ format: `${label} [{bar}] {percentage}% | {value}/{total} bytes | {eta_formatted} left`, etaBuffer: 50 }, Presets.shades_classic);
  bar.start(statSync(file).size, 0);
  let read = 0;
  stream.on('data', (chunk) => {
    read += chunk.length;
    bar.update(read);
  });
  return { stream, done: () => bar.stop() };
}

/** Writes concepts of one code system version in batches; `flush` before reading them back. */
export class ConceptWriter {
  private batch: LoadedConcept[] = [];
  count = 0;

  constructor(
    readonly q: Queryable,
    readonly system: string,
    readonly version: string,
  ) {}

  /** Removes the concepts a previous load of this version left (the new load replaces them all). */
  async clear(): Promise<void> {
    await this.q.query('DELETE FROM tx_concept WHERE system_url = $1 AND system_version = $2', [this.system, this.version]);
  }

  async add(concept: LoadedConcept): Promise<void> {
    this.batch.push(concept);
    if (this.batch.length >= BATCH_SIZE) {
      await this.flush();
    }
  }

  async flush(): Promise<void> {
    if (this.batch.length === 0) {
      return;
    }
    const rows = this.batch;
    this.batch = [];
    this.count += rows.length;
    await this.q.query(
      `INSERT INTO tx_concept (system_url, system_version, code, display, definition, inactive, abstract, parents, designations, properties)
       SELECT $1, $2, r.code, r.display, r.definition, r.inactive, r.abstract,
              ARRAY(SELECT jsonb_array_elements_text(r.parents::jsonb)), r.designations, r.properties
         FROM unnest($3::text[], $4::text[], $5::text[], $6::boolean[], $7::boolean[], $8::text[], $9::text[], $10::text[])
              AS r(code, display, definition, inactive, abstract, parents, designations, properties)
       ON CONFLICT (system_url, system_version, code) DO UPDATE SET
         display = EXCLUDED.display, definition = EXCLUDED.definition, inactive = EXCLUDED.inactive, abstract = EXCLUDED.abstract,
         parents = EXCLUDED.parents, designations = EXCLUDED.designations, properties = EXCLUDED.properties`,
      [
        this.system,
        this.version,
        rows.map((r) => r.code),
        rows.map((r) => r.display ?? null),
        rows.map((r) => r.definition ?? null),
        rows.map((r) => r.inactive ?? false),
        rows.map((r) => r.abstract ?? false),
        rows.map((r) => JSON.stringify(r.parents ?? [])),
        rows.map((r) => JSON.stringify(r.designations ?? [])),
        rows.map((r) => JSON.stringify(r.properties ?? [])),
      ],
    );
  }
}

/**
 * Loads one code system version: `fill` streams the release into the writer (inside one transaction), then the
 * CodeSystem resource is written to the store with content not-present and the concept count. Re-running
 * replaces that version's concepts and writes a new version of the resource, which makes every server process
 * rebuild its model.
 */
export async function loadCodeSystem(
  repository: FhirRepository,
  service: TerminologyService,
  resource: CodeSystem & { id: string; url: string; version: string },
  fill: (writer: ConceptWriter) => Promise<void>,
): Promise<LoadReport> {
  const started = Date.now();
  const count = await service.db.transaction(async (tx) => {
    const writer = new ConceptWriter(tx, resource.url, resource.version);
    await writer.clear();
    await fill(writer);
    await writer.flush();
    return writer.count;
  });
  const { concept: _none, ...metadata } = resource;
  await repository.write((session) => session.update('CodeSystem', resource.id, { ...metadata, content: 'not-present', count }));
  service.invalidate();
  return { system: resource.url, version: resource.version, concepts: count, seconds: (Date.now() - started) / 1000 };
}
