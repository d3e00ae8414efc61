/**
 * `POST [base]/$reindex` and `POST [base]/[type]/$reindex`: brings the search indexes of stored resources up to
 * date with the SearchParameters stored since they were written. It runs synchronously, in batches of
 * `REINDEX_BATCH_SIZE` resources per transaction (see repository/reindex.ts), and answers a Parameters resource
 * with how many resources of each type it reindexed. On a large store prefer the type level, type by type: a
 * system-level run walks every resource of every type in one request.
 */
import type { Parameters } from '@medplum/fhirtypes';
import { r4ResourceTypes } from '../definitions';
import { badRequest } from '../errors';
import type { OperationTarget } from './operations';
import type { FhirRequest, FhirResponse, RouteContext } from './types';

export const REINDEX_DEFINITION = 'http://huimin.health/fhir/OperationDefinition/reindex';

export async function reindexOperation(ctx: RouteContext, _request: FhirRequest, target: OperationTarget): Promise<FhirResponse> {
  if (ctx.session) {
    // Its batches commit one by one; inside a transaction bundle they could not.
    throw badRequest('$reindex cannot run inside a transaction bundle');
  }
  const types = target.level === 'type' ? [target.type as string] : [...r4ResourceTypes()].sort();
  const results = await ctx.repo.reindex(types);
  const body: Parameters = {
    resourceType: 'Parameters',
    parameter: [
      { name: 'resources', valueInteger: results.reduce((sum, r) => sum + r.resources, 0) },
      ...results.map((r) => ({
        name: 'type',
        part: [
          { name: 'resourceType', valueCode: r.resourceType },
          { name: 'resources', valueInteger: r.resources },
        ],
      })),
    ],
  };
  return { status: 200, body };
}
