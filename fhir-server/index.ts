/**
 * The FHIR store's public face. Other modules use `FhirRepository` (reads, search, transactional writes) and
 * the resource-change events on the BullMQ queue; none of them touch the store's tables.
 */
import type { Logger } from 'pino';
import type { Database } from './db';
import { loadFhirDefinitions } from './definitions';
import { OutboxRelay, type EventQueueTarget } from './events';
import { createHttpHandler, type HttpHandler } from './http/app';
import { FhirRepository, type WriteInterceptor } from './repository';
import { OperationRegistry, storeOperations, type FhirOperation, type RouteContext } from './rest';

export { migrate, openDatabase, type Database, type Migration, type Queryable } from './db';
export { isR4ResourceType, loadFhirDefinitions } from './definitions';
export { OutboxRelay, RESOURCE_CHANGE_QUEUE, type EventQueueTarget, type ResourceChangeEvent, type ResourceChangeJob } from './events';
export { FhirRepository, WriteSession, type StoredResource, type WriteInterceptor, type InterceptedWrite } from './repository';
export { parseSearch, queryRecord } from './search';
export {
  route,
  operationParameters,
  parameterValue,
  OperationRegistry,
  RawJson,
  type FhirOperation,
  type FhirRequest,
  type FhirResponse,
  type OperationTarget,
  type RouteContext,
} from './rest';
export { FhirError, badRequest, conflict, notFound, notSupported, outcome, issue, unprocessable } from './errors';
export { validateResourceForWrite, registerProfile } from './validation';

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
  /** Other modules' rules on writes (booking, Task state machine), run inside each write's transaction. */
  writeInterceptors?: readonly WriteInterceptor[];
  /** The queues change events go to, one per consuming module (default: the one queue `resource-changes`). */
  eventQueues?: readonly EventQueueTarget[];
}

export interface FhirServer {
  /** The request listener: pass it to http.createServer (or to supertest). */
  app: HttpHandler;
  repository: FhirRepository;
  relay: OutboxRelay;
  stop(): Promise<void>;
}

/** Wires the store, the outbox relay and the HTTP API. The database must already be migrated. */
export function createFhirServer(options: FhirServerOptions): FhirServer {
  loadFhirDefinitions();
  const baseUrl = `${options.publicBaseUrl}${options.fhirBasePath}`;
  const relay = new OutboxRelay(options.db, { redisUrl: options.redisUrl, prefix: options.redisPrefix, logger: options.logger, queues: options.eventQueues });
  const repository = new FhirRepository(
    options.db,
    { enforceReferentialIntegrity: options.enforceReferentialIntegrity, baseUrl, interceptors: options.writeInterceptors },
    () => relay.notify(),
  );
  const ctx: RouteContext = {
    repo: repository,
    baseUrl,
    defaultPageSize: options.defaultPageSize,
    maxPageSize: options.maxPageSize,
    operations: new OperationRegistry([...storeOperations, ...(options.operations ?? [])]),
  };
  const app = createHttpHandler(ctx, {
    fhirBasePath: options.fhirBasePath,
    maxBodyBytes: options.maxBodyBytes,
    maxJsonDepth: options.maxJsonDepth,
    logger: options.logger,
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
  return { app, repository, relay, stop: () => relay.stop() };
}
