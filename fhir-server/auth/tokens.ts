/**
 * Access tokens: short-lived JWTs signed by the server's key (see signing-key.ts), issued to clients that proved
 * who they are with `client_secret_basic` or a `private_key_jwt` client assertion (SMART Backend Services), and
 * verified on every request. Verified tokens are remembered until they expire, so the per-request cost of a token
 * seen before is a map lookup; the client's record is looked up too (cached a few seconds), so that disabling a
 * client stops its tokens on every worker within seconds.
 */
import { randomUUID } from 'node:crypto';
import { createLocalJWKSet, errors, jwtVerify, SignJWT, type JWTPayload } from 'jose';
import type { Database } from '../db';
import { CLIENT_ASSERTION_ALGORITHMS, type Client, type ClientStore } from './clients';
import type { Role } from './roles';
import { Permissions } from './scopes';
import { verifySecret } from './secrets';
import { TOKEN_ALGORITHM, type SigningKey } from './signing-key';
import type { SessionState, UserStore } from './users';

export const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** SMART: a client assertion expires no more than five minutes after it is made. */
const MAX_ASSERTION_LIFETIME_S = 300;
const PRACTITIONER_REF = /^Practitioner\/[A-Za-z0-9\-.]{1,64}$/;

/** Who is calling, as established from a verified access token and the client's current record. */
export interface Caller {
  clientId: string;
  clientName: string;
  role: Role;
  organization?: string;
  /** The person behind a clinician's call ('Practitioner/123'), so that audit names a person. */
  practitioner?: string;
  permissions: Permissions;
  scope: string;
  tokenId: string;
  expiresAt: number;
  /** The person signed in through a SMART app (app-launch.ts); role and organisation are then theirs. */
  user?: { id: string; username: string; name: string; sessionId: string };
}

/** A SMART app whose users sign in (authorization code + PKCE): a public client, configured, not registered. */
export interface AppClient {
  clientId: string;
  clientName: string;
  /** Exact redirect URIs (no wildcards, RFC 9700). */
  redirectUris: readonly string[];
}

/**
 * The permissions of `user/` scopes (SMART App Launch): the same letters as `system/` ones; what the person may do
 * is then bounded by their role, like a client's.
 */
export function userScopePermissions(scope: string): Permissions {
  const user = scope.split(/\s+/).filter((s) => s.startsWith('user/')).map((s) => `system/${s.slice(5)}`);
  return Permissions.parse(user.join(' ')).permissions;
}

/** An OAuth error at the token endpoint (RFC 6749 §5.2). */
export class OAuthError extends Error {
  constructor(
    readonly code: 'invalid_request' | 'invalid_client' | 'invalid_grant' | 'unauthorized_client' | 'unsupported_grant_type' | 'invalid_scope',
    message: string,
    readonly status = code === 'invalid_client' ? 401 : 400,
  ) {
    super(message);
  }
}

/** Why a bearer token was refused (RFC 6750 error codes); the message goes into WWW-Authenticate. */
export class TokenError extends Error {
  constructor(
    readonly code: 'invalid_request' | 'invalid_token',
    message: string,
  ) {
    super(message);
  }
}

export interface TokenServiceOptions {
  /** The FHIR base URL: issuer and audience of the tokens. */
  baseUrl: string;
  /** The token endpoint's URL: the audience of client assertions. */
  tokenUrl: string;
  accessTokenLifetimeS: number;
}

interface AccessClaims extends JWTPayload {
  client_id: string;
  scope: string;
  role: Role;
  organization?: string;
  fhirUser?: string;
  /** The sign-in session of a user token. */
  sid?: string;
}

export class TokenService {
  /** Tokens verified before, with the permissions computed for the client's scope at the time. */
  private readonly verified = new Map<string, { claims: AccessClaims; until: number; clientScope?: string; permissions?: Permissions }>();

  constructor(
    private readonly db: Database,
    private readonly clients: ClientStore,
    private readonly key: SigningKey,
    readonly options: TokenServiceOptions,
    private readonly users?: UserStore,
    private readonly apps: readonly AppClient[] = [],
  ) {}

  /** The SMART app with this client id, if one is configured. */
  app(clientId: string): AppClient | undefined {
    return this.apps.find((a) => a.clientId === clientId);
  }

  /** An access token for a signed-in user of an app: the user's role, organisation and practitioner, and the session. */
  async issueForUser(state: SessionState, lifetimeS = this.options.accessTokenLifetimeS): Promise<{ access_token: string; token_type: 'bearer'; expires_in: number; scope: string }> {
    const { user } = state;
    const claims: AccessClaims = {
      client_id: state.clientId,
      scope: state.scope,
      role: user.role,
      sid: state.sessionId,
      ...(user.organization ? { organization: user.organization } : {}),
      ...(user.practitioner ? { fhirUser: user.practitioner } : {}),
    };
    const accessToken = await new SignJWT(claims)
      .setProtectedHeader({ alg: TOKEN_ALGORITHM, kid: this.key.kid, typ: 'at+jwt' })
      .setIssuer(this.options.baseUrl)
      .setAudience(this.options.baseUrl)
      .setSubject(user.userId)
      .setJti(randomUUID())
      .setIssuedAt()
      .setExpirationTime(`${lifetimeS}s`)
      .sign(this.key.privateKey);
    return { access_token: accessToken, token_type: 'bearer', expires_in: lifetimeS, scope: state.scope };
  }

  /** The public key set, for anyone who verifies the server's tokens themselves. */
  get jwks(): { keys: object[] } {
    return { keys: [this.key.publicJwk] };
  }

  /**
   * Signs an access token for `client`, with the scopes asked for that the client is registered for (all of them
   * when none are asked for).
   */
  async issue(client: Client, requestedScope: string | undefined, practitioner?: string, lifetimeS = this.options.accessTokenLifetimeS): Promise<{ access_token: string; token_type: 'bearer'; expires_in: number; scope: string }> {
    const registered = Permissions.parse(client.scope).permissions;
    let granted = registered;
    if (requestedScope !== undefined && requestedScope.trim() !== '') {
      granted = registered.intersect(Permissions.parse(requestedScope).permissions);
      if (granted.isEmpty) {
        throw new OAuthError('invalid_scope', `None of the requested scopes can be granted to this client (registered for: ${client.scope})`);
      }
    }
    const fhirUser = client.practitioner ?? practitioner;
    if (practitioner !== undefined) {
      if (client.role !== 'clinician' || !PRACTITIONER_REF.test(practitioner)) {
        throw new OAuthError('invalid_request', 'practitioner ("Practitioner/123") may be given by clinician clients only');
      }
      if (client.practitioner && client.practitioner !== practitioner) {
        throw new OAuthError('invalid_request', 'This client is registered for one practitioner; it cannot act for another');
      }
    }
    if (client.role === 'clinician' && !fhirUser) {
      throw new OAuthError('invalid_request', 'A clinician token names the practitioner it acts for: add practitioner=Practitioner/{id} to the token request');
    }
    const scope = granted.toString();
    const claims: AccessClaims = {
      client_id: client.clientId,
      scope,
      role: client.role,
      ...(client.organization ? { organization: client.organization } : {}),
      ...(fhirUser ? { fhirUser } : {}),
    };
    const accessToken = await new SignJWT(claims)
      .setProtectedHeader({ alg: TOKEN_ALGORITHM, kid: this.key.kid, typ: 'at+jwt' })
      .setIssuer(this.options.baseUrl)
      .setAudience(this.options.baseUrl)
      .setSubject(client.clientId)
      .setJti(randomUUID())
      .setIssuedAt()
      .setExpirationTime(`${lifetimeS}s`)
      .sign(this.key.privateKey);
    return { access_token: accessToken, token_type: 'bearer', expires_in: lifetimeS, scope };
  }

  /** The caller behind a bearer token, or a TokenError that says why the token is refused. */
  async verify(token: string): Promise<Caller> {
    const now = Date.now();
    let entry = this.verified.get(token);
    if (!entry || entry.until <= now) {
      this.verified.delete(token);
      const claims = await this.verifyJwt(token);
      entry = { claims, until: (claims.exp as number) * 1000 };
      if (this.verified.size >= 50_000) {
        this.verified.clear();
      }
      this.verified.set(token, entry);
    }
    const { claims } = entry;
    if (claims.sid !== undefined) {
      return this.verifyUser(claims, entry);
    }
    const client = await this.clients.get(claims.client_id);
    if (!client || client.disabled) {
      throw new TokenError('invalid_token', 'The client of this token is disabled or no longer registered');
    }
    if (entry.clientScope !== client.scope || !entry.permissions) {
      // A token never grants more than the client's current registration (its scope may have been narrowed since).
      entry.permissions = Permissions.parse(client.scope).permissions.intersect(Permissions.parse(claims.scope).permissions);
      entry.clientScope = client.scope;
    }
    return {
      clientId: client.clientId,
      clientName: client.clientName,
      // The client's current role and organisation: a change applies at once, not when old tokens expire.
      role: client.role,
      organization: client.organization,
      practitioner: claims.fhirUser,
      permissions: entry.permissions,
      scope: claims.scope,
      tokenId: String(claims.jti),
      expiresAt: entry.until,
    };
  }

  /** A user token: valid while its session lives; the user's current role and organisation apply. */
  private async verifyUser(claims: AccessClaims, entry: { until: number; permissions?: Permissions }): Promise<Caller> {
    const app = this.app(claims.client_id);
    const state = app && this.users ? await this.users.session(String(claims.sid)) : undefined;
    if (!app || !state || state.user.userId !== claims.sub) {
      throw new TokenError('invalid_token', 'The sign-in session of this token ended (signed out, expired, or the account was disabled)');
    }
    entry.permissions ??= userScopePermissions(claims.scope);
    const { user } = state;
    return {
      clientId: app.clientId,
      clientName: app.clientName,
      role: user.role,
      organization: user.organization,
      practitioner: user.practitioner,
      permissions: entry.permissions,
      scope: claims.scope,
      tokenId: String(claims.jti),
      expiresAt: entry.until,
      user: { id: user.userId, username: user.username, name: user.displayName, sessionId: state.sessionId },
    };
  }

  private async verifyJwt(token: string): Promise<AccessClaims> {
    if (token.length > 8192) {
      throw new TokenError('invalid_token', 'The access token is too long');
    }
    try {
      const { payload } = await jwtVerify<AccessClaims>(token, this.key.publicKey, {
        algorithms: [TOKEN_ALGORITHM],
        issuer: this.options.baseUrl,
        audience: this.options.baseUrl,
        requiredClaims: ['exp', 'iat', 'jti', 'sub'],
      });
      if (typeof payload.client_id !== 'string' || typeof payload.scope !== 'string') {
        throw new TokenError('invalid_token', 'The access token lacks client_id or scope');
      }
      return payload;
    } catch (err) {
      if (err instanceof TokenError) {
        throw err;
      }
      if (err instanceof errors.JWTExpired) {
        throw new TokenError('invalid_token', 'The access token expired');
      }
      if (err instanceof errors.JWTClaimValidationFailed) {
        throw new TokenError('invalid_token', `The access token is not for this server (${err.claim} claim)`);
      }
      throw new TokenError('invalid_token', 'The access token is malformed or its signature does not verify');
    }
  }

  /**
   * The client a token request authenticates (RFC 6749 §2.3): HTTP Basic with the client secret, or a SMART
   * client assertion (`private_key_jwt`) signed with a key of the client's registered JWK Set.
   */
  async authenticateClient(form: URLSearchParams, authorization: string | undefined): Promise<Client> {
    const assertionType = form.get('client_assertion_type');
    if (authorization?.startsWith('Basic ')) {
      return this.basic(authorization.slice(6));
    }
    if (assertionType === CLIENT_ASSERTION_TYPE) {
      return this.assertion(form.get('client_assertion') ?? '');
    }
    if (assertionType) {
      throw new OAuthError('invalid_request', `client_assertion_type must be ${CLIENT_ASSERTION_TYPE}`);
    }
    throw new OAuthError('invalid_client', 'Authenticate the client with HTTP Basic (client_secret_basic) or a client assertion (private_key_jwt)');
  }

  private async basic(encoded: string): Promise<Client> {
    const decoded = Buffer.from(encoded, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    let clientId: string;
    let secret: string;
    try {
      // RFC 6749 §2.3.1: both parts are form-urlencoded before they are joined.
      clientId = decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' '));
      secret = decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, ' '));
    } catch {
      throw new OAuthError('invalid_client', 'The Basic credentials are not valid form-urlencoding');
    }
    const client = colon > 0 && clientId.length <= 200 ? await this.clients.get(clientId, true) : undefined;
    // The same answer whatever failed, so that client ids cannot be probed.
    if (!client || client.authMethod !== 'client_secret_basic' || !(await verifySecret(secret, client.secretHash))) {
      throw new OAuthError('invalid_client', 'Client authentication failed');
    }
    if (client.disabled) {
      throw new OAuthError('invalid_client', 'Client authentication failed');
    }
    return client;
  }

  private async assertion(jwt: string): Promise<Client> {
    let clientId: string | undefined;
    try {
      const [, payload] = jwt.split('.');
      clientId = (JSON.parse(Buffer.from(payload ?? '', 'base64url').toString('utf8')) as JWTPayload).iss;
    } catch {
      throw new OAuthError('invalid_client', 'client_assertion is not a JWT');
    }
    const client = typeof clientId === 'string' && clientId.length <= 200 ? await this.clients.get(clientId, true) : undefined;
    if (!client || client.disabled || client.authMethod !== 'private_key_jwt' || !client.jwks) {
      throw new OAuthError('invalid_client', 'Client authentication failed');
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(jwt, createLocalJWKSet(client.jwks), {
        algorithms: CLIENT_ASSERTION_ALGORITHMS,
        issuer: client.clientId,
        subject: client.clientId,
        audience: this.options.tokenUrl,
        requiredClaims: ['exp', 'jti'],
      }));
    } catch {
      throw new OAuthError('invalid_client', 'Client authentication failed: the client assertion does not verify (signature, iss, sub, aud or exp)');
    }
    const exp = payload.exp as number;
    if (exp - Math.floor(Date.now() / 1000) > MAX_ASSERTION_LIFETIME_S) {
      throw new OAuthError('invalid_client', 'The client assertion must expire within five minutes');
    }
    // A jti is accepted once (until the assertion expires): a captured assertion cannot be replayed.
    await this.db.query('DELETE FROM auth_assertion_jti WHERE expires_at < now()');
    const inserted = await this.db.query(
      `INSERT INTO auth_assertion_jti (client_id, jti, expires_at) VALUES ($1, $2, to_timestamp($3))
       ON CONFLICT DO NOTHING RETURNING jti`,
      [client.clientId, String(payload.jti).slice(0, 200), exp],
    );
    if (inserted.length === 0) {
      throw new OAuthError('invalid_client', 'This client assertion (jti) was used already');
    }
    return client;
  }
}
