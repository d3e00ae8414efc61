/**
 * SMART App Launch for people: the sign-in form, authorization code with PKCE (S256), refresh token rotation,
 * sign-out, user tokens carrying the person into authorisation and the audit log, and the admin-only user API.
 */
import { createHash, randomBytes } from 'node:crypto';
import request from 'supertest';
import { createTestServer, TEST_PUBLIC_URL, type TestServer } from '../../../test/server';

const APP = { clientId: 'test-portal', clientName: 'Test portal', redirectUris: [`${TEST_PUBLIC_URL}/app/callback`] };
const FHIR_BASE = `${TEST_PUBLIC_URL}/fhir`;

function pkce(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

function authorizeQuery(challenge: string, overrides: Record<string, string> = {}): Record<string, string> {
  return {
    response_type: 'code',
    client_id: APP.clientId,
    redirect_uri: APP.redirectUris[0],
    scope: 'user/*.cruds online_access',
    state: 'state-12345678',
    aud: FHIR_BASE,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    ...overrides,
  };
}

describe('SMART App Launch (authorization code + PKCE) for users', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await createTestServer('postgres', { security: { apps: [APP], sessionIdleS: 600, sessionMaxS: 3600 } });
    await server.security.users.create({ username: 'dr.li', display_name: '李医生', role: 'clinician', organization: 'Organization/h1', practitioner: 'Practitioner/p1', password: 'correct horse battery' });
  });
  afterAll(async () => {
    await server.close();
  });

  /** Signs in through the form; returns the redirect's URL. */
  async function signIn(username: string, password: string, challenge: string): Promise<URL> {
    const form = await request(server.rawApp).get('/auth/authorize').query(authorizeQuery(challenge));
    expect(form.status).toBe(200);
    expect(form.text).toContain('<label for="username">');
    const csrf = /name="csrf" value="([^"]+)"/.exec(form.text)?.[1] as string;
    const cookie = (form.headers['set-cookie'] as unknown as string[])[0].split(';')[0];
    const posted = await request(server.rawApp)
      .post('/auth/authorize')
      .set('Cookie', cookie)
      .type('form')
      .send({ ...authorizeQuery(challenge), csrf, username, password });
    if (posted.status !== 303) {
      throw Object.assign(new Error(`sign-in answered ${posted.status}`), { text: posted.text });
    }
    return new URL(posted.headers.location);
  }

  async function exchange(code: string, verifier: string): Promise<request.Response> {
    return request(server.rawApp)
      .post('/auth/token')
      .type('form')
      .send({ grant_type: 'authorization_code', code, code_verifier: verifier, client_id: APP.clientId, redirect_uri: APP.redirectUris[0] });
  }

  it('advertises the authorization endpoint and S256 in the SMART configuration', async () => {
    const res = await request(server.rawApp).get('/fhir/.well-known/smart-configuration');
    expect(res.body.authorization_endpoint).toBe(`${TEST_PUBLIC_URL}/auth/authorize`);
    expect(res.body.code_challenge_methods_supported).toEqual(['S256']);
    expect(res.body.grant_types_supported).toEqual(expect.arrayContaining(['authorization_code', 'refresh_token']));
    expect(res.body.capabilities).toEqual(expect.arrayContaining(['launch-standalone', 'client-public', 'permission-user']));
  });

  it('refuses unknown clients and unregistered redirect URIs on its own page, and plain PKCE by redirect', async () => {
    const { challenge } = pkce();
    const unknown = await request(server.rawApp).get('/auth/authorize').query(authorizeQuery(challenge, { redirect_uri: 'https://evil.example/cb' }));
    expect(unknown.status).toBe(400);
    expect(unknown.headers.location).toBeUndefined();
    const plain = await request(server.rawApp).get('/auth/authorize').query(authorizeQuery(challenge, { code_challenge_method: 'plain' }));
    expect(plain.status).toBe(303);
    const back = new URL(plain.headers.location);
    expect(back.searchParams.get('error')).toBe('invalid_request');
    expect(back.searchParams.get('state')).toBe('state-12345678');
  });

  it('signs a user in, issues tokens that carry the person, rotates refresh tokens and signs out', async () => {
    const { challenge } = pkce();
    const back = await signIn('dr.li', 'correct horse battery', challenge);
    expect(back.origin + back.pathname).toBe(APP.redirectUris[0]);
    expect(back.searchParams.get('state')).toBe('state-12345678');
    const code = back.searchParams.get('code') as string;

    // A wrong verifier is refused (and ends the session the code started).
    const { verifier: other } = pkce();
    expect((await exchange(code, other)).status).toBe(400);

    const { challenge: c2, verifier: v2 } = pkce();
    const code2 = (await signIn('dr.li', 'correct horse battery', c2)).searchParams.get('code') as string;
    const tokens = await exchange(code2, v2);
    expect(tokens.status).toBe(200);
    expect(tokens.body).toMatchObject({ token_type: 'bearer', scope: 'user/*.cruds online_access', fhirUser: 'Practitioner/p1' });

    const me = await request(server.rawApp).get('/auth/userinfo').set('Authorization', `Bearer ${tokens.body.access_token}`);
    expect(me.body).toMatchObject({ preferred_username: 'dr.li', name: '李医生', role: 'clinician', organization: 'Organization/h1', fhirUser: 'Practitioner/p1' });

    // The token works on the FHIR API under the user's role, and the audit names the person.
    const patient = await request(server.app).post('/fhir/Patient').set('Content-Type', 'application/fhir+json').send({ resourceType: 'Patient', name: [{ family: '王' }] });
    const read = await request(server.rawApp).get(`/fhir/Patient/${patient.body.id}`).set('Authorization', `Bearer ${tokens.body.access_token}`).set('X-Break-The-Glass', encodeURIComponent('昏迷送急诊 unconscious'));
    expect(read.status).toBe(200);
    const audit = await request(server.app).get('/fhir/AuditEvent').query({ agent: 'dr.li', entity: `Patient/${patient.body.id}` });
    expect(audit.body.entry).toHaveLength(1);
    expect(audit.body.entry[0].resource.outcomeDesc).toContain('break-the-glass: 昏迷送急诊 unconscious');
    const agents = audit.body.entry[0].resource.agent as { who?: { identifier?: { value?: string }; display?: string } }[];
    expect(agents.some((a) => a.who?.identifier?.value === 'dr.li' && a.who.display === '李医生')).toBe(true);

    // Refresh: a new pair; the old refresh token replayed ends the session.
    const refreshed = await request(server.rawApp).post('/auth/token').type('form').send({ grant_type: 'refresh_token', refresh_token: tokens.body.refresh_token, client_id: APP.clientId });
    expect(refreshed.status).toBe(200);
    expect(refreshed.body.refresh_token).not.toBe(tokens.body.refresh_token);
    const replay = await request(server.rawApp).post('/auth/token').type('form').send({ grant_type: 'refresh_token', refresh_token: tokens.body.refresh_token, client_id: APP.clientId });
    expect(replay.status).toBe(400);
    const again = await request(server.rawApp).post('/auth/token').type('form').send({ grant_type: 'refresh_token', refresh_token: refreshed.body.refresh_token, client_id: APP.clientId });
    expect(again.status).toBe(400);
  });

  it('takes a code once: a second exchange is refused and ends the session it started', async () => {
    const { verifier, challenge } = pkce();
    const code = (await signIn('dr.li', 'correct horse battery', challenge)).searchParams.get('code') as string;
    const first = await exchange(code, verifier);
    expect(first.status).toBe(200);
    expect((await exchange(code, verifier)).status).toBe(400);
    expect((await request(server.rawApp).get('/fhir/Patient').set('Authorization', `Bearer ${first.body.access_token}`)).status).toBe(401);
  });

  it('ends the session at sign-out: its tokens stop working', async () => {
    const { verifier, challenge } = pkce();
    const code = (await signIn('dr.li', 'correct horse battery', challenge)).searchParams.get('code') as string;
    const { access_token: token } = (await exchange(code, verifier)).body as { access_token: string };
    expect((await request(server.rawApp).post('/auth/logout').set('Authorization', `Bearer ${token}`)).status).toBe(204);
    const after = await request(server.rawApp).get('/fhir/Patient').set('Authorization', `Bearer ${token}`);
    expect(after.status).toBe(401);
  });

  it('refuses a wrong password with the form again, and records the attempt', async () => {
    const { challenge } = pkce();
    await expect(signIn('dr.li', 'wrong password!', challenge)).rejects.toMatchObject({ message: 'sign-in answered 401' });
    const audit = await request(server.app).get('/fhir/AuditEvent').query({ agent: 'dr.li', outcome: '4' });
    expect(audit.body.entry.length).toBeGreaterThanOrEqual(1);
  });

  it('lets administrators, and only them, manage users', async () => {
    const { token: coordinator } = await server.tokenFor({ role: 'referral-coordinator', organization: 'Organization/h1' });
    expect((await request(server.rawApp).get('/auth/users').set('Authorization', `Bearer ${coordinator}`)).status).toBe(403);
    expect((await request(server.rawApp).get('/auth/users')).status).toBe(401);
    const created = await request(server.app).post('/auth/users').send({ username: 'Coord.Zhang', display_name: '张协调员', role: 'referral-coordinator', organization: 'Organization/h2', password: 'a long enough password' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ username: 'coord.zhang', role: 'referral-coordinator', organization: 'Organization/h2', disabled: false });
    expect(JSON.stringify(created.body)).not.toContain('argon2');
    const bad = await request(server.app).post('/auth/users').send({ username: 'dr.x', role: 'clinician', organization: 'Organization/h1', password: 'a long enough password' });
    expect(bad.status).toBe(400);
    expect(bad.body.error_description).toContain('Practitioner');
    const duplicate = await request(server.app).post('/auth/users').send({ username: 'coord.zhang', role: 'supervisor', organization: 'Organization/b', password: 'a long enough password' });
    expect(duplicate.status).toBe(400);
    const disabled = await request(server.app).put(`/auth/users/${created.body.id}`).send({ disabled: true });
    expect(disabled.body.disabled).toBe(true);
    const list = await request(server.app).get('/auth/users');
    expect(list.body.users.map((u: { username: string }) => u.username)).toEqual(['coord.zhang', 'dr.li']);
    const { challenge } = pkce();
    await expect(signIn('coord.zhang', 'a long enough password', challenge)).rejects.toMatchObject({ message: 'sign-in answered 401' });
  });
});
