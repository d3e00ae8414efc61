/**
 * Audit review: the audit log (read through fhir-server's `readAuditLog`, from the position last read) is folded
 * into three small fact tables: reads per client and day, the patients each clinician client touched per day, and
 * every break-the-glass access. The audit rules (reading without a care relationship, break-the-glass, unusual
 * volume) are then evaluated over the days and accesses that changed, like any other rule.
 */
import { readAuditLog, type Database } from '../fhir-server';

const CURSOR = 'audit-log';
const BATCH = 5000;

export interface AuditIngest {
  /** Days (YYYY-MM-DD) whose audit facts changed. */
  days: string[];
  /** Ids of the AuditEvents that broke the glass. */
  breakGlass: string[];
  events: number;
}

export class AuditReview {
  constructor(private readonly db: Database) {}

  /** Folds what the log gained since the last call into the audit facts (one process at a time). */
  async ingest(maxBatches = 20): Promise<AuditIngest> {
    const result: AuditIngest = { days: [], breakGlass: [], events: 0 };
    const days = new Set<string>();
    for (let i = 0; i < maxBatches; i++) {
      const more = await this.db.transaction(async (tx) => {
        const [lock] = await tx.query<{ ok: boolean }>(`SELECT pg_try_advisory_xact_lock(hashtext('sv_audit_review')) AS ok`);
        if (!lock.ok) {
          return false;
        }
        const [cursor] = await tx.query<{ position: string }>('SELECT position FROM sv_cursor WHERE name = $1', [CURSOR]);
        const entries = await readAuditLog(tx, cursor ? Number(cursor.position) : 0, BATCH);
        if (entries.length === 0) {
          return false;
        }
        const reads = new Map<string, { client: string; day: string; role?: string; org?: string; practitioner?: string; reads: number }>();
        const patients: Array<[string, string, string, string | null, string | null]> = [];
        for (const { facts } of entries) {
          const client = facts.agent.clientId;
          if (!client || facts.action !== 'R' || facts.status === 0) {
            continue;
          }
          const day = facts.recorded.slice(0, 10);
          days.add(day);
          const key = `${client} ${day}`;
          const entry = reads.get(key) ?? { client, day, role: facts.agent.role, org: facts.agent.organization, practitioner: facts.agent.practitioner, reads: 0 };
          entry.reads++;
          reads.set(key, entry);
          const touched = facts.entities.filter((e) => e.startsWith('Patient/'));
          if (facts.agent.role === 'clinician') {
            for (const patient of touched) {
              patients.push([client, day, patient, facts.agent.organization ?? null, facts.agent.practitioner ?? null]);
            }
          }
          if (facts.breakGlassReason || facts.purposeOfUse === 'BTG') {
            result.breakGlass.push(facts.id);
            await tx.query(
              `INSERT INTO sv_audit_break_glass (audit_id, recorded, client_id, organization, practitioner, patients, reason)
               VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
              [facts.id, facts.recorded, client, facts.agent.organization ?? null, facts.agent.practitioner ?? null, touched, facts.breakGlassReason ?? null],
            );
          }
        }
        const list = [...reads.values()];
        if (list.length > 0) {
          await tx.query(
            `INSERT INTO sv_audit_day (client_id, day, role, organization, practitioner, reads)
             SELECT * FROM unnest($1::text[], $2::date[], $3::text[], $4::text[], $5::text[], $6::bigint[])
             ON CONFLICT (client_id, day) DO UPDATE SET reads = sv_audit_day.reads + EXCLUDED.reads`,
            [list.map((r) => r.client), list.map((r) => r.day), list.map((r) => r.role ?? null), list.map((r) => r.org ?? null), list.map((r) => r.practitioner ?? null), list.map((r) => r.reads)],
          );
        }
        if (patients.length > 0) {
          await tx.query(
            `INSERT INTO sv_audit_patient (client_id, day, patient, organization, practitioner)
             SELECT * FROM unnest($1::text[], $2::date[], $3::text[], $4::text[], $5::text[]) ON CONFLICT DO NOTHING`,
            [patients.map((p) => p[0]), patients.map((p) => p[1]), patients.map((p) => p[2]), patients.map((p) => p[3]), patients.map((p) => p[4])],
          );
        }
        const last = entries[entries.length - 1].position;
        await tx.query(
          `INSERT INTO sv_cursor (name, position, updated_at) VALUES ($1, $2, now())
           ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, updated_at = now()`,
          [CURSOR, last],
        );
        result.events += entries.length;
        return entries.length === BATCH;
      });
      if (!more) {
        break;
      }
    }
    result.days = [...days].sort();
    return result;
  }
}
