/** The terminology operations over REST, against the spec's semantics (terminology-service.html), failures included. */
import type { CodeSystem, ConceptMap, Parameters, ValueSet } from '@medplum/fhirtypes';
import request from 'supertest';
import { createTerminologyTestServer, type TerminologyTestServer } from './helpers';

const LAB = 'http://huimin.health/fhir/test/CodeSystem/lab';
const codeSystem: CodeSystem = {
  resourceType: 'CodeSystem',
  id: 'test-lab',
  url: LAB,
  version: '1.0.0',
  name: 'TestLab',
  title: '测试检验',
  status: 'active',
  content: 'complete',
  hierarchyMeaning: 'is-a',
  caseSensitive: true,
  property: [
    { code: 'specimen', type: 'code' },
    { code: 'status', type: 'code', uri: 'http://hl7.org/fhir/concept-properties#status' },
  ],
  concept: [
    {
      code: 'CHEM',
      display: 'Chemistry',
      designation: [{ language: 'zh', value: '生化' }],
      property: [{ code: 'notSelectable', valueBoolean: true }],
      concept: [
        {
          code: 'GLU',
          display: 'Glucose',
          designation: [{ language: 'zh', value: '血糖' }, { language: 'en', use: { system: 'http://snomed.info/sct', code: '900000000000013009' }, value: 'Blood sugar' }],
          property: [{ code: 'specimen', valueCode: 'serum' }],
        },
        {
          code: 'LIVER',
          display: 'Liver panel',
          designation: [{ language: 'zh', value: '肝功能' }],
          concept: [
            { code: 'ALT', display: 'Alanine aminotransferase', designation: [{ language: 'zh', value: '丙氨酸氨基转移酶' }], property: [{ code: 'specimen', valueCode: 'serum' }] },
            { code: 'AST', display: 'Aspartate aminotransferase', designation: [{ language: 'zh', value: '天门冬氨酸氨基转移酶' }] },
          ],
        },
      ],
    },
    { code: 'HB', display: 'Hemoglobin', designation: [{ language: 'zh', value: '血红蛋白' }], property: [{ code: 'specimen', valueCode: 'blood' }] },
    { code: 'OLD', display: 'Retired test', property: [{ code: 'status', valueCode: 'retired' }] },
  ],
};

const vs = (id: string, compose: ValueSet['compose']): ValueSet => ({
  resourceType: 'ValueSet',
  id,
  url: `http://huimin.health/fhir/test/ValueSet/${id}`,
  status: 'active',
  compose,
});

const valueSets: ValueSet[] = [
  vs('all', { include: [{ system: LAB }] }),
  vs('liver', { include: [{ system: LAB, filter: [{ property: 'concept', op: 'is-a', value: 'LIVER' }] }] }),
  vs('liver-below', { include: [{ system: LAB, filter: [{ property: 'concept', op: 'descendent-of', value: 'LIVER' }] }] }),
  vs('serum', { include: [{ system: LAB, filter: [{ property: 'specimen', op: '=', value: 'serum' }] }] }),
  vs('regex', { include: [{ system: LAB, filter: [{ property: 'code', op: 'regex', value: 'A.T' }] }] }),
  vs('in', { include: [{ system: LAB, filter: [{ property: 'concept', op: 'in', value: 'GLU,HB' }] }] }),
  vs('enum', { include: [{ system: LAB, concept: [{ code: 'GLU' }, { code: 'HB', display: 'Hb' }] }] }),
  vs('nested', { include: [{ valueSet: ['http://huimin.health/fhir/test/ValueSet/liver'] }, { system: LAB, concept: [{ code: 'GLU' }] }], exclude: [{ system: LAB, concept: [{ code: 'AST' }] }] }),
  vs('unknown-system', { include: [{ system: 'http://example.org/nowhere', filter: [{ property: 'concept', op: 'is-a', value: 'x' }] }] }),
];

const LOCAL = 'http://huimin.health/fhir/hospital/h1/CodeSystem/lab';
const conceptMap: ConceptMap = {
  resourceType: 'ConceptMap',
  id: 'h1-lab-loinc',
  url: 'http://huimin.health/fhir/ConceptMap/h1-lab-loinc',
  status: 'active',
  group: [
    {
      source: LOCAL,
      target: 'http://loinc.org',
      element: [
        { code: 'GLU', display: '血糖', target: [{ code: '2345-7', display: 'Glucose [Mass/volume] in Serum or Plasma', equivalence: 'equivalent' }] },
        { code: 'LIPID', display: '血脂', target: [{ code: '2093-3', equivalence: 'wider' }, { code: '2571-8', equivalence: 'wider' }] },
        { code: 'NONE', target: [{ equivalence: 'unmatched' }] },
      ],
    },
  ],
};

let server: TerminologyTestServer;
const param = (p: Parameters, name: string): unknown => {
  const found = p.parameter?.find((x) => x.name === name);
  return found && Object.entries(found).find(([k]) => k.startsWith('value'))?.[1];
};
const post = (path: string, parameter: Parameters['parameter']) =>
  request(server.app).post(`/fhir/${path}`).set('Content-Type', 'application/fhir+json').send({ resourceType: 'Parameters', parameter });

beforeAll(async () => {
  server = await createTerminologyTestServer('postgres');
  await server.put(codeSystem, ...valueSets, conceptMap);
});
afterAll(() => server.close());

describe('CodeSystem/$lookup', () => {
  it('answers display, designations (zh, en), properties, parent and child, by GET and POST', async () => {
    const get = await request(server.app).get(`/fhir/CodeSystem/$lookup?system=${encodeURIComponent(LAB)}&code=LIVER`).expect(200);
    const p = get.body as Parameters;
    expect(param(p, 'name')).toBe('测试检验');
    expect(param(p, 'version')).toBe('1.0.0');
    expect(param(p, 'display')).toBe('Liver panel');
    const props = p.parameter?.filter((x) => x.name === 'property').map((x) => `${x.part?.[0].valueCode}=${x.part?.[1].valueCode ?? x.part?.[1].valueBoolean}`);
    expect(props).toEqual(expect.arrayContaining(['parent=CHEM', 'child=ALT', 'child=AST', 'inactive=false']));
    const res = await post('CodeSystem/$lookup', [{ name: 'coding', valueCoding: { system: LAB, code: 'GLU' } }, { name: 'displayLanguage', valueCode: 'zh-CN' }]).expect(200);
    expect(param(res.body, 'display')).toBe('血糖');
    const designations = (res.body as Parameters).parameter?.filter((x) => x.name === 'designation');
    expect(designations?.map((d) => d.part?.find((x) => x.name === 'value')?.valueString)).toEqual(['血糖', 'Blood sugar']);
    expect(designations?.[1].part?.find((x) => x.name === 'use')?.valueCoding?.code).toBe('900000000000013009');
  });

  it('restricts properties when asked, and works at instance level', async () => {
    const res = await post('CodeSystem/test-lab/$lookup', [{ name: 'code', valueCode: 'ALT' }, { name: 'property', valueCode: 'specimen' }]).expect(200);
    const props = (res.body as Parameters).parameter?.filter((x) => x.name === 'property');
    expect(props).toHaveLength(1);
    expect(props?.[0].part?.[1].valueCode).toBe('serum');
  });

  it('refuses an unknown code system and an unknown code with 404 OperationOutcomes', async () => {
    const cs = await request(server.app).get('/fhir/CodeSystem/$lookup?system=http://example.org/nowhere&code=x').expect(404);
    expect(cs.body.issue[0].diagnostics).toContain("CodeSystem 'http://example.org/nowhere' could not be found");
    const code = await request(server.app).get(`/fhir/CodeSystem/$lookup?system=${encodeURIComponent(LAB)}&code=NOPE`).expect(404);
    expect(code.body.issue[0].diagnostics).toContain("Unknown code 'NOPE'");
    const missing = await request(server.app).get('/fhir/CodeSystem/$lookup?code=x').expect(400);
    expect(missing.body.resourceType).toBe('OperationOutcome');
  });
});

describe('CodeSystem/$validate-code and $subsumes', () => {
  it('validates codes and displays (designations count as valid displays)', async () => {
    const good = await request(server.app).get(`/fhir/CodeSystem/$validate-code?url=${encodeURIComponent(LAB)}&code=GLU&display=${encodeURIComponent('血糖')}`).expect(200);
    expect(param(good.body, 'result')).toBe(true);
    expect(param(good.body, 'display')).toBe('Glucose');
    const bad = await post('CodeSystem/$validate-code', [{ name: 'url', valueUri: LAB }, { name: 'code', valueCode: 'NOPE' }]).expect(200);
    expect(param(bad.body, 'result')).toBe(false);
    expect(param(bad.body, 'message')).toContain("Unknown code 'NOPE'");
    const display = await post('CodeSystem/$validate-code', [{ name: 'coding', valueCoding: { system: LAB, code: 'GLU', display: 'Sugar' } }]).expect(200);
    expect(param(display.body, 'result')).toBe(false);
    expect(param(display.body, 'message')).toContain("Wrong Display Name 'Sugar'");
    const unknown = await post('CodeSystem/$validate-code', [{ name: 'url', valueUri: 'http://example.org/nowhere' }, { name: 'code', valueCode: 'x' }]).expect(200);
    expect(param(unknown.body, 'result')).toBe(false);
    expect(param(unknown.body, 'message')).toContain('could not be found');
  });

  it('answers subsumption both ways', async () => {
    const outcome = async (a: string, b: string) =>
      param((await request(server.app).get(`/fhir/CodeSystem/$subsumes?system=${encodeURIComponent(LAB)}&codeA=${a}&codeB=${b}`).expect(200)).body, 'outcome');
    expect(await outcome('CHEM', 'ALT')).toBe('subsumes');
    expect(await outcome('ALT', 'CHEM')).toBe('subsumed-by');
    expect(await outcome('GLU', 'GLU')).toBe('equivalent');
    expect(await outcome('GLU', 'HB')).toBe('not-subsumed');
    await request(server.app).get(`/fhir/CodeSystem/$subsumes?system=${encodeURIComponent(LAB)}&codeA=GLU&codeB=NOPE`).expect(400);
  });
});

describe('ValueSet/$expand', () => {
  const expandCodes = async (id: string, extra = '') => {
    const res = await request(server.app).get(`/fhir/ValueSet/$expand?url=${encodeURIComponent(`http://huimin.health/fhir/test/ValueSet/${id}`)}${extra}`).expect(200);
    return (res.body as ValueSet).expansion?.contains?.map((c) => c.code) ?? [];
  };

  it('expands by code system, is-a, descendant-of, =, regex, in, concept list, nested value sets and excludes', async () => {
    expect(await expandCodes('all')).toEqual(['CHEM', 'GLU', 'LIVER', 'ALT', 'AST', 'HB', 'OLD']);
    expect(await expandCodes('liver')).toEqual(['LIVER', 'ALT', 'AST']);
    expect(await expandCodes('liver-below')).toEqual(['ALT', 'AST']);
    expect(await expandCodes('serum')).toEqual(['GLU', 'ALT']);
    expect(await expandCodes('regex')).toEqual(['ALT', 'AST']);
    expect(await expandCodes('in')).toEqual(['GLU', 'HB']);
    expect(await expandCodes('enum')).toEqual(['GLU', 'HB']);
    expect(await expandCodes('nested')).toEqual(['LIVER', 'ALT', 'GLU']);
  });

  it('filters text over displays and Chinese designations, pages with count/offset, and speaks the display language', async () => {
    expect(await expandCodes('all', `&filter=${encodeURIComponent('氨基转移酶')}`)).toEqual(['ALT', 'AST']);
    expect(await expandCodes('all', '&filter=amino%20ala')).toEqual(['ALT']);
    const page = await request(server.app).get(`/fhir/ValueSet/$expand?url=${encodeURIComponent('http://huimin.health/fhir/test/ValueSet/all')}&count=2&offset=1&displayLanguage=zh`).expect(200);
    const expansion = (page.body as ValueSet).expansion;
    expect(expansion?.total).toBe(7);
    expect(expansion?.offset).toBe(1);
    expect(expansion?.contains?.map((c) => c.display)).toEqual(['血糖', '肝功能']);
    expect(expansion?.parameter).toEqual(expect.arrayContaining([{ name: 'used-codesystem', valueUri: `${LAB}|1.0.0` }]));
    expect(await expandCodes('all', '&activeOnly=true')).not.toContain('OLD');
    const all = await request(server.app).get(`/fhir/ValueSet/$expand?url=${encodeURIComponent('http://huimin.health/fhir/test/ValueSet/all')}`).expect(200);
    expect((all.body as ValueSet).expansion?.contains?.find((c) => c.code === 'CHEM')).toMatchObject({ abstract: true });
    expect((all.body as ValueSet).expansion?.contains?.find((c) => c.code === 'OLD')).toMatchObject({ inactive: true });
  });

  it('takes the expansion parameters: excludeNotForUI, excludeNested=false, property, includeDefinition, designation', async () => {
    const expand = async (...parameter: NonNullable<Parameters['parameter']>): Promise<ValueSet> =>
      (await post('ValueSet/$expand', [{ name: 'url', valueUri: 'http://huimin.health/fhir/test/ValueSet/all' }, ...parameter]).expect(200)).body as ValueSet;
    expect((await expand({ name: 'excludeNotForUI', valueBoolean: true })).expansion?.contains?.map((c) => c.code)).not.toContain('CHEM');
    const nested = await expand({ name: 'excludeNested', valueBoolean: false });
    expect(nested.expansion?.contains?.map((c) => c.code)).toEqual(['CHEM', 'HB', 'OLD']);
    expect(nested.expansion?.contains?.[0].contains?.map((c) => c.code)).toEqual(['GLU', 'LIVER']);
    expect(nested.expansion?.contains?.[0].contains?.[1].contains?.map((c) => c.code)).toEqual(['ALT', 'AST']);
    expect(nested.expansion?.total).toBe(7);
    const props = await expand({ name: 'property', valueString: 'specimen' }, { name: 'includeDefinition', valueBoolean: true }, { name: 'includeDesignations', valueBoolean: true }, { name: 'designation', valueString: 'urn:ietf:bcp:47|zh' });
    const glu = props.expansion?.contains?.find((c) => c.code === 'GLU');
    // R4 has no contains.property: R5's cross-version extension carries it.
    expect(glu?.extension).toEqual([
      {
        url: 'http://hl7.org/fhir/5.0/StructureDefinition/extension-ValueSet.expansion.contains.property',
        extension: [{ url: 'code', valueCode: 'specimen' }, { url: 'value', valueCode: 'serum' }],
      },
    ]);
    expect(glu?.designation).toEqual([{ language: 'zh', value: '血糖' }]);
    expect(props.expansion?.extension?.map((e) => e.extension?.[0].valueCode)).toEqual(['specimen', 'definition']);
    expect(props.expansion?.parameter).toEqual(expect.arrayContaining([{ name: 'property', valueString: 'specimen' }, { name: 'includeDefinition', valueBoolean: true }]));
  });

  it('chooses code system versions with system-version, check-system-version and force-system-version', async () => {
    const v2: CodeSystem = { ...codeSystem, id: 'test-lab-2', version: '2.0.0', concept: [{ code: 'GLU', display: 'Glucose (v2)' }, { code: 'NEW', display: 'New in v2' }] };
    const pinned = vs('pinned-1', { include: [{ system: LAB, version: '1.0.0', concept: [{ code: 'GLU' }] }] });
    const open = vs('versionless', { include: [{ system: LAB, concept: [{ code: 'GLU' }] }] });
    const run = (valueSet: ValueSet, ...parameter: NonNullable<Parameters['parameter']>) =>
      post('ValueSet/$expand', [{ name: 'valueSet', resource: valueSet }, { name: 'tx-resource', resource: v2 }, ...parameter]);
    const display = async (res: Promise<{ body: ValueSet }>): Promise<string | undefined> => (await res).body.expansion?.contains?.[0].display;
    // Without a version the latest is used; system-version only where the value set names none.
    expect(await display(run(open).expect(200))).toBe('Glucose (v2)');
    expect(await display(run(open, { name: 'system-version', valueCanonical: `${LAB}|1.0.0` }).expect(200))).toBe('Glucose');
    expect(await display(run(pinned, { name: 'system-version', valueCanonical: `${LAB}|2.0.0` }).expect(200))).toBe('Glucose');
    // force-system-version overrides the value set; a wildcard picks the latest that matches.
    expect(await display(run(pinned, { name: 'force-system-version', valueCanonical: `${LAB}|2.x` }).expect(200))).toBe('Glucose (v2)');
    // check-system-version refuses an expansion over another version, and $validate-code answers false.
    const refused = await run(pinned, { name: 'check-system-version', valueCanonical: `${LAB}|2.0.x` }).expect(400);
    expect(refused.body.issue[0].diagnostics).toBe(`The version '1.0.0' is not allowed for system '${LAB}': required to be '2.0.x' by a version-check parameter`);
    const checked = await post('ValueSet/$validate-code', [
      { name: 'valueSet', resource: pinned },
      { name: 'tx-resource', resource: v2 },
      { name: 'coding', valueCoding: { system: LAB, code: 'GLU' } },
      { name: 'check-system-version', valueCanonical: `${LAB}|2.0.x` },
    ]).expect(200);
    expect(param(checked.body, 'result')).toBe(false);
    // A pinned version that does not exist (no prefix matching: '1' is not 1.0.0) cannot be expanded.
    await run(vs('bad-pin', { include: [{ system: LAB, version: '1', concept: [{ code: 'GLU' }] }] })).expect(404);
  });

  it('expands at instance level and a value set supplied in the body', async () => {
    const res = await request(server.app).get('/fhir/ValueSet/liver/$expand').expect(200);
    expect(res.body.expansion.contains.map((c: { code: string }) => c.code)).toEqual(['LIVER', 'ALT', 'AST']);
    const body = await post('ValueSet/$expand', [{ name: 'valueSet', resource: vs('inline', { include: [{ system: LAB, concept: [{ code: 'HB' }] }] }) }]).expect(200);
    expect(body.body.expansion.contains[0]).toMatchObject({ system: LAB, code: 'HB', display: 'Hemoglobin' });
  });

  it('answers failures with OperationOutcomes: unknown value set, unknown code system, bad regex, unsupported parameter', async () => {
    const vsMissing = await request(server.app).get('/fhir/ValueSet/$expand?url=http://example.org/vs/none').expect(404);
    expect(vsMissing.body.issue[0].diagnostics).toContain("value Set 'http://example.org/vs/none' could not be found");
    const csMissing = await request(server.app).get(`/fhir/ValueSet/$expand?url=${encodeURIComponent('http://huimin.health/fhir/test/ValueSet/unknown-system')}`).expect(404);
    expect(csMissing.body.issue[0].diagnostics).toContain('http://example.org/nowhere');
    const regex = await post('ValueSet/$expand', [{ name: 'valueSet', resource: vs('bad', { include: [{ system: LAB, filter: [{ property: 'code', op: 'regex', value: '(' }] }] }) }]).expect(400);
    expect(regex.body.issue[0].diagnostics).toContain('not a valid regular expression');
    const context = await request(server.app).get(`/fhir/ValueSet/$expand?url=x&context=Patient.gender`).expect(400);
    expect(context.body.issue[0].code).toBe('not-supported');
    const all = encodeURIComponent('http://huimin.health/fhir/test/ValueSet/all');
    const count = await request(server.app).get(`/fhir/ValueSet/$expand?url=${all}&count=20000`).expect(400);
    expect(count.body.issue[0]).toMatchObject({ code: 'too-costly', diagnostics: 'count is at most 10000; page with offset' });
    await request(server.app).get(`/fhir/ValueSet/$expand?url=${all}&filter=${'x'.repeat(201)}`).expect(400);
    const redos = await post('ValueSet/$expand', [{ name: 'valueSet', resource: vs('redos', { include: [{ system: LAB, filter: [{ property: 'code', op: 'regex', value: '(a+)+$' }] }] }) }]).expect(400);
    expect(redos.body.issue[0].diagnostics).toContain('exponential time');
  });
});

describe('ValueSet/$validate-code', () => {
  it('says whether a code, coding or codeable concept is in the value set', async () => {
    const url = encodeURIComponent('http://huimin.health/fhir/test/ValueSet/liver');
    const inSet = await request(server.app).get(`/fhir/ValueSet/$validate-code?url=${url}&system=${encodeURIComponent(LAB)}&code=ALT`).expect(200);
    expect(param(inSet.body, 'result')).toBe(true);
    expect(param(inSet.body, 'display')).toBe('Alanine aminotransferase');
    const notIn = await request(server.app).get(`/fhir/ValueSet/$validate-code?url=${url}&system=${encodeURIComponent(LAB)}&code=GLU`).expect(200);
    expect(param(notIn.body, 'result')).toBe(false);
    expect(param(notIn.body, 'message')).toContain('is not in the value set');
    const cc = await post('ValueSet/$validate-code', [
      { name: 'url', valueUri: 'http://huimin.health/fhir/test/ValueSet/liver' },
      { name: 'codeableConcept', valueCodeableConcept: { coding: [{ system: LAB, code: 'GLU' }, { system: LAB, code: 'AST' }] } },
    ]).expect(200);
    expect(param(cc.body, 'result')).toBe(true);
    expect(param(cc.body, 'code')).toBe('AST');
  });

  it('refuses an unknown value set with 404, and answers false for an unknown code system or imported value set', async () => {
    await request(server.app).get('/fhir/ValueSet/$validate-code?url=http://example.org/vs/none&system=x&code=y').expect(404);
    const imports = await post('ValueSet/$validate-code', [
      { name: 'valueSet', resource: vs('imports-missing', { include: [{ valueSet: ['http://example.org/vs/none'] }] }) },
      { name: 'coding', valueCoding: { system: LAB, code: 'GLU' } },
    ]).expect(200);
    expect(param(imports.body, 'result')).toBe(false);
    expect(param(imports.body, 'message')).toContain("value Set 'http://example.org/vs/none' could not be found");
  });
});

describe('ConceptMap/$translate', () => {
  it('translates a local code to LOINC with its equivalence, and back (reverse)', async () => {
    const res = await request(server.app).get(`/fhir/ConceptMap/$translate?system=${encodeURIComponent(LOCAL)}&code=GLU&targetsystem=http://loinc.org`).expect(200);
    expect(param(res.body, 'result')).toBe(true);
    const match = (res.body as Parameters).parameter?.find((p) => p.name === 'match');
    expect(match?.part?.find((p) => p.name === 'equivalence')?.valueCode).toBe('equivalent');
    expect(match?.part?.find((p) => p.name === 'concept')?.valueCoding).toMatchObject({ system: 'http://loinc.org', code: '2345-7' });
    const back = await post('ConceptMap/$translate', [
      { name: 'coding', valueCoding: { system: 'http://loinc.org', code: '2345-7' } },
      { name: 'reverse', valueBoolean: true },
    ]).expect(200);
    expect(back.body.parameter.find((p: { name: string }) => p.name === 'match').part[1].valueCoding).toMatchObject({ system: LOCAL, code: 'GLU', display: '血糖' });
  });

  it('reports ambiguous and missing translations', async () => {
    const amb = await server.terminology.translate({ system: LOCAL, code: 'LIPID', targetSystem: 'http://loinc.org' });
    expect(amb.ambiguous).toBe(true);
    expect(amb.message).toContain('Ambiguous translation');
    expect(amb.matches.map((m) => m.concept.code)).toEqual(['2093-3', '2571-8']);
    const none = await request(server.app).get(`/fhir/ConceptMap/h1-lab-loinc/$translate?system=${encodeURIComponent(LOCAL)}&code=NONE`).expect(200);
    expect(param(none.body, 'result')).toBe(false);
    const unknown = await request(server.app).get(`/fhir/ConceptMap/$translate?system=${encodeURIComponent(LOCAL)}&code=XYZ`).expect(200);
    expect(param(unknown.body, 'result')).toBe(false);
    expect(param(unknown.body, 'message')).toContain('No mapping found');
    await request(server.app).get(`/fhir/ConceptMap/$translate?url=http://example.org/cm/none&system=a&code=b`).expect(404);
  });

  it('records unmapped local codes for the hospital report', async () => {
    await server.terminology.recordUnmapped({ conceptMap: conceptMap.url, system: LOCAL, code: 'K', display: '血钾', source: 'HIS-A' });
    await server.terminology.recordUnmapped({ conceptMap: conceptMap.url, system: LOCAL, code: 'K' });
    const report = await server.terminology.unmappedCodes(conceptMap.url);
    expect(report).toEqual([expect.objectContaining({ code: 'K', display: '血钾', source: 'HIS-A', occurrences: 2 })]);
  });

  it('reports unmapped codes over REST (ConceptMap/$unmapped) to admins and supervisors only', async () => {
    // As the HL7 adapters record a miss: against the local code system, without a ConceptMap.
    await server.terminology.recordUnmapped({ system: LOCAL, code: 'NA', source: 'Organization/h1' });
    await server.terminology.recordUnmapped({ system: 'http://example.org/other-hospital/lab', code: 'X1', source: 'Organization/h2' });
    const codes = (p: Parameters): string[] =>
      (p.parameter ?? []).filter((x) => x.name === 'unmapped').map((x) => x.part?.find((y) => y.name === 'code')?.valueCode as string);
    const all = await request(server.app).get('/fhir/ConceptMap/$unmapped').expect(200);
    expect(codes(all.body).sort()).toEqual(['K', 'NA', 'X1']);
    expect(param(all.body, 'total')).toBe(3);
    const k = (all.body as Parameters).parameter?.find((x) => x.part?.some((y) => y.valueCode === 'K'));
    expect(k?.part?.find((y) => y.name === 'occurrences')?.valueInteger).toBe(2);
    // The hospital's map: its own misses and those recorded against the local code system it maps from.
    const mine = await request(server.app).get('/fhir/ConceptMap/h1-lab-loinc/$unmapped').expect(200);
    expect(codes(mine.body).sort()).toEqual(['K', 'NA']);
    const bySystem = await request(server.app).get(`/fhir/ConceptMap/$unmapped?system=${encodeURIComponent(LOCAL)}&_count=1`).expect(200);
    expect(codes(bySystem.body)).toEqual(['K']);
    await request(server.app).get('/fhir/ConceptMap/$unmapped?_count=0').expect(400);
    const { token: supervisor } = await server.tokenFor({ role: 'supervisor', scope: 'system/*.rs' });
    await request(server.rawApp).get('/fhir/ConceptMap/$unmapped').set('Authorization', `Bearer ${supervisor}`).expect(200);
    const { token: hospital } = await server.tokenFor({ role: 'facility-system', organization: 'Organization/h1', scope: 'system/*.cruds' });
    await request(server.rawApp).get('/fhir/ConceptMap/$unmapped').set('Authorization', `Bearer ${hospital}`).expect(403);
  });
});

describe('CodeSystem supplements (useSupplement)', () => {
  const supplement: CodeSystem = {
    resourceType: 'CodeSystem',
    id: 'test-lab-zh-tw',
    url: 'http://huimin.health/fhir/test/CodeSystem/lab-zh-tw',
    version: '1.0.0',
    status: 'active',
    content: 'supplement',
    supplements: `${LAB}|1.0.0`,
    concept: [{ code: 'HB', designation: [{ language: 'zh-TW', value: '血紅蛋白' }] }],
  };

  it('adds the supplement\'s designations to $lookup and $expand, and refuses an unknown supplement', async () => {
    const use = { name: 'useSupplement', valueCanonical: supplement.url };
    const lookup = await post('CodeSystem/$lookup', [{ name: 'system', valueUri: LAB }, { name: 'code', valueCode: 'HB' }, { name: 'displayLanguage', valueCode: 'zh-TW' }, use, { name: 'tx-resource', resource: supplement }]).expect(200);
    expect(param(lookup.body, 'display')).toBe('血紅蛋白');
    const expand = await post('ValueSet/$expand', [{ name: 'url', valueUri: 'http://huimin.health/fhir/test/ValueSet/in' }, { name: 'displayLanguage', valueCode: 'zh-TW' }, use, { name: 'tx-resource', resource: supplement }]).expect(200);
    expect((expand.body as ValueSet).expansion?.contains?.map((c) => c.display)).toEqual(['血糖', '血紅蛋白']);
    const without = await post('CodeSystem/$lookup', [{ name: 'system', valueUri: LAB }, { name: 'code', valueCode: 'HB' }, { name: 'displayLanguage', valueCode: 'zh-TW' }]).expect(200);
    // Without the supplement, zh-TW falls back to the base language zh.
    expect(param(without.body, 'display')).toBe('血红蛋白');
    const unknown = await post('CodeSystem/$lookup', [{ name: 'system', valueUri: LAB }, { name: 'code', valueCode: 'HB' }, { name: 'useSupplement', valueCanonical: 'http://example.org/none' }]).expect(404);
    expect(unknown.body.issue[0].diagnostics).toBe("The CodeSystem supplement 'http://example.org/none' could not be found");
  });
});

describe('changes through the REST API', () => {
  it('sees a new version of a code system at the next operation', async () => {
    const updated = { ...codeSystem, concept: [...(codeSystem.concept ?? []), { code: 'NEW', display: 'New test' }] };
    await request(server.app).put('/fhir/CodeSystem/test-lab').set('Content-Type', 'application/fhir+json').send(updated).expect(200);
    const res = await request(server.app).get(`/fhir/CodeSystem/$validate-code?url=${encodeURIComponent(LAB)}&code=NEW`).expect(200);
    expect(param(res.body, 'result')).toBe(true);
  });
});
