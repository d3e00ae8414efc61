/**
 * The consistency point of an export: one PostgreSQL snapshot that every part of the export reads from, and a
 * `transactionTime` chosen so that every write with a `lastUpdated` at or before it is visible in that snapshot.
 *
 * Why both: a resource's `lastUpdated` is taken by the writing process when its transaction starts, not when it
 * commits. A write that began before the kick-off and commits after the export has read its range would otherwise be
 * in neither this export (not visible yet) nor the next `_since=transactionTime` one (its `lastUpdated` is earlier).
 * So the export
 *  1. waits until `marginMs` past the requested point (a write's clock may lag its transaction by that much),
 *  2. reads the start of the oldest transaction still open in the database (A), after waiting up to 10 s for the
 *     transactions that began before the requested point to end (so that usually transactionTime is that point),
 *  3. then takes its snapshot (B, after A), and
 *  4. uses min(requested point, oldest open transaction's start − margin) as `transactionTime`.
 * A write with `lastUpdated` ≤ transactionTime either committed before B (visible) or was open at B: then it was
 * open at A too (it started before A, since one starting after A stamps a later `lastUpdated`), and its start is
 * at or after transactionTime + margin — which contradicts its `lastUpdated`. The files hold what the snapshot has
 * with `lastUpdated` ≤ transactionTime; anything later is for the next `_since` export.
 *
 * Reading other sessions' `xact_start` needs the platform's own database role (or pg_read_all_stats): sessions of
 * other roles show NULL and are not waited for.
 */
import type { Database, Queryable } from '../db';

/**
 * application_name of exports' own transactions (the snapshot holders, and the connections writing parts): they
 * never write resources, so another export's consistency point does not wait for them.
 */
export const SNAPSHOT_APPLICATION = 'huimin-bulk-export';

/** PostgreSQL's exported snapshot ids (pg_export_snapshot): SET TRANSACTION SNAPSHOT takes no parameters. */
const SNAPSHOT_ID = /^[0-9A-F]+-[0-9A-F]+(-[0-9]+)?$/i;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Steps 1, 2 and 4 above: the export's `transactionTime`, to be followed at once by `withSnapshot`. */
export async function consistencyPoint(db: Database, requested: Date, marginMs: number): Promise<Date> {
  const wait = requested.getTime() + marginMs - Date.now();
  if (wait > 0) {
    await sleep(wait);
  }
  if (db.singleSession) {
    // One session: no other transaction is open while this statement runs.
    return requested;
  }
  // Transactions are short here (a write is one statement or one bundle): wait, within bounds, for those that
  // began before the requested point to end, so that `transactionTime` is the kick-off itself, as clients expect;
  // only a transaction open longer than that (a huge bundle, a session idle in transaction) moves it back.
  const deadline = Date.now() + OLD_TRANSACTION_WAIT_MS;
  for (;;) {
    const rows = await db.query<{ oldest: Date | string | null }>(
      `SELECT min(xact_start) AS oldest FROM pg_stat_activity
       WHERE datname = current_database() AND backend_type = 'client backend' AND xact_start IS NOT NULL
         AND pid <> pg_backend_pid() AND application_name <> $1`,
      [SNAPSHOT_APPLICATION],
    );
    const oldest = rows[0]?.oldest;
    const bound = oldest ? new Date(oldest).getTime() - marginMs : Number.POSITIVE_INFINITY;
    if (bound >= requested.getTime() || Date.now() >= deadline) {
      return new Date(Math.min(requested.getTime(), bound));
    }
    await sleep(50);
  }
}

/** How long a consistency point waits for transactions begun before it to end, before it moves back past them. */
const OLD_TRANSACTION_WAIT_MS = 10_000;

/** A snapshot parts can import; undefined on a single-session engine (each part reads the latest committed data). */
export type SnapshotId = string | undefined;

/**
 * Step 3: opens a read-only REPEATABLE READ transaction, exports its snapshot and runs `fn` while it stays open (an
 * exported snapshot can be imported only while its transaction lives). The transaction writes nothing.
 */
export async function withSnapshot<T>(db: Database, fn: (snapshot: SnapshotId, tx?: Queryable) => Promise<T>): Promise<T> {
  if (db.singleSession) {
    return fn(undefined);
  }
  return db.transaction(async (tx) => {
    await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
    // The first statement takes the snapshot; it also tags the session, so that other exports do not wait for it.
    await tx.query(`SELECT set_config('application_name', $1, true)`, [SNAPSHOT_APPLICATION]);
    const [{ id }] = await tx.query<{ id: string }>('SELECT pg_export_snapshot() AS id');
    if (!SNAPSHOT_ID.test(id)) {
      throw new Error(`pg_export_snapshot() returned an unexpected id "${id}"`);
    }
    return fn(id, tx);
  });
}

/** Runs `fn` in a transaction of its own that reads from the export's snapshot, and commits what it wrote. */
export async function inSnapshot<T>(db: Database, snapshot: SnapshotId, fn: (tx: Queryable) => Promise<T>): Promise<T> {
  return db.transaction(async (tx) => {
    if (snapshot) {
      await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
      // Checked against SNAPSHOT_ID when exported: the statement takes a literal only.
      await tx.query(`SET TRANSACTION SNAPSHOT '${snapshot}'`);
      await tx.query(`SELECT set_config('application_name', $1, true)`, [SNAPSHOT_APPLICATION]);
    }
    return fn(tx);
  });
}
