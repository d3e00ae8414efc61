/**
 * The portal's public face on the server side: the SMART app registration of the web pages (a public client that
 * signs users in with the authorization code grant and PKCE) and the route that serves the built single-page app
 * (portal/web, built by Vite into dist/portal-web) under /app. The pages themselves are a FHIR client like any
 * other: they talk to the platform only over HTTP (/fhir and /auth).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import express, { type Request, type Response } from 'express';
import type { AppClient } from '../fhir-server';

export const PORTAL_PATH = '/app';
export const PORTAL_CLIENT_ID = 'huimin-portal';

/** The portal as a SMART app: its client id and the one redirect URI it may be sent back to. */
export function portalApp(publicBaseUrl: string): AppClient {
  return { clientId: PORTAL_CLIENT_ID, clientName: '惠民 Portal', redirectUris: [`${publicBaseUrl}${PORTAL_PATH}/callback`] };
}

/** Where `npm run build` puts the pages: dist/portal-web beside the compiled server (dist/portal). */
export function defaultPortalDir(): string {
  return path.resolve(__dirname, '..', 'portal-web');
}

/**
 * The pages' own Content-Security-Policy (the API's is `default-src 'none'`): scripts and data from this origin
 * only; inline styles, which the component library sets on elements; documents (PDF) shown from blob: URLs.
 */
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "frame-src 'self' blob:",
  "object-src 'self' blob:",
  "frame-ancestors 'none'",
  "base-uri 'self'",
  "form-action 'self'",
].join('; ');

/**
 * Serves the built pages under /app: hashed assets cached for a year (their names change with their content),
 * index.html never cached (it names the current assets), and index.html for every other path below /app, so
 * that the app's own routes (/app/record/123) survive a reload.
 */
export function portalRouter(dir: string = defaultPortalDir()): express.Router {
  const router = express.Router();
  const index = path.join(dir, 'index.html');
  const sendIndex = (_req: Request, res: Response): void => {
    if (!existsSync(index)) {
      res.status(503).type('text/plain; charset=utf-8').send('The portal has not been built: run "npm run build".');
      return;
    }
    res.setHeader('Content-Security-Policy', CSP);
    res.setHeader('Cache-Control', 'no-cache');
    res.sendFile(index);
  };
  router.use(
    `${PORTAL_PATH}/assets`,
    express.static(path.join(dir, 'assets'), {
      index: false,
      fallthrough: false,
      // The platform sets Cache-Control: no-store on every response first (health data); assets are not health data.
      setHeaders: (res) => {
        res.setHeader('Content-Security-Policy', CSP);
        res.setHeader('Cache-Control', 'public, max-age=31536000, immutable');
      },
    }),
  );
  router.use(
    PORTAL_PATH,
    express.static(dir, {
      index: false,
      setHeaders: (res, file) => {
        res.setHeader('Content-Security-Policy', CSP);
        res.setHeader('Cache-Control', file.endsWith('index.html') ? 'no-cache' : 'public, max-age=3600');
      },
    }),
  );
  router.get([PORTAL_PATH, `${PORTAL_PATH}/*rest`], sendIndex);
  return router;
}
