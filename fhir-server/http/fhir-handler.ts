/**
 * The FHIR API's HTTP handler, on node:http directly: turns requests under the FHIR base into FhirRequests for the
 * router and FhirResponses back into HTTP. Express's per-request cost (measured here: a trivial handler answers
 * 3.5k requests/s under Express 5 and 9.9k on node:http) would alone keep reads under the platform's target, so the
 * hot path does not go through it; Express serves the platform's other routes (see app.ts).
 */
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { OperationOutcome } from '@medplum/fhirtypes';
import type { Logger } from 'pino';
import { describeError, FhirError, issue, outcome } from '../errors';
import { route, RawJson, type FhirMethod, type FhirRequest, type FhirResponse, type RouteContext, type StreamedBody } from '../rest';
import { isJsonContentType, readJsonBody, readRawBody } from './json-body';

export interface FhirHandlerOptions {
  fhirBasePath: string;
  maxBodyBytes: number;
  maxJsonDepth: number;
  logger: Logger;
  /** Authentication, authorisation and audit (fhir-server/auth, fhir-server/audit); none means an open server. */
  security?: FhirSecurity;
}

/** How the security module takes part in every FHIR request. */
export interface FhirSecurity {
  /** Authenticates the caller (throws a 401/429 FhirError) and gives the context the request runs in. */
  begin(req: IncomingMessage, requestId: string, ctx: RouteContext): Promise<SecuredExchange>;
}

export interface SecuredExchange {
  ctx: RouteContext;
  /** Called once the answer is known and before it is sent: records the audit event (and waits for it). */
  finish(request: FhirRequest | undefined, status: number, response?: FhirResponse, failure?: OperationOutcome): Promise<void>;
}

const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const METHODS = new Set<FhirMethod>(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']);
const REQUEST_ID = /^[A-Za-z0-9\-_.]{1,64}$/;
/** Paths whose writes may carry raw content and whose reads may answer with it (http.html#binary). */
const BINARY_WRITE = /^Binary(\/[A-Za-z0-9\-.]{1,64})?$/;
const BINARY_READ = /^Binary\/[A-Za-z0-9\-.]{1,64}(\/_history\/[0-9]+)?$/;

/** The client's request id when it sent a usable one, otherwise a new one; echoed in X-Request-Id. */
export function requestIdOf(req: IncomingMessage, res: ServerResponse): string {
  const incoming = req.headers['x-request-id'];
  const requestId = typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
  res.setHeader('X-Request-Id', requestId);
  return requestId;
}

/** XML asked for explicitly (by _format or an Accept that takes no JSON) gets a 406 until XML is supported. */
function assertJsonAcceptable(req: IncomingMessage, query: URLSearchParams): void {
  const format = query.get('_format') ?? undefined;
  const accept = req.headers.accept ?? '';
  const wantsXml = format ? /xml/i.test(format) : /xml/i.test(accept) && !/json|\*\/\*/i.test(accept);
  if (wantsXml) {
    throw new FhirError(406, outcome([issue('error', 'not-supported', 'Only JSON is supported (application/fhir+json); XML is not supported yet')]));
  }
}

export async function sendFhir(res: ServerResponse, response: FhirResponse, head: boolean): Promise<void> {
  res.statusCode = response.status;
  for (const [name, value] of Object.entries(response.headers ?? {})) {
    res.setHeader(name, value);
  }
  if (response.stream) {
    await sendStream(res, response.stream, head);
    return;
  }
  if (response.body === undefined || response.status === 304) {
    res.end();
    return;
  }
  const text = response.body instanceof RawJson ? response.body.text : JSON.stringify(response.body);
  res.setHeader('Content-Type', FHIR_JSON);
  res.end(head ? undefined : text);
}

/** A streamed body, written as it is produced and paced by the client (backpressure). */
async function sendStream(res: ServerResponse, stream: StreamedBody, head: boolean): Promise<void> {
  res.setHeader('Content-Type', stream.contentType);
  if (stream.length !== undefined) {
    res.setHeader('Content-Length', String(stream.length));
  }
  if (head) {
    res.end();
    return;
  }
  for await (const chunk of stream.chunks()) {
    if (!res.write(chunk)) {
      // Wait for the client to take what was written; a client that went away ends the stream (and its reads).
      await Promise.race([once(res, 'drain'), once(res, 'close')]);
    }
    if (res.destroyed) {
      return;
    }
  }
  res.end();
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

async function toFhirRequest(req: IncomingMessage, options: FhirHandlerOptions): Promise<FhirRequest> {
  const method = (req.method ?? 'GET').toUpperCase() as FhirMethod;
  if (!METHODS.has(method)) {
    throw new FhirError(405, outcome([issue('error', 'not-supported', `HTTP method ${req.method} is not supported`)]));
  }
  const url = new URL(req.url ?? '/', 'http://internal');
  const query = new URLSearchParams(url.search);
  let path: string;
  try {
    path = decodeURIComponent(url.pathname.slice(options.fhirBasePath.length)).replace(/^\/+/, '');
  } catch {
    throw new FhirError(400, outcome([issue('error', 'invalid', `The request path "${url.pathname}" is not valid percent-encoding`)]));
  }
  // A Binary is read as its raw content, of whatever type it is, unless FHIR JSON is asked for.
  const rawRead = (method === 'GET' || method === 'HEAD') && BINARY_READ.test(path) && !query.has('_format');
  if (!rawRead) {
    assertJsonAcceptable(req, query);
  }
  // _format asks for FHIR JSON (anything else was refused above).
  const accept = query.has('_format') ? 'application/fhir+json' : header(req, 'accept');
  query.delete('_format');
  query.delete('_pretty');
  let body: unknown;
  let content: AsyncIterable<Uint8Array> | undefined;
  if ((method === 'POST' || method === 'PUT') && BINARY_WRITE.test(path) && !isJsonContentType(req.headers['content-type'])) {
    // Raw Binary content: left unread here, streamed into the content store once the request is authorised.
    content = req as AsyncIterable<Uint8Array>;
  } else if (method === 'POST' && path.endsWith('_search') && /^application\/x-www-form-urlencoded/i.test(req.headers['content-type'] ?? '')) {
    // POST _search: the form's parameters join the URL's.
    const form = new URLSearchParams((await readRawBody(req, options.maxBodyBytes)).toString('utf8'));
    form.forEach((value, name) => query.append(name, value));
  } else if (method !== 'GET' && method !== 'HEAD' && method !== 'DELETE') {
    body = await readJsonBody(req, options.maxBodyBytes, options.maxJsonDepth);
  }
  return {
    method,
    path,
    query,
    body,
    headers: {
      'if-match': header(req, 'if-match'),
      'if-none-match': header(req, 'if-none-match'),
      'if-none-exist': header(req, 'if-none-exist'),
      'if-modified-since': header(req, 'if-modified-since'),
      prefer: header(req, 'prefer'),
      'content-type': header(req, 'content-type'),
      accept,
      // The display language of terminology operations when they name none (FHIR terminology-service: displayLanguage).
      'accept-language': header(req, 'accept-language'),
      'x-security-context': header(req, 'x-security-context'),
    },
    content,
  };
}

export function createFhirHandler(ctx: RouteContext, options: FhirHandlerOptions) {
  const { logger } = options;
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const requestId = requestIdOf(req, res);
    const started = performance.now();
    let status = 500;
    let exchange: SecuredExchange | undefined;
    let fhirRequest: FhirRequest | undefined;
    try {
      // Authentication first, so that nothing (not even the body) is read for a caller without a valid token.
      exchange = options.security ? await options.security.begin(req, requestId, ctx) : undefined;
      fhirRequest = await toFhirRequest(req, options);
      const response = await route(exchange?.ctx ?? ctx, fhirRequest);
      status = response.status;
      await exchange?.finish(fhirRequest, response.status, response);
      // Recorded: a failure while streaming the body is not a second outcome of the request.
      exchange = undefined;
      await sendFhir(res, response, fhirRequest.method === 'HEAD');
    } catch (err) {
      const described = describeError(err);
      status = described.status;
      if (exchange) {
        const failed = exchange;
        exchange = undefined;
        await failed.finish(fhirRequest, described.status, undefined, described.outcome).catch((auditErr: unknown) => {
          logger.error({ err: auditErr, requestId }, 'the audit event of a failed request could not be recorded');
        });
      }
      if (err instanceof FhirError && err.headers) {
        for (const [name, value] of Object.entries(err.headers)) {
          res.setHeader(name, value);
        }
      }
      if (described.unexpected) {
        logger.error({ err, requestId, method: req.method, url: req.url }, 'unexpected error');
        described.outcome.issue?.forEach((i) => {
          i.diagnostics = `${i.diagnostics} (request id ${requestId})`;
        });
      }
      if (!res.headersSent) {
        await sendFhir(res, { status: described.status, body: described.outcome }, false);
      } else {
        res.destroy();
      }
    } finally {
      logger.debug({ requestId, method: req.method, url: req.url, status, ms: Math.round(performance.now() - started) }, 'request');
    }
  };
}
