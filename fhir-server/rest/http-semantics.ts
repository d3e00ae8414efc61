/**
 * Header semantics of FHIR's http.html: versions as weak ETags, Prefer, Location.
 */
import type { OperationOutcome, Resource } from '@medplum/fhirtypes';
import { badRequest } from '../errors';
import type { StoredResource } from '../repository';
import { RawJson, type FhirRequest, type FhirResponse } from './types';

/** `W/"3"` (or `3`, or `"3"`) → 3. */
export function parseVersionTag(value: string | undefined, header: string): number | undefined {
  if (value === undefined || value.trim() === '') {
    return undefined;
  }
  const match = /^\s*(?:W\/)?"?([0-9]+)"?\s*$/.exec(value);
  if (!match) {
    throw badRequest(`${header} must be a version tag like W/"3", got "${value}"`);
  }
  return Number(match[1]);
}

export const etag = (versionId: number | string): string => `W/"${versionId}"`;

export function versionHeaders(baseUrl: string, resourceType: string, id: string, versionId: number | string, lastUpdated: Date | string): Record<string, string> {
  return {
    ETag: etag(versionId),
    'Last-Modified': new Date(lastUpdated).toUTCString(),
    Location: `${baseUrl}/${resourceType}/${id}/_history/${versionId}`,
  };
}

type ReturnPreference = 'minimal' | 'representation' | 'OperationOutcome';

export function returnPreference(request: FhirRequest): ReturnPreference {
  const match = /return=(minimal|representation|OperationOutcome)/.exec(request.headers.prefer ?? '');
  return (match?.[1] as ReturnPreference | undefined) ?? 'representation';
}

/** The response to a successful write, shaped by `Prefer: return=`. */
export function writeResponse(request: FhirRequest, baseUrl: string, status: number, resource: Resource, message: string): FhirResponse {
  const meta = resource.meta ?? {};
  const headers = versionHeaders(baseUrl, resource.resourceType, resource.id as string, meta.versionId as string, meta.lastUpdated as string);
  switch (returnPreference(request)) {
    case 'minimal':
      return { status, headers };
    case 'OperationOutcome':
      return { status, headers, body: informational(message) };
    default:
      return { status, headers, body: resource };
  }
}

export function informational(message: string): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'information', code: 'informational', diagnostics: message }] };
}

/** A read's response, or 304 when the client's copy is current. */
export function readResponse(request: FhirRequest, baseUrl: string, stored: StoredResource): FhirResponse {
  const headers = versionHeaders(baseUrl, stored.resourceType, stored.id, stored.versionId, stored.lastUpdated);
  delete headers.Location;
  const ifNoneMatch = request.headers['if-none-match'];
  if (ifNoneMatch && ifNoneMatch.split(',').some((tag) => tag.trim() === '*' || parseLooseVersion(tag) === stored.versionId)) {
    return { status: 304, headers };
  }
  const ifModifiedSince = request.headers['if-modified-since'];
  if (ifModifiedSince && !ifNoneMatch) {
    const since = Date.parse(ifModifiedSince);
    // HTTP dates have whole seconds: compare at that precision.
    if (!Number.isNaN(since) && Math.floor(stored.lastUpdated.getTime() / 1000) * 1000 <= since) {
      return { status: 304, headers };
    }
  }
  return { status: 200, headers, body: new RawJson(stored.json) };
}

function parseLooseVersion(tag: string): number | undefined {
  const match = /^\s*(?:W\/)?"?([0-9]+)"?\s*$/.exec(tag);
  return match ? Number(match[1]) : undefined;
}
