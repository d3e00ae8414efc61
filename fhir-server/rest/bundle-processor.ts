/**
 * Batch and transaction bundles (http.html#transaction). A transaction runs every entry in one database
 * transaction, in the spec's order (DELETE, POST, PUT/PATCH, then GET/HEAD), with `urn:uuid:`/`urn:oid:`
 * fullUrls and conditional references resolved first; it is all or nothing. A batch runs each entry on its own.
 */
import { randomUUID } from 'node:crypto';
import type { Bundle, BundleEntry, BundleEntryResponse, Resource } from '@medplum/fhirtypes';
import { badRequest, describeError, FhirError, notSupported, outcome, preconditionFailed } from '../errors';
import { visitReferences, type WriteSession } from '../repository';
import { route } from './router';
import { RawJson, parseBody, type FhirMethod, type FhirRequest, type FhirResponse, type RouteContext } from './types';

const METHOD_ORDER: Record<string, number> = { DELETE: 0, POST: 1, PUT: 2, PATCH: 2, GET: 3, HEAD: 3 };
const CONDITIONAL_REFERENCE = /^([A-Z][A-Za-z]+)\?(.+)$/;

interface ParsedEntry {
  index: number;
  fullUrl?: string;
  request: FhirRequest;
}

const STATUS_TEXT: Record<number, string> = { 200: 'OK', 201: 'Created', 204: 'No Content', 304: 'Not Modified' };

export async function processBundle(ctx: RouteContext, request: FhirRequest): Promise<FhirResponse> {
  const bundle = request.body as Bundle | undefined;
  if (!bundle || typeof bundle !== 'object' || bundle.resourceType !== 'Bundle') {
    throw badRequest('POST to the base URL takes a Bundle of type batch or transaction');
  }
  if (bundle.type !== 'batch' && bundle.type !== 'transaction') {
    throw badRequest(`Bundle.type must be "batch" or "transaction" to be processed, got "${String(bundle.type)}"`, ['Bundle.type']);
  }
  if (ctx.session) {
    throw badRequest('A bundle cannot be nested inside a transaction');
  }
  const entries = (bundle.entry ?? []).map((entry, index) => parseEntry(ctx, entry, index));
  const responses = bundle.type === 'transaction' ? await transaction(ctx, entries) : await batch(ctx, entries);
  const prefer = request.headers.prefer;
  const body: Bundle = {
    resourceType: 'Bundle',
    id: randomUUID(),
    type: bundle.type === 'transaction' ? 'transaction-response' : 'batch-response',
    entry: responses.map((r) => responseEntry(r, prefer)),
  };
  return { status: 200, body };
}

function parseEntry(ctx: RouteContext, entry: BundleEntry, index: number): ParsedEntry {
  const where = `Bundle.entry[${index}]`;
  const method = entry.request?.method;
  const url = entry.request?.url;
  if (!method || !(method in METHOD_ORDER) || !url) {
    throw badRequest(`${where}.request needs a method (GET, HEAD, POST, PUT, PATCH, DELETE) and a url`, [`${where}.request`]);
  }
  const relative = url.startsWith(`${ctx.baseUrl}/`) ? url.slice(ctx.baseUrl.length + 1) : url;
  const queryAt = relative.indexOf('?');
  const path = queryAt >= 0 ? relative.slice(0, queryAt) : relative;
  const query = new URLSearchParams(queryAt >= 0 ? relative.slice(queryAt + 1) : '');
  let body: unknown = entry.resource;
  const headers: FhirRequest['headers'] = {
    'if-match': entry.request?.ifMatch,
    'if-none-match': entry.request?.ifNoneMatch,
    'if-none-exist': entry.request?.ifNoneExist,
    'if-modified-since': entry.request?.ifModifiedSince,
  };
  if (method === 'PATCH' && entry.resource?.resourceType !== 'Parameters') {
    // FHIRPath Patch travels as the Parameters resource itself; JSON Patch inside a Binary.
    body = patchBody(entry.resource, where);
    headers['content-type'] = 'application/json-patch+json';
  }
  return { index, fullUrl: entry.fullUrl, request: { method: method as FhirMethod, path, query, body, headers } };
}

/** In a bundle a JSON Patch travels as a Binary resource holding the patch document. */
function patchBody(resource: Resource | undefined, where: string): unknown {
  if (resource?.resourceType !== 'Binary' || !resource.data) {
    throw badRequest(`${where}: a PATCH entry carries a FHIRPath Patch (Parameters) or a JSON Patch in a Binary resource (contentType application/json-patch+json)`, [`${where}.resource`]);
  }
  try {
    return JSON.parse(Buffer.from(resource.data, 'base64').toString('utf8'));
  } catch {
    throw badRequest(`${where}: the Binary's data is not a base64-encoded JSON Patch`, [`${where}.resource.data`]);
  }
}

async function batch(ctx: RouteContext, entries: ParsedEntry[]): Promise<FhirResponse[]> {
  const responses: FhirResponse[] = [];
  // Entries of a batch are independent: each succeeds or fails on its own, in order.
  for (const entry of entries) {
    try {
      responses.push(await route(ctx, entry.request));
    } catch (err) {
      const { status, outcome: oo } = describeError(err);
      responses.push({ status, body: oo });
    }
  }
  return responses;
}

async function transaction(ctx: RouteContext, original: ParsedEntry[]): Promise<FhirResponse[]> {
  return ctx.repo.write(async (session) => {
    // Resolution rewrites bodies; a retried attempt must start again from the bundle as received.
    const entries = original.map((e) => ({ ...e, request: { ...e.request, body: structuredClone(e.request.body) } }));
    const inner: RouteContext = { ...ctx, session };
    await resolveIdentities(session, entries);
    const ordered = [...entries].sort((a, b) => METHOD_ORDER[a.request.method] - METHOD_ORDER[b.request.method] || a.index - b.index);
    const responses: FhirResponse[] = new Array(entries.length);
    let flushed = false;
    for (const entry of ordered) {
      if (!flushed && METHOD_ORDER[entry.request.method] === 3) {
        // Reads see what the transaction wrote.
        await session.flush();
        flushed = true;
      }
      try {
        responses[entry.index] = await route(inner, entry.request);
      } catch (err) {
        throw atEntry(err, entry.index);
      }
    }
    return responses;
  });
}

/**
 * Assigns the ids that POSTs and conditional PUTs will get, resolves conditional references, and rewrites every
 * reference to a fullUrl of the bundle, before anything is written.
 */
async function resolveIdentities(session: WriteSession, entries: ParsedEntry[]): Promise<void> {
  const byFullUrl = new Map<string, string>();
  for (const entry of entries) {
    const { request } = entry;
    const resource = request.body as Resource | undefined;
    const type = request.path.split('/')[0];
    try {
      if (request.method === 'POST' && resource?.resourceType) {
        const condition = request.headers['if-none-exist'];
        const existing = condition ? await matchOne(session, type, condition.replace(/^[^?]*\?/, ''), true) : undefined;
        request.assignedId = existing ?? randomUUID();
      } else if (request.method === 'PUT' && resource?.resourceType) {
        const id = request.path.split('/')[1];
        request.assignedId = id ?? (await matchOne(session, type, request.query.toString(), true)) ?? resource.id ?? randomUUID();
      } else {
        continue;
      }
    } catch (err) {
      throw atEntry(err, entry.index);
    }
    if (entry.fullUrl) {
      byFullUrl.set(entry.fullUrl, `${type}/${request.assignedId}`);
    }
  }
  for (const entry of entries) {
    const resource = entry.request.body;
    if (typeof resource !== 'object' || resource === null || Array.isArray(resource)) {
      continue;
    }
    rewriteUriLinks(resource, byFullUrl);
    const conditional: Array<{ reference: string; type: string; query: string }> = [];
    visitReferences(resource, (reference) => {
      const mapped = byFullUrl.get(reference);
      if (mapped) {
        return mapped;
      }
      const match = CONDITIONAL_REFERENCE.exec(reference);
      if (match) {
        conditional.push({ reference, type: match[1], query: match[2] });
      }
      return undefined;
    });
    if (conditional.length > 0) {
      const resolved = new Map<string, string>();
      for (const c of conditional) {
        try {
          const id = await matchOne(session, c.type, c.query, false);
          if (!id) {
            throw preconditionFailed(`Conditional reference "${c.reference}" matched no resource`);
          }
          resolved.set(c.reference, `${c.type}/${id}`);
        } catch (err) {
          throw atEntry(err, entry.index);
        }
      }
      visitReferences(resource, (reference) => resolved.get(reference));
    }
  }
}

/**
 * Links to other entries outside References: R4 (bundle.html#references) has servers replace fullUrls found in
 * elements of type uri and url too, e.g. an ITI-65 DocumentReference's `content.attachment.url` naming its Binary
 * by `urn:uuid:`. Only `urn:uuid:`/`urn:oid:` values that are exactly an entry's fullUrl are replaced, so that
 * ordinary text is never touched; References are left to visitReferences.
 */
function rewriteUriLinks(value: unknown, byFullUrl: Map<string, string>): void {
  if (typeof value !== 'object' || value === null) {
    return;
  }
  const record = value as Record<string, unknown>;
  for (const [key, child] of Object.entries(record)) {
    if (typeof child === 'string') {
      if (key !== 'reference' && (child.startsWith('urn:uuid:') || child.startsWith('urn:oid:'))) {
        const mapped = byFullUrl.get(child);
        if (mapped) {
          record[key] = mapped;
        }
      }
    } else if (typeof child === 'object' && child !== null) {
      rewriteUriLinks(child, byFullUrl);
    }
  }
}

/** The id of the one resource a condition matches, undefined when none does, 412 when several do. */
async function matchOne(session: WriteSession, type: string, query: string, lock: boolean): Promise<string | undefined> {
  const ids = lock ? await session.findUnderLock(type, query) : await session.find(type, query);
  if (ids.length > 1) {
    throw preconditionFailed(`The condition "${type}?${query}" matched more than one resource`);
  }
  return ids[0];
}

/** Names the failing entry in the error, so that a client knows which one to fix. */
function atEntry(err: unknown, index: number): unknown {
  if (!(err instanceof FhirError)) {
    const described = describeError(err);
    if (described.unexpected) {
      return err;
    }
    return atEntry(new FhirError(described.status, described.outcome), index);
  }
  const issues = (err.outcome.issue ?? []).map((i) => ({
    ...i,
    diagnostics: `Bundle.entry[${index}]: ${i.diagnostics ?? i.details?.text ?? 'failed'}`,
    expression: i.expression?.map((e) => `Bundle.entry[${index}].resource.${e.replace(/^[A-Z][A-Za-z]+\.?/, '')}`.replace(/\.$/, '')) ?? [`Bundle.entry[${index}]`],
  }));
  return new FhirError(err.status, outcome(issues));
}

function responseEntry(response: FhirResponse, prefer: string | undefined): BundleEntry {
  const headers = response.headers ?? {};
  const entryResponse: BundleEntryResponse = {
    status: `${response.status}${STATUS_TEXT[response.status] ? ` ${STATUS_TEXT[response.status]}` : ''}`,
    ...(headers.Location ? { location: headers.Location } : {}),
    ...(headers.ETag ? { etag: headers.ETag } : {}),
    ...(headers['Last-Modified'] ? { lastModified: new Date(headers['Last-Modified']).toISOString() } : {}),
  };
  if (response.stream) {
    // A Binary's raw content, an NDJSON file or a bulk manifest is not a resource: fetch it with its own request.
    throw notSupported(400, `A ${response.stream.contentType} answer cannot be an entry of a bundle; request it on its own`);
  }
  const body = response.body instanceof RawJson ? parseBody(response.body) : response.body;
  if (body?.resourceType === 'OperationOutcome' && response.status >= 300) {
    entryResponse.outcome = body;
    return { response: entryResponse };
  }
  if (body && !/return=minimal/.test(prefer ?? '')) {
    return { fullUrl: body.id && headers.Location ? headers.Location.replace(/\/_history\/.*$/, '') : undefined, resource: body, response: entryResponse };
  }
  return { response: entryResponse };
}
