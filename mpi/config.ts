/** The index's settings from the environment (MPI_*); defaults work on a developer machine. */
import { DEFAULT_THRESHOLDS, type MatchThresholds } from './scoring';

export interface MpiConfig {
  thresholds: MatchThresholds;
  /** Most candidates scored per record. */
  maxCandidates: number;
  /** Whether this process runs the linking worker. */
  workers: boolean;
}

function number(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value)) throw new Error(`Configuration error: ${name} must be a number, got "${raw}"`);
  return value;
}

export function loadMpiConfig(env: NodeJS.ProcessEnv = process.env): MpiConfig {
  const autoLink = number(env, 'MPI_AUTO_LINK_WEIGHT', DEFAULT_THRESHOLDS.autoLink);
  const review = number(env, 'MPI_REVIEW_WEIGHT', DEFAULT_THRESHOLDS.review);
  if (review > autoLink) {
    throw new Error(`Configuration error: MPI_REVIEW_WEIGHT (${review}) must not exceed MPI_AUTO_LINK_WEIGHT (${autoLink})`);
  }
  const maxCandidates = number(env, 'MPI_MAX_CANDIDATES', 500);
  if (!Number.isInteger(maxCandidates) || maxCandidates < 1) throw new Error(`Configuration error: MPI_MAX_CANDIDATES must be a positive integer`);
  const workersRaw = env.MPI_WORKERS;
  const workers = workersRaw === undefined || workersRaw === '' ? true : /^(1|true|yes|on)$/i.test(workersRaw) ? true : /^(0|false|no|off)$/i.test(workersRaw) ? false : (() => { throw new Error(`Configuration error: MPI_WORKERS must be true or false, got "${workersRaw}"`); })();
  return { thresholds: { autoLink, review }, maxCandidates, workers };
}
