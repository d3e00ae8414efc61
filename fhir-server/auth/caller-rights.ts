/**
 * Work done later on a caller's behalf (a subscription's matching and notifications) runs with that caller's
 * rights as they are registered now, not as they were when the work was asked for: a disabled client or user no
 * longer acts at all, a changed role or organisation applies at once, and a client's narrowed registration narrows
 * what it asked with (as for its tokens, see tokens.ts). Nothing is carried over from the request but its identity
 * and the scopes its token was granted; break-the-glass never is (it is declared per request).
 */
import type { CallerIdentity, RepositoryAccess } from '../repository';
import { AccessPolicy } from './access-policy';
import type { ClientStore } from './clients';
import { Permissions } from './scopes';
import { userScopePermissions, type Caller } from './tokens';
import type { UserStore } from './users';

/** The caller an identity stands for now; undefined when its client or user is disabled or no longer registered. */
export async function currentCaller(identity: CallerIdentity, clients: ClientStore, users: UserStore): Promise<Caller | undefined> {
  const base = { tokenId: '', expiresAt: 0 };
  if (identity.user !== undefined) {
    const user = await users.get(identity.user);
    if (!user || user.disabled) {
      return undefined;
    }
    const scope = identity.scope ?? '';
    return {
      ...base,
      clientId: identity.clientId,
      clientName: identity.clientId,
      role: user.role,
      organization: user.organization,
      practitioner: user.practitioner,
      permissions: userScopePermissions(scope),
      scope,
      user: { id: user.userId, username: user.username, name: user.displayName, sessionId: '' },
    };
  }
  const client = await clients.get(identity.clientId);
  if (!client || client.disabled) {
    return undefined;
  }
  const registered = Permissions.parse(client.scope).permissions;
  const scope = identity.scope ?? client.scope;
  return {
    ...base,
    clientId: client.clientId,
    clientName: client.clientName,
    role: client.role,
    organization: client.organization,
    practitioner: identity.practitioner ?? client.practitioner,
    permissions: registered.intersect(Permissions.parse(scope).permissions),
    scope,
  };
}

/**
 * The repository hooks for an identity's current rights (undefined: unrestricted, an administrator with every
 * scope), or false when the identity may no longer act.
 */
export async function accessOfIdentity(identity: CallerIdentity, clients: ClientStore, users: UserStore): Promise<RepositoryAccess | undefined | false> {
  const caller = await currentCaller(identity, clients, users);
  if (!caller) {
    return false;
  }
  const policy = new AccessPolicy(caller, {
    // Work on a caller's behalf reads resources; the audit log is answered over the API only.
    auditReader: () => Promise.reject(new Error('the audit log is not read on behalf of a caller')),
  });
  return policy.repositoryAccess();
}
