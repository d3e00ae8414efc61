/**
 * HL7's terminology-server test suite (see tx-ecosystem.ts for what is compared). The tests listed in
 * tx-ecosystem-passing.json must pass (a regression fails the build); the pass rate per group is logged, and
 * docs/terminology-conformance.md lists what fails or is out of scope, and why.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createTerminologyTestServer, type TerminologyTestServer } from './helpers';
import { runSuites, summarise, type TestResult } from './tx-ecosystem';

const BASELINE = path.join(__dirname, 'tx-ecosystem-passing.json');
let server: TerminologyTestServer;
let results: TestResult[];

beforeAll(async () => {
  server = await createTerminologyTestServer('postgres');
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
