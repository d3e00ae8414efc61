/**
 * The transport-independent shape of a FHIR interaction. HTTP requests and the entries of batch/transaction
 * bundles are both turned into a FhirRequest and go through the same router.
 */
import type { Resource } from '@medplum/fhirtypes';
import type { CallerIdentity, FhirRepository, WriteSession } from '../repository';
import type { OperationRegistry } from './operations';

export type FhirMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface FhirRequest {
  method: FhirMethod;
  /** Path relative to the FHIR base, without leading slash: `Patient/123/_history/2`. */
  path: string;
  query: URLSearchParams;
  body?: unknown;
  /** Header values that FHIR gives meaning to, lower-case names. */
  headers: Partial<Record<'if-match' | 'if-none-match' | 'if-none-exist' | 'if-modified-since' | 'prefer' | 'content-type', string>>;
  /** The id a transaction bundle assigned in advance to a resource this request may create. */
  assignedId?: string;
}

/** JSON text that is sent as it is: stored resources are never parsed and re-serialised just to be returned. */
export class RawJson {
  constructor(readonly text: string) {}
}

/**
 * A body that is not one FHIR JSON resource, sent in chunks as they come (NDJSON files of a bulk export, whose size
 * is not bounded by memory, and the export's JSON manifest). Only over HTTP: a bundle entry cannot carry it.
 */
export class StreamedBody {
  constructor(
    readonly contentType: string,
    readonly chunks: () => AsyncIterable<string>,
  ) {}
}

export interface FhirResponse {
  status: number;
  body?: Resource | RawJson | StreamedBody;
  headers?: Record<string, string>;
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
}

export interface RequestGuard {
  /** Throws (401/403/405) to refuse the request, answers it itself, or returns undefined to let the router answer. */
  before(ctx: RouteContext, request: FhirRequest): Promise<FhirResponse | undefined> | undefined;
}

export function parseBody<T = Resource>(body: Resource | RawJson | StreamedBody | undefined): T | undefined {
  if (body instanceof RawJson) {
    return JSON.parse(body.text) as T;
  }
  if (body instanceof StreamedBody) {
    return undefined;
  }
  return body as T | undefined;
}
