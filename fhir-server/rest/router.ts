/**
 * Maps a FhirRequest to the interaction that answers it. The same router serves HTTP and the entries of
 * batch and transaction bundles.
 */
import { notSupported } from '../errors';
import { processBundle } from './bundle-processor';
import { capabilityStatement } from './capability';
import { everything } from './everything';
import * as rest from './interactions';
import type { FhirRequest, FhirResponse, RouteContext } from './types';
import { validateOperation } from './validate';

const unsupported = (request: FhirRequest): never => {
  throw notSupported(405, `${request.method} ${request.path || '/'} is not supported by this server`);
};

export async function route(ctx: RouteContext, request: FhirRequest): Promise<FhirResponse> {
  const segments = request.path.split('/').filter((s) => s !== '');
  const { method } = request;
  const get = method === 'GET' || method === 'HEAD';

  if (segments.length === 0) {
    if (method === 'POST') {
      return processBundle(ctx, request);
    }
    throw notSupported(400, 'Searching across all resource types is not supported; search one type, e.g. GET Patient?name=zhang');
  }
  const [first, second, third, fourth] = segments;
  if (first === 'metadata' && segments.length === 1 && get) {
    return { status: 200, body: capabilityStatement(ctx.baseUrl) };
  }
  if (first === '_history' && segments.length === 1 && get) {
    return rest.history(ctx, request);
  }
  rest.assertResourceType(first);
  const type = first;

  switch (segments.length) {
    case 1:
      if (get) return rest.search(ctx, request, type);
      if (method === 'POST') return rest.create(ctx, request, type);
      if (method === 'PUT') return rest.conditionalUpdate(ctx, request, type);
      if (method === 'PATCH') return rest.conditionalPatch(ctx, request, type);
      if (method === 'DELETE') return rest.conditionalDelete(ctx, request, type);
      break;
    case 2:
      if (second === '_history' && get) return rest.history(ctx, request, type);
      if (second === '_search' && method === 'POST') return rest.search(ctx, request, type);
      if (second === '$validate' && method === 'POST') return validateOperation(ctx, request, type);
      if (second.startsWith('$') || second.startsWith('_')) break;
      if (get) return rest.read(ctx, request, type, second);
      if (method === 'PUT') return rest.update(ctx, request, type, second);
      if (method === 'PATCH') return rest.patch(ctx, request, type, second);
      if (method === 'DELETE') return rest.remove(ctx, request, type, second);
      break;
    case 3:
      if (third === '_history' && get) return rest.history(ctx, request, type, second);
      if (third === '$validate' && method === 'POST') return validateOperation(ctx, request, type, second);
      if (third === '$everything' && type === 'Patient' && (get || method === 'POST')) return everything(ctx, request, second);
      if (type === 'Patient' && get && !third.startsWith('$') && !third.startsWith('_')) {
        rest.assertResourceType(third);
        return rest.search(ctx, request, third, { compartment: `Patient/${second}` }, `Patient/${second}/${third}`);
      }
      break;
    case 4:
      if (third === '_history' && get) return rest.vread(ctx, request, type, second, fourth);
      break;
  }
  return unsupported(request);
}
