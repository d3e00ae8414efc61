/**
 * Binary's REST semantics (http.html#binary): a Binary is read as its raw content unless the client asks for FHIR
 * JSON, and may be written as raw content with its own Content-Type (X-Security-Context naming the resource that
 * governs access to it).
 *
 * Documents and images do not belong in a resource's JSON held in memory, so a module may provide a
 * BinaryContentStore: raw uploads are then streamed into it and the Binary written refers to the stored content
 * instead of holding `data`; reads stream the content out, as raw bytes or as the resource's base64 `data`. Without
 * a store, Binaries hold their data inline and raw uploads are refused (415).
 */
import type { Binary } from '@medplum/fhirtypes';
import { FhirError, issue, notSupported, outcome } from '../errors';
import { RawJson, type FhirRequest, type FhirResponse, type RouteContext, type StreamedBody } from './types';

/** Content a store holds for a Binary. */
export interface StoredContent {
  size: number;
  chunks(): AsyncIterable<Uint8Array>;
}

export interface BinaryContentStore {
  /** Largest content accepted, in bytes (413 beyond). */
  readonly maxBytes: number;
  /** Streams an upload into the store (413 beyond maxBytes) and returns `binary` referring to the stored content. */
  receive(body: AsyncIterable<Uint8Array>, binary: Binary): Promise<Binary>;
  /** A Binary's stored content; undefined when it holds none (its data is inline, or it has no content). */
  content(binary: Binary): Promise<StoredContent | undefined>;
}

const FHIR_JSON = 'application/fhir+json; charset=utf-8';

/**
 * Turns a raw Binary upload into a write of the Binary resource, once the guard has allowed the request: the
 * content goes to the store first (content-addressed, so a failed write leaves nothing a retry would duplicate).
 */
export async function withUploadedContent(ctx: RouteContext, request: FhirRequest, type: string, id?: string): Promise<FhirRequest> {
  const content = request.content;
  if (!content) {
    return request;
  }
  const contentType = request.headers['content-type']?.trim() || 'application/octet-stream';
  if (type !== 'Binary') {
    throw notSupported(415, `Content-Type "${contentType}" is not supported for ${type}; send application/fhir+json (only Binary takes raw content)`);
  }
  if (!ctx.binaryStore) {
    throw notSupported(415, `This server keeps Binary content inline only: send the Binary resource as application/fhir+json with its data in base64`);
  }
  const binary: Binary = { resourceType: 'Binary', ...(id ? { id } : {}), contentType };
  const securityContext = request.headers['x-security-context'];
  if (securityContext) {
    binary.securityContext = { reference: securityContext };
  }
  const body = await ctx.binaryStore.receive(content, binary);
  return { ...request, content: undefined, body, headers: { ...request.headers, 'content-type': FHIR_JSON } };
}

/** Whether the client asked for the raw content: an Accept header that names no JSON (`*\/*`, the content's type). */
export function wantsRawContent(request: FhirRequest): boolean {
  const accept = request.headers.accept;
  return accept !== undefined && accept.trim() !== '' && !/json/i.test(accept);
}

/**
 * The answer to a read of a Binary: its raw content when asked for, otherwise the resource, with stored content
 * streamed into `data` (never assembled in memory).
 */
export async function binaryReadResponse(ctx: RouteContext, request: FhirRequest, response: FhirResponse): Promise<FhirResponse> {
  if (response.status !== 200 || !(response.body instanceof RawJson)) {
    return response;
  }
  const binary = JSON.parse(response.body.text) as Binary;
  await assertSecurityContextVisible(ctx, binary);
  const stored = ctx.binaryStore ? await ctx.binaryStore.content(binary) : undefined;
  if (wantsRawContent(request)) {
    return { status: 200, headers: response.headers, stream: rawContent(binary, stored) };
  }
  if (!stored) {
    return response;
  }
  return { status: 200, headers: response.headers, stream: jsonWithData(binary, stored) };
}

/**
 * A Binary's securityContext is the resource that governs access to it (a DocumentReference, a Patient): whoever
 * may not read that (patient consent, scopes, care relationship) may not read the Binary either.
 */
async function assertSecurityContextVisible(ctx: RouteContext, binary: Binary): Promise<void> {
  const match = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/.exec(binary.securityContext?.reference ?? '');
  // A caller without restrictions (an administrator, the platform) may read it whatever governs it, even a context
  // that does not exist (which a restricted caller cannot tell from one hidden from it).
  if (!match || !ctx.repo.access) {
    return;
  }
  try {
    await ctx.repo.read(match[1], match[2], ctx.session?.tx);
  } catch (err) {
    if (err instanceof FhirError && (err.status === 403 || err.status === 404)) {
      throw new FhirError(403, outcome([issue('error', 'forbidden', `Binary/${binary.id} is governed by ${match[0]} (its securityContext), which this client may not read`)]));
    }
    // A governing resource that was deleted no longer restricts anyone beyond the Binary's own visibility.
    if (!(err instanceof FhirError && err.status === 410)) {
      throw err;
    }
  }
}

function rawContent(binary: Binary, stored: StoredContent | undefined): StreamedBody {
  const contentType = binary.contentType || 'application/octet-stream';
  if (stored) {
    return { contentType, length: stored.size, chunks: () => stored.chunks() };
  }
  const inline = Buffer.from(binary.data ?? '', 'base64');
  return {
    contentType,
    length: inline.length,
    chunks: async function* () {
      yield inline;
    },
  };
}

/** The Binary as FHIR JSON with its stored content as `data`, base64-encoded chunk by chunk. */
function jsonWithData(binary: Binary, stored: StoredContent): StreamedBody {
  const { data: _none, ...rest } = binary;
  const head = JSON.stringify(rest);
  const prefix = `${head.slice(0, -1)}${head.length > 2 ? ',' : ''}"data":"`;
  return {
    contentType: FHIR_JSON,
    length: Buffer.byteLength(prefix) + Math.ceil(stored.size / 3) * 4 + 2,
    chunks: async function* () {
      yield Buffer.from(prefix);
      // Base64 works on groups of three bytes: carry the remainder of each chunk over to the next.
      let carry = Buffer.alloc(0);
      for await (const chunk of stored.chunks()) {
        const bytes = carry.length ? Buffer.concat([carry, chunk]) : Buffer.from(chunk);
        const whole = bytes.length - (bytes.length % 3);
        if (whole > 0) {
          yield Buffer.from(bytes.subarray(0, whole).toString('base64'));
        }
        carry = bytes.subarray(whole);
      }
      yield Buffer.from(`${carry.toString('base64')}"}`);
    },
  };
}

/** 413 for content beyond a store's limit (for stores to throw while they stream). */
export function contentTooLarge(maxBytes: number): FhirError {
  return new FhirError(413, outcome([issue('error', 'too-costly', `The content exceeds the limit of ${maxBytes} bytes`)]));
}
