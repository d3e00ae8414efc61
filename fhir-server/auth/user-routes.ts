/**
 * User administration, for administrators only (an admin user's token, or the admin client's):
 *   GET  /auth/users          every account
 *   POST /auth/users          create one (username, display_name, role, organization, practitioner, password)
 *   GET  /auth/users/{id}     one account
 *   PUT  /auth/users/{id}     change name, role, organisation, practitioner, password or disabled; a new password,
 *                             a new role or organisation, or disabling ends the user's sessions
 * Accounts are never deleted (the audit log names them): they are disabled. Every call is audited.
 */
import express, { type Request, type Response } from 'express';
import type { AuditAgent } from '../audit/audit-event';
import type { PlatformSecurity } from './security';
import { addressOf } from './security';
import type { Caller } from './tokens';
import { UserError, userJson, type UserInput } from './users';

const JSON_BODY = express.json({ limit: '16kb', type: ['application/json'] });

function agentOf(caller: Caller, req: Request): AuditAgent {
  return {
    clientId: caller.clientId,
    clientName: caller.clientName,
    role: caller.role,
    organization: caller.organization,
    practitioner: caller.practitioner,
    user: caller.user?.username,
    userName: caller.user?.name,
    address: addressOf(req),
  };
}

export function createUserRouter(security: PlatformSecurity): express.Router {
  const router = express.Router();

  async function administrator(req: Request, res: Response, what: string): Promise<Caller | undefined> {
    let caller: Caller;
    try {
      caller = await security.authenticate(req.headers.authorization);
    } catch {
      await security.recordAuthEvent({ address: addressOf(req) }, what, 401, 'no valid token');
      res.setHeader('WWW-Authenticate', 'Bearer realm="Huimin"');
      res.status(401).json({ error: 'invalid_token', error_description: 'User administration needs an administrator’s access token' });
      return undefined;
    }
    if (caller.role !== 'admin') {
      await security.recordAuthEvent(agentOf(caller, req), what, 403, 'user administration needs the admin role');
      res.status(403).json({ error: 'insufficient_scope', error_description: 'User administration needs the admin role' });
      return undefined;
    }
    return caller;
  }

  async function refused(err: unknown, admin: Caller, req: Request, res: Response, what: string): Promise<void> {
    if (err instanceof UserError) {
      await security.recordAuthEvent(agentOf(admin, req), what, 400, err.message);
      res.status(400).json({ error: 'invalid_user', error_description: err.message });
      return;
    }
    security.options.logger.error({ err }, `${what} failed`);
    res.status(500).json({ error: 'server_error', error_description: 'The request could not be processed' });
  }

  router.get('/auth/users', async (req, res) => {
    const admin = await administrator(req, res, 'list-users');
    if (!admin) return;
    const users = await security.users.list();
    await security.recordAuthEvent(agentOf(admin, req), 'list-users', 200, `listed ${users.length} users`);
    res.json({ users: users.map(userJson) });
  });

  router.post('/auth/users', JSON_BODY, async (req, res) => {
    const admin = await administrator(req, res, 'create-user');
    if (!admin) return;
    try {
      const user = await security.users.create((req.body ?? {}) as UserInput);
      await security.recordAuthEvent(agentOf(admin, req), 'create-user', 201, `created user ${user.username} (${user.role}${user.organization ? `, ${user.organization}` : ''})`, user.organization ? [user.organization] : []);
      res.status(201).json(userJson(user));
    } catch (err) {
      await refused(err, admin, req, res, 'create-user');
    }
  });

  router.get('/auth/users/:id', async (req, res) => {
    const admin = await administrator(req, res, 'read-user');
    if (!admin) return;
    const user = await security.users.get(String(req.params.id));
    if (!user) {
      res.status(404).json({ error: 'not_found', error_description: 'No such user' });
      return;
    }
    await security.recordAuthEvent(agentOf(admin, req), 'read-user', 200, `read user ${user.username}`);
    res.json(userJson(user));
  });

  router.put('/auth/users/:id', JSON_BODY, async (req, res) => {
    const admin = await administrator(req, res, 'update-user');
    if (!admin) return;
    try {
      const body = (req.body ?? {}) as UserInput;
      if (admin.user && admin.user.id === req.params.id && (body.disabled === true || (body.role !== undefined && body.role !== 'admin'))) {
        throw new UserError('An administrator cannot disable themselves or give up the admin role (ask another administrator)');
      }
      const user = await security.users.update(String(req.params.id), body);
      if (!user) {
        res.status(404).json({ error: 'not_found', error_description: 'No such user' });
        return;
      }
      const changed = Object.keys(body).map((k) => (k === 'password' ? 'password reset' : k));
      await security.recordAuthEvent(agentOf(admin, req), 'update-user', 200, `user ${user.username}: ${changed.join(', ') || 'no change'}`);
      res.json(userJson(user));
    } catch (err) {
      await refused(err, admin, req, res, 'update-user');
    }
  });

  router.use('/auth/users', (err: unknown, _req: Request, res: Response, next: (err?: unknown) => void) => {
    if (!err) {
      next();
      return;
    }
    res.status(400).json({ error: 'invalid_request', error_description: 'The request body must be a JSON object of at most 16 kB' });
  });
  return router;
}
