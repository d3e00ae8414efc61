/**
 * Where part A (what matches) and part B (what comes back) meet: grouped index rows under B's unique match
 * indexes, A's chains and `_has` paged by B's cursor, and A's parsing and chaining of parameters stored at runtime
 * (B). Expected ids are read off the resources seeded here.
 */
import request from 'supertest';
import type { Bundle, Observation, Organization, Patient, SearchParameter } from '@medplum/fhirtypes';
import { extractIndexRows } from '../search';
import { createTestServer, type TestServer } from '../../test/server';
import type { Backend } from '../../test/databases';

const FHIR_JSON = 'application/fhir+json';
const LOINC = 'http://loinc.org';
const UCUM = 'http://unitsofmeasure.org';
const V2_0203 = 'http://terminology.hl7.org/CodeSystem/v2-0203';
const BIRTH_ORG_URL = 'http://huimin.health/fhir/StructureDefinition/birth-organization';

const mr = (value: string) => ({ type: { coding: [{ system: V2_0203, code: 'MR' }] }, system: 'urn:mrn', value });
const systolic = (value: number) => ({
  code: { coding: [{ system: LOINC, code: '8480-6' }] },
  valueQuantity: { value, unit: 'mm[Hg]', system: UCUM, code: 'mm[Hg]' },
});

/** Two MR identifiers: their `identifier:of-type` rows differ only in their group. */
const twoMrns: Patient = { resourceType: 'Patient', id: 'mg-p1', name: [{ family: 'Gao' }], identifier: [mr('M-10'), mr('M-11')] };

/** Two systolic components: their `component-code-value-quantity` code rows differ only in their group. */
const twoSystolics: Observation = {
  resourceType: 'Observation',
  id: 'mg-o1',
  status: 'final',
  code: { coding: [{ system: LOINC, code: '85354-9' }] },
  subject: { reference: 'Patient/mg-p1' },
  component: [systolic(130), systolic(95)],
};

const birthOrgParam: SearchParameter = {
  resourceType: 'SearchParameter',
  id: 'patient-birth-organization',
  url: 'http://huimin.health/fhir/SearchParameter/patient-birth-organization',
  name: 'birth-organization',
  status: 'active',
  description: 'The organization a patient was born at, from the regional extension',
  code: 'birth-organization',
  base: ['Patient'],
  type: 'reference',
  target: ['Organization'],
  expression: `Patient.extension.where(url='${BIRTH_ORG_URL}').value`,
};

describe.each<Backend>(['postgres', 'pglite'])('part A and part B together on %s', (backend) => {
  let server: TestServer;
  const api = () => request(server.app);
  const local = (url: string) => url.replace(server.baseUrl, '/fhir');
  const put = async (resource: Patient | Observation | Organization | SearchParameter) => {
    const res = await api().put(`/fhir/${resource.resourceType}/${resource.id}`).set('Content-Type', FHIR_JSON).send(resource);
    expect([200, 201]).toContain(res.status);
  };
  const get = async (url: string) => {
    const res = await api().get(url).set('Prefer', 'handling=strict');
    expect(res.status).toBe(200);
    return res.body as Bundle;
  };
  const matches = (b: Bundle) => (b.entry ?? []).filter((e) => e.search?.mode === 'match').map((e) => e.resource?.id);
  const ids = async (url: string) => matches(await get(url));
  /** Every match of a search, following next links; the pages' ids in order. */
  const allPages = async (url: string) => {
    const pages: string[][] = [];
    let next: string | undefined = url;
    while (next) {
      const bundle = await get(next);
      pages.push(matches(bundle) as string[]);
      const link = bundle.link?.find((l) => l.relation === 'next')?.url;
      next = link && local(link);
    }
    return pages;
  };

  beforeAll(async () => {
    server = await createTestServer(backend);
    await put(twoMrns);
    await put(twoSystolics);
    // Observations mg-o2 … mg-o5 of Patient mg-p2 (family Gao too), to page through a chain.
    await put({ resourceType: 'Patient', id: 'mg-p2', name: [{ family: 'Gao' }] });
    await put({ resourceType: 'Patient', id: 'mg-p3', name: [{ family: 'Hu' }] });
    for (const n of [2, 3, 4, 5]) {
      const { component: _, ...panel } = twoSystolics;
      await put({ ...panel, id: `mg-o${n}`, subject: { reference: `Patient/mg-p${n === 5 ? 3 : 2}` } });
    }
  });
  afterAll(async () => {
    await server.close();
  });

  it('keeps rows that differ only in their group once each, and stores them under the unique match index', async () => {
    const ofType = extractIndexRows(twoMrns).token.filter((r) => r.code === 'identifier:of-type');
    expect(ofType.map((r) => r.value)).toEqual(['MR', 'MR']);
    expect(new Set(ofType.map((r) => r.group)).size).toBe(2);
    // Each typed identifier twice: ungrouped for ordinary searches, grouped with its type for :of-type.
    const m11 = extractIndexRows(twoMrns).token.filter((r) => r.code === 'identifier' && r.value === 'M-11');
    expect(m11.map((r) => r.group === undefined)).toEqual([true, false]);
    expect(await ids('/fhir/Patient?identifier=urn:mrn|M-11')).toEqual(['mg-p1']);
    expect(await ids('/fhir/Patient?identifier:not=urn:mrn|M-11')).toEqual(['mg-p2', 'mg-p3']);

    expect(await ids(`/fhir/Patient?identifier:of-type=${encodeURIComponent(`${V2_0203}|MR|M-10`)}`)).toEqual(['mg-p1']);
    expect(await ids(`/fhir/Patient?identifier:of-type=${encodeURIComponent(`${V2_0203}|MR|M-11`)}`)).toEqual(['mg-p1']);
    for (const value of [130, 95]) {
      expect(await ids(`/fhir/Observation?component-code-value-quantity=${encodeURIComponent(`${LOINC}|8480-6$${value}`)}`)).toEqual(['mg-o1']);
    }
    expect(await ids(`/fhir/Observation?component-code-value-quantity=${encodeURIComponent(`${LOINC}|8480-6$85`)}`)).toEqual([]);
    // An update deletes the old rows before inserting the same ones again, grouped ones included.
    await put({ ...twoSystolics, component: [systolic(95), systolic(130)] });
    expect(await ids(`/fhir/Observation?component-code-value-quantity=${encodeURIComponent(`${LOINC}|8480-6$95`)}`)).toEqual(['mg-o1']);
  });

  it('pages chains and _has by cursor; the cursor applies to the page itself, not to the linked resources', async () => {
    // mg-p2's id sorts after every Observation's cursor but must still be found through the chain.
    expect(await allPages('/fhir/Observation?subject:Patient.name=Gao&_count=2')).toEqual([
      ['mg-o1', 'mg-o2'],
      ['mg-o3', 'mg-o4'],
    ]);
    expect(await allPages('/fhir/Patient?_has:Observation:subject:code=85354-9&_count=1')).toEqual([['mg-p1'], ['mg-p2'], ['mg-p3']]);
    expect(await allPages('/fhir/Observation?subject:Patient.name=Gao&_sort=-_id&_count=3')).toEqual([
      ['mg-o4', 'mg-o3', 'mg-o2'],
      ['mg-o1'],
    ]);
  });

  it('parses, chains and reverse-chains through a parameter stored at runtime', async () => {
    await put({ resourceType: 'Organization', id: 'mg-org', name: 'Huimin Maternity' });
    await put(birthOrgParam);
    await put({ ...twoMrns, extension: [{ url: BIRTH_ORG_URL, valueReference: { reference: 'Organization/mg-org' } }] });

    expect(await ids('/fhir/Patient?birth-organization=Organization/mg-org')).toEqual(['mg-p1']);
    expect(await ids('/fhir/Patient?birth-organization:Organization=mg-org')).toEqual(['mg-p1']);
    expect(await ids('/fhir/Patient?birth-organization:missing=true')).toEqual(['mg-p2', 'mg-p3']);
    expect(await ids('/fhir/Patient?birth-organization.name=Huimin')).toEqual(['mg-p1']);
    expect(await ids('/fhir/Organization?_has:Patient:birth-organization:identifier=M-11')).toEqual(['mg-org']);
    expect(await ids('/fhir/Observation?subject:Patient.birth-organization.name:contains=Maternity')).toEqual(['mg-o1']);
    const included = await get('/fhir/Patient?_id=mg-p1&_include=Patient:birth-organization');
    expect((included.entry ?? []).filter((e) => e.search?.mode === 'include').map((e) => e.resource?.id)).toEqual(['mg-org']);
    expect((await api().delete('/fhir/SearchParameter/patient-birth-organization')).status).toBe(200);
  });
});
