/**
 * The raw message store: every message received is kept with its bytes, facility, time, outcome, errors and the
 * resources it created. Accepted messages are recorded in the same transaction as their resources (so the record
 * is the idempotency key); refused ones right after, in a transaction of their own.
 */
import { createHash } from 'node:crypto';
import type { Queryable } from '../../fhir-server';
import type { AckCode, Problem } from '../hl7/problems';

export interface MessageRecord {
  id: string;
  facilityId: string | null;
  sendingFacility: string;
  controlId: string;
  messageType: string;
  remoteAddress: string | null;
  charset: string | null;
  content: Buffer;
  contentHash: string;
  outcome: AckCode;
  duplicateOf?: string | null;
  replayOf?: string | null;
  errors: Problem[];
  resources: string[];
}

export interface StoredMessage extends Omit<MessageRecord, 'content'> {
  receivedAt: Date;
  replayedBy: string | null;
  content?: Buffer;
}

/** sha256 of the message without MSH-7, whose time some senders re-stamp when they resend. */
export function contentHash(bytes: Buffer): string {
  const text = bytes.toString('latin1');
  const sep = text.startsWith('MSH') ? text[3] : '|';
  const lineEnd = text.search(/[\r\n]/);
  const msh = lineEnd === -1 ? text : text.slice(0, lineEnd);
  const fields = msh.split(sep);
  if (fields.length > 6) {
    fields[6] = '';
  }
  return createHash('sha256')
    .update(fields.join(sep))
    .update(lineEnd === -1 ? '' : text.slice(lineEnd))
    .digest('hex');
}

export async function insertMessage(q: Queryable, r: MessageRecord): Promise<void> {
  await q.query(
    `INSERT INTO hl7_message (id, facility_id, sending_facility, control_id, message_type, remote_address, charset, content,
       content_hash, outcome, duplicate_of, replay_of, errors, resources)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb, $14::text[])`,
    [
      r.id,
      r.facilityId,
      r.sendingFacility,
      r.controlId,
      r.messageType,
      r.remoteAddress,
      r.charset,
      r.content,
      r.contentHash,
      r.outcome,
      r.duplicateOf ?? null,
      r.replayOf ?? null,
      JSON.stringify(r.errors),
      r.resources,
    ],
    { prepare: true },
  );
}

/** The message already processed under this idempotency key, if any. */
export async function findProcessed(q: Queryable, facilityId: string, controlId: string, hash: string): Promise<{ id: string; resources: string[] } | undefined> {
  const rows = await q.query<{ id: string; resources: string[] }>(
    `SELECT id, resources FROM hl7_message
     WHERE facility_id = $1 AND control_id = $2 AND content_hash = $3 AND outcome = 'AA' AND duplicate_of IS NULL`,
    [facilityId, controlId, hash],
    { prepare: true },
  );
  return rows[0];
}

export async function markReplayed(q: Queryable, id: string, replayId: string): Promise<void> {
  await q.query('UPDATE hl7_message SET replayed_by = $2 WHERE id = $1', [id, replayId]);
}

interface MessageRow {
  id: string;
  received_at: Date;
  facility_id: string | null;
  sending_facility: string;
  control_id: string;
  message_type: string;
  remote_address: string | null;
  charset: string | null;
  content?: Buffer;
  content_hash: string;
  outcome: AckCode;
  duplicate_of: string | null;
  replay_of: string | null;
  replayed_by: string | null;
  errors: Problem[] | string;
  resources: string[];
}

function fromRow(r: MessageRow): StoredMessage {
  return {
    id: r.id,
    receivedAt: new Date(r.received_at),
    facilityId: r.facility_id,
    sendingFacility: r.sending_facility,
    controlId: r.control_id,
    messageType: r.message_type,
    remoteAddress: r.remote_address,
    charset: r.charset,
    content: r.content ? Buffer.from(r.content) : undefined,
    contentHash: r.content_hash,
    outcome: r.outcome,
    duplicateOf: r.duplicate_of,
    replayOf: r.replay_of,
    replayedBy: r.replayed_by,
    errors: typeof r.errors === 'string' ? (JSON.parse(r.errors) as Problem[]) : r.errors,
    resources: r.resources,
  };
}

export async function getMessage(q: Queryable, id: string): Promise<StoredMessage | undefined> {
  if (!/^[0-9a-f-]{36}$/i.test(id)) {
    return undefined;
  }
  const rows = await q.query<MessageRow>('SELECT * FROM hl7_message WHERE id = $1', [id]);
  return rows[0] ? fromRow(rows[0]) : undefined;
}

export interface MessageQuery {
  facilityId?: string;
  outcome?: AckCode;
  messageType?: string;
  controlId?: string;
  since?: Date;
  /** Only failed messages not yet replayed. */
  pendingReplay?: boolean;
  limit: number;
  withContent?: boolean;
}

/** Search the store, newest first. Every criterion is a bound parameter. */
export async function searchMessages(q: Queryable, query: MessageQuery): Promise<StoredMessage[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  const add = (sql: string, value: unknown): void => {
    params.push(value);
    where.push(sql.replace('?', `$${params.length}`));
  };
  if (query.facilityId !== undefined) add('facility_id = ?', query.facilityId);
  if (query.outcome !== undefined) add('outcome = ?', query.outcome);
  if (query.messageType !== undefined) add('message_type = ?', query.messageType);
  if (query.controlId !== undefined) add('control_id = ?', query.controlId);
  if (query.since !== undefined) add('received_at >= ?', query.since);
  if (query.pendingReplay) where.push(`outcome <> 'AA' AND replayed_by IS NULL`);
  params.push(Math.min(Math.max(query.limit, 1), 1000));
  const columns = query.withContent ? '*' : 'id, received_at, facility_id, sending_facility, control_id, message_type, remote_address, charset, content_hash, outcome, duplicate_of, replay_of, replayed_by, errors, resources';
  const rows = await q.query<MessageRow>(
    `SELECT ${columns} FROM hl7_message ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY received_at DESC, id LIMIT $${params.length}`,
    params,
  );
  return rows.map(fromRow);
}

export interface FacilityActivity {
  facilityId: string | null;
  sendingFacility: string;
  lastReceivedAt: Date | null;
  total: number;
  errors: number;
  byType: Record<string, number>;
}

/** Per facility: last message time, count per message type, errors (AE/AR). */
export async function facilityActivity(q: Queryable, since: Date): Promise<FacilityActivity[]> {
  const rows = await q.query<{ facility_id: string | null; sending_facility: string; message_type: string; last: Date; total: number; errors: number }>(
    `SELECT facility_id, CASE WHEN facility_id IS NULL THEN sending_facility ELSE '' END AS sending_facility, message_type,
            max(received_at) AS last, count(*)::int AS total, count(*) FILTER (WHERE outcome <> 'AA')::int AS errors
     FROM hl7_message WHERE received_at >= $1 AND replay_of IS NULL
     GROUP BY 1, 2, 3`,
    [since],
  );
  const byFacility = new Map<string, FacilityActivity>();
  for (const r of rows) {
    const k = `${r.facility_id ?? ''}|${r.sending_facility}`;
    const a = byFacility.get(k) ?? { facilityId: r.facility_id, sendingFacility: r.sending_facility, lastReceivedAt: null, total: 0, errors: 0, byType: {} };
    a.total += Number(r.total);
    a.errors += Number(r.errors);
    a.byType[r.message_type || '(unreadable)'] = (a.byType[r.message_type || '(unreadable)'] ?? 0) + Number(r.total);
    const last = new Date(r.last);
    if (!a.lastReceivedAt || last > a.lastReceivedAt) a.lastReceivedAt = last;
    byFacility.set(k, a);
  }
  return [...byFacility.values()];
}

/**
 * Records the message time applied to a patient, and says whether this message is older than one already applied
 * (then its demographics must not overwrite the newer ones). Runs inside the message's transaction.
 */
export async function advancePatientClock(q: Queryable, facilityId: string, mrn: string, messageTime: Date): Promise<boolean> {
  const rows = await q.query<{ message_time: Date }>(
    'SELECT message_time FROM hl7_patient_clock WHERE facility_id = $1 AND mrn = $2 FOR UPDATE',
    [facilityId, mrn],
    { prepare: true },
  );
  if (rows[0] && new Date(rows[0].message_time) > messageTime) {
    return false;
  }
  await q.query(
    `INSERT INTO hl7_patient_clock (facility_id, mrn, message_time) VALUES ($1, $2, $3)
     ON CONFLICT (facility_id, mrn) DO UPDATE SET message_time = EXCLUDED.message_time`,
    [facilityId, mrn, messageTime],
    { prepare: true },
  );
  return true;
}
