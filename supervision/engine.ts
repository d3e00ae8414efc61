/**
 * The supervision engine: BullMQ workers that keep the facts and apply the rules.
 *
 *   store write ──relay──► supervision-events ──► facts (facts.ts) ──► rules of the kinds the change concerns
 *                                                                      (rules/kinds.ts, scope: the changed ids) ──► findings
 *   supervision-jobs: tick (every SUPERVISION_TICK: overdue referrals, stays still going on, silent feeds, audit review,
 *                           overdue review steps, last month's reports) · reevaluate (a period, after a rule changed)
 *
 * Events are handled in batches (event-batch.ts; BullMQ retries every job of a batch that failed); facts are
 * idempotent and findings unique per rule and key, so a repeated event or an overlapping batch raises nothing twice. The lag from a write to the end of its evaluation is
 * measured per event (`lag()`, and `onEvaluated` for the benchmark).
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import type { Database, FhirRepository, ResourceChangeJob } from '../fhir-server';
import { AuditReview } from './audit-review';
import type { SupervisionConfig } from './config';
import { EventBatcher } from './event-batch';
import { FactRecorder, type BatchChanges, type IngredientTranslation } from './facts';
import { FindingWriter, type RaisedFinding } from './findings';
import { antimicrobialFigures, type Period } from './indicators';
import type { MeasureCatalogue } from './measures';
import { ReviewService } from './review';
import type { Rule, RuleKind } from './rules/catalogue';
import { AUDIT_KINDS, EVALUATORS, kindsTriggeredBy, PERIOD_KINDS, TICK_KINDS, type Candidate, type Scope, type ValidityWindowSource } from './rules/kinds';
import { inEffect, type RuleStore } from './rules/store';
import { localMonth } from '../referral-workflow';

export const SUPERVISION_EVENT_QUEUE = 'supervision-events';
export const SUPERVISION_JOB_QUEUE = 'supervision-jobs';

export interface QueueSettings {
  redisUrl: string;
  prefix: string;
}

interface ReevaluateJob {
  from: string;
  to: string;
  rules?: string[];
}

/** Lag samples kept for percentiles (a ring of the last 50 000). */
class LagRecorder {
  private readonly samples: number[] = [];
  private next = 0;
  add(ms: number): void {
    if (this.samples.length < 50_000) {
      this.samples.push(ms);
    } else {
      this.samples[this.next] = ms;
      this.next = (this.next + 1) % 50_000;
    }
  }
  summary(): { count: number; p50?: number; p99?: number; max?: number } {
    const sorted = [...this.samples].sort((a, b) => a - b);
    const at = (p: number): number | undefined => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] : undefined);
    return { count: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] };
  }
  reset(): void {
    this.samples.length = 0;
    this.next = 0;
  }
}

export interface EngineOptions {
  db: Database;
  repository: FhirRepository;
  config: SupervisionConfig;
  rules: RuleStore;
  windows: ValidityWindowSource;
  measures: MeasureCatalogue;
  now: () => number;
  /** Local drug codes → ATC ingredients (the terminology module's $translate). */
  terminology?: IngredientTranslation;
  onError?: (err: Error, job?: Job) => void;
  onFinding?: (finding: RaisedFinding) => void;
  onEvaluated?: (event: ResourceChangeJob, lagMs: number) => void;
}

export class SupervisionEngine {
  readonly facts: FactRecorder;
  readonly findings: FindingWriter;
  readonly review: ReviewService;
  readonly audit: AuditReview;
  private readonly lagRecorder = new LagRecorder();
  private readonly connections: Redis[] = [];
  private readonly workers: Worker[] = [];
  private jobs: Queue | undefined;
  /** The last batch re-evaluation this process ran: its period, duration and findings (the benchmark reads it). */
  lastReevaluation: { period: Period; rules?: string[]; ms: number; findings: number; at: string } | undefined;
  private tickTimer: NodeJS.Timeout | undefined;
  private readonly events: EventBatcher<ResourceChangeJob>;

  constructor(private readonly options: EngineOptions) {
    this.facts = new FactRecorder(options.db, options.repository, [options.config.bureau], options.config.timeZone, options.terminology);
    this.events = new EventBatcher((events) => this.onEvents(events), 20, options.config.eventBatch);
    this.findings = new FindingWriter(options.repository, options.config, options.now);
    this.review = new ReviewService(options.repository, options.config, options.now);
    this.audit = new AuditReview(options.db);
  }

  /** Starts the workers (events, jobs) and the tick timer in this process. */
  start(queues: QueueSettings, concurrency = { events: this.options.config.eventBatch, jobs: 2 }): void {
    const connection = (): Redis => {
      const redis = new Redis(queues.redisUrl, { maxRetriesPerRequest: null });
      redis.on('error', () => undefined);
      this.connections.push(redis);
      return redis;
    };
    const onError = this.options.onError ?? (() => undefined);
    this.jobs = new Queue(SUPERVISION_JOB_QUEUE, {
      connection: connection(),
      prefix: queues.prefix,
      defaultJobOptions: { attempts: 5, backoff: { type: 'exponential', delay: 1000 }, removeOnComplete: { age: 24 * 3600, count: 1000 }, removeOnFail: { age: 7 * 24 * 3600 } },
    });
    this.jobs.on('error', () => undefined);
    for (const [name, processor, n] of [
      [SUPERVISION_EVENT_QUEUE, (job: Job) => this.events.add(job.data as ResourceChangeJob), concurrency.events],
      [SUPERVISION_JOB_QUEUE, (job: Job) => this.onJob(job), concurrency.jobs],
    ] as const) {
      // An event job waits in its batch (event-batch.ts) and then for the batch, which on a busy machine can take longer
      // than BullMQ's default lock of 30 s: a lost lock would hand the job to another worker while this one still
      // holds it. A process that dies leaves its jobs to be taken over after the lock (2 minutes).
      const lock = name === SUPERVISION_EVENT_QUEUE ? { lockDuration: 120_000, stalledInterval: 60_000 } : {};
      const worker = new Worker(name, processor, { connection: connection(), prefix: queues.prefix, concurrency: n, ...lock });
      worker.on('error', (err) => onError(err));
      worker.on('failed', (job, err) => onError(err, job));
      this.workers.push(worker);
    }
    // Every process asks for a tick per interval; the job id (one per interval) makes it run once.
    const interval = this.options.config.tickMs;
    this.tickTimer = setInterval(() => {
      void this.jobs?.add('tick', {}, { jobId: `tick-${Math.floor(Date.now() / interval)}` }).catch((err: Error) => onError(err));
    }, interval);
    this.tickTimer.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.tickTimer);
    await Promise.all(this.workers.map((w) => w.close()));
    await this.jobs?.close();
    for (const redis of this.connections) {
      redis.disconnect();
    }
  }

  lag(): ReturnType<LagRecorder['summary']> {
    return this.lagRecorder.summary();
  }

  /** Restarts the lag samples here and, through sv_cursor, in every other process at its next publication. */
  async resetLag(): Promise<void> {
    this.lagRecorder.reset();
    const epoch = Date.now();
    this.lagResetSeen = epoch;
    await this.options.db.query(
      `INSERT INTO sv_cursor (name, position) VALUES ('lag-reset', $1) ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, updated_at = now()`,
      [epoch],
    );
    await this.options.db.query('DELETE FROM sv_worker WHERE worker <> $1', [this.workerName]);
  }

  /** Queues the batch re-evaluation of a period (after a rule was added or changed); returns the job id. */
  async queueReevaluation(period: Period, rules?: string[]): Promise<string> {
    if (!this.jobs) {
      // No workers in this process (SUPERVISION_WORKERS=false): run it here.
      await this.reevaluate(period, rules);
      return 'done';
    }
    const job = await this.jobs.add('reevaluate', { from: period.start, to: period.end, rules } satisfies ReevaluateJob);
    return job.id as string;
  }

  private async onJob(job: Job): Promise<void> {
    switch (job.name) {
      case 'tick':
        await this.tick();
        break;
      case 'reevaluate': {
        const data = job.data as ReevaluateJob;
        await this.reevaluate({ start: data.from, end: data.to }, data.rules);
        break;
      }
      default:
        throw new Error(`unknown supervision job ${job.name}`);
    }
  }

  /**
   * A batch of change events: their facts (one read per type, one write per table), then each rule they concern,
   * once over every id the batch changed.
   */
  async onEvents(events: ResourceChangeJob[]): Promise<void> {
    const changes = await this.facts.recordBatch(events);
    await this.evaluateChanges(changes);
    const done = Date.now();
    for (const event of events) {
      const lagMs = done - Date.parse(event.occurredAt);
      this.lagRecorder.add(lagMs);
      this.options.onEvaluated?.(event, lagMs);
    }
    if (done - this.lagPublishedAt >= 1000) {
      this.lagPublishedAt = done;
      await this.publishLag().catch((err: Error) => this.options.onError?.(err));
    }
  }

  /** This process's name in `sv_worker`. */
  readonly workerName = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  private lagPublishedAt = 0;
  private lagResetSeen = 0;

  /**
   * Publishes this process's lag for `$supervision-status` (sv_worker), after taking in a reset asked of every
   * process (`sv_cursor` 'lag-reset', set by `resetLag(true)` in whichever process answered).
   */
  async publishLag(): Promise<void> {
    const [reset] = await this.options.db.query<{ position: string | number }>(`SELECT position FROM sv_cursor WHERE name = 'lag-reset'`);
    const epoch = Number(reset?.position ?? 0);
    if (epoch > this.lagResetSeen) {
      if (this.lagResetSeen !== 0 || epoch > this.startedAt) this.lagRecorder.reset();
      this.lagResetSeen = epoch;
    }
    await this.options.db.query(
      `INSERT INTO sv_worker (worker, lag, updated_at) VALUES ($1, $2, now())
       ON CONFLICT (worker) DO UPDATE SET lag = EXCLUDED.lag, updated_at = EXCLUDED.updated_at`,
      [this.workerName, JSON.stringify(this.lagRecorder.summary())],
    );
  }

  private readonly startedAt = Date.now();

  /** The lag of every worker process that published in the last two minutes (this one's as of now). */
  async workersLag(): Promise<Array<{ worker: string; updatedAt: string; lag: ReturnType<LagRecorder['summary']> }>> {
    const rows = await this.options.db.query<{ worker: string; lag: ReturnType<LagRecorder['summary']>; updated_at: Date }>(
      `SELECT worker, lag, updated_at FROM sv_worker WHERE updated_at > now() - interval '2 minutes' AND worker <> $1 ORDER BY worker`,
      [this.workerName],
    );
    return [
      { worker: this.workerName, updatedAt: new Date().toISOString(), lag: this.lagRecorder.summary() },
      ...rows.map((r) => ({ worker: r.worker, updatedAt: new Date(r.updated_at).toISOString(), lag: r.lag })),
    ];
  }

  /** The rules triggered by the changed (or retracted) facts, each evaluated once over all of its trigger types' ids. */
  private async evaluateChanges(changes: BatchChanges): Promise<void> {
    const types = new Set([...changes.recorded.keys(), ...changes.retracted.keys()]);
    const kinds = new Set([...types].flatMap((t) => kindsTriggeredBy(t)));
    if (kinds.size === 0) return;
    const now = new Date(this.options.now()).toISOString();
    let failure: Error | undefined;
    for (const rule of await this.options.rules.active([...kinds])) {
      const refs: string[] = [];
      for (const type of EVALUATORS[rule.kind].triggers) {
        for (const id of [...(changes.recorded.get(type) ?? []), ...(changes.retracted.get(type) ?? [])]) refs.push(`${type}/${id}`);
      }
      if (refs.length === 0) continue;
      // One rule failing does not keep the others from running; the batch is retried (idempotently) after.
      try {
        await this.apply([rule], { ids: [...new Set(refs.map((r) => r.slice(r.indexOf('/') + 1)))], now }, refs);
      } catch (err) {
        failure ??= err as Error;
      }
    }
    if (failure) throw failure;
  }

  /** Applies rules in a scope and raises their findings; returns the findings raised. */
  async apply(rules: Rule[], scope: Scope, changedRefs?: string[]): Promise<RaisedFinding[]> {
    const raised: RaisedFinding[] = [];
    let failure: Error | undefined;
    for (const rule of rules) {
      let found: Candidate[];
      if (rule.kind === 'antimicrobial-indicators') {
        found = scope.from && scope.to ? await this.antimicrobialCandidates(rule, { start: scope.from, end: scope.to }) : [];
      } else {
        found = await EVALUATORS[rule.kind].evaluate({ q: this.options.db, windows: this.options.windows }, rule, scope);
      }
      if (changedRefs) {
        // Open findings implicating the changed records: a note when the rule no longer holds for them (or again does).
        await this.findings.reconcile(rule, new Set(found.map((c) => c.key)), changedRefs);
      }
      // Suspicions already raised are left out in one query; the rest are written a hundred per store transaction.
      // A transaction that fails does not keep the others from being written; the first failure is thrown at the
      // end, so BullMQ retries the job (raising is idempotent).
      const fresh = found.filter((c) => inEffect(rule, c.occurredAt));
      const known = fresh.length
        ? new Set((await this.options.db.query<{ key: string }>('SELECT key FROM sv_finding WHERE rule_id = $1 AND key = ANY($2::text[])', [rule.id, fresh.map((c) => c.key)])).map((r) => r.key))
        : new Set<string>();
      const todo = fresh.filter((c) => !known.has(c.key));
      for (let i = 0; i < todo.length; i += RAISE_CHUNK) {
        try {
          for (const finding of await this.findings.raiseMany(rule, todo.slice(i, i + RAISE_CHUNK))) {
            raised.push(finding);
            this.options.onFinding?.(finding);
          }
        } catch (err) {
          failure ??= err as Error;
        }
      }
    }
    if (failure) {
      throw failure;
    }
    return raised;
  }

  /** The institutions whose antimicrobial indicators over the period exceed the rule's thresholds. */
  private async antimicrobialCandidates(rule: Rule, period: Period): Promise<Candidate[]> {
    const figures = await antimicrobialFigures(this.options.db, period, { kind: 'city' }, rule.params);
    const found: Candidate[] = [];
    const limits: Array<[string, string, (f: (typeof figures)[number]) => number | undefined, number, string]> = [
      ['outpatient-rate', 'outpatient antimicrobial prescription rate', (f) => (f.outpatientPrescriptions ? f.outpatientWithAntimicrobial / f.outpatientPrescriptions : undefined), Number(rule.params.outpatientRateMax), ''],
      ['inpatient-rate', 'inpatient antimicrobial use rate', (f) => (f.discharged ? f.dischargedWithAntimicrobial / f.discharged : undefined), Number(rule.params.inpatientRateMax), ''],
      ['ddd-intensity', 'antimicrobial use intensity', (f) => (f.bedDays ? (f.ddds * 100) / f.bedDays : undefined), Number(rule.params.dddPer100BedDaysMax), 'DDDs per 100 bed-days'],
    ];
    for (const f of figures) {
      if (!f.institution) continue;
      for (const [code, label, value, max, unit] of limits) {
        const v = value(f);
        if (v !== undefined && v > max) {
          found.push({
            key: `${f.institution}|${code}|${period.start}|${period.end}`,
            occurredAt: period.start,
            institution: f.institution,
            implicated: [f.institution],
            detail: `${label} ${Math.round(v * 10000) / 10000}${unit ? ` ${unit}` : ''} from ${period.start.slice(0, 10)} to ${period.end.slice(0, 10)}; the bureau's threshold is ${max}`,
            value: v,
            threshold: max,
            unit: unit || undefined,
          });
        }
      }
    }
    return found;
  }

  /** The periodic checks. Returns the findings raised. */
  async tick(): Promise<RaisedFinding[]> {
    const now = new Date(this.options.now()).toISOString();
    const raised = await this.apply(await this.options.rules.active(TICK_KINDS), { open: true, now });
    const audit = await this.audit.ingest();
    if (audit.days.length > 0 || audit.breakGlass.length > 0) {
      const auditRules = await this.options.rules.active(AUDIT_KINDS);
      for (const rule of auditRules) {
        raised.push(...(await this.apply([rule], { now, days: audit.days, ids: rule.kind === 'audit-break-glass' ? audit.breakGlass : undefined })));
      }
    }
    await this.review.expireOverdue();
    await this.monthly();
    return raised;
  }

  /** Every rule that applies to periods (or those named) over the facts of a period. */
  async reevaluate(period: Period, ruleIds?: string[]): Promise<RaisedFinding[]> {
    const started = performance.now();
    const rules = (await this.options.rules.active(PERIOD_KINDS as RuleKind[])).filter((r) => !ruleIds || ruleIds.includes(r.id));
    const raised = await this.apply(rules, { from: period.start, to: period.end, now: new Date(this.options.now()).toISOString() });
    this.lastReevaluation = { period, rules: ruleIds, ms: Math.round(performance.now() - started), findings: raised.length, at: new Date().toISOString() };
    return raised;
  }

  /** Jobs waiting in supervision's queues (events and batch jobs), for the status operation. */
  async backlog(): Promise<{ events: number; jobs: number } | undefined> {
    if (!this.jobs) {
      return undefined;
    }
    const events = new Queue(SUPERVISION_EVENT_QUEUE, { connection: this.jobs.opts.connection, prefix: this.jobs.opts.prefix });
    try {
      const [e, j] = await Promise.all([events.getJobCounts('waiting', 'active', 'delayed'), this.jobs.getJobCounts('waiting', 'active', 'delayed')]);
      const sum = (c: Record<string, number>): number => Object.values(c).reduce((a, b) => a + b, 0);
      return { events: sum(e), jobs: sum(j) };
    } finally {
      await events.close();
    }
  }

  /**
   * Once a month has ended: its MeasureReports per institution stored, and the period rules (antimicrobial
   * indicators) applied to it. Months are local months (`timeZone`). Each tick looks at last month and, when data
   * reach back that far, the two before it: a month is run when no process has claimed it, or when its claim is
   * incomplete and stale (the process that claimed it died: no progress for `MONTHLY_LEASE_MS`). A run that fails in
   * this process gives its claim back, so that the tick job's retry runs it again. Storing reports and raising
   * findings are idempotent, so a month run twice leaves the same reports. Returns the months run (`YYYY-MM`).
   */
  async monthly(): Promise<string[]> {
    const now = this.options.now();
    const tz = this.options.config.timeZone;
    const [first] = await this.options.db.query<{ day: string | null }>(`SELECT to_char(min(day), 'YYYY-MM-DD') AS day FROM sv_feed`);
    // Last month always (institutions are expected even without data); the two before only if data reach into them.
    const months = [3, 2, 1]
      .filter((back) => back === 1 || (!!first?.day && first.day < `${localMonth(now, tz, 1 - back).month}-01`))
      .map((back) => localMonth(now, tz, -back));
    const ran: string[] = [];
    for (const month of months) {
      if (await this.runMonth(month, now)) ran.push(month.month);
    }
    return ran;
  }

  private async runMonth(month: { start: string; end: string; month: string }, now: number): Promise<boolean> {
    const db = this.options.db;
    const name = `monthly:${month.month}`;
    const claimed = await db.query(
      `INSERT INTO sv_cursor (name, position) VALUES ($1, 0)
       ON CONFLICT (name) DO UPDATE SET updated_at = now()
         WHERE sv_cursor.position = 0 AND sv_cursor.updated_at < now() - $2::numeric * interval '1 millisecond'
       RETURNING name`,
      [name, MONTHLY_LEASE_MS],
    );
    if (claimed.length === 0) {
      return false;
    }
    const period = { start: month.start, end: month.end };
    try {
      await this.apply(await this.options.rules.active(['antimicrobial-indicators']), { from: period.start, to: period.end, now: new Date(now).toISOString() });
      const institutions = await db.query<{ institution: string }>(
        `SELECT institution FROM sv_feed WHERE day >= ($1::timestamptz AT TIME ZONE $3)::date AND day < ($2::timestamptz AT TIME ZONE $3)::date GROUP BY institution
         UNION SELECT id FROM sv_organization WHERE provider AND active AND part_of IS NULL`,
        [period.start, period.end, this.options.config.timeZone],
      );
      for (const { institution } of institutions) {
        for (const provider of this.options.measures.providers) {
          await this.options.measures.store(this.options.repository, db, provider, period, { kind: 'institution', reference: institution }, this.options.config.bureau, now);
        }
        // Progress keeps the claim alive, so a long run is not taken for a dead one.
        await db.query('UPDATE sv_cursor SET updated_at = now() WHERE name = $1', [name]);
      }
      await db.query('UPDATE sv_cursor SET position = 1, updated_at = now() WHERE name = $1', [name]);
    } catch (err) {
      await db.query('DELETE FROM sv_cursor WHERE name = $1 AND position = 0', [name]).catch(() => undefined);
      throw err;
    }
    return true;
  }
}

/** Findings written in one store transaction. */
const RAISE_CHUNK = 100;

/** How long a monthly run may go without progress before another process takes it for dead and runs the month. */
const MONTHLY_LEASE_MS = 10 * 60_000;
