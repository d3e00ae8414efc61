/**
 * Supervision's public face: rules over clinical activity, the review of findings, indicators and audit review
 * (issue 10). It talks to the store only through `fhir-server/index.ts` and the change events; its read model,
 * rules and findings index live in its own tables (migrations 5000–5999).
 *
 * Wiring (main.ts), in three steps because the store needs the operations before it exists:
 *   const supervision = createSupervision(config);                 // operations + event queue for createFhirServer
 *   const server = createFhirServer({ operations: [...supervision.operations], eventQueues: [...supervision.eventQueues] });
 *   await supervision.attach({ db, repository: server.repository }); // rules, Measures, the bureau Organization
 *   supervision.startWorkers({ redisUrl, prefix });                  // in every process that runs workers
 */
import type { Organization } from '@medplum/fhirtypes';
import type { Job } from 'bullmq';
import type { Database, EventQueueTarget, FhirOperation, FhirRepository, ResourceChangeJob } from '../fhir-server';
import type { SupervisionConfig } from './config';
import { SUPERVISION_EVENT_QUEUE, SupervisionEngine, type QueueSettings } from './engine';
import type { IngredientTranslation } from './facts';
import type { RaisedFinding } from './findings';
import { antimicrobialIndicator, feedIndicator, findingsIndicator, referralIndicator, type IndicatorProvider } from './indicators';
import { MeasureCatalogue } from './measures';
import { supervisionOperations } from './operations';
import type { ValidityWindowSource } from './rules/kinds';
import { RuleStore } from './rules/store';
import { SupervisionRuntime } from './runtime';

export { loadSupervisionConfig, parseReviewDeadlines, REVIEW_STEPS, type ReviewStep, type SupervisionConfig } from './config';
export { supervisionMigrations } from './migrations';
export { SHIPPED_RULES, RULE_KINDS, type Rule, type RuleKind, type RuleCategory, type RuleDefinition } from './rules/catalogue';
export { RuleStore, type RuleChange } from './rules/store';
export { SupervisionEngine, SUPERVISION_EVENT_QUEUE, SUPERVISION_JOB_QUEUE, type QueueSettings } from './engine';
export { DECISIONS, type ReviewOutcome } from './review';
export { MEASURE_BASE, type IndicatorProvider, type Period, type Subject } from './indicators';
export type { ValidityWindowSource } from './rules/kinds';
export type { RaisedFinding } from './findings';
export type { IngredientTranslation } from './facts';
export * as supervisionCodes from './fhir';

/** The event queue the store's relay fills for supervision: every resource type (each write counts for the data feed). */
export const SUPERVISION_EVENT_CONSUMER: EventQueueTarget = {
  name: SUPERVISION_EVENT_QUEUE,
  jobOptions: {
    attempts: 8,
    backoff: { type: 'exponential', delay: 500 },
    removeOnComplete: { age: 3600, count: 10_000 },
    removeOnFail: { age: 7 * 24 * 3600, count: 10_000 },
  },
};

/**
 * The default recognition windows: the TEST-DUPLICATE rule's own `windows` parameter. The platform passes the
 * recognition module's table instead once it exists (`recognitionWindows(repository)` has this shape); codes it does
 * not know still fall back to the rule's parameters.
 */
export function ruleParameterWindows(rules: RuleStore, ruleId = 'TEST-DUPLICATE'): ValidityWindowSource {
  return {
    async windowDays(system, code) {
      const rule = (await rules.latest()).find((r) => r.id === ruleId);
      const windows = (rule?.params.windows ?? []) as Array<{ system?: string; code?: string; days?: number }>;
      return windows.find((w) => w.system === system && w.code === code)?.days;
    },
  };
}

export interface SupervisionOptions {
  /** The recognition windows of tests (default: ruleParameterWindows). */
  windows?: ValidityWindowSource;
  /** More indicators, e.g. the recognition module's recognition rate. */
  indicators?: readonly IndicatorProvider[];
  /** The clock (tests move it). */
  now?: () => number;
  /** ConceptMap `$translate` (the terminology module's TerminologyService): locally coded drugs get their ATC ingredient. */
  terminology?: IngredientTranslation;
}

export interface WorkerCallbacks {
  onError?: (err: Error, job?: Job) => void;
  onFinding?: (finding: RaisedFinding) => void;
  onEvaluated?: (event: ResourceChangeJob, lagMs: number) => void;
}

export class Supervision {
  readonly operations: readonly FhirOperation[];
  readonly eventQueues: readonly EventQueueTarget[] = [SUPERVISION_EVENT_CONSUMER];
  private readonly runtime = new SupervisionRuntime();
  private engineInstance: SupervisionEngine | undefined;
  private rulesInstance: RuleStore | undefined;
  private readonly now: () => number;

  constructor(
    readonly config: SupervisionConfig,
    private readonly options: SupervisionOptions = {},
  ) {
    this.operations = supervisionOperations(this.runtime);
    this.now = options.now ?? Date.now;
  }

  get engine(): SupervisionEngine {
    if (!this.engineInstance) throw new Error('supervision is not attached to a store yet (call attach)');
    return this.engineInstance;
  }

  get rules(): RuleStore {
    if (!this.rulesInstance) throw new Error('supervision is not attached to a store yet (call attach)');
    return this.rulesInstance;
  }

  /**
   * Binds supervision to the store: installs the shipped rules (version 1, once), the Measures and the bureau's
   * Organization, and makes the operations answer. `install: false` in processes that only serve (the primary did it).
   */
  async attach(store: { db: Database; repository: FhirRepository }, callbacks: WorkerCallbacks = {}, install = true): Promise<void> {
    const rules = new RuleStore(store.db, this.now);
    const antimicrobialParams = async () => (await rules.latest()).find((r) => r.kind === 'antimicrobial-indicators')?.params ?? {};
    const measures = new MeasureCatalogue([findingsIndicator, referralIndicator, antimicrobialIndicator(antimicrobialParams), feedIndicator(this.config.timeZone), ...(this.options.indicators ?? [])]);
    const engine = new SupervisionEngine({
      db: store.db,
      repository: store.repository,
      config: this.config,
      rules,
      windows: this.options.windows ?? ruleParameterWindows(rules),
      measures,
      now: this.now,
      terminology: this.options.terminology,
      ...callbacks,
    });
    if (install) {
      await rules.install(this.config.ruleOverrides);
      await measures.install(store.repository);
      await installBureau(store.repository, this.config.bureau);
    }
    this.rulesInstance = rules;
    this.engineInstance = engine;
    this.runtime.set({ db: store.db, repository: store.repository, rules, engine, measures, config: this.config, now: this.now });
  }

  /** Starts the BullMQ workers (events, batch jobs, the tick) in this process. */
  startWorkers(queues: QueueSettings): void {
    this.engine.start(queues);
  }

  async close(): Promise<void> {
    await this.engineInstance?.close();
  }
}

export function createSupervision(config: SupervisionConfig, options: SupervisionOptions = {}): Supervision {
  return new Supervision(config, options);
}

/** The health bureau's Organization, which owns findings and the bureau's review steps; created when missing. */
async function installBureau(repo: FhirRepository, bureau: string): Promise<void> {
  const id = bureau.split('/')[1];
  await repo.write(async (session) => {
    if (!(await session.read('Organization', id))) {
      const org: Organization = {
        resourceType: 'Organization',
        id,
        active: true,
        type: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/organization-type', code: 'govt', display: 'Government' }] }],
        name: 'Health bureau (supervision)',
      };
      await session.update('Organization', id, org);
    }
  });
}
