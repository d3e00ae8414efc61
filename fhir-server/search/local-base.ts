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
