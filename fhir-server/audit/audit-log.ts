/**
 * The audit log's writer and sealer.
 *
 * Writer: every request's AuditEvent is appended to this process's journal file before the response is sent (see
 * journal.ts: it survives the death of the process, and costs one write system call instead of a database round
 * trip), then moved to `audit_event` in batches: requests that finish together share one INSERT, which commits with
 * `synchronous_commit = off` for that statement only (the journal already holds the events; the data's own commits
 * stay synchronous). While the database is unreachable, events wait in memory and in the journal and are retried.
 *
 * Sealer: one process at a time (advisory lock) takes the unsealed events in insertion order and appends their
 * links to the chain (audit_chain: position, hash of the previous event, own hash). Chaining after the fact keeps
 * concurrent workers from serialising on the chain's head while they answer requests.
 */
import type { Database } from '../db';
import type { AuditRecord } from './audit-event';
import { AUDIT_ROWS_SQL, auditRows } from './audit-rows';
import { chainHash, GENESIS_HASH } from './hash-chain';
import { AuditJournal, journalKey, recoverJournals, type JournalFile } from './journal';

/** Arbitrary constant naming "seal the audit chain" among advisory locks. */
const SEAL_LOCK = 7_202_611_252;
const SEAL_BATCH = 2000;
const INSERT_BATCH = 1000;
/**
 * How long events gather before they are moved to the database. The journal already keeps them, so there is no
 * hurry, and one insert of a hundred events costs the database far less than a hundred inserts of one.
 */
const FLUSH_DELAY_MS = 50;
/** Wait before retrying an insert that failed (the database is down, say). */
const RETRY_MS = 1000;

interface Pending {
  record: AuditRecord;
  file: JournalFile;
  /** The journal file of the request's intent, counted as shipped with the record. */
  intentFile?: JournalFile;
}

/** An intent journaled before a write runs (see intend). */
export interface AuditIntent {
  id: string;
  file: JournalFile;
}

export interface AuditLogOptions {
  /** Where this process keeps its journal (shared by the platform's processes, e.g. DATA_DIR/audit-journal). */
  journalDir: string;
  /** How often the sealer looks for unsealed events (ms). */
  sealIntervalMs?: number;
  onError?: (err: unknown, what: string) => void;
}

export class AuditLog {
  private pending: Pending[] = [];
  private flushing: Promise<void> | undefined;
  /** Set while events gather (FLUSH_DELAY_MS) or wait for a retry after a failed insert. */
  private flushTimer: NodeJS.Timeout | undefined;
  private readonly journal: AuditJournal;
  private sealTimer: NodeJS.Timeout | undefined;
  private sealing: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly db: Database,
    private readonly options: AuditLogOptions,
  ) {
    this.journal = new AuditJournal(options.journalDir, journalKey(db));
  }

  /**
   * Records the event: resolves once it is in the journal (rejects if it cannot be written there, so that the
   * request is not answered as done); it reaches the database shortly after.
   */
  async append(record: AuditRecord, intent?: AuditIntent): Promise<void> {
    const { file, written } = this.journal.append(record);
    await written;
    this.pending.push({ record, file, intentFile: intent?.file });
    if (!this.flushing && !this.flushTimer) {
      this.flushTimer = setTimeout(() => this.startFlush(), FLUSH_DELAY_MS);
    }
  }

  /**
   * Journals the intent of a write before it runs (a record with status 0). It never goes to the database unless
   * the process dies before the write's own record (which names it) is journaled: then the recovery of the
   * journal puts it in the log as a request whose outcome is unknown. So a write that committed is never without
   * a trace in the audit log, even when the process dies between the commit and the answer.
   */
  async intend(record: AuditRecord): Promise<AuditIntent> {
    const { file, written } = this.journal.append(record);
    await written;
    return { id: record.id, file };
  }

  private startFlush(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.flushing) {
      return;
    }
    this.flushing = this.flush().finally(() => {
      this.flushing = undefined;
      // Events appended while the last insert was finishing get an insert of their own.
      if (this.pending.length > 0 && !this.flushTimer && !this.stopped) {
        this.flushTimer = setTimeout(() => this.startFlush(), FLUSH_DELAY_MS);
      }
    });
  }

  /** Moves every event appended so far to the database now, and resolves when it is there (or the insert failed). */
  async flushed(): Promise<void> {
    if (this.flushTimer && this.pending.length > 0) {
      this.startFlush();
    }
    while (this.flushing) {
      await this.flushing;
    }
  }

  private async flush(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        const batch = this.pending.slice(0, INSERT_BATCH);
        await insertAuditRecords(this.db, batch.map((p) => p.record));
        this.pending.splice(0, batch.length);
        const perFile = new Map<JournalFile, number>();
        for (const p of batch) {
          perFile.set(p.file, (perFile.get(p.file) ?? 0) + 1);
          if (p.intentFile) {
            perFile.set(p.intentFile, (perFile.get(p.intentFile) ?? 0) + 1);
          }
        }
        perFile.forEach((count, file) => this.journal.shipped(file, count));
      }
    } catch (err) {
      this.options.onError?.(err, `moving ${this.pending.length} audit events to the database (they wait in the journal)`);
      if (!this.stopped) {
        this.flushTimer = setTimeout(() => this.startFlush(), RETRY_MS);
      }
    }
  }

  /** Starts sealing in the background, after moving the journals of processes that died into the database. */
  start(): void {
    recoverJournals(this.db, this.options.journalDir).catch((err: unknown) => this.options.onError?.(err, 'recovering audit journals'));
    const interval = this.options.sealIntervalMs ?? 1000;
    const tick = (): void => {
      if (this.stopped) {
        return;
      }
      this.sealing = this.seal(false)
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
    await this.flushed();
    clearTimeout(this.flushTimer);
    // Seal what this process recorded last, unless another process is sealing (it will take them).
    await this.seal(false).catch((err: unknown) => this.options.onError?.(err, 'sealing the audit chain'));
    // What could not be shipped stays in the closed journal file, for the next start to recover.
    this.journal.close();
  }

  /**
   * Seals what is unsealed (all of it, batch by batch); returns how many events it sealed. Called directly, it
   * waits for a sealer running in another process; the background sealer leaves the work to that one instead.
   */
  async seal(wait = true): Promise<number> {
    await this.flushed();
    let total = 0;
    for (;;) {
      const sealed = await sealBatch(this.db, wait);
      total += sealed;
      if (sealed < SEAL_BATCH) {
        return total;
      }
    }
  }
}

export async function insertAuditRecords(db: Database, records: AuditRecord[]): Promise<void> {
  // set_config(…, true) lasts until the end of this statement's own transaction, so only the audit insert
  // commits asynchronously (see the module comment).
  await db.query(
    `WITH async AS (SELECT set_config('synchronous_commit', 'off', true))
     INSERT INTO audit_event (id, recorded, keys, content)
     SELECT u.id, u.recorded, string_to_array(u.keys_text, chr(31)), u.content
     FROM async, ${AUDIT_ROWS_SQL}
     ORDER BY u.ord`,
    auditRows(records),
    { prepare: true },
  );
}

/**
 * How far below the newest sealed event the sealer looks for unsealed ones. Events can commit slightly out of
 * order (two workers insert at once); this margin covers that many, and `verifyAuditChain` reports any older
 * event left unsealed.
 */
const SEAL_LOOKBACK = 10_000;

async function sealBatch(db: Database, wait: boolean): Promise<number> {
  return db.transaction(async (tx) => {
    if (wait) {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [SEAL_LOCK]);
    } else {
      const [lock] = await tx.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS ok', [SEAL_LOCK]);
      if (!lock.ok) {
        return 0;
      }
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
