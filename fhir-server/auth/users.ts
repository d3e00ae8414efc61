/**
 * People who sign in (SMART App Launch, see app-launch.ts): user accounts with a role and an organisation (and the
 * Practitioner behind a clinician), their passwords as argon2id hashes (@node-rs/argon2), and their sign-in
 * sessions. A session is what a refresh token continues; it ends at sign-out, after an idle time, after a maximum
 * age, or when the account is disabled, and every access token names its session, so that ending it stops the
 * tokens on every worker within seconds.
 */
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { hash, verify } from '@node-rs/argon2';
import type { Database } from '../db';
import { isRole, rulesOf, type Role } from './roles';

export interface User {
  userId: string;
  username: string;
  displayName: string;
  role: Role;
  organization?: string;
  practitioner?: string;
  disabled: boolean;
  createdAt: string;
  updatedAt: string;
}

interface UserRow {
  user_id: string;
  username: string;
  display_name: string;
  role: string;
  organization: string | null;
  practitioner: string | null;
  password_hash: string;
  disabled: boolean;
  failed_logins: number;
  locked_until: Date | string | null;
  created_at: Date | string;
  updated_at: Date | string;
}

/** A user account's fields as the admin API takes them (all optional on update). */
export interface UserInput {
  username?: unknown;
  display_name?: unknown;
  role?: unknown;
  organization?: unknown;
  practitioner?: unknown;
  password?: unknown;
  disabled?: unknown;
}

export class UserError extends Error {}

const USERNAME = /^[a-z0-9][a-z0-9._@-]{2,63}$/;
const ORG_REF = /^Organization\/[A-Za-z0-9\-.]{1,64}$/;
const PRACTITIONER_REF = /^Practitioner\/[A-Za-z0-9\-.]{1,64}$/;
const MIN_PASSWORD = 10;
const MAX_PASSWORD = 256;
/** After this many wrong passwords in a row the account waits LOCK_MS before it can sign in again. */
const MAX_FAILED_LOGINS = 5;
const LOCK_MS = 5 * 60_000;
/** How long a session's state is trusted from memory (tokens are checked on every request). */
const CACHE_MS = 5000;

function iso(value: Date | string): string {
  return value instanceof Date ? value.toISOString() : new Date(value).toISOString();
}

function toUser(row: UserRow): User {
  return {
    userId: row.user_id,
    username: row.username,
    displayName: row.display_name,
    role: row.role as Role,
    organization: row.organization ?? undefined,
    practitioner: row.practitioner ?? undefined,
    disabled: row.disabled,
    createdAt: iso(row.created_at),
    updatedAt: iso(row.updated_at),
  };
}

/** The account as the admin API answers it (never the password hash). */
export function userJson(user: User): Record<string, unknown> {
  return {
    id: user.userId,
    username: user.username,
    display_name: user.displayName,
    role: user.role,
    ...(user.organization ? { organization: user.organization } : {}),
    ...(user.practitioner ? { practitioner: user.practitioner } : {}),
    disabled: user.disabled,
    created_at: user.createdAt,
    updated_at: user.updatedAt,
  };
}

function text(value: unknown, name: string, max: number): string {
  if (typeof value !== 'string' || value.trim().length === 0 || value.length > max || /[\u0000-\u001f]/.test(value)) {
    throw new UserError(`${name} must be a string of 1 to ${max} characters, without control characters`);
  }
  return value.trim();
}

export function checkPassword(value: unknown): string {
  if (typeof value !== 'string' || value.length < MIN_PASSWORD || value.length > MAX_PASSWORD) {
    throw new UserError(`password must be ${MIN_PASSWORD} to ${MAX_PASSWORD} characters`);
  }
  return value;
}

/** Role, organisation and practitioner checked together (a clinician names a practitioner; most roles an organisation). */
function checkAccount(role: unknown, organization: unknown, practitioner: unknown): Pick<User, 'role' | 'organization' | 'practitioner'> {
  if (!isRole(role) || role === 'facility-system') {
    throw new UserError('role must be one of clinician, referral-coordinator, supervisor, admin');
  }
  const org = organization === undefined || organization === null || organization === '' ? undefined : text(organization, 'organization', 80);
  if (org !== undefined && !ORG_REF.test(org)) {
    throw new UserError('organization must be a reference such as "Organization/123"');
  }
  if (rulesOf(role).needsOrganization && !org) {
    throw new UserError(`A ${role} belongs to an organization ("Organization/123")`);
  }
  const prac = practitioner === undefined || practitioner === null || practitioner === '' ? undefined : text(practitioner, 'practitioner', 80);
  if (prac !== undefined && (role !== 'clinician' || !PRACTITIONER_REF.test(prac))) {
    throw new UserError('practitioner ("Practitioner/123") is given for clinicians only');
  }
  if (role === 'clinician' && !prac) {
    throw new UserError('A clinician names the Practitioner they are ("Practitioner/123"), so that the audit names a person');
  }
  return { role, organization: org, practitioner: prac };
}

export function hashPassword(password: string): Promise<string> {
  // argon2id with the library's defaults (19 MiB, 2 passes: OWASP's recommended minimum).
  return hash(password);
}

/** A hash of nothing anyone knows, verified for unknown usernames so that timing does not tell which exist. */
let dummyHash: Promise<string> | undefined;

export function sha256(value: string): string {
  return createHash('sha256').update(value).digest('base64url');
}

export function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export interface SessionState {
  user: User;
  sessionId: string;
  clientId: string;
  scope: string;
}

export interface SessionLimits {
  /** A session not used (no token refreshed) for this long ends. */
  idleS: number;
  /** A session ends this long after sign-in, however much it is used. */
  maxS: number;
}

export class UserStore {
  private readonly sessions = new Map<string, { state: SessionState | undefined; until: number }>();

  constructor(
    private readonly db: Database,
    readonly limits: SessionLimits,
  ) {}

  async list(): Promise<User[]> {
    const rows = await this.db.query<UserRow>('SELECT * FROM auth_user ORDER BY username');
    return rows.map(toUser);
  }

  async get(userId: string): Promise<User | undefined> {
    if (userId.length > 64) return undefined;
    const rows = await this.db.query<UserRow>('SELECT * FROM auth_user WHERE user_id = $1', [userId]);
    return rows[0] ? toUser(rows[0]) : undefined;
  }

  async create(input: UserInput): Promise<User> {
    if (typeof input !== 'object' || input === null || Array.isArray(input)) {
      throw new UserError('The user must be a JSON object');
    }
    const username = text(input.username, 'username', 64).toLowerCase();
    if (!USERNAME.test(username)) {
      throw new UserError('username is 3 to 64 characters: lower-case letters, digits, and . _ @ - (not first)');
    }
    const displayName = text(input.display_name ?? username, 'display_name', 100);
    const account = checkAccount(input.role, input.organization, input.practitioner);
    const passwordHash = await hashPassword(checkPassword(input.password));
    const rows = await this.db.query<UserRow>(
      `INSERT INTO auth_user (user_id, username, display_name, role, organization, practitioner, password_hash)
       VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (username) DO NOTHING RETURNING *`,
      [randomUUID(), username, displayName, account.role, account.organization ?? null, account.practitioner ?? null, passwordHash],
    );
    if (!rows[0]) {
      throw new UserError(`A user named ${username} exists already`);
    }
    return toUser(rows[0]);
  }

  /** Changes name, role, organisation, practitioner, password or disabled; a new password or disabling ends the user's sessions. */
  async update(userId: string, input: UserInput): Promise<User | undefined> {
    if (typeof input !== 'object' || input === null || Array.isArray(input)) {
      throw new UserError('The change must be a JSON object');
    }
    const current = await this.get(userId);
    if (!current) return undefined;
    if (input.username !== undefined && input.username !== current.username) {
      throw new UserError('username cannot be changed (the audit log names it): create another user');
    }
    const displayName = input.display_name === undefined ? current.displayName : text(input.display_name, 'display_name', 100);
    const account = checkAccount(
      input.role ?? current.role,
      input.organization !== undefined ? input.organization : current.organization,
      input.practitioner !== undefined ? input.practitioner : input.role !== undefined && input.role !== 'clinician' ? undefined : current.practitioner,
    );
    if (input.disabled !== undefined && typeof input.disabled !== 'boolean') {
      throw new UserError('disabled is true or false');
    }
    const passwordHash = input.password === undefined ? null : await hashPassword(checkPassword(input.password));
    const rows = await this.db.query<UserRow>(
      `UPDATE auth_user SET display_name = $2, role = $3, organization = $4, practitioner = $5,
         password_hash = COALESCE($6, password_hash), disabled = COALESCE($7, disabled),
         failed_logins = CASE WHEN $6::text IS NULL THEN failed_logins ELSE 0 END,
         locked_until = CASE WHEN $6::text IS NULL THEN locked_until ELSE NULL END, updated_at = now()
       WHERE user_id = $1 RETURNING *`,
      [userId, displayName, account.role, account.organization ?? null, account.practitioner ?? null, passwordHash, input.disabled ?? null],
    );
    const roleChanged = account.role !== current.role || account.organization !== current.organization;
    if (passwordHash || input.disabled === true || roleChanged) {
      await this.db.query('UPDATE auth_session SET ended_at = now() WHERE user_id = $1 AND ended_at IS NULL', [userId]);
      this.sessions.clear();
    }
    return rows[0] ? toUser(rows[0]) : undefined;
  }

  /**
   * The user whose username and password these are, or undefined. Wrong passwords count towards a short lock;
   * the answer takes as long whether or not the username exists.
   */
  async authenticate(username: string, password: string): Promise<User | undefined> {
    const name = username.trim().toLowerCase();
    const rows = name.length > 0 && name.length <= 64 && password.length <= MAX_PASSWORD ? await this.db.query<UserRow>('SELECT * FROM auth_user WHERE username = $1', [name]) : [];
    const row = rows[0];
    if (!row) {
      dummyHash ??= hashPassword(randomBytes(16).toString('hex'));
      await verify(await dummyHash, password).catch(() => false);
      return undefined;
    }
    const locked = row.locked_until !== null && new Date(row.locked_until).getTime() > Date.now();
    const ok = await verify(row.password_hash, password).catch(() => false);
    if (!ok || locked || row.disabled) {
      if (!ok) {
        await this.db.query(
          `UPDATE auth_user SET failed_logins = failed_logins + 1,
             locked_until = CASE WHEN failed_logins + 1 >= $2 THEN now() + make_interval(secs => $3) ELSE locked_until END
           WHERE user_id = $1`,
          [row.user_id, MAX_FAILED_LOGINS, LOCK_MS / 1000],
        );
      }
      return undefined;
    }
    if (row.failed_logins > 0) {
      await this.db.query('UPDATE auth_user SET failed_logins = 0, locked_until = NULL WHERE user_id = $1', [row.user_id]);
    }
    return toUser(row);
  }

  /** Starts a session for a user who just signed in; returns its id. */
  async startSession(user: User, clientId: string, scope: string): Promise<string> {
    const sessionId = randomUUID();
    await this.db.query(
      `INSERT INTO auth_session (session_id, user_id, client_id, scope, expires_at) VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))`,
      [sessionId, user.userId, clientId, scope, this.limits.maxS],
    );
    return sessionId;
  }

  /**
   * Gives the session a new refresh token (returned), provided it is still alive and `previous` is its current
   * one (none yet, when the code is exchanged). A refresh token presented twice means it was copied: the session ends.
   */
  async rotateRefresh(sessionId: string, previous: string | undefined): Promise<string | undefined> {
    const secret = randomBytes(32).toString('base64url');
    const rows = await this.db.query<{ session_id: string }>(
      `UPDATE auth_session s SET refresh_hash = $3, last_used_at = now()
       FROM auth_user u
       WHERE s.session_id = $1 AND u.user_id = s.user_id AND NOT u.disabled AND s.ended_at IS NULL AND s.expires_at > now()
         AND s.last_used_at > now() - make_interval(secs => $4)
         AND s.refresh_hash IS NOT DISTINCT FROM $2
       RETURNING s.session_id`,
      [sessionId, previous === undefined ? null : sha256(previous), sha256(secret), this.limits.idleS],
    );
    if (!rows[0]) {
      if (previous !== undefined) {
        await this.end(sessionId);
      }
      return undefined;
    }
    return secret;
  }

  /** Ends a session (sign-out, or a replayed code or refresh token). */
  async end(sessionId: string): Promise<void> {
    await this.db.query('UPDATE auth_session SET ended_at = now() WHERE session_id = $1 AND ended_at IS NULL', [sessionId]);
    this.sessions.delete(sessionId);
  }

  /** The live session and its user (cached a few seconds), or undefined once it ended, expired or the user was disabled. */
  async session(sessionId: string): Promise<SessionState | undefined> {
    const cached = this.sessions.get(sessionId);
    if (cached && cached.until > Date.now()) {
      return cached.state;
    }
    const rows = sessionId.length > 64 ? [] : await this.db.query<UserRow & { session_id: string; client_id: string; scope: string }>(
      `SELECT u.*, s.session_id, s.client_id, s.scope FROM auth_session s JOIN auth_user u ON u.user_id = s.user_id
       WHERE s.session_id = $1 AND s.ended_at IS NULL AND s.expires_at > now() AND NOT u.disabled
         AND s.last_used_at > now() - make_interval(secs => $2)`,
      [sessionId, this.limits.idleS],
    );
    const row = rows[0];
    const state = row ? { user: toUser(row), sessionId: row.session_id, clientId: row.client_id, scope: row.scope } : undefined;
    if (this.sessions.size > 10_000) this.sessions.clear();
    this.sessions.set(sessionId, { state, until: Date.now() + CACHE_MS });
    return state;
  }

  /**
   * The first administrator: the configured one (created, or its password reset), or on first start with no user
   * at all a generated `admin` whose password is returned to be shown once.
   */
  async ensureAdmin(configured?: { username: string; password: string }): Promise<{ username: string; password?: string } | undefined> {
    if (configured) {
      const rows = await this.db.query<UserRow>('SELECT * FROM auth_user WHERE username = $1', [configured.username.toLowerCase()]);
      if (rows[0]) {
        await this.update(rows[0].user_id, { password: configured.password, role: 'admin', disabled: false });
      } else {
        await this.create({ username: configured.username, display_name: 'Administrator', role: 'admin', password: configured.password });
      }
      return { username: configured.username.toLowerCase() };
    }
    const any = await this.db.query('SELECT 1 FROM auth_user LIMIT 1');
    if (any.length > 0) {
      return undefined;
    }
    const password = randomBytes(15).toString('base64url');
    await this.create({ username: 'admin', display_name: 'Administrator', role: 'admin', password });
    return { username: 'admin', password };
  }
}
