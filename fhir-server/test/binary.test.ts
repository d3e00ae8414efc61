/**
 * Binary's REST semantics without a content store (rest/binary.ts): raw reads of inline data, FHIR JSON on
 * request, raw uploads refused, securityContext governing reads; and transactions that link entries by fullUrl
 * in uri/url elements (bundle.html#references).
 */
import type { Bundle, DocumentReference } from '@medplum/fhirtypes';
import request from 'supertest';
import { createTestServer, type TestServer } from '../../test/server';

let server: TestServer;

beforeAll(async () => {
  server = await createTestServer('postgres');
});

afterAll(async () => {
  await server.close();
});

describe('Binary without a content store', () => {
  let id: string;

  beforeAll(async () => {
    const res = await request(server.app).post('/fhir/Binary').set('Content-Type', 'application/fhir+json').send({ resourceType: 'Binary', contentType: 'text/plain', data: Buffer.from('hello').toString('base64') });
    expect(res.status).toBe(201);
    id = res.body.id;
  });

  it('answers the raw content when the Accept header names no JSON', async () => {
    const res = await request(server.app).get(`/fhir/Binary/${id}`).set('Accept', 'text/plain');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/plain');
    expect(res.text).toBe('hello');
  });

  it('answers the resource without an Accept header, with a JSON one, or with _format', async () => {
    for (const req of [request(server.app).get(`/fhir/Binary/${id}`), request(server.app).get(`/fhir/Binary/${id}`).set('Accept', 'application/fhir+json'), request(server.app).get(`/fhir/Binary/${id}?_format=json`).set('Accept', 'text/plain')]) {
      const res = await req;
      expect(res.body).toMatchObject({ resourceType: 'Binary', data: Buffer.from('hello').toString('base64') });
    }
  });

  it('refuses raw uploads: without a store Binaries hold their data inline', async () => {
    const res = await request(server.app).post('/fhir/Binary').set('Content-Type', 'application/pdf').send(Buffer.from('%PDF'));
    expect(res.status).toBe(415);
    expect(res.body.issue[0].diagnostics).toMatch(/keeps Binary content inline only/);
  });

  it('keeps XML in Accept refused for everything but Binary reads', async () => {
    const res = await request(server.app).get(`/fhir/Patient`).set('Accept', 'application/fhir+xml');
    expect(res.status).toBe(406);
  });
});

describe('securityContext governs who reads a Binary', () => {
  it('hides the Binary from a client that may not read its securityContext, like one that does not exist', async () => {
    const patient = (await request(server.app).post('/fhir/Patient').set('Content-Type', 'application/fhir+json').send({ resourceType: 'Patient' })).body;
    const binary = (await request(server.app).post('/fhir/Binary').set('Content-Type', 'application/fhir+json').send({ resourceType: 'Binary', contentType: 'text/plain', securityContext: { reference: `Patient/${patient.id}` }, data: 'aGk=' })).body;
    const { token } = await server.tokenFor({ role: 'facility-system', organization: 'Organization/h1', scope: 'system/Binary.r' });
    const res = await request(server.rawApp).get(`/fhir/Binary/${binary.id}`).set('Authorization', `Bearer ${token}`).set('Accept', 'text/plain');
    expect(res.status).toBe(404);
    expect(res.body.issue[0].diagnostics).toBe(`Binary/${binary.id} is not known, or not visible to this client`);
  });
});

describe('transactions link entries by fullUrl in uri and url elements', () => {
  it('rewrites an attachment url naming another entry', async () => {
    const res = await request(server.app).post('/fhir').set('Content-Type', 'application/fhir+json').send({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { fullUrl: 'urn:uuid:6a9f7c1e-3a3d-4f39-9d4b-6b1f0c2b1a01', resource: { resourceType: 'DocumentReference', status: 'current', description: 'urn:uuid:6a9f7c1e-3a3d-4f39-9d4b-6b1f0c2b1a02 stays', content: [{ attachment: { url: 'urn:uuid:6a9f7c1e-3a3d-4f39-9d4b-6b1f0c2b1a02' } }] }, request: { method: 'POST', url: 'DocumentReference' } },
        { fullUrl: 'urn:uuid:6a9f7c1e-3a3d-4f39-9d4b-6b1f0c2b1a02', resource: { resourceType: 'Binary', contentType: 'text/plain', data: 'aGk=' }, request: { method: 'POST', url: 'Binary' } },
      ],
    } as Bundle);
    expect(res.status).toBe(200);
    const doc = res.body.entry[0].resource as DocumentReference;
    expect(doc.content[0].attachment.url).toBe(`Binary/${res.body.entry[1].resource.id}`);
    expect(doc.description).toBe('urn:uuid:6a9f7c1e-3a3d-4f39-9d4b-6b1f0c2b1a02 stays');
  });
});
