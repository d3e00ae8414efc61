/** The adapters' own tables (versions 3000–3999), passed to `migrate(db, adapterMigrations)`. */
import type { Migration } from '../../fhir-server';

export const adapterMigrations: readonly Migration[] = [
  {
    version: 3000,
    name: 'hl7 raw message store and per-patient message clock',
    sql: `
      -- Every HL7 v2 message received (or replayed), whatever became of it: the raw bytes as they came, and the outcome.
      CREATE TABLE hl7_message (
        id uuid PRIMARY KEY,
        received_at timestamptz NOT NULL DEFAULT now(),
        -- The registered Organization that sent it; NULL when MSH-4 matched no facility (answered AR, kept for review).
        facility_id text,
        sending_facility text NOT NULL DEFAULT '',
        control_id text NOT NULL DEFAULT '',
        message_type text NOT NULL DEFAULT '',
        remote_address text,
        charset text,
        content bytea NOT NULL,
        -- sha256 of the content without MSH-7, so that a resend that only re-stamped its time is still a resend.
        content_hash text NOT NULL,
        outcome text NOT NULL CHECK (outcome IN ('AA', 'AE', 'AR')),
        -- The message this one repeated (a resend answered AA without processing again).
        duplicate_of uuid,
        -- The failed message this one is a replay of.
        replay_of uuid,
        replayed_by uuid,
        errors jsonb NOT NULL DEFAULT '[]',
        resources text[] NOT NULL DEFAULT '{}'
      );
      -- The idempotency key: one processed message per facility, control id and content.
      CREATE UNIQUE INDEX hl7_message_processed ON hl7_message (facility_id, control_id, content_hash)
        WHERE outcome = 'AA' AND duplicate_of IS NULL;
      CREATE INDEX hl7_message_facility_time ON hl7_message (facility_id, received_at);
      CREATE INDEX hl7_message_outcome_time ON hl7_message (outcome, received_at) WHERE outcome <> 'AA';
      CREATE INDEX hl7_message_control ON hl7_message (control_id);

      -- The newest message time (MSH-7) applied to a patient's demographics, per facility and MRN, so that an
      -- older ADT that arrives late never overwrites what a newer one wrote.
      CREATE TABLE hl7_patient_clock (
        facility_id text NOT NULL,
        mrn text NOT NULL,
        message_time timestamptz NOT NULL,
        PRIMARY KEY (facility_id, mrn)
      );
    `,
  },
];
