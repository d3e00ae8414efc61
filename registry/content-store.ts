/**
 * Document content, stored once by its SHA-256 in chunks of 256 KiB in this module's tables (migration 7500).
 *
 * Why PostgreSQL rather than files in DATA_DIR: the platform's worker processes (and, behind a load balancer,
 * several machines) share the database but not necessarily a disk; content written inside the write's transaction
 * (an ITI-65 bundle's Binary) commits or rolls back with it; and backups of the database hold the documents too.
 *
 * A Binary refers to its content with an extension on `meta` (Binary, not a DomainResource, has no `extension`):
 * `{url: CONTENT_EXTENSION, valueAttachment: {url: 'urn:sha256:<hex>', size}}`. Uploads stream in (fhir-server's
 * BinaryContentStore seam), downloads stream out a few chunks at a time: no document is ever held whole in memory.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Binary, Extension } from '@medplum/fhirtypes';
import { contentTooLarge, unprocessable, type BinaryContentStore, type Database, type Queryable, type StoredContent } from '../fhir-server';

export const CONTENT_EXTENSION = 'http://huimin.health/fhir/StructureDefinition/binary-content';
const CHUNK_BYTES = 256 * 1024;
/** Chunks fetched per round trip when streaming out (1 MiB). */
const READ_BATCH = 4;

/**
 * The content references this process's uploads produced, by object identity. A Binary may refer to stored content
 * only when the reference came from an upload (or is the one its previous version had): a client that learnt a
 * hash (from a Binary it may read, or guessed it for a small file) must not get content it cannot read by writing
 * a Binary of its own that refers to it.
 */
const issuedRefs = new WeakSet<object>();

/** Whether this reference object was produced by an upload in this process (see issuedRefs). */
export function isIssuedRef(binary: Binary): boolean {
  const attachment = binary.meta?.extension?.find((e) => e.url === CONTENT_EXTENSION)?.valueAttachment;
  return attachment !== undefined && issuedRefs.has(attachment);
}

export interface ContentRef {
  hash: string;
  size: number;
}

/** The stored content a Binary refers to, if any. */
export function contentRefOf(binary: Binary): ContentRef | undefined {
  const ext = binary.meta?.extension?.find((e) => e.url === CONTENT_EXTENSION);
  const url = ext?.valueAttachment?.url;
  const match = url ? /^urn:sha256:([0-9a-f]{64})$/.exec(url) : null;
  return match ? { hash: match[1], size: Number(ext?.valueAttachment?.size ?? 0) } : undefined;
}

/** `binary` referring to stored content (instead of holding `data`). */
export function withContentRef(binary: Binary, ref: ContentRef): Binary {
  const { data: _moved, ...rest } = binary;
  const extension: Extension[] = (binary.meta?.extension ?? []).filter((e) => e.url !== CONTENT_EXTENSION);
  extension.push({ url: CONTENT_EXTENSION, valueAttachment: { url: `urn:sha256:${ref.hash}`, size: ref.size } });
  return { ...rest, meta: { ...binary.meta, extension } };
}

export class ChunkedContentStore implements BinaryContentStore {
  constructor(
    private readonly db: Database,
    readonly maxBytes: number,
  ) {}

  async receive(body: AsyncIterable<Uint8Array>, binary: Binary): Promise<Binary> {
    const uploaded = withContentRef(binary, await this.upload(body));
    const attachment = uploaded.meta?.extension?.find((e) => e.url === CONTENT_EXTENSION)?.valueAttachment;
    if (attachment) {
      issuedRefs.add(attachment);
    }
    return uploaded;
  }

  async content(binary: Binary): Promise<StoredContent | undefined> {
    const ref = contentRefOf(binary);
    if (!ref) {
      return undefined;
    }
    const size = await this.sizeOf(ref.hash);
    if (size === undefined) {
      throw unprocessable([{ severity: 'error', code: 'not-found', diagnostics: `Binary/${binary.id} refers to content sha256:${ref.hash} that is not stored` }]);
    }
    return { size, chunks: () => this.chunks(ref.hash) };
  }

  /** The stored size of some content, undefined when it is not stored. */
  async sizeOf(hash: string, q: Queryable = this.db): Promise<number | undefined> {
    const rows = await q.query<{ size: string }>('SELECT size FROM document_content WHERE hash = $1', [hash]);
    return rows[0] ? Number(rows[0].size) : undefined;
  }

  /**
   * Streams an upload in: each chunk is written as it fills (outside any transaction, so a slow client holds no
   * locks), then the whole is named by its hash in one short transaction. Beyond maxBytes it stops reading and
   * removes what it wrote (413).
   */
  async upload(body: AsyncIterable<Uint8Array>): Promise<ContentRef> {
    const uploadKey = `upload:${randomUUID()}`;
    const hash = createHash('sha256');
    let size = 0;
    let seq = 0;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const writeChunk = async (data: Buffer): Promise<void> => {
      await this.db.query('INSERT INTO document_content_chunk (content_key, seq, data) VALUES ($1, $2, $3)', [uploadKey, seq++, data]);
    };
    try {
      for await (const piece of body) {
        const bytes = Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
        size += bytes.length;
        if (size > this.maxBytes) {
          throw contentTooLarge(this.maxBytes);
        }
        hash.update(bytes);
        pending.push(bytes);
        pendingBytes += bytes.length;
        while (pendingBytes >= CHUNK_BYTES) {
          const all = Buffer.concat(pending);
          await writeChunk(all.subarray(0, CHUNK_BYTES));
          pending = [all.subarray(CHUNK_BYTES)];
          pendingBytes = all.length - CHUNK_BYTES;
        }
      }
      if (pendingBytes > 0) {
        await writeChunk(Buffer.concat(pending));
      }
    } catch (err) {
      await this.db.query('DELETE FROM document_content_chunk WHERE content_key = $1', [uploadKey]);
      throw err;
    }
    const hex = hash.digest('hex');
    await this.db.transaction(async (tx) => {
      // Content stored already is marked used now, so that the collector leaves it for its grace period: the Binary
      // that will refer to it is written next (a collection that got there first deleted it: then it is new again).
      const [{ inserted }] = await tx.query<{ inserted: boolean }>(
        `INSERT INTO document_content (hash, size, chunk_count) VALUES ($1, $2, $3)
         ON CONFLICT (hash) DO UPDATE SET last_used = now() RETURNING (xmax = 0) AS inserted`,
        [hex, size, seq],
      );
      if (inserted) {
        await tx.query('UPDATE document_content_chunk SET content_key = $1 WHERE content_key = $2', [`sha256:${hex}`, uploadKey]);
      } else {
        await tx.query('DELETE FROM document_content_chunk WHERE content_key = $1', [uploadKey]);
      }
    });
    return { hash: hex, size };
  }

  /**
   * Stores content that is already in memory (a Binary's base64 `data` from a JSON body, bounded by the request
   * size limit), inside the caller's transaction so that it commits with the Binary.
   */
  async storeBytes(q: Queryable, bytes: Buffer): Promise<ContentRef> {
    if (bytes.length > this.maxBytes) {
      throw contentTooLarge(this.maxBytes);
    }
    const hex = createHash('sha256').update(bytes).digest('hex');
    const chunkCount = Math.ceil(bytes.length / CHUNK_BYTES);
    // Stored already: marked used (and locked until the caller's transaction ends, see collectOrphans).
    const [{ inserted }] = await q.query<{ inserted: boolean }>(
      `INSERT INTO document_content (hash, size, chunk_count) VALUES ($1, $2, $3)
       ON CONFLICT (hash) DO UPDATE SET last_used = now() RETURNING (xmax = 0) AS inserted`,
      [hex, bytes.length, chunkCount],
    );
    if (inserted) {
      for (let seq = 0; seq < chunkCount; seq++) {
        await q.query('INSERT INTO document_content_chunk (content_key, seq, data) VALUES ($1, $2, $3)', [`sha256:${hex}`, seq, bytes.subarray(seq * CHUNK_BYTES, (seq + 1) * CHUNK_BYTES)]);
      }
    }
    return { hash: hex, size: bytes.length };
  }

  /**
   * Records, in the Binary's write transaction, that it uses this content: the content is marked used now and its
   * row stays locked until that transaction ends, so that a concurrent collection either waits or finds it gone.
   * Returns the content's size, undefined when it is not stored (a collection removed it: the write must fail).
   */
  async use(q: Queryable, binaryId: string, hash: string): Promise<number | undefined> {
    const rows = await q.query<{ size: string }>('UPDATE document_content SET last_used = now() WHERE hash = $1 RETURNING size', [hash]);
    if (!rows[0]) {
      return undefined;
    }
    await q.query(
      'INSERT INTO document_content_use (binary_id, hash) VALUES ($1, $2) ON CONFLICT (binary_id) DO UPDATE SET hash = EXCLUDED.hash',
      [binaryId, hash],
    );
    return Number(rows[0].size);
  }

  /** In a Binary's delete transaction: it no longer uses any content. */
  async release(q: Queryable, binaryId: string): Promise<void> {
    await q.query('DELETE FROM document_content_use WHERE binary_id = $1', [binaryId]);
  }

  /**
   * Removes content no Binary uses (deleted Binaries', replaced versions', uploads never referred to) once it has
   * not been used for `graceMs`, with its chunks; up to `batch` contents per call. Returns the hashes removed.
   *
   * The race with a concurrent upload or Binary write of the same SHA-256: every use sets last_used on the content
   * row inside its own transaction (use(), storeBytes(), upload()), which locks the row until it commits. The
   * collector locks its victims with SKIP LOCKED, so content being used right now is skipped; content whose use
   * committed meanwhile is re-checked under the lock (its last_used is recent again) and left. A use that comes
   * after the collector took its lock waits for it: the row is then gone, and the upload stores the content again
   * (INSERT … ON CONFLICT finds no conflict) or the Binary write fails cleanly (use() finds nothing: 422), never a
   * Binary that refers to removed content.
   */
  async collectOrphans(graceMs: number, batch = 500): Promise<string[]> {
    return this.db.transaction(async (tx) => {
      const victims = await tx.query<{ hash: string }>(
        `SELECT c.hash FROM document_content c
         WHERE c.tracked AND c.last_used < now() - $1 * interval '1 millisecond'
           AND NOT EXISTS (SELECT 1 FROM document_content_use u WHERE u.hash = c.hash)
         ORDER BY c.last_used LIMIT $2
         FOR UPDATE OF c SKIP LOCKED`,
        [graceMs, batch],
      );
      const hashes = victims.map((v) => v.hash);
      if (hashes.length === 0) {
        return [];
      }
      await tx.query(`DELETE FROM document_content_chunk WHERE content_key = ANY($1::text[])`, [hashes.map((h) => `sha256:${h}`)]);
      await tx.query('DELETE FROM document_content WHERE hash = ANY($1::text[])', [hashes]);
      return hashes;
    });
  }

  /**
   * Removes the chunks of uploads that never finished (the process died mid-upload; a finished or refused upload
   * removes its own) once they are older than `olderThanMs`. Returns how many chunks were removed.
   */
  async sweepAbandonedUploads(olderThanMs = 24 * 3600 * 1000): Promise<number> {
    const rows = await this.db.query(
      `DELETE FROM document_content_chunk WHERE content_key LIKE 'upload:%' AND created_at < now() - $1 * interval '1 millisecond' RETURNING seq`,
      [olderThanMs],
    );
    return rows.length;
  }

  /** The content's bytes, a few chunks per round trip. */
  async *chunks(hash: string, q: Queryable = this.db): AsyncIterable<Buffer> {
    let next = 0;
    for (;;) {
      const rows = await q.query<{ seq: number; data: Uint8Array }>(
        'SELECT seq, data FROM document_content_chunk WHERE content_key = $1 AND seq >= $2 ORDER BY seq LIMIT $3',
        [`sha256:${hash}`, next, READ_BATCH],
      );
      for (const row of rows) {
        yield Buffer.from(row.data.buffer, row.data.byteOffset, row.data.byteLength);
      }
      if (rows.length < READ_BATCH) {
        return;
      }
      next = rows[rows.length - 1].seq + 1;
    }
  }
}
