/** The registry and document-sharing module's own tables (versions 7500–7999), applied by `migrate(db, registryMigrations)`. */
import type { Migration } from '../fhir-server';

export const registryMigrations: readonly Migration[] = [
  {
    version: 7500,
    name: 'document content stored once by content hash, in chunks',
    sql: `
      -- One row per distinct content (sha256 of its bytes): a document sent twice, or by two hospitals, is kept once.
      CREATE TABLE document_content (
        hash text PRIMARY KEY,
        size bigint NOT NULL,
        chunk_count integer NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      );

      -- The bytes, in chunks of at most 256 KiB, so that no upload or download holds a whole document in memory.
      -- An upload writes its chunks under 'upload:<uuid>' as they arrive; once its hash is known they are renamed to
      -- 'sha256:<hex>' (or dropped, when that content is stored already).
      CREATE TABLE document_content_chunk (
        content_key text NOT NULL,
        seq integer NOT NULL,
        data bytea NOT NULL,
        PRIMARY KEY (content_key, seq)
      );
    `,
  },
  {
    version: 7501,
    name: 'upload chunks carry their time, so that those of uploads a crash abandoned can be swept',
    sql: `
      ALTER TABLE document_content_chunk ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();
      CREATE INDEX document_content_chunk_uploads ON document_content_chunk (created_at) WHERE content_key LIKE 'upload:%';
    `,
  },
  {
    version: 7502,
    name: 'which Binary uses which content, so that content no Binary uses can be collected',
    sql: `
      -- One row per Binary that refers to stored content, written in the Binary's own transaction (content-store.ts).
      CREATE TABLE document_content_use (
        binary_id text PRIMARY KEY,
        hash text NOT NULL
      );
      CREATE INDEX document_content_use_hash ON document_content_use (hash);
      -- last_used: every upload or Binary write that uses the content sets it (and so locks the row in its
      -- transaction); the collector leaves alone what was used within its grace period, and what is locked.
      -- tracked: content stored before uses were recorded is never collected (its users are not known).
      ALTER TABLE document_content ADD COLUMN last_used timestamptz NOT NULL DEFAULT now();
      ALTER TABLE document_content ADD COLUMN tracked boolean NOT NULL DEFAULT false;
      ALTER TABLE document_content ALTER COLUMN tracked SET DEFAULT true;
      CREATE INDEX document_content_collectable ON document_content (last_used) WHERE tracked;
    `,
  },
];
