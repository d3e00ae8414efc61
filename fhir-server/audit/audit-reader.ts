/**
 * A reader of the audit log for other modules (supervision's audit review): the stored facts of each event in log
 * order, from a position on. Modules never query `audit_event` themselves; they keep the last position they read.
 */
import type { Queryable } from '../db';
import type { StoredAuditFacts } from './audit-event';

export interface AuditEntry {
  /** Position in the log (increases with insertion); pass the last one read as `afterPosition` to continue. */
  position: number;
  facts: StoredAuditFacts;
}

/** At most `limit` (1–10 000) events after `afterPosition`, oldest first. */
export async function readAuditLog(db: Queryable, afterPosition: number, limit = 1000): Promise<AuditEntry[]> {
  const bounded = Math.max(1, Math.min(10_000, Math.floor(limit)));
  const rows = await db.query<{ seq: string; content: string }>(
    'SELECT seq::text AS seq, content FROM audit_event WHERE seq > $1 ORDER BY seq LIMIT $2',
    [afterPosition, bounded],
  );
  return rows.map((r) => ({ position: Number(r.seq), facts: JSON.parse(r.content) as StoredAuditFacts }));
}
