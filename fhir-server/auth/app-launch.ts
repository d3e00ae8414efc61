/**
 * SMART App Launch, standalone, for people (SMART App Launch 2.x §2.0.x "App Launch"): the authorization code
 * grant with PKCE (S256 only) for public SMART apps configured with the platform (the portal), against users of
 * users.ts.
 *
 *   GET  /auth/authorize   checks the authorization request, shows the sign-in form (served by the platform)
 *   POST /auth/authorize   checks the credentials, starts a session, redirects back with a single-use code
 *   POST /auth/token       grant_type=authorization_code (code + code_verifier) or refresh_token (rotated)
 *   GET  /auth/userinfo    who the bearer token's user is (name, role, organisation, practitioner)
 *   POST /auth/logout      ends the bearer token's session: its tokens stop working on every worker within seconds
 *
 * Every sign-in, failure and sign-out is audited; codes, tokens and passwords are never logged or stored in clear.
 */
import { createHash, randomBytes } from 'node:crypto';
import express, { type Request, type Response } from 'express';
import type { AuditAgent } from '../audit/audit-event';
import type { RateLimiter } from './rate-limit';
import type { PlatformSecurity } from './security';
import { addressOf } from './security';
import { OAuthError, userScopePermissions, type AppClient } from './tokens';
import { sameHash, sha256, type User } from './users';

const FORM = express.urlencoded({ extended: false, limit: '16kb', parameterLimit: 30 });
const CODE_LIFETIME_S = 60;
const CSRF_COOKIE = 'huimin_signin_csrf';
/** RFC 7636 §4.1: 43 to 128 characters of the unreserved set. */
const VERIFIER = /^[A-Za-z0-9\-._~]{43,128}$/;
const CHALLENGE = /^[A-Za-z0-9\-_]{43}$/;
/** Scopes a user token may carry besides `user/` ones. */
const CONTEXT_SCOPES = new Set(['online_access', 'offline_access']);

/** An authorization request's parameters, once checked. */
interface AuthorizationRequest {
  app: AppClient;
  redirectUri: string;
  state: string;
  scope: string;
  codeChallenge: string;
  locale: 'zh' | 'en';
}

/** An error the user sees on the platform's page (the client or redirect URI cannot be trusted with it). */
class PageError extends Error {}

/** An error sent back to the app's redirect URI (RFC 6749 §4.1.2.1). */
class RedirectError extends Error {
  constructor(
    readonly code: 'invalid_request' | 'unsupported_response_type' | 'invalid_scope' | 'access_denied',
    message: string,
  ) {
    super(message);
  }
}

const TEXT = {
  zh: {
    title: '登录 · 惠民区域健康信息平台',
    heading: '惠民区域健康信息平台',
    signInTo: (app: string) => `登录以使用：${app}`,
    username: '用户名',
    password: '密码',
    submit: '登录',
    failed: '用户名或密码不正确，或账户已停用或暂时锁定。',
    expired: '登录表单已过期，请重试。',
    slowDown: (s: number) => `尝试次数过多，请 ${s} 秒后重试。`,
    notice: '本系统记录每一次访问；仅限授权人员使用。',
    error: '无法登录',
  },
  en: {
    title: 'Sign in · Huimin regional health platform',
    heading: 'Huimin regional health platform',
    signInTo: (app: string) => `Sign in to ${app}`,
    username: 'Username',
    password: 'Password',
    submit: 'Sign in',
    failed: 'Wrong username or password, or the account is disabled or locked for a few minutes.',
    expired: 'The sign-in form expired; please try again.',
    slowDown: (s: number) => `Too many attempts; try again in ${s} s.`,
    notice: 'Every access is recorded; for authorised staff only.',
    error: 'Cannot sign in',
  },
} as const;

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

function one(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function cookie(req: Request, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [key, ...rest] = part.trim().split('=');
    if (key === name) return rest.join('=');
  }
  return undefined;
}

/** A page of the platform's own: strict CSP with a nonce for its one style block, forms posting to itself only. */
function sendPage(res: Response, status: number, locale: 'zh' | 'en', body: string, formAction = "'self'"): void {
  const nonce = randomBytes(16).toString('base64');
  res.setHeader('Content-Security-Policy', `default-src 'none'; style-src 'nonce-${nonce}'; form-action ${formAction}; frame-ancestors 'none'; base-uri 'none'`);
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.status(status).send(`<!doctype html>
<html lang="${locale === 'zh' ? 'zh-CN' : 'en'}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${TEXT[locale].title}</title>
<style nonce="${nonce}">
body{margin:0;font-family:system-ui,"PingFang SC","Microsoft YaHei","Noto Sans CJK SC",sans-serif;background:#f1f3f5;color:#1a1b1e}
main{max-width:380px;margin:10vh auto;background:#fff;padding:32px;border-radius:8px;box-shadow:0 1px 4px rgba(0,0,0,.12)}
h1{font-size:1.3rem;margin:0 0 4px}p{margin:0 0 20px;color:#495057}
label{display:block;font-weight:600;margin:14px 0 6px}
input{box-sizing:border-box;width:100%;padding:10px 12px;font-size:1rem;border:1px solid #868e96;border-radius:4px}
input:focus,button:focus{outline:3px solid #1c7ed6;outline-offset:1px}
button{margin-top:22px;width:100%;padding:12px;font-size:1rem;font-weight:600;background:#1864ab;color:#fff;border:0;border-radius:4px;cursor:pointer}
.error{background:#fff5f5;border:1px solid #c92a2a;color:#8a1c1c;padding:10px;border-radius:4px;margin-bottom:8px}
small{display:block;margin-top:18px;color:#495057}
</style></head>
<body><main>${body}</main></body></html>`);
}

export function createAppLaunchRouter(security: PlatformSecurity, limiter: RateLimiter): express.Router {
  const router = express.Router();
  const fhirBase = `${security.options.publicBaseUrl}${security.options.fhirBasePath}`;

  /** Checks an authorization request (query of the GET, hidden fields of the POST). */
  async function check(params: Record<string, unknown>): Promise<AuthorizationRequest> {
    const locale = (one(params.ui_locales) ?? '').toLowerCase().startsWith('en') ? 'en' : 'zh';
    const app = (await security.tokens).app(one(params.client_id) ?? '');
    if (!app) {
      throw new PageError('Unknown client_id: this app is not configured with the platform');
    }
    const redirectUri = one(params.redirect_uri) ?? '';
    if (!app.redirectUris.includes(redirectUri)) {
      throw new PageError('redirect_uri is not one registered for this app');
    }
    const request = { app, redirectUri, state: one(params.state) ?? '', scope: '', codeChallenge: '', locale } satisfies AuthorizationRequest;
    if (one(params.response_type) !== 'code') {
      throw Object.assign(new RedirectError('unsupported_response_type', 'response_type must be code'), { request });
    }
    const problem = (message: string): never => {
      throw Object.assign(new RedirectError('invalid_request', message), { request });
    };
    if (request.state.length < 8 || request.state.length > 200) problem('state is required (8 to 200 characters)');
    if (one(params.aud) !== fhirBase) problem(`aud must be the FHIR base URL ${fhirBase}`);
    if (one(params.code_challenge_method) !== 'S256') problem('PKCE is required: code_challenge_method=S256');
    const challenge = one(params.code_challenge) ?? '';
    if (!CHALLENGE.test(challenge)) problem('code_challenge must be the base64url SHA-256 of the code verifier (43 characters)');
    const requested = (one(params.scope) ?? '').split(/\s+/).filter(Boolean);
    const granted = requested.filter((s) => CONTEXT_SCOPES.has(s) || (s.startsWith('user/') && !userScopePermissions(s).isEmpty));
    if (!granted.some((s) => s.startsWith('user/'))) {
      throw Object.assign(new RedirectError('invalid_scope', 'Ask for user/ scopes (user/*.cruds, user/Patient.rs …)'), { request });
    }
    return { ...request, scope: granted.join(' '), codeChallenge: challenge };
  }

  function redirectWith(res: Response, request: Pick<AuthorizationRequest, 'redirectUri' | 'state'>, params: Record<string, string>): void {
    const target = new URL(request.redirectUri);
    for (const [k, v] of Object.entries(params)) target.searchParams.set(k, v);
    if (request.state) target.searchParams.set('state', request.state);
    res.redirect(303, target.toString());
  }

  function failure(res: Response, err: unknown, locale: 'zh' | 'en'): void {
    if (err instanceof PageError) {
      sendPage(res, 400, locale, `<h1>${TEXT[locale].error}</h1><p class="error" role="alert">${escapeHtml(err.message)}</p>`);
      return;
    }
    if (err instanceof RedirectError) {
      redirectWith(res, (err as RedirectError & { request: AuthorizationRequest }).request, { error: err.code, error_description: err.message });
      return;
    }
    throw err;
  }

  function form(res: Response, request: AuthorizationRequest, params: Record<string, unknown>, message?: string, status = 200): void {
    const t = TEXT[request.locale];
    const csrf = randomBytes(24).toString('base64url');
    res.setHeader('Set-Cookie', `${CSRF_COOKIE}=${csrf}; Path=/auth; HttpOnly; SameSite=Strict; Max-Age=900${security.options.publicBaseUrl.startsWith('https://') ? '; Secure' : ''}`);
    const keep = ['response_type', 'client_id', 'redirect_uri', 'scope', 'state', 'aud', 'code_challenge', 'code_challenge_method', 'ui_locales'];
    const hidden = keep
      .filter((k) => one(params[k]) !== undefined)
      .map((k) => `<input type="hidden" name="${k}" value="${escapeHtml(one(params[k]) as string)}">`)
      .join('');
    sendPage(
      res,
      status,
      request.locale,
      `<h1>${t.heading}</h1><p>${escapeHtml(t.signInTo(request.app.clientName))}</p>
${message ? `<div class="error" role="alert">${escapeHtml(message)}</div>` : ''}
<form method="post" action="/auth/authorize">${hidden}<input type="hidden" name="csrf" value="${csrf}">
<label for="username">${t.username}</label><input id="username" name="username" autocomplete="username" required autofocus maxlength="64">
<label for="password">${t.password}</label><input id="password" name="password" type="password" autocomplete="current-password" required maxlength="256">
<button type="submit">${t.submit}</button></form><small>${t.notice}</small>`,
      `'self' ${new URL(request.redirectUri).origin}`,
    );
  }

  router.get('/auth/authorize', async (req: Request, res: Response) => {
    const params = Object.fromEntries(new URL(req.url, 'http://internal').searchParams);
    const locale = (params.ui_locales ?? '').startsWith('en') ? 'en' : 'zh';
    try {
      form(res, await check(params), params);
    } catch (err) {
      failure(res, err, locale);
    }
  });

  router.post('/auth/authorize', FORM, async (req: Request, res: Response) => {
    const params = (req.body ?? {}) as Record<string, unknown>;
    let request: AuthorizationRequest;
    try {
      request = await check(params);
    } catch (err) {
      failure(res, err, 'zh');
      return;
    }
    const t = TEXT[request.locale];
    const csrf = cookie(req, CSRF_COOKIE);
    if (!csrf || !sameHash(csrf, one(params.csrf) ?? '')) {
      form(res, request, params, t.expired, 400);
      return;
    }
    const address = addressOf(req);
    const wait = limiter.take(`signin:${address}`);
    if (wait > 0) {
      res.setHeader('Retry-After', String(wait));
      form(res, request, params, t.slowDown(wait), 429);
      return;
    }
    const username = one(params.username) ?? '';
    const user = await security.users.authenticate(username, one(params.password) ?? '');
    const agent: AuditAgent = { clientId: request.app.clientId, clientName: request.app.clientName, address, user: username.slice(0, 64).toLowerCase() };
    if (!user) {
      await security.recordAuthEvent(agent, 'login', 401, 'sign-in refused: wrong username or password, or the account is disabled or locked');
      form(res, request, params, t.failed, 401);
      return;
    }
    const sessionId = await security.users.startSession(user, request.app.clientId, request.scope);
    const code = randomBytes(32).toString('base64url');
    await security.options.db.query(
      `INSERT INTO auth_code (code_hash, session_id, client_id, redirect_uri, code_challenge, expires_at)
       VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))`,
      [sha256(code), sessionId, request.app.clientId, request.redirectUri, request.codeChallenge, CODE_LIFETIME_S],
    );
    await security.recordAuthEvent(userAgent(user, request.app, address), 'login', 200, `signed in to ${request.app.clientName}`);
    redirectWith(res, request, { code });
  });

  router.get('/auth/userinfo', async (req: Request, res: Response) => {
    try {
      const caller = await security.authenticate(req.headers.authorization);
      if (!caller.user) {
        res.status(403).json({ error: 'insufficient_scope', error_description: 'The token is not a signed-in user’s' });
        return;
      }
      res.json({
        sub: caller.user.id,
        preferred_username: caller.user.username,
        name: caller.user.name,
        role: caller.role,
        ...(caller.organization ? { organization: caller.organization } : {}),
        ...(caller.practitioner ? { fhirUser: caller.practitioner } : {}),
      });
    } catch {
      res.setHeader('WWW-Authenticate', 'Bearer realm="Huimin"');
      res.status(401).json({ error: 'invalid_token', error_description: 'A valid access token of a signed-in user is needed' });
    }
  });

  router.post('/auth/logout', async (req: Request, res: Response) => {
    try {
      const caller = await security.authenticate(req.headers.authorization);
      if (caller.user) {
        await security.users.end(caller.user.sessionId);
        await security.recordAuthEvent({ clientId: caller.clientId, clientName: caller.clientName, role: caller.role, organization: caller.organization, practitioner: caller.practitioner, user: caller.user.username, userName: caller.user.name, address: addressOf(req) }, 'logout', 200, 'signed out');
      }
      res.status(204).end();
    } catch {
      // A token that no longer works belongs to a session that has ended already.
      res.status(204).end();
    }
  });
  return router;
}

function userAgent(user: User, app: AppClient, address: string | undefined): AuditAgent {
  return { clientId: app.clientId, clientName: app.clientName, role: user.role, organization: user.organization, practitioner: user.practitioner, user: user.username, userName: user.displayName, address };
}

/**
 * The token endpoint's user grants: authorization_code (RFC 6749 §4.1.3 with PKCE, RFC 7636) and refresh_token
 * (§6, rotated on every use; a replayed code or refresh token ends the session, RFC 9700 §4.14).
 */
export async function userGrant(security: PlatformSecurity, form: URLSearchParams, address: string | undefined): Promise<Record<string, unknown>> {
  const tokens = await security.tokens;
  const app = tokens.app(form.get('client_id') ?? '');
  if (!app) {
    throw new OAuthError('invalid_client', 'Unknown client_id (public SMART apps send their client_id)');
  }
  let sessionId: string;
  let refreshToken: string | undefined;
  if (form.get('grant_type') === 'authorization_code') {
    const code = form.get('code') ?? '';
    const rows = await security.options.db.query<{ session_id: string; client_id: string; redirect_uri: string; code_challenge: string; fresh: boolean }>(
      `UPDATE auth_code SET used = true WHERE code_hash = $1 AND NOT used
       RETURNING session_id, client_id, redirect_uri, code_challenge, expires_at > now() AS fresh`,
      [sha256(code)],
    );
    const row = rows[0];
    if (!row) {
      const used = await security.options.db.query<{ session_id: string }>('SELECT session_id FROM auth_code WHERE code_hash = $1', [sha256(code)]);
      if (used[0]) {
        await security.users.end(used[0].session_id);
      }
      throw new OAuthError('invalid_grant', 'The authorization code is unknown or was used already');
    }
    if (!row.fresh || row.client_id !== app.clientId || row.redirect_uri !== form.get('redirect_uri')) {
      throw new OAuthError('invalid_grant', 'The authorization code expired, or was issued to another client or redirect_uri');
    }
    const verifier = form.get('code_verifier') ?? '';
    if (!VERIFIER.test(verifier) || !sameHash(createHash('sha256').update(verifier).digest('base64url'), row.code_challenge)) {
      await security.users.end(row.session_id);
      throw new OAuthError('invalid_grant', 'code_verifier does not match the code_challenge (PKCE)');
    }
    sessionId = row.session_id;
    refreshToken = undefined;
  } else {
    const [sid, secret] = (form.get('refresh_token') ?? '').split('.');
    if (!sid || !secret) {
      throw new OAuthError('invalid_grant', 'refresh_token is malformed');
    }
    sessionId = sid;
    refreshToken = secret;
  }
  const state = await security.users.session(sessionId);
  if (!state || state.clientId !== app.clientId) {
    throw new OAuthError('invalid_grant', 'The sign-in session ended (signed out, expired, or the account was disabled)');
  }
  const next = await security.users.rotateRefresh(sessionId, refreshToken);
  if (!next) {
    throw new OAuthError('invalid_grant', 'The refresh token was used already or the session ended: sign in again');
  }
  const issued = await tokens.issueForUser(state);
  await security.recordAuthEvent(userAgent(state.user, app, address), 'token', 200, `access token issued to ${state.user.username} (${form.get('grant_type')})`);
  return {
    ...issued,
    refresh_token: `${sessionId}.${next}`,
    // SMART App Launch: who the user is, for apps that do not ask for an id_token.
    ...(state.user.practitioner ? { fhirUser: state.user.practitioner } : {}),
  };
}
