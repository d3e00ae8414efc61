/**
 * Versioned schema migrations, applied at start. All of them run in one transaction under an advisory lock, so
 * two processes starting at once apply each migration exactly once, and a second run is a no-op.
 * A migration is never edited once released: add a new one.
 */
import type { Database } from './database';

/**
 * One schema change. Versions are unique across the platform: the store uses 1–999 and each other module that
 * keeps tables of its own passes its migrations to `migrate` from its own range (security 1000–1999, terminology
 * 2000–2999, adapters 3000–3999, referral workflow 4000–4999, supervision 5000–5999, portal 6000–6999, master patient index 7000–7499,
 * registries and document sharing 7500–7999, result recognition 8000–8999).
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Arbitrary constant that names "Huimin schema migration" among advisory locks. */
const MIGRATION_LOCK_KEY = 7_202_611_250;

/** Columns every search index table starts with: which resource the row indexes, and for which parameter. */
const INDEX_KEY = `res_type text NOT NULL, res_id text NOT NULL, code text NOT NULL`;

const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'resources, history, search indexes, outbox',
    sql: `
      -- The current version of every resource (deleted ones stay, flagged, so that ids are never reused silently).
      CREATE TABLE resource (
        res_type text NOT NULL,
        id text NOT NULL,
        version_id integer NOT NULL,
        last_updated timestamptz NOT NULL,
        deleted boolean NOT NULL DEFAULT false,
        content text,
        -- 'Patient/{id}' for every patient compartment the resource belongs to.
        compartments text[] NOT NULL DEFAULT '{}',
        PRIMARY KEY (res_type, id)
      );
      CREATE INDEX resource_type_updated ON resource (res_type, last_updated);
      CREATE INDEX resource_compartments ON resource USING gin (compartments);

      -- Every version ever written, including deletions (content NULL).
      CREATE TABLE resource_version (
        res_type text NOT NULL,
        id text NOT NULL,
        version_id integer NOT NULL,
        last_updated timestamptz NOT NULL,
        interaction text NOT NULL,
        content text,
        PRIMARY KEY (res_type, id, version_id)
      );
      CREATE INDEX resource_version_updated ON resource_version (last_updated);
      CREATE INDEX resource_version_type_updated ON resource_version (res_type, last_updated);

      -- Search indexes: one row per extracted value, rewritten whenever the resource changes.
      CREATE TABLE search_token (${INDEX_KEY}, system text, value text, display text);
      CREATE INDEX search_token_lookup ON search_token (res_type, code, value, system);
      CREATE INDEX search_token_owner ON search_token (res_type, res_id);

      CREATE TABLE search_string (${INDEX_KEY}, value text NOT NULL, value_norm text NOT NULL);
      CREATE INDEX search_string_lookup ON search_string (res_type, code, value_norm text_pattern_ops);
      CREATE INDEX search_string_owner ON search_string (res_type, res_id);

      CREATE TABLE search_date (${INDEX_KEY}, low timestamptz NOT NULL, high timestamptz NOT NULL);
      CREATE INDEX search_date_lookup ON search_date (res_type, code, low, high);
      CREATE INDEX search_date_owner ON search_date (res_type, res_id);

      CREATE TABLE search_number (${INDEX_KEY}, value numeric NOT NULL, low numeric NOT NULL, high numeric NOT NULL);
      CREATE INDEX search_number_lookup ON search_number (res_type, code, value);
      CREATE INDEX search_number_owner ON search_number (res_type, res_id);

      CREATE TABLE search_quantity (${INDEX_KEY}, value numeric NOT NULL, low numeric NOT NULL, high numeric NOT NULL,
        system text, unit text);
      CREATE INDEX search_quantity_lookup ON search_quantity (res_type, code, value);
      CREATE INDEX search_quantity_owner ON search_quantity (res_type, res_id);

      -- References also serve chaining, _has, _include and _revinclude as indexed joins.
      CREATE TABLE search_reference (${INDEX_KEY}, target_type text, target_id text, target_url text);
      CREATE INDEX search_reference_lookup ON search_reference (res_type, code, target_id);
      CREATE INDEX search_reference_target ON search_reference (target_type, target_id);
      CREATE INDEX search_reference_owner ON search_reference (res_type, res_id);

      CREATE TABLE search_uri (${INDEX_KEY}, value text NOT NULL);
      CREATE INDEX search_uri_lookup ON search_uri (res_type, code, value);
      CREATE INDEX search_uri_owner ON search_uri (res_type, res_id);

      -- Transactional outbox: written in the same transaction as the change, relayed to BullMQ after commit.
      CREATE TABLE outbox (
        seq bigserial PRIMARY KEY,
        res_type text NOT NULL,
        res_id text NOT NULL,
        version_id integer NOT NULL,
        interaction text NOT NULL,
        occurred_at timestamptz NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: 'reference index on target URL',
    sql: `
      -- Searches by absolute or canonical URL (reference and canonical parameters) were scans of the parameter's rows.
      CREATE INDEX search_reference_url ON search_reference (res_type, code, target_url) WHERE target_url IS NOT NULL;
    `,
  },
  {
    version: 3,
    name: 'index rows grouped by repeating element (composite parameters, identifier :of-type)',
    sql: `
      -- Rows extracted from one repeating element (an Observation.component, an Identifier with its type) share a
      -- grp number within their resource, so that a composite search can ask for both values in the same element.
      -- NULL for ordinary rows; a nullable column without default is added without rewriting the tables.
      ALTER TABLE search_token ADD COLUMN grp integer;
      ALTER TABLE search_string ADD COLUMN grp integer;
      ALTER TABLE search_date ADD COLUMN grp integer;
      ALTER TABLE search_number ADD COLUMN grp integer;
      ALTER TABLE search_quantity ADD COLUMN grp integer;
      ALTER TABLE search_reference ADD COLUMN grp integer;
      ALTER TABLE search_uri ADD COLUMN grp integer;
    `,
  },
  {
    version: 4,
    name: 'UCUM canonical value and unit of quantities',
    sql: `
      -- A UCUM quantity also in base units (5.1 mmol/L and 0.0051 mol/L alike), so that a search in another unit
      -- of the same dimension compares on an index. NULL where UCUM cannot convert the unit.
      ALTER TABLE search_quantity ADD COLUMN canonical_value numeric, ADD COLUMN canonical_unit text;
      CREATE INDEX search_quantity_canonical ON search_quantity (res_type, code, canonical_unit, canonical_value)
        WHERE canonical_unit IS NOT NULL;
    `,
  },
  {
    version: 50,
    name: 'unique token and reference match indexes ending in the resource id',
    sql: `
      -- A search by system|code or Type/id is an index range whose entries are in resource-id order, so the first page
      -- (ORDER BY id LIMIT n, or after a keyset cursor) stops after n entries instead of fetching and sorting every
      -- match. Unique, so that the index states what extraction guarantees and an updated resource's rows must be
      -- deleted before they are inserted again (search/write.ts).
      --
      -- The key ends in the group (migration 3): rows of different groups are legitimately alike. Two components of
      -- one Observation with the same code give two code-value-quantity$0 rows that differ only in grp, and two
      -- identifiers typed MR give two identifier:of-type rows that differ only in grp; a key without it would have to
      -- drop one and lose a match. coalesce(grp, 0), not grp: ungrouped rows (grp NULL, nearly all of them) must
      -- stay unique on the rest of the key, while NULL system or value stays distinct as before (a token without a
      -- system, display-only rows), which NULLS NOT DISTINCT would not allow.
      -- Extraction writes each (code, value, system) once per resource and group; older rows may hold duplicates.
      --
      -- Ordinary lookups read ungrouped rows only (coalesce(grp, 0) = 0, see search-type.ts indexMatch), so a typed
      -- Identifier, indexed since migration 3 as a grouped row only, gets the ungrouped copy extraction now writes
      -- beside it. Grouped token rows are those of identifiers, composite components (code with '$') and :of-type.
      INSERT INTO search_token (res_type, res_id, code, system, value)
        SELECT DISTINCT res_type, res_id, code, system, value FROM search_token
        WHERE grp IS NOT NULL AND code NOT LIKE '%$%' AND code NOT LIKE '%:of-type';
      DELETE FROM search_token a USING search_token b
        WHERE a.res_type = b.res_type AND a.res_id = b.res_id AND a.code = b.code
          AND a.value = b.value AND a.system = b.system AND coalesce(a.grp, 0) = coalesce(b.grp, 0) AND a.ctid > b.ctid;
      CREATE UNIQUE INDEX search_token_match ON search_token (res_type, code, value, system, res_id, (coalesce(grp, 0)));
      DROP INDEX search_token_lookup;

      DELETE FROM search_reference a USING search_reference b
        WHERE a.res_type = b.res_type AND a.res_id = b.res_id AND a.code = b.code
          AND a.target_id = b.target_id AND a.target_type = b.target_type AND coalesce(a.grp, 0) = coalesce(b.grp, 0)
          AND a.ctid > b.ctid;
      CREATE UNIQUE INDEX search_reference_match
        ON search_reference (res_type, code, target_id, target_type, res_id, (coalesce(grp, 0)));
      DROP INDEX search_reference_lookup;
    `,
  },
  {
    version: 51,
    name: 'match indexes carry grp; statistics on token and reference value combinations',
    sql: `
      -- Ordinary lookups fix coalesce(grp, 0) = 0. PostgreSQL checks that expression against the index key, but an
      -- index-only scan needs every column the query mentions stored in the index, and grp itself was not: each
      -- match cost a heap fetch (bench:plans: a code lookup behind _has read 750 heap pages for 750 entries).
      CREATE UNIQUE INDEX search_token_match_grp ON search_token (res_type, code, value, system, res_id, (coalesce(grp, 0))) INCLUDE (grp);
      DROP INDEX search_token_match;
      ALTER INDEX search_token_match_grp RENAME TO search_token_match;
      CREATE UNIQUE INDEX search_reference_match_grp
        ON search_reference (res_type, code, target_id, target_type, res_id, (coalesce(grp, 0))) INCLUDE (grp);
      DROP INDEX search_reference_match;
      ALTER INDEX search_reference_match_grp RENAME TO search_reference_match;

      -- The planner multiplies the selectivities of code, system and value as if they were independent, so a very
      -- common combination (every typed identifier's type row is v2-0203|MR) was estimated at one row and scanned
      -- whole for each outer row instead of looked up by resource id (:of-type took 43 ms instead of 1 ms).
      -- Most-common-value lists over the combinations give it the real frequencies.
      CREATE STATISTICS search_token_combinations (mcv) ON res_type, code, system, value FROM search_token;
      CREATE STATISTICS search_reference_combinations (mcv) ON res_type, code, target_type FROM search_reference;
    `,
  },
  {
    version: 60,
    name: 'bulk data export jobs and their NDJSON files',
    sql: `
      -- One row per $export request (fhir-server/bulk): what was asked, by whom, and where its run stands. Worker
      -- processes claim accepted jobs (and jobs whose claimant stopped beating) with FOR UPDATE SKIP LOCKED.
      CREATE TABLE bulk_export_job (
        id text PRIMARY KEY,
        client_id text NOT NULL,
        -- accepted, in-progress, completed, failed
        status text NOT NULL,
        request_url text NOT NULL,
        -- The parsed parameters (types, _since, _typeFilter queries, patients) and the caller's rights, as JSON.
        spec text NOT NULL,
        caller text NOT NULL,
        transaction_time timestamptz NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        claimed_by text,
        heartbeat_at timestamptz,
        exported bigint NOT NULL DEFAULT 0,
        progress text,
        failure text,
        finished_at timestamptz,
        expires_at timestamptz NOT NULL
      );
      CREATE INDEX bulk_export_job_claim ON bulk_export_job (status, created_at);
      CREATE INDEX bulk_export_job_client ON bulk_export_job (client_id, status);
      CREATE INDEX bulk_export_job_expiry ON bulk_export_job (expires_at);

      -- The files, as consecutive parts of NDJSON text (each a few thousand whole lines), so that they are written
      -- and served a part at a time. kind: output or error. Parts are written once and read as they are: stored
      -- uncompressed (EXTERNAL), since compressing them costs more CPU than the export itself.
      CREATE TABLE bulk_export_part (
        job_id text NOT NULL REFERENCES bulk_export_job (id) ON DELETE CASCADE,
        kind text NOT NULL,
        res_type text NOT NULL,
        file_no integer NOT NULL,
        seq integer NOT NULL,
        lines integer NOT NULL,
        content text NOT NULL,
        PRIMARY KEY (job_id, kind, res_type, file_no, seq)
      );
      ALTER TABLE bulk_export_part ALTER COLUMN content SET STORAGE EXTERNAL;

      -- Exports read each type in (last_updated, id) order, a keyset that follows the order rows were written in, so
      -- that the heap is read nearly sequentially (by id, random UUIDs, it was 30 times slower: a random heap fetch
      -- per row). The id makes the keyset an index range even when a large transaction gave thousands of rows the
      -- same last_updated; the index also serves everything (res_type, last_updated) served.
      CREATE INDEX resource_type_updated_id ON resource (res_type, last_updated, id);
      DROP INDEX resource_type_updated;
    `,
  },
  {
    version: 61,
    name: 'bulk export parts without a foreign key, compressed with lz4',
    sql: `
      -- An export's workers now write their parts in long transactions that read one shared snapshot. The foreign
      -- key's row lock on the job would make a cancelling DELETE wait for them while they wait for their heartbeat
      -- (an UPDATE queued behind that DELETE): parts are removed with their job by the code instead, and parts left
      -- by a worker that lost its job are swept (fhir-server/bulk/jobs.ts).
      ALTER TABLE bulk_export_part DROP CONSTRAINT IF EXISTS bulk_export_part_job_id_fkey;
      -- lz4 compresses NDJSON 4-10 times at a cost below that of writing the uncompressed TOAST chunks (measured: a
      -- 2,000-resource part inserted in about 40 ms instead of 60-100 ms); pglz was slower than no compression.
      -- Servers built without lz4 keep the parts uncompressed.
      DO $$
      BEGIN
        ALTER TABLE bulk_export_part ALTER COLUMN content SET COMPRESSION lz4;
        ALTER TABLE bulk_export_part ALTER COLUMN content SET STORAGE EXTENDED;
      EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'bulk_export_part stays uncompressed: %', SQLERRM;
      END $$;
    `,
  },
  {
    version: 70,
    name: 'asynchronous $reindex jobs; when each type was last reindexed; token displays normalised for :text',
    sql: `
      -- One row per system- or type-level $reindex (fhir-server/reindex). Worker processes claim accepted jobs, and
      -- jobs whose claimant stopped beating, with FOR UPDATE SKIP LOCKED. The position (type_index into types, and
      -- the last id done in that type) is written in the same transaction as each batch's index rows, so a job
      -- taken over after a crash resumes exactly after the last committed batch.
      CREATE TABLE reindex_job (
        id text PRIMARY KEY,
        -- accepted, in-progress, completed, failed
        status text NOT NULL,
        -- JSON array of the resource types, in the order they are walked
        types text NOT NULL,
        request_url text NOT NULL,
        client_id text,
        created_at timestamptz NOT NULL DEFAULT now(),
        -- When the job first took the stored SearchParameters: every type it finishes is indexed as of this moment.
        params_at timestamptz,
        claimed_by text,
        heartbeat_at timestamptz,
        type_index integer NOT NULL DEFAULT 0,
        after_id text NOT NULL DEFAULT '',
        -- JSON object: resources reindexed per type
        counts text NOT NULL DEFAULT '{}',
        -- The planner's estimate of the current type's resources, for progress
        type_estimate bigint,
        failure text,
        finished_at timestamptz
      );
      CREATE INDEX reindex_job_claim ON reindex_job (status, created_at);

      -- Per type, the moment as of which every resource's index rows were last recomputed by a finished $reindex:
      -- a search on a SearchParameter stored after it may miss older resources, and says so.
      CREATE TABLE reindex_state (res_type text PRIMARY KEY, indexed_at timestamptz NOT NULL);

      -- :text compares Coding.display and CodeableConcept.text as string search compares (lower case, Latin
      -- accents removed), so extraction now stores them normalised; the rows written before are normalised here
      -- the same way (NFD, combining marks U+0300-U+036F removed, NFC, lower()). lower() follows the database's
      -- collation, which under the C locale leaves non-ASCII capitals without an accent to strip (Ø, Greek,
      -- Cyrillic) as they are; $reindex rewrites those rows exactly.
      UPDATE search_token
        SET display = lower(normalize(regexp_replace(normalize(display, NFD), '[\\u0300-\\u036f]', '', 'g'), NFC))
        WHERE display IS NOT NULL;
    `,
  },
];

export const LATEST_SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;

/** Applies every migration (the store's and the given modules') not yet applied; returns the versions it applied. */
export async function migrate(db: Database, moduleMigrations: readonly Migration[] = []): Promise<number[]> {
  const all = [...MIGRATIONS, ...moduleMigrations].sort((a, b) => a.version - b.version);
  const versions = new Set<number>();
  for (const m of all) {
    if (versions.has(m.version)) {
      throw new Error(`Two migrations share version ${m.version}; each module has its own range (see Migration)`);
    }
    versions.add(m.version);
  }
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await tx.query(`CREATE TABLE IF NOT EXISTS schema_migration (
      version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const rows = await tx.query<{ version: number }>('SELECT version FROM schema_migration');
    const applied = new Set(rows.map((r) => Number(r.version)));
    const done: number[] = [];
    for (const migration of all) {
      if (applied.has(migration.version)) {
        continue;
      }
      await tx.exec(migration.sql);
      await tx.query('INSERT INTO schema_migration (version, name) VALUES ($1, $2)', [migration.version, migration.name]);
      done.push(migration.version);
    }
    return done;
  });
}
