/**
 * The FHIR RESTful interactions on resources: read, vread, create, update, patch, delete (plain and
 * conditional), history and search.
 */
import type { Operation } from '@medplum/core';
import { isR4ResourceType } from '../definitions';
import type { Parameters, Resource } from '@medplum/fhirtypes';
import { badRequest, notSupported } from '../errors';
import type { ResourcePatch, StoredResource, WriteSession } from '../repository';
import { historyBundle, pageLinks } from './bundles';
import { informational, parseVersionTag, readResponse, writeResponse } from './http-semantics';
import { instantParam, pageOf } from './paging';
import { subsetJson, subsetOf } from './subset';
import type { FhirRequest, FhirResponse, RouteContext } from './types';

export function assertResourceType(type: string): void {
  if (!isR4ResourceType(type)) {
    throw notSupported(404, `Unknown resource type "${type}"`);
  }
}

/** The resource in a write's body, checked against the URL's type. */
export function bodyResource(request: FhirRequest, resourceType: string): Resource {
  const body = request.body;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw badRequest('The request body must be a FHIR resource as a JSON object');
  }
  const resource = body as Resource;
  if (resource.resourceType !== resourceType) {
    throw badRequest(`The body's resourceType "${String(resource.resourceType)}" does not match the URL's type "${resourceType}"`);
  }
  return resource;
}

/** Runs writes in the transaction bundle's session when there is one, otherwise in a transaction of their own. */
function write<T>(ctx: RouteContext, fn: (session: WriteSession) => Promise<T>): Promise<T> {
  return ctx.session ? fn(ctx.session) : ctx.repo.write(fn);
}

const reader = (ctx: RouteContext) => ctx.session?.tx;

/** A stored resource as the client asked for it: whole, or reduced by `_summary`/`_elements` (also allowed on reads). */
function asRequested(request: FhirRequest, stored: StoredResource): StoredResource {
  const subset = subsetOf(request.query);
  return subset ? { ...stored, json: subsetJson(stored.json, subset) } : stored;
}

export async function read(ctx: RouteContext, request: FhirRequest, type: string, id: string): Promise<FhirResponse> {
  return readResponse(request, ctx.baseUrl, asRequested(request, await ctx.repo.read(type, id, reader(ctx))));
}

export async function vread(ctx: RouteContext, request: FhirRequest, type: string, id: string, vid: string): Promise<FhirResponse> {
  if (!/^[0-9]+$/.test(vid)) {
    throw badRequest(`Version id "${vid}" is not a version of this server (versions are 1, 2, 3, ...)`);
  }
  return readResponse(request, ctx.baseUrl, asRequested(request, await ctx.repo.vread(type, id, Number(vid), reader(ctx))));
}

export async function create(ctx: RouteContext, request: FhirRequest, type: string): Promise<FhirResponse> {
  const resource = bodyResource(request, type);
  const ifNoneExist = request.headers['if-none-exist'];
  if (ifNoneExist) {
    const query = ifNoneExist.includes('?') ? ifNoneExist.slice(ifNoneExist.indexOf('?') + 1) : ifNoneExist;
    const outcome = await write(ctx, (s) => s.conditionalCreate(resource, query, request.assignedId));
    return writeResponse(request, ctx.baseUrl, outcome.created ? 201 : 200, outcome.resource,
      outcome.created ? 'Created' : `An existing resource matched If-None-Exist; nothing was created`);
  }
  const created = await write(ctx, (s) => s.create(resource, request.assignedId));
  return writeResponse(request, ctx.baseUrl, 201, created, 'Created');
}

export async function update(ctx: RouteContext, request: FhirRequest, type: string, id: string): Promise<FhirResponse> {
  const resource = bodyResource(request, type);
  const ifMatch = parseVersionTag(request.headers['if-match'], 'If-Match');
  // Outside a bundle, an If-Match update can go as one guarded statement without a transaction of its own.
  const outcome =
    ifMatch !== undefined && !ctx.session
      ? await ctx.repo.updateIfMatch(type, id, resource, ifMatch)
      : await write(ctx, (s) => s.update(type, id, resource, ifMatch));
  return writeResponse(request, ctx.baseUrl, outcome.created ? 201 : 200, outcome.resource, outcome.created ? 'Created' : 'Updated');
}

export async function conditionalUpdate(ctx: RouteContext, request: FhirRequest, type: string): Promise<FhirResponse> {
  const resource = bodyResource(request, type);
  const ifMatch = parseVersionTag(request.headers['if-match'], 'If-Match');
  const outcome = await write(ctx, (s) => s.conditionalUpdate(type, request.query.toString(), resource, ifMatch, request.assignedId));
  return writeResponse(request, ctx.baseUrl, outcome.created ? 201 : 200, outcome.resource, outcome.created ? 'Created' : 'Updated');
}

/** JSON Patch (an array, `application/json-patch+json`) or FHIRPath Patch (a Parameters resource). */
function patchOperations(request: FhirRequest): ResourcePatch {
  const contentType = request.headers['content-type'] ?? '';
  const body = request.body as Resource | unknown[] | undefined;
  if (!contentType.includes('json-patch') && !Array.isArray(body) && (body as Resource | undefined)?.resourceType === 'Parameters') {
    return { format: 'fhirpath-patch', parameters: body as Parameters };
  }
  if (contentType && !contentType.includes('json-patch')) {
    throw notSupported(415, `PATCH takes JSON Patch (Content-Type: application/json-patch+json) or FHIRPath Patch (a Parameters resource), got "${contentType}"`);
  }
  if (!Array.isArray(body)) {
    throw badRequest('A JSON Patch body is an array of operations');
  }
  return { format: 'json-patch', operations: body as Operation[] };
}

export async function patch(ctx: RouteContext, request: FhirRequest, type: string, id: string): Promise<FhirResponse> {
  const operations = patchOperations(request);
  const ifMatch = parseVersionTag(request.headers['if-match'], 'If-Match');
  const patched = await write(ctx, (s) => s.patch(type, id, operations, ifMatch));
  return writeResponse(request, ctx.baseUrl, 200, patched, 'Patched');
}

export async function conditionalPatch(ctx: RouteContext, request: FhirRequest, type: string): Promise<FhirResponse> {
  const operations = patchOperations(request);
  const ifMatch = parseVersionTag(request.headers['if-match'], 'If-Match');
  const patched = await write(ctx, async (s) => {
    const ids = await s.find(type, request.query.toString());
    if (ids.length !== 1) {
      throw notSupported(ids.length === 0 ? 404 : 412, `Conditional patch "${type}?${request.query}" matched ${ids.length} resources; it needs exactly one`);
    }
    return s.patch(type, ids[0], operations, ifMatch);
  });
  return writeResponse(request, ctx.baseUrl, 200, patched, 'Patched');
}

const forced = (request: FhirRequest): boolean => request.query.get('_force') === 'true';

export async function remove(ctx: RouteContext, request: FhirRequest, type: string, id: string): Promise<FhirResponse> {
  const ifMatch = parseVersionTag(request.headers['if-match'], 'If-Match');
  const deleted = await write(ctx, (s) => s.delete(type, id, { ifMatch, force: forced(request) }));
  return { status: 200, body: informational(deleted ? `Deleted ${type}/${id}` : `${type}/${id} did not exist or was already deleted`) };
}

export async function conditionalDelete(ctx: RouteContext, request: FhirRequest, type: string): Promise<FhirResponse> {
  const query = new URLSearchParams(request.query);
  query.delete('_force');
  const count = await write(ctx, (s) => s.conditionalDelete(type, query.toString(), forced(request)));
  return { status: 200, body: informational(count === 0 ? 'No resource matched; nothing was deleted' : `Deleted ${count} resource`) };
}

export async function history(ctx: RouteContext, request: FhirRequest, type?: string, id?: string): Promise<FhirResponse> {
  const { count, offset } = pageOf(request.query, ctx);
  const since = instantParam(request.query, '_since');
  const at = instantParam(request.query, '_at');
  const result = await ctx.repo.history({ resourceType: type, id, since, at, count, offset }, reader(ctx));
  const path = [type, id, '_history'].filter(Boolean).join('/');
  const selfUrl = new URL(`${ctx.baseUrl}/${path}?${request.query}`);
  return { status: 200, body: historyBundle(ctx.baseUrl, result.rows, pageLinks({ selfUrl, offset, count, hasMore: result.hasMore }), result.total) };
}
