/**
 * What matches (issue 3, part A): chaining, `_has`, modifiers, escaping, OR/AND, composite parameters, includes.
 * Every expected id below is read off the resources seeded here, by hand.
 */
import request from 'supertest';
import type { Bundle, BundleEntry, CapabilityStatement, OperationOutcome, Resource } from '@medplum/fhirtypes';
import { createTestServer, type TestServer } from '../../test/server';
import type { Backend } from '../../test/databases';

const FHIR_JSON = 'application/fhir+json';
const LOINC = 'http://loinc.org';
const UCUM = 'http://unitsofmeasure.org';
const V2_0203 = 'http://terminology.hl7.org/CodeSystem/v2-0203';

const put = (resource: Resource): BundleEntry => ({ resource, request: { method: 'PUT', url: `${resource.resourceType}/${resource.id}` } });
const quantity = (value: number, code: string) => ({ value, unit: code, system: UCUM, code });

const resources: Resource[] = [
  { resourceType: 'Organization', id: 'org1', name: 'Huimin People’s Hospital' },
  { resourceType: 'Organization', id: 'org2', name: 'Eastern Clinic', partOf: { reference: 'Organization/org1' } },
  { resourceType: 'Practitioner', id: 'dr1', name: [{ family: 'Li', given: ['Ming'] }] },
  {
    resourceType: 'Patient',
    id: 'p1',
    name: [{ family: '张', given: ['伟'] }],
    gender: 'male',
    birthDate: '1970-05-06',
    managingOrganization: { reference: 'Organization/org1' },
    generalPractitioner: [{ reference: 'Practitioner/dr1' }],
    identifier: [
      { type: { coding: [{ system: V2_0203, code: 'MR' }] }, system: 'urn:mrn', value: 'M-1' },
      { system: 'urn:odd', value: 'a,b|c$d' },
    ],
  },
  {
    resourceType: 'Patient',
    id: 'p2',
    name: [{ family: 'Zoë', given: ['Anne-Marie'] }],
    managingOrganization: { reference: 'Organization/org2' },
    identifier: [{ type: { coding: [{ system: V2_0203, code: 'DL' }] }, system: 'urn:mrn', value: 'M-2' }],
  },
  { resourceType: 'Patient', id: 'p3', name: [{ family: 'Müller' }], gender: 'female', birthDate: '1985' },
  { resourceType: 'Encounter', id: 'e1', status: 'finished', class: { code: 'AMB' }, subject: { reference: 'Patient/p1' } },
  { resourceType: 'Encounter', id: 'e2', status: 'finished', class: { code: 'AMB' }, subject: { reference: 'Patient/p2' } },
  {
    // Blood pressure panel: systolic 130, diastolic 85, in components.
    resourceType: 'Observation',
    id: 'bp1',
    status: 'final',
    code: { coding: [{ system: LOINC, code: '85354-9', display: 'Blood pressure panel' }] },
    subject: { reference: 'Patient/p1' },
    encounter: { reference: 'Encounter/e1' },
    effectiveDateTime: '2024-01-01T08:00:00Z',
    component: [
      { code: { coding: [{ system: LOINC, code: '8480-6' }] }, valueQuantity: quantity(130, 'mm[Hg]') },
      { code: { coding: [{ system: LOINC, code: '8462-4' }] }, valueQuantity: quantity(85, 'mm[Hg]') },
    ],
  },
  {
    // Systolic 95 on its own; also a diastolic code with no value, so no component pairs 8462-4 with 95.
    resourceType: 'Observation',
    id: 'sys2',
    status: 'final',
    code: { coding: [{ system: LOINC, code: '8480-6', display: 'Systolic blood pressure' }] },
    subject: { reference: 'Patient/p2' },
    effectiveDateTime: '2025-06-01T08:00:00+08:00',
    valueQuantity: quantity(95, 'mm[Hg]'),
    component: [{ code: { coding: [{ system: LOINC, code: '8462-4' }] } }],
  },
  {
    resourceType: 'Observation',
    id: 'glu1',
    status: 'final',
    code: { coding: [{ system: LOINC, code: '2345-7', display: 'Glucose' }], text: 'Glucose [Moles/volume]' },
    subject: { reference: 'Patient/p1' },
    performer: [{ reference: 'Practitioner/dr1' }],
    effectiveDateTime: '2024-03-01',
    valueQuantity: quantity(5.1, 'mmol/L'),
  },
  {
    resourceType: 'Observation',
    id: 'chol1',
    status: 'final',
    code: { coding: [{ system: LOINC, code: '2093-3' }] },
    subject: { reference: 'Patient/p3' },
    valueQuantity: quantity(180, 'mg/dL'),
  },
  {
    // Refers to its patient only by identifier.
    resourceType: 'Observation',
    id: 'note1',
    status: 'preliminary',
    code: { text: 'Free-text note' },
    subject: { identifier: { system: 'urn:mrn', value: 'M-2' } },
    valueString: 'Pain, left knee',
  },
  {
    resourceType: 'AuditEvent',
    id: 'ae1',
    type: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110110' },
    recorded: '2025-01-01T00:00:00Z',
    agent: [{ requestor: true, who: { reference: 'Practitioner/dr1' } }],
    source: { observer: { reference: 'Organization/org1' } },
    entity: [{ what: { reference: 'Observation/glu1' } }],
  },
  {
    resourceType: 'QuestionnaireResponse',
    id: 'qr1',
    status: 'completed',
    questionnaire: 'http://huimin.example/Questionnaire/intake|2.0',
    subject: { reference: 'Patient/p1' },
  },
  { resourceType: 'DocumentReference', id: 'doc0', status: 'superseded', content: [{ attachment: { contentType: 'text/plain', data: 'djE=' } }] },
  {
    resourceType: 'DocumentReference',
    id: 'doc1',
    status: 'current',
    content: [{ attachment: { contentType: 'text/plain', data: 'djI=' } }],
    relatesTo: [{ code: 'replaces', target: { reference: 'DocumentReference/doc0' } }],
  },
  { resourceType: 'ValueSet', id: 'vs1', status: 'active', url: 'http://huimin.example/fhir/ValueSet/lab' },
  { resourceType: 'ValueSet', id: 'vs2', status: 'active', url: 'http://huimin.example/fhir/ValueSet/lab/glucose' },
];

describe.each<Backend>(['postgres', 'pglite'])('what matches a search on %s', (backend) => {
  let server: TestServer;
  const api = () => request(server.app);
  /** Ids of the entries of one search mode, sorted, for a search that must succeed. */
  const ids = async (url: string, mode = 'match'): Promise<string[]> => {
    const res = await api().get(url);
    if (res.status !== 200) {
      throw new Error(`${url}: ${res.status} ${JSON.stringify(res.body)}`);
    }
    return ((res.body as Bundle).entry ?? [])
      .filter((e) => e.search?.mode === mode)
      .map((e) => e.resource?.id as string)
      .sort();
  };
  const refused = async (url: string): Promise<string> => {
    const res = await api().get(url);
    expect(res.status).toBe(400);
    return (res.body as OperationOutcome).issue?.[0]?.diagnostics ?? (res.body as OperationOutcome).issue?.[0]?.details?.text ?? '';
  };

  beforeAll(async () => {
    server = await createTestServer(backend);
    // AuditEvents are append-only over the API (only the platform writes them), so they are seeded in-process.
    const overTheApi = resources.filter((r) => r.resourceType !== 'AuditEvent');
    const res = await api().post('/fhir').set('Content-Type', FHIR_JSON).send({ resourceType: 'Bundle', type: 'transaction', entry: overTheApi.map(put) });
    expect(res.status).toBe(200);
    await server.repository.write(async (session) => {
      for (const r of resources.filter((x) => x.resourceType === 'AuditEvent')) {
        await session.update(r.resourceType, r.id as string, r);
      }
    });
  });
  afterAll(async () => {
    await server.close();
  });

  describe('chaining', () => {
    test.each([
      ['/fhir/Observation?subject:Patient.name=张', ['bp1', 'glu1']],
      ['/fhir/Observation?patient.name=zoe', ['sys2']],
      ['/fhir/Observation?patient.organization.name=huimin', ['bp1', 'glu1']],
      ['/fhir/Observation?subject:Patient.organization.name=eastern', ['sys2']],
      // Three links: the patient's organization is part of org1.
      ['/fhir/Observation?subject:Patient.organization.partof.name=huimin', ['sys2']],
      ['/fhir/Encounter?patient.general-practitioner:Practitioner.name=li', ['e1']],
      ['/fhir/Encounter?patient.general-practitioner:Practitioner.name=wang', []],
      // The last link keeps its modifiers and prefixes.
      ['/fhir/Observation?subject:Patient.name:exact=Zoë', ['sys2']],
      ['/fhir/Observation?subject:Patient.birthdate=lt1980', ['bp1', 'glu1']],
      ['/fhir/Observation?subject:Patient.gender:missing=true', ['sys2']],
      ['/fhir/Observation?subject:Patient._id=p2', ['sys2']],
      // AND of two chains, each on its own.
      ['/fhir/Observation?patient.name=张&patient.gender=male&code=2345-7', ['glu1']],
    ])('%s', async (url, expected) => {
      expect(await ids(url)).toEqual(expected);
    });

    test('an ambiguous chain, or one through a parameter that is not a reference, is a 400 that says why', async () => {
      expect(await refused('/fhir/Observation?subject.name=x')).toContain("'subject.name' is ambiguous: Observation.subject may refer to");
      expect(await refused('/fhir/Encounter?patient.general-practitioner.name=li')).toContain("name the type, e.g. 'general-practitioner:");
      expect(await refused('/fhir/Observation?code.name=x')).toContain('Observation has no reference search parameter');
      expect(await refused('/fhir/Observation?subject:Medication.code=x')).toContain('Observation.subject cannot refer to Medication');
      expect(await refused('/fhir/Observation?patient.foo=x')).toContain("has a search parameter 'foo'");
    });
  });

  describe('reverse chaining (_has)', () => {
    test.each([
      ['/fhir/Patient?_has:Observation:patient:code=8480-6', ['p2']],
      ['/fhir/Patient?_has:Observation:patient:code=http://loinc.org|85354-9,http://loinc.org|8480-6', ['p1', 'p2']],
      ['/fhir/Patient?_has:Observation:subject:value-quantity=gt5', ['p1', 'p2', 'p3']],
      ['/fhir/Patient?_has:Observation:subject:value-quantity=lt6', ['p1']],
      // Nested: patients with an observation that an audit event by dr1 is about.
      ['/fhir/Patient?_has:Observation:patient:_has:AuditEvent:entity:agent=Practitioner/dr1', ['p1']],
      // A chain inside _has.
      ['/fhir/Practitioner?_has:Observation:performer:subject:Patient.name=张', ['dr1']],
      ['/fhir/Encounter?_has:Observation:encounter:code=85354-9', ['e1']],
      ['/fhir/Organization?_has:Patient:organization:gender=male', ['org1']],
    ])('%s', async (url, expected) => {
      expect(await ids(url)).toEqual(expected);
    });

    test('a malformed _has is a 400', async () => {
      expect(await refused('/fhir/Patient?_has:Observation:patient=x')).toContain('expected _has:Type:reference-parameter:parameter');
      expect(await refused('/fhir/Patient?_has:Observation:code:status=final')).toContain('Observation has no reference search parameter');
      expect(await refused('/fhir/Patient?_has:Encounter:service-provider:status=x')).toContain('never refers to Patient');
    });
  });

  describe('modifiers', () => {
    test.each([
      // :missing on every type
      ['/fhir/Patient?gender:missing=true', ['p2']],
      ['/fhir/Patient?gender:missing=false', ['p1', 'p3']],
      ['/fhir/Patient?birthdate:missing=true', ['p2']],
      ['/fhir/Patient?organization:missing=true', ['p3']],
      ['/fhir/Patient?family:missing=false', ['p1', 'p2', 'p3']],
      ['/fhir/Observation?value-quantity:missing=true', ['bp1', 'note1']],
      ['/fhir/ValueSet?url:missing=false', ['vs1', 'vs2']],
      ['/fhir/Observation?code-value-quantity:missing=false', ['chol1', 'glu1', 'sys2']],
      ['/fhir/Observation?component-code-value-quantity:missing=true', ['chol1', 'glu1', 'note1', 'sys2']],
      // a reference with only an identifier is not missing
      ['/fhir/Observation?subject:missing=true', []],
      ['/fhir/Patient?_id:missing=false', ['p1', 'p2', 'p3']],
      // token :not also matches resources without a value (search.html)
      ['/fhir/Patient?gender:not=male', ['p2', 'p3']],
      ['/fhir/Patient?gender:not=male,female', ['p2']],
      // token :text against display and CodeableConcept.text, starts-with, any case
      ['/fhir/Observation?code:text=glucose', ['glu1']],
      ['/fhir/Observation?code:text=BLOOD', ['bp1']],
      ['/fhir/Observation?code:text=glucose [moles', ['glu1']],
      ['/fhir/Observation?code:text=free-text', ['note1']],
      // identifier :of-type
      [`/fhir/Patient?identifier:of-type=${V2_0203}|MR|M-1`, ['p1']],
      [`/fhir/Patient?identifier:of-type=${V2_0203}|MR|M-2`, []],
      [`/fhir/Patient?identifier:of-type=${V2_0203}|DL|M-2,${V2_0203}|MR|M-1`, ['p1', 'p2']],
      // reference :identifier
      ['/fhir/Observation?subject:identifier=urn:mrn|M-2', ['note1']],
      ['/fhir/Observation?subject:identifier=M-2', ['note1']],
      // reference :Type
      ['/fhir/Observation?subject:Patient=p1', ['bp1', 'glu1']],
      ['/fhir/Observation?subject:Group=p1', []],
      ['/fhir/Observation?performer:Practitioner=dr1', ['glu1']],
      // uri :above / :below
      ['/fhir/ValueSet?url:below=http://huimin.example/fhir/ValueSet/lab', ['vs1', 'vs2']],
      ['/fhir/ValueSet?url:above=http://huimin.example/fhir/ValueSet/lab/glucose/v2', ['vs1', 'vs2']],
      ['/fhir/ValueSet?url:above=http://huimin.example/fhir/ValueSet/lab', ['vs1']],
      ['/fhir/ValueSet?url=http://huimin.example/fhir/ValueSet/lab', ['vs1']],
      // canonical references: :below finds every version of a URL, :above the URLs a value starts with
      ['/fhir/QuestionnaireResponse?questionnaire:below=http://huimin.example/Questionnaire/intake', ['qr1']],
      ['/fhir/QuestionnaireResponse?questionnaire:below=http://huimin.example/Questionnaire/other', []],
      ['/fhir/QuestionnaireResponse?questionnaire:above=http://huimin.example/Questionnaire/intake|2.0|extra', ['qr1']],
      ['/fhir/QuestionnaireResponse?questionnaire=http://huimin.example/Questionnaire/intake|2.0', ['qr1']],
      // string: default starts-with ignoring case and accents; :exact as written; :contains anywhere
      ['/fhir/Patient?family=muller', ['p3']],
      ['/fhir/Patient?family=ZOE', ['p2']],
      ['/fhir/Patient?family:exact=Zoë', ['p2']],
      ['/fhir/Patient?family:exact=zoë', []],
      ['/fhir/Patient?family:exact=Zoe', []],
      ['/fhir/Patient?given:contains=mari', ['p2']],
      ['/fhir/Patient?given:contains=ARIE', ['p2']],
      ['/fhir/Patient?name:contains=ll', ['p3']],
      ['/fhir/Patient?family:contains=OË', ['p2']],
      ['/fhir/Patient?family:contains=üll', ['p3']],
    ])('%s', async (url, expected) => {
      expect(await ids(url)).toEqual(expected);
    });

    test('modifiers a type does not have, or that need terminology, are a 400 that names them', async () => {
      expect(await refused('/fhir/Patient?family:below=x')).toContain("'below' is not supported on string search parameter 'family'");
      expect(await refused('/fhir/Patient?gender:in=http://x/vs')).toContain('needs a terminology service');
      expect(await refused('/fhir/Patient?birthdate:exact=2000')).toContain("'exact' is not supported");
      expect(await refused('/fhir/Patient?identifier:of-type=MR|M-1')).toContain(':of-type takes type-system|type-code|value');
      expect(await refused('/fhir/Observation?subject:Foo=1')).toContain("':Foo' is not a FHIR R4 resource type");
      expect(await refused('/fhir/Patient?gender:missing=maybe')).toContain(':missing takes true or false');
    });
  });

  describe('OR, AND and escaping', () => {
    test.each([
      ['/fhir/Patient?family=zo,mu', ['p2', 'p3']],
      ['/fhir/Observation?subject=Patient/p2,Patient/p3', ['chol1', 'sys2']],
      ['/fhir/Observation?subject=p2&subject=Patient/p2', ['sys2']],
      ['/fhir/ValueSet?url=http://huimin.example/fhir/ValueSet/lab,http://nowhere/x', ['vs1']],
      ['/fhir/Patient?gender=male,female', ['p1', 'p3']],
      ['/fhir/Patient?_id=p1,p3', ['p1', 'p3']],
      ['/fhir/Patient?family=zo&family=mu', []],
      ['/fhir/Patient?birthdate=1970,1985', ['p1', 'p3']],
      ['/fhir/Patient?birthdate=lt1971,gt1984', ['p1', 'p3']],
      ['/fhir/Patient?birthdate=ge1970&birthdate=lt1980', ['p1']],
      ['/fhir/Observation?value-quantity=lt6,gt120', ['chol1', 'glu1']],
      ['/fhir/Observation?value-quantity=95,5.1', ['glu1', 'sys2']],
      // \, \| and \$ are literal characters of a value
      ['/fhir/Patient?identifier=urn:odd|a\\,b\\|c\\$d', ['p1']],
      ['/fhir/Patient?identifier=a\\,b\\|c\\$d', ['p1']],
      ['/fhir/Patient?identifier=urn:odd|a,b', []],
      ['/fhir/Observation?value-string=Pain\\, left', ['note1']],
      ['/fhir/Observation?value-string=Pain,left', ['note1']],
    ])('%s', async (url, expected) => {
      expect(await ids(url.replace(/\\/g, '%5C').replace(/\|/g, '%7C').replace(/\$/g, '%24'))).toEqual(expected);
    });
  });

  describe('quantity units', () => {
    test.each([
      // 5.1 mmol/L, in other units of the same dimension (UCUM canonical comparison)
      [`/fhir/Observation?value-quantity=0.0051|${UCUM}|mol/L`, ['glu1']],
      [`/fhir/Observation?value-quantity=5100|${UCUM}|umol/L`, ['glu1']],
      [`/fhir/Observation?value-quantity=gt0.005|${UCUM}|mol/L`, ['glu1']],
      [`/fhir/Observation?value-quantity=lt0.005|${UCUM}|mol/L`, []],
      [`/fhir/Observation?value-quantity=5.1|${UCUM}|mmol/L`, ['glu1']],
      // 180 mg/dL is 1.8 g/L and 1800 mg/L
      [`/fhir/Observation?value-quantity=1.8|${UCUM}|g/L`, ['chol1']],
      [`/fhir/Observation?value-quantity=ge1800|${UCUM}|mg/L`, ['chol1']],
      // a unit of another dimension matches nothing, whatever the number
      [`/fhir/Observation?value-quantity=5.1|${UCUM}|mmol`, []],
      // without a system, or in another system, the code is compared as written
      ['/fhir/Observation?value-quantity=5.1||mmol/L', ['glu1']],
      ['/fhir/Observation?value-quantity=0.0051||mol/L', []],
      ['/fhir/Observation?value-quantity=5.1|http://other/units|mmol/L', []],
      [`/fhir/Observation?code-value-quantity=2345-7$0.0051|${UCUM}|mol/L`, ['glu1']],
    ])('%s', async (url, expected) => {
      expect(await ids(url.replace(/\|/g, '%7C').replace(/\$/g, '%24'))).toEqual(expected);
    });
  });

  describe('composite parameters', () => {
    test.each([
      [`/fhir/Observation?code-value-quantity=${LOINC}|8480-6$gt90`, ['sys2']],
      [`/fhir/Observation?code-value-quantity=${LOINC}|8480-6$gt100`, []],
      [`/fhir/Observation?code-value-quantity=2345-7$5.1|${UCUM}|mmol/L`, ['glu1']],
      [`/fhir/Observation?component-code-value-quantity=${LOINC}|8480-6$gt100`, ['bp1']],
      // 85 is the diastolic component's value, not the systolic one's: the values must share a component.
      [`/fhir/Observation?component-code-value-quantity=${LOINC}|8480-6$85`, []],
      [`/fhir/Observation?component-code-value-quantity=${LOINC}|8462-4$85`, ['bp1']],
      // sys2 has a component 8462-4 without a value, and its own value 95: not a pair either.
      [`/fhir/Observation?combo-code-value-quantity=8462-4$95`, []],
      [`/fhir/Observation?combo-code-value-quantity=8480-6$gt90`, ['bp1', 'sys2']],
      [`/fhir/Observation?combo-code-value-quantity=8480-6$lt100,8462-4$85`, ['bp1', 'sys2']],
      [`/fhir/Observation?code-value-string=${LOINC}|x$pain`, []],
      // The date is Observation.value, not .effective.
      ['/fhir/Observation?code-value-date=85354-9$2024', []],
      ['/fhir/Patient?_has:Observation:patient:component-code-value-quantity=8480-6$gt100', ['p1']],
      // R4 swaps the component definitions of this one; the code comes first, as its expressions say.
      ['/fhir/DocumentReference?relationship=replaces$DocumentReference/doc0', ['doc1']],
      ['/fhir/DocumentReference?relationship=transforms$DocumentReference/doc0', []],
    ])('%s', async (url, expected) => {
      expect(await ids(url.replace(/\|/g, '%7C').replace(/\$/g, '%24'))).toEqual(expected);
    });

    test('the CapabilityStatement lists the composite parameters', async () => {
      const res = await api().get('/fhir/metadata');
      const observation = (res.body as CapabilityStatement).rest?.[0]?.resource?.find((r) => r.type === 'Observation');
      const composites = (observation?.searchParam ?? []).filter((p) => p.type === 'composite').map((p) => p.name);
      expect(composites).toEqual(
        expect.arrayContaining(['code-value-quantity', 'component-code-value-quantity', 'combo-code-value-quantity', 'code-value-concept']),
      );
    });

    test('a composite value with the wrong number of components is a 400', async () => {
      expect(await refused('/fhir/Observation?code-value-quantity=8480-6')).toContain("has 2 components separated by '$'");
    });
  });

  describe('_include and _revinclude', () => {
    test('* includes every reference, :iterate follows them on, and a match is never repeated as an include', async () => {
      expect(await ids('/fhir/Observation?_id=glu1&_include=Observation:*', 'include')).toEqual(['dr1', 'p1']);
      expect(await ids('/fhir/Observation?_id=glu1&_include=*', 'include')).toEqual(['dr1', 'p1']);
      expect(await ids('/fhir/Observation?_id=bp1&_include=Observation:*&_include:iterate=Patient:organization', 'include')).toEqual(['e1', 'org1', 'p1']);
      expect(await ids('/fhir/Organization?_id=org1&_revinclude=*', 'include')).toEqual(['ae1', 'org2', 'p1']);
      expect(await ids('/fhir/Patient?_id=p1&_revinclude=Observation:*&_revinclude:iterate=AuditEvent:entity', 'include')).toEqual(['ae1', 'bp1', 'glu1']);
      // Both patients match; each refers to an organization; org1 is also included through org2's partof.
      const url = '/fhir/Organization?_include=Organization:partof&_revinclude=Patient:organization';
      expect(await ids(url)).toEqual(['org1', 'org2']);
      expect(await ids(url, 'include')).toEqual(['p1', 'p2']);
    });

    test('a bad include is a 400', async () => {
      expect(await refused('/fhir/Observation?_include=Observation:status')).toContain('has no reference search parameter');
      expect(await refused('/fhir/Observation?_include=Foo:*')).toContain("'Foo' is not a FHIR R4 resource type");
      expect(await refused('/fhir/Observation?_include:recurse=Observation:subject')).toContain('the only modifier');
      expect(await refused('/fhir/Observation?_include=subject')).toContain('expected ResourceType:search-parameter');
    });
  });
});
