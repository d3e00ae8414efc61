/**
 * Supervision's own tables (versions 5000–5999), applied by `migrate(db, supervisionMigrations)`.
 *
 * The module never reads the store's tables. It keeps a read model instead: fact tables filled from the store's
 * change events (one row per prescription, encounter, order or result, referral Task, day of data per institution),
 * on which rules and indicators are computed in SQL. Rules themselves are versioned rows; findings are FHIR
 * DetectedIssues in the store, indexed here by rule and key so that a suspicion is raised once.
 */
import type { Migration } from '../fhir-server';

export const supervisionMigrations: readonly Migration[] = [
  {
    version: 5000,
    name: 'supervision: versioned rules, fact tables, findings, cursors',
    sql: `
      -- Every version of every rule; the highest version of an id is the one in force. Never updated: a change is a
      -- new version, so that every finding can name the version that produced it.
      CREATE TABLE sv_rule (
        id text NOT NULL,
        version integer NOT NULL,
        kind text NOT NULL,
        category text NOT NULL CHECK (category IN ('policy', 'management', 'medical')),
        title text NOT NULL,
        severity text NOT NULL CHECK (severity IN ('high', 'moderate', 'low')),
        status text NOT NULL CHECK (status IN ('active', 'retired')),
        params jsonb NOT NULL,
        effective_start timestamptz,
        effective_end timestamptz,
        legal_basis text NOT NULL,
        changed_by text NOT NULL,
        changed_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (id, version)
      );

      CREATE TABLE sv_organization (
        id text PRIMARY KEY,
        version integer NOT NULL,
        name text,
        part_of text,
        active boolean NOT NULL,
        provider boolean NOT NULL
      );

      -- Prescription lines (MedicationRequest); group_id is the prescription they belong to (groupIdentifier).
      CREATE TABLE sv_prescription (
        id text PRIMARY KEY,
        version integer NOT NULL,
        institution text,
        department text,
        practitioner text,
        patient text,
        encounter text,
        group_id text NOT NULL,
        authored timestamptz NOT NULL,
        status text NOT NULL,
        setting text NOT NULL,
        drug_system text,
        drug_code text,
        ingredient text,
        days_supply numeric,
        validity_days numeric,
        long_term boolean NOT NULL,
        stable_chronic boolean NOT NULL,
        extension_reason text,
        reason_codes text[] NOT NULL,
        amount_g numeric,
        patient_gender text,
        patient_birth date
      );
      CREATE INDEX sv_prescription_group ON sv_prescription (institution, group_id);
      CREATE INDEX sv_prescription_patient ON sv_prescription (patient, ingredient, authored);
      CREATE INDEX sv_prescription_authored ON sv_prescription (authored);
      CREATE INDEX sv_prescription_encounter ON sv_prescription (encounter);

      CREATE TABLE sv_encounter (
        id text PRIMARY KEY,
        version integer NOT NULL,
        institution text,
        department text,
        practitioner text,
        patient text,
        class text,
        status text NOT NULL,
        start_at timestamptz,
        end_at timestamptz,
        principal_dx text,
        planned boolean NOT NULL
      );
      CREATE INDEX sv_encounter_patient ON sv_encounter (patient, institution, start_at);
      CREATE INDEX sv_encounter_end ON sv_encounter (end_at);
      CREATE INDEX sv_encounter_start ON sv_encounter (start_at);

      -- Orders (ServiceRequest), procedures (Procedure) and results (Observation, DiagnosticReport).
      CREATE TABLE sv_order (
        res_type text NOT NULL,
        id text NOT NULL,
        version integer NOT NULL,
        kind text NOT NULL CHECK (kind IN ('order', 'procedure', 'result')),
        institution text,
        department text,
        practitioner text,
        patient text,
        code_system text,
        code text,
        at timestamptz,
        status text NOT NULL,
        repeat_reason text,
        patient_gender text,
        patient_birth date,
        PRIMARY KEY (res_type, id)
      );
      CREATE INDEX sv_order_patient_code ON sv_order (patient, code, code_system, at);
      CREATE INDEX sv_order_at ON sv_order (at);

      CREATE TABLE sv_referral (
        task_id text PRIMARY KEY,
        version integer NOT NULL,
        service_request text,
        referrer text,
        receiver text,
        practitioner text,
        encounter text,
        direction text,
        status text NOT NULL,
        authored timestamptz,
        deadline timestamptz,
        accepted_at timestamptz,
        responded_at timestamptz
      );
      CREATE INDEX sv_referral_authored ON sv_referral (authored);
      CREATE INDEX sv_referral_deadline ON sv_referral (deadline) WHERE responded_at IS NULL;

      -- Which institution sent data on which day (by the owner of each resource written).
      CREATE TABLE sv_feed (
        institution text NOT NULL,
        day date NOT NULL,
        resources bigint NOT NULL,
        last_at timestamptz NOT NULL,
        PRIMARY KEY (institution, day)
      );

      -- Care relationships (patient, organisation) as the facts show them: encounters, orders, appointments.
      CREATE TABLE sv_care (
        patient text NOT NULL,
        organization text NOT NULL,
        PRIMARY KEY (patient, organization)
      );

      -- Read volume per client and day, and the patients each clinician client touched, from the audit log.
      CREATE TABLE sv_audit_day (
        client_id text NOT NULL,
        day date NOT NULL,
        role text,
        organization text,
        practitioner text,
        reads bigint NOT NULL,
        PRIMARY KEY (client_id, day)
      );
      CREATE TABLE sv_audit_patient (
        client_id text NOT NULL,
        day date NOT NULL,
        patient text NOT NULL,
        organization text,
        practitioner text,
        PRIMARY KEY (client_id, day, patient)
      );
      CREATE TABLE sv_audit_break_glass (
        audit_id text PRIMARY KEY,
        recorded timestamptz NOT NULL,
        client_id text,
        organization text,
        practitioner text,
        patients text[] NOT NULL,
        reason text
      );

      -- One row per finding (DetectedIssue), unique per rule and key: the same suspicion is never raised twice.
      CREATE TABLE sv_finding (
        rule_id text NOT NULL,
        key text NOT NULL,
        issue_id text NOT NULL UNIQUE,
        rule_version integer NOT NULL,
        institution text,
        department text,
        practitioner text,
        occurred_at timestamptz NOT NULL,
        detected_at timestamptz NOT NULL DEFAULT now(),
        step text NOT NULL,
        step_task text,
        step_due timestamptz,
        -- the current step went past its deadline (its Task says so in businessStatus)
        overdue boolean NOT NULL DEFAULT false,
        outcome text,
        closed_at timestamptz,
        PRIMARY KEY (rule_id, key)
      );
      CREATE INDEX sv_finding_occurred ON sv_finding (occurred_at);
      CREATE INDEX sv_finding_due ON sv_finding (step_due) WHERE closed_at IS NULL;

      -- Positions and once-only markers (audit log position, monthly reports done).
      CREATE TABLE sv_cursor (
        name text PRIMARY KEY,
        position bigint NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
      );
    `,
  },
  {
    version: 5001,
    name: 'supervision: dependent facts refreshed, tombstones, findings whose facts changed',
    sql: `
      -- The Encounter an order or result was recorded under (its department comes from it), and the Conditions an
      -- encounter's principal diagnosis was read from: a change of either refreshes the facts derived from it.
      ALTER TABLE sv_order ADD COLUMN encounter text;
      CREATE INDEX sv_order_encounter ON sv_order (encounter) WHERE encounter IS NOT NULL;
      ALTER TABLE sv_encounter ADD COLUMN conditions text[] NOT NULL DEFAULT '{}';
      CREATE INDEX sv_encounter_conditions ON sv_encounter USING gin (conditions);
      CREATE INDEX sv_referral_service_request ON sv_referral (service_request);
      CREATE INDEX sv_order_patient ON sv_order (patient) WHERE kind <> 'result';

      -- The version at which a resource was deleted: an older version's event handled late (another batch, another
      -- process, a retry) must not bring its facts back.
      CREATE TABLE sv_tombstone (
        res_type text NOT NULL,
        id text NOT NULL,
        version integer NOT NULL,
        PRIMARY KEY (res_type, id)
      );

      -- The records a finding implicates (to find the findings a change of their facts concerns), and when its facts
      -- changed so that the rule no longer holds (the finding stays for review, with a note).
      ALTER TABLE sv_finding ADD COLUMN implicated text[];
      ALTER TABLE sv_finding ADD COLUMN facts_changed_at timestamptz;
      CREATE INDEX sv_finding_implicated ON sv_finding USING gin (implicated) WHERE closed_at IS NULL;

      -- Each worker process's evaluation lag, published at most once a second, so that $supervision-status answers
      -- for every process and not only the one it reached.
      CREATE TABLE sv_worker (
        worker text PRIMARY KEY,
        lag jsonb NOT NULL,
        updated_at timestamptz NOT NULL
      );
    `,
  },
];
