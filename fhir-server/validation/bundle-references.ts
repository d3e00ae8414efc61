/**
 * A document Bundle is an immutable, self-contained unit: every reference inside it must resolve to exactly one
 * entry. Relative (`Type/id`, optionally `/_history/version`) and `urn:uuid:` references are resolved following
 * FHIR's bundle rules (same server base as the referring entry's fullUrl); absolute http(s) references may point
 * to external servers and are not judged.
 */
import type { OperationOutcomeIssue } from '@medplum/fhirtypes';
import { isPlainObject, makeIssue } from './issues';

const RELATIVE = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/([A-Za-z0-9\-.]{1,64}))?$/;
const RESTFUL_FULL_URL = /^(https?:\/\/.+)\/[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64}$/;

interface Target {
  fullUrl?: string;
  base?: string;
  resourceType?: unknown;
  id?: unknown;
  versionId?: unknown;
}

function toTarget(entry: Record<string, unknown>): Target {
  const fullUrl = typeof entry.fullUrl === 'string' ? entry.fullUrl : undefined;
  const resource = isPlainObject(entry.resource) ? entry.resource : {};
  const meta = isPlainObject(resource.meta) ? resource.meta : {};
  const base = fullUrl ? RESTFUL_FULL_URL.exec(fullUrl)?.[1] : undefined;
  return { fullUrl, base, resourceType: resource.resourceType, id: resource.id, versionId: meta.versionId };
}

function countMatches(reference: string, from: Target, targets: Target[]): number | undefined {
  if (reference.startsWith('urn:uuid:') || reference.startsWith('urn:oid:')) {
    return targets.filter((t) => t.fullUrl === reference).length;
  }
  const relative = RELATIVE.exec(reference);
  if (!relative) {
    return undefined;
  }
  const [, type, id, version] = relative;
  return targets.filter(
    (t) =>
      t.resourceType === type &&
      t.id === id &&
      (version === undefined || t.versionId === version) &&
      (!from.base || !t.base || from.base === t.base)
  ).length;
}

/** Calls `visit` for every `reference` string below `value`, with its FHIRPath-style location. */
function forEachReference(value: unknown, path: string, visit: (reference: string, path: string) => void): void {
  if (Array.isArray(value)) {
    value.forEach((item, i) => forEachReference(item, `${path}[${i}]`, visit));
  } else if (isPlainObject(value)) {
    for (const [key, child] of Object.entries(value)) {
      if (key === 'reference' && typeof child === 'string') {
        visit(child, path);
      } else {
        forEachReference(child, `${path}.${key}`, visit);
      }
    }
  }
}

export function checkDocumentReferences(
  entries: Record<string, unknown>[],
  path: string,
  issues: OperationOutcomeIssue[]
) {
  const targets = entries.map(toTarget);
  entries.forEach((entry, i) => {
    forEachReference(entry.resource, `${path}.entry[${i}].resource`, (reference, at) => {
      const matches = countMatches(reference, targets[i], targets);
      if (matches === 0) {
        issues.push(makeIssue('error', 'not-found', `${at}: "${reference}" is not in the document bundle`, at));
      } else if (matches !== undefined && matches > 1) {
        issues.push(
          makeIssue(
            'error',
            'multiple-matches',
            `${at}: "${reference}" matches ${matches} entries of the document bundle`,
            at
          )
        );
      }
    });
  });
}
