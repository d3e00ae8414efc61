/**
 * The read side of the transactional outbox: moves committed change events from the `outbox` table to the
 * BullMQ queue (or the consumers' queues, see EventQueueTarget), in seq order, and deletes them only once Redis has accepted them.
 *
 * Delivery is at-least-once from the outbox and deduplicated by BullMQ's jobId (the event id), so a crash
 * between "added to the queue" and "deleted from the outbox" does not deliver an event twice while the first
 * job is still retained (24 h after completion). While Redis is unreachable, events simply accumulate in the
 * outbox; nothing is buffered in memory, so nothing is lost when the process dies during an outage.
 */
import { Queue, type DefaultJobOptions } from 'bullmq';
import { Redis } from 'ioredis';
import type { Database } from '../db';
import { changeEventId, RESOURCE_CHANGE_QUEUE, type ChangeInteraction, type ResourceChangeJob } from './outbox';

/** The subset of a pino logger the relay uses. */
export interface RelayLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

/**
 * A queue the relay publishes events to. By default there is one, `resource-changes`; a platform whose modules each
 * need every event (workflow, subscriptions, supervision) gives each its own queue, filled here in the outbox's
 * order, instead of copying events from one queue to the others.
 */
export interface EventQueueTarget {
  name: string;
  /** Only events about these resource types (all when absent). */
  resourceTypes?: readonly string[];
  /** The consumer's retention and retries (the store's defaults otherwise). */
  jobOptions?: DefaultJobOptions;
}

export interface OutboxRelayOptions {
  redisUrl: string;
  /** Where events go (default: the one queue `resource-changes`). */
  queues?: readonly EventQueueTarget[];
  /** BullMQ key prefix, so several platforms can share one Redis. */
  prefix: string;
  logger?: RelayLogger;
  /** Most events moved per database transaction (default 500). */
  batchSize?: number;
  /**
   * How often the outbox is looked at without notify(): picks up events written by another process or left
   * over after a crash, and checks that Redis is reachable (default 1000 ms).
   */
  idleIntervalMs?: number;
  /**
   * How long the relay lets events gather after a notify() before it moves them (default 20 ms): under a steady
   * write load one relay transaction then carries many events instead of one each.
   */
  coalesceMs?: number;
  /** Longest wait between attempts while Redis or the database keeps failing (default 30 s). */
  maxBackoffMs?: number;
  /** Longest one Redis command may take before the attempt counts as failed (default 5000 ms). */
  commandTimeoutMs?: number;
}

/**
 * Defaults for the consumers of the queue. Completed jobs are kept for a day (bounded in number) because their
 * jobId is what makes a re-add after a relay crash a no-op; failed jobs are kept a week for inspection.
 */
const CONSUMER_JOB_DEFAULTS: DefaultJobOptions = {
  attempts: 5,
  backoff: { type: 'exponential', delay: 1000 },
  removeOnComplete: { age: 24 * 3600, count: 100_000 },
  removeOnFail: { age: 7 * 24 * 3600 },
};

/** First retry delay after a failure; doubles on each further failure up to maxBackoffMs. */
const FIRST_BACKOFF_MS = 100;

interface OutboxRow {
  seq: number | string;
  res_type: string;
  res_id: string;
  version_id: number;
  interaction: string;
  occurred_at: Date | string;
}

/** Marks a failure to reach Redis, which is reported through `healthy` and its own log lines. */
class RedisUnreachableError extends Error {}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function toJob(row: OutboxRow): ResourceChangeJob {
  const event = {
    resourceType: row.res_type,
    id: row.res_id,
    versionId: Number(row.version_id),
    interaction: row.interaction as ChangeInteraction,
    occurredAt: new Date(row.occurred_at).toISOString(),
  };
  return { ...event, eventId: changeEventId(event), seq: Number(row.seq) };
}

/**
 * Settles when the client's first connection attempt succeeds or fails (bounded by connectTimeout), so that the
 * relay's first pass does not find the connection still opening and report start-up as an outage.
 */
function firstConnectionAttempt(redis: Redis): Promise<void> {
  return new Promise((resolve) => {
    const settled = (): void => {
      redis.off('ready', settled);
      redis.off('error', settled);
      resolve();
    };
    redis.on('ready', settled);
    redis.on('error', settled);
  });
}

export class OutboxRelay {
  private readonly logger: RelayLogger;
  private readonly batchSize: number;
  private readonly idleIntervalMs: number;
  private readonly coalesceMs: number;
  private readonly maxBackoffMs: number;
  private readonly commandTimeoutMs: number;

  private redis: Redis | undefined;
  private readonly targets: readonly EventQueueTarget[];
  private readonly queues = new Map<string, Queue<ResourceChangeJob>>();
  private loop: Promise<void> | undefined;
  private stopping = false;
  private stopped: Promise<void> | undefined;
  /** Set by notify(); tells the loop that events may have been committed since its last look. */
  private notified = false;
  /** Whether notify() may cut the current wait short (not while backing off, or an outage would be hammered). */
  private wakeOnNotify = false;
  private wake: (() => void) | undefined;
  private wakeTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  /** Last non-Redis failure logged, so that a persistent failure is logged once, not once per attempt. */
  private loggedFailure: string | undefined;
  private redisDownSince: number | undefined;
  private redisReachable = false;

  constructor(
    private readonly db: Database,
    private readonly options: OutboxRelayOptions,
  ) {
    this.logger = options.logger ?? {
      warn: (obj, msg) => console.warn(msg, obj),
      info: (obj, msg) => console.info(msg, obj),
    };
    this.batchSize = options.batchSize ?? 500;
    this.idleIntervalMs = options.idleIntervalMs ?? 1000;
    this.coalesceMs = options.coalesceMs ?? 20;
    this.maxBackoffMs = options.maxBackoffMs ?? 30_000;
    this.commandTimeoutMs = options.commandTimeoutMs ?? 5000;
    this.targets = options.queues && options.queues.length > 0 ? options.queues : [{ name: RESOURCE_CHANGE_QUEUE }];
  }

  /** Whether the last attempt to reach Redis succeeded. */
  get healthy(): boolean {
    return this.redisReachable;
  }

  /** Begins relaying, at once, then on notify() and every idleIntervalMs. */
  start(): void {
    if (this.stopping) {
      throw new Error('OutboxRelay cannot be restarted after stop()');
    }
    if (this.loop) {
      return;
    }
    this.redis = new Redis(this.options.redisUrl, {
      // Fail at once while disconnected instead of buffering commands in memory: the outbox is the buffer.
      enableOfflineQueue: false,
      // Commands in flight when the connection drops fail at the first reconnection attempt, not replayed later.
      maxRetriesPerRequest: 0,
      // A Redis that keeps the connection open but does not answer must not hold the batch's row locks forever.
      commandTimeout: this.commandTimeoutMs,
      connectTimeout: this.commandTimeoutMs,
      retryStrategy: (times) => Math.min(FIRST_BACKOFF_MS * 2 ** times, this.maxBackoffMs),
    });
    // Connection errors are reported by the relay (once per outage, see markRedis); without a listener ioredis
    // would print every failed reconnection attempt.
    this.redis.on('error', () => undefined);
    this.loop = firstConnectionAttempt(this.redis).then(() => this.run());
  }

  /** Wakes the relay within coalesceMs. Cheap: calls in the meantime, or while a batch runs, make one more pass. */
  notify(): void {
    this.notified = true;
    if (this.wakeOnNotify && !this.wakeTimer) {
      this.wakeTimer = setTimeout(() => {
        this.wakeTimer = undefined;
        if (this.wakeOnNotify) {
          this.wake?.();
        }
      }, this.coalesceMs);
    }
  }

  /** Finishes the batch in progress, then closes the queue and the Redis connection. */
  stop(): Promise<void> {
    // Idempotent: disconnecting an ioredis client twice leaves a timer behind that delays process exit.
    this.stopped ??= this.shutDown();
    return this.stopped;
  }

  /** Events waiting in the outbox (for /readyz and metrics). */
  async pending(): Promise<number> {
    const rows = await this.db.query<{ n: number | string }>('SELECT count(*) AS n FROM outbox');
    return Number(rows[0].n);
  }

  private async shutDown(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.wakeTimer);
    this.wake?.();
    await this.loop;
    await this.discardQueues();
    // Every command has been awaited by now, so there is nothing for a graceful QUIT to flush.
    this.redis?.disconnect();
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      this.notified = false;
      let delayMs: number;
      try {
        const relayed = await this.relayBatch();
        if (relayed === 0) {
          // Nothing to send: still check Redis so that `healthy` is true to life when the platform is idle.
          await this.reachRedis(() => this.ping());
        }
        this.succeeded();
        delayMs = relayed === this.batchSize ? 0 : this.notified ? this.coalesceMs : this.idleIntervalMs;
      } catch (err) {
        delayMs = this.failed(err);
      }
      if (delayMs > 0 && !this.stopping) {
        // Only the idle wait may be cut short by notify(); a coalescing or backoff wait runs its course.
        await this.sleep(delayMs, this.failures === 0 && delayMs === this.idleIntervalMs);
      }
    }
  }

  /**
   * Moves one batch. The rows stay locked (SKIP LOCKED: another process relays the rows after them meanwhile)
   * until Redis has accepted the jobs, and are deleted in the same transaction; any failure rolls back and
   * leaves them for the next attempt.
   */
  private relayBatch(): Promise<number> {
    return this.db.transaction(async (tx) => {
      const rows = await tx.query<OutboxRow>(
        `SELECT seq, res_type, res_id, version_id, interaction, occurred_at
         FROM outbox ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED`,
        [this.batchSize],
      );
      if (rows.length === 0) {
        return 0;
      }
      const jobs = rows.map(toJob);
      await this.reachRedis(() => this.publish(jobs));
      await tx.query('DELETE FROM outbox WHERE seq = ANY($1::bigint[])', [jobs.map((j) => j.seq)]);
      return jobs.length;
    });
  }

  private async publish(jobs: ResourceChangeJob[]): Promise<void> {
    try {
      // One queue after the other, each in the outbox's order; a failure leaves the batch in the outbox, and the
      // queues that already have it ignore the repetition (same job ids).
      for (const target of this.targets) {
        const wanted = target.resourceTypes ? jobs.filter((j) => target.resourceTypes?.includes(j.resourceType)) : jobs;
        if (wanted.length > 0) {
          await this.connectedQueue(target).addBulk(wanted.map((data) => ({ name: data.interaction, data, opts: { jobId: data.eventId } })));
        }
      }
    } catch (err) {
      // A BullMQ Queue whose initialisation failed (Redis dropped during its first commands) stays failed for
      // good, so start the next attempt with fresh ones; they share the connection, so this is cheap.
      await this.discardQueues();
      throw err;
    }
  }

  private async ping(): Promise<void> {
    await this.connectedRedis().ping();
  }

  /** The Redis client if it is connected; otherwise fails at once rather than waiting for a reconnection. */
  private connectedRedis(): Redis {
    if (!this.redis || this.redis.status !== 'ready') {
      throw new Error(`Redis connection is ${this.redis?.status ?? 'not started'}`);
    }
    return this.redis;
  }

  private connectedQueue(target: EventQueueTarget): Queue<ResourceChangeJob> {
    const redis = this.connectedRedis();
    let queue = this.queues.get(target.name);
    if (!queue) {
      queue = new Queue<ResourceChangeJob>(target.name, {
        connection: redis,
        prefix: this.options.prefix,
        defaultJobOptions: target.jobOptions ?? CONSUMER_JOB_DEFAULTS,
      });
      // Errors surface as rejected commands, handled by the caller; the event would otherwise go to the console.
      queue.on('error', () => undefined);
      this.queues.set(target.name, queue);
    }
    return queue;
  }

  private async discardQueues(): Promise<void> {
    const queues = [...this.queues.values()];
    this.queues.clear();
    // The connection is ours, not the queues' (it stays open); closing a queue over a dead connection may reject.
    await Promise.all(queues.map((q) => q.close().catch(() => undefined)));
  }

  private async reachRedis(fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.markRedis(false, err);
      throw new RedisUnreachableError(errorMessage(err), { cause: err });
    }
    this.markRedis(true);
  }

  /** Records whether Redis answered; logs only the transitions, so an outage costs two log lines. */
  private markRedis(reachable: boolean, err?: unknown): void {
    this.redisReachable = reachable;
    if (!reachable && this.redisDownSince === undefined) {
      this.redisDownSince = Date.now();
      this.logger.warn(
        { err: errorMessage(err), queues: this.targets.map((t) => t.name) },
        'Redis unreachable: resource-change events wait in the outbox until it is back',
      );
    } else if (reachable && this.redisDownSince !== undefined) {
      this.logger.info(
        { unreachableForMs: Date.now() - this.redisDownSince, queues: this.targets.map((t) => t.name) },
        'Redis reachable again: relaying the waiting resource-change events',
      );
      this.redisDownSince = undefined;
    }
  }

  private succeeded(): void {
    if (this.loggedFailure !== undefined) {
      this.logger.info({}, 'Outbox relay recovered');
      this.loggedFailure = undefined;
    }
    this.failures = 0;
  }

  /** Counts a failed pass and returns how long to back off. */
  private failed(err: unknown): number {
    this.failures += 1;
    const delayMs = Math.min(this.maxBackoffMs, FIRST_BACKOFF_MS * 2 ** (this.failures - 1));
    const message = errorMessage(err);
    if (!(err instanceof RedisUnreachableError) && message !== this.loggedFailure) {
      this.loggedFailure = message;
      this.logger.warn({ err: message, retryInMs: delayMs }, 'Outbox relay failed; retrying with backoff');
    }
    return delayMs;
  }

  private sleep(ms: number, wakeOnNotify: boolean): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wake = undefined;
        this.wakeOnNotify = false;
        resolve();
      };
      const timer = setTimeout(done, ms);
      // The relay alone never keeps the process alive; stop() ends the wait explicitly.
      timer.unref();
      this.wake = done;
      this.wakeOnNotify = wakeOnNotify;
    });
  }
}
