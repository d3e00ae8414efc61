/**
 * The write side of the transactional outbox: change events are rows in the same database transaction as the
 * change itself, so an event exists if and only if the change committed, whatever Redis is doing.
 */
import { CompositeWrite, type Queryable } from '../db';

export type ChangeInteraction = 'create' | 'update' | 'patch' | 'delete';

export interface ResourceChangeEvent {
  resourceType: string;
  id: string;
  versionId: number;
  interaction: ChangeInteraction;
  /** ISO instant of the change (the version's lastUpdated). */
  occurredAt: string;
}

/** The BullMQ queue the relay publishes to. */
export const RESOURCE_CHANGE_QUEUE = 'resource-changes';

/** The job payload on the queue. */
export interface ResourceChangeJob extends ResourceChangeEvent {
  /** Stable idempotency key, also the BullMQ jobId: one per resource version. */
  eventId: string;
  /** Outbox sequence number: increases with insertion, so consumers can tell which of two events came first. */
  seq: number;
}

/** `${resourceType}/${id}/_history/${versionId}`: a version is changed at most once, so this identifies the event. */
export function changeEventId(event: Pick<ResourceChangeEvent, 'resourceType' | 'id' | 'versionId'>): string {
  return `${event.resourceType}/${event.id}/_history/${event.versionId}`;
}

/**
 * Adds the events' outbox rows to a statement of the caller's transaction: one set-based INSERT however many events
 * there are (a transaction bundle of 1000 entries costs no extra round trip). Never touches Redis.
 */
export function addChangeEvents(statement: CompositeWrite, events: ResourceChangeEvent[]): void {
  if (events.length === 0) {
    return;
  }
  // ORDER BY ordinality makes the seq values follow the order of `events`.
  statement.add(
    (p) => `INSERT INTO outbox (res_type, res_id, version_id, interaction, occurred_at)
     SELECT res_type, res_id, version_id, interaction, occurred_at
     FROM ${statement.rows(`unnest(${p.array(events.map((e) => e.resourceType), 'text')}, ${p.array(events.map((e) => e.id), 'text')},
       ${p.array(events.map((e) => e.versionId), 'integer')}, ${p.array(events.map((e) => e.interaction), 'text')},
       ${p.array(events.map((e) => e.occurredAt), 'timestamptz')})
       WITH ORDINALITY AS e0(res_type, res_id, version_id, interaction, occurred_at, ord)`, 'e')}
     ORDER BY ord`,
  );
}

/** Writes the events into the outbox inside the caller's transaction. */
export async function appendChangeEvents(tx: Queryable, events: ResourceChangeEvent[]): Promise<void> {
  const statement = new CompositeWrite();
  addChangeEvents(statement, events);
  await statement.run(tx);
}
