/**
 * Agreement with the reference (HL7 Java) validator on the official fhir-test-cases subset in ../shared. For each
 * R4 JSON case that needs no terminology server, our verdict (valid = no error/fatal issue) is compared with the
 * expected one (no errors in the Java validator's base outcome). The fixtures are read in place, never copied.
 *
 * Two kinds of cases cannot be decided by a write-time validator with a fixed configuration and no terminology
 * server, so the 95% bar applies to the others (both figures are printed, and the raw one has a floor too):
 *  - cases the manifest runs with non-default validator settings (e.g. `validateContains: IGNORE`, `examples`,
 *    `security-checks`): the same file is often expected valid under one setting and invalid under another;
 *  - cases whose every expected error is a terminology-server finding (wrong LOINC/SNOMED display, unknown
 *    SNOMED code), even if the index does not flag them as needing one.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { StructureDefinition } from '@medplum/fhirtypes';
import { registerProfile, validateResourceForWrite } from '../validation';
import { describeWithFixtures, fixturePath } from '../../test/fixtures';

const FIXTURES = fixturePath('fhir-validator-tests');
const REQUIRED_AGREEMENT = 0.95;
/** Raw agreement over all cases, as measured when this test was written: a regression floor. */
const RAW_FLOOR = 0.88;
/** Manifest keys that do not change the validator's behaviour (file lists, expectations, documentation). */
const NEUTRAL_KEYS = new Set([
  'name',
  'file',
  'version',
  'module',
  'java',
  'profile',
  'profiles',
  'supporting',
  'supporting5',
  'description',
  'explanation',
  'documentation',
  'crumb-trail',
  'ids-in-errors',
  'firely-sdk-current',
  'firely-sdk-wip',
]);
const TERMINOLOGY_FINDING = /Wrong Display Name|Unknown code '/;

interface Case {
  name: string;
  file: string;
  expectValid: boolean;
  supporting: string[];
  /** Why the case is not scored against the 95% bar, if it is not. */
  unscored?: string;
}

interface ManifestCase {
  name: string;
  [key: string]: unknown;
}

interface Outcome {
  issue?: { severity: string; details?: { text?: string } }[];
}

/** RFC 4180 CSV: quoted fields may contain commas, quotes ("") and newlines. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') {
        quoted = false;
      } else {
        field += ch;
      }
    } else if (ch === '"') {
      quoted = true;
    } else if (ch === ',') {
      row.push(field);
      field = '';
    } else if (ch === '\n') {
      rows.push([...row, field.replace(/\r$/, '')]);
      row = [];
      field = '';
    } else {
      field += ch;
    }
  }
  if (field || row.length) {
    rows.push([...row, field]);
  }
  return rows;
}

function readJsonFile<T>(relative: string): T {
  return JSON.parse(readFileSync(path.join(FIXTURES, relative), 'utf8')) as T;
}

function unscoredReason(manifest: ManifestCase | undefined, outcomeFile: string): string | undefined {
  const options = Object.keys(manifest ?? {}).filter((key) => !NEUTRAL_KEYS.has(key));
  if (options.length > 0) {
    return `runs with validator option ${options.join(', ')}`;
  }
  if (!outcomeFile || !existsSync(path.join(FIXTURES, outcomeFile))) {
    return undefined;
  }
  const errors = (readJsonFile<Outcome>(outcomeFile).issue ?? []).filter(
    (i) => i.severity === 'error' || i.severity === 'fatal'
  );
  const terminologyOnly = errors.length > 0 && errors.every((i) => TERMINOLOGY_FINDING.test(i.details?.text ?? ''));
  return terminologyOnly ? 'all expected errors need a terminology server' : undefined;
}

function loadCases(): Case[] {
  const [header, ...rows] = parseCsv(readFileSync(path.join(FIXTURES, 'index-r4.csv'), 'utf8'));
  const col = (row: string[], name: string): string => row[header.indexOf(name)] ?? '';
  const manifest = readJsonFile<{ 'test-cases': ManifestCase[] }>('validator/manifest-r4-subset.json');
  const byName = new Map(manifest['test-cases'].map((c) => [c.name, c]));
  return rows
    .filter((row) => col(row, 'format') === 'json' && col(row, 'needs_terminology_server') !== 'yes')
    .map((row) => ({
      name: col(row, 'name'),
      file: col(row, 'file'),
      expectValid: Number(col(row, 'expected_errors_base')) === 0,
      supporting: col(row, 'supporting_files').split(';').filter(Boolean),
      unscored: unscoredReason(byName.get(col(row, 'name')), col(row, 'outcome_file')),
    }));
}

/**
 * Supporting JSON StructureDefinitions are registered, as the Java validator loads them. Those registerProfile
 * refuses (no snapshot, and too complex to derive one) stay unknown: a warning when claimed, as in production.
 */
function registerSupporting(files: string[]): void {
  for (const file of files.filter((f) => f.endsWith('.json'))) {
    const full = path.join(FIXTURES, 'validator', file);
    if (!existsSync(full)) {
      continue;
    }
    const resource = JSON.parse(readFileSync(full, 'utf8')) as StructureDefinition;
    if (resource.resourceType === 'StructureDefinition') {
      try {
        registerProfile(resource);
      } catch {
        // Not registrable: see above.
      }
    }
  }
}

/** Our verdict; a file that is not even JSON is refused like any unparseable request body. */
function isValid(c: Case): boolean {
  let resource: unknown;
  try {
    resource = JSON.parse(readFileSync(path.join(FIXTURES, c.file), 'utf8'));
  } catch {
    return false;
  }
  registerSupporting(c.supporting);
  return !validateResourceForWrite(resource, { impliedProfiles: 'error' }).some((i) => i.severity === 'error' || i.severity === 'fatal');
}

function percent(part: number, whole: number): string {
  return `${((part / whole) * 100).toFixed(1)}% (${part}/${whole})`;
}

describeWithFixtures('fhir-validator-tests', 'agreement with the reference Java validator', () => {
  test(`verdicts agree on at least ${REQUIRED_AGREEMENT * 100}% of the scored JSON cases`, () => {
    const cases = loadCases();
    const results = cases.map((c) => ({ c, agrees: isValid(c) === c.expectValid }));
    const scored = results.filter(({ c }) => !c.unscored);
    const rawAgreeing = results.filter((r) => r.agrees).length;
    const scoredAgreeing = scored.filter((r) => r.agrees).length;
    const describeCase = ({ c }: { c: Case }): string => {
      const note = c.unscored ? ` [unscored: ${c.unscored}]` : '';
      return `${c.name} (${c.file}): expected ${c.expectValid ? 'valid' : 'invalid'}${note}`;
    };
    console.log(
      `Raw agreement ${percent(rawAgreeing, results.length)};` +
        ` scored agreement ${percent(scoredAgreeing, scored.length)}.\n` +
        `Disagreements:\n${results
          .filter((r) => !r.agrees)
          .map(describeCase)
          .join('\n')}`
    );
    expect(cases.length).toBeGreaterThan(100);
    expect(scoredAgreeing / scored.length).toBeGreaterThanOrEqual(REQUIRED_AGREEMENT);
    expect(rawAgreeing / results.length).toBeGreaterThanOrEqual(RAW_FLOOR);
  });
});
