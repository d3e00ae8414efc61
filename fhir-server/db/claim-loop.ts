/**
 * The polling loop of the platform's jobs that live in the database (bulk export, `$reindex`): every process looks
 * for waiting jobs on a timer, runs one drain at a time (a wake-up during a drain runs another after it), and a
 * kick-off in the same process wakes it at once. The jobs themselves are claimed by the caller's `drain`
 * (FOR UPDATE SKIP LOCKED), which also decides what a job in flight does when the loop stops.
 */
import type { Logger } from 'pino';

export interface ClaimLoopOptions {
  /** false: this process never runs the jobs (the platform's other processes do). */
  enabled: boolean;
  pollIntervalMs: number;
  /** What the log says failed, e.g. "bulk export worker". */
  name: string;
  logger: Logger;
  /** Runs waiting jobs until none is left, or until `stopped`. */
  drain(): Promise<void>;
}

export class ClaimLoop {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  private halted = false;

  constructor(private readonly options: ClaimLoopOptions) {}

  /** Set by stop(): drains end their job at the next safe point and take no other. */
  get stopped(): boolean {
    return this.halted;
  }

  start(): void {
    if (!this.options.enabled) {
      return;
    }
    this.timer = setInterval(() => this.wake(), this.options.pollIntervalMs);
    this.timer.unref();
    this.wake();
  }

  /** Looks for work now (after a kick-off in this process, so that a job starts without waiting for the poll). */
  wake(): void {
    if (this.halted || !this.options.enabled) {
      return;
    }
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.options
      .drain()
      .catch((err: unknown) => this.options.logger.error({ err }, `${this.options.name} failed; it tries again at the next poll`))
      .finally(() => {
        this.running = undefined;
        if (this.again && !this.halted) {
          this.again = false;
          this.wake();
        }
      });
  }

  /** For tests: resolves when this process is idle again. */
  async idle(): Promise<void> {
    while (this.running) {
      await this.running;
    }
  }

  /** Stops polling and waits for the drain in flight. */
  async stop(): Promise<void> {
    this.halted = true;
    clearInterval(this.timer);
    await this.running;
  }
}

/**
 * Runs `fn` while beating on a timer (a quarter of the staleness limit, at least every second), so that a long step
 * of a job is not taken for an abandoned job by another process.
 */
export async function withHeartbeat<T>(beat: () => Promise<unknown>, staleAfterMs: number, fn: () => Promise<T>): Promise<T> {
  const heartbeat = setInterval(() => {
    void beat().catch(() => undefined);
  }, Math.max(1000, staleAfterMs / 4));
  try {
    return await fn();
  } finally {
    clearInterval(heartbeat);
  }
}
