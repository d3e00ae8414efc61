/**
 * The FHIR store's public face. Other modules use `FhirRepository` (reads, search, transactional writes) and
 * the resource-change events on the BullMQ queue; none of them touch the store's tables.
 */
import os from 'node:os';
import path from 'node:path';
import type { Router } from 'express';
import type { Logger } from 'pino';
import { AuditLog } from './audit';
import { consentNoticeOperation, loadOrCreateSigningKey, PlatformSecurity, type AppClient } from './auth';
import { BulkExportWorker, bulkExportOperations, DEFAULT_BULK_EXPORT, type BulkExportSettings } from './bulk';
import type { Database } from './db';
import { loadFhirDefinitions } from './definitions';
import { OutboxRelay, type EventQueueTarget } from './events';
import { createHttpHandler, type HttpHandler } from './http/app';
import { FhirRepository, type WriteInterceptor } from './repository';
import { addLocalBaseUrl } from './search';
import { DEFAULT_REINDEX, ReindexWorker, reindexOperations, type ReindexSettings } from './reindex';
import { OperationRegistry, storeOperations, type BinaryContentStore, type FhirOperation, type RouteContext } from './rest';
import { registerCodeValidator, type CodeValidator } from './validation';

export { migrate, openDatabase, StatisticsKeeper, type Database, type Migration, type Queryable } from './db';
export { isR4ResourceType, loadFhirDefinitions } from './definitions';
export { OutboxRelay, RESOURCE_CHANGE_QUEUE, type EventQueueTarget, type ResourceChangeEvent, type ResourceChangeJob } from './events';
export { FhirRepository, WriteSession, type CallerIdentity, type ResourceReader, type StoredResource, type WriteInterceptor, type InterceptedWrite } from './repository';
export { parseSearch, queryRecord } from './search';
export {
  route,
  declareImplementationGuide,
  operationParameters,
  parameterValue,
  OperationRegistry,
  RawJson,
  type FhirOperation,
  type FhirRequest,
  type FhirResponse,
  type OperationTarget,
  type RouteContext,
  contentTooLarge,
  wantsRawContent,
  type BinaryContentStore,
  type StoredContent,
  type StreamedBody,
} from './rest';
export { FhirError, badRequest, conflict, describeError, notFound, notSupported, outcome, issue, unprocessable } from './errors';
export { validateResourceForWrite, registerProfile, registerCodeValidator, requireDefinedExtensions, type CodeValidator } from './validation';
export {
  securityMigrations,
  PlatformSecurity,
  ClientStore,
  ConsentDecisions,
  TokenService,
  loadOrCreateSigningKey,
  Permissions,
  ROLES,
  OWNER_TAG_SYSTEM,
  RESTRICTED_TO_SYSTEM,
  ownerOf,
  partyOfOrganization,
  UserStore,
  type AppClient,
  type Caller,
  type Client,
  type Role,
} from './auth';
export { AuditLog, verifyAuditChain, recoverJournals, readAuditLog, type AuditEntry, type StoredAuditFacts, type ChainReport } from './audit';
export { BulkExportWorker, DEFAULT_BULK_EXPORT, type BulkExportSettings } from './bulk';
export { ReindexWorker, DEFAULT_REINDEX, type ReindexSettings } from './reindex';

/** Security settings (see README, Configuration). */
export interface SecuritySettings {
  /** Lifetime of access tokens, seconds. */
  accessTokenLifetimeS: number;
  /** Origins allowed to call from browsers. */
  corsOrigins: readonly string[];
  /** Requests per second per client and process; 0 turns the limit off. */
  rateLimitPerClient: number;
  /** Token requests per second per network address and process; 0 turns the limit off. */
  rateLimitTokenEndpoint: number;
  /** SMART apps whose users sign in with the authorization code grant (the portal). */
  apps: readonly AppClient[];
  /** A user's sign-in session ends after this many seconds unused, and this many after sign-in in any case. */
  sessionIdleS: number;
  sessionMaxS: number;
  /**
   * Offer `Patient/$consent-notice`, which tells a viewer that consent withholds part of a record (never what); off
   * where a deployment's rules forbid saying even that.
   */
  consentNotice: boolean;
}

export const DEFAULT_SECURITY: SecuritySettings = {
  accessTokenLifetimeS: 300,
  corsOrigins: [],
  rateLimitPerClient: 500,
  rateLimitTokenEndpoint: 5,
  apps: [],
  sessionIdleS: 1800,
  sessionMaxS: 12 * 3600,
  consentNotice: true,
};

export interface FhirServerOptions {
  db: Database;
  logger: Logger;
  publicBaseUrl: string;
  fhirBasePath: string;
  redisUrl: string;
  redisPrefix: string;
  maxBodyBytes: number;
  maxJsonDepth: number;
  maxPageSize: number;
  defaultPageSize: number;
  enforceReferentialIntegrity: boolean;
  /** Operations from other modules (terminology, MPI, …), answered beside the store's own. */
  operations?: readonly FhirOperation[];
  /** Judges codes of bindings whose value sets the store cannot expand itself (the terminology module's). */
  codeValidator?: CodeValidator;
  /** Token lifetime, CORS, rate limits; security itself is always on (the database needs securityMigrations). */
  security?: Partial<SecuritySettings>;
  /**
   * Where each process journals its AuditEvents before answering (see audit/journal.ts); the platform uses
   * DATA_DIR/audit-journal. It must survive a restart, so the default under the temporary directory suits tests only.
   */
  auditJournalDir?: string;
  /** Other modules' rules on writes (booking, Task state machine), run inside each write's transaction. */
  writeInterceptors?: readonly WriteInterceptor[];
  /** The queues change events go to, one per consuming module (default: the one queue `resource-changes`). */
  eventQueues?: readonly EventQueueTarget[];
  /** Keeps Binary content outside the resource JSON, streamed in and out (see rest/binary.ts); none: data inline. */
  binaryStore?: BinaryContentStore;
  /** Bulk Data `$export`: file lifetime, limits, and whether this process runs export jobs (see bulk/worker.ts). */
  bulkExport?: Partial<BulkExportSettings>;
  /** Asynchronous `$reindex`: batch size, polling, and whether this process runs reindex jobs (see reindex/worker.ts). */
  reindex?: Partial<ReindexSettings>;
  /** Other modules' routes outside the FHIR base (the portal's web pages under /app), behind the same security headers. */
  routes?: readonly Router[];
  /**
   * The code of a Patient reference SearchParameter naming a patient's linked patients (the MPI's golden records):
   * `patient=`/`subject=` searches and `$everything` include the linked patients' records.
   */
  patientLinkParameter?: string;
}

export interface FhirServer {
  /** The request listener: pass it to http.createServer (or to supertest). */
  app: HttpHandler;
  repository: FhirRepository;
  relay: OutboxRelay;
  /** Clients, tokens and the OAuth endpoints. */
  security: PlatformSecurity;
  audit: AuditLog;
  /** This process's bulk export claim loop (tests wait for it with `idle()`). */
  bulkExport: BulkExportWorker;
  /** This process's `$reindex` claim loop (tests wait for it with `idle()`). */
  reindex: ReindexWorker;
  stop(): Promise<void>;
}

/** Wires the store, the outbox relay and the HTTP API. The database must already be migrated. */
export function createFhirServer(options: FhirServerOptions): FhirServer {
  loadFhirDefinitions();
  if (options.codeValidator) {
    registerCodeValidator(options.codeValidator);
  }
  const baseUrl = `${options.publicBaseUrl}${options.fhirBasePath}`;
  addLocalBaseUrl(baseUrl);
  const relay = new OutboxRelay(options.db, { redisUrl: options.redisUrl, prefix: options.redisPrefix, logger: options.logger, queues: options.eventQueues });
  const repository = new FhirRepository(
    options.db,
    {
      enforceReferentialIntegrity: options.enforceReferentialIntegrity,
      baseUrl,
      interceptors: options.writeInterceptors,
      patientLinkParameter: options.patientLinkParameter,
      // repository.asCaller: work on a recorded caller's behalf (subscriptions) with that caller's current rights.
      callerAccess: (identity) => security.accessOf(identity),
    },
    () => relay.notify(),
  );
  const bulkSettings: BulkExportSettings = { ...DEFAULT_BULK_EXPORT, ...options.bulkExport };
  const bulkExport = new BulkExportWorker(options.db, { ...bulkSettings, baseUrl }, options.logger);
  const reindex = new ReindexWorker(options.db, { ...DEFAULT_REINDEX, ...options.reindex }, options.logger);
  const ctx: RouteContext = {
    repo: repository,
    baseUrl,
    defaultPageSize: options.defaultPageSize,
    maxPageSize: options.maxPageSize,
    operations: new OperationRegistry([
      ...storeOperations,
      ...reindexOperations(reindex),
      ...bulkExportOperations(bulkExport, bulkSettings),
      ...(options.security?.consentNotice === false ? [] : [consentNoticeOperation(options.db)]),
      ...(options.operations ?? []),
    ]),
    binaryStore: options.binaryStore,
    reindexState: reindex.state,
  };
  const audit = new AuditLog(options.db, {
    journalDir: options.auditJournalDir ?? path.join(os.tmpdir(), 'huimin-audit-journal'),
    onError: (err, what) => options.logger.error({ err }, what),
  });
  const security = new PlatformSecurity({
    ...DEFAULT_SECURITY,
    ...options.security,
    db: options.db,
    logger: options.logger,
    publicBaseUrl: options.publicBaseUrl,
    fhirBasePath: options.fhirBasePath,
    signingKey: loadOrCreateSigningKey(options.db),
    audit,
  });
  const app = createHttpHandler(ctx, {
    security,
    fhirBasePath: options.fhirBasePath,
    maxBodyBytes: options.maxBodyBytes,
    maxJsonDepth: options.maxJsonDepth,
    logger: options.logger,
    routes: options.routes,
    readiness: {
      database: async () => {
        await options.db.query('SELECT 1');
      },
      redis: async () => {
        if (!relay.healthy) {
          throw new Error('the event relay cannot reach Redis; events wait in the outbox');
        }
      },
    },
  });
  relay.start();
  audit.start();
  bulkExport.start();
  reindex.start();
  return {
    app,
    repository,
    relay,
    security,
    audit,
    bulkExport,
    reindex,
    stop: async () => {
      await reindex.stop();
      await bulkExport.stop();
      await relay.stop();
      await audit.stop();
    },
  };
}
