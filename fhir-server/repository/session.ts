/**
 * A write session: the FHIR semantics of create, update, patch and delete (plain and conditional) inside one
 * database transaction. Writes are buffered and flushed set-based, so a transaction bundle of fifty resources
 * costs a handful of statements, not hundreds.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Meta, Resource } from '@medplum/fhirtypes';
import { CompositeWrite, type Queryable } from '../db';
import { badRequest, conflict, gone, notFound, preconditionFailed, unprocessable } from '../errors';
import { addChangeEvents, type ResourceChangeEvent } from '../events';
import { addIndexWrites, compartmentsOf, extractIndexRows, parseSearch, queryRecord, type IndexRows } from '../search';
import { validateResourceForWrite } from '../validation';
import { isVisible, type CallerIdentity, type RepositoryAccess } from './access';
import { applyResourcePatch, type ResourcePatch } from './patch';
import { localReferencesOf, type ResourceKey } from './references';
import { findResourceIds } from './search-sql';
import { addVersionWrites, existingResources, readCurrent, type CurrentRow, type Interaction, type VersionWrite } from './store';

const ID_PATTERN = /^[A-Za-z0-9\-.]{1,64}$/;

export interface SessionOptions {
  /** Refuse writes whose local references point nowhere, and deletes of referenced resources. */
  enforceReferentialIntegrity: boolean;
  baseUrl: string;
  /** Rules of other modules that look at (and may refuse or extend) writes of some resource types. */
  interceptors?: readonly WriteInterceptor[];
  /**
   * The code of a Patient reference SearchParameter whose rows name a patient's linked patients (a golden record's
   * sources): searches by a Patient reference and `$everything` include their records too (see linked-patients.ts).
   */
  patientLinkParameter?: string;
}

/** A write as an interceptor sees it, before its version is written. */
export interface InterceptedWrite {
  interaction: Interaction;
  resourceType: string;
  id: string;
  /** What is about to be written (absent for a delete). */
  resource?: Resource;
  /**
   * The current version (absent for a create): locked for this transaction, or, for a pure rule on the If-Match
   * path, the expected version, which the write statement then requires to be still current.
   */
  previous?: Resource;
  /** The caller the write is made for; absent for the platform's own writes and an administrator's. */
  actor?: CallerIdentity;
}

/**
 * A module's rule on writes of some resource types (a booking turns its slot busy; a Task may only move along its
 * state machine). It runs inside the write's transaction for every write of those types, from HTTP, bundles or
 * other modules: throw a FhirError to refuse the write (nothing of the transaction is committed), write other
 * resources through `session` to make them part of the same transaction, or return a changed copy of the resource
 * to write that instead. A transaction that loses a race is retried, so an interceptor must have no outside effects.
 */
export interface WriteInterceptor {
  resourceTypes: readonly string[];
  /**
   * True when `beforeWrite` decides from `write` alone: it neither reads nor writes through `session`. An If-Match
   * update of such a type can then go as one guarded statement (`FhirRepository.updateIfMatch`), the interceptor
   * seeing the expected version as `previous`; other interceptors need the ordinary transaction.
   */
  pure?: boolean;
  beforeWrite(session: WriteSession, write: InterceptedWrite): Promise<Resource | void>;
}

export interface WriteOutcome {
  resource: Resource;
  /** True when the write created the resource (HTTP 201), false when it updated or found an existing one. */
  created: boolean;
}

interface PendingWrite extends VersionWrite {
  resource?: Resource;
  rows?: IndexRows;
  /** Skip the reference check for this write (a delete asked with `_force=true`). */
  force: boolean;
}

const key = (resourceType: string, id: string): string => `${resourceType}/${id}`;

export function assertValidId(id: string): void {
  if (!ID_PATTERN.test(id)) {
    throw badRequest(`Invalid resource id "${id}": ids are 1-64 characters of A-Z, a-z, 0-9, '-' and '.'`);
  }
}

export class WriteSession {
  /** One timestamp for everything this transaction writes. */
  readonly now = new Date().toISOString();
  private readonly pending = new Map<string, PendingWrite>();
  /** Change events of everything flushed so far, for the relay once the transaction has committed. */
  readonly events: ResourceChangeEvent[] = [];
  /** Set by updateExpecting: the version the write statement must find current. */
  private expected: { resourceType: string; id: string; versionId: number } | undefined;

  constructor(
    readonly tx: Queryable,
    private readonly options: SessionOptions,
    /** The caller's restrictions (security module), when the session writes on behalf of a caller. */
    private readonly access?: RepositoryAccess,
    /** Everything written is built by the platform's own typed code (validation/index.ts, `trustedStructure`). */
    private readonly trustedStructure = false,
  ) {}

  async create(input: Resource, id: string = randomUUID()): Promise<Resource> {
    assertValidId(id);
    const intercepted = await this.intercept({ interaction: 'create', resourceType: input.resourceType, id, resource: { ...input, id } as Resource });
    const resource = this.prepare(intercepted ?? input, id, 1);
    this.queue(resource, 'create');
    return resource;
  }

  /** Update, or update-as-create when the resource does not exist (or was deleted). */
  async update(resourceType: string, id: string, input: Resource, ifMatch?: number): Promise<WriteOutcome> {
    checkUpdateTarget(resourceType, id, input);
    const current = await this.lockCurrent(resourceType, id);
    checkIfMatch(resourceType, id, current, ifMatch);
    const created = !current || current.deleted;
    if (!created) {
      await this.access?.checkChange?.(resourceType, id, current.content, (type, otherId) => this.read(type, otherId));
    }
    const previous = created || !current?.content ? undefined : (JSON.parse(current.content) as Resource);
    const intercepted = await this.intercept({ interaction: created ? 'create' : 'update', resourceType, id, resource: input, previous });
    const resource = this.prepare(intercepted ?? input, id, (current?.versionId ?? 0) + 1, previous);
    this.queue(resource, created ? 'create' : 'update');
    return { resource, created };
  }

  /**
   * An If-Match update without a transaction of its own: the write statement itself checks (and locks) the expected
   * version, and that the resources it refers to exist, so that the whole update is one statement in autocommit.
   * When the caller's stamp or a (pure) interceptor needs the current content, the expected version is read
   * first without a lock: versions never change, and the statement's guard makes sure it is still the current one.
   * Returns undefined when the expected version is not current (nothing is queued); `flush()` then says whether the
   * guard held. In both cases the caller takes the ordinary path to find out why (412, 404, 410, 422 or
   * re-creation).
   */
  async updateExpecting(resourceType: string, id: string, input: Resource, ifMatch: number): Promise<Resource | undefined> {
    checkUpdateTarget(resourceType, id, input);
    if (!this.mayUpdateExpecting(resourceType)) {
      throw new Error(`Writes of ${resourceType} are intercepted by rules that need a transaction: use update()`);
    }
    if (this.pending.size > 0 || this.expected) {
      throw new Error('An update that expects a version must be the only write of its session');
    }
    let previous: Resource | undefined;
    if (this.access?.stamp || this.intercepts(resourceType)) {
      const current = await readCurrent(this.tx, resourceType, id);
      if (!current || current.deleted || current.content === null || current.versionId !== ifMatch) {
        return undefined;
      }
      previous = JSON.parse(current.content) as Resource;
    }
    const intercepted = await this.intercept({ interaction: 'update', resourceType, id, resource: input, previous });
    const resource = this.prepare(intercepted ?? input, id, ifMatch + 1, previous);
    this.queue(resource, 'update');
    this.expected = { resourceType, id, versionId: ifMatch };
    return resource;
  }

  /**
   * Whether updateExpecting may write this type without a transaction: every interceptor of the type is pure, and
   * the caller's access policy has no change check (which reads other resources in the write's transaction).
   */
  mayUpdateExpecting(resourceType: string): boolean {
    if (this.access?.checkChange) {
      return false;
    }
    return !(this.options.interceptors?.some((i) => !i.pure && i.resourceTypes.includes(resourceType)) ?? false);
  }

  async patch(resourceType: string, id: string, patch: ResourcePatch, ifMatch?: number): Promise<Resource> {
    const current = await this.lockCurrent(resourceType, id);
    if (!current) {
      throw notFound(`${resourceType}/${id} does not exist`);
    }
    if (current.deleted || current.content === null) {
      throw gone(`${resourceType}/${id} was deleted`);
    }
    checkIfMatch(resourceType, id, current, ifMatch);
    await this.access?.checkChange?.(resourceType, id, current.content, (type, otherId) => this.read(type, otherId));
    const patched = JSON.parse(current.content) as Resource;
    applyResourcePatch(patched, patch);
    if (patched.resourceType !== resourceType || patched.id !== id) {
      throw unprocessable([{ severity: 'error', code: 'processing', diagnostics: 'A patch may not change resourceType or id' }]);
    }
    const previous = JSON.parse(current.content) as Resource;
    const intercepted = await this.intercept({ interaction: 'patch', resourceType, id, resource: patched, previous });
    const resource = this.prepare(intercepted ?? patched, id, current.versionId + 1, previous);
    this.queue(resource, 'patch');
    return resource;
  }

  /** Deletes; returns false when there was nothing to delete (already deleted or never existed). */
  async delete(resourceType: string, id: string, options: { ifMatch?: number; force?: boolean } = {}): Promise<boolean> {
    assertValidId(id);
    const current = await this.lockCurrent(resourceType, id);
    if (options.ifMatch !== undefined) {
      checkIfMatch(resourceType, id, current, options.ifMatch);
    }
    if (!current || current.deleted) {
      return false;
    }
    await this.access?.checkChange?.(resourceType, id, current.content, (type, otherId) => this.read(type, otherId));
    await this.intercept({ interaction: 'delete', resourceType, id, previous: current.content ? (JSON.parse(current.content) as Resource) : undefined });
    this.claim(resourceType, id);
    this.pending.set(key(resourceType, id), {
      resourceType,
      id,
      versionId: current.versionId + 1,
      lastUpdated: this.now,
      interaction: 'delete',
      compartments: [],
      force: options.force ?? false,
    });
    return true;
  }

  /** `If-None-Exist` create: the existing resource when exactly one matches, 412 when several do. */
  async conditionalCreate(input: Resource, query: string, id?: string): Promise<WriteOutcome> {
    const ids = await this.findUnderLock(input.resourceType, query);
    if (ids.length > 1) {
      throw preconditionFailed(`If-None-Exist "${query}" matched ${ids.length} ${input.resourceType} resources`);
    }
    if (ids.length === 1) {
      // The existing resource is returned: only if the caller may see it (patient consent, care relationship).
      if (this.access && !(await isVisible(this.tx, this.access, input.resourceType, ids[0]))) {
        throw preconditionFailed(`If-None-Exist "${query}" matched a ${input.resourceType} that this client may not see`);
      }
      return { resource: await this.readExisting(input.resourceType, ids[0]), created: false };
    }
    // A conditional create gets a server-assigned id (or the one a transaction assigned), as a plain create does.
    return { resource: await this.create(input, id), created: true };
  }

  /** `PUT Type?query`: update the one match, create when none, 412 when several. */
  async conditionalUpdate(resourceType: string, query: string, input: Resource, ifMatch?: number, newId?: string): Promise<WriteOutcome> {
    const ids = await this.findUnderLock(resourceType, query);
    if (ids.length > 1) {
      throw preconditionFailed(`Conditional update "${resourceType}?${query}" matched ${ids.length} resources`);
    }
    if (ids.length === 1) {
      if (input.id !== undefined && input.id !== ids[0]) {
        throw badRequest(`The resource id "${input.id}" differs from the id of the resource the condition matched ("${ids[0]}")`);
      }
      return this.update(resourceType, ids[0], { ...input, id: ids[0] }, ifMatch);
    }
    if (input.id !== undefined) {
      return this.update(resourceType, input.id, input, ifMatch);
    }
    return { resource: await this.create(input, newId), created: true };
  }

  /** `DELETE Type?query`: deletes the one match; 412 when several match. Returns how many were deleted. */
  async conditionalDelete(resourceType: string, query: string, force = false): Promise<number> {
    const ids = await this.findUnderLock(resourceType, query);
    if (ids.length > 1) {
      throw preconditionFailed(`Conditional delete "${resourceType}?${query}" matched ${ids.length} resources; only one may be deleted at a time`);
    }
    if (ids.length === 0) {
      return 0;
    }
    return (await this.delete(resourceType, ids[0], { force })) ? 1 : 0;
  }

  /** Ids of the resources a search URL's query matches (at most `limit`), as a conditional operation sees them. */
  async find(resourceType: string, query: string, limit = 2): Promise<string[]> {
    const request = parseSearch(resourceType, queryRecord(new URLSearchParams(query)));
    if (!request.filters || request.filters.length === 0) {
      throw badRequest(`A conditional operation needs search criteria, "${resourceType}?${query}" has none`);
    }
    return findResourceIds(this.tx, request, limit, this.options.baseUrl);
  }

  /**
   * Writes everything queued: checks references, then the versions, the search indexes and the change events,
   * each set-based. The events are kept in `events` so that the caller can wake the relay after the commit.
   * Returns false when the version updateExpecting expected was not current: then nothing was written.
   */
  async flush(): Promise<boolean> {
    const writes = [...this.pending.values()];
    this.pending.clear();
    if (writes.length === 0) {
      return true;
    }
    const expected = this.expected;
    // An expected-version update checks its references in its guard (one round trip less); when one is missing the
    // guard fails, and the ordinary path that follows names it in its 422.
    const referenced = expected && this.options.enforceReferentialIntegrity ? [...this.wantedReferences(writes).values()].map((w) => w.target) : [];
    if (this.options.enforceReferentialIntegrity && !expected) {
      await this.checkReferencesExist(writes);
      await this.checkNotReferenced(writes);
    }
    const events: ResourceChangeEvent[] = writes.map((w) => ({
      resourceType: w.resourceType,
      id: w.id,
      versionId: w.versionId,
      interaction: w.interaction,
      occurredAt: w.lastUpdated,
    }));
    // Versions, index rows and change events: one statement of one fixed shape, one round trip, planned once.
    const statement = new CompositeWrite();
    if (expected) {
      statement.guard((p) => {
        const types = p.add(referenced.map((r) => r.resourceType));
        return `SELECT 1 FROM resource cur WHERE cur.res_type = ${p.add(expected.resourceType)} AND cur.id = ${p.add(expected.id)}
          AND cur.version_id = ${p.add(expected.versionId)} AND NOT cur.deleted
          AND (SELECT count(*) FROM resource r JOIN unnest((SELECT ${types}::text[]), ${p.array(referenced.map((r) => r.id), 'text')}) AS k(res_type, id)
            ON r.res_type = k.res_type AND r.id = k.id WHERE NOT r.deleted) = cardinality(${types}::text[])
          FOR UPDATE OF cur`;
      });
    }
    addVersionWrites(statement, writes);
    addIndexWrites(
      statement,
      writes.filter((w) => w.rows).map((w) => ({ resourceType: w.resourceType, id: w.id, rows: w.rows as IndexRows })),
      // A first version has no index rows yet; every later one (update, delete, re-create) replaces or drops them.
      writes.filter((w) => w.versionId > 1).map((w) => ({ resourceType: w.resourceType, id: w.id })),
    );
    addChangeEvents(statement, events);
    const written = await statement.run(this.tx, { prepare: true });
    if (written) {
      this.events.push(...events);
    }
    return written;
  }

  /** Whether some module's interceptor looks at writes of this type. */
  intercepts(resourceType: string): boolean {
    return this.options.interceptors?.some((i) => i.resourceTypes.includes(resourceType)) ?? false;
  }

  /**
   * Replaces a write this session queued and has not flushed with a completed version of the same resource: for a
   * rule that learns more later in the transaction (a DocumentReference filled from the CDA header of a Binary that
   * comes after it in an ITI-65 bundle). It is validated and indexed again; its version and interaction stay, and
   * the queued resource object is updated in place, so that what the transaction answers shows it. False when no
   * such write is queued (it was flushed, or never written here).
   */
  revise(resource: Resource): boolean {
    const id = resource.id as string;
    const pending = this.pending.get(key(resource.resourceType, id));
    if (!pending?.resource) {
      return false;
    }
    const revised = this.prepare({ ...resource, meta: pending.resource.meta }, id, pending.versionId);
    const rows = extractIndexRows(revised);
    const target = pending.resource as unknown as Record<string, unknown>;
    for (const name of Object.keys(target)) {
      delete target[name];
    }
    Object.assign(target, revised);
    this.pending.set(key(resource.resourceType, id), { ...pending, content: JSON.stringify(revised), compartments: compartmentsOf(revised, rows), rows });
    return true;
  }

  /** Runs the interceptors of the write's type in order; returns the resource to write if one of them changed it. */
  private async intercept(write: InterceptedWrite): Promise<Resource | undefined> {
    let changed: Resource | undefined;
    write.actor = this.access?.actor;
    for (const interceptor of this.options.interceptors ?? []) {
      if (interceptor.resourceTypes.includes(write.resourceType)) {
        const result = await interceptor.beforeWrite(this, changed ? { ...write, resource: changed } : write);
        if (result) {
          changed = result;
        }
      }
    }
    return changed;
  }

  private async lockCurrent(resourceType: string, id: string): Promise<CurrentRow | undefined> {
    if (this.pending.has(key(resourceType, id))) {
      throw badRequest(`${resourceType}/${id} is written twice in one transaction`);
    }
    return readCurrent(this.tx, resourceType, id, true);
  }

  /** The current version as this transaction sees it (undefined when missing or deleted), for interceptors. */
  async read<T extends Resource = Resource>(resourceType: string, id: string): Promise<T | undefined> {
    const current = await readCurrent(this.tx, resourceType, id);
    return current?.content && !current.deleted ? (JSON.parse(current.content) as T) : undefined;
  }

  private async readExisting(resourceType: string, id: string): Promise<Resource> {
    const current = await readCurrent(this.tx, resourceType, id);
    if (!current?.content) {
      throw notFound(`${resourceType}/${id} does not exist`);
    }
    return JSON.parse(current.content) as Resource;
  }

  /**
   * Conditional operations search and write under a transaction-scoped advisory lock on the normalised query,
   * so that twenty simultaneous conditional creates with one identifier leave one resource, while writes with
   * other conditions proceed in parallel.
   */
  async findUnderLock(resourceType: string, query: string): Promise<string[]> {
    const normalised = [...new URLSearchParams(query).entries()]
      .map(([name, value]) => `${name}=${value}`)
      .sort()
      .join('&');
    const digest = createHash('sha256').update(`${resourceType}?${normalised}`).digest();
    await this.tx.query('SELECT pg_advisory_xact_lock($1::bigint)', [digest.readBigInt64BE(0).toString()]);
    return this.find(resourceType, query);
  }

  /** Validates and stamps a copy of the resource with its id and new meta; `previous` is the version it replaces. */
  private prepare(original: Resource, id: string, versionId: number, previous?: Resource): Resource {
    assertValidId(id);
    const input = this.access?.stamp ? this.access.stamp(original, previous) : original;
    const issues = validateResourceForWrite(input, { trustedStructure: this.trustedStructure });
    if (issues.some((i) => i.severity === 'error' || i.severity === 'fatal')) {
      throw badRequestWithIssues(issues);
    }
    const meta: Meta = { ...input.meta, versionId: String(versionId), lastUpdated: this.now };
    // resourceType, id and meta first, as FHIR's own examples and every client expect to read them.
    const { resourceType, id: _ignoredId, meta: _ignoredMeta, ...rest } = input;
    return { resourceType, id, meta, ...rest } as Resource;
  }

  private claim(resourceType: string, id: string): void {
    if (this.pending.has(key(resourceType, id))) {
      throw badRequest(`${resourceType}/${id} is written twice in one transaction`);
    }
  }

  private queue(resource: Resource, interaction: Interaction): void {
    const id = resource.id as string;
    this.claim(resource.resourceType, id);
    const rows = extractIndexRows(resource);
    this.pending.set(key(resource.resourceType, id), {
      resourceType: resource.resourceType,
      id,
      versionId: Number(resource.meta?.versionId),
      lastUpdated: this.now,
      interaction,
      content: JSON.stringify(resource),
      compartments: compartmentsOf(resource, rows),
      resource,
      rows,
      force: false,
    });
  }

  /** The resources the writes refer to that they do not write themselves, once each. */
  private wantedReferences(writes: PendingWrite[]): Map<string, { target: ResourceKey; from: string }> {
    const written = new Set(writes.filter((w) => w.resource).map((w) => key(w.resourceType, w.id)));
    const wanted = new Map<string, { target: ResourceKey; from: string }>();
    for (const w of writes) {
      for (const target of w.resource ? localReferencesOf(w.resource) : []) {
        const k = key(target.resourceType, target.id);
        if (!written.has(k)) {
          wanted.set(k, { target, from: key(w.resourceType, w.id) });
        }
      }
    }
    return wanted;
  }

  private async checkReferencesExist(writes: PendingWrite[]): Promise<void> {
    const wanted = this.wantedReferences(writes);
    const found = await existingResources(this.tx, [...wanted.values()].map((w) => w.target));
    const missing = [...wanted.entries()].filter(([k]) => !found.has(k));
    if (missing.length > 0) {
      throw unprocessable(
        missing.map(([k, { from }]) => ({
          severity: 'error',
          code: 'not-found',
          diagnostics: `${from} refers to ${k}, which does not exist on this server`,
        })),
      );
    }
  }

  private async checkNotReferenced(writes: PendingWrite[]): Promise<void> {
    const deleted = writes.filter((w) => !w.resource && !w.force);
    if (deleted.length === 0) {
      return;
    }
    const deletedKeys = new Set(writes.filter((w) => !w.resource).map((w) => key(w.resourceType, w.id)));
    const rows = await this.tx.query<{ target_type: string; target_id: string; res_type: string; res_id: string }>(
      `SELECT DISTINCT s.target_type, s.target_id, s.res_type, s.res_id
       FROM search_reference s
       JOIN unnest($1::text[], $2::text[]) AS k(t, i) ON s.target_type = k.t AND s.target_id = k.i
       JOIN resource r ON r.res_type = s.res_type AND r.id = s.res_id AND NOT r.deleted
       LIMIT 100`,
      [deleted.map((w) => w.resourceType), deleted.map((w) => w.id)],
    );
    const blocking = rows.filter((r) => !deletedKeys.has(key(r.res_type, r.res_id)));
    if (blocking.length > 0) {
      const target = key(blocking[0].target_type, blocking[0].target_id);
      const by = blocking.map((r) => key(r.res_type, r.res_id));
      throw conflict(
        `${target} cannot be deleted: it is referenced by ${by.slice(0, 10).join(', ')}${by.length > 10 ? ' and others' : ''}. ` +
          'Delete or update those first, or repeat the delete with _force=true to leave the references dangling.',
      );
    }
  }
}

/** An update's body names the URL's type and id. */
function checkUpdateTarget(resourceType: string, id: string, input: Resource): void {
  assertValidId(id);
  if (input.resourceType !== resourceType) {
    throw badRequest(`Resource type "${input.resourceType}" does not match the URL's type "${resourceType}"`);
  }
  if (input.id !== id) {
    throw badRequest(
      input.id === undefined
        ? `The resource has no id; an update must carry the id of the URL ("${id}")`
        : `The resource id "${input.id}" does not match the URL's id "${id}"`,
      [`${resourceType}.id`],
    );
  }
}

function checkIfMatch(resourceType: string, id: string, current: CurrentRow | undefined, ifMatch: number | undefined): void {
  if (ifMatch === undefined) {
    return;
  }
  if (!current) {
    throw preconditionFailed(`If-Match W/"${ifMatch}" given, but ${resourceType}/${id} does not exist`);
  }
  if (current.versionId !== ifMatch) {
    throw preconditionFailed(
      `If-Match W/"${ifMatch}" does not match the current version W/"${current.versionId}" of ${resourceType}/${id}`,
    );
  }
}

function badRequestWithIssues(issues: ReturnType<typeof validateResourceForWrite>): Error {
  const error = badRequest(issues[0]?.diagnostics ?? 'Invalid resource');
  error.outcome.issue = issues;
  return error;
}
