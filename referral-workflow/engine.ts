/**
 * The two-way referral engine. It consumes the store's change events of Tasks and Slots (the queue
 * `referral-events`, which the store's relay fills) and drives each referral Task through steps, each a BullMQ job on `referral-steps` whose job
 * id names the Task, so that a step is queued once however often its event is seen:
 *
 *   Task requested ──► intake: validate ──► route ──► notify ──► (wait for the receiver)
 *                              │          │ Task received, deadline in restriction.period.end
 *                              │          └──► deadline timer ──► overdue: businessStatus, Flag, coordinator notified
 *                              └── receiver unknown/inactive, specialty, consent refused: Task failed, coordinator told
 *   Task accepted ──► book (Appointment on a reserved or free slot of the receiver, Task.output)
 *   Task rejected ──► coordinator notified (re-route with Task/$reroute)
 *   Task completed ──► upward: a draft downward referral back to the referring clinic with the CarePlan;
 *                      downward: the CarePlan's follow-up Tasks at the community clinic
 *   Slot reserved for referrals ──► release timer ──► free for the public
 *
 * Intake runs its three steps in one job, so that a new referral costs one queue hop, not three (the reaction time
 * target is 200 ms p99); a retried intake skips what is done. Every step is idempotent: it re-reads the Task and does
 * nothing when its work is already done; it writes with If-Match on the version it read; what it creates carries an identifier derived from the Task and is created
 * conditionally (If-None-Exist). A worker that dies mid-step leaves the job to BullMQ, which hands it to another
 * worker once its lock expires; the repeated step then finds what the first attempt wrote and creates nothing twice.
 * The one effect outside the database, the HL7 message, is remembered in `referral_step_done` after sending; a
 * crash between the two sends it again with the same message control id, which receivers use to drop duplicates.
 */
import { DelayedError, UnrecoverableError, type Job, type Queue } from 'bullmq';
import type {
  Appointment,
  CarePlan,
  Communication,
  Flag,
  HealthcareService,
  Organization,
  Patient,
  Reference,
  Resource,
  Schedule,
  ServiceRequest,
  Slot,
  Task,
} from '@medplum/fhirtypes';
import { FhirError, type FhirRepository, type ResourceChangeJob, type Database } from '../fhir-server';
import { reservationOf, withReservation } from './booking';
import type { Clock } from './clock';
import type { WorkflowConfig } from './config';
import {
  APPOINTMENT_ID,
  businessStatus,
  businessStatusOf,
  directionOf,
  DIRECTION_EXTENSION,
  FLAG_ID,
  FOLLOW_UP_ID,
  isGreenChannel,
  isReferral,
  localRef,
  NOTIFICATION_ID,
  readResource,
  REFERRAL_CATEGORY,
  RESERVATION_SYSTEM,
  searchAll,
  SNOMED,
  TASK_IO,
} from './fhir';
import { EVENT_QUEUES, QueueGroup, STEP_JOB_DEFAULTS, type QueueSettings } from './queues';

export const STEP_QUEUE = 'referral-steps';

/** Whether the patient's consent lets the referral's data be shared with the receiver. */
export interface ConsentChecker {
  allowsSharing(request: { patient?: Reference; recipient: Reference; serviceRequest: ServiceRequest }): Promise<{ allowed: boolean; reason?: string }>;
}

/**
 * Every sharing allowed: the default for an engine embedded without security. The platform (main.ts) passes
 * `securityConsent`, which answers from the patients' Consents.
 */
export const allowAllConsent: ConsentChecker = { allowsSharing: async () => ({ allowed: true }) };

/** Sends a referral to the receiver's HIS as HL7 v2 REF^I12; the adapters module implements it over MLLP. */
export interface ReferralMessageSender {
  /** `controlId` (MSH-10) is the same on every repetition of one notification, so the receiver can drop duplicates. */
  sendReferral(message: { task: Task; serviceRequest: ServiceRequest; controlId: string }): Promise<void>;
}

export type StepName = 'intake' | 'validate' | 'route' | 'notify' | 'deadline' | 'book' | 'rejected' | 'completed' | 'release-slot';

interface StepJob {
  taskId?: string;
  slotId?: string;
  /** For timers: when the step is due, by the engine's clock (ms since the epoch). */
  dueAt?: number;
}

export interface ReferralEngineOptions {
  repository: FhirRepository;
  db: Database;
  queues: QueueSettings;
  config: WorkflowConfig;
  clock: Clock;
  consent?: ConsentChecker;
  hl7?: ReferralMessageSender;
  /** Workers per process for steps (default 8) and events (default 4). */
  stepConcurrency?: number;
  eventConcurrency?: number;
  /** Called after each step has done its work (instrumentation, the bench, tests). */
  onStep?: (step: StepName, id: string) => void;
  onError?: (err: Error, job?: Job) => void;
}

interface Referral {
  task: Task;
  sr: ServiceRequest;
}

/** A step that cannot go on (missing data): it fails for good rather than retrying. */
class StepRefused extends UnrecoverableError {}

export class ReferralEngine {
  private readonly repo: FhirRepository;
  private readonly group: QueueGroup;
  private readonly steps: Queue<StepJob>;
  private readonly consent: ConsentChecker;

  constructor(private readonly options: ReferralEngineOptions) {
    this.repo = options.repository;
    this.consent = options.consent ?? allowAllConsent;
    this.group = new QueueGroup(options.queues);
    this.steps = this.group.queue<StepJob>(STEP_QUEUE, STEP_JOB_DEFAULTS);
    const onError = options.onError ?? (() => undefined);
    this.group.worker<ResourceChangeJob>(EVENT_QUEUES.referral, (job) => this.onEvent(job.data), options.eventConcurrency ?? 4, onError);
    this.group.worker<StepJob>(STEP_QUEUE, (job) => this.runStep(job), options.stepConcurrency ?? 8, onError);
  }

  close(): Promise<void> {
    return this.group.close();
  }

  /** Stops at once, as a crashed process would (tests). */
  kill(): Promise<void> {
    return this.group.kill();
  }

  /**
   * Promotes the timers (deadlines, slot releases) that are due by the engine's clock: with a ManualClock moved
   * forward, tests see what a real wait would bring. With the system clock BullMQ fires them on time by itself.
   */
  async promoteDueTimers(): Promise<number> {
    let promoted = 0;
    for (const job of await this.steps.getDelayed()) {
      const data = job.data as StepJob;
      if (data.dueAt !== undefined && data.dueAt <= this.options.clock.now()) {
        await job.promote();
        promoted++;
      }
    }
    return promoted;
  }

  /**
   * Queues again what open referrals are waiting for: after Redis lost its jobs (a restart without persistence, a
   * flush), the workflow's state is still in the Tasks. Steps already queued are not duplicated (same job ids), and
   * repeated steps are no-ops. Run at start by startWorkflow.
   */
  async recover(): Promise<number> {
    let queued = 0;
    for (const status of ['requested', 'accepted', 'received']) {
      for (const task of await searchAll<Task>(this.repo, 'Task', `status=${status}&_sort=_lastUpdated`, 10_000)) {
        const id = task.id as string;
        if (status === 'received') {
          // Routed: intake makes sure the receiver was notified and the deadline timer exists.
          if (businessStatusOf(task) === 'routed') {
            await this.queue('intake', id);
            queued++;
          }
        } else if (status === 'requested' || (!appointmentOf(task) && businessStatusOf(task) !== 'no-slot')) {
          await this.queue(status === 'requested' ? 'intake' : 'book', id);
          queued++;
        }
      }
    }
    return queued;
  }

  /** What a change means for the workflow: which step to queue. */
  private async onEvent(event: ResourceChangeJob): Promise<void> {
    if (event.interaction === 'delete') {
      return;
    }
    if (event.resourceType === 'Slot' && event.interaction === 'create') {
      const slot = await readResource<Slot>(this.repo, 'Slot', event.id);
      if (slot && reservationOf(slot) === 'reserved' && slot.start) {
        const dueAt = Date.parse(slot.start) - this.options.config.reservedSlotReleaseMs;
        await this.timer('release-slot', `release-${slot.id}`, { slotId: slot.id }, dueAt);
      }
      return;
    }
    if (event.resourceType !== 'Task') {
      return;
    }
    const task = await readResource<Task>(this.repo, 'Task', event.id);
    // Only Tasks about a ServiceRequest in these states ask for a step; whether it is a referral the step finds out.
    if (!task || localRef(task.focus)?.resourceType !== 'ServiceRequest') {
      return;
    }
    const id = task.id as string;
    switch (task.status) {
      case 'requested':
        await this.queue('intake', id);
        break;
      case 'accepted':
        if (!appointmentOf(task) && businessStatusOf(task) !== 'no-slot') {
          await this.queue('book', id);
        }
        break;
      case 'rejected':
      case 'failed':
        await this.queue('rejected', id);
        break;
      case 'completed':
        await this.queue('completed', id);
        break;
      default:
        break;
    }
  }

  private async queue(step: StepName, taskId: string): Promise<void> {
    await this.steps.add(step, { taskId }, { jobId: `${step}-${taskId}` });
  }

  private async timer(step: StepName, jobId: string, data: StepJob, dueAt: number): Promise<void> {
    await this.steps.add(step, { ...data, dueAt }, { jobId, delay: Math.max(0, dueAt - this.options.clock.now()) });
  }

  private async runStep(job: Job<StepJob>): Promise<void> {
    const { dueAt } = job.data;
    if (dueAt !== undefined && dueAt > this.options.clock.now()) {
      // Woken early (the clock is not the wall clock, or a promotion raced): wait for the rest of the time.
      await job.moveToDelayed(Date.now() + (dueAt - this.options.clock.now()), job.token);
      throw new DelayedError();
    }
    const step = job.name as StepName;
    try {
      switch (step) {
        case 'intake':
          await this.intake(job.data.taskId as string);
          break;
        case 'deadline':
          await this.deadlinePassed(job.data.taskId as string);
          break;
        case 'book':
          await this.book(job.data.taskId as string);
          break;
        case 'rejected':
          await this.rejected(job.data.taskId as string);
          break;
        case 'completed':
          await this.completed(job.data.taskId as string);
          break;
        case 'release-slot':
          await this.releaseSlot(job.data.slotId as string);
          break;
        default:
          throw new StepRefused(`Unknown workflow step "${String(step)}"`);
      }
    } catch (err) {
      // The store refusing what the step writes (invalid content) will not change on retry; a lost race (412,
      // 409) or an outage will, so those are retried with backoff.
      if (err instanceof FhirError && [400, 404, 410, 422].includes(err.status)) {
        throw new StepRefused(`${step} ${job.data.taskId ?? job.data.slotId}: ${err.message}`);
      }
      throw err;
    }
    this.options.onStep?.(step, job.data.taskId ?? job.data.slotId ?? '');
  }

  /** The referral ServiceRequest a Task is about, or undefined when the Task is not a referral. */
  private async referralOf(task: Task): Promise<ServiceRequest | undefined> {
    const focus = localRef(task.focus);
    if (focus?.resourceType !== 'ServiceRequest') {
      return undefined;
    }
    const sr = await readResource<ServiceRequest>(this.repo, 'ServiceRequest', focus.id);
    return sr && isReferral(sr) ? sr : undefined;
  }

  /** The Task and its referral ServiceRequest; undefined when the Task is gone or not a referral (nothing to do). */
  private async load(taskId: string): Promise<Referral | undefined> {
    const task = await readResource<Task>(this.repo, 'Task', taskId);
    const sr = task && (await this.referralOf(task));
    return task && sr ? { task, sr } : undefined;
  }

  /** Writes the Task at the version read (If-Match): a concurrent change makes the step retry on fresh data. */
  private async updateTask(task: Task, changes: Partial<Task>): Promise<Task> {
    const { resource } = await this.repo.write((s) =>
      // lastModified records when the Task changed (wall time); the engine's clock only decides what is due.
      s.update('Task', task.id as string, { ...task, ...changes, lastModified: new Date().toISOString() }, Number(task.meta?.versionId)),
    );
    return resource as Task;
  }

  /** Creates a resource once: the identifier names it, so repetitions of a step find the first one. */
  private async createOnce<T extends Resource & { identifier?: unknown }>(resource: T, system: string, value: string): Promise<T> {
    const withId = { ...resource, identifier: [{ system, value }] } as T;
    const { resource: created } = await this.repo.write((s) => s.conditionalCreate(withId, `identifier=${encodeURIComponent(system)}|${encodeURIComponent(value)}`));
    return created as T;
  }

  /** validate → route → notify, each skipped when already done. */
  private async intake(taskId: string): Promise<void> {
    const referral = await this.load(taskId);
    if (!referral) {
      return;
    }
    if (referral.task.status === 'requested') {
      const problem = await this.validationProblem(referral.task, referral.sr);
      if (problem) {
        await this.updateTask(referral.task, { status: 'failed', statusReason: { text: problem.text }, businessStatus: businessStatus(problem.code, problem.text) });
        return;
      }
      this.options.onStep?.('validate', taskId);
      referral.task = await this.route(referral);
      this.options.onStep?.('route', taskId);
    }
    const end = referral.task.restriction?.period?.end;
    if (referral.task.status === 'received' && businessStatusOf(referral.task) === 'routed' && end) {
      await this.notify(referral);
      await this.timer('deadline', `deadline-${taskId}`, { taskId }, Date.parse(end));
      this.options.onStep?.('notify', taskId);
    }
  }

  private async validationProblem(task: Task, sr: ServiceRequest): Promise<{ code: string; text: string } | undefined> {
    const owner = localRef(task.owner);
    if (!owner || !['Organization', 'HealthcareService', 'PractitionerRole', 'Practitioner'].includes(owner.resourceType)) {
      return { code: 'receiver-unknown', text: 'The Task has no receiver (owner: Organization, HealthcareService, PractitionerRole or Practitioner)' };
    }
    const receiver = await readResource<Organization | HealthcareService>(this.repo, owner.resourceType, owner.id);
    if (!receiver) {
      return { code: 'receiver-unknown', text: `The receiver ${owner.resourceType}/${owner.id} does not exist` };
    }
    if ('active' in receiver && receiver.active === false) {
      return { code: 'receiver-inactive', text: `The receiver ${owner.resourceType}/${owner.id} is not active` };
    }
    if (receiver.resourceType === 'HealthcareService' && receiver.specialty?.length && sr.performerType?.coding?.length) {
      const offered = new Set(receiver.specialty.flatMap((s) => (s.coding ?? []).map((c) => `${c.system}|${c.code}`)));
      if (!sr.performerType.coding.some((c) => offered.has(`${c.system}|${c.code}`))) {
        return { code: 'specialty-not-offered', text: `${owner.resourceType}/${owner.id} does not offer the specialty the referral asks for` };
      }
    }
    const consent = await this.consent.allowsSharing({ patient: sr.subject, recipient: task.owner as Reference, serviceRequest: sr });
    if (!consent.allowed) {
      return { code: 'consent-refused', text: `The patient's consent does not allow sharing with ${owner.resourceType}/${owner.id}${consent.reason ? `: ${consent.reason}` : ''}` };
    }
    return undefined;
  }

  private deadlineFor(sr: ServiceRequest): number {
    const deadlines = this.options.config.deadlines;
    const key = isGreenChannel(sr) ? 'green' : (sr.priority ?? 'routine');
    return deadlines[key] ?? deadlines.routine;
  }

  /** The Task received, with its response deadline by priority (green channel first). */
  private async route({ task, sr }: Referral): Promise<Task> {
    const deadline = new Date(this.options.clock.now() + this.deadlineFor(sr)).toISOString();
    return this.updateTask(task, {
      status: 'received',
      businessStatus: businessStatus('routed', 'Routed to the receiver, awaiting an answer'),
      restriction: { ...task.restriction, period: { ...task.restriction?.period, end: deadline } },
    });
  }

  private async notify({ task, sr }: Referral): Promise<void> {
    const taskId = task.id as string;
    await this.createOnce<Communication>(
      {
        resourceType: 'Communication',
        status: 'completed',
        category: [{ coding: [{ system: SNOMED, code: REFERRAL_CATEGORY, display: 'Patient referral' }] }],
        subject: sr.subject as Reference<Patient>,
        about: [{ reference: `Task/${taskId}` }, { reference: `ServiceRequest/${sr.id}` }],
        // basedOn is searchable (Communication?based-on=Task/…); about is not a search parameter in R4.
        basedOn: [{ reference: `Task/${taskId}` }, { reference: `ServiceRequest/${sr.id}` }],
        sender: task.requester,
        recipient: task.owner ? [task.owner] : undefined,
        priority: sr.priority,
        sent: new Date(this.options.clock.now()).toISOString(),
        payload: [{ contentString: `New ${directionOf(sr) === 'down' ? 'downward' : 'upward'} referral awaiting your answer by ${task.restriction?.period?.end}` }],
      },
      NOTIFICATION_ID,
      `${taskId}-routed`,
    );
    if (this.options.hl7 && !(await this.stepDone(taskId, 'hl7-ref-i12'))) {
      await this.options.hl7.sendReferral({ task, serviceRequest: sr, controlId: `${taskId}-${task.meta?.versionId}` });
      await this.markStepDone(taskId, 'hl7-ref-i12');
    }
  }

  private async stepDone(taskId: string, step: string): Promise<boolean> {
    const rows = await this.options.db.query('SELECT 1 FROM referral_step_done WHERE task_id = $1 AND step = $2', [taskId, step]);
    return rows.length > 0;
  }

  private async markStepDone(taskId: string, step: string): Promise<void> {
    await this.options.db.query('INSERT INTO referral_step_done (task_id, step) VALUES ($1, $2) ON CONFLICT DO NOTHING', [taskId, step]);
  }

  /** Tells the coordinator (the Task's requester) about the referral, once per reason. */
  private async tellCoordinator(task: Task, sr: ServiceRequest, reason: string, text: string): Promise<void> {
    await this.createOnce<Communication>(
      {
        resourceType: 'Communication',
        status: 'completed',
        category: [{ coding: [{ system: SNOMED, code: REFERRAL_CATEGORY, display: 'Patient referral' }] }],
        subject: sr.subject as Reference<Patient>,
        about: [{ reference: `Task/${task.id}` }, { reference: `ServiceRequest/${sr.id}` }],
        basedOn: [{ reference: `Task/${task.id}` }, { reference: `ServiceRequest/${sr.id}` }],
        recipient: task.requester ? [task.requester] : undefined,
        sent: new Date(this.options.clock.now()).toISOString(),
        payload: [{ contentString: text }],
      },
      NOTIFICATION_ID,
      `${task.id}-${reason}`,
    );
  }

  private async deadlinePassed(taskId: string): Promise<void> {
    const referral = await this.load(taskId);
    if (!referral || !['requested', 'received'].includes(referral.task.status)) {
      return;
    }
    let { task } = referral;
    const { sr } = referral;
    if (businessStatusOf(task) !== 'overdue') {
      task = await this.updateTask(task, { businessStatus: businessStatus('overdue', 'No answer by the deadline') });
    }
    await this.createOnce<Flag>(
      {
        resourceType: 'Flag',
        status: 'active',
        category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/flag-category', code: 'admin', display: 'Administrative' }] }],
        code: { coding: [{ system: 'http://huimin.health/fhir/CodeSystem/referral-flag', code: 'referral-overdue', display: 'Referral not answered by its deadline' }], text: `Referral Task/${taskId} overdue` },
        subject: sr.subject as Reference<Patient>,
        period: { start: new Date(this.options.clock.now()).toISOString() },
        author: task.requester as Reference<Organization>,
      },
      FLAG_ID,
      `${taskId}-overdue`,
    );
    await this.tellCoordinator(task, sr, 'overdue', `The referral was not answered by ${task.restriction?.period?.end}; re-route it with Task/${taskId}/$reroute`);
  }

  private async rejected(taskId: string): Promise<void> {
    const referral = await this.load(taskId);
    if (!referral) {
      return;
    }
    const { task, sr } = referral;
    const why = task.statusReason?.text ?? task.statusReason?.coding?.[0]?.display ?? task.statusReason?.coding?.[0]?.code ?? 'no reason given';
    await this.tellCoordinator(task, sr, task.status, `The referral was ${task.status === 'failed' ? 'refused by the platform' : `rejected by ${task.owner?.reference}`}: ${why}. Re-route it with Task/${taskId}/$reroute`);
  }

  /** The receiver's schedules: those of the owner itself, or of its HealthcareServices when the owner is an Organization. */
  private async receiverSchedules(owner: Reference): Promise<string[]> {
    const ref = localRef(owner);
    if (!ref) {
      return [];
    }
    const actors = [`${ref.resourceType}/${ref.id}`];
    if (ref.resourceType === 'Organization') {
      const services = await searchAll<HealthcareService>(this.repo, 'HealthcareService', `organization=Organization/${ref.id}`, 100);
      actors.push(...services.map((s) => `HealthcareService/${s.id}`));
    }
    const schedules = await searchAll<Schedule>(this.repo, 'Schedule', `actor=${actors.join(',')}&active=true`, 200);
    return schedules.map((s) => `Schedule/${s.id}`);
  }

  /** Candidate slots: the preferred one, then reserved referral slots, then free ones, earliest first. */
  private async candidateSlots(task: Task): Promise<string[]> {
    const preferred = task.input?.find((i) => i.type.coding?.some((c) => c.system === TASK_IO && c.code === 'preferred-slot'))?.valueReference;
    const ids: string[] = [];
    const preferredId = localRef(preferred)?.id;
    if (preferredId) {
      ids.push(preferredId);
    }
    const schedules = task.owner ? await this.receiverSchedules(task.owner) : [];
    if (schedules.length > 0) {
      const from = new Date(this.options.clock.now()).toISOString();
      const base = `schedule=${schedules.join(',')}&start=ge${from}&_sort=start&_count=20`;
      const reserved = await searchAll<Slot>(this.repo, 'Slot', `${base}&_tag=${encodeURIComponent(`${RESERVATION_SYSTEM}|reserved`)}&status=busy-unavailable`, 20);
      const free = await searchAll<Slot>(this.repo, 'Slot', `${base}&status=free`, 20);
      ids.push(...[...reserved, ...free].map((s) => s.id as string));
    }
    return [...new Set(ids)];
  }

  private async book(taskId: string): Promise<void> {
    const referral = await this.load(taskId);
    if (!referral || referral.task.status !== 'accepted' || appointmentOf(referral.task)) {
      return;
    }
    let { task } = referral;
    const { sr } = referral;
    const identifier = `${taskId}`;
    const existing = await searchAll<Appointment>(this.repo, 'Appointment', `identifier=${encodeURIComponent(APPOINTMENT_ID)}|${identifier}`, 1);
    let appointment = existing[0];
    if (!appointment) {
      for (const slotId of await this.candidateSlots(task)) {
        try {
          appointment = await this.createOnce<Appointment>(
            {
              resourceType: 'Appointment',
              status: 'booked',
              basedOn: [{ reference: `ServiceRequest/${sr.id}` }],
              slot: [{ reference: `Slot/${slotId}` }],
              serviceType: sr.performerType ? [sr.performerType] : undefined,
              reasonCode: sr.reasonCode,
              priority: sr.priority === 'stat' || isGreenChannel(sr) ? 1 : undefined,
              participant: [
                ...(sr.subject ? [{ actor: sr.subject as Reference<Patient>, status: 'accepted' as const }] : []),
                ...(task.owner ? [{ actor: task.owner as Reference<HealthcareService>, status: 'accepted' as const }] : []),
              ],
            },
            APPOINTMENT_ID,
            identifier,
          );
          break;
        } catch (err) {
          // Taken meanwhile (409), or not a slot this referral may use: try the next one.
          if (!(err instanceof FhirError) || ![409, 422].includes(err.status)) {
            throw err;
          }
        }
      }
    }
    task = (await readResource<Task>(this.repo, 'Task', taskId)) as Task;
    if (!appointment) {
      await this.updateTask(task, { businessStatus: businessStatus('no-slot', 'Accepted; no free slot found, the receiver books one by hand') });
      await this.tellCoordinator(task, sr, 'no-slot', `The referral was accepted but no free slot was found at ${task.owner?.reference}`);
      return;
    }
    await this.updateTask(task, {
      businessStatus: businessStatus('booked', 'Accepted and booked'),
      output: [...(task.output ?? []), { type: { coding: [{ system: TASK_IO, code: 'appointment' }] }, valueReference: { reference: `Appointment/${appointment.id}` } }],
    });
    await this.tellCoordinator(task, sr, 'booked', `The referral was accepted; appointment ${appointment.start ?? ''} (Appointment/${appointment.id})`);
  }

  /**
   * Treatment done. After an upward referral, proposes the downward one back to the referring institution with
   * the receiver's CarePlan and discharge summary (a draft the hospital reviews and submits). After a downward
   * one, creates the CarePlan's follow-up Tasks at the community clinic.
   */
  private async completed(taskId: string): Promise<void> {
    const referral = await this.load(taskId);
    if (!referral) {
      return;
    }
    const { task, sr } = referral;
    const outputs = (task.output ?? []).map((o) => o.valueReference).filter((r): r is Reference => Boolean(localRef(r)));
    const carePlanRef = outputs.find((r) => localRef(r)?.resourceType === 'CarePlan');
    if (directionOf(sr) === 'up') {
      const requester = task.requester;
      if (!requester || !carePlanRef) {
        return;
      }
      const srDown = await this.createOnce<ServiceRequest>(
        {
          resourceType: 'ServiceRequest',
          status: 'draft',
          intent: 'order',
          category: sr.category,
          extension: [{ url: DIRECTION_EXTENSION, valueCode: 'down' }],
          subject: sr.subject,
          requester: task.owner as Reference<Organization>,
          performer: [requester as Reference<Organization>],
          basedOn: [{ reference: `ServiceRequest/${sr.id}` }],
          supportingInfo: outputs,
          authoredOn: new Date(this.options.clock.now()).toISOString(),
        },
        FOLLOW_UP_ID,
        `${taskId}-down`,
      );
      await this.createOnce<Task>(
        {
          resourceType: 'Task',
          status: 'draft',
          intent: 'order',
          focus: { reference: `ServiceRequest/${srDown.id}` },
          for: sr.subject,
          requester: task.owner as Reference<Organization>,
          owner: requester as Reference<Organization>,
          basedOn: [{ reference: `ServiceRequest/${srDown.id}` }],
          partOf: [{ reference: `Task/${taskId}` }],
          authoredOn: new Date(this.options.clock.now()).toISOString(),
        },
        FOLLOW_UP_ID,
        `${taskId}-down-task`,
      );
      return;
    }
    const planRef = carePlanRef ?? (sr.supportingInfo ?? []).find((r) => localRef(r)?.resourceType === 'CarePlan');
    const plan = planRef && (await readResource<CarePlan>(this.repo, 'CarePlan', localRef(planRef)!.id));
    if (!plan) {
      return;
    }
    for (const [index, activity] of (plan.activity ?? []).entries()) {
      const detail = activity.detail;
      await this.createOnce<Task>(
        {
          resourceType: 'Task',
          status: 'requested',
          intent: 'plan',
          code: detail?.code,
          description: detail?.description ?? detail?.code?.text,
          for: sr.subject,
          owner: task.owner,
          requester: task.requester,
          basedOn: [{ reference: `CarePlan/${plan.id}` }],
          partOf: [{ reference: `Task/${taskId}` }],
          executionPeriod: detail?.scheduledPeriod,
          authoredOn: new Date(this.options.clock.now()).toISOString(),
        },
        FOLLOW_UP_ID,
        `${taskId}-activity-${index}`,
      );
    }
  }

  /** An unused reserved slot goes to the public before its start. */
  private async releaseSlot(slotId: string): Promise<void> {
    const slot = await readResource<Slot>(this.repo, 'Slot', slotId);
    if (!slot || slot.status !== 'busy-unavailable' || reservationOf(slot) !== 'reserved') {
      return;
    }
    await this.repo.write((s) => s.update('Slot', slotId, { ...withReservation(slot, 'released'), status: 'free' }, Number(slot.meta.versionId)));
  }
}

export function appointmentOf(task: Task): Reference | undefined {
  return task.output?.find((o) => localRef(o.valueReference)?.resourceType === 'Appointment')?.valueReference;
}
