/** The master patient index's own tables (versions 7000–7499), applied by `migrate(db, mpiMigrations)`. */
import type { Migration } from '../fhir-server';

export const mpiMigrations: readonly Migration[] = [
  {
    version: 7000,
    name: 'master patient index: indexed source patients, blocking keys, decisions, review worklist',
    sql: `
      -- One row per source Patient (a hospital's record) the index knows: its normalised demographics (what
      -- scoring reads, so that candidates are never loaded as resources), the golden Patient it is filed under, and
      -- a fingerprint of what the decision was based on (a change event that changes none of it is a no-op).
      CREATE TABLE mpi_patient (
        id text PRIMARY KEY,
        golden_id text NOT NULL,
        demographics jsonb NOT NULL,
        fingerprint text NOT NULL,
        -- A person decided this link (review, manual link, merge): automatic linking leaves it alone.
        pinned boolean NOT NULL DEFAULT false,
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX mpi_patient_golden ON mpi_patient (golden_id);

      -- Blocking keys (national identifiers, pinyin name + birth year, birth date + sex, phone): a candidate for a
      -- match shares at least one key, found by this index, never by a scan.
      CREATE TABLE mpi_key (
        key text NOT NULL,
        patient_id text NOT NULL,
        PRIMARY KEY (key, patient_id)
      );
      CREATE INDEX mpi_key_patient ON mpi_key (patient_id);

      -- Every decision, with its evidence; an undone decision points to the one that undid it.
      CREATE TABLE mpi_decision (
        id bigserial PRIMARY KEY,
        source_id text NOT NULL,
        golden_id text NOT NULL,
        -- link | unlink | merge | review | reject
        action text NOT NULL,
        -- identifier | score | manual | merge | new (a golden record of its own)
        method text NOT NULL,
        weight real,
        evidence jsonb NOT NULL DEFAULT '[]',
        decided_by text NOT NULL,
        decided_at timestamptz NOT NULL DEFAULT now(),
        undone_by bigint REFERENCES mpi_decision (id)
      );
      CREATE INDEX mpi_decision_source ON mpi_decision (source_id, id);
      CREATE INDEX mpi_decision_golden ON mpi_decision (golden_id, id);

      -- Uncertain pairs waiting for a person: a source record and the golden record it may belong to.
      CREATE TABLE mpi_review (
        id bigserial PRIMARY KEY,
        source_id text NOT NULL,
        golden_id text NOT NULL,
        weight real NOT NULL,
        evidence jsonb NOT NULL,
        -- open | linked | rejected | obsolete
        status text NOT NULL DEFAULT 'open',
        created_at timestamptz NOT NULL DEFAULT now(),
        decided_at timestamptz,
        decided_by text,
        UNIQUE (source_id, golden_id)
      );
      CREATE INDEX mpi_review_open ON mpi_review (id) WHERE status = 'open';

      -- Pairs a person said are not the same resident (an undone link, a rejected review): never linked again
      -- automatically.
      CREATE TABLE mpi_exclusion (
        source_id text NOT NULL,
        golden_id text NOT NULL,
        decision_id bigint REFERENCES mpi_decision (id),
        PRIMARY KEY (source_id, golden_id)
      );
    `,
  },
];
