import request from 'supertest';
import { createTestServer, type TestServer } from '../../test/server';

const FHIR_JSON = 'application/fhir+json';

describe('input limits', () => {
  let server: TestServer;
  const api = () => request(server.app);

  beforeAll(async () => {
    server = await createTestServer('postgres', { maxBodyBytes: 2048 });
  });
  afterAll(async () => {
    await server.close();
  });

  it('refuses a body over the size limit with 413 and an OperationOutcome', async () => {
    const res = await api().post('/fhir/Patient').set('Content-Type', FHIR_JSON)
      .send({ resourceType: 'Patient', name: [{ text: 'x'.repeat(5000) }] });
    expect(res.status).toBe(413);
    expect(res.body.issue[0].diagnostics).toMatch(/exceeds the limit of 2048 bytes/);
  });

  it('refuses content types other than JSON with 415', async () => {
    const res = await api().post('/fhir/Patient').set('Content-Type', 'application/fhir+xml').send('<Patient xmlns="http://hl7.org/fhir"/>');
    expect(res.status).toBe(415);
    expect(res.body.issue[0].diagnostics).toMatch(/application\/fhir\+json/);
  });

  it('accepts application/json as well as application/fhir+json, and answers HEAD without a body', async () => {
    const created = await api().post('/fhir/Patient').set('Content-Type', 'application/json').send({ resourceType: 'Patient' });
    expect(created.status).toBe(201);
    const head = await api().head(`/fhir/Patient/${created.body.id}`);
    expect(head.status).toBe(200);
    expect(head.headers.etag).toBe('W/"1"');
    expect(head.text ?? '').toBe('');
  });

  it('names an unknown search parameter: ignored and reported by default, a 400 under Prefer: handling=strict', async () => {
    const lenient = await api().get('/fhir/Patient?shoe-size=42');
    expect(lenient.status).toBe(200);
    const outcome = lenient.body.entry.find((e: { search: { mode: string } }) => e.search.mode === 'outcome');
    expect(outcome.resource.issue[0].diagnostics).toContain('shoe-size');
    const res = await api().get('/fhir/Patient?shoe-size=42').set('Prefer', 'handling=strict');
    expect(res.status).toBe(400);
    expect(res.body.issue[0].diagnostics).toContain('shoe-size');
  });

  it('answers searches the server cannot run with a 400, never a 500', async () => {
    // A composite value without its second component, an ambiguous chain, a date that is none.
    for (const query of ['Observation?code-value-quantity=http://loinc.org|1', 'Observation?subject.name=x', 'Patient?birthdate=notadate']) {
      const res = await api().get(`/fhir/${query}`);
      expect({ query, status: res.status }).toEqual({ query, status: 400 });
      expect(res.body.issue[0].diagnostics).toBeTruthy();
    }
  });

  it('answers unknown paths outside the FHIR base with a 404 OperationOutcome and carries a request id', async () => {
    const res = await api().get('/nothing-here').set('X-Request-Id', 'trace-123');
    expect(res.status).toBe(404);
    expect(res.headers['x-request-id']).toBe('trace-123');
    expect(res.body.resourceType).toBe('OperationOutcome');
  });
});

describe('writes while Redis is unreachable', () => {
  let server: TestServer;
  const api = () => request(server.app);

  beforeAll(async () => {
    // Nothing listens on port 1: the relay cannot reach Redis at all.
    server = await createTestServer('postgres', { redisUrl: 'redis://127.0.0.1:1' });
  });
  afterAll(async () => {
    await server.close();
  });

  it('keeps accepting writes, keeps every change event in the outbox, and says so on /readyz', async () => {
    for (let i = 0; i < 5; i++) {
      expect((await api().post('/fhir/Patient').set('Content-Type', FHIR_JSON).send({ resourceType: 'Patient' })).status).toBe(201);
    }
    const bundle = await api().post('/fhir').set('Content-Type', FHIR_JSON).send({
      resourceType: 'Bundle', type: 'transaction',
      entry: [1, 2, 3].map(() => ({ resource: { resourceType: 'Patient' }, request: { method: 'POST', url: 'Patient' } })),
    });
    expect(bundle.status).toBe(200);
    expect(await server.relay.pending()).toBe(8);
    const ready = await api().get('/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body.checks.database).toBe('ok');
    expect(ready.body.checks.redis).toMatch(/^unavailable/);
  });
});
