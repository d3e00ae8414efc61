/**
 * Maps a FhirRequest to the interaction that answers it. The same router serves HTTP and the entries of
 * batch and transaction bundles.
 */
import { notSupported } from '../errors';
import { binaryReadResponse, withUploadedContent } from './binary';
import { processBundle } from './bundle-processor';
import { capabilityStatement } from './capability';
import * as rest from './interactions';
import type { OperationTarget } from './operations';
import { search, systemSearch } from './search';
import type { FhirRequest, FhirResponse, RouteContext } from './types';

const unsupported = (request: FhirRequest): never => {
  throw notSupported(405, `${request.method} ${request.path || '/'} is not supported by this server`);
};

/** `$name` at the given level: 404 for an operation this server does not know there, 405 for GET on one that changes state. */
function invokeOperation(ctx: RouteContext, request: FhirRequest, segment: string, target: OperationTarget): Promise<FhirResponse> {
  const name = segment.slice(1);
  const operation = ctx.operations.find(name, target);
  const where = target.level === 'system' ? 'at system level' : `on ${target.type}${target.level === 'instance' ? ' instances' : ''}`;
  if (!operation) {
    throw notSupported(404, `The operation $${name} is not supported ${where}`);
  }
  const get = request.method === 'GET' || request.method === 'HEAD';
  if (operation.methods) {
    if (!operation.methods.includes(request.method)) {
      throw notSupported(405, `$${name} ${where} is invoked with ${operation.methods.join(' or ')}, not ${request.method}`);
    }
  } else if (!(request.method === 'POST' || (get && !operation.affectsState))) {
    throw notSupported(405, `$${name} ${where} is invoked with POST${operation.affectsState ? '' : ' or GET'}, not ${request.method}`);
  }
  return operation.invoke(ctx, request, target);
}

export async function route(ctx: RouteContext, request: FhirRequest): Promise<FhirResponse> {
  if (ctx.guard) {
    const answered = await ctx.guard.before(ctx, request);
    if (answered) {
      return answered;
    }
  }
  const segments = request.path.split('/').filter((s) => s !== '');
  const { method } = request;
  const get = method === 'GET' || method === 'HEAD';

  if (segments.length === 0) {
    if (method === 'POST') {
      return processBundle(ctx, request);
    }
    if (get) {
      return systemSearch(ctx, request);
    }
    return unsupported(request);
  }
  const [first, second, third, fourth] = segments;
  if (first === 'metadata' && segments.length === 1 && get) {
    await ctx.repo.refreshSearchParameters(ctx.session?.tx);
    return { status: 200, body: capabilityStatement(ctx.baseUrl, ctx.operations) };
  }
  if (first.startsWith('$') && segments.length === 1) {
    return invokeOperation(ctx, request, first, { level: 'system' });
  }
  if (first === '_search' && segments.length === 1 && method === 'POST') {
    return systemSearch(ctx, request);
  }
  if (first === '_history' && segments.length === 1 && get) {
    return rest.history(ctx, request);
  }
  rest.assertResourceType(first);
  const type = first;

  switch (segments.length) {
    case 1:
      if (get) return search(ctx, request, type);
      if (method === 'POST') return rest.create(ctx, await withUploadedContent(ctx, request, type), type);
      if (method === 'PUT') return rest.conditionalUpdate(ctx, await withUploadedContent(ctx, request, type), type);
      if (method === 'PATCH') return rest.conditionalPatch(ctx, request, type);
      if (method === 'DELETE') return rest.conditionalDelete(ctx, request, type);
      break;
    case 2:
      if (second === '_history' && get) return rest.history(ctx, request, type);
      if (second === '_search' && method === 'POST') return search(ctx, request, type);
      if (second.startsWith('$')) return invokeOperation(ctx, request, second, { level: 'type', type });
      if (second.startsWith('_')) break;
      if (get && type === 'Binary') return binaryReadResponse(ctx, request, await rest.read(ctx, request, type, second));
      if (get) return rest.read(ctx, request, type, second);
      if (method === 'PUT') return rest.update(ctx, await withUploadedContent(ctx, request, type, second), type, second);
      if (method === 'PATCH') return rest.patch(ctx, request, type, second);
      if (method === 'DELETE') return rest.remove(ctx, request, type, second);
      break;
    case 3:
      if (third === '_history' && get) return rest.history(ctx, request, type, second);
      if (third.startsWith('$')) return invokeOperation(ctx, request, third, { level: 'instance', type, id: second });
      if (type === 'Patient' && get && !third.startsWith('$') && !third.startsWith('_')) {
        rest.assertResourceType(third);
        return search(ctx, request, third, { compartment: `Patient/${second}` }, `Patient/${second}/${third}`);
      }
      break;
    case 4:
      if (third === '_history' && get && type === 'Binary') return binaryReadResponse(ctx, request, await rest.vread(ctx, request, type, second, fourth));
      if (third === '_history' && get) return rest.vread(ctx, request, type, second, fourth);
      break;
  }
  return unsupported(request);
}
