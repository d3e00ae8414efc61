/**
 * SMART Backend Services over HTTP with real tokens: discovery, the token endpoint (client_secret_basic and
 * private_key_jwt), bad tokens, scopes, introspection, registration and its management, rate limits, headers.
 */
import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import request from 'supertest';
import { ClientStore } from '../clients';
import { loadOrCreateSigningKey } from '../signing-key';
import { TokenService } from '../tokens';
import { createTestServer, TEST_PUBLIC_URL, type TestServer } from '../../../test/server';

const FHIR_JSON = 'application/fhir+json';
const TOKEN_URL = `${TEST_PUBLIC_URL}/auth/token`;
const BASE = `${TEST_PUBLIC_URL}/fhir`;

function basic(id: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

describe('SMART backend services authorization', () => {
  let server: TestServer;
  const raw = () => request(server.rawApp);

  beforeAll(async () => {
    server = await createTestServer('postgres');
  });
  afterAll(async () => {
    await server.close();
  });

  async function register(body: object): Promise<request.Response> {
    return raw().post('/auth/register').set('Authorization', `Bearer ${server.adminToken}`).send(body);
  }

  it('advertises the token, registration and introspection endpoints in smart-configuration, without a token', async () => {
    const res = await raw().get('/fhir/.well-known/smart-configuration');
    expect(res.status).toBe(200);
    expect(res.body.token_endpoint).toBe(TOKEN_URL);
    expect(res.body.token_endpoint_auth_methods_supported).toEqual(['private_key_jwt', 'client_secret_basic', 'none']);
    expect(res.body.token_endpoint_auth_signing_alg_values_supported).toEqual(['RS384', 'ES384']);
    expect(res.body.registration_endpoint).toBe(`${TEST_PUBLIC_URL}/auth/register`);
    expect(res.body.introspection_endpoint).toBe(`${TEST_PUBLIC_URL}/auth/introspect`);
    expect(res.body.capabilities).toEqual(expect.arrayContaining(['client-confidential-asymmetric', 'permission-v2', 'permission-v1']));
    expect((await raw().get('/fhir/metadata')).status).toBe(200);
  });

  it('answers 401 with WWW-Authenticate for a missing, malformed, forged, expired or wrong-audience token', async () => {
    const missing = await raw().get('/fhir/Patient');
    expect(missing.status).toBe(401);
    expect(missing.headers['www-authenticate']).toMatch(/^Bearer realm=/);
    expect(missing.body.resourceType).toBe('OperationOutcome');

    const malformed = await raw().get('/fhir/Patient').set('Authorization', 'Bearer not-a-jwt');
    expect(malformed.status).toBe(401);
    expect(malformed.headers['www-authenticate']).toMatch(/error="invalid_token"/);

    const other = await generateKeyPair('ES256');
    const claims = { client_id: 'x', scope: 'system/*.cruds', role: 'admin' };
    const forged = await new SignJWT(claims).setProtectedHeader({ alg: 'ES256' }).setIssuer(BASE).setAudience(BASE).setSubject('x').setJti(randomUUID()).setIssuedAt().setExpirationTime('5m').sign(other.privateKey);
    expect((await raw().get('/fhir/Patient').set('Authorization', `Bearer ${forged}`)).status).toBe(401);

    // Signed with the server's own key, but for another audience, or expired.
    const key = await loadOrCreateSigningKey(server.db);
    const { client } = await server.tokenFor({ role: 'admin' });
    const real = { ...claims, client_id: client.clientId };
    const wrongAudience = await new SignJWT(real).setProtectedHeader({ alg: 'ES256', kid: key.kid }).setIssuer(BASE).setAudience('https://elsewhere.example/fhir').setSubject(client.clientId).setJti(randomUUID()).setIssuedAt().setExpirationTime('5m').sign(key.privateKey);
    const res = await raw().get('/fhir/Patient').set('Authorization', `Bearer ${wrongAudience}`);
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/aud/);
    const expired = await new SignJWT(real).setProtectedHeader({ alg: 'ES256', kid: key.kid }).setIssuer(BASE).setAudience(BASE).setSubject(client.clientId).setJti(randomUUID()).setIssuedAt(Math.floor(Date.now() / 1000) - 600).setExpirationTime(Math.floor(Date.now() / 1000) - 300).sign(key.privateKey);
    const late = await raw().get('/fhir/Patient').set('Authorization', `Bearer ${expired}`);
    expect(late.status).toBe(401);
    expect(late.headers['www-authenticate']).toMatch(/expired/);
    // The same claims, valid: the checks above refused the token for its flaw, not for its claims.
    const good = await new SignJWT(real).setProtectedHeader({ alg: 'ES256', kid: key.kid }).setIssuer(BASE).setAudience(BASE).setSubject(client.clientId).setJti(randomUUID()).setIssuedAt().setExpirationTime('5m').sign(key.privateKey);
    expect((await raw().get('/fhir/Patient').set('Authorization', `Bearer ${good}`)).status).toBe(200);
  });

  it('registers a client_secret_basic client (RFC 7591) and issues it a token that works', async () => {
    const reg = await register({ client_name: 'HIS of hospital 1', role: 'facility-system', organization: 'Organization/h1', scope: 'system/*.cruds' });
    expect(reg.status).toBe(201);
    expect(reg.body.client_secret).toEqual(expect.any(String));
    expect(reg.body.token_endpoint_auth_method).toBe('client_secret_basic');
    expect(reg.body.organization).toBe('Organization/h1');
    const tokenRes = await raw().post('/auth/token').set('Authorization', basic(reg.body.client_id, reg.body.client_secret)).type('form').send({ grant_type: 'client_credentials', scope: 'system/Patient.rs' });
    expect(tokenRes.status).toBe(200);
    expect(tokenRes.headers['cache-control']).toBe('no-store');
    expect(tokenRes.body).toMatchObject({ token_type: 'bearer', scope: 'system/Patient.rs', expires_in: 300 });
    const token = tokenRes.body.access_token as string;
    expect((await raw().get('/fhir/Patient').set('Authorization', `Bearer ${token}`)).status).toBe(200);
    // Its scope is Patient.rs only.
    const denied = await raw().get('/fhir/Observation').set('Authorization', `Bearer ${token}`);
    expect(denied.status).toBe(403);
    expect(denied.body.issue[0].diagnostics).toMatch(/system\/Observation\.s/);
    expect((await raw().post('/fhir/Patient').set('Authorization', `Bearer ${token}`).set('Content-Type', FHIR_JSON).send({ resourceType: 'Patient' })).status).toBe(403);

    const wrong = await raw().post('/auth/token').set('Authorization', basic(reg.body.client_id, 'wrong')).type('form').send({ grant_type: 'client_credentials' });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error).toBe('invalid_client');
    const badGrant = await raw().post('/auth/token').set('Authorization', basic(reg.body.client_id, reg.body.client_secret)).type('form').send({ grant_type: 'password' });
    expect(badGrant.body.error).toBe('unsupported_grant_type');
    const badScope = await raw().post('/auth/token').set('Authorization', basic(reg.body.client_id, reg.body.client_secret)).type('form').send({ grant_type: 'client_credentials', scope: 'patient/Patient.read openid' });
    expect(badScope.body.error).toBe('invalid_scope');
  });

  it.each(['ES384', 'RS384'] as const)('authenticates a private_key_jwt client with an %s assertion, once per jti', async (alg) => {
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
    const jwk = { ...(await exportJWK(publicKey)), alg, kid: 'k1' };
    const reg = await register({ client_name: 'LIS', role: 'facility-system', organization: 'Organization/h2', token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [jwk] }, scope: 'system/*.rs' });
    expect(reg.status).toBe(201);
    expect(reg.body.client_secret).toBeUndefined();
    const id = reg.body.client_id as string;
    const assertion = await new SignJWT({}).setProtectedHeader({ alg, kid: 'k1' }).setIssuer(id).setSubject(id).setAudience(TOKEN_URL).setJti(randomUUID()).setExpirationTime('4m').sign(privateKey);
    const form = { grant_type: 'client_credentials', scope: 'system/Observation.rs', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion };
    const ok = await raw().post('/auth/token').type('form').send(form);
    expect(ok.status).toBe(200);
    expect(ok.body.scope).toBe('system/Observation.rs');
    const replay = await raw().post('/auth/token').type('form').send(form);
    expect(replay.status).toBe(401);
    expect(replay.body.error_description).toMatch(/used already/);
    // A v1 write scope is not granted to a client registered for reads only.
    const fresh = await new SignJWT({}).setProtectedHeader({ alg, kid: 'k1' }).setIssuer(id).setSubject(id).setAudience(TOKEN_URL).setJti(randomUUID()).setExpirationTime('4m').sign(privateKey);
    const write = await raw().post('/auth/token').type('form').send({ ...form, client_assertion: fresh, scope: 'system/*.write' });
    expect(write.body.error).toBe('invalid_scope');
    // An assertion signed by another key fails.
    const stranger = await generateKeyPair(alg);
    const forged = await new SignJWT({}).setProtectedHeader({ alg, kid: 'k1' }).setIssuer(id).setSubject(id).setAudience(TOKEN_URL).setJti(randomUUID()).setExpirationTime('4m').sign(stranger.privateKey);
    expect((await raw().post('/auth/token').type('form').send({ ...form, client_assertion: forged })).status).toBe(401);
  });

  it('refuses registrations that are not admin, or that lack a role or organisation, or carry a private key', async () => {
    const { token } = await server.tokenFor({ role: 'facility-system', organization: 'Organization/h1' });
    const notAdmin = await raw().post('/auth/register').set('Authorization', `Bearer ${token}`).send({ role: 'admin' });
    expect(notAdmin.status).toBe(403);
    expect((await raw().post('/auth/register').send({ role: 'admin' })).status).toBe(401);
    expect((await register({ client_name: 'x' })).body.error).toBe('invalid_client_metadata');
    expect((await register({ role: 'facility-system' })).body.error_description).toMatch(/organization/);
    const { privateKey } = await generateKeyPair('ES384', { extractable: true });
    const leaked = await register({ role: 'facility-system', organization: 'Organization/h1', jwks: { keys: [await exportJWK(privateKey)] } });
    expect(leaked.body.error_description).toMatch(/public keys only/);
  });

  it('manages a registration (RFC 7592): read, rotate the secret, disable, delete', async () => {
    const reg = await register({ client_name: 'PACS', role: 'facility-system', organization: 'Organization/h3' });
    const uri = new URL(reg.body.registration_client_uri as string).pathname;
    const admin = `Bearer ${server.adminToken}`;
    const read = await raw().get(uri).set('Authorization', admin);
    expect(read.status).toBe(200);
    expect(read.body.client_secret).toBeUndefined();
    expect(read.body.role).toBe('facility-system');

    const rotated = await raw().put(uri).set('Authorization', admin).send({ rotate_secret: true });
    expect(rotated.status).toBe(200);
    const newSecret = rotated.body.client_secret as string;
    expect(newSecret).not.toBe(reg.body.client_secret);
    const grant = { grant_type: 'client_credentials' };
    expect((await raw().post('/auth/token').set('Authorization', basic(reg.body.client_id, reg.body.client_secret)).type('form').send(grant)).status).toBe(401);
    const tokenRes = await raw().post('/auth/token').set('Authorization', basic(reg.body.client_id, newSecret)).type('form').send(grant);
    expect(tokenRes.status).toBe(200);
    const bearer = `Bearer ${tokenRes.body.access_token}`;
    expect((await raw().get('/fhir/Patient').set('Authorization', bearer)).status).toBe(200);

    // Introspection (RFC 7662) tells other services what the token is.
    const active = await raw().post('/auth/introspect').set('Authorization', admin).type('form').send({ token: tokenRes.body.access_token });
    expect(active.body).toMatchObject({ active: true, client_id: reg.body.client_id, role: 'facility-system', organization: 'Organization/h3' });
    expect((await raw().post('/auth/introspect').set('Authorization', admin).type('form').send({ token: 'garbage' })).body).toEqual({ active: false });
    expect((await raw().post('/auth/introspect').type('form').send({ token: 'garbage' })).status).toBe(401);

    expect((await raw().put(uri).set('Authorization', admin).send({ role: 'admin' })).status).toBe(400);
    expect((await raw().put(uri).set('Authorization', admin).send({ disabled: true })).body.disabled).toBe(true);
    // The disabled client's tokens stop working, and it gets no new ones.
    const refused = await raw().get('/fhir/Patient').set('Authorization', bearer);
    expect(refused.status).toBe(401);
    expect(refused.headers['www-authenticate']).toMatch(/disabled/);
    expect((await raw().post('/auth/token').set('Authorization', basic(reg.body.client_id, newSecret)).type('form').send(grant)).status).toBe(401);
    expect((await raw().post('/auth/introspect').set('Authorization', admin).type('form').send({ token: tokenRes.body.access_token })).body.active).toBe(false);
    expect((await raw().put(uri).set('Authorization', admin).send({ disabled: false })).body.disabled).toBe(false);
    expect((await raw().delete(uri).set('Authorization', admin)).status).toBe(204);
    expect((await raw().get(uri).set('Authorization', admin)).body.disabled).toBe(true);
  });

  it('replaces the keys of a private_key_jwt client', async () => {
    const first = await generateKeyPair('ES384', { extractable: true });
    const second = await generateKeyPair('ES384', { extractable: true });
    const reg = await register({ role: 'supervisor', organization: 'Organization/bureau', jwks: { keys: [{ ...(await exportJWK(first.publicKey)), alg: 'ES384' }] } });
    const id = reg.body.client_id as string;
    const uri = new URL(reg.body.registration_client_uri as string).pathname;
    const replaced = await raw().put(uri).set('Authorization', `Bearer ${server.adminToken}`).send({ jwks: { keys: [{ ...(await exportJWK(second.publicKey)), alg: 'ES384' }] } });
    expect(replaced.status).toBe(200);
    const assertion = (key: CryptoKey) => new SignJWT({}).setProtectedHeader({ alg: 'ES384' }).setIssuer(id).setSubject(id).setAudience(TOKEN_URL).setJti(randomUUID()).setExpirationTime('4m').sign(key);
    const form = (a: string) => ({ grant_type: 'client_credentials', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: a });
    expect((await raw().post('/auth/token').type('form').send(form(await assertion(first.privateKey)))).status).toBe(401);
    expect((await raw().post('/auth/token').type('form').send(form(await assertion(second.privateKey)))).status).toBe(200);
  });

  it('understands SMART v1 and v2 scopes per interaction', async () => {
    const created = await request(server.app).post('/fhir/Patient').set('Content-Type', FHIR_JSON).send({ resourceType: 'Patient' });
    const id = created.body.id as string;
    const cases: Array<[string, string, string, number]> = [
      ['system/Patient.r', 'GET', `/fhir/Patient/${id}`, 200],
      ['system/Patient.r', 'GET', '/fhir/Patient', 403],
      ['system/Patient.s', 'GET', '/fhir/Patient', 200],
      ['system/Patient.s', 'GET', `/fhir/Patient/${id}`, 403],
      ['system/*.read', 'GET', `/fhir/Patient/${id}`, 200],
      ['system/*.read', 'DELETE', `/fhir/Patient/${id}`, 403],
      ['system/Observation.cruds', 'GET', `/fhir/Patient/${id}`, 403],
      ['system/*.*', 'GET', `/fhir/Patient/${id}/_history`, 200],
    ];
    for (const [scope, method, path, status] of cases) {
      const { token } = await server.tokenFor({ role: 'facility-system', organization: 'Organization/h1', scope });
      const res = await raw()[method === 'GET' ? 'get' : 'delete'](path).set('Authorization', `Bearer ${token}`);
      expect(`${scope} ${method} ${path} ${res.status}`).toBe(`${scope} ${method} ${path} ${status}`);
    }
  });

  it('shares one signing key between processes: a token from one verifies in another', async () => {
    const keys = await Promise.all([loadOrCreateSigningKey(server.db), loadOrCreateSigningKey(server.db), loadOrCreateSigningKey(server.db)]);
    expect(new Set(keys.map((k) => k.kid)).size).toBe(1);
    // Another worker process: its own client store and token service over the same database.
    const otherWorker = new TokenService(server.db, new ClientStore(server.db), keys[0], { baseUrl: BASE, tokenUrl: TOKEN_URL, accessTokenLifetimeS: 300 });
    expect((await otherWorker.verify(server.adminToken)).role).toBe('admin');
  });

  it('sets security headers, and CORS headers only for allowed origins', async () => {
    const res = await request(server.app).get('/fhir/metadata').set('Origin', 'https://evil.example');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['x-frame-options']).toBe('DENY');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
    const preflight = await raw().options('/fhir/Patient').set('Origin', 'https://evil.example').set('Access-Control-Request-Method', 'GET');
    expect(preflight.status).toBe(403);
  });
});

describe('rate limits and CORS allow-list', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await createTestServer('postgres', { security: { rateLimitPerClient: 2, corsOrigins: ['https://portal.huimin.example'] } });
  });
  afterAll(async () => {
    await server.close();
  });

  it('answers 429 with Retry-After once a client exceeds its rate', async () => {
    const statuses: number[] = [];
    let retryAfter: string | undefined;
    for (let i = 0; i < 8; i++) {
      const res = await request(server.app).get('/fhir/Patient');
      statuses.push(res.status);
      retryAfter ??= res.headers['retry-after'];
    }
    expect(statuses).toContain(200);
    expect(statuses).toContain(429);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
  });

  it('answers a preflight from an allowed origin', async () => {
    const res = await request(server.rawApp).options('/fhir/Patient').set('Origin', 'https://portal.huimin.example').set('Access-Control-Request-Method', 'GET');
    expect(res.status).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBe('https://portal.huimin.example');
    expect(res.headers['access-control-allow-headers']).toMatch(/Authorization/);
  });
});
