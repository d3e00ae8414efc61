/**
 * The claim loop every platform process runs for `$reindex` jobs, as bulk export's does (bulk/worker.ts): it takes
 * waiting jobs from the database one at a time (FOR UPDATE SKIP LOCKED, so that each job runs in one process),
 * beats while a batch runs, and a job whose process died stops beating and is resumed by another process from
 * its last committed batch.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { ClaimLoop, withHeartbeat, type Database } from '../db';
import { ReindexJobs } from './jobs';
import { failureOf, JobLost, runReindex } from './runner';
import { ReindexState } from './state';

export interface ReindexSettings {
  /** Resources per batch: one transaction that locks them. */
  batchSize: number;
  /** How often an idle process looks for waiting jobs (a kick-off in the same process wakes it at once). */
  pollIntervalMs: number;
  /** A running job whose worker has not beaten for this long is resumed by another process. */
  staleAfterMs: number;
  /** How long a finished job's status stays available, seconds. */
  keepFinishedS: number;
  /** Run jobs in this process; false leaves them to the platform's other processes. */
  runJobs: boolean;
}

export const DEFAULT_REINDEX: ReindexSettings = {
  batchSize: 500,
  pollIntervalMs: 1000,
  staleAfterMs: 60_000,
  keepFinishedS: 7 * 24 * 3600,
  runJobs: true,
};

/** Finished jobs past their keeping time are looked for at most this often. */
const CLEANUP_INTERVAL_MS = 3600_000;

export class ReindexWorker {
  readonly jobs: ReindexJobs;
  /** Which runtime SearchParameters a search uses before their types were reindexed (searches warn about them). */
  readonly state: ReindexState;
  private readonly workerId = `${process.pid}-${randomBytes(4).toString('hex')}`;
  private readonly loop: ClaimLoop;
  private lastCleanup = 0;

  constructor(
    private readonly db: Database,
    readonly settings: ReindexSettings,
    private readonly logger: Logger,
  ) {
    this.jobs = new ReindexJobs(db);
    this.state = new ReindexState(db);
    this.loop = new ClaimLoop({ enabled: settings.runJobs, pollIntervalMs: settings.pollIntervalMs, name: 'reindex worker', logger, drain: () => this.drain() });
  }

  start(): void {
    this.loop.start();
  }

  /** Looks for work now (after a kick-off in this process, so that a job starts without waiting for the poll). */
  wake(): void {
    this.loop.wake();
  }

  /** For tests: resolves when this process is idle again. */
  idle(): Promise<void> {
    return this.loop.idle();
  }

  private async drain(): Promise<void> {
    if (Date.now() - this.lastCleanup >= CLEANUP_INTERVAL_MS) {
      this.lastCleanup = Date.now();
      await this.jobs.removeFinished(this.settings.keepFinishedS);
    }
    while (!this.loop.stopped) {
      const job = await this.jobs.claim(this.workerId, this.settings.staleAfterMs, new Date());
      if (!job) {
        return;
      }
      const started = performance.now();
      try {
        // A batch of large resources can take a while: the heartbeat keeps the job from being taken for abandoned.
        await withHeartbeat(() => this.jobs.beat(job.id, this.workerId), this.settings.staleAfterMs, () =>
          runReindex(this.db, this.jobs, job, this.workerId, this.settings, () => !this.loop.stopped),
        );
        await this.jobs.finish(job.id, this.workerId);
        this.logger.info({ job: job.id, ms: Math.round(performance.now() - started) }, 'reindex completed');
      } catch (err) {
        if (err instanceof JobLost) {
          if (this.loop.stopped) {
            await this.jobs.release(job.id, this.workerId).catch(() => undefined);
          }
          this.logger.info({ job: job.id }, `reindex stopped: ${err.message}`);
        } else {
          this.logger.error({ err, job: job.id }, 'reindex failed');
          await this.jobs.finish(job.id, this.workerId, failureOf(err));
        }
      }
    }
  }

  /** Stops taking jobs; a job running here goes back to the queue after its batch in flight. */
  stop(): Promise<void> {
    return this.loop.stop();
  }
}
