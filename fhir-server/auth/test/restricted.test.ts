/**
 * Two small seams other modules use: resources restricted to named organisations (RESTRICTED_TO_SYSTEM labels),
 * and the audit log reader (with an operation that decides its callers itself, seeing who calls).
 */
import type { Bundle, Parameters } from '@medplum/fhirtypes';
import request from 'supertest';
import { OWNER_TAG_SYSTEM, RESTRICTED_TO_SYSTEM } from '../migrations';
import { readAuditLog } from '../../audit';
import type { FhirOperation } from '../../rest';
import { createTestServer, type TestServer } from '../../../test/server';

const FHIR_JSON = 'application/fhir+json';

const whoAmI: FhirOperation = {
  name: 'who-am-i',
  definition: 'https://huimin.health/fhir/OperationDefinition/who-am-i',
  levels: ['system'],
  affectsState: true,
  roles: ['supervisor', 'admin'],
  authorizesCaller: true,
  async invoke(ctx) {
    const body: Parameters = {
      resourceType: 'Parameters',
      parameter: [
        { name: 'role', valueString: ctx.caller?.role },
        { name: 'organization', valueString: ctx.caller?.organization },
      ],
    };
    return { status: 200, body };
  },
};

describe('restricted resources, role-vouched operations, audit reader', () => {
  let server: TestServer;
  let tokens: Record<string, string>;

  beforeAll(async () => {
    server = await createTestServer('postgres', { operations: [whoAmI] });
    for (const id of ['a', 'b', 'c', 'bureau']) {
      await request(server.app).put(`/fhir/Organization/${id}`).set('Content-Type', FHIR_JSON).send({ resourceType: 'Organization', id });
    }
    tokens = {
      a: (await server.tokenFor({ role: 'facility-system', organization: 'Organization/a' })).token,
      b: (await server.tokenFor({ role: 'facility-system', organization: 'Organization/b' })).token,
      c: (await server.tokenFor({ role: 'facility-system', organization: 'Organization/c' })).token,
      supervisor: (await server.tokenFor({ role: 'supervisor', organization: 'Organization/bureau' })).token,
    };
    // Owned by the bureau, restricted to the bureau and a; an unlabelled Basic beside it.
    await request(server.app)
      .put('/fhir/Basic/restricted')
      .set('Content-Type', FHIR_JSON)
      .send({
        resourceType: 'Basic',
        id: 'restricted',
        code: { text: 'finding' },
        meta: { security: [{ system: OWNER_TAG_SYSTEM, code: 'Organization/bureau' }, { system: RESTRICTED_TO_SYSTEM, code: 'Organization/bureau' }, { system: RESTRICTED_TO_SYSTEM, code: 'Organization/a' }] },
      })
      .expect(201);
    await request(server.app).put('/fhir/Basic/open').set('Content-Type', FHIR_JSON).send({ resourceType: 'Basic', id: 'open', code: { text: 'open' } }).expect(201);
  });
  afterAll(async () => {
    await server.close();
  });

  it('a restricted resource is seen by the organisations it names and supervisors, not by others', async () => {
    const ids = async (token: string): Promise<string[]> =>
      (((await request(server.rawApp).get('/fhir/Basic').set('Authorization', `Bearer ${token}`).expect(200)).body as Bundle).entry ?? []).map((e) => e.resource?.id as string).sort();
    expect(await ids(tokens.a)).toEqual(['open', 'restricted']);
    expect(await ids(tokens.supervisor)).toEqual(['open', 'restricted']);
    expect(await ids(tokens.b)).toEqual(['open']);
    await request(server.rawApp).get('/fhir/Basic/restricted').set('Authorization', `Bearer ${tokens.b}`).expect(404);
    await request(server.rawApp).get('/fhir/Basic/restricted').set('Authorization', `Bearer ${tokens.a}`).expect(200);
  });

  it('an operation that authorises its callers by role serves supervisors and sees who calls; other roles are refused', async () => {
    const res = await request(server.rawApp).post('/fhir/$who-am-i').set('Authorization', `Bearer ${tokens.supervisor}`).set('Content-Type', FHIR_JSON).send({ resourceType: 'Parameters' }).expect(200);
    expect((res.body as Parameters).parameter).toEqual([
      { name: 'role', valueString: 'supervisor' },
      { name: 'organization', valueString: 'Organization/bureau' },
    ]);
    await request(server.rawApp).post('/fhir/$who-am-i').set('Authorization', `Bearer ${tokens.c}`).set('Content-Type', FHIR_JSON).send({ resourceType: 'Parameters' }).expect(403);
    // Plain writes stay closed to supervisors.
    await request(server.rawApp).post('/fhir/Basic').set('Authorization', `Bearer ${tokens.supervisor}`).set('Content-Type', FHIR_JSON).send({ resourceType: 'Basic', code: { text: 'x' } }).expect(403);
  });

  it('readAuditLog gives the events in order after a position', async () => {
    await server.audit.flushed();
    const first = await readAuditLog(server.db, 0, 3);
    expect(first).toHaveLength(3);
    expect(first[0].position).toBeLessThan(first[1].position);
    const next = await readAuditLog(server.db, first[2].position, 1000);
    expect(next.every((e) => e.position > first[2].position)).toBe(true);
    expect(next.some((e) => e.facts.agent.organization === 'Organization/c' && e.facts.interaction === 'operation:$who-am-i' && e.facts.status === 403)).toBe(true);
  });
});
