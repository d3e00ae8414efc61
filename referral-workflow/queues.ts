/**
 * The workflow's queues, and the fan-out of the store's resource-change events.
 *
 * Several modules need every change event (this engine, subscriptions, later supervision rules), and a BullMQ job
 * is taken by one worker only. So each consumer has its own queue (`referral-events`, `subscription-events`, …),
 * and the store's outbox relay publishes each event to every consumer queue that wants its resource type, in the
 * outbox's order, with the event id as job id (createFhirServer's `eventQueues`, fed from EVENT_CONSUMERS). No
 * extra hop copies events between queues (a dispatcher worker was measured to be the bottleneck at 50 referrals/s
 * and lost the order), consumers scale and fail independently, and a new consumer adds a line here. Every queue
 * keeps completed jobs for a bounded time and number (enough for the job-id deduplication of a relay that retries)
 * and failed ones for a week, so that Redis stays bounded whatever the write rate. Nothing is published to
 * `resource-changes` any more when the workflow is wired in.
 */
import { Queue, Worker, type ConnectionOptions, type DefaultJobOptions, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import type { EventQueueTarget } from '../fhir-server';

/** The consumers of resource-change events; a new one (supervision) adds its queue here. */
export const EVENT_QUEUES = {
  referral: 'referral-events',
  subscriptions: 'subscription-events',
} as const;

/** Where the workflow's BullMQ queues live. */
export interface QueueSettings {
  redisUrl: string;
  /** BullMQ key prefix (the platform's REDIS_PREFIX). */
  prefix: string;
  /**
   * How long a worker's claim on a job lasts without renewal, and how often stalled jobs (their worker died) are
   * looked for; BullMQ's defaults are 30 s each. A crashed worker's step is taken over by another after about that.
   */
  lockDurationMs?: number;
  stalledIntervalMs?: number;
}

/** Retention of the per-consumer event queues: an hour or 10 000 completed jobs, a week of failures. */
export const EVENT_JOB_DEFAULTS: DefaultJobOptions = {
  attempts: 8,
  backoff: { type: 'exponential', delay: 500 },
  removeOnComplete: { age: 3600, count: 10_000 },
  removeOnFail: { age: 7 * 24 * 3600, count: 10_000 },
};

/** The consumers' queues with the resource types each wants (all when absent): pass to createFhirServer's eventQueues. */
export const EVENT_CONSUMERS: readonly EventQueueTarget[] = [
  { name: EVENT_QUEUES.referral, resourceTypes: ['Task', 'Slot'], jobOptions: EVENT_JOB_DEFAULTS },
  { name: EVENT_QUEUES.subscriptions, jobOptions: EVENT_JOB_DEFAULTS },
];

/**
 * Retention of workflow steps: a day of completed jobs (their ids make a repeated step a no-op while they are
 * kept; the steps are idempotent beyond that), two weeks of failures.
 */
export const STEP_JOB_DEFAULTS: DefaultJobOptions = {
  attempts: 8,
  backoff: { type: 'exponential', delay: 500 },
  removeOnComplete: { age: 24 * 3600, count: 50_000 },
  removeOnFail: { age: 14 * 24 * 3600, count: 10_000 },
};

/** A Redis connection as BullMQ workers need it (blocking commands must never time out). */
export function workerConnection(redisUrl: string): Redis {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  // Errors surface through BullMQ; without a listener ioredis would print every reconnection attempt.
  redis.on('error', () => undefined);
  return redis;
}

/** Owns the connections and queues/workers of one part of the workflow, and closes them all in order. */
export class QueueGroup {
  private readonly connections: Redis[] = [];
  private readonly queues: Queue[] = [];
  private readonly workers: Worker[] = [];

  constructor(readonly settings: QueueSettings) {}

  connection(): ConnectionOptions {
    const redis = workerConnection(this.settings.redisUrl);
    this.connections.push(redis);
    return redis;
  }

  queue<T = unknown>(name: string, defaultJobOptions: DefaultJobOptions): Queue<T> {
    const queue = new Queue<T>(name, { connection: this.connection(), prefix: this.settings.prefix, defaultJobOptions });
    queue.on('error', () => undefined);
    this.queues.push(queue as Queue);
    return queue;
  }

  worker<T>(name: string, processor: (job: Job<T>) => Promise<unknown>, concurrency: number, onError: (err: Error, job?: Job) => void): Worker<T> {
    const worker = new Worker<T>(name, processor, {
      connection: this.connection(),
      prefix: this.settings.prefix,
      concurrency,
      // Only when set: an explicit undefined would replace BullMQ's defaults.
      ...(this.settings.lockDurationMs ? { lockDuration: this.settings.lockDurationMs } : {}),
      ...(this.settings.stalledIntervalMs ? { stalledInterval: this.settings.stalledIntervalMs } : {}),
    });
    worker.on('error', (err) => onError(err));
    worker.on('failed', (job, err) => onError(err, job));
    this.workers.push(worker as Worker);
    return worker;
  }

  private closing: Promise<void> | undefined;

  /** Stops taking jobs, lets the active ones finish, then closes queues and connections (once, however often called). */
  close(): Promise<void> {
    this.closing ??= this.shutDown(false);
    return this.closing;
  }

  /** Closes without waiting for active jobs (a crashed process, in tests): their locks expire and another worker takes them over. */
  kill(): Promise<void> {
    this.closing ??= this.shutDown(true);
    return this.closing;
  }

  private async shutDown(force: boolean): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close(force)));
    await Promise.all(this.queues.map((q) => q.close()));
    // Disconnecting an ioredis client twice leaves a timer behind that delays process exit: once only, here.
    for (const redis of this.connections) {
      redis.disconnect();
    }
  }
}
