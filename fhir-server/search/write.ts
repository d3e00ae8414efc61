/**
 * Writes index rows set-based, as CTEs of one CompositeWrite: one DELETE per search_* table for a whole batch's old
 * rows, and one INSERT … SELECT FROM unnest(…) per table for all its new rows, whatever the batch size.
 */
import type { Queryable } from '../db/database';
import { CompositeWrite } from '../db/statement';
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
    ['canonical_value', 'numeric', (r) => r.canonicalValue ?? null],
    ['canonical_unit', 'text', (r) => r.canonicalUnit ?? null],
  ],
  reference: [
    ['target_type', 'text', (r) => r.targetType ?? null],
    ['target_id', 'text', (r) => r.targetId ?? null],
    ['target_url', 'text', (r) => r.targetUrl ?? null],
  ],
  uri: [['value', 'text', (r) => r.value]],
};

const KINDS = Object.keys(INDEX_TABLES) as IndexKind[];

type IndexedItem = { resourceType: string; id: string; rows: IndexRows };

/**
 * Adds to `statement` the removal of every index row of the `cleared` resources and the insertion of the rows of
 * `inserted`. A resource being replaced is in both; a new one (version 1) only needs inserting.
 */
export function addIndexWrites(statement: CompositeWrite, inserted: IndexedItem[], cleared: ResourceRef[]): void {
  // Every table gets its DELETE and INSERT even when there is nothing to do (empty arrays cost nothing): the
  // statement's text is then always the same, so it can stay prepared instead of being planned on every write.
  const deletes = addDeletes(statement, cleared);
  for (const kind of KINDS) {
    addInsert(statement, kind, inserted, deletes[kind]);
  }
}

/** The DELETE of each table's rows of `owners`; returns each DELETE's CTE name, for the INSERT to wait on. */
function addDeletes(statement: CompositeWrite, owners: ResourceRef[]): Record<IndexKind, string> {
  const doomed = statement.add(
    (p) =>
      `SELECT * FROM ${statement.rows(`unnest(${p.array(owners.map((r) => r.resourceType), 'text')}, ${p.array(owners.map((r) => r.id), 'text')}) AS u0(res_type, res_id)`, 'u')}`,
  );
  const names = {} as Record<IndexKind, string>;
  for (const kind of KINDS) {
    names[kind] = statement.add(
      () => `DELETE FROM ${INDEX_TABLES[kind]} t USING ${doomed} d WHERE t.res_type = d.res_type AND t.res_id = d.res_id RETURNING 1`,
    );
  }
  return names;
}

/** Removes every index row of the given resources. */
export async function deleteIndexRows(tx: Queryable, refs: ResourceRef[]): Promise<void> {
  const statement = new CompositeWrite();
  addIndexWrites(statement, [], refs);
  await statement.run(tx);
}

/** Replaces the index rows of every resource in `items` with the given rows, in one statement. */
export async function replaceIndexRows(tx: Queryable, items: IndexedItem[]): Promise<void> {
  const statement = new CompositeWrite();
  addIndexWrites(statement, items, items);
  await statement.run(tx);
}

/**
 * The INSERT of a table's new rows. It reads its DELETE's result first: CTEs of one statement run in no set order,
 * and an updated resource's unchanged token or reference must be deleted before it is inserted again, or the
 * unique match index (migration 50) would see it twice.
 */
function addInsert<K extends IndexKind>(statement: CompositeWrite, kind: K, items: IndexedItem[], deleted: string): void {
  const columns = COLUMNS[kind] as ColumnSpec<K>;
  const arrays: unknown[][] = [[], [], [], [], ...columns.map(() => [])];
  for (const item of items) {
    for (const row of item.rows[kind] as Array<IndexRows[K][number]>) {
      arrays[0].push(item.resourceType);
      arrays[1].push(item.id);
      arrays[2].push(row.code);
      arrays[3].push(row.group ?? null);
      columns.forEach(([, , get], i) => arrays[4 + i].push(get(row)));
    }
  }
  const names = ['res_type', 'res_id', 'code', 'grp', ...columns.map(([name]) => name)];
  const types = ['text', 'text', 'text', 'integer', ...columns.map(([, sqlType]) => sqlType)];
  statement.add(
    (p) =>
      `INSERT INTO ${INDEX_TABLES[kind]} (${names.join(', ')}) SELECT * FROM ${statement.rows(`unnest(${types.map((type, i) => p.array(arrays[i], type)).join(', ')}) AS r0`, 'r')}` +
      ` WHERE (SELECT count(*) FROM ${deleted}) >= 0`,
  );
}
