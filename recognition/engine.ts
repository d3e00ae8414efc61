/**
 * The recognition engine: consumes the store's change events of ServiceRequests and MedicationRequests (queue
 * `recognition-events`, which the store's relay fills) and queues one check per new version (queue
 * `recognition-checks`, job id `check-<Type>-<id>-<version>`):
 *
 *   laboratory/imaging order placed ──► recognisable results of the resident at any hospital? ──► DetectedIssue
 *                                       (look-up recorded for the figures)                         (duplicate-test)
 *   prescription placed ──► same ingredient active elsewhere? ──► DetectedIssue (duplicate-medication)
 *                                                     │
 *                                                     └──► the ordering system learns of it: FHIR Subscriptions
 *                                                          on DetectedIssue; an HL7 ORU^R01 of the prior results
 *                                                          when the order came by HL7 (AdvisoryNotifier)
 *
 * A check is idempotent: the advisory is created conditionally on an identifier naming the order, and the look-up
 * row has a key naming the order (one look-up per order, however often it changes), so retries and repeated events
 * add nothing.
 */
import { UnrecoverableError, Queue, Worker, type DefaultJobOptions, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import type { DetectedIssue, MedicationRequest, Observation, ServiceRequest } from '@medplum/fhirtypes';
import { FhirError, type Database, type EventQueueTarget, type FhirRepository, type ResourceChangeJob } from '../fhir-server';
import { raiseAdvisory, type Order } from './advisory';
import { attributionOf } from './attribution';
import { codings, localRef, readResource } from './fhir';
import type { RecognitionFinder, Recognisable } from './finder';
import { duplicateMedication } from './medication';
import { residentPatients } from './patients';

export const RECOGNITION_EVENT_QUEUE = 'recognition-events';
export const RECOGNITION_CHECK_QUEUE = 'recognition-checks';

const JOB_DEFAULTS: DefaultJobOptions = {
  attempts: 8,
  backoff: { type: 'exponential', delay: 500 },
  removeOnComplete: { age: 3600, count: 10_000 },
  removeOnFail: { age: 7 * 24 * 3600, count: 10_000 },
};

/** The module's event queue: pass it to createFhirServer's eventQueues beside the other consumers'. */
export const RECOGNITION_EVENT_CONSUMERS: readonly EventQueueTarget[] = [
  { name: RECOGNITION_EVENT_QUEUE, resourceTypes: ['ServiceRequest', 'MedicationRequest'], jobOptions: JOB_DEFAULTS },
];

/** Categories that make a ServiceRequest a laboratory or imaging order (SNOMED CT, HL7 v2 0074, observation-category). */
const TEST_CATEGORIES = new Set(['108252007', '363679005', 'LAB', 'RAD', 'laboratory', 'imaging', 'CH', 'HM', 'CT', 'MR', 'US', 'XR']);
const ORDER_INTENTS = new Set(['order', 'original-order', 'reflex-order', 'filler-order', 'instance-order']);

/** Tells the ordering system of an advisory beyond FHIR Subscriptions (the adapters' HL7 channel). */
export interface AdvisoryNotifier {
  advisoryRaised(advisory: { issue: DetectedIssue; order: Order; results: Observation[] }): Promise<void>;
}

export interface RecognitionEngineOptions {
  repository: FhirRepository;
  db: Database;
  queues: { redisUrl: string; prefix: string };
  finder: RecognitionFinder;
  notifier?: AdvisoryNotifier;
  now?: () => Date;
  concurrency?: number;
  onError?: (err: Error, job?: Job) => void;
  /** Called after each check (tests, instrumentation): the advisory raised, if any. */
  onChecked?: (order: string, issue: DetectedIssue | undefined) => void;
}

interface CheckJob {
  resourceType: 'ServiceRequest' | 'MedicationRequest';
  id: string;
  versionId: number;
}

/** A laboratory or imaging order by its category; an order without a category (HL7 ORM/OML) is judged by its code. */
export function isTestOrder(sr: ServiceRequest): boolean | undefined {
  const categories = codings(sr.category);
  if (categories.length === 0) return undefined;
  return categories.some((c) => TEST_CATEGORIES.has(c.code ?? ''));
}

function describe(r: Recognisable): string {
  const o = r.observation;
  const value = o.valueQuantity ? `${o.valueQuantity.value ?? ''} ${o.valueQuantity.unit ?? o.valueQuantity.code ?? ''}`.trim() : (o.valueString ?? o.valueCodeableConcept?.text ?? '');
  return `${r.item.display ?? r.item.code} ${value} taken ${r.takenAt} at ${r.institution ?? r.producer} (${r.mark}, recognisable ${r.item.windowDays} days)`;
}

export class RecognitionEngine {
  private readonly connections: Redis[] = [];
  private readonly checks: Queue<CheckJob>;
  private readonly workers: Worker[];
  private readonly now: () => Date;

  constructor(private readonly options: RecognitionEngineOptions) {
    this.now = options.now ?? (() => new Date());
    const onError = options.onError ?? (() => undefined);
    this.checks = new Queue<CheckJob>(RECOGNITION_CHECK_QUEUE, { connection: this.connection(), prefix: options.queues.prefix, defaultJobOptions: JOB_DEFAULTS });
    this.checks.on('error', () => undefined);
    const worker = <T>(name: string, fn: (job: Job<T>) => Promise<void>, concurrency: number): Worker => {
      const w = new Worker<T>(name, fn, { connection: this.connection(), prefix: options.queues.prefix, concurrency });
      w.on('error', (err) => onError(err));
      w.on('failed', (job, err) => onError(err, job));
      return w as Worker;
    };
    this.workers = [
      worker<ResourceChangeJob>(RECOGNITION_EVENT_QUEUE, (job) => this.onEvent(job.data), 4),
      worker<CheckJob>(RECOGNITION_CHECK_QUEUE, (job) => this.runCheck(job.data), options.concurrency ?? 4),
    ];
  }

  private connection(): Redis {
    const redis = new Redis(this.options.queues.redisUrl, { maxRetriesPerRequest: null });
    redis.on('error', () => undefined);
    this.connections.push(redis);
    return redis;
  }

  private closing: Promise<void> | undefined;

  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.all(this.workers.map((w) => w.close()));
      await this.checks.close();
      this.connections.forEach((c) => c.disconnect());
    })();
    return this.closing;
  }

  private async onEvent(event: ResourceChangeJob): Promise<void> {
    if (event.interaction === 'delete' || (event.resourceType !== 'ServiceRequest' && event.resourceType !== 'MedicationRequest')) {
      return;
    }
    const job: CheckJob = { resourceType: event.resourceType, id: event.id, versionId: event.versionId };
    await this.checks.add('check', job, { jobId: `check-${event.resourceType}-${event.id}-${event.versionId}` });
  }

  private async runCheck(job: CheckJob): Promise<void> {
    try {
      const issue = job.resourceType === 'ServiceRequest' ? await this.checkOrder(job) : await this.checkPrescription(job);
      this.options.onChecked?.(`${job.resourceType}/${job.id}`, issue);
    } catch (err) {
      if (err instanceof FhirError && [400, 404, 410, 422].includes(err.status)) {
        throw new UnrecoverableError(`recognition check of ${job.resourceType}/${job.id}: ${err.message}`);
      }
      throw err;
    }
  }

  /** Only the version the event was about: a later change has its own check. */
  private async current<T extends Order>(job: CheckJob): Promise<T | undefined> {
    const order = await readResource<T>(this.options.repository, job.resourceType, job.id);
    return order && Number(order.meta.versionId) === job.versionId ? order : undefined;
  }

  private async checkOrder(job: CheckJob): Promise<DetectedIssue | undefined> {
    const repo = this.options.repository;
    const order = await this.current<ServiceRequest>(job);
    const patient = localRef(order?.subject);
    if (!order || order.status !== 'active' || !ORDER_INTENTS.has(order.intent) || isTestOrder(order) === false || patient?.resourceType !== 'Patient') {
      return undefined;
    }
    const items = await this.options.finder.itemsOf(order.code);
    if (items.length === 0) {
      return undefined;
    }
    const who = await attributionOf(repo, order);
    const patients = await residentPatients(repo, patient.id);
    const found = (await this.options.finder.find({ patients, code: order.code as NonNullable<ServiceRequest['code']>, specimen: order.specimen, asker: who.institution, now: this.now() }))
      // Not the order's own result, should it already have one.
      .filter((r) => !(r.observation.basedOn ?? []).some((b) => b.reference === `ServiceRequest/${order.id}`));
    await this.options.db.query(
      `INSERT INTO recognition_lookup (lookup_key, via, institution, department, doctor, patient, item_code, found) VALUES ($1, 'order', $2, $3, $4, $5, $6, $7)
       ON CONFLICT (lookup_key) DO NOTHING`,
      [`ServiceRequest/${order.id}`, who.institution ?? null, who.department ?? null, who.doctor ?? null, `Patient/${patient.id}`, items.map((i) => i.code).join(','), found.filter((r) => r.institution !== who.institution).length],
    );
    if (found.length === 0) {
      return undefined;
    }
    const issue = await raiseAdvisory(repo, { kind: 'duplicate-test', order, institution: who.institution, evidence: found.map((r) => ({ reference: `Observation/${r.observation.id}`, text: describe(r) })) }, this.now());
    await this.options.notifier?.advisoryRaised({ issue, order, results: found.map((r) => r.observation) });
    return issue;
  }

  private async checkPrescription(job: CheckJob): Promise<DetectedIssue | undefined> {
    const repo = this.options.repository;
    const prescription = await this.current<MedicationRequest>(job);
    const patient = localRef(prescription?.subject);
    if (!prescription || prescription.status !== 'active' || !ORDER_INTENTS.has(prescription.intent) || patient?.resourceType !== 'Patient') {
      return undefined;
    }
    const who = await attributionOf(repo, prescription);
    const patients = await residentPatients(repo, patient.id);
    const found = await duplicateMedication(repo, prescription, patients, who.institution, this.now());
    if (found.length === 0) {
      return undefined;
    }
    const evidence = found.map((f) => ({
      reference: `${f.resource.resourceType}/${f.resource.id}`,
      text: `${f.resource.resourceType === 'MedicationRequest' ? 'Active prescription' : 'Dispensed'} with the same ingredient (${f.ingredient}) at ${f.institution ?? 'another institution'}`,
    }));
    return raiseAdvisory(repo, { kind: 'duplicate-medication', order: prescription, institution: who.institution, evidence }, this.now());
  }
}
