/**
 * Collection of document content no Binary uses: shared content stays while one Binary uses it, goes (with its
 * chunks) once none does and its grace period is over; a concurrent use of the same SHA-256 is never lost to it;
 * `$collect-content` is for administrators.
 */
import { createHash, randomBytes } from 'node:crypto';
import request from 'supertest';
import type { TestServer } from '../../test/server';
import { ChunkedContentStore, collectUnusedContent } from '..';
import { createRegistryServer } from './harness';

const FHIR_JSON = 'application/fhir+json';

describe('collecting content no Binary uses', () => {
  let server: TestServer;
  let store: ChunkedContentStore;

  const stored = async (hash: string): Promise<{ content: number; chunks: number }> => {
    const [c] = await server.db.query<{ n: number }>('SELECT count(*) AS n FROM document_content WHERE hash = $1', [hash]);
    const [k] = await server.db.query<{ n: number }>('SELECT count(*) AS n FROM document_content_chunk WHERE content_key = $1', [`sha256:${hash}`]);
    return { content: Number(c.n), chunks: Number(k.n) };
  };
  const postBinary = async (bytes: Buffer): Promise<string> => {
    const res = await request(server.app).post('/fhir/Binary').set('Content-Type', FHIR_JSON).send({ resourceType: 'Binary', contentType: 'application/pdf', data: bytes.toString('base64') });
    expect(res.status).toBe(201);
    return res.body.id as string;
  };
  const deleteBinary = async (id: string): Promise<void> => {
    expect((await request(server.app).delete(`/fhir/Binary/${id}`)).status).toBe(200);
  };

  beforeAll(async () => {
    server = await createRegistryServer({ documentMaxBytes: 2 * 1024 * 1024 });
    store = new ChunkedContentStore(server.db, 2 * 1024 * 1024);
  }, 300_000);
  afterAll(async () => {
    await server.close();
  });

  it('keeps content while one Binary uses it, and removes it with its chunks once none does', async () => {
    const bytes = randomBytes(300 * 1024);
    const hash = createHash('sha256').update(bytes).digest('hex');
    const [a, b] = [await postBinary(bytes), await postBinary(bytes)];
    expect(await stored(hash)).toEqual({ content: 1, chunks: 2 });
    await deleteBinary(a);
    expect(await collectUnusedContent(server.db, 0)).toBe(0);
    // Within the grace period even unused content stays (an upload's Binary may be on its way).
    await deleteBinary(b);
    expect(await collectUnusedContent(server.db, 3_600_000)).toBe(0);
    expect(await stored(hash)).toEqual({ content: 1, chunks: 2 });
    expect(await collectUnusedContent(server.db, 0)).toBe(1);
    expect(await stored(hash)).toEqual({ content: 0, chunks: 0 });
  });

  it('removes an upload no Binary ever referred to, after its grace period', async () => {
    const bytes = randomBytes(1000);
    const { hash } = await store.upload((async function* () { yield bytes; })());
    expect(await collectUnusedContent(server.db, 3_600_000)).toBe(0);
    expect(await collectUnusedContent(server.db, 0)).toBe(1);
    expect((await stored(hash)).content).toBe(0);
  });

  it('never removes content a concurrent transaction is starting to use (the same SHA-256 uploaded again)', async () => {
    const bytes = randomBytes(2000);
    const hash = createHash('sha256').update(bytes).digest('hex');
    await deleteBinary(await postBinary(bytes));
    // A Binary write of the same content is under way: its transaction has stored (found) the content and holds it.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let using!: () => void;
    const inUse = new Promise<void>((resolve) => (using = resolve));
    const writer = server.db.transaction(async (tx) => {
      await store.storeBytes(tx, bytes);
      await store.use(tx, 'concurrent-binary', hash);
      using();
      await held;
    });
    await inUse;
    // The collector skips what is locked, whatever its grace period says.
    expect(await store.collectOrphans(0)).toEqual([]);
    release();
    await writer;
    // Committed: in use, so kept.
    expect(await collectUnusedContent(server.db, 0)).toBe(0);
    expect(await stored(hash)).toEqual({ content: 1, chunks: 1 });
  });

  it('makes a use that comes after a collection fail cleanly rather than refer to removed content', async () => {
    const bytes = randomBytes(500);
    const hash = createHash('sha256').update(bytes).digest('hex');
    await deleteBinary(await postBinary(bytes));
    expect(await collectUnusedContent(server.db, 0)).toBeGreaterThanOrEqual(1);
    expect(await server.db.transaction((tx) => store.use(tx, 'late-binary', hash))).toBeUndefined();
    // Stored again by whoever has the bytes: a new content row and its chunks.
    await server.db.transaction((tx) => store.storeBytes(tx, bytes));
    expect(await stored(hash)).toEqual({ content: 1, chunks: 1 });
  });

  it('is an operation for administrators: $collect-content', async () => {
    const bytes = randomBytes(100);
    await deleteBinary(await postBinary(bytes));
    const body = { resourceType: 'Parameters', parameter: [{ name: 'graceSeconds', valueInteger: 0 }] };
    const res = await request(server.app).post('/fhir/$collect-content').set('Content-Type', FHIR_JSON).send(body);
    expect(res.status).toBe(200);
    expect(res.body.parameter[0]).toMatchObject({ name: 'removed' });
    expect(res.body.parameter[0].valueInteger).toBeGreaterThanOrEqual(1);
    const { token } = await server.tokenFor({ role: 'facility-system', organization: 'Organization/x', scope: 'system/*.*' });
    const refused = await request(server.rawApp).post('/fhir/$collect-content').set('Authorization', `Bearer ${token}`).set('Content-Type', FHIR_JSON).send(body);
    expect(refused.status).toBe(403);
    const bad = await request(server.app).post('/fhir/$collect-content').set('Content-Type', FHIR_JSON).send({ resourceType: 'Parameters', parameter: [{ name: 'graceSeconds', valueInteger: -1 }] });
    expect(bad.status).toBe(400);
  });
});
