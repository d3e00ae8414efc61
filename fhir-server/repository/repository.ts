/**
 * The store's public face for the REST layer and for every other module: reads, history, search, and
 * transactional writes through a WriteSession.
 */
import type { SearchRequest } from '@medplum/core';
import type { Resource } from '@medplum/fhirtypes';
import type { Database, Queryable } from '../db';
import { isRetryableConflict } from '../db';
import { forbidden, gone, notFound } from '../errors';
import { runtimeParams } from '../search';
import type { ResourceChangeEvent } from '../events';
import { isVisible, type CallerAccessResolver, type CallerIdentity, type RepositoryAccess } from './access';
import { assertValidId, WriteSession, type SessionOptions, type WriteOutcome } from './session';
import { resolveIncludes, type IncludedRow } from './includes';
import { expandPatientReferences, linkedPatients } from './linked-patients';
import {
  compartmentPage,
  countMatches,
  estimateMatches,
  searchPage,
  type CompartmentQuery,
  type PageOptions,
  type SearchPage,
  type SearchScope,
} from './search-sql';
import { countHistory, readCurrent, readHistory, readVersion, type HistoryQuery, type VersionRow } from './store';

/** A stored version as read: the JSON text is passed through untouched, never re-serialised. */
export interface StoredResource {
  resourceType: string;
  id: string;
  versionId: number;
  lastUpdated: Date;
  json: string;
}

/** How often a transaction that lost a race (unique key, deadlock) is retried before the error is reported. */
const MAX_ATTEMPTS = 5;

export interface RepositoryOptions extends SessionOptions {
  /** How the security module turns a recorded caller identity into that caller's current rights (`asCaller`). */
  callerAccess?: CallerAccessResolver;
}

export class FhirRepository {
  constructor(
    readonly db: Database,
    readonly options: RepositoryOptions,
    private readonly onCommit: (events: ResourceChangeEvent[]) => void = () => undefined,
    /** The caller's restrictions; undefined for the platform's own, unrestricted use. */
    readonly access?: RepositoryAccess,
  ) {}

  /** The same store, seen and written on behalf of a caller with these restrictions (see access.ts). */
  withAccess(access: RepositoryAccess | undefined): FhirRepository {
    return access ? new FhirRepository(this.db, this.options, this.onCommit, access) : this;
  }

  /**
   * The same store, seen and written with the current rights of a caller recorded earlier (a subscription's owner):
   * the read filter a search by that caller would get (organisation, consent, security labels, care relationship),
   * its write checks and stamp. Undefined when that caller may no longer act (disabled, no longer registered), and
   * also when no security module told the store how to judge identities, so that nothing is done on an unknown
   * caller's behalf with the platform's rights.
   */
  async asCaller(identity: CallerIdentity): Promise<FhirRepository | undefined> {
    const resolve = this.options.callerAccess;
    const access = resolve ? await resolve(identity) : false;
    return access === false ? undefined : new FhirRepository(this.db, this.options, this.onCommit, access);
  }

  /**
   * 404 when the caller may not see the resource: the same answer as for one that does not exist, so that
   * a patient's consent hides even the existence of what it denies.
   */
  private async assertVisible(resourceType: string, id: string, q: Queryable): Promise<void> {
    if (this.access && !(await isVisible(q, this.access, resourceType, id))) {
      throw notFound(`${resourceType}/${id} is not known, or not visible to this client`);
    }
  }

  /**
   * Runs `fn` in one database transaction and commits everything it wrote, or nothing. A transaction that lost
   * a race with a concurrent writer is retried from the start, so `fn` must not have outside effects.
   * `trustedStructure`: every resource `fn` writes is built by the platform's own typed code, never taken from a
   * request body (the HL7 adapters' mappings); validation then skips the base definition's check (validation/index.ts).
   */
  async write<T>(fn: (session: WriteSession) => Promise<T>, options: { trustedStructure?: boolean } = {}): Promise<T> {
    await runtimeParams.refresh(this.db);
    for (let attempt = 1; ; attempt++) {
      try {
        const { result, events } = await this.db.transaction(async (tx) => {
          const session = new WriteSession(tx, this.options, this.access, options.trustedStructure);
          const result = await fn(session);
          await session.flush();
          return { result, events: session.events };
        });
        await this.committed(events);
        return result;
      } catch (err) {
        if (attempt >= MAX_ATTEMPTS || !isRetryableConflict(err)) {
          throw err;
        }
      }
    }
  }

  /**
   * An update with If-Match, outside any bundle: one guarded statement in autocommit (the version check, the row
   * lock and the reference check are part of it) instead of a transaction of four round trips; a read of the
   * expected version goes first when the caller's stamp or a pure interceptor looks at it. When the expected
   * version is not current, or a reference is missing, nothing was written, and the ordinary transactional update
   * answers with the right 412, 404, 422 or re-creation.
   */
  async updateIfMatch(resourceType: string, id: string, input: Resource, ifMatch: number): Promise<WriteOutcome> {
    await runtimeParams.refresh(this.db);
    const session = new WriteSession(this.db, this.options, this.access);
    if (!session.mayUpdateExpecting(resourceType)) {
      // An interceptor that reads or writes through its session, or the caller's change check (which reads in the
      // write's transaction), needs a transaction: take the ordinary path.
      return this.write((s) => s.update(resourceType, id, input, ifMatch));
    }
    const resource = await session.updateExpecting(resourceType, id, input, ifMatch);
    let written = false;
    if (resource) {
      try {
        written = await session.flush();
      } catch (err) {
        if (!isRetryableConflict(err)) {
          throw err;
        }
      }
    }
    if (!resource || !written) {
      return this.write((s) => s.update(resourceType, id, input, ifMatch));
    }
    await this.committed(session.events);
    return { resource, created: false };
  }

  /** After a commit: wake the relay, and take a changed SearchParameter into use at once in this process. */
  private async committed(events: ResourceChangeEvent[]): Promise<void> {
    if (events.length === 0) {
      return;
    }
    this.onCommit(events);
    if (events.some((e) => e.resourceType === 'SearchParameter')) {
      await runtimeParams.refresh(this.db, true);
    }
  }

  /**
   * Makes sure this process knows the SearchParameters stored on the server (another process may have changed
   * them); cheap, see search/runtime-params.ts. Searches and writes call it themselves.
   */
  async refreshSearchParameters(q: Queryable = this.db): Promise<void> {
    await runtimeParams.refresh(q);
  }

  async read(resourceType: string, id: string, q: Queryable = this.db): Promise<StoredResource> {
    assertValidId(id);
    const current = await readCurrent(q, resourceType, id);
    if (!current) {
      throw notFound(`${resourceType}/${id} is not known`);
    }
    if (current.deleted || current.content === null) {
      throw gone(`${resourceType}/${id} was deleted (version ${current.versionId})`);
    }
    await this.assertVisible(resourceType, id, q);
    return { resourceType, id, versionId: current.versionId, lastUpdated: current.lastUpdated, json: current.content };
  }

  async vread(resourceType: string, id: string, versionId: number, q: Queryable = this.db): Promise<StoredResource> {
    assertValidId(id);
    const version = Number.isInteger(versionId) && versionId > 0 ? await readVersion(q, resourceType, id, versionId) : undefined;
    if (!version) {
      throw notFound(`${resourceType}/${id} has no version ${versionId}`);
    }
    if (version.content === null) {
      throw gone(`Version ${versionId} of ${resourceType}/${id} is its deletion`);
    }
    await this.assertVisible(resourceType, id, q);
    return { resourceType, id, versionId, lastUpdated: version.lastUpdated, json: version.content };
  }

  async history(query: HistoryQuery, q: Queryable = this.db): Promise<{ rows: VersionRow[]; hasMore: boolean; total?: number }> {
    if (this.access?.readFilter) {
      if (query.id === undefined && !this.access.mayReadAllHistory) {
        throw forbidden('History across resources is not filtered by consent, so it is open to administrators only; read the history of one resource instead');
      }
      if (query.id !== undefined && query.resourceType !== undefined) {
        await this.assertVisible(query.resourceType, query.id, q);
      }
    }
    const rows = await readHistory(q, query);
    const hasMore = rows.length > query.count;
    // A total is cheap for one resource's history; for a whole type or system it is counted only on a first page.
    const total = query.at ? undefined : !hasMore && query.offset === 0 ? rows.length : await countHistory(q, query);
    return { rows: rows.slice(0, query.count), hasMore, total };
  }

  async search(request: SearchRequest, page: Omit<PageOptions, 'baseUrl'>, q: Queryable = this.db): Promise<SearchPage> {
    await runtimeParams.refresh(q);
    const scope = this.scoped(page.scope);
    return searchPage(q, await this.withLinkedPatients(q, request, scope), { ...page, scope, baseUrl: this.options.baseUrl });
  }

  /** What `_include`/`_revinclude` add to a page of matches. */
  async includes(request: SearchRequest, matches: Array<{ resourceType: string; id: string }>, q: Queryable = this.db): Promise<IncludedRow[]> {
    if (!request.include?.length && !request.revInclude?.length) {
      return [];
    }
    return resolveIncludes(q, matches, request.include, request.revInclude, this.access?.readFilter?.bind(this.access));
  }

  async count(request: SearchRequest, scope: SearchScope = {}, q: Queryable = this.db): Promise<number> {
    await runtimeParams.refresh(q);
    const scoped = this.scoped(scope);
    return countMatches(q, await this.withLinkedPatients(q, request, scoped), this.options.baseUrl, scoped);
  }

  /** The planner's estimate of `count` (`_total=estimate`), without running the search. */
  async estimate(request: SearchRequest, scope: SearchScope = {}, q: Queryable = this.db): Promise<number> {
    const scoped = this.scoped(scope);
    return estimateMatches(q, await this.withLinkedPatients(q, request, scoped), this.options.baseUrl, scoped);
  }

  /** The search with Patient references expanded to linked patients, when the server is told how (linked-patients.ts). */
  private async withLinkedPatients(q: Queryable, request: SearchRequest, scope: SearchScope): Promise<SearchRequest> {
    const code = this.options.patientLinkParameter;
    return code ? expandPatientReferences(q, request, code, this.options.baseUrl, scope.filter) : request;
  }

  async compartment(query: CompartmentQuery, q: Queryable = this.db): ReturnType<typeof compartmentPage> {
    const filter = this.access?.readFilter?.bind(this.access);
    const code = this.options.patientLinkParameter;
    const [type, id] = query.compartment.split('/');
    if (code && type === 'Patient') {
      // A golden record's $everything: its own compartment and those of its linked patients.
      const linked = (await linkedPatients(q, code, [id], filter)).get(id) ?? [];
      if (linked.length) {
        return compartmentPage(q, { ...query, also: linked.map((other) => `Patient/${other}`) }, filter);
      }
    }
    return compartmentPage(q, query, filter);
  }

  /** The search's scope with the caller's read filter, so that pages and counts never include what it hides. */
  private scoped(scope: SearchScope = {}): SearchScope {
    return this.access?.readFilter ? { ...scope, filter: this.access.readFilter.bind(this.access) } : scope;
  }
}
