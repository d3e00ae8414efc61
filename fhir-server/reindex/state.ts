/**
 * Whether a SearchParameter stored at runtime already covers the older resources of a type. New writes are indexed
 * with it at once, but resources written before it was stored (or changed) have no rows for it until a `$reindex`
 * of their type finishes, so a search on it may miss them; the search says so in its bundle (rest/search.ts), as
 * Hapi does, instead of silently returning part of the answer.
 *
 * A parameter is pending on a type when the type has current resources written before the parameter's
 * `meta.lastUpdated` (plus the time other processes may take to load it, REFRESH_INTERVAL_MS, and a second for
 * clocks and commits) and no finished `$reindex` of the type took its SearchParameters after that moment
 * (reindex_state, migration 70). Once covered, a parameter version stays covered, so that answer is kept in memory
 * for good.
 */
import type { Queryable } from '../db';
import { REFRESH_INTERVAL_MS, type UsedRuntimeParam } from '../search';

/** Resources written this soon after a parameter may have been written by a process that did not know it yet. */
const LOAD_MARGIN_MS = REFRESH_INTERVAL_MS + 1000;

export class ReindexState {
  /** Parameter versions (type, code, id, lastUpdated) known to be covered: they stay covered. */
  private readonly covered = new Set<string>();

  constructor(private readonly db: Queryable) {}

  /** The parameters among `used` that older resources of their type are not indexed with yet. */
  async pending(used: readonly UsedRuntimeParam[], q: Queryable = this.db): Promise<UsedRuntimeParam[]> {
    const result: UsedRuntimeParam[] = [];
    for (const use of used) {
      const updated = use.param.meta?.lastUpdated;
      if (!updated) {
        continue; // not a stored resource (every stored SearchParameter has meta.lastUpdated)
      }
      const key = `${use.resourceType}\u0000${use.code}\u0000${use.param.id ?? ''}\u0000${updated}`;
      if (this.covered.has(key)) {
        continue;
      }
      // Pending is asked again on every search that uses it (two index probes): a reindex finishing in any
      // process must end the warning at once.
      if (await this.isCovered(q, use.resourceType, updated)) {
        this.covered.add(key);
      } else {
        result.push(use);
      }
    }
    return result;
  }

  private async isCovered(q: Queryable, resourceType: string, updated: string): Promise<boolean> {
    const [row] = await q.query<{ reindexed: boolean | null; older: boolean }>(
      `SELECT (SELECT indexed_at >= $2::timestamptz FROM reindex_state WHERE res_type = $1) AS reindexed,
              EXISTS (SELECT 1 FROM resource WHERE res_type = $1 AND last_updated < $2::timestamptz + make_interval(secs => $3) AND NOT deleted) AS older`,
      [resourceType, updated, LOAD_MARGIN_MS / 1000],
    );
    return row.reindexed === true || !row.older;
  }
}
