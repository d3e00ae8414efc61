/**
 * The HTTP adapter: turns Express requests into FhirRequests for the router and FhirResponses back into HTTP.
 * Health endpoints for orchestrators live here too.
 */
import { randomUUID } from 'node:crypto';
import express, { type Request, type Response } from 'express';
import type { Logger } from 'pino';
import { describeError, FhirError, issue, outcome } from '../errors';
import { route, RawJson, type FhirMethod, type FhirRequest, type FhirResponse, type RouteContext } from '../rest';
import { readJsonBody, readRawBody } from './json-body';

export interface HttpOptions {
  fhirBasePath: string;
  maxBodyBytes: number;
  maxJsonDepth: number;
  logger: Logger;
  /** Checks behind /readyz: each resolves when its dependency answers. */
  readiness: Record<string, () => Promise<void>>;
}

const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const METHODS = new Set<FhirMethod>(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']);

/** XML asked for explicitly (by _format or an Accept that takes no JSON) gets a 406 until XML is supported. */
function assertJsonAcceptable(req: Request, query: URLSearchParams): void {
  const format = query.get('_format') ?? undefined;
  const accept = req.headers.accept ?? '';
  const wantsXml = format ? /xml/i.test(format) : /xml/i.test(accept) && !/json|\*\/\*/i.test(accept);
  if (wantsXml) {
    throw new FhirError(406, outcome([issue('error', 'not-supported', 'Only JSON is supported (application/fhir+json); XML is not supported yet')]));
  }
}

function send(res: Response, response: FhirResponse, head: boolean): void {
  res.status(response.status);
  for (const [name, value] of Object.entries(response.headers ?? {})) {
    res.setHeader(name, value);
  }
  if (response.body === undefined || response.status === 304) {
    res.end();
    return;
  }
  const text = response.body instanceof RawJson ? response.body.text : JSON.stringify(response.body);
  res.setHeader('Content-Type', FHIR_JSON);
  res.end(head ? undefined : text);
}

export function createHttpApp(ctx: RouteContext, options: HttpOptions): express.Express {
  const app = express();
  app.disable('x-powered-by');
  // Queries are parsed as URLSearchParams where they are used; Express's parser would only get in the way.
  app.set('query parser', false);
  const { logger } = options;

  app.use((req, res, next) => {
    const incoming = req.headers['x-request-id'];
    const requestId = typeof incoming === 'string' && /^[A-Za-z0-9\-_.]{1,64}$/.test(incoming) ? incoming : randomUUID();
    res.locals.requestId = requestId;
    res.setHeader('X-Request-Id', requestId);
    next();
  });

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'up' });
  });

  app.get('/readyz', async (_req, res) => {
    const checks: Record<string, string> = {};
    let ready = true;
    for (const [name, check] of Object.entries(options.readiness)) {
      try {
        await check();
        checks[name] = 'ok';
      } catch (err) {
        ready = false;
        checks[name] = `unavailable: ${(err as Error).message}`;
      }
    }
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not ready', checks });
  });

  const base = options.fhirBasePath;
  app.use(base, async (req, res) => {
    const requestId = res.locals.requestId as string;
    const started = performance.now();
    let status = 500;
    try {
      const method = req.method.toUpperCase() as FhirMethod;
      if (!METHODS.has(method)) {
        throw new FhirError(405, outcome([issue('error', 'not-supported', `HTTP method ${req.method} is not supported`)]));
      }
      const url = new URL(req.originalUrl, 'http://internal');
      const query = new URLSearchParams(url.search);
      assertJsonAcceptable(req, query);
      query.delete('_format');
      query.delete('_pretty');
      const path = decodeURIComponent(url.pathname.slice(base.length)).replace(/^\/+/, '');
      let body: unknown;
      if (method === 'POST' && path.endsWith('_search') && /^application\/x-www-form-urlencoded/i.test(req.headers['content-type'] ?? '')) {
        // POST _search: the form's parameters join the URL's.
        const form = new URLSearchParams((await readRawBody(req, options.maxBodyBytes)).toString('utf8'));
        form.forEach((value, name) => query.append(name, value));
      } else if (method !== 'GET' && method !== 'HEAD' && method !== 'DELETE') {
        body = await readJsonBody(req, options.maxBodyBytes, options.maxJsonDepth);
      }
      const fhirRequest: FhirRequest = {
        method,
        path,
        query,
        body,
        headers: {
          'if-match': req.headers['if-match'],
          'if-none-match': req.headers['if-none-match'],
          'if-none-exist': header(req, 'if-none-exist'),
          'if-modified-since': req.headers['if-modified-since'],
          prefer: header(req, 'prefer'),
          'content-type': req.headers['content-type'],
        },
      };
      const response = await route(ctx, fhirRequest);
      status = response.status;
      send(res, response, method === 'HEAD');
    } catch (err) {
      const described = describeError(err);
      status = described.status;
      if (described.unexpected) {
        logger.error({ err, requestId, method: req.method, url: req.originalUrl }, 'unexpected error');
        described.outcome.issue?.forEach((i) => {
          i.diagnostics = `${i.diagnostics} (request id ${requestId})`;
        });
      }
      send(res, { status: described.status, body: described.outcome }, false);
    } finally {
      logger.debug({ requestId, method: req.method, url: req.originalUrl, status, ms: Math.round(performance.now() - started) }, 'request');
    }
  });

  app.use((_req, res) => {
    send(res, { status: 404, body: outcome([issue('error', 'not-found', `Nothing is served here; the FHIR API is at ${base}`)]) }, false);
  });
  return app;
}

function header(req: Request, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}
