/**
 * Signing in as a SMART App Launch standalone app: the authorization code grant with PKCE (S256) against the
 * platform's own authorization server, found through /fhir/.well-known/smart-configuration. Tokens live in
 * sessionStorage (gone when the tab closes); the access token is refreshed with the rotating refresh token when it
 * is about to expire or the API answers 401.
 */
export const CLIENT_ID = 'huimin-portal';
export const FHIR_BASE = `${window.location.origin}/fhir`;
const REDIRECT_URI = `${window.location.origin}/app/callback`;
const SCOPE = 'user/*.cruds online_access';
const STORE = 'huimin.session';
const PENDING = 'huimin.pending';

export type Role = 'clinician' | 'referral-coordinator' | 'supervisor' | 'admin';

export interface UserInfo {
  sub: string;
  preferred_username: string;
  name: string;
  role: Role;
  organization?: string;
  fhirUser?: string;
}

interface Session {
  accessToken: string;
  refreshToken: string;
  expiresAt: number;
  user: UserInfo;
}

interface SmartConfiguration {
  authorization_endpoint: string;
  token_endpoint: string;
  userinfo_endpoint: string;
  revocation_endpoint: string;
}

let configuration: Promise<SmartConfiguration> | undefined;
function smartConfiguration(): Promise<SmartConfiguration> {
  configuration ??= fetch(`${FHIR_BASE}/.well-known/smart-configuration`).then((r) => {
    if (!r.ok) throw new Error(`smart-configuration: HTTP ${r.status}`);
    return r.json() as Promise<SmartConfiguration>;
  });
  return configuration;
}

function base64url(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function random(n: number): string {
  return base64url(crypto.getRandomValues(new Uint8Array(n)));
}

/** Sends the browser to the sign-in form; `returnTo` is where the app goes after signing in. */
export async function signIn(locale: 'zh' | 'en', returnTo: string): Promise<void> {
  const config = await smartConfiguration();
  const verifier = random(48);
  const challenge = base64url(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))));
  const state = random(24);
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, returnTo }));
  const url = new URL(config.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: CLIENT_ID,
    redirect_uri: REDIRECT_URI,
    scope: SCOPE,
    state,
    aud: FHIR_BASE,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    ui_locales: locale === 'zh' ? 'zh-CN' : 'en',
  }).toString();
  window.location.assign(url.toString());
}

async function tokenRequest(form: Record<string, string>): Promise<{ access_token: string; refresh_token: string; expires_in: number }> {
  const config = await smartConfiguration();
  const res = await fetch(config.token_endpoint, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ client_id: CLIENT_ID, ...form }) });
  const body = (await res.json()) as { access_token: string; refresh_token: string; expires_in: number; error_description?: string };
  if (!res.ok) throw new Error(body.error_description ?? `token endpoint: HTTP ${res.status}`);
  return body;
}

async function store(tokens: { access_token: string; refresh_token: string; expires_in: number }): Promise<Session> {
  const config = await smartConfiguration();
  const res = await fetch(config.userinfo_endpoint, { headers: { Authorization: `Bearer ${tokens.access_token}` } });
  if (!res.ok) throw new Error(`userinfo: HTTP ${res.status}`);
  const session: Session = { accessToken: tokens.access_token, refreshToken: tokens.refresh_token, expiresAt: Date.now() + tokens.expires_in * 1000, user: (await res.json()) as UserInfo };
  sessionStorage.setItem(STORE, JSON.stringify(session));
  return session;
}

/** Completes the sign-in at /app/callback; returns where to go next. */
export async function completeSignIn(search: string): Promise<string> {
  const params = new URLSearchParams(search);
  const pending = JSON.parse(sessionStorage.getItem(PENDING) ?? 'null') as { verifier: string; state: string; returnTo: string } | null;
  sessionStorage.removeItem(PENDING);
  if (params.get('error')) throw new Error(params.get('error_description') ?? params.get('error') ?? 'sign-in failed');
  if (!pending || params.get('state') !== pending.state) throw new Error('The sign-in answer does not match this browser’s request (state); sign in again.');
  await store(await tokenRequest({ grant_type: 'authorization_code', code: params.get('code') ?? '', code_verifier: pending.verifier, redirect_uri: REDIRECT_URI }));
  return pending.returnTo;
}

export function currentSession(): Session | undefined {
  const raw = sessionStorage.getItem(STORE);
  return raw ? (JSON.parse(raw) as Session) : undefined;
}

let refreshing: Promise<Session | undefined> | undefined;

/** A fresh access token (refreshed when it expires within 30 s), or undefined when the session is over. */
export async function accessToken(forceRefresh = false): Promise<string | undefined> {
  const session = currentSession();
  if (!session) return undefined;
  if (!forceRefresh && session.expiresAt - Date.now() > 30_000) return session.accessToken;
  refreshing ??= tokenRequest({ grant_type: 'refresh_token', refresh_token: session.refreshToken })
    .then(store)
    .catch(() => {
      sessionStorage.removeItem(STORE);
      return undefined;
    })
    .finally(() => {
      refreshing = undefined;
    });
  return (await refreshing)?.accessToken;
}

export async function signOut(): Promise<void> {
  const session = currentSession();
  sessionStorage.removeItem(STORE);
  if (session) {
    const config = await smartConfiguration();
    await fetch(config.revocation_endpoint, { method: 'POST', headers: { Authorization: `Bearer ${session.accessToken}` } }).catch(() => undefined);
  }
}
