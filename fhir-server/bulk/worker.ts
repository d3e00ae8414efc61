/**
 * The claim loop every platform process runs: it takes waiting export jobs from the database one at a time
 * (FOR UPDATE SKIP LOCKED, so that each job runs in one process), beats while it runs (a job whose process died
 * stops beating and is taken over by another), and removes expired exports with their files.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { ClaimLoop, withHeartbeat, type Database } from '../db';
import { failureOf, JobLost, runExport, type ExporterSettings } from './exporter';
import { ExportJobs } from './jobs';

export interface BulkExportSettings extends Omit<ExporterSettings, 'baseUrl'> {
  /** How long a finished export's files are kept, seconds. */
  lifetimeS: number;
  /** Waiting or running exports one client may have at once (429 beyond). */
  maxActivePerClient: number;
  /** How often an idle process looks for waiting jobs (a kick-off in the same process wakes it at once). */
  pollIntervalMs: number;
  /** A running job whose worker has not beaten for this long is taken over (its process is presumed dead). */
  staleAfterMs: number;
  /** Run jobs in this process; false leaves them to the platform's other processes. */
  runJobs: boolean;
}

export const DEFAULT_BULK_EXPORT: BulkExportSettings = {
  lifetimeS: 3600,
  maxActivePerClient: 5,
  partSize: 5000,
  resourcesPerFile: 100_000,
  parallelism: 3,
  clockMarginMs: 500,
  pollIntervalMs: 1000,
  staleAfterMs: 60_000,
  runJobs: true,
};

/** Expired exports are looked for at most this often. */
const CLEANUP_INTERVAL_MS = 60_000;

export class BulkExportWorker {
  readonly jobs: ExportJobs;
  private readonly workerId = `${process.pid}-${randomBytes(4).toString('hex')}`;
  private readonly loop: ClaimLoop;
  private lastCleanup = 0;

  constructor(
    private readonly db: Database,
    private readonly settings: BulkExportSettings & { baseUrl: string },
    private readonly logger: Logger,
  ) {
    this.jobs = new ExportJobs(db);
    this.loop = new ClaimLoop({ enabled: settings.runJobs, pollIntervalMs: settings.pollIntervalMs, name: 'bulk export worker', logger, drain: () => this.drain() });
  }

  start(): void {
    this.loop.start();
  }

  /** Looks for work now (after a kick-off in this process, so that a job starts without waiting for the poll). */
  wake(): void {
    this.loop.wake();
  }

  /** Runs waiting jobs until there are none; for tests, resolves when this process is idle again. */
  idle(): Promise<void> {
    return this.loop.idle();
  }

  /** Runs jobs one after the other until none is waiting, and cleans up expired exports now and then. */
  private async drain(): Promise<void> {
    if (Date.now() - this.lastCleanup >= CLEANUP_INTERVAL_MS) {
      this.lastCleanup = Date.now();
      await this.cleanup();
    }
    while (!this.loop.stopped) {
      const job = await this.jobs.claim(this.workerId, this.settings.staleAfterMs);
      if (!job) {
        return;
      }
      const started = performance.now();
      try {
        let exported = 0;
        // A part can take long (a selective filter over a large type): the heartbeat keeps the job from being taken
        // for abandoned.
        await withHeartbeat(() => this.jobs.beat(job.id, this.workerId), this.settings.staleAfterMs, () =>
          runExport(this.db, job, this.settings, async (n, progress) => {
            exported = n;
            return !this.loop.stopped && (await this.jobs.beat(job.id, this.workerId, n, progress));
          }, async (transactionTime) => {
            if (!(await this.jobs.setTransactionTime(job.id, this.workerId, transactionTime))) {
              throw new JobLost('the export was cancelled or taken over');
            }
          }),
        );
        await this.jobs.finish(job.id, this.workerId, this.settings.lifetimeS);
        this.logger.info({ job: job.id, exported, ms: Math.round(performance.now() - started) }, 'bulk export completed');
      } catch (err) {
        if (err instanceof JobLost) {
          if (this.loop.stopped) {
            await this.jobs.release(job.id, this.workerId).catch(() => undefined);
          }
          this.logger.info({ job: job.id }, `bulk export stopped: ${err.message}`);
        } else {
          this.logger.error({ err, job: job.id }, 'bulk export failed');
          await this.jobs.finish(job.id, this.workerId, this.settings.lifetimeS, failureOf(err));
        }
      }
    }
  }

  /** Removes expired exports and their files. */
  async cleanup(): Promise<number> {
    const removed = await this.jobs.removeExpired();
    if (removed > 0) {
      this.logger.info({ removed }, 'expired bulk exports removed');
    }
    return removed;
  }

  /**
   * Stops taking jobs; a job running here is given back to the queue at its next part, so that another process
   * (or this one after a restart) runs it without waiting for its heartbeat to go stale.
   */
  stop(): Promise<void> {
    return this.loop.stop();
  }
}
