/**
 * The expansion-profile parameters that choose code system versions (R5 $expand and $validate-code, usable in R4 as
 * extra parameters): `system-version` (the version to use when the value set does not say), `check-system-version`
 * (the version the value set must end up using, else an error) and `force-system-version` (the version to use
 * whatever the value set says). Each value is a canonical `url|version`; the version may hold wildcards (1.0.x).
 */
import { FhirError, issue, outcome } from '../fhir-server';
import { splitCanonical, versionMatches } from './resolver';

export interface SystemVersionRules {
  /** system-version: url → version, used where the value set names no version. */
  default: ReadonlyMap<string, string>;
  /** check-system-version: url → version pattern the version used must match. */
  check: ReadonlyMap<string, string>;
  /** force-system-version: url → version used whatever the value set (or a value set it imports) names. */
  force: ReadonlyMap<string, string>;
}

export const SYSTEM_VERSION_PARAMETERS = ['system-version', 'check-system-version', 'force-system-version'] as const;

/** Most canonicals one of these parameters may list (one per code system). */
const MAX_RULES = 100;

/** Reads the three parameters (each repeatable, `url|version`); undefined when none is given. */
export function parseSystemVersionRules(values: Record<(typeof SYSTEM_VERSION_PARAMETERS)[number], string[]>): SystemVersionRules | undefined {
  const toMap = (name: string, canonicals: string[]): Map<string, string> => {
    if (canonicals.length > MAX_RULES) {
      throw new FhirError(400, outcome([issue('error', 'too-costly', `At most ${MAX_RULES} ${name} parameters are accepted`)]));
    }
    const map = new Map<string, string>();
    for (const canonical of canonicals) {
      const { url, version } = splitCanonical(canonical);
      if (!url || !version) {
        throw new FhirError(400, outcome([issue('error', 'invalid', `The parameter ${name} must be a canonical with a version (url|version), got '${canonical}'`)]));
      }
      if (map.has(url) && map.get(url) !== version) {
        throw new FhirError(400, outcome([issue('error', 'invalid', `The parameter ${name} names two versions of ${url}: '${map.get(url)}' and '${version}'`)]));
      }
      map.set(url, version);
    }
    return map;
  };
  const rules: SystemVersionRules = {
    default: toMap('system-version', values['system-version']),
    check: toMap('check-system-version', values['check-system-version']),
    force: toMap('force-system-version', values['force-system-version']),
  };
  return rules.default.size + rules.check.size + rules.force.size > 0 ? rules : undefined;
}

/** A stable text of the rules, for cache keys. */
export function rulesKey(rules: SystemVersionRules | undefined): string {
  if (!rules) {
    return '';
  }
  const part = (m: ReadonlyMap<string, string>): string => [...m.entries()].sort().map(([u, v]) => `${u}|${v}`).join(',');
  return `d:${part(rules.default)};c:${part(rules.check)};f:${part(rules.force)}`;
}

/**
 * The versions a compose include of `system` asks for: `pinned` is what the value set (or a forced version)
 * fixes, `lookup` what to resolve — the pinned version, else the default or checked version, else the latest.
 */
export function clauseVersion(rules: SystemVersionRules | undefined, system: string, included: string | undefined): { pinned?: string; lookup?: string } {
  const pinned = rules?.force.get(system) ?? included;
  return { pinned, lookup: pinned ?? rules?.default.get(system) ?? rules?.check.get(system) };
}

/** The message when the version used breaks a check-system-version; undefined when it is allowed. */
export function checkViolation(rules: SystemVersionRules | undefined, system: string, used: string | undefined): string | undefined {
  const required = rules?.check.get(system);
  if (!required || (used !== undefined && versionMatches(required, used))) {
    return undefined;
  }
  return `The version '${used ?? ''}' is not allowed for system '${system}': required to be '${required}' by a version-check parameter`;
}

/** Whether a version holds wildcard parts (1.x, 1.0.*). */
export function isWildcard(version: string | undefined): boolean {
  return !!version && version.split('.').some((p) => p === 'x' || p === '*');
}
