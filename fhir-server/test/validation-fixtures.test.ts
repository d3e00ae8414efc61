/**
 * Agreement with the reference (HL7 Java) validator on the official fhir-test-cases subset in ../shared. For each
 * R4 JSON case that needs no terminology server, our verdict (valid = no error/fatal issue) must equal the
 * expected one (no errors in the Java validator's base outcome) for at least 95% of the cases. The fixtures are
 * read in place, never copied into the project.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { StructureDefinition } from '@medplum/fhirtypes';
import { registerProfile, validateResourceForWrite } from '../validation';

const FIXTURES = path.resolve(__dirname, '../../../shared/fixtures/fhir-validator-tests');
const REQUIRED_AGREEMENT = 0.95;

interface Case {
  name: string;
  file: string;
  expectValid: boolean;
  supporting: string[];
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

function loadCases(): Case[] {
  const [header, ...rows] = parseCsv(readFileSync(path.join(FIXTURES, 'index-r4.csv'), 'utf8'));
  const col = (row: string[], name: string): string => row[header.indexOf(name)] ?? '';
  return rows
    .filter((row) => col(row, 'format') === 'json' && col(row, 'needs_terminology_server') !== 'yes')
    .map((row) => ({
      name: col(row, 'name'),
      file: col(row, 'file'),
      expectValid: Number(col(row, 'expected_errors_base')) === 0,
      supporting: col(row, 'supporting_files').split(';').filter(Boolean),
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
  return !validateResourceForWrite(resource).some((i) => i.severity === 'error' || i.severity === 'fatal');
}

const describeIfFixtures = existsSync(FIXTURES) ? describe : describe.skip;
if (!existsSync(FIXTURES)) {
  console.warn(`Skipping validator agreement tests: fixtures not found at ${FIXTURES}`);
}

describeIfFixtures('agreement with the reference Java validator', () => {
  test(`verdicts agree on at least ${REQUIRED_AGREEMENT * 100}% of the JSON cases without terminology server`, () => {
    const cases = loadCases();
    const disagreements = cases
      .map((c) => ({ c, ours: isValid(c) }))
      .filter(({ c, ours }) => ours !== c.expectValid)
      .map(({ c, ours }) => `${c.name} (${c.file}): expected ${c.expectValid ? 'valid' : 'invalid'}, ours ${ours ? 'valid' : 'invalid'}`);
    const agreement = (cases.length - disagreements.length) / cases.length;
    console.log(
      `Agreement ${(agreement * 100).toFixed(1)}% (${cases.length - disagreements.length}/${cases.length});` +
        ` disagreements:\n${disagreements.join('\n')}`
    );
    expect(cases.length).toBeGreaterThan(100);
    expect(agreement).toBeGreaterThanOrEqual(REQUIRED_AGREEMENT);
  });
});
