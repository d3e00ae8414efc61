/**
 * Searchset and history bundles, assembled as JSON text around the stored resources so that a page of results
 * costs no parse and re-serialisation of each resource.
 */
import { randomUUID } from 'node:crypto';
import type { BundleLink } from '@medplum/fhirtypes';
import type { VersionRow } from '../repository';
import { RawJson } from './types';

export interface PageLinks {
  /** URL of this page, without `_offset`. */
  selfUrl: URL;
  offset: number;
  count: number;
  hasMore: boolean;
}

/** self, first, previous and next links by offset. */
export function pageLinks({ selfUrl, offset, count, hasMore }: PageLinks): BundleLink[] {
  const at = (o: number): string => {
    const url = new URL(selfUrl);
    url.searchParams.set('_count', String(count));
    if (o > 0) {
      url.searchParams.set('_offset', String(o));
    } else {
      url.searchParams.delete('_offset');
    }
    return url.toString();
  };
  const links: BundleLink[] = [{ relation: 'self', url: at(offset) }, { relation: 'first', url: at(0) }];
  if (offset > 0) {
    links.push({ relation: 'previous', url: at(Math.max(0, offset - count)) });
  }
  if (hasMore) {
    links.push({ relation: 'next', url: at(offset + count) });
  }
  return links;
}

export interface SearchEntry {
  fullUrl: string;
  json: string;
  mode: 'match' | 'include' | 'outcome';
}

/** A bundle's JSON text with `entries` (already JSON) as its entry array. */
function bundleJson(type: 'searchset' | 'history', entries: string[], links: BundleLink[], total?: number): RawJson {
  const head = {
    resourceType: 'Bundle',
    id: randomUUID(),
    meta: { lastUpdated: new Date().toISOString() },
    type,
    ...(total !== undefined ? { total } : {}),
    link: links,
  };
  return new RawJson(`${JSON.stringify(head).slice(0, -1)},"entry":[${entries.join(',')}]}`);
}

export function searchsetBundle(entries: SearchEntry[], links: BundleLink[], total?: number): RawJson {
  const body = entries.map(
    (e) => `{"fullUrl":${JSON.stringify(e.fullUrl)},"resource":${e.json},"search":{"mode":"${e.mode}"}}`,
  );
  return bundleJson('searchset', body, links, total);
}

const METHODS: Record<VersionRow['interaction'], string> = { create: 'POST', update: 'PUT', patch: 'PATCH', delete: 'DELETE' };

export function historyBundle(baseUrl: string, rows: VersionRow[], links: BundleLink[], total?: number): RawJson {
  const body = rows.map((row) => {
    const fullUrl = `${baseUrl}/${row.resourceType}/${row.id}`;
    const method = METHODS[row.interaction];
    const url = method === 'POST' ? row.resourceType : `${row.resourceType}/${row.id}`;
    const status = row.interaction === 'create' ? '201 Created' : row.interaction === 'delete' ? '204 No Content' : '200 OK';
    const response = {
      status,
      etag: `W/"${row.versionId}"`,
      lastModified: row.lastUpdated.toISOString(),
    };
    const resource = row.content === null ? '' : `"resource":${row.content},`;
    return `{"fullUrl":${JSON.stringify(fullUrl)},${resource}"request":${JSON.stringify({ method, url })},"response":${JSON.stringify(response)}}`;
  });
  return bundleJson('history', body, links, total);
}
