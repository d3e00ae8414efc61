/** Release loaders on small release-shaped files (terminology/test/fixtures), re-run to check they replace. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Parameters, ValueSet } from '@medplum/fhirtypes';
import request from 'supertest';
import { loadContent, regionalSources } from '..';
import { loadConceptMapCsv, loadIcd10, loadLoinc, loadSnomed, hospitalLabSystem } from '../loaders';
import { createTerminologyTestServer, type TerminologyTestServer } from './helpers';

const FIXTURES = path.join(__dirname, 'fixtures');
let server: TerminologyTestServer;
beforeAll(async () => {
  server = await createTerminologyTestServer('postgres');
  // The bundled fragments (LOINC subset, ICD-10 clinical edition extract) that loaded releases must win over.
  await loadContent(server.repository, server.terminology, regionalSources());
});
afterAll(() => server.close());

const param = (p: Parameters, name: string): unknown => {
  const found = p.parameter?.find((x) => x.name === name);
  return found && Object.entries(found).find(([k]) => k.startsWith('value'))?.[1];
};
const lookup = async (system: string, code: string, extra = ''): Promise<Parameters> =>
  (await request(server.app).get(`/fhir/CodeSystem/$lookup?system=${encodeURIComponent(system)}&code=${encodeURIComponent(code)}${extra}`).expect(200)).body;

describe('LOINC loader', () => {
  it('streams Loinc.csv with a Chinese linguistic variant into http://loinc.org, and re-runs', async () => {
    const options = { file: path.join(FIXTURES, 'loinc/Loinc.csv'), chineseVariantFile: path.join(FIXTURES, 'loinc/zhCN8LinguisticVariant.csv'), version: '2.77' };
    const report = await loadLoinc(server.repository, server.terminology, options);
    expect(report).toMatchObject({ system: 'http://loinc.org', version: '2.77', concepts: 5 });
    const glucose = await lookup('http://loinc.org', '2345-7', '&displayLanguage=zh-CN');
    expect(param(glucose, 'display')).toBe('葡萄糖 [质量/体积] 于血清或血浆');
    const en = await lookup('http://loinc.org', '2345-7');
    expect(param(en, 'display')).toBe('Glucose [Mass/volume] in Serum or Plasma');
    const component = en.parameter?.find((p) => p.name === 'property' && p.part?.[0].valueCode === 'COMPONENT');
    expect(component?.part?.[1].valueString).toBe('Glucose');
    // A deprecated code is inactive; quoted commas and doubled quotes in free text survive.
    const gfr = await server.terminology.validateCode({ system: 'http://loinc.org', code: '33914-3' });
    expect(gfr).toMatchObject({ result: true, inactive: true });
    const text = await request(server.app).get(`/fhir/ValueSet/$expand?url=http://loinc.org/vs&filter=${encodeURIComponent('血红蛋白')}`);
    // LOINC's implicit value set is not defined here; a value set over the system expands the loaded release.
    expect(text.status).toBe(404);
    const expanded = await server.terminology.expand({ valueSet: { resourceType: 'ValueSet', status: 'active', compose: { include: [{ system: 'http://loinc.org' }] } }, filter: '血红蛋白' });
    expect(expanded.expansion?.contains?.map((c) => c.code)).toEqual(['718-7']);
    // Re-running replaces the concepts of that version (same count, new resource version).
    expect((await loadLoinc(server.repository, server.terminology, options)).concepts).toBe(5);
    const rows = await server.db.query<{ n: number }>("SELECT count(*)::int AS n FROM tx_concept WHERE system_url = 'http://loinc.org'");
    expect(rows[0].n).toBe(5);
  });
});

describe('ICD-10 loader', () => {
  it('streams ClaML: chapters and blocks are not selectable, the hierarchy follows SuperClass', async () => {
    const report = await loadIcd10(server.repository, server.terminology, { file: path.join(FIXTURES, 'icd10/icd10-claml.xml'), version: '2019' });
    expect(report).toMatchObject({ system: 'http://hl7.org/fhir/sid/icd-10', concepts: 4 });
    const e11 = await lookup('http://hl7.org/fhir/sid/icd-10', 'E11');
    expect(param(e11, 'display')).toBe('Non-insulin-dependent diabetes mellitus');
    const outcome = await request(server.app).get('/fhir/CodeSystem/$subsumes?system=http://hl7.org/fhir/sid/icd-10&codeA=IV&codeB=E11.9').expect(200);
    expect(param(outcome.body, 'outcome')).toBe('subsumes');
    const chapter = await lookup('http://hl7.org/fhir/sid/icd-10', 'IV');
    expect(param(chapter, 'abstract')).toBe(true);
    const long = (await lookup('http://hl7.org/fhir/sid/icd-10', 'E11.9')).parameter?.filter((p) => p.name === 'designation').map((d) => d.part?.find((x) => x.name === 'value')?.valueString);
    expect(long).toContain('Non-insulin-dependent diabetes mellitus without complications');
  });

  it('streams the national clinical edition from CSV with Chinese headers; the loaded release wins over the bundled fragment', async () => {
    const report = await loadIcd10(server.repository, server.terminology, { file: path.join(FIXTURES, 'icd10/icd10-cn-clinical.csv'), version: '2.0' });
    expect(report).toMatchObject({ system: 'http://huimin.health/fhir/CodeSystem/icd-10-cn', concepts: 4 });
    const sub = await lookup('http://huimin.health/fhir/CodeSystem/icd-10-cn', 'E11.900');
    expect(param(sub, 'display')).toBe('2型糖尿病不伴有并发症');
    expect(sub.parameter?.find((p) => p.name === 'property' && p.part?.[0].valueCode === 'parent')?.part?.[1].valueCode).toBe('E11');
  });
});

describe('SNOMED CT loader', () => {
  it('streams an RF2 snapshot: concepts, active descriptions, active is-a relationships', async () => {
    const report = await loadSnomed(server.repository, server.terminology, { dir: path.join(FIXTURES, 'snomed'), version: 'http://snomed.info/sct/900000000000207008/version/20240101' });
    expect(report).toMatchObject({ system: 'http://snomed.info/sct', concepts: 7 });
    const dm2 = await lookup('http://snomed.info/sct', '44054006');
    expect(param(dm2, 'display')).toBe('Diabetes mellitus type 2');
    const values = dm2.parameter?.filter((p) => p.name === 'designation').map((d) => d.part?.find((x) => x.name === 'value')?.valueString);
    expect(values).toEqual(expect.arrayContaining(['Diabetes mellitus type 2 (disorder)', 'Type 2 diabetes mellitus']));
    // Inactive relationship (46635009 → 64572001) and inactive synonym (Juvenile diabetes) are left out.
    const dm1 = await lookup('http://snomed.info/sct', '46635009', '&property=parent');
    expect(dm1.parameter?.filter((p) => p.name === 'property').map((p) => p.part?.[1].valueCode)).toEqual(['73211009']);
    const isA: ValueSet = { resourceType: 'ValueSet', status: 'active', compose: { include: [{ system: 'http://snomed.info/sct', filter: [{ property: 'concept', op: 'is-a', value: '73211009' }] }] } };
    const expansion = await server.terminology.expand({ valueSet: isA });
    expect(expansion.expansion?.contains?.map((c) => c.code).sort()).toEqual(['44054006', '46635009', '73211009']);
    const old = await server.terminology.validateCode({ system: 'http://snomed.info/sct', code: '190331003' });
    expect(old).toMatchObject({ result: true, inactive: true });
  });
});

describe('hospital ConceptMap CSV', () => {
  it('builds the ConceptMap, reports unmapped and rejected rows, and translates local codes', async () => {
    const report = await loadConceptMapCsv(server.repository, server.terminology, { file: path.join(FIXTURES, 'conceptmap/h1-lab.csv'), hospital: 'h1' });
    expect(report.mapped).toBe(4);
    expect(report.unmapped).toEqual([{ code: 'XGLU', display: '血糖（床旁）' }]);
    expect(report.rejected).toEqual([{ line: 7, reason: '"12345" is not a LOINC code (digits, hyphen, check digit)' }]);
    // LOINC (loaded above) knows every mapped target.
    expect(report.unknownLoinc).toEqual([]);
    const translated = await server.terminology.translate({ system: hospitalLabSystem('h1'), code: 'GLU', targetSystem: 'http://loinc.org' });
    expect(translated).toMatchObject({ result: true, ambiguous: false, matches: [{ equivalence: 'equivalent', concept: { system: 'http://loinc.org', code: '2345-7' } }] });
    const unmapped = await server.terminology.unmappedCodes(report.conceptMap);
    expect(unmapped.map((u) => u.code)).toEqual(['XGLU']);
  });

  it('gives an Observation from an HL7 v2 ORU sample with a local code its LOINC coding through a ConceptMap', async () => {
    // ORU-R01-01 (fhir-converter samples): OBX-3 is 625-4^Bacteria identified in Stool by Culture^XYZ, a local code system.
    const message = readFileSync(path.join(__dirname, '../../../shared/fixtures/hl7v2/fhir-converter/ORU-R01-01.hl7'), 'utf8');
    const obx = message.split(/\r\n|\r|\n/).find((s) => s.startsWith('OBX|1|')) as string;
    const [code, display, codingSystem] = obx.split('|')[3].split('^');
    expect(codingSystem).toBe('XYZ');
    const csv = path.join(FIXTURES, 'conceptmap/oru-sample.csv');
    const source = `${hospitalLabSystem('oru-sample')}`;
    await loadConceptMapCsv(server.repository, server.terminology, { file: csv, hospital: 'oru-sample' });
    const observation = { resourceType: 'Observation', status: 'final', code: { coding: [{ system: source, code, display }] } };
    const result = await server.terminology.translate({ system: source, code, targetSystem: 'http://loinc.org' });
    expect(result.result).toBe(true);
    observation.code.coding.push(...result.matches.map((m) => ({ system: m.concept.system as string, code: m.concept.code as string, display: m.concept.display as string })));
    expect(observation.code.coding[1]).toEqual({ system: 'http://loinc.org', code: '625-4', display: 'Bacteria identified in Stool by Culture' });
    // A code the map does not know is recorded for the hospital's report.
    const miss = await server.terminology.translate({ system: source, code: 'UNKNOWN-1', targetSystem: 'http://loinc.org' });
    expect(miss.result).toBe(false);
    await server.terminology.recordUnmapped({ conceptMap: 'http://huimin.health/fhir/ConceptMap/oru-sample-lab-loinc', system: source, code: 'UNKNOWN-1', source: 'ORU^R01 from ABC Hospital' });
    expect((await server.terminology.unmappedCodes('http://huimin.health/fhir/ConceptMap/oru-sample-lab-loinc')).map((u) => u.code)).toEqual(['UNKNOWN-1']);
  });
});
