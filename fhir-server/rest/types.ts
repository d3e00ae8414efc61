/**
 * The transport-independent shape of a FHIR interaction. HTTP requests and the entries of batch/transaction
 * bundles are both turned into a FhirRequest and go through the same router.
 */
import type { Resource } from '@medplum/fhirtypes';
import type { Queryable } from '../db';
import type { CallerIdentity, FhirRepository, WriteSession } from '../repository';
import type { UsedRuntimeParam } from '../search';
import type { BinaryContentStore } from './binary';
import type { OperationRegistry } from './operations';

export type FhirMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface FhirRequest {
  method: FhirMethod;
  /** Path relative to the FHIR base, without leading slash: `Patient/123/_history/2`. */
  path: string;
  query: URLSearchParams;
  body?: unknown;
  /** Header values that FHIR gives meaning to, lower-case names. */
  headers: Partial<Record<'if-match' | 'if-none-match' | 'if-none-exist' | 'if-modified-since' | 'prefer' | 'content-type' | 'accept' | 'accept-language' | 'x-security-context', string>>;
  /** The id a transaction bundle assigned in advance to a resource this request may create. */
  assignedId?: string;
  /**
   * A Binary's raw content (POST/PUT of Binary with a Content-Type that is not FHIR JSON), not yet read: the
   * router streams it into the BinaryContentStore after the guard allowed the request (see binary.ts).
   */
  content?: AsyncIterable<Uint8Array>;
}

/** JSON text that is sent as it is: stored resources are never parsed and re-serialised just to be returned. */
export class RawJson {
  constructor(readonly text: string) {}
}

export interface FhirResponse {
  status: number;
  body?: Resource | RawJson;
  headers?: Record<string, string>;
  /**
   * A body that is not a resource held in memory: a Binary's raw content, a resource too big to hold (a Binary
   * with its stored content as `data`), a rendered document, a bulk export's NDJSON file. Sent as it is produced,
   * over HTTP only (a bundle entry cannot carry it); takes the place of `body`.
   */
  stream?: StreamedBody;
}

export interface StreamedBody {
  contentType: string;
  /** Content-Length, when known in advance. */
  length?: number;
  chunks(): AsyncIterable<Uint8Array | string>;
}

export interface RouteContext {
  repo: FhirRepository;
  /** Public base URL of the FHIR API, e.g. `http://localhost:8080/fhir`. */
  baseUrl: string;
  defaultPageSize: number;
  maxPageSize: number;
  /** The `$operations` this server answers: the store's own and those other modules registered. */
  operations: OperationRegistry;
  /** Set while the request runs as an entry of a transaction bundle: every write joins this session. */
  session?: WriteSession;
  /** The caller's gatekeeper (security module): sees every request, HTTP or bundle entry, before it is answered. */
  guard?: RequestGuard;
  /** Who the request acts for, when the security module authenticated it. */
  caller?: CallerIdentity;
  /** Where Binary content too big for a resource's JSON is kept (a module's); none: Binaries hold their data inline. */
  binaryStore?: BinaryContentStore;
  /**
   * Which of the runtime SearchParameters a search uses older resources are not indexed with yet (a `$reindex`
   * has not covered them, see fhir-server/reindex/state.ts): the search warns about them.
   */
  reindexState?: { pending(used: readonly UsedRuntimeParam[], q?: Queryable): Promise<UsedRuntimeParam[]> };
}

export interface RequestGuard {
  /** Throws (401/403/405) to refuse the request, answers it itself, or returns undefined to let the router answer. */
  before(ctx: RouteContext, request: FhirRequest): Promise<FhirResponse | undefined> | undefined;
}

export function parseBody<T = Resource>(body: Resource | RawJson | undefined): T | undefined {
  if (body instanceof RawJson) {
    return JSON.parse(body.text) as T;
  }
  return body as T | undefined;
}
