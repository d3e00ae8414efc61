/**
 * Extraction evaluates each parameter's expression cut down to the resource type's own branch (for speed). This
 * checks, on every official R4 example (and the resources inside example Bundles), that what extraction
 * evaluates yields exactly what the full R4 expression yields.
 */
import { evalFhirPathTyped, parseFhirPath, toTypedValue } from '@medplum/core';
import type { Bundle, Resource } from '@medplum/fhirtypes';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { loadFhirDefinitions } from '../definitions';
import { indexedParams } from '../search/indexed-params';
import { describeWithFixtures, fixturePath } from '../../test/fixtures';

const EXAMPLES = fixturePath('fhir-r4-examples', 'examples');

function exampleResources(): Resource[] {
  const resources: Resource[] = [];
  for (const file of readdirSync(EXAMPLES).filter((f) => f.endsWith('.json'))) {
    const resource = JSON.parse(readFileSync(path.join(EXAMPLES, file), 'utf8')) as Resource;
    resources.push(resource);
    if (resource.resourceType === 'Bundle') {
      for (const entry of (resource as Bundle).entry ?? []) {
        if (entry.resource) {
          resources.push(entry.resource);
        }
      }
    }
  }
  return resources;
}

/**
 * As a set: index rows are matched, not counted. (The full expressions are unions, and a FHIRPath union drops
 * duplicates, so a Patient named "Peter James Peter" yields `given` "Peter" once in full and twice cut down.)
 */
function canonical(values: Array<{ type: string; value: unknown }>): string[] {
  return [...new Set(values.map((v) => JSON.stringify([v.type, v.value])))].sort();
}

describeWithFixtures('fhir-r4-examples/examples', 'cut-down search expressions agree with the full R4 expressions', () => {
  beforeAll(() => loadFhirDefinitions());

  test('every indexed parameter of every example resource', () => {
    const fullExpressions = new Map<string, ReturnType<typeof parseFhirPath>>();
    const disagreements = new Set<string>();
    let checked = 0;
    for (const resource of exampleResources()) {
      const input = [toTypedValue(resource)];
      for (const { code, param, expression } of indexedParams(resource.resourceType)) {
        const expressionText = param.expression as string;
        let full = fullExpressions.get(expressionText);
        if (!full) {
          full = parseFhirPath(expressionText);
          fullExpressions.set(expressionText, full);
        }
        const expected = canonical(evalFhirPathTyped(full, input));
        const actual = canonical(evalFhirPathTyped(expression, input));
        if (JSON.stringify(expected) !== JSON.stringify(actual)) {
          disagreements.add(`${resource.resourceType}.${code}`);
        }
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(10_000);
    expect([...disagreements].sort()).toEqual([]);
  });
});
