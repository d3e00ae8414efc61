/**
 * The audit log's writer and sealer.
 *
 * Writer: every request's AuditEvent is inserted before the response is sent, so that no answered request goes
 * unaudited when the process dies. Requests that finish together share one INSERT (group commit: while one insert
 * is in flight, the next batch gathers), and the insert commits with `synchronous_commit = off` for that statement
 * only: PostgreSQL has the row once the insert returns, and writes its WAL to disk within a fraction of a second
 * without the request waiting for the disk. What a crash of the PostgreSQL server itself can lose is the last
 * ~0.6 s of audit (never of data, whose commits stay synchronous); a crash of Huimin's process loses nothing.
 *
 * Sealer: one process at a time (advisory lock) takes the unsealed events in insertion order and appends their
 * links to the chain (audit_chain: position, hash of the previous event, own hash). Chaining after the fact keeps
 * concurrent workers from serialising on the chain's head while they answer requests.
 */
import type { Database } from '../db';
import type { AuditRecord } from './audit-event';
import { chainHash, GENESIS_HASH } from './hash-chain';

/** Arbitrary constant naming "seal the audit chain" among advisory locks. */
const SEAL_LOCK = 7_202_611_252;
const SEAL_BATCH = 2000;

interface Waiter {
  record: AuditRecord;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export interface AuditLogOptions {
  /** How often the sealer looks for unsealed events (ms). */
  sealIntervalMs?: number;
  onError?: (err: unknown, what: string) => void;
}

export class AuditLog {
  private pending: Waiter[] = [];
  private flushing = false;
  private sealTimer: NodeJS.Timeout | undefined;
  private sealing: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly db: Database,
    private readonly options: AuditLogOptions = {},
  ) {}

  /** Resolves once the event is in the database. */
  append(record: AuditRecord): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ record, resolve, reject });
      if (!this.flushing) {
        this.flushing = true;
        // Let the requests finishing in this turn of the event loop join the same insert.
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, 1000);
      try {
        await insertAuditRecords(this.db, batch.map((w) => w.record));
        batch.forEach((w) => w.resolve());
      } catch (err) {
        batch.forEach((w) => w.reject(err));
      }
    }
    this.flushing = false;
  }

  /** Starts sealing in the background. */
  start(): void {
    const interval = this.options.sealIntervalMs ?? 250;
    const tick = (): void => {
      if (this.stopped) {
        return;
      }
      this.sealing = this.seal()
        .then(() => undefined)
        .catch((err) => this.options.onError?.(err, 'sealing the audit chain'))
        .finally(() => {
          if (!this.stopped) {
            this.sealTimer = setTimeout(tick, interval);
          }
        });
    };
    this.sealTimer = setTimeout(tick, interval);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.sealTimer);
    await this.sealing;
    while (this.flushing || this.pending.length > 0) {
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Seals what is unsealed (all of it, batch by batch); returns how many events it sealed. */
  async seal(): Promise<number> {
    let total = 0;
    for (;;) {
      const sealed = await sealBatch(this.db);
      total += sealed;
      if (sealed < SEAL_BATCH) {
        return total;
      }
    }
  }
}

export async function insertAuditRecords(db: Database, records: AuditRecord[]): Promise<void> {
  const rows = records.map((r) => ({
    id: r.id,
    recorded: r.recorded,
    entity_refs: r.entityRefs,
    agent_refs: r.agentRefs,
    action: r.action,
    outcome: r.outcome,
    flags: r.flags,
    content: r.content,
  }));
  // set_config(…, true) lasts until the end of this statement's own transaction, so only the audit insert
  // commits asynchronously (see the module comment).
  await db.query(
    `WITH async AS (SELECT set_config('synchronous_commit', 'off', true))
     INSERT INTO audit_event (id, recorded, entity_refs, agent_refs, action, outcome, flags, content)
     SELECT e.doc->>'id', (e.doc->>'recorded')::timestamptz,
            ARRAY(SELECT jsonb_array_elements_text(e.doc->'entity_refs')), ARRAY(SELECT jsonb_array_elements_text(e.doc->'agent_refs')),
            e.doc->>'action', e.doc->>'outcome', ARRAY(SELECT jsonb_array_elements_text(e.doc->'flags')), e.doc->>'content'
     FROM async, jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(doc, ord)
     ORDER BY e.ord`,
    [JSON.stringify(rows)],
    { prepare: true },
  );
}

/**
 * How far below the newest sealed event the sealer looks for unsealed ones. Events can commit slightly out of
 * order (two workers insert at once); this margin covers that many, and `verifyAuditChain` reports any older
 * event left unsealed.
 */
const SEAL_LOOKBACK = 10_000;

async function sealBatch(db: Database): Promise<number> {
  return db.transaction(async (tx) => {
    const [lock] = await tx.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS ok', [SEAL_LOCK]);
    if (!lock.ok) {
      return 0;
    }
    // The chain is re-derivable from audit_event, so its own commit need not wait for the disk either.
    await tx.query("SELECT set_config('synchronous_commit', 'off', true)");
    const head = await tx.query<{ chain_pos: string; seq: string; hash: string }>(
      'SELECT chain_pos, seq, hash FROM audit_chain ORDER BY chain_pos DESC LIMIT 1',
    );
    const rows = await tx.query<{ seq: string; content: string }>(
      `SELECT e.seq, e.content FROM audit_event e
       WHERE e.seq > $1 AND NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.seq = e.seq)
       ORDER BY e.seq LIMIT $2`,
      [head.length ? Number(head[0].seq) - SEAL_LOOKBACK : 0, SEAL_BATCH],
    );
    if (rows.length === 0) {
      return 0;
    }
    let pos = head.length ? Number(head[0].chain_pos) : 0;
    let previous = head.length ? head[0].hash : GENESIS_HASH;
    const seqs: string[] = [];
    const positions: number[] = [];
    const prevs: string[] = [];
    const hashes: string[] = [];
    for (const row of rows) {
      const hash = chainHash(previous, row.content);
      seqs.push(row.seq);
      positions.push(++pos);
      prevs.push(previous);
      hashes.push(hash);
      previous = hash;
    }
    await tx.query(
      `INSERT INTO audit_chain (chain_pos, seq, prev_hash, hash)
       SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[])`,
      [positions, seqs, prevs, hashes],
    );
    return rows.length;
  });
}
