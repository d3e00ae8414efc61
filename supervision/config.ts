/**
 * Supervision's configuration, read from the environment by the platform's config.ts. Durations are ISO 8601.
 */
import { readFileSync } from 'node:fs';
import { checkTimeZone, DEFAULT_TIME_ZONE, parseDuration } from '../referral-workflow';
import type { RuleParams } from './rules/catalogue';

export const REVIEW_STEPS = ['first-review', 'second-review', 'appeal', 'verification', 'disposition'] as const;
export type ReviewStep = (typeof REVIEW_STEPS)[number];

export interface SupervisionConfig {
  /** The health bureau's Organization (owner of findings and of the bureau's review steps). */
  bureau: string;
  /** Deadline of each review step, ms. */
  reviewDeadlines: Record<ReviewStep, number>;
  /** How often the periodic checks run (overdue referrals, silent feeds, audit review, overdue steps), ms. */
  tickMs: number;
  /** Parameter overrides of the shipped rules, applied when they are first installed. */
  ruleOverrides: Record<string, RuleParams>;
  /** The time zone of days and months (indicators, the monthly run, the data feed's days): HUIMIN_TIME_ZONE. */
  timeZone: string;
  /** The most change events handled together (and the event worker's concurrency): SUPERVISION_EVENT_BATCH. */
  eventBatch: number;
}

export const DEFAULT_REVIEW_DEADLINES = 'first-review=P10D,second-review=P10D,appeal=P15D,verification=P10D,disposition=P10D';

export function parseReviewDeadlines(text: string): Record<ReviewStep, number> {
  const result = {} as Record<ReviewStep, number>;
  for (const part of `${DEFAULT_REVIEW_DEADLINES},${text}`.split(',').filter((p) => p.trim() !== '')) {
    const [name, value] = part.split('=').map((s) => s.trim());
    if (!(REVIEW_STEPS as readonly string[]).includes(name) || !value) {
      throw new Error(`Configuration error: SUPERVISION_REVIEW_DEADLINES entries are step=duration with a step among ${REVIEW_STEPS.join(', ')}, got "${part}"`);
    }
    result[name as ReviewStep] = parseDuration(value);
  }
  return result;
}

export function loadSupervisionConfig(env: NodeJS.ProcessEnv = process.env): SupervisionConfig {
  const bureau = env.SUPERVISION_BUREAU_ORG || 'Organization/health-bureau';
  if (!/^Organization\/[A-Za-z0-9\-.]{1,64}$/.test(bureau)) {
    throw new Error(`Configuration error: SUPERVISION_BUREAU_ORG must be Organization/<id>, got "${bureau}"`);
  }
  let ruleOverrides: Record<string, RuleParams> = {};
  if (env.SUPERVISION_RULES_FILE) {
    try {
      ruleOverrides = JSON.parse(readFileSync(env.SUPERVISION_RULES_FILE, 'utf8')) as Record<string, RuleParams>;
    } catch (err) {
      throw new Error(`Configuration error: SUPERVISION_RULES_FILE ${env.SUPERVISION_RULES_FILE} is not readable JSON (${(err as Error).message})`);
    }
    if (typeof ruleOverrides !== 'object' || ruleOverrides === null || Array.isArray(ruleOverrides)) {
      throw new Error('Configuration error: SUPERVISION_RULES_FILE must hold an object of rule id → parameters');
    }
  }
  return {
    bureau,
    reviewDeadlines: parseReviewDeadlines(env.SUPERVISION_REVIEW_DEADLINES ?? ''),
    tickMs: parseDuration(env.SUPERVISION_TICK || 'PT1M'),
    ruleOverrides,
    timeZone: checkTimeZone(env.HUIMIN_TIME_ZONE || DEFAULT_TIME_ZONE),
    eventBatch: eventBatch(env.SUPERVISION_EVENT_BATCH),
  };
}

function eventBatch(text: string | undefined): number {
  const n = Number(text || 500);
  if (!Number.isInteger(n) || n < 1 || n > 5000) {
    throw new Error(`Configuration error: SUPERVISION_EVENT_BATCH must be an integer from 1 to 5000, got "${text}"`);
  }
  return n;
}
