/**
 * A small runner for HL7's terminology-server test suite (fhir-tx-ecosystem-tests, see its SOURCE.md in
 * ../shared/fixtures/conformance-suites). Each test's setup resources are sent with the request as `tx-resource`
 * parameters (the suite assumes a server that accepts code systems on the fly), the request goes through the
 * REST API, and the response is compared with the expected one.
 *
 * The comparison is semantic, not textual: the expected responses are R5 and carry tx.fhir.org's message
 * catalogue (OperationOutcome `issues` with message ids and tx-issue-type codes), which an R4 server with its own
 * wording does not reproduce. What is compared, per operation:
 *   - every test: the HTTP status class (2xx, or 4xx when the test says `http-code: 4xx` or expects an OperationOutcome);
 *   - $expand: the set of system|code (|version, when the expected entry has one) in the expansion (nested contains
 *     flattened), each expected display, designation and abstract/inactive flag, the properties the request asked for, total, and the code
 *     system and value set versions used (`used-codesystem`, `used-valueset`);
 *   - $validate-code: result, and display, code, system, version and inactive when the expected response requires them;
 *   - $lookup: display, and each required designation value and property code/value;
 *   - $translate: result and the set of matched target codes.
 * Values written as `$…$` placeholders and items marked `$optional$` are not required.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Parameters, ParametersParameter, Resource, ValueSet, ValueSetExpansionContains } from '@medplum/fhirtypes';
import request from 'supertest';
import type { HttpHandler } from '../../fhir-server/http/app';

export const SUITE_DIR = path.join(__dirname, '../../../shared/fixtures/conformance-suites/fhir-tx-ecosystem-tests');

/** Operations this server implements; the others (batch-validate, metadata, term-caps, compare) are out of scope. */
const ENDPOINTS: Record<string, string> = {
  expand: 'ValueSet/$expand',
  'validate-code': 'ValueSet/$validate-code',
  'cs-validate-code': 'CodeSystem/$validate-code',
  lookup: 'CodeSystem/$lookup',
  translate: 'ConceptMap/$translate',
};

interface TestCase {
  name: string;
  operation: string;
  request?: string;
  response?: string;
  mode?: string;
  'http-code'?: string;
  /** Parameters (an expansion profile: system-version, check-system-version, …) added to the request. */
  profile?: string;
  /** The Accept-Language header the request is sent with. */
  'Accept-Language'?: string;
}

interface Suite {
  name: string;
  mode?: string;
  setup: string[];
  tests: TestCase[];
}

export interface TestResult {
  suite: string;
  test: string;
  /** Why the test is not run, when it is out of scope. */
  skipped?: string;
  passed?: boolean;
  /** What differed, when it failed. */
  problems?: string[];
}

const readJson = <T>(file: string): T => JSON.parse(readFileSync(path.join(SUITE_DIR, file), 'utf8').replace(/^\uFEFF/, '')) as T;

export function loadSuites(): Suite[] {
  return readJson<{ suites: Suite[] }>('test-cases.json').suites;
}

/** Why a suite or test is out of scope, or undefined when it is run. */
export function outOfScope(suite: Suite, test: TestCase): string | undefined {
  const mode = test.mode ?? suite.mode;
  if (mode && mode !== 'general') {
    return `mode ${mode}: ${mode === 'snomed' ? 'needs SNOMED CT loaded' : mode === 'omop' ? 'needs OMOP vocabularies' : mode === 'icd-11' ? 'needs ICD-11' : 'tx.fhir.org-specific QA tests'}`;
  }
  if (!mode) {
    return 'metadata / TerminologyCapabilities: the CapabilityStatement is the store\'s; TerminologyCapabilities is not implemented';
  }
  if (!ENDPOINTS[test.operation]) {
    return `operation ${test.operation} not implemented`;
  }
  return undefined;
}

const isPlaceholder = (v: unknown): boolean => typeof v === 'string' && /^\$.*\$$/.test(v);
/** Whether a value matches an expected one that may hold placeholders inside it (`http://…|$version$`). */
const matchesTemplate = (expected: string, actual: string): boolean =>
  new RegExp(`^${expected.split(/\$[a-z-]*\$/).map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.+')}$`).test(actual);
const isOptional = (v: unknown): boolean => typeof v === 'object' && v !== null && '$optional$' in v;

/** R5 → R4 request conversion for $translate (sourceCode/targetCode), as the official runner converts. */
function toR4(operation: string, params: Parameters): Parameters {
  if (operation !== 'translate') {
    return params;
  }
  const get = (name: string): ParametersParameter | undefined => params.parameter?.find((p) => p.name === name);
  const out: ParametersParameter[] = (params.parameter ?? []).filter((p) => !['sourceSystem', 'sourceCode', 'targetSystem', 'targetCode', 'sourceCoding', 'targetCoding'].includes(p.name as string));
  const sourceSystem = get('sourceSystem')?.valueUri;
  const targetSystem = get('targetSystem')?.valueUri;
  const targetCode = get('targetCode')?.valueCode ?? get('targetCoding')?.valueCoding?.code;
  if (targetCode) {
    out.push({ name: 'code', valueCode: targetCode }, { name: 'reverse', valueBoolean: true });
    if (targetSystem) out.push({ name: 'system', valueUri: targetSystem });
    if (sourceSystem) out.push({ name: 'targetsystem', valueUri: sourceSystem });
  } else {
    const coding = get('sourceCoding')?.valueCoding;
    const code = get('sourceCode')?.valueCode ?? coding?.code;
    if (code) out.push({ name: 'code', valueCode: code });
    const system = sourceSystem ?? coding?.system;
    if (system) out.push({ name: 'system', valueUri: system });
    if (targetSystem) out.push({ name: 'targetsystem', valueUri: targetSystem });
  }
  return { resourceType: 'Parameters', parameter: out };
}

function flatten(contains: ValueSetExpansionContains[] | undefined, into: ValueSetExpansionContains[] = []): ValueSetExpansionContains[] {
  for (const c of contains ?? []) {
    into.push(c);
    flatten(c.contains, into);
  }
  return into;
}

function param(p: Parameters, name: string): ParametersParameter | undefined {
  return p.parameter?.find((x) => x.name === name);
}

function value(p: ParametersParameter | undefined): unknown {
  return p && Object.entries(p).find(([k]) => k.startsWith('value'))?.[1];
}

/** R4 carries R5's ValueSet.expansion.contains.property as this cross-version extension (the official runner's conversion). */
const CONTAINS_PROPERTY = 'http://hl7.org/fhir/5.0/StructureDefinition/extension-ValueSet.expansion.contains.property';

/** code → values (as text) of the properties of an expansion entry, R5 `property` or the R4 extension. */
function entryProperties(c: ValueSetExpansionContains): Array<{ code: string; value: string }> {
  const r5 = ((c as { property?: Array<Record<string, unknown>> }).property ?? []).map((p) => ({ code: String(p.code), value: String(Object.entries(p).find(([k]) => k.startsWith('value'))?.[1]) }));
  const r4 = (c.extension ?? [])
    .filter((e) => e.url === CONTAINS_PROPERTY)
    .map((e) => ({
      code: String(e.extension?.find((x) => x.url === 'code')?.valueCode),
      value: String(Object.entries(e.extension?.find((x) => x.url === 'value') ?? {}).find(([k]) => k.startsWith('value'))?.[1]),
    }));
  return [...r5, ...r4];
}

/**
 * What an expansion entry must carry besides its code: the designations the expected entry has, and the properties
 * the request asked for (`property`, and `definition` with includeDefinition). Properties tx.fhir.org adds unasked
 * (status, label, order, itemWeight) are not required.
 */
function compareEntryDetails(want: ValueSetExpansionContains, candidates: ValueSetExpansionContains[], asked: Set<string>, problems: string[]): void {
  for (const flag of ['abstract', 'inactive'] as const) {
    if (want[flag] === true && !candidates.some((g) => g[flag] === true)) {
      problems.push(`${flag} of ${want.code}: expected true`);
    }
  }
  for (const d of want.designation ?? []) {
    if (isOptional(d) || !d.value) continue;
    if (!candidates.some((g) => g.designation?.some((x) => x.value === d.value && (!d.language || x.language === d.language)))) {
      problems.push(`designation of ${want.code}: missing ${d.language ? `${d.language} ` : ''}"${d.value}"`);
    }
  }
  for (const p of entryProperties(want)) {
    const optional = ((want as { property?: Array<Record<string, unknown>> }).property ?? []).some((x) => x.code === p.code && isOptional(x));
    if (optional || !asked.has(p.code)) continue;
    if (!candidates.some((g) => entryProperties(g).some((x) => x.code === p.code && x.value === p.value))) {
      problems.push(`property ${p.code} of ${want.code}: expected ${p.value}, got ${candidates.flatMap((g) => entryProperties(g).filter((x) => x.code === p.code).map((x) => x.value)).join(', ') || 'none'}`);
    }
  }
}

function compareExpand(expected: ValueSet, actual: ValueSet, request: Parameters, problems: string[]): void {
  const asked = new Set((request.parameter ?? []).filter((p) => p.name === 'property').map((p) => String(value(p))));
  if ((request.parameter ?? []).some((p) => p.name === 'includeDefinition' && p.valueBoolean)) asked.add('definition');
  const key = (c: ValueSetExpansionContains): string => `${c.system}|${c.code}`;
  const want = flatten(expected.expansion?.contains).filter((c) => !isOptional(c) && c.code);
  const optional = new Set(flatten(expected.expansion?.contains).filter((c) => isOptional(c)).map(key));
  const got = flatten(actual.expansion?.contains);
  // A code may be in an expansion once per code system version (several versions of one code system).
  const gotByKey = new Map<string, ValueSetExpansionContains[]>();
  for (const c of got) gotByKey.set(key(c), [...(gotByKey.get(key(c)) ?? []), c]);
  for (const c of want) {
    const candidates = (gotByKey.get(key(c)) ?? []).filter((g) => !c.version || isPlaceholder(c.version) || !g.version || g.version === c.version);
    if (candidates.length === 0) {
      problems.push(`missing ${key(c)}${c.version ? ` version ${c.version}` : ''}`);
    } else {
      if (c.display !== undefined && !isPlaceholder(c.display) && !candidates.some((g) => g.display === c.display)) {
        problems.push(`display of ${c.code}${c.version ? ` (${c.version})` : ''}: expected "${c.display}", got "${candidates.map((g) => g.display).join('", "')}"`);
      }
      compareEntryDetails(c, candidates, asked, problems);
    }
  }
  const wantCount = new Map<string, number>();
  for (const c of want) wantCount.set(key(c), (wantCount.get(key(c)) ?? 0) + 1);
  for (const [k, list] of gotByKey) {
    if (!optional.has(k) && list.length > (wantCount.get(k) ?? 0)) {
      problems.push(`unexpected ${k}${list.length > 1 ? ` (${list.length} times)` : ''}`);
    }
  }
  // The code system versions the expansion used (what system-version, check- and force-system-version decide).
  for (const name of ['used-codesystem', 'used-valueset']) {
    const used = (vs: ValueSet): string[] => (vs.expansion?.parameter ?? []).filter((p) => p.name === name && !isOptional(p)).map((p) => p.valueUri as string);
    const usedGot = used(actual);
    for (const u of used(expected)) {
      if (!isPlaceholder(u) && !usedGot.some((g) => matchesTemplate(u, g))) {
        problems.push(`${name} ${u} missing (got ${usedGot.join(', ')})`);
      }
    }
  }
  const total = expected.expansion?.total;
  if (typeof total === 'number' && actual.expansion?.total !== total) {
    problems.push(`total: expected ${total}, got ${actual.expansion?.total}`);
  }
}

function compareParameters(operation: string, expected: Parameters, actual: Parameters, problems: string[]): void {
  const required = (name: string): ParametersParameter | undefined => {
    const p = param(expected, name);
    return p && !isOptional(p) ? p : undefined;
  };
  const checkValue = (name: string): void => {
    const want = required(name);
    if (want && !isPlaceholder(value(want)) && value(param(actual, name)) !== value(want)) {
      problems.push(`${name}: expected ${JSON.stringify(value(want))}, got ${JSON.stringify(value(param(actual, name)))}`);
    }
  };
  if (operation === 'translate') {
    checkValue('result');
    const codes = (p: Parameters, optionalToo: boolean): Set<string> =>
      new Set(
        (p.parameter ?? [])
          .filter((x) => x.name === 'match' && (optionalToo || !isOptional(x)))
          .map((m) => m.part?.find((x) => x.name === 'concept')?.valueCoding?.code)
          .filter((c): c is string => !!c)
      );
    const want = codes(expected, false);
    const got = codes(actual, true);
    for (const c of want) if (!got.has(c)) problems.push(`missing match ${c}`);
    for (const c of got) if (!codes(expected, true).has(c)) problems.push(`unexpected match ${c}`);
    return;
  }
  if (operation === 'lookup') {
    checkValue('display');
    for (const d of (expected.parameter ?? []).filter((x) => x.name === 'designation' && !isOptional(x))) {
      const v = d.part?.find((x) => x.name === 'value')?.valueString;
      const found = (actual.parameter ?? []).some((x) => x.name === 'designation' && x.part?.some((y) => y.name === 'value' && y.valueString === v));
      if (v && !found) problems.push(`missing designation "${v}"`);
    }
    for (const p of (expected.parameter ?? []).filter((x) => x.name === 'property' && !isOptional(x))) {
      const code = p.part?.find((x) => x.name === 'code')?.valueCode;
      const want = value(p.part?.find((x) => x.name === 'value'));
      const found = (actual.parameter ?? []).some(
        (x) => x.name === 'property' && x.part?.some((y) => y.name === 'code' && y.valueCode === code) && (want === undefined || isPlaceholder(want) || x.part?.some((y) => y.name === 'value' && value(y) === want))
      );
      if (code && !found) problems.push(`missing property ${code}=${JSON.stringify(want)}`);
    }
    return;
  }
  // $validate-code (ValueSet and CodeSystem)
  checkValue('result');
  checkValue('display');
  checkValue('code');
  checkValue('system');
  checkValue('version');
  checkValue('inactive');
}

/** Runs one test against the server; returns what differed (empty: passed). */
async function runTest(app: HttpHandler, test: TestCase, setup: Resource[]): Promise<string[]> {
  const params = toR4(test.operation, readJson<Parameters>(test.request as string));
  // As the official runner does: the test's profile (or the suite's default one) joins the request's parameters.
  const profile = readJson<Parameters>(test.profile ?? 'parameters-default.json');
  const body: Parameters = {
    resourceType: 'Parameters',
    parameter: [...(params.parameter ?? []), ...(profile.parameter ?? []), ...setup.map((resource) => ({ name: 'tx-resource', resource }))],
  };
  const call = request(app).post(`/fhir/${ENDPOINTS[test.operation]}`).set('Content-Type', 'application/fhir+json');
  if (test['Accept-Language']) {
    call.set('Accept-Language', test['Accept-Language']);
  }
  const res = await call.send(body);
  const expected = readJson<Resource>(test.response as string);
  const wantError = test['http-code']?.startsWith('4') || expected.resourceType === 'OperationOutcome';
  if (wantError) {
    return res.status >= 400 && res.status < 500 ? [] : [`status: expected 4xx, got ${res.status}`];
  }
  if (res.status !== 200) {
    return [`status: expected 200, got ${res.status} (${res.body?.issue?.[0]?.diagnostics ?? ''})`];
  }
  const problems: string[] = [];
  if (test.operation === 'expand') {
    compareExpand(expected as ValueSet, res.body as ValueSet, params, problems);
  } else {
    compareParameters(test.operation, expected as Parameters, res.body as Parameters, problems);
  }
  return problems;
}

/** Runs every suite; out-of-scope tests are listed as skipped with the reason. */
export async function runSuites(app: HttpHandler, suites: Suite[] = loadSuites()): Promise<TestResult[]> {
  const results: TestResult[] = [];
  for (const suite of suites) {
    let setup: Resource[] | undefined;
    for (const test of suite.tests) {
      const reason = outOfScope(suite, test);
      if (reason) {
        results.push({ suite: suite.name, test: test.name, skipped: reason });
        continue;
      }
      setup ??= suite.setup.map((file) => readJson<Resource>(file));
      try {
        const started = Date.now();
        const problems = await runTest(app, test, setup);
        if (process.env.TX_TRACE) {
          console.log(`${suite.name}/${test.name} ${Date.now() - started} ms ${problems.length ? 'FAIL' : 'ok'}`);
        }
        results.push({ suite: suite.name, test: test.name, passed: problems.length === 0, ...(problems.length ? { problems } : {}) });
      } catch (err) {
        results.push({ suite: suite.name, test: test.name, passed: false, problems: [`runner error: ${(err as Error).message}`] });
      }
    }
  }
  return results;
}

/** Pass rate per suite, as lines for the log and the conformance document. */
export function summarise(results: TestResult[]): string[] {
  const bySuite = new Map<string, { run: number; passed: number; skipped: number }>();
  for (const r of results) {
    const s = bySuite.get(r.suite) ?? { run: 0, passed: 0, skipped: 0 };
    if (r.skipped) s.skipped++;
    else {
      s.run++;
      if (r.passed) s.passed++;
    }
    bySuite.set(r.suite, s);
  }
  return [...bySuite.entries()].map(([suite, s]) => `${suite}: ${s.passed}/${s.run} passed${s.skipped ? `, ${s.skipped} out of scope` : ''}`);
}
