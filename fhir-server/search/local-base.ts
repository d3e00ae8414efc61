/**
 * This server's own base URLs, so that extraction indexes an absolute reference to one of its resources
 * (`http://host/fhir/Patient/1`, which R4 allows wherever a relative one is allowed) as the local reference it is:
 * as (target_type, target_id), which chains, `_include`, `_revinclude`, `_has` and patient compartments join on.
 * Set once at start-up by createFhirServer; a process serving several bases (tests) knows them all.
 */
const bases = new Set<string>();

export function addLocalBaseUrl(baseUrl: string): void {
  bases.add(`${baseUrl.replace(/\/+$/, '')}/`);
}

/** What follows one of this server's base URLs in `reference` (`Patient/1`), or undefined when it is not under one. */
export function underLocalBase(reference: string): string | undefined {
  for (const base of bases) {
    if (reference.startsWith(base)) {
      return reference.slice(base.length);
    }
  }
  return undefined;
}

/**
 * The resource with every `reference` under one of this server's bases made relative (`Patient/1`), for the
 * search expressions to evaluate: R4's own expressions resolve references (`subject.where(resolve() is Patient)`),
 * and @medplum/core's resolve() reads the type off a relative reference only. The resource itself is returned,
 * uncopied, when no reference is under a local base (nearly always), and it is never changed.
 */
export function withLocalReferencesRelative<T extends object>(resource: T): T {
  if (bases.size === 0 || !hasLocalAbsolute(resource)) {
    return resource;
  }
  const copy = structuredClone(resource);
  rewrite(copy);
  return copy;
}

function localPath(reference: string): string | undefined {
  const path = underLocalBase(reference);
  return path !== undefined && /^[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64}(\/_history\/[^/]+)?$/.test(path) ? path : undefined;
}

function hasLocalAbsolute(value: unknown): boolean {
  if (Array.isArray(value)) {
    return value.some(hasLocalAbsolute);
  }
  if (typeof value !== 'object' || value === null) {
    return false;
  }
  for (const [key, child] of Object.entries(value)) {
    if (key === 'reference' ? typeof child === 'string' && localPath(child) !== undefined : typeof child === 'object' && hasLocalAbsolute(child)) {
      return true;
    }
  }
  return false;
}

function rewrite(value: unknown): void {
  if (Array.isArray(value)) {
    value.forEach(rewrite);
    return;
  }
  if (typeof value !== 'object' || value === null) {
    return;
  }
  const record = value as Record<string, unknown>;
  for (const [key, child] of Object.entries(record)) {
    if (key === 'reference' && typeof child === 'string') {
      record[key] = localPath(child) ?? child;
    } else if (typeof child === 'object') {
      rewrite(child);
    }
  }
}
