/**
 * The OAuth endpoints, outside the FHIR base (Express, see http/app.ts):
 *   POST /auth/token            client_credentials grant (SMART Backend Services)
 *   POST /auth/introspect       RFC 7662 token introspection, for other services
 *   POST /auth/register         RFC 7591 dynamic client registration (admin token)
 *   GET|PUT|DELETE /auth/register/{client_id}   RFC 7592 management: read, update (new name/scope/keys,
 *                               rotate the secret, disable or enable), delete (= disable: kept for the audit trail)
 *   GET  /auth/jwks             the public key that verifies the server's access tokens
 * Every call is audited; no secret, token or assertion is ever logged.
 */
import express, { type Request, type Response } from 'express';
import type { AuditAgent } from '../audit/audit-event';
import { userGrant } from './app-launch';
import { checkJwks, checkRegistration, clientMetadata, RegistrationError, type Client, type RegistrationInput } from './clients';
import type { RateLimiter } from './rate-limit';
import { generateSecret, hashSecret } from './secrets';
import type { PlatformSecurity } from './security';
import { addressOf } from './security';
import { OAuthError, type Caller } from './tokens';

const FORM = express.text({ type: 'application/x-www-form-urlencoded', limit: '16kb' });
const JSON_BODY = express.json({ limit: '64kb', type: ['application/json', 'application/*+json'] });

function oauthError(res: Response, status: number, error: string, description: string, headers: Record<string, string> = {}): void {
  for (const [name, value] of Object.entries(headers)) {
    res.setHeader(name, value);
  }
  res.status(status).json({ error, error_description: description });
}

export function createOAuthRouter(security: PlatformSecurity, tokenLimiter: RateLimiter): express.Router {
  const router = express.Router();
  const registrationUri = (clientId: string): string => `${security.options.publicBaseUrl}/auth/register/${encodeURIComponent(clientId)}`;

  router.get('/auth/jwks', async (_req, res) => {
    res.setHeader('Cache-Control', 'public, max-age=300');
    res.json((await security.tokens).jwks);
  });

  router.post('/auth/token', FORM, async (req: Request, res: Response) => {
    const address = addressOf(req);
    const wait = tokenLimiter.take(`token:${address}`);
    if (wait > 0) {
      oauthError(res, 429, 'slow_down', `Too many token requests; try again in ${wait} s`, { 'Retry-After': String(wait) });
      return;
    }
    const form = new URLSearchParams(typeof req.body === 'string' ? req.body : '');
    const agent: AuditAgent = { address };
    try {
      if (!req.is('application/x-www-form-urlencoded')) {
        throw new OAuthError('invalid_request', 'The token request is a form (Content-Type: application/x-www-form-urlencoded)');
      }
      const grantType = form.get('grant_type');
      if (grantType === 'authorization_code' || grantType === 'refresh_token') {
        // A signed-in user's app (SMART App Launch, app-launch.ts).
        const issued = await userGrant(security, form, address);
        res.setHeader('Pragma', 'no-cache');
        res.json(issued);
        return;
      }
      if (grantType !== 'client_credentials') {
        throw new OAuthError('unsupported_grant_type', 'grant_type must be client_credentials (SMART Backend Services), authorization_code or refresh_token (SMART App Launch)');
      }
      const tokens = await security.tokens;
      const client = await tokens.authenticateClient(form, req.headers.authorization);
      Object.assign(agent, { clientId: client.clientId, clientName: client.clientName, role: client.role, organization: client.organization });
      const issued = await tokens.issue(client, form.get('scope') ?? undefined, form.get('practitioner') ?? undefined);
      await security.recordAuthEvent({ ...agent, practitioner: client.practitioner ?? form.get('practitioner') ?? undefined }, 'token', 200, `access token issued, scope ${issued.scope}`);
      res.setHeader('Pragma', 'no-cache');
      res.json(issued);
    } catch (err) {
      if (err instanceof OAuthError) {
        await security.recordAuthEvent(agent, 'token', err.status, `${err.code}: ${err.message}`);
        oauthError(res, err.status, err.code, err.message, err.code === 'invalid_client' ? { 'WWW-Authenticate': 'Basic realm="Huimin"' } : {});
        return;
      }
      security.options.logger.error({ err }, 'token request failed');
      oauthError(res, 500, 'server_error', 'The token could not be issued');
    }
  });

  router.post('/auth/introspect', FORM, async (req: Request, res: Response) => {
    const form = new URLSearchParams(typeof req.body === 'string' ? req.body : '');
    try {
      // RFC 7662 §2.1: the caller authenticates, with a bearer token of its own or its client credentials.
      const authorization = req.headers.authorization ?? '';
      if (/^Bearer /i.test(authorization)) {
        await security.authenticate(authorization);
      } else {
        await (await security.tokens).authenticateClient(form, authorization);
      }
    } catch {
      oauthError(res, 401, 'invalid_client', 'Introspection needs the caller to authenticate (a bearer token or client credentials)', { 'WWW-Authenticate': 'Bearer realm="Huimin"' });
      return;
    }
    const token = form.get('token') ?? '';
    try {
      const caller = await security.authenticate(`Bearer ${token}`);
      res.json({
        active: true,
        client_id: caller.clientId,
        sub: caller.clientId,
        scope: caller.scope,
        token_type: 'Bearer',
        exp: Math.floor(caller.expiresAt / 1000),
        iss: `${security.options.publicBaseUrl}${security.options.fhirBasePath}`,
        aud: `${security.options.publicBaseUrl}${security.options.fhirBasePath}`,
        role: caller.role,
        ...(caller.organization ? { organization: caller.organization } : {}),
        ...(caller.practitioner ? { fhirUser: caller.practitioner } : {}),
      });
    } catch {
      res.json({ active: false });
    }
  });

  /** The administrator behind the request, or an answer (401/403) already sent. */
  async function administrator(req: Request, res: Response, what: string): Promise<Caller | undefined> {
    try {
      const caller = await security.authenticate(req.headers.authorization);
      if (caller.role !== 'admin') {
        await security.recordAuthEvent(agentOf(caller, req), what, 403, 'client registration needs an admin token');
        oauthError(res, 403, 'insufficient_scope', 'Client registration and management need an admin token');
        return undefined;
      }
      return caller;
    } catch {
      await security.recordAuthEvent({ address: addressOf(req) }, what, 401, 'no valid admin token');
      oauthError(res, 401, 'invalid_token', 'Client registration and management need an admin token', { 'WWW-Authenticate': 'Bearer realm="Huimin"' });
      return undefined;
    }
  }

  router.post('/auth/register', JSON_BODY, async (req: Request, res: Response) => {
    const admin = await administrator(req, res, 'register');
    if (!admin) return;
    try {
      const { client, secret } = await security.clients.register(req.body as RegistrationInput);
      await security.recordAuthEvent(agentOf(admin, req), 'register', 201, `registered client ${client.clientId} (${client.role}${client.organization ? `, ${client.organization}` : ''})`, client.organization ? [client.organization] : []);
      res.status(201).json({
        ...clientMetadata(client, registrationUri(client.clientId)),
        client_id_issued_at: Math.floor(Date.now() / 1000),
        ...(secret ? { client_secret: secret, client_secret_expires_at: 0 } : {}),
      });
    } catch (err) {
      await registrationFailure(err, admin, req, res, 'register');
    }
  });

  router.get('/auth/register/:clientId', async (req: Request, res: Response) => {
    const admin = await administrator(req, res, 'read-registration');
    if (!admin) return;
    const client = await security.clients.get(String(req.params.clientId), true);
    if (!client) {
      oauthError(res, 404, 'invalid_client_id', 'No such client');
      return;
    }
    await security.recordAuthEvent(agentOf(admin, req), 'read-registration', 200, `read client ${client.clientId}`);
    res.json(clientMetadata(client, registrationUri(client.clientId)));
  });

  router.put('/auth/register/:clientId', JSON_BODY, async (req: Request, res: Response) => {
    const admin = await administrator(req, res, 'update-registration');
    if (!admin) return;
    const clientId = String(req.params.clientId);
    try {
      const client = await security.clients.get(clientId, true);
      if (!client) {
        oauthError(res, 404, 'invalid_client_id', 'No such client');
        return;
      }
      const body = (req.body ?? {}) as RegistrationInput & { client_id?: unknown; rotate_secret?: unknown; disabled?: unknown };
      if (body.client_id !== undefined && body.client_id !== clientId) {
        throw new RegistrationError('invalid_client_metadata', 'client_id in the body differs from the one in the URL');
      }
      if ((body.role !== undefined && body.role !== client.role) || (body.organization !== undefined && body.organization !== client.organization)) {
        throw new RegistrationError('invalid_client_metadata', 'role and organization cannot be changed: register a new client (and disable this one)');
      }
      const change: Parameters<typeof security.clients.update>[1] = {};
      const done: string[] = [];
      let secret: string | undefined;
      if (body.client_name !== undefined) {
        change.clientName = checkRegistration({ ...currentInput(client), client_name: body.client_name }).clientName;
        done.push('renamed');
      }
      if (body.scope !== undefined) {
        change.scope = checkRegistration({ ...currentInput(client), scope: body.scope }).scope;
        done.push(`scope ${change.scope}`);
      }
      if (body.jwks !== undefined) {
        if (client.authMethod !== 'private_key_jwt') {
          throw new RegistrationError('invalid_client_metadata', 'This client authenticates with a secret; jwks does not apply');
        }
        change.jwks = checkJwks(body.jwks);
        done.push('keys replaced');
      }
      if (body.rotate_secret === true) {
        if (client.authMethod !== 'client_secret_basic') {
          throw new RegistrationError('invalid_client_metadata', 'This client authenticates with private_key_jwt; it has no secret to rotate');
        }
        secret = generateSecret();
        change.secretHash = await hashSecret(secret);
        done.push('secret rotated');
      }
      if (body.disabled !== undefined) {
        if (typeof body.disabled !== 'boolean') {
          throw new RegistrationError('invalid_client_metadata', 'disabled is true or false');
        }
        change.disabled = body.disabled;
        done.push(body.disabled ? 'disabled' : 'enabled');
      }
      const updated = (await security.clients.update(clientId, change)) as Client;
      await security.recordAuthEvent(agentOf(admin, req), 'update-registration', 200, `client ${clientId}: ${done.join(', ') || 'no change'}`);
      res.json({ ...clientMetadata(updated, registrationUri(clientId)), ...(secret ? { client_secret: secret, client_secret_expires_at: 0 } : {}) });
    } catch (err) {
      await registrationFailure(err, admin, req, res, 'update-registration');
    }
  });

  router.delete('/auth/register/:clientId', async (req: Request, res: Response) => {
    const admin = await administrator(req, res, 'delete-registration');
    if (!admin) return;
    const clientId = String(req.params.clientId);
    const updated = await security.clients.update(clientId, { disabled: true });
    if (!updated) {
      oauthError(res, 404, 'invalid_client_id', 'No such client');
      return;
    }
    await security.recordAuthEvent(agentOf(admin, req), 'delete-registration', 204, `client ${clientId} disabled (kept for the audit trail)`);
    res.status(204).end();
  });

  async function registrationFailure(err: unknown, admin: Caller, req: Request, res: Response, what: string): Promise<void> {
    if (err instanceof RegistrationError) {
      await security.recordAuthEvent(agentOf(admin, req), what, 400, err.message);
      oauthError(res, 400, err.code, err.message);
      return;
    }
    security.options.logger.error({ err }, `${what} failed`);
    oauthError(res, 500, 'server_error', 'The registration could not be processed');
  }

  // Bodies that are not JSON/forms, or too large, get an OAuth-style answer rather than Express's HTML page.
  router.use('/auth', (err: unknown, _req: Request, res: Response, next: (err?: unknown) => void) => {
    if (!err) {
      next();
      return;
    }
    const status = typeof (err as { status?: unknown }).status === 'number' ? (err as { status: number }).status : 400;
    oauthError(res, status === 413 ? 413 : 400, 'invalid_request', status === 413 ? 'The request body is too large' : 'The request body could not be read');
  });
  return router;
}

function agentOf(caller: Caller, req: Request): AuditAgent {
  return { clientId: caller.clientId, clientName: caller.clientName, role: caller.role, organization: caller.organization, address: addressOf(req) };
}

/** The client's current registration as input, so that one field can be re-checked with the rest unchanged. */
function currentInput(client: Client): RegistrationInput {
  return {
    client_name: client.clientName,
    role: client.role,
    organization: client.organization,
    practitioner: client.practitioner,
    scope: client.scope,
    token_endpoint_auth_method: client.authMethod,
    jwks: client.jwks,
  };
}
