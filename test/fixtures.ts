/**
 * Locating and reading the public, third-party test fixtures kept next to the project in ../shared/fixtures
 * (see ../shared/fixtures/README.md). They are read in place at test time and never copied into the project.
 * When the folder is missing (a checkout without ../shared), suites that need it skip with a console message
 * instead of failing: use `describeWithFixtures`.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** Root of the shared fixtures: `<project>/../shared/fixtures`. */
export const FIXTURES_ROOT = path.resolve(__dirname, '../../shared/fixtures');

/** Absolute path of a fixture file or folder, e.g. `fixturePath('synthea-r4')`. */
export function fixturePath(...parts: string[]): string {
  return path.join(FIXTURES_ROOT, ...parts);
}

/** True when the given fixture folder (or the root when none is given) exists. */
export function fixturesAvailable(...parts: string[]): boolean {
  return existsSync(fixturePath(...parts));
}

/** Sorted names of the files in a fixture folder, optionally only those ending in `suffix`. */
export function listFixtureFiles(folder: string, suffix = ''): string[] {
  return readdirSync(fixturePath(folder))
    .filter((name) => name.endsWith(suffix))
    .sort();
}

/** Parses a JSON fixture (a leading UTF-8 BOM is tolerated). */
export function readFixtureJson<T = unknown>(...parts: string[]): T {
  const text = readFileSync(fixturePath(...parts), 'utf8');
  return JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text) as T;
}

/**
 * `describe` when the fixture folder exists; otherwise `describe.skip`, with a console message naming the
 * missing folder so that a skipped run is never mistaken for a green one.
 */
export function describeWithFixtures(folder: string, name: string, fn: () => void): void {
  if (fixturesAvailable(folder)) {
    describe(name, fn);
    return;
  }
  console.warn(`SKIPPED "${name}": fixture folder ${fixturePath(folder)} is missing (expected ../shared/fixtures next to the project)`);
  describe.skip(name, fn);
}

/** Runs `task` over `items` with at most `limit` in flight; results keep the order of `items`. */
export async function mapWithConcurrency<T, R>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index], index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
