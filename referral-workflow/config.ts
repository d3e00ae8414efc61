/**
 * The workflow's configuration, read from the environment by the platform's `config.ts`. Durations are ISO 8601
 * (`PT30M`, `P2D`), as FHIR writes them.
 */
import { checkTimeZone, DEFAULT_TIME_ZONE } from './local-time';

export interface WorkflowConfig {
  /** Response deadline of a routed referral by priority (`routine`, `urgent`, `asap`, `stat`) and for the green channel (`green`), in ms. */
  deadlines: Record<string, number>;
  /** Share (0–1) of each schedule's slots reserved for referrals when they are published. */
  referralSlotShare: number;
  /** How long before its start an unused reserved slot is released to the public, in ms. */
  reservedSlotReleaseMs: number;
  /** Attempts to deliver one subscription notification before the Subscription is set to `error`. */
  subscriptionAttempts: number;
  /** First retry delay of a failed delivery (doubles at each attempt), in ms. */
  subscriptionBackoffMs: number;
  /** Longest a rest-hook endpoint may take to answer, in ms. */
  subscriptionTimeoutMs: number;
  /** How long after a change its notification waits, so that notifications matched out of order go out in order, in ms. */
  subscriptionReorderMs: number;
  /** The time zone of the report's months (HUIMIN_TIME_ZONE; unset: Asia/Shanghai). */
  timeZone?: string;
}

export const DEFAULT_DEADLINES = 'green=PT15M,stat=PT30M,asap=PT2H,urgent=PT12H,routine=P2D';

const DURATION = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$/;

/** An ISO 8601 duration of days, hours, minutes and seconds, in ms (`PT30M` → 1 800 000). */
export function parseDuration(text: string): number {
  const m = DURATION.exec(text.trim());
  if (!m || text.trim() === 'P' || text.trim().endsWith('T')) {
    throw new Error(`"${text}" is not an ISO 8601 duration of days, hours, minutes and seconds (e.g. PT30M, P2D)`);
  }
  const [, d, h, min, s] = m;
  return ((Number(d ?? 0) * 24 + Number(h ?? 0)) * 60 + Number(min ?? 0)) * 60_000 + Number(s ?? 0) * 1000;
}

/** `stat=PT30M,asap=PT2H` → { stat: 1800000, asap: 7200000 }, on top of the defaults. */
export function parseDeadlines(text: string): Record<string, number> {
  const result: Record<string, number> = {};
  for (const part of `${DEFAULT_DEADLINES},${text}`.split(',').filter((p) => p.trim() !== '')) {
    const [name, value] = part.split('=');
    if (!name || !value) {
      throw new Error(`REFERRAL_DEADLINES entries are priority=duration, got "${part}"`);
    }
    result[name.trim()] = parseDuration(value);
  }
  return result;
}

function number(env: NodeJS.ProcessEnv, name: string, fallback: number, check: (n: number) => boolean, what: string): number {
  const raw = env[name];
  if (raw === undefined || raw === '') {
    return fallback;
  }
  const value = Number(raw);
  if (!Number.isFinite(value) || !check(value)) {
    throw new Error(`Configuration error: ${name} must be ${what}, got "${raw}"`);
  }
  return value;
}

function duration(env: NodeJS.ProcessEnv, name: string, fallback: string): number {
  try {
    return parseDuration(env[name] || fallback);
  } catch (err) {
    throw new Error(`Configuration error: ${name}: ${(err as Error).message}`);
  }
}

export function loadWorkflowConfig(env: NodeJS.ProcessEnv = process.env): WorkflowConfig {
  let deadlines: Record<string, number>;
  try {
    deadlines = parseDeadlines(env.REFERRAL_DEADLINES ?? '');
  } catch (err) {
    throw new Error(`Configuration error: REFERRAL_DEADLINES: ${(err as Error).message}`);
  }
  return {
    deadlines,
    referralSlotShare: number(env, 'REFERRAL_SLOT_SHARE', 0.3, (n) => n >= 0 && n <= 1, 'a number from 0 to 1'),
    reservedSlotReleaseMs: duration(env, 'REFERRAL_SLOT_RELEASE_BEFORE', 'P1D'),
    subscriptionAttempts: number(env, 'SUBSCRIPTION_DELIVERY_ATTEMPTS', 6, (n) => Number.isInteger(n) && n >= 1, 'a positive integer'),
    subscriptionBackoffMs: number(env, 'SUBSCRIPTION_DELIVERY_BACKOFF_MS', 1000, (n) => Number.isInteger(n) && n >= 0, 'a non-negative integer'),
    subscriptionTimeoutMs: number(env, 'SUBSCRIPTION_DELIVERY_TIMEOUT_MS', 10_000, (n) => Number.isInteger(n) && n > 0, 'a positive integer'),
    subscriptionReorderMs: number(env, 'SUBSCRIPTION_REORDER_WINDOW_MS', 100, (n) => Number.isInteger(n) && n >= 0, 'a non-negative integer'),
    timeZone: checkTimeZone(env.HUIMIN_TIME_ZONE || DEFAULT_TIME_ZONE),
  };
}
