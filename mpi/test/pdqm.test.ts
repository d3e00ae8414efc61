/**
 * IHE PDQm (ITI-78) is ordinary Patient search: the parameters it names, with the modifiers it names, all answered
 * by the store; `mothersMaidenName`, which R4 lacks, is a SearchParameter the index installs.
 */
import type { Bundle, Patient } from '@medplum/fhirtypes';
import request from 'supertest';
import { MOTHERS_MAIDEN_NAME_PARAMETER } from '..';
import { startMpiPlatform, type MpiTestPlatform } from './platform';

const FHIR_JSON = 'application/fhir+json';
let p: MpiTestPlatform;
let id: string;

beforeAll(async () => {
  p = await startMpiPlatform();
  const patient: Patient = {
    resourceType: 'Patient',
    active: true,
    identifier: [{ system: 'urn:huimin:hl7:H1:mrn', value: 'P-1' }],
    name: [{ family: '欧阳', given: ['娜娜'] }, { family: 'Ouyang', given: ['Nana'] }],
    gender: 'female',
    birthDate: '1990-10-01',
    telecom: [{ system: 'phone', value: '13812345678' }],
    address: [{ line: ['芜湖路100号'], city: '合肥市', state: '安徽省', postalCode: '230001', country: 'CN' }],
    extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName', valueString: '林' }],
  };
  id = (await request(p.server.app).post('/fhir/Patient').set('Content-Type', FHIR_JSON).send(patient).expect(201)).body.id;
  await request(p.server.app).post('/fhir/Patient').set('Content-Type', FHIR_JSON).send({ resourceType: 'Patient', name: [{ family: '欧', given: ['阳'] }], gender: 'male', birthDate: '1950-01-01' }).expect(201);
});
afterAll(async () => {
  await p?.close();
});

it.each([
  '_id=ID',
  'active=true',
  'family=欧阳',
  'family:exact=欧阳',
  'given=娜娜',
  'given:contains=娜',
  'family=ouyang',
  'identifier=urn:huimin:hl7:H1:mrn|P-1',
  'telecom=13812345678',
  'birthdate=1990-10-01',
  'gender=female',
  'address=芜湖路',
  'address-city=合肥市',
  'address-state=安徽省',
  'address-postalcode=230001',
  'address-country=CN',
  'mothersMaidenName=林',
  'family=欧阳&given=娜娜&birthdate=1990-10-01&gender=female',
])('finds the patient by %s', async (query) => {
  const res = await request(p.server.app).get(`/fhir/Patient?${query.replace('ID', id)}&_count=10`).set('Prefer', 'handling=strict');
  expect(res.status).toBe(200);
  // The patient, and (once the index linked it) its golden record, which copies the demographics; not 欧阳's namesake 欧阳.
  // Matches only: a search on mothersMaidenName right after the index stored it may also carry an OperationOutcome
  // (search.mode outcome) warning that resources written before it are not indexed with it yet.
  const found = ((res.body as Bundle).entry ?? []).filter((e) => e.search?.mode === 'match').map((e) => e.resource as Patient);
  expect(found.map((f) => f.id)).toContain(id);
  expect(found.every((f) => f.id === id || f.link?.some((l) => l.other.reference === `Patient/${id}`))).toBe(true);
});

it('installs mothersMaidenName as a stored SearchParameter, listed in the CapabilityStatement', async () => {
  const meta = await request(p.server.app).get('/fhir/metadata');
  const patient = meta.body.rest[0].resource.find((r: { type: string }) => r.type === 'Patient');
  expect(patient.searchParam.map((s: { name: string }) => s.name)).toEqual(expect.arrayContaining(['mothersMaidenName', 'linked-records']));
  expect(patient.operation.map((o: { name: string }) => o.name)).toEqual(expect.arrayContaining(['match', 'ihe-pix', 'merge', 'mpi-review']));
  expect(MOTHERS_MAIDEN_NAME_PARAMETER.code).toBe('mothersMaidenName');
});
