/**
 * Platform configuration, read once from the environment. Every setting has a default that works on a
 * developer machine, so `npm start` needs no configuration at all.
 */
import os from 'node:os';
import path from 'node:path';

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
  security: {
    /** Lifetime of access tokens, seconds. */
    accessTokenLifetimeS: number;
    /** Browser origins allowed to call the API (CORS). */
    corsOrigins: string[];
    /** Requests per second per client and worker process (0: no limit). */
    rateLimitPerClient: number;
    /** Token requests per second per network address and worker process (0: no limit). */
    rateLimitTokenEndpoint: number;
  };
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
    security: {
      accessTokenLifetimeS: tokenLifetime,
      corsOrigins: (env.CORS_ALLOWED_ORIGINS ?? '').split(',').map((o) => o.trim()).filter(Boolean),
      rateLimitPerClient: intFromEnv(env, 'RATE_LIMIT_PER_CLIENT', 500),
      rateLimitTokenEndpoint: intFromEnv(env, 'RATE_LIMIT_TOKEN_ENDPOINT', 5),
    },
  };
}
