/**
 * The referral workflow's public face: two-way referral, city-wide appointment booking and FHIR Subscriptions,
 * driven by the store's resource-change events through BullMQ. It talks to the store only through
 * `fhir-server/index.ts`.
 *
 * Two halves, because the store needs the rules before it exists and the workers need the store:
 * - `workflowStoreExtensions(config)`: write rules (booking holds slots, the Task state machine, what a referral
 *   must carry), operations (Task/$accept, $reject, $reroute, Appointment/$book, $referral-report) and the event queues the relay
 *   fills (one per consumer), passed to createFhirServer.
 * - `startWorkflow(options)`: the referral engine and subscription delivery, as BullMQ workers.
 */
import type { Job } from 'bullmq';
import type { Database, EventQueueTarget, FhirOperation, FhirRepository, WriteInterceptor } from '../fhir-server';
import { appointmentSlotRule, bookOperation, slotReservationRule } from './booking';
import { systemClock, type Clock } from './clock';
import type { WorkflowConfig } from './config';
import { ReferralEngine, type ConsentChecker, type ReferralMessageSender, type StepName } from './engine';
import { EVENT_CONSUMERS, type QueueSettings } from './queues';
import { referralReportOperation } from './report';
import { DEFAULT_TIME_ZONE } from './local-time';
import { SubscriptionService } from './subscriptions';
import { subscriptionOwnerRule } from './subscription-owner';
import { referralRequestRule, taskOperations, taskStateRule } from './tasks';

export { loadWorkflowConfig, parseDuration, parseDeadlines, type WorkflowConfig } from './config';
export { ManualClock, systemClock, type Clock } from './clock';
export { allowAllConsent, ReferralEngine, STEP_QUEUE, type ConsentChecker, type ReferralMessageSender, type StepName } from './engine';
export { securityConsent } from './security-consent';
export { SubscriptionService, DELIVERY_QUEUE, parseCriteria } from './subscriptions';
export { SUBSCRIPTION_OWNER_EXTENSION, subscriptionOwner } from './subscription-owner';
export { EVENT_CONSUMERS, EVENT_QUEUES, type QueueSettings } from './queues';
export { referralMigrations } from './migrations';
export { taskStatusTo0283, taskStatusFrom0283, type ReferralStatus0283 } from './hl7-status';
export { checkTaskTransition, TASK_TRANSITIONS } from './tasks';
export { reservationOf } from './booking';
export { installReferralContent, referralReasons } from './content';
export { referralFigures, REFERRAL_MEASURE } from './report';
export * as codes from './fhir';
export { readResource, searchAll } from './fhir';
export { checkTimeZone, DEFAULT_TIME_ZONE, localDate, localMonth, localMonthOf, startOfLocalDate, startOfLocalDay, type LocalDate } from './local-time';

export interface WorkflowStoreExtensions {
  writeInterceptors: WriteInterceptor[];
  operations: FhirOperation[];
  /** The workflow's event queues, which the store's relay fills. */
  eventQueues: readonly EventQueueTarget[];
}

/** What the store must know before it starts: pass all three to createFhirServer. */
export function workflowStoreExtensions(config: WorkflowConfig): WorkflowStoreExtensions {
  return {
    writeInterceptors: [appointmentSlotRule(), slotReservationRule(config.referralSlotShare), taskStateRule(), referralRequestRule(), subscriptionOwnerRule()],
    operations: [...taskOperations, bookOperation, referralReportOperation(config.timeZone ?? DEFAULT_TIME_ZONE)],
    eventQueues: EVENT_CONSUMERS,
  };
}

export interface WorkflowOptions {
  repository: FhirRepository;
  db: Database;
  queues: QueueSettings;
  config: WorkflowConfig;
  /** Public FHIR base URL (fullUrls in notifications). */
  baseUrl: string;
  clock?: Clock;
  /** Where security's consent service plugs in; default: every sharing allowed. */
  consent?: ConsentChecker;
  /** Where the adapters' REF^I12 sender plugs in; default: no HL7 message. */
  hl7?: ReferralMessageSender;
  onError?: (err: Error, job?: Job) => void;
  onStep?: (step: StepName, id: string) => void;
  onDelivered?: (subscriptionId: string, eventId: string) => void;
}

export interface Workflow {
  engine: ReferralEngine;
  subscriptions: SubscriptionService;
  /** Lets active jobs finish, then closes every worker, queue and connection. */
  close(): Promise<void>;
  /** Stops at once, as a crash would (tests). */
  kill(): Promise<void>;
}

/**
 * Starts the workers in this process. Several processes (HUIMIN_WORKERS, or several hosts) may each start them:
 * BullMQ hands every job to one worker, so they share the work.
 */
export function startWorkflow(options: WorkflowOptions): Workflow {
  const onError = options.onError ?? (() => undefined);
  const engine = new ReferralEngine({ ...options, clock: options.clock ?? systemClock, onError });
  const subscriptions = new SubscriptionService({ ...options, onError });
  // Whatever Redis may have lost while this process was down: open referrals' steps, undelivered notifications.
  void Promise.all([engine.recover(), subscriptions.sweep()]).catch((err: Error) => onError(err));
  return {
    engine,
    subscriptions,
    close: async () => {
      await Promise.all([engine.close(), subscriptions.close()]);
    },
    kill: async () => {
      await Promise.all([engine.kill(), subscriptions.kill()]);
    },
  };
}
