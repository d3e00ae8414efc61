/**
 * Three search gaps of issue 3, with expected results worked out by hand from the resources written here:
 *  - a composite SearchParameter stored at runtime works like an R4 composite (components from the same element);
 *  - token `:text` compares as string search does (case and accents ignored), and Chinese text works with `:text`,
 *    string search and `:contains`;
 *  - a reference written as an absolute URL under this server's base is chained, included, reverse-chained and
 *    put in the patient's compartment like a relative one.
 */
import request from 'supertest';
import type { Bundle, CapabilityStatement, Observation, Patient, Resource, SearchParameter } from '@medplum/fhirtypes';
import { createTestServer, TEST_PUBLIC_URL, type TestServer } from '../../test/server';

const FHIR_JSON = 'application/fhir+json';
const HUKOU = 'http://huimin.health/fhir/StructureDefinition/household-registration';
const SP = 'http://huimin.health/fhir/SearchParameter';
const LOINC = 'http://loinc.org';

const hukouType: SearchParameter = {
  resourceType: 'SearchParameter', id: 'hukou-type', url: `${SP}/hukou-type`, name: 'hukou-type', status: 'active',
  description: 'Household registration type', code: 'hukou-type', base: ['Patient'], type: 'token',
  expression: `Patient.extension.where(url='${HUKOU}').extension.where(url='type').value`,
};
const hukouCity: SearchParameter = {
  resourceType: 'SearchParameter', id: 'hukou-city', url: `${SP}/hukou-city`, name: 'hukou-city', status: 'active',
  description: 'Household registration city', code: 'hukou-city', base: ['Patient'], type: 'string',
  expression: `Patient.extension.where(url='${HUKOU}').extension.where(url='city').value`,
};
/** Type and city of the same registration: its components are the two stored parameters above. */
const hukou: SearchParameter = {
  resourceType: 'SearchParameter', id: 'hukou', url: `${SP}/hukou`, name: 'hukou', status: 'active',
  description: 'Household registration: type and city of one registration', code: 'hukou', base: ['Patient'], type: 'composite',
  expression: `Patient.extension.where(url='${HUKOU}')`,
  component: [
    { definition: hukouType.url as string, expression: `extension.where(url='type').value` },
    { definition: hukouCity.url as string, expression: `extension.where(url='city').value` },
  ],
};
/** A composite over R4 definitions: a component's code and quantity, as R4's own component-code-value-quantity. */
const componentPart: SearchParameter = {
  resourceType: 'SearchParameter', id: 'component-part', url: `${SP}/component-part`, name: 'component-part', status: 'active',
  description: 'Code and quantity of one component', code: 'component-part', base: ['Observation'], type: 'composite',
  expression: 'Observation.component',
  component: [
    { definition: 'http://hl7.org/fhir/SearchParameter/Observation-component-code', expression: 'code' },
    { definition: 'http://hl7.org/fhir/SearchParameter/Observation-component-value-quantity', expression: 'value.as(Quantity)' },
  ],
};

const registration = (type: string, city: string) => ({
  url: HUKOU,
  extension: [
    { url: 'type', valueCoding: { system: 'http://huimin.health/fhir/CodeSystem/hukou-type', code: type } },
    { url: 'city', valueString: city },
  ],
});

const resources: Resource[] = [
  // h1: agricultural in 杭州市 and urban in 宁波市; h2: urban in 杭州市.
  { resourceType: 'Patient', id: 'h1', extension: [registration('agricultural', '杭州市'), registration('urban', '宁波市')] },
  { resourceType: 'Patient', id: 'h2', extension: [registration('urban', '杭州市')] },
  {
    resourceType: 'Observation', id: 'bp1', status: 'final', code: { coding: [{ system: LOINC, code: '85354-9' }] },
    component: [
      { code: { coding: [{ system: LOINC, code: '8480-6' }] }, valueQuantity: { value: 120, unit: 'mmHg', system: 'http://unitsofmeasure.org', code: 'mm[Hg]' } },
      { code: { coding: [{ system: LOINC, code: '8462-4' }] }, valueQuantity: { value: 80, unit: 'mmHg', system: 'http://unitsofmeasure.org', code: 'mm[Hg]' } },
    ],
  } as Observation,
  // :text and Chinese text.
  {
    resourceType: 'Patient', id: 'zh1', name: [{ family: '张', given: ['三丰'], text: '张三丰' }],
    identifier: [{ system: 'http://huimin.health/id/resident', value: '330106199001011234', type: { text: 'Résident ID card' } }],
  } as Patient,
  {
    resourceType: 'Observation', id: 'hb1', status: 'final',
    code: { coding: [{ system: LOINC, code: '718-7', display: 'Hémoglobine' }], text: '血红蛋白测定' },
  } as Observation,
  // An absolute reference to this server, and one to another server with the same path.
  { resourceType: 'Patient', id: 'abs-p', name: [{ family: 'Absolon' }] } as Patient,
  {
    resourceType: 'Observation', id: 'abs-o', status: 'final', code: { coding: [{ system: LOINC, code: '2345-7' }] },
    subject: { reference: `${TEST_PUBLIC_URL}/fhir/Patient/abs-p` },
  } as Observation,
  {
    resourceType: 'Observation', id: 'far-o', status: 'final', code: { coding: [{ system: LOINC, code: '2345-7' }] },
    subject: { reference: 'http://elsewhere.example/fhir/Patient/abs-p' },
  } as Observation,
];

describe('runtime composites, :text, Chinese text and absolute local references', () => {
  let server: TestServer;
  const api = () => request(server.app);
  const put = async (resource: Resource) => {
    const res = await api().put(`/fhir/${resource.resourceType}/${resource.id}`).set('Content-Type', FHIR_JSON).send(resource);
    expect([200, 201]).toContain(res.status);
  };
  const search = async (url: string, mode: 'match' | 'include' = 'match') => {
    const res = await api().get(url).set('Prefer', 'handling=strict');
    expect(res.status).toBe(200);
    return ((res.body as Bundle).entry ?? []).filter((e) => e.search?.mode === mode).map((e) => `${e.resource?.resourceType}/${e.resource?.id}`);
  };

  beforeAll(async () => {
    server = await createTestServer('postgres');
    for (const resource of [hukouType, hukouCity, hukou, componentPart, ...resources]) {
      await put(resource);
    }
  });
  afterAll(async () => {
    await server.close();
  });

  describe('a composite SearchParameter stored at runtime', () => {
    it('matches components of the same element only', async () => {
      const q = (value: string) => search(`/fhir/Patient?hukou=${encodeURIComponent(value)}`);
      expect(await q('agricultural$杭州')).toEqual(['Patient/h1']);
      expect(await q('urban$杭州')).toEqual(['Patient/h2']);
      expect(await q('urban$宁波')).toEqual(['Patient/h1']);
      expect(await q('agricultural$宁波')).toEqual([]);
      expect(await q('urban$杭州,agricultural$宁波')).toEqual(['Patient/h2']);
      expect(await search('/fhir/Patient?hukou:missing=false')).toEqual(['Patient/h1', 'Patient/h2']);
      const wrong = await api().get('/fhir/Patient?hukou=urban');
      expect(wrong.status).toBe(400);
    });

    it('takes its components from R4 definitions too', async () => {
      const q = (value: string) => search(`/fhir/Observation?component-part=${encodeURIComponent(value)}`);
      expect(await q(`${LOINC}|8480-6$120`)).toEqual(['Observation/bp1']);
      expect(await q(`${LOINC}|8480-6$gt100`)).toEqual(['Observation/bp1']);
      expect(await q(`${LOINC}|8480-6$80`)).toEqual([]);
      expect(await q(`${LOINC}|8462-4$80`)).toEqual(['Observation/bp1']);
    });

    it('is listed in the CapabilityStatement', async () => {
      const statement = (await api().get('/fhir/metadata')).body as CapabilityStatement;
      const patient = statement.rest?.[0].resource?.find((r) => r.type === 'Patient');
      expect(patient?.searchParam?.find((p) => p.name === 'hukou')).toEqual({ name: 'hukou', type: 'composite', definition: hukou.url });
    });
  });

  describe(':text and Chinese text', () => {
    it('matches a coding display and a concept text ignoring case and accents, from their start', async () => {
      expect(await search('/fhir/Observation?code:text=hemoglobine')).toEqual(['Observation/hb1']);
      expect(await search(`/fhir/Observation?code:text=${encodeURIComponent('HÉMO')}`)).toEqual(['Observation/hb1']);
      expect(await search(`/fhir/Observation?code:text=${encodeURIComponent('血红')}`)).toEqual(['Observation/hb1']);
      expect(await search(`/fhir/Observation?code:text=${encodeURIComponent('蛋白')}`)).toEqual([]);
      expect(await search('/fhir/Patient?identifier:text=resident')).toEqual(['Patient/zh1']);
    });

    it('finds Chinese names by string search, :exact and :contains', async () => {
      const q = (key: string, value: string) => search(`/fhir/Patient?${key}=${encodeURIComponent(value)}`);
      expect(await q('name', '张')).toEqual(['Patient/zh1']);
      expect(await q('name', '三')).toEqual(['Patient/zh1']);
      expect(await q('name', '丰')).toEqual([]);
      expect(await q('name:contains', '丰')).toEqual(['Patient/zh1']);
      expect(await q('name:contains', '三丰')).toEqual(['Patient/zh1']);
      expect(await q('name:exact', '张三丰')).toEqual(['Patient/zh1']);
      expect(await q('name:exact', '张三')).toEqual([]);
      expect(await q('hukou-city:contains', '州')).toEqual(['Patient/h1', 'Patient/h2']);
    });
  });

  describe('a reference written as an absolute URL under this server base', () => {
    it('is searched, chained and reverse-chained like a relative one', async () => {
      expect(await search('/fhir/Observation?subject=Patient/abs-p')).toEqual(['Observation/abs-o']);
      expect(await search(`/fhir/Observation?subject=${encodeURIComponent(`${TEST_PUBLIC_URL}/fhir/Patient/abs-p`)}`)).toEqual(['Observation/abs-o']);
      expect(await search('/fhir/Observation?subject:Patient.name=absolon')).toEqual(['Observation/abs-o']);
      expect(await search('/fhir/Observation?patient.name=absolon')).toEqual(['Observation/abs-o']);
      expect(await search(`/fhir/Patient?_has:Observation:subject:code=${encodeURIComponent(`${LOINC}|2345-7`)}`)).toEqual(['Patient/abs-p']);
      // Another server's URL with the same path stays a URL.
      expect(await search(`/fhir/Observation?subject=${encodeURIComponent('http://elsewhere.example/fhir/Patient/abs-p')}`)).toEqual(['Observation/far-o']);
    });

    it('is included, reverse-included, and puts the resource in the patient compartment', async () => {
      expect(await search('/fhir/Observation?_id=abs-o&_include=Observation:subject', 'include')).toEqual(['Patient/abs-p']);
      expect(await search('/fhir/Patient?_id=abs-p&_revinclude=Observation:subject', 'include')).toEqual(['Observation/abs-o']);
      expect(await search('/fhir/Patient/abs-p/Observation')).toEqual(['Observation/abs-o']);
    });
  });
});
