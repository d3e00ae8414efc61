/**
 * Finding and rewriting `Reference.reference` values inside a resource. Used for referential-integrity checks
 * and for resolving `urn:uuid:` / conditional references in transaction bundles.
 */
import type { Resource } from '@medplum/fhirtypes';

/** `Type/id`, optionally with `/_history/n`: a reference to a resource on this server. */
const LOCAL_REFERENCE = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[A-Za-z0-9\-.]{1,64})?$/;

export interface ResourceKey {
  resourceType: string;
  id: string;
}

export function parseLocalReference(reference: string): ResourceKey | undefined {
  const match = LOCAL_REFERENCE.exec(reference);
  return match ? { resourceType: match[1], id: match[2] } : undefined;
}

/**
 * Calls `visit` for every `reference` string in the resource (including inside contained resources, which may
 * point at resources on this server too). `visit` may return a replacement value.
 */
export function visitReferences(value: unknown, visit: (reference: string) => string | undefined): void {
  if (Array.isArray(value)) {
    for (const item of value) {
      visitReferences(item, visit);
    }
    return;
  }
  if (typeof value !== 'object' || value === null) {
    return;
  }
  const record = value as Record<string, unknown>;
  for (const [key, child] of Object.entries(record)) {
    if (key === 'reference' && typeof child === 'string') {
      const replacement = visit(child);
      if (replacement !== undefined) {
        record[key] = replacement;
      }
    } else if (typeof child === 'object' && child !== null) {
      visitReferences(child, visit);
    }
  }
}

/** The distinct local resources a resource refers to. */
export function localReferencesOf(resource: Resource): ResourceKey[] {
  const found = new Map<string, ResourceKey>();
  visitReferences(resource, (reference) => {
    const key = parseLocalReference(reference);
    if (key) {
      found.set(`${key.resourceType}/${key.id}`, key);
    }
    return undefined;
  });
  return [...found.values()];
}
