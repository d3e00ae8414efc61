/**
 * The longest suites start first, so that the two workers finish together instead of one of them starting the
 * browser suite (minutes) when the rest is done. Jest's own order (failures first, then its timing cache, then file
 * size) decides among the others; a fresh CI machine has no timing cache, and file size says little about time.
 */
const Sequencer = require('@jest/test-sequencer').default;

/** Known long suites, longest first (durations of a full run, `npm test -- --json --outputFile=…`). */
const LONG = [
  'portal/test/e2e.test.ts',
  'fhir-server/test/fixtures-examples.test.ts',
  'fhir-server/test/fixtures-synthea.test.ts',
  'fhir-server/bulk/test/bulk-export.test.ts',
  'fhir-server/test/linked-patients.test.ts',
  'fhir-server/bulk/test/bulk-export-synthea.test.ts',
  'terminology/test/content.test.ts',
];

class LongestFirst extends Sequencer {
  sort(tests) {
    const rank = (test) => {
      const index = LONG.findIndex((suffix) => test.path.endsWith(suffix));
      return index < 0 ? LONG.length : index;
    };
    // Array.prototype.sort is stable: within a rank, Jest's order stands.
    return [...super.sort(tests)].sort((a, b) => rank(a) - rank(b));
  }
}

module.exports = LongestFirst;
