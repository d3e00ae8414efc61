/**
 * Writes index rows set-based: one statement deletes a whole batch's old rows from every search_* table, and one
 * INSERT … SELECT FROM unnest(…) per table inserts all of its new rows, whatever the batch size.
 */
import type { Queryable } from '../db/database';
import type { IndexRows } from './index-rows';
import { INDEX_TABLES, type IndexKind } from './search-type';

export interface ResourceRef {
  resourceType: string;
  id: string;
}

/** Per table: its value columns with their SQL array types, and how to read them off a row. */
type ColumnSpec<K extends IndexKind> = Array<[column: string, sqlType: string, get: (row: IndexRows[K][number]) => unknown]>;

const COLUMNS: { [K in IndexKind]: ColumnSpec<K> } = {
  token: [
    ['system', 'text', (r) => r.system ?? null],
    ['value', 'text', (r) => r.value ?? null],
    ['display', 'text', (r) => r.display ?? null],
  ],
  string: [
    ['value', 'text', (r) => r.value],
    ['value_norm', 'text', (r) => r.valueNorm],
  ],
  date: [
    ['low', 'timestamptz', (r) => r.low],
    ['high', 'timestamptz', (r) => r.high],
  ],
  number: [
    ['value', 'numeric', (r) => r.value],
    ['low', 'numeric', (r) => r.low],
    ['high', 'numeric', (r) => r.high],
  ],
  quantity: [
    ['value', 'numeric', (r) => r.value],
    ['low', 'numeric', (r) => r.low],
    ['high', 'numeric', (r) => r.high],
    ['system', 'text', (r) => r.system ?? null],
    ['unit', 'text', (r) => r.unit ?? null],
  ],
  reference: [
    ['target_type', 'text', (r) => r.targetType ?? null],
    ['target_id', 'text', (r) => r.targetId ?? null],
    ['target_url', 'text', (r) => r.targetUrl ?? null],
  ],
  uri: [['value', 'text', (r) => r.value]],
};

const KINDS = Object.keys(INDEX_TABLES) as IndexKind[];

/** Removes every index row of the given resources (one statement for all tables). */
export async function deleteIndexRows(tx: Queryable, refs: ResourceRef[]): Promise<void> {
  if (refs.length === 0) {
    return;
  }
  // Data-modifying CTEs: all seven deletes run in one round trip.
  const deletes = KINDS.map(
    (kind) =>
      `d_${kind} AS (DELETE FROM ${INDEX_TABLES[kind]} t USING doomed d WHERE t.res_type = d.res_type AND t.res_id = d.res_id)`,
  );
  await tx.query(
    `WITH doomed AS (SELECT * FROM unnest($1::text[], $2::text[]) AS u(res_type, res_id)), ${deletes.join(', ')} SELECT 1`,
    [refs.map((r) => r.resourceType), refs.map((r) => r.id)],
  );
}

/** Replaces the index rows of every resource in `items` with the given rows. */
export async function replaceIndexRows(
  tx: Queryable,
  items: Array<{ resourceType: string; id: string; rows: IndexRows }>,
): Promise<void> {
  await deleteIndexRows(tx, items);
  for (const kind of KINDS) {
    await insertRows(tx, kind, items);
  }
}

async function insertRows<K extends IndexKind>(
  tx: Queryable,
  kind: K,
  items: Array<{ resourceType: string; id: string; rows: IndexRows }>,
): Promise<void> {
  const columns = COLUMNS[kind] as ColumnSpec<K>;
  const arrays: unknown[][] = [[], [], [], ...columns.map(() => [])];
  for (const item of items) {
    for (const row of item.rows[kind] as Array<IndexRows[K][number]>) {
      arrays[0].push(item.resourceType);
      arrays[1].push(item.id);
      arrays[2].push(row.code);
      columns.forEach(([, , get], i) => arrays[3 + i].push(get(row)));
    }
  }
  if (arrays[0].length === 0) {
    return;
  }
  const names = ['res_type', 'res_id', 'code', ...columns.map(([name]) => name)];
  const types = ['text', 'text', 'text', ...columns.map(([, sqlType]) => sqlType)];
  await tx.query(
    `INSERT INTO ${INDEX_TABLES[kind]} (${names.join(', ')}) SELECT * FROM unnest(${types.map((type, i) => `$${i + 1}::${type}[]`).join(', ')})`,
    arrays,
  );
}
