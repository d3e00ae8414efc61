/**
 * The audit log's hash chain: each sealed event carries the hash of the one before it, and its own hash covers
 * that and its content. Changing, removing or reordering a sealed event in the database breaks the chain at that
 * point, which `verifyAuditChain` (and `npm run audit:verify`) reports.
 */
import { createHash } from 'node:crypto';
import type { Queryable } from '../db';

export const GENESIS_HASH = '0'.repeat(64);

export function chainHash(previousHash: string, content: string): string {
  return createHash('sha256').update(previousHash).update('\n').update(content).digest('hex');
}

export interface ChainReport {
  ok: boolean;
  /** Sealed events checked. */
  checked: number;
  /** Events not yet sealed (recorded in the last moments, or left behind by a stopped sealer). */
  unsealed: number;
  problems: string[];
}

/** Walks the whole chain in order and checks every link; stops listing problems after 100. */
export async function verifyAuditChain(q: Queryable, pageSize = 5000): Promise<ChainReport> {
  const problems: string[] = [];
  let previous = GENESIS_HASH;
  let expectedPos = 1;
  let checked = 0;
  for (;;) {
    // A LEFT JOIN, so that a link whose event was removed shows up as a link without content.
    const rows = await q.query<{ id: string | null; chain_pos: string | number; prev_hash: string; hash: string; content: string | null }>(
      `SELECT e.id, c.chain_pos, c.prev_hash, c.hash, e.content FROM audit_chain c LEFT JOIN audit_event e ON e.seq = c.seq
       WHERE c.chain_pos >= $1 ORDER BY c.chain_pos LIMIT $2`,
      [expectedPos, pageSize],
    );
    if (rows.length === 0) {
      break;
    }
    for (const row of rows) {
      const pos = Number(row.chain_pos);
      if (pos !== expectedPos) {
        problems.push(`events ${expectedPos} to ${pos - 1} of the chain are missing (deleted?)`);
        previous = row.prev_hash;
      }
      if (row.prev_hash !== previous) {
        problems.push(`event ${pos} (${row.id}) does not link to the event before it`);
      }
      if (row.content === null) {
        problems.push(`event ${pos} of the chain was removed from the audit log`);
      } else if (chainHash(row.prev_hash, row.content) !== row.hash) {
        problems.push(`event ${pos} (${row.id}) was changed after it was sealed`);
      }
      previous = row.hash;
      expectedPos = pos + 1;
      checked++;
      if (problems.length >= 100) {
        break;
      }
    }
    if (problems.length >= 100) {
      break;
    }
  }
  const unsealed = await q.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM audit_event e WHERE NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.seq = e.seq)',
  );
  return { ok: problems.length === 0, checked, unsealed: Number(unsealed[0].n), problems };
}
