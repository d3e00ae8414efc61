/**
 * FHIR R4 Subscriptions (https://hl7.org/fhir/R4/subscription.html), rest-hook channel.
 *
 * Life cycle: a client creates a Subscription with status `requested`; this service checks the criteria and the
 * endpoint and sets it `active` (or `error` with the reason in `Subscription.error`), and `off` once its `end` has
 * passed.
 *
 * Matching: for each change event (from the fan-out queue `subscription-events`), the active Subscriptions (read
 * at most once a second) whose criteria name the changed type are tested by asking the store the criteria's own search restricted to the
 * changed resource (`criteria&_id=…`). The store's search is the one the client would run, so every parameter,
 * modifier, chain and `_has` means exactly what it means in a search, which an in-memory matcher only approximates.
 * The search is made as the subscription's owner (the client that created it, recorded by subscription-owner.ts,
 * with its current rights through the store's `asCaller`): the owner's organisation, the patients' consents,
 * security labels and, for clinicians, care relationships filter it exactly as they filter that client's searches,
 * so a hospital a consent denies is not notified at all, not even by a ping or an id-only notification. Delivery
 * reads the version as the owner again, and sends nothing when the owner can no longer read it (a consent given in
 * between, a disabled client). Subscriptions without an owner (an administrator's, the platform's) match as the
 * platform. Deletions are not notified (R4 rest-hook has no way to say "deleted").
 *
 * Delivery, at-least-once and ordered per subscription: a match becomes a row in `subscription_notification`
 * (unique per subscription and event, so a repeated event adds nothing). One BullMQ job at a time drains a
 * subscription's rows in the store's change order: it takes a lease on the subscription (`subscription_drain`),
 * POSTs (or PUTs) the oldest row, deletes it, and takes the next; when none is left it gives the lease back in the
 * same transaction that found none. Matching inserts its row in a transaction under the same per-subscription
 * advisory lock and starts a job only when no lease is held, so either the running drain sees the new row or a new
 * drain starts, never neither. A failed delivery fails the job, which BullMQ retries with exponential backoff while
 * the lease (extended over the backoff) keeps other drains away; after the last attempt the Subscription is set to
 * `error` with the reason. Setting it back to `active` resumes delivery where it stopped. A sweep every minute
 * restarts the drains of rows left without one (a crash between commit and enqueue, an expired lease).
 *
 * Order: the relay publishes events in the outbox's order and each process matches them one at a time, so the rows
 * of one process follow the changes. Several processes relay and match side by side, so a drain delivers the waiting
 * rows by the store's change sequence (`seq`) and holds each back until SUBSCRIPTION_REORDER_WINDOW_MS (default
 * 100 ms) after its change: an earlier change matched elsewhere within that window is delivered first. Only a
 * matching delayed beyond it (a retry after a failure) can put a notification after a later one. Deliveries for one
 * subscription never overlap.
 *
 * Channel: no payload → POST to the endpoint with an empty body (R4's notification "ping"); payload
 * `application/fhir+json` → PUT [endpoint]/[type]/[id] with the resource version that matched (R4); with the
 * backport IG's payload-content `id-only` → POST a history Bundle naming the resource without its content.
 * `channel.header` entries ("Name: value") are sent with every request.
 */
import { createHash } from 'node:crypto';
import type { Bundle, Element, Subscription } from '@medplum/fhirtypes';
import type { Job, Queue } from 'bullmq';
import { FhirError, isR4ResourceType, parseSearch, queryRecord, type Database, type FhirRepository, type ResourceChangeJob, type StoredResource } from '../fhir-server';
import type { WorkflowConfig } from './config';
import { readResource, searchAll } from './fhir';
import { EVENT_QUEUES, QueueGroup, type QueueSettings } from './queues';
import { ownerUnrecorded, subscriptionOwner } from './subscription-owner';

export const DELIVERY_QUEUE = 'subscription-delivery';
export const PAYLOAD_CONTENT_EXTENSION = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content';

interface DeliveryJob {
  subscriptionId: string;
}

interface NotificationRow {
  seq: string;
  occurred_at: Date | string;
  event_id: string;
  res_type: string;
  res_id: string;
  version_id: number;
}

export interface SubscriptionServiceOptions {
  repository: FhirRepository;
  db: Database;
  queues: QueueSettings;
  config: WorkflowConfig;
  /** Public FHIR base, for fullUrls in id-only notifications. */
  baseUrl: string;
  onError?: (err: Error, job?: Job) => void;
  /** Called after each notification was delivered (tests, metrics). */
  onDelivered?: (subscriptionId: string, eventId: string) => void;
  /** How often rows without a drain are looked for (default 60 s). */
  sweepIntervalMs?: number;
}

/** `Observation?code=…` → the type and the query, or a reason why the criteria cannot be used. */
export function parseCriteria(criteria: string | undefined): { resourceType: string; query: URLSearchParams } | { error: string } {
  if (!criteria) {
    return { error: 'Subscription.criteria is empty' };
  }
  const [resourceType, query = ''] = criteria.split('?', 2);
  if (!isR4ResourceType(resourceType)) {
    return { error: `Subscription.criteria "${criteria}" does not start with a resource type` };
  }
  const params = new URLSearchParams(query);
  try {
    parseSearch(resourceType, queryRecord(params));
  } catch (err) {
    return { error: `Subscription.criteria "${criteria}" is not a valid search: ${err instanceof Error ? err.message : String(err)}` };
  }
  return { resourceType, query: params };
}

function channelProblem(subscription: Subscription): string | undefined {
  if (subscription.channel?.type !== 'rest-hook') {
    return `Only the rest-hook channel is supported, not "${subscription.channel?.type}"`;
  }
  const endpoint = subscription.channel.endpoint ?? '';
  if (!/^https?:\/\/[^\s]+$/.test(endpoint)) {
    return `Subscription.channel.endpoint must be an http(s) URL, got "${endpoint}"`;
  }
  const payload = subscription.channel.payload;
  if (payload && !['application/fhir+json', 'application/json'].includes(payload)) {
    return `Subscription.channel.payload "${payload}" is not supported (application/fhir+json, or none)`;
  }
  return undefined;
}

const UNRECORDED_OWNER =
  'This subscription was written before subscriptions recorded the client that owns them, so it cannot be matched with its owner\'s rights; ' +
  'update it (PUT, with status requested or active) with the owning client\'s token to record it';

const HEAD_SQL = `SELECT seq, event_id, res_type, res_id, version_id, occurred_at FROM subscription_notification
  WHERE subscription_id = $1 ORDER BY event_seq, seq LIMIT 1`;

/** Whether Subscription.end has passed. */
function expired(subscription: Subscription): boolean {
  return subscription.end !== undefined && Date.parse(subscription.end) <= Date.now();
}

/** A stable 64-bit advisory-lock key per subscription. */
function lockKey(subscriptionId: string): string {
  return createHash('sha256').update(`subscription:${subscriptionId}`).digest().readBigInt64BE(0).toString();
}

/** How long the list of active subscriptions is reused before it is read again. */
const ACTIVE_CACHE_MS = 1000;

/** How long a drain's lease lasts beyond the current delivery's timeout (a crashed worker's lease then expires). */
const LEASE_MARGIN_MS = 30_000;

export class SubscriptionService {
  private readonly group: QueueGroup;
  private readonly deliveries: Queue<DeliveryJob>;
  private readonly sweepTimer: NodeJS.Timeout;
  private active: { at: number; list: Subscription[] } | undefined;

  constructor(private readonly options: SubscriptionServiceOptions) {
    this.group = new QueueGroup(options.queues);
    // Delivery jobs are retained a day, failures a week (bounded in number).
    this.deliveries = this.group.queue<DeliveryJob>(DELIVERY_QUEUE, {
      attempts: options.config.subscriptionAttempts,
      backoff: { type: 'exponential', delay: options.config.subscriptionBackoffMs },
      removeOnComplete: { age: 24 * 3600, count: 10_000 },
      removeOnFail: { age: 7 * 24 * 3600, count: 10_000 },
    });
    const onError = options.onError ?? (() => undefined);
    // One event at a time, so that a process queues notifications in the order of the changes.
    this.group.worker<ResourceChangeJob>(EVENT_QUEUES.subscriptions, (job) => this.onEvent(job.data), 1, onError);
    this.group.worker<DeliveryJob>(DELIVERY_QUEUE, (job) => this.drain(job), 16, onError);
    this.sweepTimer = setInterval(() => void this.sweep().catch((err: Error) => onError(err)), options.sweepIntervalMs ?? 60_000);
    this.sweepTimer.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.sweepTimer);
    await this.group.close();
  }

  async kill(): Promise<void> {
    clearInterval(this.sweepTimer);
    await this.group.kill();
  }

  /** Starts a drain for every subscription with waiting rows and no live lease. */
  async sweep(): Promise<void> {
    const rows = await this.options.db.query<{ subscription_id: string; head: string }>(
      `SELECT n.subscription_id, min(n.seq) AS head FROM subscription_notification n
       WHERE NOT EXISTS (SELECT 1 FROM subscription_drain d WHERE d.subscription_id = n.subscription_id AND d.until > now())
       GROUP BY n.subscription_id`,
    );
    for (const row of rows) {
      await this.startDrain(row.subscription_id, `sweep-${row.head}-${Date.now()}`);
    }
  }

  private async startDrain(subscriptionId: string, tag: string): Promise<void> {
    await this.deliveries.add('deliver', { subscriptionId }, { jobId: `${subscriptionId}-${tag}` });
  }

  private async onEvent(event: ResourceChangeJob): Promise<void> {
    if (event.resourceType === 'Subscription') {
      await this.onSubscriptionChange(event);
    }
    if (event.interaction === 'delete') {
      return;
    }
    for (const subscription of await this.activeSubscriptions()) {
      if (expired(subscription)) {
        // R4 Subscription.end: the server turns the subscription off at that time.
        await this.setStatus(subscription as Subscription & { meta: { versionId: string } }, 'off');
        continue;
      }
      const criteria = parseCriteria(subscription.criteria);
      if ('error' in criteria || criteria.resourceType !== event.resourceType) {
        continue;
      }
      if (ownerUnrecorded(subscription)) {
        await this.setStatus(subscription as Subscription & { meta: { versionId: string } }, 'error', UNRECORDED_OWNER);
        continue;
      }
      // Matched as its owner: what the owner may not read (consent, another organisation's restricted data) never matches.
      const reader = await this.readerFor(subscription);
      if (!reader || !(await this.matches(reader, criteria, event.id))) {
        continue;
      }
      await this.enqueue(subscription.id as string, event);
    }
  }

  /**
   * The active subscriptions, read from the store at most once per ACTIVE_CACHE_MS (every event needs them, and
   * most platforms have few). A subscription activated by another process is seen within that time; one changed
   * by this process at once.
   */
  private async activeSubscriptions(): Promise<Subscription[]> {
    if (!this.active || Date.now() - this.active.at > ACTIVE_CACHE_MS) {
      const found = await searchAll<Subscription>(this.options.repository, 'Subscription', 'status=active');
      this.active = { at: Date.now(), list: found };
    }
    return this.active.list;
  }

  /**
   * The store as the subscription's owner sees it now (see subscription-owner.ts): the platform's for a
   * subscription without an owner (an administrator's or the platform's own), none when the owner may no longer act.
   */
  private async readerFor(subscription: Subscription): Promise<FhirRepository | undefined> {
    const owner = subscriptionOwner(subscription);
    if (owner) {
      return this.options.repository.asCaller(owner);
    }
    return ownerUnrecorded(subscription) ? undefined : this.options.repository;
  }

  /** Whether the resource is among the criteria's search results now, as the owner would search. */
  private async matches(reader: FhirRepository, criteria: { resourceType: string; query: URLSearchParams }, id: string): Promise<boolean> {
    const query = new URLSearchParams(criteria.query);
    query.set('_id', id);
    const request = parseSearch(criteria.resourceType, queryRecord(query));
    return (await reader.count(request)) > 0;
  }

  private async enqueue(subscriptionId: string, event: ResourceChangeJob): Promise<void> {
    const inserted = await this.options.db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1::bigint)', [lockKey(subscriptionId)]);
      const rows = await tx.query<{ seq: string }>(
        `INSERT INTO subscription_notification (subscription_id, event_id, event_seq, occurred_at, res_type, res_id, version_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (subscription_id, event_id) DO NOTHING RETURNING seq`,
        [subscriptionId, event.eventId, event.seq, event.occurredAt, event.resourceType, event.id, event.versionId],
      );
      const leased = await tx.query('SELECT 1 FROM subscription_drain WHERE subscription_id = $1 AND until > now()', [subscriptionId]);
      return rows.length > 0 && leased.length === 0 ? rows[0].seq : undefined;
    });
    if (inserted) {
      await this.startDrain(subscriptionId, String(inserted));
    }
  }

  /** Activates a requested subscription, or resumes one set back to active. */
  private async onSubscriptionChange(event: ResourceChangeJob): Promise<void> {
    const repo = this.options.repository;
    this.active = undefined;
    if (event.interaction === 'delete') {
      await this.options.db.query('DELETE FROM subscription_notification WHERE subscription_id = $1', [event.id]);
      return;
    }
    const subscription = await readResource<Subscription>(repo, 'Subscription', event.id);
    if (!subscription) {
      return;
    }
    if (subscription.status === 'requested') {
      const criteria = parseCriteria(subscription.criteria);
      const problem = 'error' in criteria ? criteria.error : (channelProblem(subscription) ?? (ownerUnrecorded(subscription) ? UNRECORDED_OWNER : undefined));
      await this.setStatus(subscription, problem ? 'error' : expired(subscription) ? 'off' : 'active', problem);
    } else if (subscription.status === 'active') {
      // Set back to active after an error: a drain for what waits (it does nothing if another holds the lease).
      const rows = await this.options.db.query('SELECT 1 FROM subscription_notification WHERE subscription_id = $1 LIMIT 1', [event.id]);
      if (rows.length > 0) {
        await this.startDrain(event.id, `v${subscription.meta.versionId}`);
      }
    } else if (subscription.status === 'off') {
      await this.options.db.query('DELETE FROM subscription_notification WHERE subscription_id = $1', [event.id]);
    }
  }

  private async setStatus(subscription: Subscription & { meta: { versionId: string } }, status: Subscription['status'], error?: string): Promise<void> {
    const { error: _previousError, ...rest } = subscription;
    const next: Subscription = { ...rest, status, ...(error ? { error } : {}) };
    try {
      await this.options.repository.write((s) => s.update('Subscription', subscription.id as string, next, Number(subscription.meta.versionId)));
    } catch (err) {
      // Changed meanwhile: the change's own event brings it back here.
      if (!(err instanceof FhirError && err.status === 412)) {
        throw err;
      }
    }
  }

  /** Takes (or renews) the subscription's lease for this job; false when another drain holds it. */
  private async lease(subscriptionId: string, holder: string, forMs: number): Promise<boolean> {
    const rows = await this.options.db.query(
      `INSERT INTO subscription_drain (subscription_id, holder, until) VALUES ($1, $2, now() + $3 * interval '1 millisecond')
       ON CONFLICT (subscription_id) DO UPDATE SET holder = EXCLUDED.holder, until = EXCLUDED.until
       WHERE subscription_drain.holder = EXCLUDED.holder OR subscription_drain.until <= now()
       RETURNING holder`,
      [subscriptionId, holder, forMs],
    );
    return rows.length > 0;
  }

  private async releaseLease(subscriptionId: string, holder: string): Promise<void> {
    await this.options.db.query('DELETE FROM subscription_drain WHERE subscription_id = $1 AND holder = $2', [subscriptionId, holder]);
  }

  private async drain(job: Job<DeliveryJob>): Promise<void> {
    const { subscriptionId } = job.data;
    const holder = job.id as string;
    const leaseMs = this.options.config.subscriptionTimeoutMs + LEASE_MARGIN_MS;
    if (!(await this.lease(subscriptionId, holder, leaseMs))) {
      return; // Another drain runs, and takes the rows in order.
    }
    let row = await this.head(subscriptionId);
    while (row) {
      const subscription = await readResource<Subscription>(this.options.repository, 'Subscription', subscriptionId);
      if (!subscription || subscription.status !== 'active') {
        // Off, in error or gone: the rows wait (or were dropped); a reactivation starts a new drain.
        await this.releaseLease(subscriptionId, holder);
        return;
      }
      // Within the reorder window after the change, an earlier change may still be on its way: wait, then re-read.
      const wait = Date.parse(new Date(row.occurred_at).toISOString()) + this.options.config.subscriptionReorderMs - Date.now();
      if (wait > 0) {
        await new Promise((resolve) => setTimeout(resolve, wait));
        row = await this.head(subscriptionId);
        continue;
      }
      try {
        await this.lease(subscriptionId, holder, leaseMs);
        await this.deliver(subscription, row);
      } catch (err) {
        const attempts = job.opts.attempts ?? 1;
        if (job.attemptsMade + 1 >= attempts) {
          const reason = `Delivery of ${row.event_id} to ${subscription.channel.endpoint} failed ${attempts} times; last error: ${err instanceof Error ? err.message : String(err)}`;
          await this.releaseLease(subscriptionId, holder);
          await this.setStatus(subscription, 'error', reason);
        } else {
          // Keep other drains away while this job waits for its retry.
          const backoff = this.options.config.subscriptionBackoffMs * 2 ** job.attemptsMade;
          await this.lease(subscriptionId, holder, backoff + leaseMs);
        }
        throw err;
      }
      const current = row;
      row = await this.options.db.transaction(async (tx) => {
        await tx.query('SELECT pg_advisory_xact_lock($1::bigint)', [lockKey(subscriptionId)]);
        await tx.query('DELETE FROM subscription_notification WHERE seq = $1', [current.seq]);
        const next = await tx.query<NotificationRow>(`${HEAD_SQL}`, [subscriptionId]);
        if (next.length === 0) {
          await tx.query('DELETE FROM subscription_drain WHERE subscription_id = $1 AND holder = $2', [subscriptionId, holder]);
        }
        return next[0];
      });
      this.options.onDelivered?.(subscriptionId, current.event_id);
    }
    await this.releaseLease(subscriptionId, holder);
  }

  private async head(subscriptionId: string): Promise<NotificationRow | undefined> {
    const rows = await this.options.db.query<NotificationRow>(HEAD_SQL, [subscriptionId]);
    return rows[0];
  }
  /** One HTTP request to the endpoint; anything but a 2xx answer is a failure. */
  private async deliver(subscription: Subscription, row: NotificationRow): Promise<void> {
    const channel = subscription.channel;
    const endpoint = (channel.endpoint as string).replace(/\/+$/, '');
    const headers: Record<string, string> = {};
    for (const header of channel.header ?? []) {
      const colon = header.indexOf(':');
      if (colon > 0) {
        headers[header.slice(0, colon).trim()] = header.slice(colon + 1).trim();
      }
    }
    // Read as the owner again at delivery: a consent given since the match, or a client disabled, stops it here.
    const reader = await this.readerFor(subscription);
    let stored: StoredResource | undefined;
    try {
      stored = reader ? await reader.vread(row.res_type, row.res_id, row.version_id) : undefined;
    } catch (err) {
      if (!(err instanceof FhirError)) {
        throw err;
      }
    }
    if (!stored) {
      return; // Not visible to the owner (or the version is gone): nothing is sent, not even that something changed.
    }
    let method = 'POST';
    let url = endpoint;
    let body: string | undefined;
    const payloadElement = (channel as { _payload?: Element })._payload;
    const idOnly = payloadElement?.extension?.some((e) => e.url === PAYLOAD_CONTENT_EXTENSION && e.valueCode === 'id-only');
    if (channel.payload && idOnly) {
      const bundle: Bundle = {
        resourceType: 'Bundle',
        type: 'history',
        timestamp: new Date().toISOString(),
        entry: [{ fullUrl: `${this.options.baseUrl}/${row.res_type}/${row.res_id}/_history/${row.version_id}`, request: { method: 'PUT', url: `${row.res_type}/${row.res_id}` } }],
      };
      body = JSON.stringify(bundle);
    } else if (channel.payload) {
      method = 'PUT';
      url = `${endpoint}/${row.res_type}/${row.res_id}`;
      body = stored.json;
    }
    if (body !== undefined) {
      headers['Content-Type'] = 'application/fhir+json';
    }
    const response = await fetch(url, { method, headers, body, signal: AbortSignal.timeout(this.options.config.subscriptionTimeoutMs) });
    await response.arrayBuffer().catch(() => undefined);
    if (!response.ok) {
      throw new Error(`${method} ${url} answered ${response.status}`);
    }
  }
}
