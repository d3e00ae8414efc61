/** The workflow's own tables (versions 4000–4999), applied by `migrate(db, referralMigrations)`. */
import type { Migration } from '../fhir-server';

export const referralMigrations: readonly Migration[] = [
  {
    version: 4000,
    name: 'subscription notifications waiting for delivery; workflow steps with outside effects',
    sql: `
      -- One row per notification not yet delivered; delivery takes them per subscription in seq order and deletes them.
      CREATE TABLE subscription_notification (
        seq bigserial PRIMARY KEY,
        subscription_id text NOT NULL,
        event_id text NOT NULL,
        -- The store's outbox sequence of the change: notifications go out in this order.
        event_seq bigint NOT NULL,
        -- When the change happened: a notification waits a short reorder window after it (see subscriptions.ts).
        occurred_at timestamptz NOT NULL,
        res_type text NOT NULL,
        res_id text NOT NULL,
        version_id integer NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (subscription_id, event_id)
      );
      CREATE INDEX subscription_notification_order ON subscription_notification (subscription_id, event_seq, seq);

      -- Which delivery job drains a subscription now (one at a time, so that deliveries stay in order); a lease
      -- that a crashed worker leaves behind expires.
      CREATE TABLE subscription_drain (
        subscription_id text PRIMARY KEY,
        holder text NOT NULL,
        until timestamptz NOT NULL
      );

      -- Steps whose effect lies outside the database (an HL7 message sent): done once, remembered here.
      CREATE TABLE referral_step_done (
        task_id text NOT NULL,
        step text NOT NULL,
        done_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (task_id, step)
      );
    `,
  },
];
