/**
 * Binary content through fhir-server's BinaryContentStore seam: raw uploads streamed into chunks stored once by
 * hash, raw and FHIR JSON reads streamed back, the size limit, inline data moved out of the JSON.
 */
import { createHash, randomBytes } from 'node:crypto';
import request from 'supertest';
import type { Backend } from '../../test/databases';
import type { TestServer } from '../../test/server';
import { CONTENT_EXTENSION, sweepAbandonedUploads } from '..';
import { createRegistryServer } from './harness';


const binaryParser = (res: request.Response, done: (err: Error | null, body: Buffer) => void): void => {
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  res.on('end', () => done(null, Buffer.concat(chunks)));
};

describe.each<Backend>(['postgres', 'pglite'])('Binary content on %s', (backend) => {
  let server: TestServer;

  beforeAll(async () => {
    server = await createRegistryServer({ documentMaxBytes: 2 * 1024 * 1024, backend });
  });

  afterAll(async () => {
    await server.close();
  });

  describe('raw Binary content', () => {
    const content = randomBytes(700 * 1024 + 17);
    let id: string;

    it('streams a raw upload into the store and keeps the resource free of data', async () => {
      const res = await request(server.app).post('/fhir/Binary').set('Content-Type', 'application/pdf').send(content);
      expect(res.status).toBe(201);
      id = res.body.id;
      expect(res.body.contentType).toBe('application/pdf');
      expect(res.body.data).toBeUndefined();
      const ext = res.body.meta.extension.find((e: { url: string }) => e.url === CONTENT_EXTENSION);
      expect(ext.valueAttachment).toEqual({ url: `urn:sha256:${createHash('sha256').update(content).digest('hex')}`, size: content.length });
      const chunks = await server.db.query<{ n: string }>('SELECT count(*) AS n FROM document_content_chunk');
      expect(Number(chunks[0].n)).toBe(3);
    });

    it('answers a read with the raw bytes unless FHIR JSON is asked for', async () => {
      const raw = await request(server.app).get(`/fhir/Binary/${id}`).set('Accept', '*/*').buffer(true).parse(binaryParser);
      expect(raw.status).toBe(200);
      expect(raw.headers['content-type']).toBe('application/pdf');
      expect(Number(raw.headers['content-length'])).toBe(content.length);
      expect((raw.body as Buffer).equals(content)).toBe(true);
      expect(raw.headers.etag).toBe('W/"1"');
    });

    it('streams the content into data when FHIR JSON is asked for', async () => {
      const json = await request(server.app).get(`/fhir/Binary/${id}`).set('Accept', 'application/fhir+json');
      expect(json.status).toBe(200);
      expect(json.body.resourceType).toBe('Binary');
      expect(Buffer.from(json.body.data, 'base64').equals(content)).toBe(true);
      const format = await request(server.app).get(`/fhir/Binary/${id}?_format=json`).set('Accept', 'application/pdf');
      expect(format.body.data.length).toBe(Math.ceil(content.length / 3) * 4);
    });

    it('stores content sent twice once', async () => {
      const again = await request(server.app).post('/fhir/Binary').set('Content-Type', 'application/pdf').send(content);
      expect(again.status).toBe(201);
      expect(again.body.id).not.toBe(id);
      const rows = await server.db.query<{ n: string }>('SELECT count(*) AS n FROM document_content');
      expect(Number(rows[0].n)).toBe(1);
      const uploads = await server.db.query<{ n: string }>("SELECT count(*) AS n FROM document_content_chunk WHERE content_key LIKE 'upload:%'");
      expect(Number(uploads[0].n)).toBe(0);
    });

    it('replaces the content with PUT and keeps the old version readable', async () => {
      const res = await request(server.app).put(`/fhir/Binary/${id}`).set('Content-Type', 'text/plain; charset=utf-8').send('second version');
      expect(res.status).toBe(200);
      const raw = await request(server.app).get(`/fhir/Binary/${id}`).set('Accept', 'text/plain');
      expect(raw.text).toBe('second version');
      const old = await request(server.app).get(`/fhir/Binary/${id}/_history/1`).set('Accept', '*/*').buffer(true).parse(binaryParser);
      expect((old.body as Buffer).equals(content)).toBe(true);
    });

    it('refuses content beyond the limit with 413 and leaves nothing behind', async () => {
      const before = await server.db.query<{ n: string }>('SELECT count(*) AS n FROM document_content_chunk');
      const res = await request(server.app).post('/fhir/Binary').set('Content-Type', 'application/octet-stream').send(randomBytes(2 * 1024 * 1024 + 1));
      expect(res.status).toBe(413);
      expect(res.body.issue[0].diagnostics).toMatch(/exceeds the limit of 2097152 bytes/);
      const after = await server.db.query<{ n: string }>('SELECT count(*) AS n FROM document_content_chunk');
      expect(after[0].n).toBe(before[0].n);
    });

    it('takes the governing resource of a raw upload from X-Security-Context', async () => {
      const patient = (await request(server.app).post('/fhir/Patient').set('Content-Type', 'application/fhir+json').send({ resourceType: 'Patient' })).body;
      const res = await request(server.app).post('/fhir/Binary').set('Content-Type', 'image/png').set('X-Security-Context', `Patient/${patient.id}`).send(randomBytes(100));
      expect(res.status).toBe(201);
      expect(res.body.securityContext).toEqual({ reference: `Patient/${patient.id}` });
    });

    it('sweeps the chunks of uploads a crash left unfinished, once they are old enough', async () => {
      await server.db.query("INSERT INTO document_content_chunk (content_key, seq, data, created_at) VALUES ('upload:crashed', 0, $1, now() - interval '2 days'), ('upload:running', 0, $1, now())", [Buffer.from('x')]);
      expect(await sweepAbandonedUploads(server.db)).toBe(1);
      const left = await server.db.query<{ content_key: string }>("SELECT content_key FROM document_content_chunk WHERE content_key LIKE 'upload:%'");
      expect(left.map((r) => r.content_key)).toEqual(['upload:running']);
      await server.db.query("DELETE FROM document_content_chunk WHERE content_key = 'upload:running'");
    });

    it('refuses raw content for other resource types', async () => {
      const res = await request(server.app).post('/fhir/Patient').set('Content-Type', 'text/plain').send('hello');
      expect(res.status).toBe(415);
    });

    it('needs the create scope for a raw upload, checked before the body is read', async () => {
      const { token } = await server.tokenFor({ role: 'facility-system', organization: 'Organization/x', scope: 'system/Binary.rs' });
      const res = await request(server.rawApp).post('/fhir/Binary').set('Authorization', `Bearer ${token}`).set('Content-Type', 'application/pdf').send(randomBytes(1000));
      expect(res.status).toBe(403);
    });
  });

  describe('inline Binary data', () => {
    it('moves base64 data of a JSON Binary into the store, and reads it back', async () => {
      const text = Buffer.from('内联的内容 inline content');
      const res = await request(server.app).post('/fhir/Binary').set('Content-Type', 'application/fhir+json').send({ resourceType: 'Binary', contentType: 'text/plain', data: text.toString('base64') });
      expect(res.status).toBe(201);
      expect(res.body.data).toBeUndefined();
      const stored = await server.db.query<{ content: string }>('SELECT content FROM resource WHERE res_type = $1 AND id = $2', ['Binary', res.body.id]);
      expect(stored[0].content).not.toContain('"data"');
      const raw = await request(server.app).get(`/fhir/Binary/${res.body.id}`).set('Accept', 'text/plain');
      expect(raw.text).toBe(text.toString());
      const json = await request(server.app).get(`/fhir/Binary/${res.body.id}`);
      expect(Buffer.from(json.body.data, 'base64').equals(text)).toBe(true);
    });

    it('refuses a JSON Binary that refers to stored content it did not upload', async () => {
      const secret = await request(server.app).post('/fhir/Binary').set('Content-Type', 'text/plain').send('another hospital\'s document');
      const ref = secret.body.meta.extension.find((e: { url: string }) => e.url === CONTENT_EXTENSION);
      for (const valueAttachment of [ref.valueAttachment, { url: `urn:sha256:${'0'.repeat(64)}`, size: 3 }]) {
        const res = await request(server.app).post('/fhir/Binary').set('Content-Type', 'application/fhir+json').send({ resourceType: 'Binary', contentType: 'text/plain', meta: { extension: [{ url: CONTENT_EXTENSION, valueAttachment }] } });
        expect(res.status).toBe(422);
        expect(res.body.issue[0].diagnostics).toMatch(/was not produced by an upload/);
      }
    });

    it('keeps the stored content when a JSON update leaves the reference as it was', async () => {
      const uploaded = await request(server.app).post('/fhir/Binary').set('Content-Type', 'text/plain').send('kept');
      const res = await request(server.app).put(`/fhir/Binary/${uploaded.body.id}`).set('Content-Type', 'application/fhir+json').send({ ...uploaded.body, contentType: 'text/markdown' });
      expect(res.status).toBe(200);
      const raw = await request(server.app).get(`/fhir/Binary/${uploaded.body.id}`).set('Accept', 'text/markdown');
      expect(raw.text).toBe('kept');
    });
  });
});
