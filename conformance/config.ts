/** The regional implementation guide's setting: its canonical base (HUIMIN_CANONICAL_BASE). */

/** The base every regional canonical URL starts with, unless configured (and the one the guide's files are written with). */
export const DEFAULT_CANONICAL_BASE = 'http://huimin.health/fhir';

export interface ConformanceConfig {
  /** Canonical base of the regional guide: `<base>/StructureDefinition/…`, `<base>/CodeSystem/…`. */
  canonicalBase: string;
}

/**
 * The base is spliced into the guide's JSON and FHIRPath invariants, so only plain URL characters are accepted
 * (no quotes, spaces, query or fragment), and no trailing slash (canonicals are `<base>/<Type>/<id>`).
 */
const CANONICAL_BASE = /^https?:\/\/[A-Za-z0-9.-]+(:[0-9]{1,5})?(\/[A-Za-z0-9._~-]+)*$/;

export function parseCanonicalBase(raw: string, name = 'HUIMIN_CANONICAL_BASE'): string {
  if (raw.length > 200 || !CANONICAL_BASE.test(raw)) {
    throw new Error(`Configuration error: ${name} must be an http(s) URL of plain characters, without query, fragment or trailing slash, got "${raw}"`);
  }
  return raw;
}

export function loadConformanceConfig(env: NodeJS.ProcessEnv = process.env): ConformanceConfig {
  const raw = env.HUIMIN_CANONICAL_BASE;
  return { canonicalBase: raw ? parseCanonicalBase(raw) : DEFAULT_CANONICAL_BASE };
}
