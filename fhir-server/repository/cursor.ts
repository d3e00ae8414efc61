/**
 * Keyset paging cursors. A next link carries the sort-key values of the page's last row (and the sort it belongs
 * to), so that the next page continues strictly after that row: no resource is lost or repeated when resources
 * are created or deleted between pages, and page 100 costs what page 1 costs (an index range from the last key,
 * not an OFFSET that reads and discards every earlier row).
 *
 * The cursor is opaque to clients (base64url JSON) but not trusted: every value is checked against the type of its
 * sort key before it is bound as a query parameter, so a tampered cursor is a 400, never a SQL error.
 */
import { badRequest } from '../errors';
import type { SortKey, SortSqlType } from '../search';

interface CursorBody {
  /** The sort the cursor was made for (the `_sort` value and the searched types). */
  s: string;
  /** The last row's key values, as PostgreSQL's text output of each key; null for a missing value. */
  v: Array<string | null>;
}

const VALID: Record<SortSqlType, RegExp> = {
  text: /^[\s\S]*$/,
  // PostgreSQL's ISO output of timestamptz, e.g. 2024-03-01 08:00:00.123+00 (years 1 to 9999).
  timestamptz: /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?[+-]\d{2}(:\d{2}){0,2}$/,
  numeric: /^-?\d+(\.\d+)?$/,
};

export function encodeCursor(sortSignature: string, values: Array<string | null>): string {
  const body: CursorBody = { s: sortSignature, v: values };
  return Buffer.from(JSON.stringify(body), 'utf8').toString('base64url');
}

/** The key values a cursor carries, checked against `keys`; a 400 for a cursor of another search or a bad one. */
export function decodeCursor(cursor: string, sortSignature: string, keys: SortKey[]): Array<string | null> {
  let body: CursorBody;
  try {
    body = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as CursorBody;
  } catch {
    throw badRequest('_cursor is not a cursor of this server: use the next link of a searchset bundle as it is');
  }
  if (typeof body !== 'object' || body === null || body.s !== sortSignature) {
    throw badRequest('_cursor belongs to a search with another _sort or _type: use the next link of a searchset bundle as it is');
  }
  const { v } = body;
  const valid =
    Array.isArray(v) &&
    v.length === keys.length &&
    v.every((value, i) => (value === null ? keys[i].nullable : typeof value === 'string' && VALID[keys[i].sqlType].test(value)));
  if (!valid) {
    throw badRequest('_cursor is not a cursor of this search: use the next link of a searchset bundle as it is');
  }
  return v;
}
