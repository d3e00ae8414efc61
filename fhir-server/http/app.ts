/**
 * The platform's HTTP entry point. Requests under the FHIR base go to the FHIR handler (fhir-handler.ts);
 * everything else (health endpoints for orchestrators, and later the other modules' routes) to an Express app.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import express from 'express';
import type { Logger } from 'pino';
import { issue, outcome } from '../errors';
import type { RouteContext } from '../rest';
import { createFhirHandler, requestIdOf, sendFhir, type FhirSecurity } from './fhir-handler';

export interface HttpOptions {
  fhirBasePath: string;
  maxBodyBytes: number;
  maxJsonDepth: number;
  logger: Logger;
  /** Checks behind /readyz: each resolves when its dependency answers. */
  readiness: Record<string, () => Promise<void>>;
  /** Authentication, authorisation, audit and hardening (fhir-server/auth); none means an open server. */
  security?: HttpSecurity;
  /** Other modules' routes outside the FHIR base (e.g. the portal's static pages). */
  routes?: readonly express.Router[];
}

export interface HttpSecurity extends FhirSecurity {
  /** Sets security and CORS headers on every response; true when it answered the request itself (a CORS preflight). */
  protect(req: IncomingMessage, res: ServerResponse): boolean;
  /** True when it answered a public path under the FHIR base itself (the SMART configuration). */
  servePublic(req: IncomingMessage, res: ServerResponse): boolean;
  /** Routes outside the FHIR base (token, introspection, registration endpoints). */
  router: express.Router;
}

export type HttpHandler = (req: IncomingMessage, res: ServerResponse) => void;

function createPlatformApp(options: HttpOptions): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', false);
  app.use((req, res, next) => {
    requestIdOf(req, res);
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
  if (options.security) {
    app.use(options.security.router);
  }
  for (const router of options.routes ?? []) {
    app.use(router);
  }
  app.use((_req, res) => {
    void sendFhir(res, { status: 404, body: outcome([issue('error', 'not-found', `Nothing is served here; the FHIR API is at ${options.fhirBasePath}`)]) }, false);
  });
  return app;
}

export function createHttpHandler(ctx: RouteContext, options: HttpOptions): HttpHandler {
  const base = options.fhirBasePath;
  const fhir = createFhirHandler(ctx, options);
  const app = createPlatformApp(options);
  const security = options.security;
  return (req, res) => {
    if (security && (security.protect(req, res) || security.servePublic(req, res))) {
      return;
    }
    const url = req.url ?? '/';
    if (url.startsWith(base) && (url.length === base.length || url[base.length] === '/' || url[base.length] === '?')) {
      void fhir(req, res);
    } else {
      app(req, res);
    }
  };
}
