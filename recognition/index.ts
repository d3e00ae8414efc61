/**
 * Mutual recognition of test and examination results (检查检验结果互认), and the cross-hospital duplicate-medication
 * reminder (WS/T 790.18). It talks to the store only through `fhir-server/index.ts`.
 *
 * Two halves, like the referral workflow:
 * - `recognitionStoreExtensions(options)`: operations (Patient/$recognizable-results, DetectedIssue/$recognition-accept
 *   and $recognition-override, $recognition-items, $recognition-item-set, $recognition-report) and the event queue
 *   the relay fills, for createFhirServer.
 * - `startRecognition(options)`: the engine's BullMQ workers (order and prescription checks).
 */
import type { Job } from 'bullmq';
import type { ConsentDecisions, Database, EventQueueTarget, FhirOperation, FhirRepository } from '../fhir-server';
import { decisionOperations } from './decisions';
import { RECOGNITION_EVENT_CONSUMERS, RecognitionEngine, type AdvisoryNotifier } from './engine';
import { RecognitionFinder, type CodeTranslation } from './finder';
import { itemOperations, itemTable } from './items';
import { lookupOperation } from './lookup';
import { GrantRegistry } from './qualification';
import { reportOperation } from './report';

export { recognitionMigrations } from './migrations';
export { recognitionWindows, type RecognitionItem } from './items';
export { residentPatients } from './patients';
export { installRecognitionContent, recognitionCodeSystems, exceptionReason } from './content';
export { recognitionFigures, recognitionIndicator, RECOGNITION_MEASURE } from './report';
export { Hl7AdvisoryNotice } from './hl7-notice';
export { RECOGNITION_EVENT_QUEUE, RECOGNITION_CHECK_QUEUE, RECOGNITION_EVENT_CONSUMERS, RecognitionEngine, type AdvisoryNotifier } from './engine';
export { RecognitionFinder, type CodeTranslation, type Recognisable } from './finder';
export { MONITORED_CONDITION_EXTENSION } from './decisions';
export * as recognitionCodes from './fhir';

export interface RecognitionOptions {
  db: Database;
  /**
   * A repository over the whole store (not bound to a caller): results of every hospital are looked at, and the
   * patients' consents are applied per record by the module.
   */
  repository: FhirRepository;
  /** Local codes ↔ LOINC through the ConceptMaps (the terminology service). */
  terminology?: CodeTranslation;
  consent?: ConsentDecisions;
  /** `Organization/…` of the health bureau(s) whose recognition grants count (RECOGNITION_AUTHORITIES). */
  authorities: readonly string[];
  now?: () => Date;
  /** The time zone of `$recognition-report`'s months (HUIMIN_TIME_ZONE; unset: Asia/Shanghai). */
  timeZone?: string;
}

export interface RecognitionStoreExtensions {
  operations: FhirOperation[];
  eventQueues: readonly EventQueueTarget[];
  finder: RecognitionFinder;
}

function finderOf(options: RecognitionOptions): RecognitionFinder {
  return new RecognitionFinder(options.repository, itemTable(options.db), new GrantRegistry(options.repository, options.authorities), options.terminology, options.consent);
}

/** What the store must know before it starts: pass operations and eventQueues to createFhirServer. */
export function recognitionStoreExtensions(options: RecognitionOptions): RecognitionStoreExtensions {
  const finder = finderOf(options);
  return {
    operations: [lookupOperation(finder, options.db, options.now), ...decisionOperations(finder), ...itemOperations(options.db), reportOperation(options.db, options.timeZone)],
    eventQueues: RECOGNITION_EVENT_CONSUMERS,
    finder,
  };
}

export interface RecognitionWorkerOptions {
  /** The store's repository (createFhirServer's), so that advisories reach the relay at once. */
  repository: FhirRepository;
  db: Database;
  finder: RecognitionFinder;
  queues: { redisUrl: string; prefix: string };
  notifier?: AdvisoryNotifier;
  now?: () => Date;
  onError?: (err: Error, job?: Job) => void;
  onChecked?: ConstructorParameters<typeof RecognitionEngine>[0]['onChecked'];
}

/** Starts the engine's workers in this process (every platform process may: BullMQ shares the jobs). */
export function startRecognition(options: RecognitionWorkerOptions): RecognitionEngine {
  return new RecognitionEngine(options);
}
