/**
 * Linking runs on the store's Patient change events: the relay fills the index's own queue (`mpi-events`, only
 * Patient events), and this worker reconciles each changed Patient. Decisions are serialised by an advisory lock
 * in the database, so several processes may run the worker; a retried or repeated event is a no-op (see
 * linker.ts). The index's own writes (golden records, `refer` links) come back as events and change nothing.
 */
import { Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import type { EventQueueTarget, ResourceChangeJob } from '../fhir-server';
import type { PatientIndex, ReconcileOutcome } from './linker';

export const MPI_EVENT_QUEUE = 'mpi-events';

/** The index's event queue, for createFhirServer's `eventQueues`. */
export const MPI_EVENT_CONSUMER: EventQueueTarget = {
  name: MPI_EVENT_QUEUE,
  resourceTypes: ['Patient'],
  jobOptions: {
    attempts: 8,
    backoff: { type: 'exponential', delay: 500 },
    removeOnComplete: { age: 3600, count: 10_000 },
    removeOnFail: { age: 7 * 24 * 3600, count: 10_000 },
  },
};

export interface LinkingWorkerOptions {
  index: PatientIndex;
  redisUrl: string;
  prefix: string;
  /** Jobs at once in this process (decisions are serialised in the database anyway). */
  concurrency?: number;
  onError?: (err: Error, job?: Job) => void;
  onReconciled?: (outcome: ReconcileOutcome) => void;
}

export class LinkingWorker {
  private readonly redis: Redis;
  private readonly worker: Worker<ResourceChangeJob>;

  constructor(options: LinkingWorkerOptions) {
    this.redis = new Redis(options.redisUrl, { maxRetriesPerRequest: null });
    this.redis.on('error', () => undefined);
    const onError = options.onError ?? (() => undefined);
    this.worker = new Worker<ResourceChangeJob>(
      MPI_EVENT_QUEUE,
      async (job) => {
        if (job.data.resourceType !== 'Patient') return;
        const outcome = await options.index.reconcile(job.data.id);
        options.onReconciled?.(outcome);
      },
      { connection: this.redis, prefix: options.prefix, concurrency: options.concurrency ?? 2 },
    );
    this.worker.on('error', (err) => onError(err));
    this.worker.on('failed', (job, err) => onError(err, job));
  }

  async close(): Promise<void> {
    await this.worker.close();
    this.redis.disconnect();
  }
}
