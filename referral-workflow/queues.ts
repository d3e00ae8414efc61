/**
 * The workflow's queues and the fan-out of the store's resource-change events.
 *
 * The store's relay publishes every committed change once, to `resource-changes`. Several modules need every
 * event (this engine, subscriptions, later supervision rules), and a BullMQ job is taken by one worker only, so
 * one dispatcher worker consumes `resource-changes` and copies each event to a queue per consumer
 * (`referral-events`, `subscription-events`, …), with the event id as the job id: a dispatcher that crashes after
 * copying re-copies on retry without duplicates. Consumers then scale and fail independently. Every queue keeps
 * completed jobs for a bounded time and number (enough for the job-id deduplication), and failed ones for a week,
 * so that Redis stays bounded whatever the write rate.
 */
import { Queue, Worker, type ConnectionOptions, type DefaultJobOptions, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { RESOURCE_CHANGE_QUEUE, type ResourceChangeJob } from '../fhir-server';

/** The consumers of resource-change events; a new one (supervision) adds its queue here. */
export const EVENT_QUEUES = {
  referral: 'referral-events',
  subscriptions: 'subscription-events',
} as const;

/** A consumer's queue and the resource types it wants (all when absent), so that no queue fills with events nobody reads. */
export interface EventConsumer {
  queue: string;
  resourceTypes?: readonly string[];
}

export const EVENT_CONSUMERS: readonly EventConsumer[] = [
  { queue: EVENT_QUEUES.referral, resourceTypes: ['Task', 'Slot'] },
  { queue: EVENT_QUEUES.subscriptions },
];

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

/** Events copied at once per process: one at a time, the copying could not keep up with the store's write rate. */
const DISPATCH_CONCURRENCY = 16;

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

/**
 * Copies every resource-change event to the queue of each consumer that wants its type. Several events are copied
 * at once (DISPATCH_CONCURRENCY): consumers must not rely on receiving them in the relay's order. The referral engine
 * reads the current state of what changed, and subscription delivery orders notifications by the event's `seq`.
 */
export class EventDispatcher {
  private readonly group: QueueGroup;
  private readonly targets: Array<{ queue: Queue<ResourceChangeJob>; types?: ReadonlySet<string> }>;

  constructor(settings: QueueSettings, consumers: readonly EventConsumer[], onError: (err: Error) => void) {
    this.group = new QueueGroup(settings);
    this.targets = consumers.map((c) => ({
      queue: this.group.queue<ResourceChangeJob>(c.queue, EVENT_JOB_DEFAULTS),
      types: c.resourceTypes ? new Set(c.resourceTypes) : undefined,
    }));
    this.group.worker<ResourceChangeJob>(RESOURCE_CHANGE_QUEUE, (job) => this.dispatch(job), DISPATCH_CONCURRENCY, onError);
  }

  private async dispatch(job: Job<ResourceChangeJob>): Promise<void> {
    const event = job.data;
    await Promise.all(
      this.targets
        .filter((t) => !t.types || t.types.has(event.resourceType))
        .map((t) => t.queue.add(event.interaction, event, { jobId: event.eventId })),
    );
  }

  close(): Promise<void> {
    return this.group.close();
  }
}
