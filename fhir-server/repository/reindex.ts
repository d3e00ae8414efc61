/**
 * `$reindex`: recomputes the search-index rows of stored resources, so that resources written before a
 * SearchParameter was stored (or changed) become searchable by it. Synchronous, in batches: each batch is one
 * transaction that locks its resources (`FOR UPDATE`), extracts their rows from the locked content and replaces
 * them set-based, so a concurrent update is never overwritten with rows from an older version. Resources are
 * walked by id (keyset), so each batch is an index range however large the type.
 *
 * Compartments are not recomputed: they follow the R4 CompartmentDefinition's parameters, which stored
 * SearchParameters do not change.
 */
import type { Database } from '../db';
import { extractIndexRows, replaceIndexRows } from '../search';

export interface ReindexResult {
  resourceType: string;
  resources: number;
}

export const REINDEX_BATCH_SIZE = 500;

/** Reindexes every current resource of each of `types`; returns how many of each were reindexed. */
export async function reindexTypes(db: Database, types: readonly string[], batchSize = REINDEX_BATCH_SIZE): Promise<ReindexResult[]> {
  const results: ReindexResult[] = [];
  for (const resourceType of types) {
    let after = '';
    let resources = 0;
    for (;;) {
      const batch = await db.transaction(async (tx) => {
        const rows = await tx.query<{ id: string; content: string }>(
          `SELECT id, content FROM resource WHERE res_type = $1 AND id > $2 AND NOT deleted ORDER BY id LIMIT $3 FOR UPDATE`,
          [resourceType, after, batchSize],
          { prepare: true },
        );
        if (rows.length > 0) {
          await replaceIndexRows(
            tx,
            rows.map((row) => ({ resourceType, id: row.id, rows: extractIndexRows(JSON.parse(row.content)) })),
          );
        }
        return rows;
      });
      resources += batch.length;
      if (batch.length < batchSize) {
        break;
      }
      after = batch[batch.length - 1].id;
    }
    if (resources > 0) {
      results.push({ resourceType, resources });
    }
  }
  return results;
}
