/**
 * The recognition module's own tables (versions 8000–8999), applied by `migrate(db, recognitionMigrations)`:
 * - `recognition_item`: the health bureau's per-item table: how many days a result stays recognisable, and what the
 *   test costs the patient (for "cost saved"). Edited through `$recognition-item-set` (admin, supervisor).
 * - `recognition_decision`: one row per decided advisory (accepted or overridden), for the bureau's figures.
 * - `recognition_lookup`: one row per look-up of other hospitals' results (on demand or for an order).
 */
import type { Migration } from '../fhir-server';

/** The published provincial examples, by LOINC code (both the mass and the molar code where hospitals use either). */
const SEED: Array<[string, string, number]> = [
  ['2823-3', 'Potassium [Moles/volume] in Serum or Plasma', 7],
  ['2951-2', 'Sodium [Moles/volume] in Serum or Plasma', 7],
  ['2075-0', 'Chloride [Moles/volume] in Serum or Plasma', 7],
  ['17861-6', 'Calcium [Mass/volume] in Serum or Plasma', 7],
  ['2885-2', 'Protein [Mass/volume] in Serum or Plasma', 30],
  ['1751-7', 'Albumin [Mass/volume] in Serum or Plasma', 30],
  ['2345-7', 'Glucose [Mass/volume] in Serum or Plasma', 30],
  ['14749-6', 'Glucose [Moles/volume] in Serum or Plasma', 30],
  ['2093-3', 'Cholesterol [Mass/volume] in Serum or Plasma', 30],
  ['2571-8', 'Triglyceride [Mass/volume] in Serum or Plasma', 30],
  ['2085-9', 'Cholesterol in HDL [Mass/volume] in Serum or Plasma', 30],
  ['13457-7', 'Cholesterol in LDL [Mass/volume] in Serum or Plasma by calculation', 30],
  ['18262-6', 'Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay', 30],
  ['1975-2', 'Bilirubin.total [Mass/volume] in Serum or Plasma', 30],
  ['4548-4', 'Hemoglobin A1c/Hemoglobin.total in Blood', 60],
  ['17856-6', 'Hemoglobin A1c/Hemoglobin.total in Blood by HPLC', 60],
];

const quote = (s: string): string => `'${s.replace(/'/g, "''")}'`;

export const recognitionMigrations: readonly Migration[] = [
  {
    version: 8000,
    name: 'recognition items (validity windows, prices), decisions and look-ups',
    sql: `
      CREATE TABLE recognition_item (
        system text NOT NULL,
        code text NOT NULL,
        display text,
        -- Days after the specimen was taken during which the result stands in for a new test.
        window_days integer NOT NULL CHECK (window_days BETWEEN 1 AND 3650),
        -- What the patient pays for the test (yuan); NULL until the bureau sets it.
        price numeric(10, 2) CHECK (price >= 0),
        updated_at timestamptz NOT NULL DEFAULT now(),
        updated_by text NOT NULL DEFAULT 'seed',
        PRIMARY KEY (system, code)
      );
      INSERT INTO recognition_item (system, code, display, window_days) VALUES
        ${SEED.map(([code, display, days]) => `('http://loinc.org', ${quote(code)}, ${quote(display)}, ${days})`).join(',\n        ')};

      CREATE TABLE recognition_decision (
        issue_id text PRIMARY KEY,
        kind text NOT NULL CHECK (kind IN ('test', 'medication')),
        outcome text NOT NULL CHECK (outcome IN ('recognised', 'not-recognised')),
        reason_code text,
        -- false for the reasons that are not refusals (outside result not obtainable, serial monitoring).
        counted boolean NOT NULL,
        institution text,
        department text,
        doctor text,
        item_system text,
        item_code text,
        -- The item's price when the decision was taken (cost saved when recognised).
        price numeric(10, 2),
        decided_at timestamptz NOT NULL DEFAULT now(),
        decided_by text
      );
      CREATE INDEX recognition_decision_month ON recognition_decision (decided_at);

      CREATE TABLE recognition_lookup (
        id bigserial PRIMARY KEY,
        -- Set for look-ups made for an order (its Type/id), so that an order counts once however often it is checked.
        lookup_key text UNIQUE,
        at timestamptz NOT NULL DEFAULT now(),
        via text NOT NULL CHECK (via IN ('on-demand', 'order')),
        institution text,
        department text,
        doctor text,
        patient text NOT NULL,
        item_code text,
        -- Results found from hospitals other than the asking one.
        found integer NOT NULL
      );
      CREATE INDEX recognition_lookup_month ON recognition_lookup (at);
    `,
  },
];
