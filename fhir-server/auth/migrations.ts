/**
 * Security's own tables (versions 1000–1999, see Migration in db/migrations.ts): registered clients, the token
 * signing key, used client-assertion ids, the consent and care-relationship facts the access filters read, and the
 * append-only audit log.
 *
 * Consent rules and care relationships are derived from Consent, Encounter, ServiceRequest and Appointment
 * resources by triggers on `resource`, in the same transaction as the write, whatever path wrote it (REST, a
 * transaction bundle, an HL7 v2 adapter through the repository). A derived table read by the access filters costs
 * one index probe per candidate row; parsing Consents at query time would cost far more.
 */
import type { Migration } from '../db';

/** The code system of the security tag that names the organisation owning a resource (stamped on write). */
export const OWNER_TAG_SYSTEM = 'https://huimin.health/fhir/CodeSystem/owner-organization';

/**
 * The code system of security labels that restrict a resource to the organisations they name (the code is
 * `Organization/123`): other organisations' clients do not see it at all, whatever its patient's consent says.
 * Administrators, supervisors and the owner always see it. Supervision's findings about a hospital carry one.
 */
export const RESTRICTED_TO_SYSTEM = 'https://huimin.health/fhir/CodeSystem/restricted-to';

export const securityMigrations: readonly Migration[] = [
  {
    version: 1000,
    name: 'security: clients, signing keys, client assertion ids',
    sql: `
      CREATE TABLE auth_client (
        client_id text PRIMARY KEY,
        client_name text NOT NULL,
        -- facility-system, clinician, referral-coordinator, supervisor or admin
        role text NOT NULL,
        -- 'Organization/{id}': the organisation that owns the client and the data it writes
        organization text,
        -- a fixed practitioner identity for single-user clinician clients ('Practitioner/{id}')
        practitioner text,
        scope text NOT NULL,
        -- client_secret_basic or private_key_jwt
        auth_method text NOT NULL,
        -- scrypt$N$salt$hash; never the secret itself
        secret_hash text,
        -- the registered JWK Set (JSON) for private_key_jwt
        jwks text,
        disabled boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );

      -- The key that signs access tokens, shared by every worker process (created once, under a lock).
      CREATE TABLE auth_signing_key (
        kid text PRIMARY KEY,
        private_jwk text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      );

      -- jti of accepted client assertions, so that a captured assertion cannot be replayed before it expires.
      CREATE TABLE auth_assertion_jti (
        client_id text NOT NULL,
        jti text NOT NULL,
        expires_at timestamptz NOT NULL,
        PRIMARY KEY (client_id, jti)
      );
    `,
  },
  {
    version: 1001,
    name: 'security: consent rules and care relationships derived from resources by triggers',
    sql: `
      -- One row per denial of an active patient-privacy Consent. NULL organization: to everyone; NULL label: all data.
      CREATE TABLE consent_rule (
        consent_id text NOT NULL,
        patient_ref text NOT NULL,
        organization text,
        label_system text,
        label_code text
      );
      CREATE INDEX consent_rule_patient ON consent_rule (patient_ref);
      CREATE INDEX consent_rule_consent ON consent_rule (consent_id);

      -- "Organisation O has a care relationship with patient P": an Encounter, a referral (ServiceRequest) or an
      -- Appointment for P that O owns or that names O as provider, performer or participant.
      CREATE TABLE care_relationship (
        source_type text NOT NULL,
        source_id text NOT NULL,
        patient_ref text NOT NULL,
        organization text NOT NULL
      );
      CREATE INDEX care_relationship_lookup ON care_relationship (patient_ref, organization);
      CREATE INDEX care_relationship_source ON care_relationship (source_type, source_id);

      CREATE FUNCTION huimin_derive_consent_rules() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        doc jsonb;
        patient text;
        prov jsonb;
        actor jsonb;
        label jsonb;
        orgs text[];
      BEGIN
        DELETE FROM consent_rule WHERE consent_id = NEW.id;
        IF NEW.deleted OR NEW.content IS NULL THEN
          RETURN NULL;
        END IF;
        doc := NEW.content::jsonb;
        patient := doc #>> '{patient,reference}';
        IF doc->>'status' <> 'active' OR patient IS NULL OR patient !~ '^Patient/[A-Za-z0-9.-]+$'
           OR NOT EXISTS (SELECT 1 FROM jsonb_array_elements(COALESCE(doc #> '{scope,coding}', '[]'::jsonb)) c
                          WHERE c->>'code' = 'patient-privacy') THEN
          RETURN NULL;
        END IF;
        -- The base provision and its nested provisions; each one of type deny is a rule.
        FOR prov IN SELECT p FROM (SELECT doc->'provision' AS p
                                   UNION ALL SELECT jsonb_array_elements(COALESCE(doc #> '{provision,provision}', '[]'::jsonb))) x
                    WHERE p IS NOT NULL AND p->>'type' = 'deny' LOOP
          orgs := ARRAY(SELECT a #>> '{reference,reference}' FROM jsonb_array_elements(COALESCE(prov->'actor', '[]'::jsonb)) a
                        WHERE a #>> '{reference,reference}' LIKE 'Organization/%');
          IF array_length(orgs, 1) IS NULL THEN
            orgs := ARRAY[NULL::text];
          END IF;
          IF jsonb_array_length(COALESCE(prov->'securityLabel', '[]'::jsonb)) = 0 THEN
            INSERT INTO consent_rule (consent_id, patient_ref, organization)
              SELECT NEW.id, patient, o FROM unnest(orgs) o;
          ELSE
            FOR label IN SELECT jsonb_array_elements(prov->'securityLabel') LOOP
              INSERT INTO consent_rule (consent_id, patient_ref, organization, label_system, label_code)
                SELECT NEW.id, patient, o, label->>'system', label->>'code' FROM unnest(orgs) o WHERE label->>'code' IS NOT NULL;
            END LOOP;
          END IF;
        END LOOP;
        RETURN NULL;
      END $$;

      CREATE TRIGGER resource_consent_rules AFTER INSERT OR UPDATE ON resource
        FOR EACH ROW WHEN (NEW.res_type = 'Consent') EXECUTE FUNCTION huimin_derive_consent_rules();

      CREATE FUNCTION huimin_derive_care_relationships() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        doc jsonb;
      BEGIN
        DELETE FROM care_relationship WHERE source_type = NEW.res_type AND source_id = NEW.id;
        IF NEW.deleted OR NEW.content IS NULL THEN
          RETURN NULL;
        END IF;
        doc := NEW.content::jsonb;
        INSERT INTO care_relationship (source_type, source_id, patient_ref, organization)
        SELECT DISTINCT NEW.res_type, NEW.id, p, o
        FROM unnest(NEW.compartments) p,
             (SELECT s->>'code' AS o FROM jsonb_array_elements(COALESCE(doc #> '{meta,security}', '[]'::jsonb)) s
                WHERE s->>'system' = '${OWNER_TAG_SYSTEM}'
              UNION SELECT doc #>> '{serviceProvider,reference}'
              UNION SELECT x #>> '{reference}' FROM jsonb_array_elements(COALESCE(doc->'performer', '[]'::jsonb)) x
              UNION SELECT x #>> '{actor,reference}' FROM jsonb_array_elements(COALESCE(doc->'participant', '[]'::jsonb)) x
             ) orgs
        WHERE o LIKE 'Organization/%';
        RETURN NULL;
      END $$;

      CREATE TRIGGER resource_care_relationships AFTER INSERT OR UPDATE ON resource
        FOR EACH ROW WHEN (NEW.res_type IN ('Encounter', 'ServiceRequest', 'Appointment'))
        EXECUTE FUNCTION huimin_derive_care_relationships();
    `,
  },
  {
    version: 1002,
    name: 'audit: append-only audit log with a hash chain',
    sql: `
      CREATE TABLE audit_event (
        seq bigserial PRIMARY KEY,
        id text NOT NULL,
        recorded timestamptz NOT NULL,
        -- What AuditEvent searches look for, as prefixed keys in one GIN index (one index to maintain per insert):
        -- 'id:<uuid>', 'entity:Patient/1', 'agent:<client id>', 'agent:Organization/2', 'outcome:4', 'action:R',
        -- 'flag:break-the-glass'.
        keys text[] NOT NULL,
        -- the AuditEvent resource as JSON text: what the chain's hashes cover
        content text NOT NULL
      );
      CREATE INDEX audit_event_keys ON audit_event USING gin (keys);
      -- recorded only grows with seq: a BRIN index answers date ranges at almost no cost per insert.
      CREATE INDEX audit_event_recorded ON audit_event USING brin (recorded);

      -- The hash chain, one link per event, appended by the sealer in chain order: an event's position, the hash of
      -- the event before it and its own hash (over that and its content). A table of its own, so that sealing
      -- appends rows instead of updating audit_event (which is then never updated at all).
      CREATE TABLE audit_chain (
        chain_pos bigint PRIMARY KEY,
        seq bigint NOT NULL UNIQUE,
        prev_hash text NOT NULL,
        hash text NOT NULL
      );

      -- Append-only, both: no UPDATE, DELETE or TRUNCATE.
      CREATE FUNCTION huimin_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION '% is append-only (% refused)', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
      END $$;
      CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event
        FOR EACH ROW EXECUTE FUNCTION huimin_audit_append_only();
      CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event
        FOR EACH STATEMENT EXECUTE FUNCTION huimin_audit_append_only();
      CREATE TRIGGER audit_chain_append_only BEFORE UPDATE OR DELETE ON audit_chain
        FOR EACH ROW EXECUTE FUNCTION huimin_audit_append_only();
      CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE ON audit_chain
        FOR EACH STATEMENT EXECUTE FUNCTION huimin_audit_append_only();
    `,
  },
  {
    version: 1003,
    name: 'security: user accounts, sign-in sessions and authorization codes (SMART App Launch)',
    sql: `
      -- People who sign in to SMART apps (the portal): a role and an organisation like a client's, and for a
      -- clinician the Practitioner they are.
      CREATE TABLE auth_user (
        user_id text PRIMARY KEY,
        username text NOT NULL UNIQUE,
        display_name text NOT NULL,
        -- clinician, referral-coordinator, supervisor or admin
        role text NOT NULL,
        organization text,
        practitioner text,
        -- argon2id (PHC string); never the password itself
        password_hash text NOT NULL,
        disabled boolean NOT NULL DEFAULT false,
        -- wrong passwords in a row, and until when the account then waits
        failed_logins integer NOT NULL DEFAULT 0,
        locked_until timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );

      -- A sign-in: continued by its refresh token (only its hash is kept, rotated on every use), ended by sign-out,
      -- idleness (last_used_at), age (expires_at) or the account being disabled. Access tokens name their session.
      CREATE TABLE auth_session (
        session_id text PRIMARY KEY,
        user_id text NOT NULL REFERENCES auth_user (user_id),
        client_id text NOT NULL,
        scope text NOT NULL,
        refresh_hash text,
        created_at timestamptz NOT NULL DEFAULT now(),
        last_used_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL,
        ended_at timestamptz
      );
      CREATE INDEX auth_session_user ON auth_session (user_id) WHERE ended_at IS NULL;

      -- Authorization codes (hashed), single use, valid a minute, bound to the client, redirect URI and PKCE challenge.
      CREATE TABLE auth_code (
        code_hash text PRIMARY KEY,
        session_id text NOT NULL REFERENCES auth_session (session_id),
        client_id text NOT NULL,
        redirect_uri text NOT NULL,
        code_challenge text NOT NULL,
        expires_at timestamptz NOT NULL,
        used boolean NOT NULL DEFAULT false
      );
    `,
  },
  {
    version: 1004,
    name: 'security: resources restricted to named organisations',
    sql: `
      -- Few resources carry the label: a partial index keeps the read filter's "is it restricted?" probe to a lookup
      -- in a tiny index instead of a walk through every token row of each candidate resource.
      CREATE INDEX search_token_restricted ON search_token (res_type, res_id, value)
        WHERE code = '_security' AND system = '${RESTRICTED_TO_SYSTEM}';
    `,
  },
  {
    version: 1005,
    name: 'security: consent denials by resource type, code and period',
    sql: `
      -- A deny provision may name resource types (provision.class, system http://hl7.org/fhir/resource-types), codes
      -- found in the data (provision.code) and the time it is in force (provision.period, within the base
      -- provision's). NULL: any type, any data, open-ended.
      ALTER TABLE consent_rule ADD COLUMN resource_type text, ADD COLUMN code_system text, ADD COLUMN code_value text,
        ADD COLUMN period_start timestamptz, ADD COLUMN period_end timestamptz;

      -- A FHIR date or dateTime as an instant; the end of a period given as a date (or year, month) is the end of it.
      -- A value PostgreSQL cannot read gives NULL, an open bound: a denial then holds longer, never shorter.
      CREATE FUNCTION huimin_fhir_bound(value text, upper_bound boolean) RETURNS timestamptz LANGUAGE plpgsql STABLE AS $$
      BEGIN
        IF value IS NULL THEN
          RETURN NULL;
        ELSIF value ~ '^[0-9]{4}$' THEN
          RETURN (value || '-01-01')::timestamptz + CASE WHEN upper_bound THEN interval '1 year' ELSE interval '0' END;
        ELSIF value ~ '^[0-9]{4}-[0-9]{2}$' THEN
          RETURN (value || '-01')::timestamptz + CASE WHEN upper_bound THEN interval '1 month' ELSE interval '0' END;
        ELSIF value ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN
          RETURN value::timestamptz + CASE WHEN upper_bound THEN interval '1 day' ELSE interval '0' END;
        END IF;
        RETURN value::timestamptz;
      EXCEPTION WHEN others THEN
        RETURN NULL;
      END $$;

      CREATE FUNCTION huimin_consent_rules_of(consent_id text, content text) RETURNS void LANGUAGE plpgsql AS $$
      DECLARE
        doc jsonb;
        patient text;
        prov jsonb;
        orgs text[];
        types text[];
        codes jsonb;
        base_start timestamptz;
        base_end timestamptz;
        p_start timestamptz;
        p_end timestamptz;
      BEGIN
        DELETE FROM consent_rule WHERE consent_rule.consent_id = huimin_consent_rules_of.consent_id;
        IF content IS NULL THEN
          RETURN;
        END IF;
        doc := content::jsonb;
        patient := doc #>> '{patient,reference}';
        IF doc->>'status' <> 'active' OR patient IS NULL OR patient !~ '^Patient/[A-Za-z0-9.-]+$'
           OR NOT EXISTS (SELECT 1 FROM jsonb_array_elements(COALESCE(doc #> '{scope,coding}', '[]'::jsonb)) c
                          WHERE c->>'code' = 'patient-privacy') THEN
          RETURN;
        END IF;
        base_start := huimin_fhir_bound(doc #>> '{provision,period,start}', false);
        base_end := huimin_fhir_bound(doc #>> '{provision,period,end}', true);
        -- The base provision and its nested provisions; each one of type deny is a rule (for each organisation,
        -- label and resource type it names), in force within its own period and the base provision's.
        FOR prov IN SELECT p FROM (SELECT doc->'provision' AS p
                                   UNION ALL SELECT jsonb_array_elements(COALESCE(doc #> '{provision,provision}', '[]'::jsonb))) x
                    WHERE p IS NOT NULL AND p->>'type' = 'deny' LOOP
          orgs := ARRAY(SELECT a #>> '{reference,reference}' FROM jsonb_array_elements(COALESCE(prov->'actor', '[]'::jsonb)) a
                        WHERE a #>> '{reference,reference}' LIKE 'Organization/%');
          IF array_length(orgs, 1) IS NULL THEN
            orgs := ARRAY[NULL::text];
          END IF;
          -- A class that is not a resource type (a profile, a document type) cannot be told apart row by row: the
          -- denial then covers every type, so that what the patient meant to withhold is withheld.
          types := ARRAY(SELECT c->>'code' FROM jsonb_array_elements(COALESCE(prov->'class', '[]'::jsonb)) c);
          IF array_length(types, 1) IS NULL OR EXISTS (
               SELECT 1 FROM jsonb_array_elements(prov->'class') c
               WHERE COALESCE(c->>'system', 'http://hl7.org/fhir/resource-types') <> 'http://hl7.org/fhir/resource-types'
                  OR COALESCE(c->>'code', '') !~ '^[A-Z][A-Za-z]+$') THEN
            types := ARRAY[NULL::text];
          END IF;
          -- Each coding of provision.code (a code the data carries, e.g. a diagnosis or a document type); none: all data.
          codes := COALESCE((SELECT jsonb_agg(jsonb_build_object('system', c->>'system', 'code', c->>'code'))
                             FROM jsonb_array_elements(COALESCE(prov->'code', '[]'::jsonb)) cc,
                                  jsonb_array_elements(COALESCE(cc->'coding', '[]'::jsonb)) c
                             WHERE c->>'code' IS NOT NULL), '[{}]'::jsonb);
          p_start := GREATEST(base_start, huimin_fhir_bound(prov #>> '{period,start}', false));
          p_end := LEAST(base_end, huimin_fhir_bound(prov #>> '{period,end}', true));
          IF jsonb_array_length(COALESCE(prov->'securityLabel', '[]'::jsonb)) = 0 THEN
            INSERT INTO consent_rule (consent_id, patient_ref, organization, resource_type, code_system, code_value, period_start, period_end)
              SELECT huimin_consent_rules_of.consent_id, patient, o, t, k->>'system', k->>'code', p_start, p_end
              FROM unnest(orgs) o, unnest(types) t, jsonb_array_elements(codes) k;
          ELSE
            INSERT INTO consent_rule (consent_id, patient_ref, organization, label_system, label_code, resource_type, code_system, code_value, period_start, period_end)
              SELECT huimin_consent_rules_of.consent_id, patient, o, l->>'system', l->>'code', t, k->>'system', k->>'code', p_start, p_end
              FROM unnest(orgs) o, unnest(types) t, jsonb_array_elements(codes) k, jsonb_array_elements(prov->'securityLabel') l
              WHERE l->>'code' IS NOT NULL;
          END IF;
        END LOOP;
      END $$;

      CREATE OR REPLACE FUNCTION huimin_derive_consent_rules() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM huimin_consent_rules_of(NEW.id, CASE WHEN NEW.deleted THEN NULL ELSE NEW.content END);
        RETURN NULL;
      END $$;

      -- The stored Consents again, by the new rule.
      SELECT huimin_consent_rules_of(id, content) FROM resource WHERE res_type = 'Consent' AND NOT deleted;
    `,
  },
  {
    version: 1006,
    name: "security: each Binary's securityContext, for the read filter",
    sql: `
      -- "Binary B is governed by resource T/I": a Binary is visible only to callers who may read what governs it,
      -- in searches, history and _include as in reads. Derived by a trigger, like the consent rules.
      CREATE TABLE binary_security_context (
        binary_id text PRIMARY KEY,
        context_type text NOT NULL,
        context_id text NOT NULL
      );

      CREATE FUNCTION huimin_derive_binary_context() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        context text;
      BEGIN
        DELETE FROM binary_security_context WHERE binary_id = NEW.id;
        IF NEW.deleted OR NEW.content IS NULL THEN
          RETURN NULL;
        END IF;
        -- json, not jsonb: an inline Binary's data may be large, and json only checks the text.
        context := NEW.content::json #>> '{securityContext,reference}';
        IF context ~ '^[A-Z][A-Za-z]+/[A-Za-z0-9.-]{1,64}$' THEN
          INSERT INTO binary_security_context (binary_id, context_type, context_id)
            VALUES (NEW.id, split_part(context, '/', 1), split_part(context, '/', 2));
        END IF;
        RETURN NULL;
      END $$;

      CREATE TRIGGER resource_binary_context AFTER INSERT OR UPDATE ON resource
        FOR EACH ROW WHEN (NEW.res_type = 'Binary') EXECUTE FUNCTION huimin_derive_binary_context();

      INSERT INTO binary_security_context (binary_id, context_type, context_id)
        SELECT id, split_part(ctx, '/', 1), split_part(ctx, '/', 2)
        FROM (SELECT id, content::json #>> '{securityContext,reference}' AS ctx FROM resource
              WHERE res_type = 'Binary' AND NOT deleted AND content IS NOT NULL) b
        WHERE ctx ~ '^[A-Z][A-Za-z]+/[A-Za-z0-9.-]{1,64}$';
    `,
  },
];
