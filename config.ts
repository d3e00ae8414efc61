/**
 * Platform configuration, read once from the environment. Every setting has a default that works on a
 * developer machine, so `npm start` needs no configuration at all.
 */
import os from 'node:os';
import path from 'node:path';
import { loadWorkflowConfig, type WorkflowConfig } from './referral-workflow/config';

export interface PlatformConfig {
  port: number;
  host: string;
  /** Path prefix of the FHIR REST API. */
  fhirBasePath: string;
  /** Public base URL used in Bundle links and Location headers. */
  publicBaseUrl: string;
  /** PostgreSQL connection string; unset means embedded PGlite in `dataDir`. */
  databaseUrl?: string;
  /** Connections per process to PostgreSQL. */
  databasePoolSize: number;
  /** HTTP worker processes (PostgreSQL only; embedded PGlite always runs in one process). */
  workers: number;
  dataDir: string;
  redisUrl: string;
  /** Key prefix for BullMQ/ioredis so several platforms can share one Redis. */
  redisPrefix: string;
  logLevel: string;
  /** Largest request body accepted, in bytes. */
  maxBodyBytes: number;
  /** Deepest JSON nesting accepted in a request body. */
  maxJsonDepth: number;
  /** Reject writes whose local references point at resources that do not exist. */
  enforceReferentialIntegrity: boolean;
  /** Largest `_count` a search may ask for. */
  maxPageSize: number;
  defaultPageSize: number;
  /** Whether this platform's processes run the workflow's BullMQ workers (referral engine, subscription delivery). */
  workflowWorkers: boolean;
  /** Referral deadlines, reserved slots, subscription delivery (REFERRAL_*, SUBSCRIPTION_*). */
  workflow: WorkflowConfig;
}

function intFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') {
    return fallback;
  }
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) {
    throw new Error(`Configuration error: ${name} must be a non-negative integer, got "${raw}"`);
  }
  return value;
}

function boolFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') {
    return fallback;
  }
  if (/^(1|true|yes|on)$/i.test(raw)) {
    return true;
  }
  if (/^(0|false|no|off)$/i.test(raw)) {
    return false;
  }
  throw new Error(`Configuration error: ${name} must be true or false, got "${raw}"`);
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): PlatformConfig {
  const port = intFromEnv(env, 'PORT', 8080);
  const host = env.HOST || '127.0.0.1';
  const fhirBasePath = (env.FHIR_BASE_PATH || '/fhir').replace(/\/+$/, '');
  return {
    port,
    host,
    fhirBasePath,
    publicBaseUrl: (env.PUBLIC_BASE_URL || `http://${host === '0.0.0.0' ? 'localhost' : host}:${port}`).replace(/\/+$/, ''),
    databaseUrl: env.DATABASE_URL || undefined,
    databasePoolSize: intFromEnv(env, 'DATABASE_POOL_SIZE', 10),
    workers: intFromEnv(env, 'HUIMIN_WORKERS', os.availableParallelism()),
    dataDir: path.resolve(env.DATA_DIR || './data'),
    redisUrl: env.REDIS_URL || 'redis://127.0.0.1:6379',
    redisPrefix: env.REDIS_PREFIX || 'huimin',
    logLevel: env.LOG_LEVEL || 'info',
    maxBodyBytes: intFromEnv(env, 'MAX_BODY_BYTES', 10 * 1024 * 1024),
    maxJsonDepth: intFromEnv(env, 'MAX_JSON_DEPTH', 64),
    enforceReferentialIntegrity: boolFromEnv(env, 'ENFORCE_REFERENTIAL_INTEGRITY', true),
    maxPageSize: intFromEnv(env, 'MAX_PAGE_SIZE', 1000),
    defaultPageSize: intFromEnv(env, 'DEFAULT_PAGE_SIZE', 20),
    workflowWorkers: boolFromEnv(env, 'WORKFLOW_WORKERS', true),
    workflow: loadWorkflowConfig(env),
  };
}
