/**
 * SMART scopes for backend services (SMART App Launch 2.x, "scopes-and-launch-context"): the v2 form
 * `system/Patient.rs`, `system/*.cruds` and the v1 form `system/Patient.read`, `system/*.write`, `system/*.*`.
 * Both are turned into one set of permissions, a resource type (or `*`) to letters c r u d s.
 *
 * Only `system/` scopes mean anything to a backend-services token; `patient/`, `user/`, `openid`, `launch` and
 * granular scopes with a query (`system/Observation.rs?category=…`) are not granted (a server may grant less than
 * asked for), and a request left with nothing grantable is refused as invalid_scope.
 */
import { isR4ResourceType } from '../definitions';

export type ScopeLetter = 'c' | 'r' | 'u' | 'd' | 's';
const ORDER: readonly ScopeLetter[] = ['c', 'r', 'u', 'd', 's'];
const V1: Record<string, readonly ScopeLetter[]> = { read: ['r', 's'], write: ['c', 'u', 'd'], '*': ORDER };

const SCOPE = /^system\/(\*|[A-Z][A-Za-z]+)\.([a-z*]+)$/;

/** Permissions by resource type; `*` holds what applies to every type. */
export class Permissions {
  private readonly byType = new Map<string, Set<ScopeLetter>>();

  /** Parses a space-separated scope string; unknown or unsupported scopes are left out (see `ignored`). */
  static parse(scope: string): { permissions: Permissions; ignored: string[] } {
    const permissions = new Permissions();
    const ignored: string[] = [];
    for (const token of scope.split(/\s+/).filter(Boolean)) {
      const parsed = parseScope(token);
      if (parsed) {
        permissions.add(parsed.type, parsed.letters);
      } else {
        ignored.push(token);
      }
    }
    return { permissions, ignored };
  }

  add(type: string, letters: Iterable<ScopeLetter>): void {
    const set = this.byType.get(type) ?? new Set<ScopeLetter>();
    for (const l of letters) {
      set.add(l);
    }
    if (set.size > 0) {
      this.byType.set(type, set);
    }
  }

  allows(type: string, letter: ScopeLetter): boolean {
    return this.byType.get('*')?.has(letter) === true || this.byType.get(type)?.has(letter) === true;
  }

  get isEmpty(): boolean {
    return this.byType.size === 0;
  }

  /** Whether `letter` is allowed on every type. */
  allowsAll(letter: ScopeLetter): boolean {
    return this.byType.get('*')?.has(letter) === true;
  }

  /** The types on which `letter` is allowed (meaningful when allowsAll(letter) is false). */
  typesAllowing(letter: ScopeLetter): string[] {
    return [...this.byType.entries()].filter(([t, set]) => t !== '*' && set.has(letter)).map(([t]) => t);
  }

  /** What both allow: the scopes a token gets when a client asks for `requested` and was registered with `this`. */
  intersect(requested: Permissions): Permissions {
    const out = new Permissions();
    for (const [type, letters] of requested.byType) {
      if (type === '*') {
        // `*` asked: every type this client has, with the letters both allow.
        for (const [mine, myLetters] of this.byType) {
          out.add(mine, [...letters].filter((l) => myLetters.has(l)));
        }
      } else {
        out.add(type, [...letters].filter((l) => this.allows(type, l)));
      }
    }
    return out;
  }

  /** The v2 scope string, e.g. `system/*.rs system/Task.cruds`. */
  toString(): string {
    return [...this.byType.entries()]
      .sort(([a], [b]) => (a === '*' ? -1 : b === '*' ? 1 : a.localeCompare(b)))
      .map(([type, set]) => `system/${type}.${ORDER.filter((l) => set.has(l)).join('')}`)
      .join(' ');
  }
}

function parseScope(token: string): { type: string; letters: ScopeLetter[] } | undefined {
  const match = SCOPE.exec(token);
  if (!match) {
    return undefined;
  }
  const [, type, action] = match;
  if (type !== '*' && !isR4ResourceType(type)) {
    return undefined;
  }
  if (V1[action]) {
    return { type, letters: [...V1[action]] };
  }
  // v2: letters in the order c r u d s, each at most once.
  let at = 0;
  const letters: ScopeLetter[] = [];
  for (const ch of action) {
    const index = ORDER.indexOf(ch as ScopeLetter, at);
    if (index < 0) {
      return undefined;
    }
    letters.push(ch as ScopeLetter);
    at = index + 1;
  }
  return letters.length > 0 ? { type, letters } : undefined;
}
