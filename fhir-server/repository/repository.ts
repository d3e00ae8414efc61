/**
 * The store's public face for the REST layer and for every other module: reads, history, search, and
 * transactional writes through a WriteSession.
 */
import type { SearchRequest } from '@medplum/core';
import type { Resource } from '@medplum/fhirtypes';
import type { Database, Queryable } from '../db';
import { isRetryableConflict } from '../db';
import { gone, notFound } from '../errors';
import type { ResourceChangeEvent } from '../events';
import { assertValidId, WriteSession, type SessionOptions, type WriteOutcome } from './session';
import { resolveIncludes, type IncludedRow } from './includes';
import { compartmentPage, countMatches, searchPage, type CompartmentQuery, type SearchPage, type SearchScope } from './search-sql';
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

export class FhirRepository {
  constructor(
    readonly db: Database,
    readonly options: SessionOptions,
    private readonly onCommit: (events: ResourceChangeEvent[]) => void = () => undefined,
  ) {}

  /**
   * Runs `fn` in one database transaction and commits everything it wrote, or nothing. A transaction that lost
   * a race with a concurrent writer is retried from the start, so `fn` must not have outside effects.
   */
  async write<T>(fn: (session: WriteSession) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        const { result, events } = await this.db.transaction(async (tx) => {
          const session = new WriteSession(tx, this.options);
          const result = await fn(session);
          await session.flush();
          return { result, events: session.events };
        });
        if (events.length > 0) {
          this.onCommit(events);
        }
        return result;
      } catch (err) {
        if (attempt >= MAX_ATTEMPTS || !isRetryableConflict(err)) {
          throw err;
        }
      }
    }
  }

  /**
   * An update with If-Match, outside any bundle: one guarded statement in autocommit (the version check and the row
   * lock are part of it) instead of a transaction of four round trips. When the expected version is not current,
   * nothing was written, and the ordinary transactional update answers with the right 412, 404 or re-creation.
   */
  async updateIfMatch(resourceType: string, id: string, input: Resource, ifMatch: number): Promise<WriteOutcome> {
    if (this.options.interceptors?.some((i) => i.resourceTypes.includes(resourceType))) {
      // An interceptor needs the current version and a transaction: take the ordinary path.
      return this.write((s) => s.update(resourceType, id, input, ifMatch));
    }
    const session = new WriteSession(this.db, this.options);
    const resource = session.updateExpecting(resourceType, id, input, ifMatch);
    let written: boolean;
    try {
      written = await session.flush();
    } catch (err) {
      if (!isRetryableConflict(err)) {
        throw err;
      }
      written = false;
    }
    if (!written) {
      return this.write((s) => s.update(resourceType, id, input, ifMatch));
    }
    this.onCommit(session.events);
    return { resource, created: false };
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
    return { resourceType, id, versionId, lastUpdated: version.lastUpdated, json: version.content };
  }

  async history(query: HistoryQuery, q: Queryable = this.db): Promise<{ rows: VersionRow[]; hasMore: boolean; total?: number }> {
    const rows = await readHistory(q, query);
    const hasMore = rows.length > query.count;
    // A total is cheap for one resource's history; for a whole type or system it is counted only on a first page.
    const total = query.at ? undefined : !hasMore && query.offset === 0 ? rows.length : await countHistory(q, query);
    return { rows: rows.slice(0, query.count), hasMore, total };
  }

  async search(
    request: SearchRequest,
    page: { count: number; offset: number; scope?: SearchScope },
    q: Queryable = this.db,
  ): Promise<SearchPage> {
    return searchPage(q, request, { ...page, baseUrl: this.options.baseUrl });
  }

  /** What `_include`/`_revinclude` add to a page of matches. */
  async includes(request: SearchRequest, matches: Array<{ resourceType: string; id: string }>, q: Queryable = this.db): Promise<IncludedRow[]> {
    if (!request.include?.length && !request.revInclude?.length) {
      return [];
    }
    return resolveIncludes(q, matches, request.include, request.revInclude);
  }

  async count(request: SearchRequest, scope: SearchScope = {}, q: Queryable = this.db): Promise<number> {
    return countMatches(q, request, this.options.baseUrl, scope);
  }

  async compartment(query: CompartmentQuery, q: Queryable = this.db): ReturnType<typeof compartmentPage> {
    return compartmentPage(q, query);
  }
}
