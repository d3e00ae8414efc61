/**
 * The pages as the platform serves them under /app: hashed assets cached for good, index.html never cached and
 * answered for the app's own routes, the pages' Content-Security-Policy, and 503 when the pages were not built.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { portalApp, portalRouter } from '..';
import { createTestServer, TEST_PUBLIC_URL, type TestServer } from '../../test/server';

describe('the portal route', () => {
  let server: TestServer;
  let unbuilt: TestServer;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'huimin-portal-web-'));
    mkdirSync(path.join(dir, 'assets'));
    writeFileSync(path.join(dir, 'index.html'), '<!doctype html><div id="root"></div>');
    writeFileSync(path.join(dir, 'assets', 'index-abc123.js'), 'console.log(1)');
    server = await createTestServer('pglite', { routes: [portalRouter(dir)], security: { apps: [portalApp(TEST_PUBLIC_URL)] } });
    unbuilt = await createTestServer('pglite', { routes: [portalRouter(path.join(dir, 'missing'))] });
  });
  afterAll(async () => {
    await server.close();
    await unbuilt.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('caches hashed assets for a year and never index.html', async () => {
    const asset = await request(server.rawApp).get('/app/assets/index-abc123.js');
    expect(asset.status).toBe(200);
    expect(asset.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    const index = await request(server.rawApp).get('/app/');
    expect(index.status).toBe(200);
    expect(index.headers['cache-control']).toBe('no-cache');
    expect(index.headers['content-security-policy']).toContain("script-src 'self'");
    expect(index.headers['x-frame-options']).toBe('DENY');
  });

  it('answers index.html for the app’s own routes, and 404 for a missing asset', async () => {
    const route = await request(server.rawApp).get('/app/doctor/patient/123');
    expect(route.status).toBe(200);
    expect(route.text).toContain('<div id="root">');
    expect((await request(server.rawApp).get('/app/assets/nothing.js')).status).toBe(404);
  });

  it('registers the portal as a SMART app whose redirect URI is under /app', async () => {
    const res = await request(server.rawApp).get('/auth/authorize').query({ client_id: 'huimin-portal', redirect_uri: `${TEST_PUBLIC_URL}/app/callback`, response_type: 'code' });
    // A known client and redirect URI: the problem (no PKCE, no state) goes back to the app, not to a page of ours.
    expect(res.status).toBe(303);
    expect(res.headers.location).toContain(`${TEST_PUBLIC_URL}/app/callback?error=invalid_request`);
  });

  it('says so when the pages were not built', async () => {
    const res = await request(unbuilt.rawApp).get('/app/');
    expect(res.status).toBe(503);
    expect(res.text).toContain('npm run build');
  });
});
