/**
 * `Patient/{id}/$everything`: the patient and every resource in its compartment, with `_since`, `_type`,
 * `_count` and paging.
 */
import { pageLinks, searchsetBundle } from './bundles';
import { assertResourceType } from './interactions';
import { instantParam, pageOf } from './paging';
import type { FhirRequest, FhirResponse, RouteContext } from './types';

export async function everything(ctx: RouteContext, request: FhirRequest, patientId: string): Promise<FhirResponse> {
  const q = ctx.session?.tx;
  // 404 or 410 when the patient is unknown or deleted.
  await ctx.repo.read('Patient', patientId, q);
  const { count, offset } = pageOf(request.query, ctx);
  const since = instantParam(request.query, '_since');
  const types = (request.query.get('_type') ?? '').split(',').map((t) => t.trim()).filter(Boolean);
  types.forEach(assertResourceType);
  const page = await ctx.repo.compartment({ compartment: `Patient/${patientId}`, since, types, count, offset }, q);
  const entries = page.rows.map((r) => ({ fullUrl: `${ctx.baseUrl}/${r.resourceType}/${r.id}`, json: r.content, mode: 'match' as const }));
  const selfUrl = new URL(`${ctx.baseUrl}/Patient/${patientId}/$everything?${request.query}`);
  const total = offset === 0 && !page.hasMore ? entries.length : undefined;
  return { status: 200, body: searchsetBundle(entries, pageLinks({ selfUrl, offset, count, hasMore: page.hasMore }), total) };
}
