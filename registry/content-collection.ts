/**
 * Collection of document content no Binary uses any more (its Binaries deleted, or changed to other content, or an
 * upload no Binary ever referred to): at start, and on demand by an administrator with `POST [base]/$collect-content`
 * (optional `graceSeconds`, default a day). See ChunkedContentStore.collectOrphans for the race with uploads.
 */
import type { Parameters } from '@medplum/fhirtypes';
import { badRequest, operationParameters, type Database, type FhirOperation } from '../fhir-server';
import { ChunkedContentStore } from './content-store';

export const COLLECT_CONTENT_DEFINITION = 'http://huimin.health/fhir/OperationDefinition/collect-content';

/** Content unused for this long is collected: an upload's Binary is written well within it. */
export const DEFAULT_CONTENT_GRACE_MS = 24 * 3600 * 1000;
/** Contents removed per transaction, so that one collection never holds many locks or a long transaction. */
const BATCH = 500;
const MAX_BATCHES = 1000;

/** Removes unused content in batches until none is left (or MAX_BATCHES); returns how many were removed. */
export async function collectUnusedContent(db: Database, graceMs = DEFAULT_CONTENT_GRACE_MS): Promise<number> {
  const store = new ChunkedContentStore(db, 0);
  let removed = 0;
  for (let i = 0; i < MAX_BATCHES; i++) {
    const hashes = await store.collectOrphans(graceMs, BATCH);
    removed += hashes.length;
    if (hashes.length < BATCH) {
      break;
    }
  }
  return removed;
}

export function collectContentOperation(db: Database): FhirOperation {
  return {
    name: 'collect-content',
    definition: COLLECT_CONTENT_DEFINITION,
    levels: ['system'],
    affectsState: true,
    methods: ['POST'],
    roles: ['admin'],
    async invoke(ctx, request) {
      if (ctx.session) {
        throw badRequest('$collect-content runs its own transactions and cannot be an entry of a transaction');
      }
      const input: Parameters = operationParameters(request);
      const grace = input.parameter?.find((p) => p.name === 'graceSeconds')?.valueInteger;
      if (grace !== undefined && (!Number.isInteger(grace) || grace < 0 || grace > 365 * 86400)) {
        throw badRequest(`graceSeconds must be a whole number of seconds between 0 and ${365 * 86400}, got ${grace}`);
      }
      const removed = await collectUnusedContent(db, grace === undefined ? DEFAULT_CONTENT_GRACE_MS : grace * 1000);
      const body: Parameters = { resourceType: 'Parameters', parameter: [{ name: 'removed', valueInteger: removed }] };
      return { status: 200, body };
    },
  };
}
