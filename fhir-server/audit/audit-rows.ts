/**
 * An audit batch as the four text parameters of one INSERT. The values of all events are joined with the ASCII
 * record separator (and an event's search keys with the unit separator) instead of being sent as arrays: `pg`
 * would otherwise scan every AuditEvent's JSON to escape it as an array element, a cost paid on every request.
 * JSON.stringify escapes every control character, so the separators never occur inside the content; keys have
 * theirs replaced (audit-event.ts).
 */
import type { AuditRecord } from './audit-event';

export const RECORD_SEPARATOR = '\u001e';
export const UNIT_SEPARATOR = '\u001f';

/** [ids, recorded instants, keys, contents], each joined with RECORD_SEPARATOR. */
export function auditRows(records: AuditRecord[]): [string, string, string, string] {
  return [
    records.map((r) => r.id).join(RECORD_SEPARATOR),
    records.map((r) => r.recorded).join(RECORD_SEPARATOR),
    records.map((r) => r.keys.join(UNIT_SEPARATOR)).join(RECORD_SEPARATOR),
    records.map((r) => r.content).join(RECORD_SEPARATOR),
  ];
}

/** The rows of a batch in SQL, from the four parameters $1..$4, as `u(id, recorded, keys, content, ord)`. */
export const AUDIT_ROWS_SQL = `unnest(string_to_array($1::text, chr(30)), string_to_array($2::text, chr(30))::timestamptz[],
  string_to_array($3::text, chr(30)), string_to_array($4::text, chr(30))) WITH ORDINALITY AS u(id, recorded, keys_text, content, ord)`;
