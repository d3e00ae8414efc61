/**
 * Consent decisions for other modules (the referral engine asks before it sends a patient's referral to a
 * receiver), from the same rules that filter reads: one row per deny provision of an active patient-privacy
 * Consent, derived by a trigger (see migrations.ts).
 */
import type { Queryable } from '../db';

export class ConsentDecisions {
  constructor(private readonly db: Queryable) {}

  /**
   * The Consent that denies sharing the patient's whole record with the organisation (or with everyone), now, if
   * any. Denials of labelled or coded data only (e.g. mental health) do not stop the sharing: reads hide that data
   * from the receiver. With `resourceType`, a denial of that type of record counts too (e.g. sharing DocumentReferences).
   */
  async wholeRecordDenial(patient: string, organization: string, resourceType?: string): Promise<string | undefined> {
    const rows = await this.db.query<{ consent_id: string }>(
      `SELECT consent_id FROM consent_rule
        WHERE patient_ref = $1 AND (organization IS NULL OR organization = $2) AND label_code IS NULL AND code_value IS NULL
          AND (resource_type IS NULL OR resource_type = $3)
          AND (period_start IS NULL OR period_start <= now()) AND (period_end IS NULL OR period_end > now())
        LIMIT 1`,
      [patient, organization, resourceType ?? null],
    );
    return rows[0]?.consent_id;
  }

  /**
   * How much of these patients' records active Consents withhold from the organisation now: the whole record, part
   * of it (some types, labels, codes or a period of it), or nothing. Says neither which Consent nor what is withheld:
   * naming a label (say, mental health) would itself disclose what the patient asked to keep private.
   */
  async withholding(patients: readonly string[], organization: string): Promise<'whole' | 'part' | 'none'> {
    const rows = await this.db.query<{ whole: boolean }>(
      `SELECT (label_code IS NULL AND code_value IS NULL AND resource_type IS NULL) AS whole FROM consent_rule
        WHERE patient_ref = ANY($1::text[]) AND (organization IS NULL OR organization = $2)
          AND (period_start IS NULL OR period_start <= now()) AND (period_end IS NULL OR period_end > now())`,
      [patients, organization],
    );
    return rows.some((r) => r.whole) ? 'whole' : rows.length > 0 ? 'part' : 'none';
  }
}
