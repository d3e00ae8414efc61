/** Operations from other modules plug into the router, bundles and CapabilityStatement through the registry. */
import type { CapabilityStatement, Parameters } from '@medplum/fhirtypes';
import request from 'supertest';
import { operationParameters, parameterValue, type FhirOperation } from '..';
import { createTestServer, type TestServer } from '../../test/server';

const greet: FhirOperation = {
  name: 'greet',
  definition: 'http://example.org/OperationDefinition/greet',
  levels: ['type', 'instance'],
  resourceTypes: ['Patient'],
  affectsState: false,
  invoke: async (_ctx, req, target) => {
    const name = parameterValue(operationParameters(req), 'name') ?? 'nobody';
    const body: Parameters = { resourceType: 'Parameters', parameter: [{ name: 'greeting', valueString: `hello ${name} from ${target.level} ${target.id ?? ''}`.trim() }] };
    return { status: 200, body };
  },
};
const reset: FhirOperation = {
  name: 'reset',
  definition: 'http://example.org/OperationDefinition/reset',
  levels: ['system'],
  affectsState: true,
  invoke: async () => ({ status: 200, body: { resourceType: 'Parameters' } }),
};

let server: TestServer;
beforeAll(async () => {
  server = await createTestServer('postgres', { operations: [greet, reset] });
});
afterAll(() => server.close());

describe('operation registry', () => {
  it('answers a registered operation by GET and by POST with Parameters', async () => {
    const get = await request(server.app).get('/fhir/Patient/$greet?name=zhang').expect(200);
    expect(get.body.parameter[0].valueString).toBe('hello zhang from type');
    const post = await request(server.app)
      .post('/fhir/Patient/p1/$greet')
      .set('Content-Type', 'application/fhir+json')
      .send({ resourceType: 'Parameters', parameter: [{ name: 'name', valueString: 'li' }] })
      .expect(200);
    expect(post.body.parameter[0].valueString).toBe('hello li from instance p1');
  });

  it('refuses an operation on a type it is not defined for, and GET on one that changes state', async () => {
    const wrongType = await request(server.app).get('/fhir/Observation/$greet').expect(404);
    expect(wrongType.body.issue[0].diagnostics).toBe('The operation $greet is not supported on Observation');
    const getReset = await request(server.app).get('/fhir/$reset').expect(405);
    expect(getReset.body.issue[0].diagnostics).toContain('invoked with POST');
    await request(server.app).post('/fhir/$reset').set('Content-Type', 'application/fhir+json').send({ resourceType: 'Parameters' }).expect(200);
  });

  it('refuses a body that is not Parameters', async () => {
    const res = await request(server.app).post('/fhir/Patient/$greet').set('Content-Type', 'application/fhir+json').send({ resourceType: 'Patient' }).expect(400);
    expect(res.body.issue[0].diagnostics).toBe("The operation's body must be a Parameters resource, got Patient");
  });

  it('lists registered operations in the CapabilityStatement at their levels', async () => {
    const res = await request(server.app).get('/fhir/metadata').expect(200);
    const cs = res.body as CapabilityStatement;
    const rest = cs.rest?.[0];
    // The store's bulk $export is listed; its status and file URLs (advertised: false) are not.
    expect(rest?.operation?.map((o) => o.name).sort()).toEqual(['export', 'reindex', 'reset']);
    const patient = rest?.resource?.find((r) => r.type === 'Patient');
    expect(patient?.operation?.map((o) => o.name).sort()).toEqual(['consent-notice', 'everything', 'export', 'greet', 'reindex', 'validate']);
    const observation = rest?.resource?.find((r) => r.type === 'Observation');
    expect(observation?.operation?.map((o) => o.name).sort()).toEqual(['reindex', 'validate']);
  });
});
