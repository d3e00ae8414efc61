/**
 * Outbound HL7 v2 through BullMQ: a workflow asks for a referral (REF^I12) or a result notification (ORU^R01) to be
 * sent to a facility; the job is retried with exponential backoff, and a job that exhausted its attempts is copied
 * to the dead-letter queue `hl7-outbound-dead` (no worker: operators inspect it and enqueue again).
 */
import { Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import type { DiagnosticReport, Observation, Patient, ServiceRequest } from '@medplum/fhirtypes';
import type { FhirRepository } from '../../fhir-server';
import { oruR01, refI12 } from './messages';
import { facilityEndpoint, sendMessage } from './sender';
import type { Logger } from 'pino';

export const OUTBOUND_QUEUE = 'hl7-outbound';
export const DEAD_LETTER_QUEUE = 'hl7-outbound-dead';

export interface OutboundJob {
  kind: 'referral' | 'result';
  /** `ServiceRequest/<id>` (referral) or `DiagnosticReport/<id>` (result). */
  resource: string;
  /** Organization id of the receiving facility. */
  facility: string;
  /** Its MSH-4 key (MSH-6 of what we send). */
  facilityKey: string;
  /**
   * MSH-10 chosen by the requester, the same on every attempt and every repetition of the request, so that the
   * receiver can drop duplicates; a request repeated while the first is kept is not queued again. Unset: one per attempt.
   */
  controlId?: string;
}

export interface OutboundOptions {
  repo: FhirRepository;
  redisUrl: string;
  prefix: string;
  logger: Logger;
  /** The platform's MSH-4. */
  sendingFacility?: string;
  attempts?: number;
  backoffMs?: number;
}

export class Hl7Outbound {
  private readonly connection: Redis;
  private readonly queue: Queue<OutboundJob>;
  private readonly dead: Queue<OutboundJob & { error: string }>;
  private worker?: Worker<OutboundJob>;
  private workerConnection?: Redis;

  constructor(private readonly options: OutboundOptions) {
    this.connection = new Redis(options.redisUrl, { maxRetriesPerRequest: null });
    this.connection.on('error', () => undefined);
    this.queue = new Queue(OUTBOUND_QUEUE, { connection: this.connection, prefix: options.prefix });
    this.dead = new Queue(DEAD_LETTER_QUEUE, { connection: this.connection, prefix: options.prefix });
    this.queue.on('error', (err) => this.redisDown(err));
    this.dead.on('error', (err) => this.redisDown(err));
  }

  /** Redis being unreachable is logged once per outage, not per reconnection attempt. */
  private down = false;
  private redisDown(err: Error): void {
    if (!this.down) {
      this.down = true;
      this.options.logger.warn({ err: err.message }, 'Redis unreachable: HL7 outbound messages wait until it is back');
      this.connection.once('ready', () => (this.down = false));
    }
  }

  /** Asks for a message to be sent; resolves to the job id. */
  async enqueue(job: OutboundJob): Promise<string> {
    const added = await this.queue.add(job.kind, job, {
      jobId: job.controlId,
      attempts: this.options.attempts ?? 8,
      backoff: { type: 'exponential', delay: this.options.backoffMs ?? 5_000 },
      removeOnComplete: 1000,
      removeOnFail: false,
    });
    return added.id as string;
  }

  /** Starts sending (in the processes that should: one is enough, several share the work). */
  start(): void {
    // A worker blocks its connection while it waits for jobs: it gets one of its own.
    this.workerConnection = this.connection.duplicate();
    this.workerConnection.on('error', () => undefined);
    this.worker = new Worker<OutboundJob>(OUTBOUND_QUEUE, (job) => this.send(job), { connection: this.workerConnection, prefix: this.options.prefix, concurrency: 4 });
    this.worker.on('failed', (job, err) => {
      if (job && job.attemptsMade >= (job.opts.attempts ?? 1)) {
        void this.dead.add(job.name, { ...job.data, error: err.message }).catch((e: unknown) => this.options.logger.error({ err: e }, 'could not dead-letter an HL7 job'));
        this.options.logger.warn({ job: job.id, err: err.message }, 'HL7 outbound message moved to the dead-letter queue');
      }
    });
    this.worker.on('error', (err) => this.redisDown(err));
  }

  /** The dead-letter list: what could not be delivered, with the last error. */
  async deadLetters(): Promise<Array<OutboundJob & { error: string }>> {
    return (await this.dead.getJobs(['waiting', 'delayed'])).map((j) => j.data);
  }

  /** Lets a job in progress finish (bounded: with Redis unreachable, closing would wait for it), then disconnects. */
  async stop(): Promise<void> {
    const closing = Promise.all([this.worker?.close(), this.queue.close(), this.dead.close()]).catch(() => undefined);
    await Promise.race([closing, new Promise((r) => setTimeout(r, 5_000).unref())]);
    this.workerConnection?.disconnect();
    this.connection.disconnect();
  }

  private async send(job: Job<OutboundJob>): Promise<void> {
    const { repo } = this.options;
    const read = async <T>(ref: string): Promise<T> => {
      const [type, id] = ref.split('/');
      return JSON.parse((await repo.read(type, id)).json) as T;
    };
    const header = { sendingFacility: this.options.sendingFacility ?? 'HUIMIN', receivingFacility: job.data.facilityKey, controlId: job.data.controlId ?? `${job.id}-${job.attemptsMade + 1}` };
    let message: string;
    if (job.data.kind === 'referral') {
      const request = await read<ServiceRequest>(job.data.resource);
      message = refI12(header, request, await read<Patient>(request.subject.reference as string));
    } else {
      const report = await read<DiagnosticReport>(job.data.resource);
      const observations = await Promise.all((report.result ?? []).map((r) => read<Observation>(r.reference as string)));
      message = oruR01(header, report, observations, await read<Patient>(report.subject?.reference as string));
    }
    await sendMessage(await facilityEndpoint(repo, job.data.facility), message);
  }
}
