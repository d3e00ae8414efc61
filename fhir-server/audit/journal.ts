/**
 * The audit journal: each process appends every AuditEvent to a local file (one JSON line, one write system call)
 * before the request's response is sent, and moves the events to the database in batches afterwards. A write to a
 * file survives the death of the process that made it (it is in the operating system's page cache), so a request
 * is never answered without its audit being kept somewhere, yet it does not wait for a database round trip.
 * Journals of processes that died are moved to the database by the next process that starts (`recoverJournals`);
 * ids already in the database are skipped, so an event is never recorded twice. A write also journals an intent
 * before it runs: if the process dies before the write's own record, the intent is recovered in its place.
 *
 * Files: `audit-{database}-{pid}-{opened ms}.jsonl` in the journal directory, where {database} names the database
 * the events belong to (`journalKey`), so that a platform started on another database with the same directory (a
 * changed DATABASE_URL, a benchmark) never moves one database's audit events into another's log. A process starts a
 * new file every ROTATE_RECORDS events or ROTATE_MS, and deletes a file once it is closed and all its events are in
 * the database.
 */
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { Database } from '../db';
import { auditRecordOf, type AuditRecord } from './audit-event';
import { AUDIT_ROWS_SQL, auditRows } from './audit-rows';

const ROTATE_RECORDS = 20_000;
const ROTATE_MS = 60_000;
const FILE_NAME = /^audit-([0-9a-f]{16})-(\d+)-(\d+)\.jsonl$/;

/**
 * Names the database a journal belongs to: a hash of where it is (host, port and name, or PGlite's directory; never
 * credentials). A database dropped and created again under the same name counts as the same one.
 */
export function journalKey(db: Database): string {
  return createHash('sha256').update(db.description).digest('hex').slice(0, 16);
}

export interface JournalFile {
  path: string;
  fd: number;
  opened: number;
  written: number;
  shipped: number;
  closed: boolean;
}

export class AuditJournal {
  private current: JournalFile | undefined;
  /** Lines waiting for this turn of the event loop's write, with the requests waiting for it. */
  private queued: { lines: string[]; waiters: Array<{ resolve: () => void; reject: (err: unknown) => void }> } | undefined;

  constructor(
    readonly dir: string,
    /** journalKey of the database these events go to. */
    private readonly key: string,
  ) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  /**
   * Appends the record, together with the others of this turn of the event loop (one write system call for all the
   * requests that finished together); resolves once it is written, rejects when it cannot be (and then the request
   * must not be answered as done).
   */
  append(record: AuditRecord): { file: JournalFile; written: Promise<void> } {
    const file = this.fileForNext();
    file.written++;
    let batch = this.queued;
    if (!batch) {
      const queued = { lines: [] as string[], waiters: [] as Array<{ resolve: () => void; reject: (err: unknown) => void }> };
      this.queued = batch = queued;
      setImmediate(() => this.writeQueued(file, queued));
    }
    // The stored facts are one line of JSON already: the line is written as it is.
    batch.lines.push(`${record.content}\n`);
    const written = new Promise<void>((resolve, reject) => batch.waiters.push({ resolve, reject }));
    return { file, written };
  }

  private writeQueued(file: JournalFile, batch: NonNullable<AuditJournal['queued']>): void {
    this.queued = undefined;
    try {
      writeSync(file.fd, batch.lines.join(''));
      batch.waiters.forEach((w) => w.resolve());
    } catch (err) {
      batch.waiters.forEach((w) => w.reject(err));
    }
  }

  /** The file the next line goes to: a new one when the current one is full or old (never while a write is queued). */
  private fileForNext(): JournalFile {
    let file = this.current;
    if (!file || (!this.queued && (file.written >= ROTATE_RECORDS || Date.now() - file.opened > ROTATE_MS))) {
      this.close();
      const opened = Date.now();
      const filePath = path.join(this.dir, `audit-${this.key}-${process.pid}-${opened}.jsonl`);
      file = { path: filePath, fd: openSync(filePath, 'a', 0o600), opened, written: 0, shipped: 0, closed: false };
      this.current = file;
    }
    return file;
  }

  /** Counts `count` events of `file` as in the database; deletes the file when it is closed and fully shipped. */
  shipped(file: JournalFile, count: number): void {
    file.shipped += count;
    if (file.closed && file.shipped >= file.written) {
      removeQuietly(file.path);
    }
  }

  /** Closes the current file (it is deleted once all its events are shipped). */
  close(): void {
    const file = this.current;
    if (!file) {
      return;
    }
    this.current = undefined;
    closeSync(file.fd);
    file.closed = true;
    if (file.shipped >= file.written) {
      removeQuietly(file.path);
    }
  }
}

function removeQuietly(filePath: string): void {
  try {
    unlinkSync(filePath);
  } catch {
    // Already gone (another process recovered it after all): nothing to keep.
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Moves the events of journals left by processes that are gone into the database, then deletes the files. With
 * `all`, every journal but this process's own is taken (at platform start, before any worker runs). Journals of
 * other databases are left where they are, for a platform on that database to recover.
 */
export async function recoverJournals(db: Database, dir: string, options: { all?: boolean } = {}): Promise<number> {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0;
  }
  let recovered = 0;
  const key = journalKey(db);
  for (const name of names) {
    const match = FILE_NAME.exec(name);
    if (!match || match[1] !== key) {
      continue;
    }
    const pid = Number(match[2]);
    if (pid === process.pid || (!options.all && isAlive(pid))) {
      continue;
    }
    const filePath = path.join(dir, name);
    const records: Array<AuditRecord & { isIntent: boolean }> = [];
    for (const line of readFileSync(filePath, 'utf8').split('\n')) {
      try {
        if (line) records.push(auditRecordOf(line));
      } catch {
        // The last line of a process killed while writing it: that request was not answered.
      }
    }
    // Finished requests first; then, in statements of their own (which see those), the intents of writes that
    // never finished: those that no record names.
    for (const group of [records.filter((r) => !r.isIntent), records.filter((r) => r.isIntent)]) {
      for (let i = 0; i < group.length; i += 500) {
        await insertMissingAuditRecords(db, group.slice(i, i + 500));
      }
    }
    removeQuietly(filePath);
    recovered += records.length;
  }
  return recovered;
}

/**
 * Like insertAuditRecords, but skips events already in the database (a journal may be partly shipped), and
 * intents whose request's own record is there.
 */
async function insertMissingAuditRecords(db: Database, records: AuditRecord[]): Promise<void> {
  await db.query(
    `INSERT INTO audit_event (id, recorded, keys, content)
     SELECT u.id, u.recorded, string_to_array(u.keys_text, chr(31)), u.content
     FROM ${AUDIT_ROWS_SQL}
     WHERE NOT EXISTS (SELECT 1 FROM audit_event a WHERE a.keys @> ARRAY['id:' || u.id])
       AND NOT EXISTS (SELECT 1 FROM audit_event a WHERE a.keys @> ARRAY['intent:' || u.id])
     ORDER BY u.ord`,
    auditRows(records),
  );
}
