/**
 * SNOMED CT loader: the RF2 snapshot's concept, description and relationship files, streamed in three passes
 * (concepts inserted, then descriptions and is-a parents added to them batch by batch), so that a release of
 * 350,000 concepts and 1.5 million descriptions is never held in memory.
 *
 * The display is the fully specified name without its semantic tag ("Diabetes mellitus (disorder)" →
 * "Diabetes mellitus"); the language reference sets (preferred terms per dialect) are not read.
 */
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'csv-parse';
import type { FhirRepository, Queryable } from '../../fhir-server';
import type { Designation } from '../model';
import type { TerminologyService } from '../service';
import { BATCH_SIZE, loadCodeSystem, progressStream, type LoadReport, type LoaderOptions } from './common';

export const SNOMED_URL = 'http://snomed.info/sct';
const IS_A = '116680003';
const FSN = '900000000000003001';
const SYNONYM = '900000000000013009';

export interface SnomedLoadOptions extends LoaderOptions {
  /** The release folder (Snapshot/Terminology is searched below it). */
  dir: string;
  /** The edition version URI, e.g. http://snomed.info/sct/900000000000207008/version/20240101. */
  version: string;
}

function findFile(dir: string, prefix: string): string {
  for (const name of readdirSync(dir)) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) {
      try {
        return findFile(full, prefix);
      } catch {
        continue;
      }
    }
    if (name.startsWith(prefix) && name.endsWith('.txt')) {
      return full;
    }
  }
  throw new Error(`No ${prefix}*.txt file under ${dir}`);
}

async function* rf2(file: string, label: string, options: LoaderOptions): AsyncGenerator<Record<string, string>> {
  const { stream, done } = progressStream(file, label, options);
  try {
    // RF2: UTF-8, tab-separated, a header line, no quoting.
    yield* stream.pipe(parse({ columns: true, delimiter: '\t', quote: false, bom: true, skip_empty_lines: true, relax_column_count: true }));
  } finally {
    done();
  }
}

/** Adds descriptions (display from the FSN) to concepts already inserted; one row per concept per statement. */
async function addDescriptions(q: Queryable, system: string, version: string, batch: Map<string, { fsn?: string; designations: Designation[] }>): Promise<void> {
  const codes = [...batch.keys()];
  await q.query(
    `UPDATE tx_concept c SET
        display = COALESCE(d.display, c.display),
        designations = (c.designations::jsonb || d.items::jsonb)::text
       FROM unnest($3::text[], $4::text[], $5::text[]) AS d(code, display, items)
      WHERE c.system_url = $1 AND c.system_version = $2 AND c.code = d.code`,
    [system, version, codes, codes.map((c) => batch.get(c)?.fsn?.replace(/\s*\([^()]*\)\s*$/, '') ?? null), codes.map((c) => JSON.stringify(batch.get(c)?.designations ?? []))],
  );
}

async function addParents(q: Queryable, system: string, version: string, batch: Map<string, string[]>): Promise<void> {
  const codes = [...batch.keys()];
  await q.query(
    `UPDATE tx_concept c SET parents = c.parents || ARRAY(SELECT jsonb_array_elements_text(d.parents::jsonb))
       FROM unnest($3::text[], $4::text[]) AS d(code, parents)
      WHERE c.system_url = $1 AND c.system_version = $2 AND c.code = d.code`,
    [system, version, codes, codes.map((c) => JSON.stringify(batch.get(c)))],
  );
}

export async function loadSnomed(repository: FhirRepository, service: TerminologyService, options: SnomedLoadOptions): Promise<LoadReport> {
  const conceptFile = findFile(options.dir, 'sct2_Concept_Snapshot');
  const descriptionFile = findFile(options.dir, 'sct2_Description_Snapshot');
  const relationshipFile = findFile(options.dir, 'sct2_Relationship_Snapshot');
  return loadCodeSystem(
    repository,
    service,
    {
      resourceType: 'CodeSystem',
      id: `snomed-${(options.version.split('/').pop() ?? 'release').replace(/[^A-Za-z0-9.-]/g, '-')}`,
      url: SNOMED_URL,
      version: options.version,
      name: 'SNOMED_CT',
      title: 'SNOMED CT',
      status: 'active',
      hierarchyMeaning: 'is-a',
      caseSensitive: true,
      content: 'not-present',
      copyright: 'SNOMED CT is © SNOMED International. Loaded from the deployment\'s licensed release (SNOMED CT Affiliate Licence).',
    },
    async (writer) => {
      for await (const row of rf2(conceptFile, 'SNOMED concepts', options)) {
        await writer.add({ code: row.id, inactive: row.active !== '1' });
      }
      await writer.flush();

      let descriptions = new Map<string, { fsn?: string; designations: Designation[] }>();
      for await (const row of rf2(descriptionFile, 'SNOMED descriptions', options)) {
        if (row.active !== '1') {
          continue;
        }
        const entry = descriptions.get(row.conceptId) ?? { designations: [] };
        if (row.typeId === FSN) {
          entry.fsn = row.term;
        }
        entry.designations.push({ language: row.languageCode, use: { system: SNOMED_URL, code: row.typeId === FSN ? FSN : SYNONYM }, value: row.term });
        descriptions.set(row.conceptId, entry);
        if (descriptions.size >= BATCH_SIZE) {
          await addDescriptions(writer.q, writer.system, writer.version, descriptions);
          descriptions = new Map();
        }
      }
      await addDescriptions(writer.q, writer.system, writer.version, descriptions);

      let parents = new Map<string, string[]>();
      for await (const row of rf2(relationshipFile, 'SNOMED relationships', options)) {
        if (row.active !== '1' || row.typeId !== IS_A) {
          continue;
        }
        parents.set(row.sourceId, [...(parents.get(row.sourceId) ?? []), row.destinationId]);
        if (parents.size >= BATCH_SIZE) {
          await addParents(writer.q, writer.system, writer.version, parents);
          parents = new Map();
        }
      }
      await addParents(writer.q, writer.system, writer.version, parents);
    },
  );
}
