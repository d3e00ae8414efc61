/**
 * The seam through which the security module restricts what a caller's requests may see and change, without the
 * store knowing about tokens, roles or consent. A repository bound to a caller (`FhirRepository.withAccess`) adds
 * `readFilter` to every query that returns resources (read, search, count, _include, $everything) and calls
 * `checkChange` and `stamp` on every write, whatever path it came by (plain, conditional, bundle, patch).
 */
import type { Resource } from '@medplum/fhirtypes';
import { SqlParams, type Queryable } from '../db';

/** Reads the current version of a resource (undefined when missing or deleted), in the write's transaction. */
export type ResourceReader = <T extends Resource = Resource>(resourceType: string, id: string) => Promise<T | undefined>;

/**
 * Who a request acts for, as the security module authenticated it: for operations and write rules that decide by
 * the acting organisation (who may accept a referral addressed to a hospital).
 */
export interface CallerIdentity {
  clientId: string;
  role: string;
  /** 'Organization/{id}' the client belongs to (every role but admin has one). */
  organization?: string;
  /** 'Practitioner/{id}' behind a clinician's call. */
  practitioner?: string;
  /** The scopes granted to the request's token, for work done later on the caller's behalf (a bulk export). */
  scope?: string;
  /** The signed-in user (auth_user id) behind a SMART app's token, whose current role and organisation apply. */
  user?: string;
}

/**
 * The security module's answer to "what may this identity do now": its repository hooks (undefined for an
 * unrestricted caller), or false when it may no longer act (its client or user disabled or gone).
 */
export type CallerAccessResolver = (identity: CallerIdentity) => Promise<RepositoryAccess | undefined | false>;

export interface RepositoryAccess {
  /** The caller the writes are made for, handed to write interceptors. */
  actor?: CallerIdentity;
  /**
   * An SQL condition on the `resource` row called `alias` that holds for the rows the caller may see; `types`, when
   * given, are the only resource types the rows can have.
   */
  readFilter?(alias: string, params: SqlParams, types?: readonly string[]): string;
  /**
   * Called with the current content before a write changes or deletes an existing resource; throws to refuse.
   * `read` reads other resources in the write's transaction (the organisation behind a Task's addressee).
   */
  checkChange?(resourceType: string, id: string, currentContent: string | null, read: ResourceReader): void | Promise<void>;
  /** The resource as it is to be stored (e.g. stamped with its owner), given the version it replaces; throws to refuse the write. */
  stamp?(resource: Resource, current?: Resource): Resource;
  /** Whether history across resources (type or system `_history`) may be read; it is not filtered row by row. */
  mayReadAllHistory?: boolean;
}

/** Whether the caller may see the resource (its read filter holds for the current row). */
export async function isVisible(q: Queryable, access: RepositoryAccess, resourceType: string, id: string): Promise<boolean> {
  if (!access.readFilter) {
    return true;
  }
  const params = new SqlParams();
  const sql = `SELECT 1 FROM resource r WHERE r.res_type = ${params.add(resourceType)} AND r.id = ${params.add(id)} AND ${access.readFilter('r', params, [resourceType])}`;
  return (await q.query(sql, params.values, { prepare: true })).length > 0;
}
