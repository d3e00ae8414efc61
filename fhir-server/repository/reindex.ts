/**
 * `$reindex`: recomputes the search-index rows of stored resources, so that resources written before a
 * SearchParameter was stored (or changed) become searchable by it. Each batch runs in the caller's transaction,
 * locks its resources (`FOR UPDATE`), extracts their rows from the locked content and replaces them set-based, so
 * a concurrent update is never overwritten with rows from an older version. Resources are walked by id (keyset),
 * so each batch is an index range however large the type, and a job that records the last id with the batch (in
 * the same transaction) resumes exactly there after a crash (fhir-server/reindex).
 *
 * Compartments are not recomputed: they follow the R4 CompartmentDefinition's parameters, which stored
 * SearchParameters do not change.
 */
import type { Queryable } from '../db';
import { extractIndexRows, replaceIndexRows } from '../search';

export const REINDEX_BATCH_SIZE = 500;

/**
 * Reindexes the next `batchSize` current resources of `resourceType` whose id sorts after `afterId` ('' for the
 * first batch); returns how many it reindexed and the last id, where the next batch starts.
 */
export async function reindexBatch(
  tx: Queryable,
  resourceType: string,
  afterId: string,
  batchSize = REINDEX_BATCH_SIZE,
): Promise<{ count: number; lastId: string | undefined }> {
  const rows = await tx.query<{ id: string; content: string }>(
    `SELECT id, content FROM resource WHERE res_type = $1 AND id > $2 AND NOT deleted ORDER BY id LIMIT $3 FOR UPDATE`,
    [resourceType, afterId, batchSize],
    { prepare: true },
  );
  if (rows.length > 0) {
    await replaceIndexRows(
      tx,
      rows.map((row) => ({ resourceType, id: row.id, rows: extractIndexRows(JSON.parse(row.content)) })),
    );
  }
  return { count: rows.length, lastId: rows[rows.length - 1]?.id };
}

/** Reindexes one resource (instance-level `$reindex`); false when it does not exist or is deleted. */
export async function reindexResource(tx: Queryable, resourceType: string, id: string): Promise<boolean> {
  const rows = await tx.query<{ content: string }>(
    `SELECT content FROM resource WHERE res_type = $1 AND id = $2 AND NOT deleted FOR UPDATE`,
    [resourceType, id],
  );
  if (rows.length === 0) {
    return false;
  }
  await replaceIndexRows(tx, [{ resourceType, id, rows: extractIndexRows(JSON.parse(rows[0].content)) }]);
  return true;
}
