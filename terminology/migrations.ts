/**
 * The terminology module's own tables (migration versions 2000–2999, see fhir-server/db/migrations.ts).
 *
 * CodeSystem, ValueSet and ConceptMap resources live in the FHIR store like any other resource. Code systems too
 * big to be one JSON resource (LOINC, SNOMED CT, the full ICD-10 loaded by the loaders) are stored there with
 * `content: not-present`, and their concepts live here, one row per concept.
 */
import type { Migration } from '../fhir-server';

export const terminologyMigrations: readonly Migration[] = [
  {
    version: 2000,
    name: 'terminology: concepts of loaded code systems, unmapped local codes, bundled content checksums',
    sql: `
      -- Concepts of code systems loaded by the loaders. designations and properties are JSON arrays
      -- ([{language, use, value}], [{code, type, value}]); parents are the codes of is-a parents.
      CREATE TABLE tx_concept (
        system_url text NOT NULL,
        system_version text NOT NULL DEFAULT '',
        code text NOT NULL,
        display text,
        definition text,
        inactive boolean NOT NULL DEFAULT false,
        abstract boolean NOT NULL DEFAULT false,
        parents text[] NOT NULL DEFAULT '{}',
        designations text NOT NULL DEFAULT '[]',
        properties text NOT NULL DEFAULT '[]',
        PRIMARY KEY (system_url, system_version, code)
      );

      -- Local codes that met no mapping (reported to the hospital's staff, who extend their ConceptMap CSV).
      CREATE TABLE tx_unmapped (
        concept_map text NOT NULL DEFAULT '',
        system_url text NOT NULL,
        code text NOT NULL,
        display text,
        source text,
        occurrences integer NOT NULL DEFAULT 1,
        first_seen timestamptz NOT NULL DEFAULT now(),
        last_seen timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (concept_map, system_url, code)
      );

      -- Which bundled content (definitions, regional code systems) has been loaded, so that a restart skips it.
      CREATE TABLE tx_content (
        name text PRIMARY KEY,
        checksum text NOT NULL,
        resources integer NOT NULL,
        loaded_at timestamptz NOT NULL DEFAULT now()
      );
    `,
  },
];
