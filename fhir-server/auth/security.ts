/**
 * The platform's security, as the HTTP layer sees it (HttpSecurity in http/app.ts): every FHIR request is
 * authenticated by its bearer token, rate-limited per client, runs under the caller's AccessPolicy, and is
 * audited before its answer is sent; every response carries security headers and, for allowed origins, CORS.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { OperationOutcome } from '@medplum/fhirtypes';
import express from 'express';
import type { Logger } from 'pino';
import { auditRecord, type AuditAgent } from '../audit/audit-event';
import { auditEntities } from '../audit/audit-entities';
import type { AuditIntent, AuditLog } from '../audit/audit-log';
import { readAuditEvent, searchAuditEvents } from '../audit/audit-search';
import type { Database } from '../db';
import { FhirError, issue, outcome } from '../errors';
import type { HttpSecurity } from '../http/app';
import type { SecuredExchange } from '../http/fhir-handler';
import type { CallerIdentity, RepositoryAccess } from '../repository';
import type { FhirRequest, FhirResponse, RouteContext } from '../rest';
import { AccessPolicy, classify, identityOf, type Interaction } from './access-policy';
import { accessOfIdentity } from './caller-rights';
import { ClientStore } from './clients';
import { createAppLaunchRouter } from './app-launch';
import { createOAuthRouter } from './oauth-routes';
import { RateLimiter } from './rate-limit';
import type { SigningKey } from './signing-key';
import { TokenError, TokenService, type AppClient, type Caller } from './tokens';
import { createUserRouter } from './user-routes';
import { UserStore } from './users';

export interface SecurityOptions {
  db: Database;
  logger: Logger;
  /** e.g. http://127.0.0.1:8080 */
  publicBaseUrl: string;
  /** e.g. /fhir */
  fhirBasePath: string;
  accessTokenLifetimeS: number;
  /** Origins allowed to call from a browser (CORS); empty: none. */
  corsOrigins: readonly string[];
  /** Requests per second per client and process (0: unlimited). */
  rateLimitPerClient: number;
  /** Token requests per second per network address and process (0: unlimited). */
  rateLimitTokenEndpoint: number;
  signingKey: Promise<SigningKey>;
  audit: AuditLog;
  /** SMART apps whose users sign in (authorization code + PKCE), e.g. the portal. */
  apps?: readonly AppClient[];
  /** A user's sign-in session ends after this long unused … */
  sessionIdleS?: number;
  /** … and this long after sign-in in any case. */
  sessionMaxS?: number;
}

const BREAK_GLASS_HEADER = 'x-break-the-glass';
const CORS_ALLOWED_HEADERS = 'Authorization, Content-Type, Accept, If-Match, If-None-Match, If-None-Exist, If-Modified-Since, Prefer, X-Request-Id, X-Break-The-Glass';
const CORS_EXPOSED_HEADERS = 'Location, Content-Location, ETag, Last-Modified, X-Request-Id, WWW-Authenticate, Retry-After, X-Progress, Expires';

/** The v3 ActReason purpose of use recorded for a caller's requests. */
function purposeOf(caller: Caller | undefined, breakGlass: string | undefined): string {
  if (breakGlass) return 'BTG';
  switch (caller?.role) {
    case 'clinician':
      return 'TREAT';
    case 'admin':
      return 'HSYSADMIN';
    default:
      return 'HOPERAT';
  }
}

const ACTIONS: Record<string, 'C' | 'R' | 'U' | 'D' | 'E'> = {
  create: 'C',
  update: 'U',
  patch: 'U',
  delete: 'D',
  read: 'R',
  vread: 'R',
  'history-instance': 'R',
  'history-type': 'R',
  'history-system': 'R',
  capabilities: 'R',
};

export function addressOf(req: IncomingMessage): string | undefined {
  return req.socket?.remoteAddress ?? undefined;
}

export class PlatformSecurity implements HttpSecurity {
  readonly clients: ClientStore;
  readonly users: UserStore;
  readonly tokens: Promise<TokenService>;
  readonly router: express.Router;
  private readonly baseUrl: string;
  private readonly smartConfigurationPath: string;
  private readonly metadataPath: string;
  private readonly clientLimiter: RateLimiter;
  private readonly hsts: boolean;

  constructor(readonly options: SecurityOptions) {
    this.baseUrl = `${options.publicBaseUrl}${options.fhirBasePath}`;
    this.smartConfigurationPath = `${options.fhirBasePath}/.well-known/smart-configuration`;
    this.metadataPath = `${options.fhirBasePath}/metadata`;
    this.clients = new ClientStore(options.db);
    this.users = new UserStore(options.db, { idleS: options.sessionIdleS ?? 1800, maxS: options.sessionMaxS ?? 12 * 3600 });
    this.tokens = options.signingKey.then(
      (key) =>
        new TokenService(
          options.db,
          this.clients,
          key,
          {
            baseUrl: this.baseUrl,
            tokenUrl: `${options.publicBaseUrl}/auth/token`,
            accessTokenLifetimeS: options.accessTokenLifetimeS,
          },
          this.users,
          options.apps ?? [],
        ),
    );
    // A failure to load the key is reported by every request that needs it; this keeps it from being unhandled.
    this.tokens.catch((err: unknown) => options.logger.error({ err }, 'the token signing key could not be loaded'));
    this.clientLimiter = new RateLimiter(options.rateLimitPerClient);
    this.hsts = options.publicBaseUrl.startsWith('https://');
    const tokenLimiter = new RateLimiter(options.rateLimitTokenEndpoint, Math.max(1, options.rateLimitTokenEndpoint * 5));
    this.router = express.Router();
    this.router.use(createOAuthRouter(this, tokenLimiter), createAppLaunchRouter(this, tokenLimiter), createUserRouter(this));
  }

  /**
   * What an identity recorded earlier (a subscription's owner) may see and do now, for work done on its behalf
   * (see caller-rights.ts): its repository hooks, undefined when unrestricted, false when it may no longer act.
   */
  accessOf(identity: CallerIdentity): Promise<RepositoryAccess | undefined | false> {
    return accessOfIdentity(identity, this.clients, this.users);
  }

  /** The SMART configuration (SMART App Launch 2.x, "Conformance"): where and how to get a token. */
  smartConfiguration(): Record<string, unknown> {
    const auth = `${this.options.publicBaseUrl}/auth`;
    return {
      issuer: this.baseUrl,
      jwks_uri: `${auth}/jwks`,
      token_endpoint: `${auth}/token`,
      authorization_endpoint: `${auth}/authorize`,
      userinfo_endpoint: `${auth}/userinfo`,
      revocation_endpoint: `${auth}/logout`,
      token_endpoint_auth_methods_supported: ['private_key_jwt', 'client_secret_basic', 'none'],
      token_endpoint_auth_signing_alg_values_supported: ['RS384', 'ES384'],
      grant_types_supported: ['client_credentials', 'authorization_code', 'refresh_token'],
      registration_endpoint: `${auth}/register`,
      management_endpoint: `${auth}/register`,
      introspection_endpoint: `${auth}/introspect`,
      scopes_supported: ['system/*.cruds', 'system/*.rs', 'system/*.read', 'system/*.write', 'system/*.*', 'user/*.cruds', 'user/*.rs', 'online_access', 'offline_access'],
      response_types_supported: ['code'],
      capabilities: [
        'launch-standalone',
        'client-public',
        'client-confidential-asymmetric',
        'client-confidential-symmetric',
        'permission-v1',
        'permission-v2',
        'permission-user',
        'permission-offline',
        'permission-online',
      ],
      code_challenge_methods_supported: ['S256'],
    };
  }

  protect(req: IncomingMessage, res: ServerResponse): boolean {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('Content-Security-Policy', "default-src 'none'; frame-ancestors 'none'");
    res.setHeader('Referrer-Policy', 'no-referrer');
    // Health records are not to be kept by browsers or intermediaries.
    res.setHeader('Cache-Control', 'no-store');
    if (this.hsts) {
      res.setHeader('Strict-Transport-Security', 'max-age=31536000; includeSubDomains');
    }
    const origin = req.headers.origin;
    if (origin === undefined) {
      return false;
    }
    const allowed = this.options.corsOrigins.includes(origin);
    if (allowed) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Vary', 'Origin');
      res.setHeader('Access-Control-Expose-Headers', CORS_EXPOSED_HEADERS);
    }
    if (req.method === 'OPTIONS' && req.headers['access-control-request-method']) {
      if (allowed) {
        res.setHeader('Access-Control-Allow-Methods', 'GET, HEAD, POST, PUT, PATCH, DELETE');
        res.setHeader('Access-Control-Allow-Headers', CORS_ALLOWED_HEADERS);
        res.setHeader('Access-Control-Max-Age', '600');
        res.statusCode = 204;
        res.end();
      } else {
        res.statusCode = 403;
        res.setHeader('Content-Type', 'application/fhir+json');
        res.end(JSON.stringify(outcome([issue('error', 'forbidden', `Origin ${origin} is not allowed (CORS_ALLOWED_ORIGINS)`)])));
      }
      return true;
    }
    return false;
  }

  servePublic(req: IncomingMessage, res: ServerResponse): boolean {
    const path = (req.url ?? '').split('?')[0];
    if (path !== this.smartConfigurationPath || (req.method !== 'GET' && req.method !== 'HEAD')) {
      return false;
    }
    res.statusCode = 200;
    res.setHeader('Content-Type', 'application/json');
    res.setHeader('Cache-Control', 'public, max-age=3600');
    res.end(req.method === 'HEAD' ? undefined : JSON.stringify(this.smartConfiguration()));
    return true;
  }

  /** The caller behind a request's bearer token; 401 (with WWW-Authenticate) when there is none or it is bad. */
  async authenticate(authorization: string | undefined): Promise<Caller> {
    const realm = 'realm="Huimin FHIR"';
    if (!authorization) {
      throw new FhirError(401, outcome([issue('error', 'login', 'An access token is required: get one at the token endpoint that /.well-known/smart-configuration names, and send it as "Authorization: Bearer <token>"')]), {
        'WWW-Authenticate': `Bearer ${realm}`,
      });
    }
    const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i.exec(authorization);
    if (!match) {
      throw new FhirError(401, outcome([issue('error', 'login', 'The Authorization header must be "Bearer <access token>"')]), {
        'WWW-Authenticate': `Bearer ${realm}, error="invalid_request", error_description="expected a Bearer token"`,
      });
    }
    try {
      return await (await this.tokens).verify(match[1]);
    } catch (err) {
      if (err instanceof TokenError) {
        throw new FhirError(401, outcome([issue('error', 'login', err.message)]), {
          'WWW-Authenticate': `Bearer ${realm}, error="${err.code}", error_description="${err.message.replace(/"/g, "'")}"`,
        });
      }
      throw err;
    }
  }

  async begin(req: IncomingMessage, requestId: string, ctx: RouteContext): Promise<SecuredExchange> {
    const address = addressOf(req);
    const authorization = req.headers.authorization;
    // The capability statement is public (clients read it before they have a token).
    const path = (req.url ?? '').split('?')[0];
    if (!authorization && path === this.metadataPath && (req.method === 'GET' || req.method === 'HEAD')) {
      return { ctx, finish: (request, status, response, failure) => this.record({ address }, undefined, request, status, response, failure, requestId) };
    }
    let caller: Caller;
    try {
      caller = await this.authenticate(authorization);
    } catch (err) {
      if (err instanceof FhirError) {
        await this.recordFailure({ address }, req, err.status, err.outcome, requestId);
      }
      throw err;
    }
    const agent: AuditAgent = {
      clientId: caller.clientId,
      clientName: caller.clientName,
      role: caller.role,
      organization: caller.organization,
      practitioner: caller.practitioner,
      user: caller.user?.username,
      userName: caller.user?.name,
      address,
    };
    const wait = this.clientLimiter.take(caller.clientId);
    if (wait > 0) {
      const err = new FhirError(429, outcome([issue('error', 'throttled', `Too many requests from client ${caller.clientId}; try again in ${wait} s`)]), { 'Retry-After': String(wait) });
      await this.recordFailure(agent, req, 429, err.outcome, requestId);
      throw err;
    }
    let breakGlass: string | undefined;
    try {
      breakGlass = breakGlassReason(req.headers[BREAK_GLASS_HEADER]);
    } catch (err) {
      await this.recordFailure(agent, req, 400, (err as FhirError).outcome, requestId);
      throw err;
    }
    const policy = new AccessPolicy(caller, {
      breakGlassReason: breakGlass,
      auditReader: (routeCtx, request, interaction) => this.readAudit(routeCtx, request, interaction),
    });
    const secured: RouteContext = { ...ctx, repo: ctx.repo.withAccess(policy.repositoryAccess()), guard: policy, caller: identityOf(caller) };
    // A request that may change data leaves a trace before it runs, in case the process dies before its record.
    const intent = req.method === 'GET' || req.method === 'HEAD' ? undefined : await this.intend(agent, policy, req, requestId);
    return {
      ctx: secured,
      finish: (request, status, response, failure) => this.record(agent, policy, request, status, response, failure, requestId, intent),
    };
  }

  private async readAudit(ctx: RouteContext, request: FhirRequest, interaction: Interaction): Promise<FhirResponse> {
    // What this process recorded a moment ago is in the answer (events of other processes follow within milliseconds).
    await this.options.audit.flushed();
    if (interaction.name === 'read' && interaction.id) {
      return readAuditEvent(this.options.db, ctx, interaction.id);
    }
    if (interaction.name === 'search-type' && request.path.split('/').filter(Boolean)[0] === 'AuditEvent') {
      return searchAuditEvents(this.options.db, ctx, request);
    }
    throw new FhirError(400, outcome([issue('error', 'not-supported', `AuditEvent supports read and search only (${interaction.name} is not supported)`)]));
  }

  private intend(agent: AuditAgent, policy: AccessPolicy, req: IncomingMessage, requestId: string): Promise<AuditIntent> {
    const request = this.requestLine(req);
    const interaction = classify(request, () => false);
    return this.options.audit.intend(
      auditRecord({
        agent,
        interaction: interaction.name === 'operation' ? `operation:$${interaction.operation}` : interaction.name,
        action: ACTIONS[interaction.name] ?? 'E',
        status: 0,
        description: 'the request started, but the process stopped before it finished: its outcome is unknown',
        entities: auditEntities(request, undefined),
        query: request.query.size > 0 ? request.query.toString() : undefined,
        purposeOfUse: purposeOf(policy.caller, policy.breakGlassReason),
        breakGlassReason: policy.breakGlassReason,
        requestId,
      }),
    );
  }

  /** The method, path and query of an HTTP request, as a FhirRequest without body or headers. */
  private requestLine(req: IncomingMessage): FhirRequest {
    const url = new URL(req.url ?? '/', 'http://internal');
    const path = url.pathname.slice(this.options.fhirBasePath.length).replace(/^\/+/, '');
    return { method: (req.method ?? 'GET') as FhirRequest['method'], path, query: url.searchParams, headers: {} };
  }

  /** Audits a request refused before it reached the router (bad token, rate limit). */
  private async recordFailure(agent: AuditAgent, req: IncomingMessage, status: number, failure: OperationOutcome, requestId: string): Promise<void> {
    await this.record(agent, undefined, this.requestLine(req), status, undefined, failure, requestId).catch((err: unknown) => {
      this.options.logger.error({ err, requestId }, 'the audit event of a refused request could not be recorded');
    });
  }

  private async record(
    agent: AuditAgent,
    policy: AccessPolicy | undefined,
    request: FhirRequest | undefined,
    status: number,
    response: FhirResponse | undefined,
    failure: OperationOutcome | undefined,
    requestId: string,
    intent?: AuditIntent,
  ): Promise<void> {
    let interaction: Interaction = policy?.seen[0] ?? (request ? classify(request, () => false) : { name: 'unknown' });
    if (interaction.name === 'batch' && request?.body && typeof request.body === 'object') {
      interaction = { ...interaction, name: (request.body as { type?: string }).type === 'transaction' ? 'transaction' : 'batch' };
    }
    const breakGlass = policy?.breakGlassReason;
    const record = auditRecord({
      agent,
      interaction: interaction.name === 'operation' ? `operation:$${interaction.operation}` : interaction.name,
      action: ACTIONS[interaction.name] ?? 'E',
      status,
      description: failure?.issue?.[0]?.diagnostics,
      entities: auditEntities(request, response),
      query: request && request.query.size > 0 ? request.query.toString() : undefined,
      purposeOfUse: purposeOf(policy?.caller, breakGlass),
      breakGlassReason: breakGlass,
      requestId,
      intent: intent?.id,
    });
    await this.options.audit.append(record, intent);
  }

  /** Audits a call to the OAuth endpoints (token requests, registration). */
  async recordAuthEvent(agent: AuditAgent, interaction: string, status: number, description: string | undefined, entities: string[] = []): Promise<void> {
    await this.options.audit.append(
      auditRecord({ agent, interaction, action: 'E', status, description, entities, purposeOfUse: 'HSYSADMIN' }),
    );
  }
}

function breakGlassReason(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header.join(' ') : header;
  if (value === undefined) {
    return undefined;
  }
  let reason = value.trim();
  // Header values are Latin-1: a reason in Chinese comes percent-encoded UTF-8 (as browsers must send it).
  if (/%[0-9A-Fa-f]{2}/.test(reason)) {
    try {
      reason = decodeURIComponent(reason).trim();
    } catch {
      // Not percent-encoding after all: kept as sent.
    }
  }
  if (reason.length === 0 || reason.length > 500 || /[\u0000-\u001f]/.test(reason)) {
    throw new FhirError(400, outcome([issue('error', 'invalid', 'X-Break-The-Glass carries the reason for the emergency access, 1 to 500 characters')]));
  }
  return reason;
}
