/** `callerOf`: operations learn who calls (organisation, practitioner) from the request's context. */
import { AccessPolicy, callerOf, Permissions, type Caller } from '..';
import { OperationRegistry, type RouteContext } from '../../rest';

const ctx = (guard?: RouteContext['guard']): RouteContext =>
  ({ repo: undefined as never, baseUrl: 'http://x/fhir', defaultPageSize: 20, maxPageSize: 100, operations: new OperationRegistry(), guard }) as RouteContext;

it('gives the caller of a request secured by an AccessPolicy, and nothing without one', () => {
  const caller: Caller = {
    clientId: 'c1',
    clientName: 'clinic',
    role: 'clinician',
    organization: 'Organization/b',
    practitioner: 'Practitioner/p',
    permissions: Permissions.parse('system/*.cruds').permissions,
    scope: 'system/*.cruds',
    tokenId: 't',
    expiresAt: Date.now() + 60_000,
  };
  const policy = new AccessPolicy(caller, { auditReader: async () => ({ status: 200 }) });
  expect(callerOf(ctx(policy))).toBe(caller);
  expect(callerOf(ctx())).toBeUndefined();
  expect(callerOf(ctx({ before: () => undefined }))).toBeUndefined();
});
