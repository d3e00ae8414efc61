/**
 * Outbound HL7 v2 through BullMQ: a workflow asks for a referral (REF^I12), a result notification (ORU^R01) or the
 * response to an order that came by HL7 (ORR^O02 / ORL^O22) to be sent to a facility; the job is retried with exponential backoff, and a job that exhausted its attempts is copied
 * to the dead-letter queue `hl7-outbound-dead` (no worker: operators inspect it and enqueue again).
 */
import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import type { DetectedIssue, DiagnosticReport, Observation, Patient, ServiceRequest } from '@medplum/fhirtypes';
import type { FhirRepository } from '../../fhir-server';
import { getMessage } from '../store/message-store';
import { orderResponse, oruR01, refI12, type AnsweredOrder } from './messages';
import { facilityEndpoint, sendMessage } from './sender';
import type { Logger } from 'pino';

export const OUTBOUND_QUEUE = 'hl7-outbound';
export const DEAD_LETTER_QUEUE = 'hl7-outbound-dead';

export interface OutboundJob {
  kind: 'referral' | 'result' | 'order-response';
  /** `ServiceRequest/<id>` (referral; the order answered), or `DiagnosticReport/<id>` (result). */
  resource: string;
  /** order-response: the `DetectedIssue/<id>` the response tells the ordering system about. */
  advisory?: string;
  /** Organization id of the receiving facility. */
  facility: string;
  /** Its MSH-4 key (MSH-6 of what we send). */
  facilityKey: string;
  /**
   * MSH-10 chosen by the requester, the same on every attempt and every repetition of the request, so that the
   * receiver can drop duplicates; a request repeated while the first is kept is not queued again. Unset: one per attempt.
   */
  controlId?: string;
  /** Set on a job an operator sent again from the dead-letter list. */
  requeued?: { by: string; at: string; deadLetter: string };
}

/** A dead letter: the job as asked for, the last error, and the id it had on the outbound queue. */
export interface DeadLetter extends OutboundJob {
  error: string;
  /** Id of the dead-letter entry (what an operator names to requeue it). */
  id?: string;
  /** Id of the failed job on the outbound queue. */
  jobId?: string;
  failedAt?: string;
}

/** A dead letter sent again: the entry, the new job, what it sends and to whom. */
export interface Requeued {
  deadLetter: string;
  job: string;
  resource: string;
  facility: string;
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

/**
 * The outbound queue of this process, by database: the operator operations requeue through it (keyed by the
 * database, not the repository, since a request's repository is the store bound to its caller).
 */
const byDatabase = new WeakMap<object, Hl7Outbound>();

export function outboundFor(repo: FhirRepository): Hl7Outbound | undefined {
  return byDatabase.get(repo.db);
}

export class Hl7Outbound {
  private readonly connection: Redis;
  private readonly queue: Queue<OutboundJob>;
  private readonly dead: Queue<DeadLetter>;
  private worker?: Worker<OutboundJob>;
  private workerConnection?: Redis;

  constructor(private readonly options: OutboundOptions) {
    this.connection = new Redis(options.redisUrl, { maxRetriesPerRequest: null });
    this.connection.on('error', () => undefined);
    this.queue = new Queue(OUTBOUND_QUEUE, { connection: this.connection, prefix: options.prefix });
    this.dead = new Queue(DEAD_LETTER_QUEUE, { connection: this.connection, prefix: options.prefix });
    this.queue.on('error', (err) => this.redisDown(err));
    this.dead.on('error', (err) => this.redisDown(err));
    byDatabase.set(options.repo.db, this);
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
      // Attempts exhausted, or a job that can never succeed (UnrecoverableError: BullMQ does not retry it).
      if (job && (job.attemptsMade >= (job.opts.attempts ?? 1) || err.name === 'UnrecoverableError')) {
        void this.dead.add(job.name, { ...job.data, error: err.message, jobId: job.id, failedAt: new Date().toISOString() }).catch((e: unknown) => this.options.logger.error({ err: e }, 'could not dead-letter an HL7 job'));
        this.options.logger.warn({ job: job.id, err: err.message }, 'HL7 outbound message moved to the dead-letter queue');
      }
    });
    this.worker.on('error', (err) => this.redisDown(err));
  }

  /** The dead-letter list: what could not be delivered, with the last error, oldest first. */
  async deadLetters(limit = 1000): Promise<DeadLetter[]> {
    return (await this.dead.getJobs(['waiting', 'delayed'], 0, limit - 1, true)).map((j) => ({ ...j.data, id: j.id }));
  }

  /**
   * Sends dead letters again (after the facility's system or Endpoint was fixed): each goes back on the outbound
   * queue with its attempts and backoff renewed and the same MSH-10 (the receiver can still drop a duplicate), and
   * leaves the dead-letter list. `ids` names entries; `facility` (an Organization id) takes all of one facility's.
   */
  async requeueDeadLetters(select: { ids?: string[]; facility?: string; by: string }): Promise<Requeued[]> {
    const wanted = new Set(select.ids ?? []);
    const requeued: Requeued[] = [];
    for (const entry of await this.dead.getJobs(['waiting', 'delayed'], 0, -1, true)) {
      if ((wanted.size && !wanted.has(entry.id as string)) || (select.facility && entry.data.facility !== select.facility)) continue;
      const { error: _error, jobId, failedAt: _failedAt, id: _id, ...job } = entry.data;
      // The failed job keeps its id on the outbound queue (removeOnFail: false): removed first, or a job asked for
      // again under the same id (its MSH-10) would be taken for a duplicate and dropped.
      const previous = jobId ?? job.controlId;
      if (previous) await (await this.queue.getJob(previous))?.remove();
      const id = await this.enqueue({ ...job, requeued: { by: select.by, at: new Date().toISOString(), deadLetter: entry.id as string } });
      await entry.remove();
      requeued.push({ deadLetter: entry.id as string, job: id, resource: job.resource, facility: job.facility });
    }
    return requeued;
  }

  /** Lets a job in progress finish (bounded: with Redis unreachable, closing would wait for it), then disconnects. */
  async stop(): Promise<void> {
    if (byDatabase.get(this.options.repo.db) === this) byDatabase.delete(this.options.repo.db);
    const closing = Promise.all([this.worker?.close(), this.queue.close(), this.dead.close()]).catch(() => undefined);
    await Promise.race([closing, new Promise((r) => setTimeout(r, 5_000).unref())]);
    this.workerConnection?.disconnect();
    this.connection.disconnect();
  }

  /**
   * The ORM/OML message an order came in (its meta.source names the message record): ORR^O02 answers an ORM^O01,
   * ORL^O22 an OML^O21, and MSA-2 carries that message's MSH-10.
   */
  private async answeredOrder(request: ServiceRequest): Promise<AnsweredOrder> {
    const source = /^urn:huimin:hl7v2:Organization\/[^:]+:([^#]*)#([0-9a-f-]{36})$/i.exec(request.meta?.source ?? '');
    const record = source ? await getMessage(this.options.repo.db, source[2]) : undefined;
    const type = record?.messageType.split('^')[0];
    if (!source || !record || (type !== 'ORM' && type !== 'OML')) {
      // Not an HL7 order: there is no order message to answer (a FHIR order's system is told by Subscription).
      throw new UnrecoverableError(`ServiceRequest/${request.id} did not come by HL7 ORM/OML; there is no order message to answer`);
    }
    return { messageType: type, controlId: record.controlId || decodeURIComponent(source[1]) };
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
    } else if (job.data.kind === 'order-response') {
      const request = await read<ServiceRequest>(job.data.resource);
      if (!job.data.advisory) throw new Error(`order-response job for ${job.data.resource} names no advisory`);
      message = orderResponse(header, await this.answeredOrder(request), request, await read<Patient>(request.subject.reference as string), await read<DetectedIssue>(job.data.advisory));
    } else {
      const report = await read<DiagnosticReport>(job.data.resource);
      const observations = await Promise.all((report.result ?? []).map((r) => read<Observation>(r.reference as string)));
      message = oruR01(header, report, observations, await read<Patient>(report.subject?.reference as string));
    }
    await sendMessage(await facilityEndpoint(repo, job.data.facility), message);
  }
}
