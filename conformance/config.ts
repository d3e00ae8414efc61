/** The regional implementation guide's setting: its canonical base (HUIMIN_CANONICAL_BASE). */

/** The base every regional canonical URL starts with, unless configured (and the one the guide's files are written with). */
export const DEFAULT_CANONICAL_BASE = 'http://huimin.health/fhir';

export interface ConformanceConfig {
  /** Canonical base of the regional guide: `<base>/StructureDefinition/…`, `<base>/CodeSystem/…`. */
  canonicalBase: string;
}

export function parseCanonicalBase(raw: string, name = 'HUIMIN_CANONICAL_BASE'): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error(`Configuration error: ${name} must be an absolute http(s) URL, got "${raw}"`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.search || url.hash || raw.endsWith('/')) {
    throw new Error(`Configuration error: ${name} must be an http(s) URL without query, fragment or trailing slash, got "${raw}"`);
  }
  return raw;
}

export function loadConformanceConfig(env: NodeJS.ProcessEnv = process.env): ConformanceConfig {
  const raw = env.HUIMIN_CANONICAL_BASE;
  return { canonicalBase: raw ? parseCanonicalBase(raw) : DEFAULT_CANONICAL_BASE };
}
