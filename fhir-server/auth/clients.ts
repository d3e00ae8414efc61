/**
 * Registered clients (OAuth 2.0 Dynamic Client Registration, RFC 7591, and its management, RFC 7592): who they
 * are, which organisation owns them, their role, the scopes they may be granted and how they authenticate.
 */
import { randomUUID } from 'node:crypto';
import type { JSONWebKeySet } from 'jose';
import type { Database } from '../db';
import { isRole, rulesOf, type Role } from './roles';
import { Permissions } from './scopes';
import { generateSecret, hashSecret } from './secrets';

export type AuthMethod = 'client_secret_basic' | 'private_key_jwt';

export interface Client {
  clientId: string;
  clientName: string;
  role: Role;
  organization?: string;
  practitioner?: string;
  scope: string;
  authMethod: AuthMethod;
  secretHash?: string;
  jwks?: JSONWebKeySet;
  disabled: boolean;
}

interface ClientRow {
  client_id: string;
  client_name: string;
  role: string;
  organization: string | null;
  practitioner: string | null;
  scope: string;
  auth_method: string;
  secret_hash: string | null;
  jwks: string | null;
  disabled: boolean;
}

/** A registration request's fields (RFC 7591 metadata plus `organization`, `role` and `practitioner`). */
export interface RegistrationInput {
  client_name?: unknown;
  grant_types?: unknown;
  token_endpoint_auth_method?: unknown;
  jwks?: unknown;
  jwks_uri?: unknown;
  scope?: unknown;
  organization?: unknown;
  role?: unknown;
  practitioner?: unknown;
}

/** An invalid registration: RFC 7591 error codes. */
export class RegistrationError extends Error {
  constructor(
    readonly code: 'invalid_client_metadata' | 'invalid_redirect_uri' | 'invalid_software_statement',
    message: string,
  ) {
    super(message);
  }
}

const ORG_REF = /^Organization\/[A-Za-z0-9\-.]{1,64}$/;
const PRACTITIONER_REF = /^Practitioner\/[A-Za-z0-9\-.]{1,64}$/;
/** SMART requires RS384 or ES384 client assertions; nothing weaker is accepted. */
export const CLIENT_ASSERTION_ALGORITHMS = ['RS384', 'ES384'];
const MAX_KEYS = 10;

/** How long a client's record is trusted from memory: a disabled client is refused on every worker within this. */
const CACHE_MS = 5000;

function toClient(row: ClientRow): Client {
  return {
    clientId: row.client_id,
    clientName: row.client_name,
    role: row.role as Role,
    organization: row.organization ?? undefined,
    practitioner: row.practitioner ?? undefined,
    scope: row.scope,
    authMethod: row.auth_method as AuthMethod,
    secretHash: row.secret_hash ?? undefined,
    jwks: row.jwks ? (JSON.parse(row.jwks) as JSONWebKeySet) : undefined,
    disabled: row.disabled,
  };
}

/** Checks a JWK Set holds only public RS384/ES384 keys (never a private key, which a client must keep). */
export function checkJwks(jwks: unknown): JSONWebKeySet {
  const keys = (jwks as JSONWebKeySet | undefined)?.keys;
  if (!Array.isArray(keys) || keys.length === 0 || keys.length > MAX_KEYS) {
    throw new RegistrationError('invalid_client_metadata', `jwks must be a JWK Set with 1 to ${MAX_KEYS} keys`);
  }
  for (const key of keys) {
    if (typeof key !== 'object' || key === null || (key.kty !== 'RSA' && key.kty !== 'EC')) {
      throw new RegistrationError('invalid_client_metadata', 'jwks keys must be RSA (RS384) or EC P-384 (ES384) public keys');
    }
    if ('d' in key || 'p' in key || 'q' in key) {
      throw new RegistrationError('invalid_client_metadata', 'jwks must hold public keys only; never send a private key');
    }
    if (key.alg !== undefined && !CLIENT_ASSERTION_ALGORITHMS.includes(key.alg)) {
      throw new RegistrationError('invalid_client_metadata', `jwks key alg "${key.alg}" is not accepted; use RS384 or ES384`);
    }
  }
  return { keys };
}

export class ClientStore {
  private readonly cache = new Map<string, { client: Client | undefined; until: number }>();

  constructor(private readonly db: Database) {}

  /** The client, from a cache of a few seconds (tokens are checked on every request, clients rarely change). */
  async get(clientId: string, fresh = false): Promise<Client | undefined> {
    if (clientId.length === 0 || clientId.length > 200 || /[\u0000-\u001f]/.test(clientId)) {
      // No registered client has such an id (and PostgreSQL refuses NUL in text): no need to ask.
      return undefined;
    }
    const cached = this.cache.get(clientId);
    if (!fresh && cached && cached.until > Date.now()) {
      return cached.client;
    }
    const rows = await this.db.query<ClientRow>('SELECT * FROM auth_client WHERE client_id = $1', [clientId]);
    const client = rows[0] ? toClient(rows[0]) : undefined;
    if (this.cache.size > 10_000) {
      this.cache.clear();
    }
    this.cache.set(clientId, { client, until: Date.now() + CACHE_MS });
    return client;
  }

  /** Validates a registration request; returns the client to store and the generated secret, if any. */
  async register(input: RegistrationInput): Promise<{ client: Client; secret?: string }> {
    const client = checkRegistration(input);
    let secret: string | undefined;
    if (client.authMethod === 'client_secret_basic') {
      secret = generateSecret();
      client.secretHash = await hashSecret(secret);
    }
    await this.insert(client);
    return { client, secret };
  }

  async insert(client: Client): Promise<void> {
    await this.db.query(
      `INSERT INTO auth_client (client_id, client_name, role, organization, practitioner, scope, auth_method, secret_hash, jwks, disabled)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
      [
        client.clientId,
        client.clientName,
        client.role,
        client.organization ?? null,
        client.practitioner ?? null,
        client.scope,
        client.authMethod,
        client.secretHash ?? null,
        client.jwks ? JSON.stringify(client.jwks) : null,
        client.disabled,
      ],
    );
    this.cache.delete(client.clientId);
  }

  /** RFC 7592 update: a new secret, new keys, a new name or scope, disabled or enabled again. */
  async update(clientId: string, change: { secretHash?: string; jwks?: JSONWebKeySet; disabled?: boolean; clientName?: string; scope?: string }): Promise<Client | undefined> {
    const rows = await this.db.query<ClientRow>(
      `UPDATE auth_client SET
         secret_hash = COALESCE($2, secret_hash), jwks = COALESCE($3, jwks), disabled = COALESCE($4, disabled),
         client_name = COALESCE($5, client_name), scope = COALESCE($6, scope), updated_at = now()
       WHERE client_id = $1 RETURNING *`,
      [clientId, change.secretHash ?? null, change.jwks ? JSON.stringify(change.jwks) : null, change.disabled ?? null, change.clientName ?? null, change.scope ?? null],
    );
    this.cache.delete(clientId);
    return rows[0] ? toClient(rows[0]) : undefined;
  }

  /**
   * The administrator client of `HUIMIN_ADMIN_CLIENT_ID`/`_SECRET`: created, or its secret reset to the configured
   * one. Without configuration, the first start creates one with a generated secret and returns it (to be shown
   * once); later starts find it and return nothing.
   */
  async ensureAdmin(configured?: { clientId: string; secret: string }): Promise<{ clientId: string; secret?: string }> {
    const clientId = configured?.clientId ?? 'huimin-admin';
    const existing = await this.get(clientId, true);
    if (configured) {
      const secretHash = await hashSecret(configured.secret);
      if (existing) {
        await this.db.query(
          `UPDATE auth_client SET secret_hash = $2, role = 'admin', auth_method = 'client_secret_basic', scope = 'system/*.cruds', disabled = false, updated_at = now() WHERE client_id = $1`,
          [clientId, secretHash],
        );
        this.cache.delete(clientId);
      } else {
        await this.insert(adminClient(clientId, secretHash));
      }
      return { clientId };
    }
    if (existing) {
      return { clientId };
    }
    const secret = generateSecret();
    await this.insert(adminClient(clientId, await hashSecret(secret)));
    return { clientId, secret };
  }
}

function adminClient(clientId: string, secretHash: string): Client {
  return {
    clientId,
    clientName: 'Huimin administrator',
    role: 'admin',
    scope: 'system/*.cruds',
    authMethod: 'client_secret_basic',
    secretHash,
    disabled: false,
  };
}

function optionalString(value: unknown, name: string, max = 200): string | undefined {
  if (value === undefined || value === null) {
    return undefined;
  }
  if (typeof value !== 'string' || value.length === 0 || value.length > max || /[\u0000-\u001f]/.test(value)) {
    throw new RegistrationError('invalid_client_metadata', `${name} must be a string of 1 to ${max} characters, without control characters`);
  }
  return value;
}

/** RFC 7591 metadata checked, with our `organization`, `role` and `practitioner`. */
export function checkRegistration(input: RegistrationInput): Client {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new RegistrationError('invalid_client_metadata', 'The registration request must be a JSON object');
  }
  const clientName = optionalString(input.client_name, 'client_name') ?? 'unnamed client';
  const grantTypes = input.grant_types ?? ['client_credentials'];
  if (!Array.isArray(grantTypes) || grantTypes.length !== 1 || grantTypes[0] !== 'client_credentials') {
    throw new RegistrationError('invalid_client_metadata', 'grant_types must be ["client_credentials"]: this server serves SMART Backend Services only');
  }
  if (!isRole(input.role)) {
    throw new RegistrationError('invalid_client_metadata', 'role must be one of facility-system, clinician, referral-coordinator, supervisor, admin');
  }
  const role = input.role;
  const organization = optionalString(input.organization, 'organization', 80);
  if (organization !== undefined && !ORG_REF.test(organization)) {
    throw new RegistrationError('invalid_client_metadata', 'organization must be a reference such as "Organization/123"');
  }
  if (rulesOf(role).needsOrganization && !organization) {
    throw new RegistrationError('invalid_client_metadata', `A ${role} client needs an owning organization ("Organization/123")`);
  }
  const practitioner = optionalString(input.practitioner, 'practitioner', 80);
  if (practitioner !== undefined && (role !== 'clinician' || !PRACTITIONER_REF.test(practitioner))) {
    throw new RegistrationError('invalid_client_metadata', 'practitioner ("Practitioner/123") is given for clinician clients only');
  }
  const scope = optionalString(input.scope, 'scope', 2000) ?? 'system/*.rs';
  const { permissions, ignored } = Permissions.parse(scope);
  if (ignored.length > 0 || permissions.isEmpty) {
    throw new RegistrationError('invalid_client_metadata', `scope must be SMART system scopes (system/Patient.rs, system/*.read); not understood: ${ignored.join(' ') || '(empty)'}`);
  }
  const method = input.token_endpoint_auth_method ?? (input.jwks ? 'private_key_jwt' : 'client_secret_basic');
  if (method !== 'private_key_jwt' && method !== 'client_secret_basic') {
    throw new RegistrationError('invalid_client_metadata', 'token_endpoint_auth_method must be private_key_jwt or client_secret_basic');
  }
  if (input.jwks_uri !== undefined) {
    throw new RegistrationError('invalid_client_metadata', 'jwks_uri is not supported: register the public keys themselves in jwks');
  }
  let jwks: JSONWebKeySet | undefined;
  if (method === 'private_key_jwt') {
    jwks = checkJwks(input.jwks);
  } else if (input.jwks !== undefined) {
    throw new RegistrationError('invalid_client_metadata', 'jwks is given only with token_endpoint_auth_method private_key_jwt');
  }
  return {
    clientId: randomUUID(),
    clientName,
    role,
    organization,
    practitioner,
    scope: permissions.toString(),
    authMethod: method,
    jwks,
    disabled: false,
  };
}

/** The client's registration as RFC 7591/7592 answer it (never the secret hash). */
export function clientMetadata(client: Client, registrationUri: string): Record<string, unknown> {
  return {
    client_id: client.clientId,
    client_name: client.clientName,
    grant_types: ['client_credentials'],
    token_endpoint_auth_method: client.authMethod,
    scope: client.scope,
    role: client.role,
    ...(client.organization ? { organization: client.organization } : {}),
    ...(client.practitioner ? { practitioner: client.practitioner } : {}),
    ...(client.jwks ? { jwks: client.jwks } : {}),
    disabled: client.disabled,
    registration_client_uri: registrationUri,
  };
}
