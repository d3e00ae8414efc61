/**
 * Platform configuration, read once from the environment. Every setting has a default that works on a
 * developer machine, so `npm start` needs no configuration at all.
 */
import os from 'node:os';
import path from 'node:path';
import { loadWorkflowConfig, type WorkflowConfig } from './referral-workflow/config';
import { checkTimeZone, DEFAULT_TIME_ZONE } from './referral-workflow/local-time';
import { loadSupervisionConfig, type SupervisionConfig } from './supervision/config';
import { loadRegistryConfig, type RegistryConfig } from './registry/config';
import { loadMpiConfig, type MpiConfig } from './mpi/config';
import { loadConformanceConfig, type ConformanceConfig } from './conformance/config';

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
  /** Where worker processes journal AuditEvents before answering (default DATA_DIR/audit-journal). */
  auditJournalDir: string;
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
  /** The administrator client to create (or reset) at start; unset: one is generated on first start. */
  adminClient?: { clientId: string; secret: string };
  /** The first administrator user (portal sign-in), created or reset at start; unset: `admin` generated on first start. */
  adminUser?: { username: string; password: string };
  security: {
    /** Lifetime of access tokens, seconds. */
    accessTokenLifetimeS: number;
    /** Browser origins allowed to call the API (CORS). */
    corsOrigins: string[];
    /** Requests per second per client and worker process (0: no limit). */
    rateLimitPerClient: number;
    /** Token requests per second per network address and worker process (0: no limit). */
    rateLimitTokenEndpoint: number;
    /** A user's sign-in session ends after this many seconds unused, and this many after sign-in in any case. */
    sessionIdleS: number;
    sessionMaxS: number;
    /** Whether `Patient/$consent-notice` tells a viewer that consent withholds part of a record (CONSENT_NOTICE). */
    consentNotice: boolean;
  };
  /** HL7 v2 MLLP listener (adapters/). */
  hl7: {
    enabled: boolean;
    port: number;
    host: string;
    /** Largest message accepted; a bigger one is answered AR and its connection closed. */
    maxMessageBytes: number;
    /** An idle MLLP connection (or a frame that never ends) is closed after this long. */
    idleTimeoutMs: number;
    /** MLLP over TLS when cert and key are set; with a CA, client certificates are required. */
    tls?: { certFile: string; keyFile: string; caFile?: string };
    /** More assigning authorities meaning a national identifier: `oid=resident-id,oid=health-card`. */
    nationalIdAliases?: string;
  };
  /** Bulk Data $export (fhir-server/bulk): how long files are kept, file size, per-client limit, job runner. */
  bulkExport: {
    lifetimeS: number;
    resourcesPerFile: number;
    maxActivePerClient: number;
    runJobs: boolean;
    /** Database connections one export writes its parts on at once. */
    parallelism: number;
  };
  /** Whether this platform's processes run the workflow's BullMQ workers (referral engine, subscription delivery). */
  workflowWorkers: boolean;
  /** Referral deadlines, reserved slots, subscription delivery (REFERRAL_*, SUBSCRIPTION_*). */
  workflow: WorkflowConfig;
  /** Whether this platform's processes run supervision's BullMQ workers (rules on change events, periodic checks). */
  supervisionWorkers: boolean;
  /** The bureau, review deadlines, tick, rule parameter overrides (SUPERVISION_*). */
  supervision: SupervisionConfig;
  /** Result recognition: the health bureau(s) whose recognition grants count (RECOGNITION_AUTHORITIES); the time zone of its report's months (HUIMIN_TIME_ZONE). */
  recognition: { authorities: string[]; timeZone: string };
  /** Registries and document sharing (DOCUMENT_MAX_BYTES). */
  registry: RegistryConfig;
  /** Master patient index: match thresholds, candidates, linking worker (MPI_*). */
  mpi: MpiConfig;
  /** The regional implementation guide's canonical base (HUIMIN_CANONICAL_BASE). */
  conformance: ConformanceConfig;
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

function adminClientFromEnv(env: NodeJS.ProcessEnv): PlatformConfig['adminClient'] {
  const clientId = env.HUIMIN_ADMIN_CLIENT_ID;
  const secret = env.HUIMIN_ADMIN_CLIENT_SECRET;
  if (!clientId && !secret) {
    return undefined;
  }
  if (!clientId || !secret) {
    throw new Error('Configuration error: set both HUIMIN_ADMIN_CLIENT_ID and HUIMIN_ADMIN_CLIENT_SECRET, or neither');
  }
  if (secret.length < 16) {
    throw new Error('Configuration error: HUIMIN_ADMIN_CLIENT_SECRET must be at least 16 characters');
  }
  return { clientId, secret };
}

function adminUserFromEnv(env: NodeJS.ProcessEnv): PlatformConfig['adminUser'] {
  const username = env.HUIMIN_ADMIN_USER;
  const password = env.HUIMIN_ADMIN_PASSWORD;
  if (!username && !password) {
    return undefined;
  }
  if (!username || !password) {
    throw new Error('Configuration error: set both HUIMIN_ADMIN_USER and HUIMIN_ADMIN_PASSWORD, or neither');
  }
  if (password.length < 10) {
    throw new Error('Configuration error: HUIMIN_ADMIN_PASSWORD must be at least 10 characters');
  }
  return { username, password };
}

function hl7Tls(env: NodeJS.ProcessEnv): PlatformConfig['hl7']['tls'] {
  const certFile = env.HL7_TLS_CERT;
  const keyFile = env.HL7_TLS_KEY;
  if (!certFile && !keyFile) {
    return undefined;
  }
  if (!certFile || !keyFile) {
    throw new Error('Configuration error: HL7_TLS_CERT and HL7_TLS_KEY must be set together');
  }
  return { certFile, keyFile, caFile: env.HL7_TLS_CA || undefined };
}

/** A comma-separated list of `Organization/<id>` references. */
function organizationList(env: NodeJS.ProcessEnv, name: string): string[] {
  const values = (env[name] ?? '').split(',').map((v) => v.trim()).filter(Boolean);
  const bad = values.find((v) => !/^Organization\/[A-Za-z0-9\-.]{1,64}$/.test(v));
  if (bad) {
    throw new Error(`Configuration error: ${name} is a comma-separated list of Organization/<id>, got "${bad}"`);
  }
  return values;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): PlatformConfig {
  const port = intFromEnv(env, 'PORT', 8080);
  const tokenLifetime = intFromEnv(env, 'ACCESS_TOKEN_LIFETIME_SECONDS', 300);
  if (tokenLifetime < 30 || tokenLifetime > 86_400) {
    throw new Error(`Configuration error: ACCESS_TOKEN_LIFETIME_SECONDS must be between 30 and 86400, got ${tokenLifetime}`);
  }
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
    auditJournalDir: path.resolve(env.AUDIT_JOURNAL_DIR || path.join(env.DATA_DIR || './data', 'audit-journal')),
    redisUrl: env.REDIS_URL || 'redis://127.0.0.1:6379',
    redisPrefix: env.REDIS_PREFIX || 'huimin',
    logLevel: env.LOG_LEVEL || 'info',
    maxBodyBytes: intFromEnv(env, 'MAX_BODY_BYTES', 10 * 1024 * 1024),
    maxJsonDepth: intFromEnv(env, 'MAX_JSON_DEPTH', 64),
    enforceReferentialIntegrity: boolFromEnv(env, 'ENFORCE_REFERENTIAL_INTEGRITY', true),
    maxPageSize: intFromEnv(env, 'MAX_PAGE_SIZE', 1000),
    defaultPageSize: intFromEnv(env, 'DEFAULT_PAGE_SIZE', 20),
    adminClient: adminClientFromEnv(env),
    adminUser: adminUserFromEnv(env),
    security: {
      accessTokenLifetimeS: tokenLifetime,
      corsOrigins: (env.CORS_ALLOWED_ORIGINS ?? '').split(',').map((o) => o.trim()).filter(Boolean),
      rateLimitPerClient: intFromEnv(env, 'RATE_LIMIT_PER_CLIENT', 500),
      rateLimitTokenEndpoint: intFromEnv(env, 'RATE_LIMIT_TOKEN_ENDPOINT', 5),
      sessionIdleS: intFromEnv(env, 'USER_SESSION_IDLE_SECONDS', 1800),
      sessionMaxS: intFromEnv(env, 'USER_SESSION_MAX_SECONDS', 12 * 3600),
      consentNotice: boolFromEnv(env, 'CONSENT_NOTICE', true),
    },
    hl7: {
      enabled: boolFromEnv(env, 'HL7_ENABLED', true),
      port: intFromEnv(env, 'HL7_PORT', 2575),
      host: env.HL7_HOST || host,
      maxMessageBytes: intFromEnv(env, 'HL7_MAX_MESSAGE_BYTES', 5 * 1024 * 1024),
      idleTimeoutMs: intFromEnv(env, 'HL7_IDLE_TIMEOUT_MS', 300_000),
      tls: hl7Tls(env),
      nationalIdAliases: env.HL7_NATIONAL_ID_ALIASES || undefined,
    },
    bulkExport: bulkExportFromEnv(env),
    workflowWorkers: boolFromEnv(env, 'WORKFLOW_WORKERS', true),
    workflow: loadWorkflowConfig(env),
    supervisionWorkers: boolFromEnv(env, 'SUPERVISION_WORKERS', true),
    supervision: loadSupervisionConfig(env),
    recognition: { authorities: organizationList(env, 'RECOGNITION_AUTHORITIES'), timeZone: checkTimeZone(env.HUIMIN_TIME_ZONE || DEFAULT_TIME_ZONE) },
    registry: loadRegistryConfig(env),
    mpi: loadMpiConfig(env),
    conformance: loadConformanceConfig(env),
  };
}

function bulkExportFromEnv(env: NodeJS.ProcessEnv): PlatformConfig['bulkExport'] {
  const lifetimeS = intFromEnv(env, 'BULK_EXPORT_LIFETIME_SECONDS', 3600);
  const resourcesPerFile = intFromEnv(env, 'BULK_EXPORT_RESOURCES_PER_FILE', 100_000);
  const maxActivePerClient = intFromEnv(env, 'BULK_EXPORT_MAX_ACTIVE_PER_CLIENT', 5);
  if (lifetimeS < 60) {
    throw new Error(`Configuration error: BULK_EXPORT_LIFETIME_SECONDS must be at least 60 (clients need time to download), got ${lifetimeS}`);
  }
  if (resourcesPerFile < 1000) {
    throw new Error(`Configuration error: BULK_EXPORT_RESOURCES_PER_FILE must be at least 1000, got ${resourcesPerFile}`);
  }
  if (maxActivePerClient < 1) {
    throw new Error('Configuration error: BULK_EXPORT_MAX_ACTIVE_PER_CLIENT must be at least 1');
  }
  const parallelism = intFromEnv(env, 'BULK_EXPORT_PARALLELISM', 3);
  if (parallelism < 1 || parallelism > 16) {
    throw new Error(`Configuration error: BULK_EXPORT_PARALLELISM must be between 1 and 16 (database connections per export), got ${parallelism}`);
  }
  return { lifetimeS, resourcesPerFile, maxActivePerClient, runJobs: boolFromEnv(env, 'BULK_EXPORT_WORKER', true), parallelism };
}
