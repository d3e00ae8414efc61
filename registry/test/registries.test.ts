/**
 * The registries: identifier checks and the other write rules as precise OperationOutcomes, and the searches a
 * registration desk uses (identifier, name, partof, type, address, division, specialty, connection type).
 */
import type { Bundle, Organization, Practitioner } from '@medplum/fhirtypes';
import request from 'supertest';
import type { TestServer } from '../../test/server';
import { DIVISION_EXTENSION, installRegistryContent, INSTITUTION_LICENCE_SYSTEM, INSTITUTION_TYPE_SYSTEM, LEVEL_GRADE_SYSTEM, PHYSICIAN_LICENCE_SYSTEM, USCC_SYSTEM } from '..';
import { create, createRegistryServer } from './harness';

let server: TestServer;
let alliance: Organization;
let lead: Organization;
let member: Organization;
const DEPT = 'http://huimin.health/fhir/CodeSystem/clinical-department';

const post = (resource: object) => request(server.app).post(`/fhir/${(resource as { resourceType: string }).resourceType}`).set('Content-Type', 'application/fhir+json').send(resource);
const ids = (bundle: Bundle): string[] => (bundle.entry ?? []).map((e) => e.resource?.id as string).sort();
const division = (code: string) => [{ text: '合肥市', extension: [{ url: DIVISION_EXTENSION, valueCoding: { system: 'http://huimin.health/fhir/CodeSystem/gb-t-2260', code } }] }];

beforeAll(async () => {
  server = await createRegistryServer();
  alliance = await create(server, { resourceType: 'Organization', name: '蜀山区医共体', type: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/organization-type', code: 'other' }] }] });
  lead = await create(server, {
    resourceType: 'Organization',
    name: '惠民市第一人民医院',
    alias: ['市一院'],
    identifier: [
      { system: USCC_SYSTEM, value: '12340100485960578H' },
      { system: INSTITUTION_LICENCE_SYSTEM, value: 'PDY00001X34010211A1001' },
    ],
    type: [{ coding: [{ system: INSTITUTION_TYPE_SYSTEM, code: 'A1' }] }, { coding: [{ system: LEVEL_GRADE_SYSTEM, code: '3A' }] }],
    partOf: { reference: `Organization/${alliance.id}` },
    address: division('340104'),
  });
  member = await create(server, {
    resourceType: 'Organization',
    name: '南七街道社区卫生服务中心',
    type: [{ coding: [{ system: INSTITUTION_TYPE_SYSTEM, code: 'B1' }] }],
    partOf: { reference: `Organization/${alliance.id}` },
    address: division('340111'),
  });
});

afterAll(async () => {
  await server.close();
});

describe('registry content', () => {
  it('is in the store once: code systems, naming systems, the division parameter, the $render definition', async () => {
    expect(await installRegistryContent(server.repository)).toBe(0);
    const cs = await request(server.app).get('/fhir/CodeSystem').query({ url: 'http://huimin.health/fhir/CodeSystem/wst-500-document-type' });
    expect(cs.body.entry[0].resource.concept).toHaveLength(53);
    expect((await request(server.app).get('/fhir/OperationDefinition/DocumentReference-render')).body.code).toBe('render');
    expect((await request(server.app).get('/fhir/NamingSystem/uscc')).body.uniqueId[0].value).toBe(USCC_SYSTEM);
    expect((await request(server.app).get('/fhir/SearchParameter/registry-division')).body.code).toBe('division');
  });
});

describe('Organization rules', () => {
  it('refuses a USCC that fails the GB 32100 check, naming the element and the expected character', async () => {
    const res = await post({ resourceType: 'Organization', name: 'x', identifier: [{ system: 'http://example.org/other', value: 'a' }, { system: USCC_SYSTEM, value: '12340100485960578C' }] });
    expect(res.status).toBe(422);
    expect(res.body.issue).toEqual([
      expect.objectContaining({ severity: 'error', code: 'value', expression: ['Organization.identifier[1].value'], diagnostics: expect.stringMatching(/fails the GB 32100 check: its last character is "C" but the first 17 give "H"/) }),
    ]);
  });

  it('refuses a second Organization with a registered USCC', async () => {
    const res = await post({ resourceType: 'Organization', name: 'copy', identifier: [{ system: USCC_SYSTEM, value: '12340100485960578H' }] });
    expect(res.status).toBe(422);
    expect(res.body.issue[0]).toMatchObject({ code: 'duplicate', diagnostics: expect.stringContaining(`already registered to Organization/${lead.id}`) });
    // Updating the holder itself is no duplicate.
    const update = await request(server.app).put(`/fhir/Organization/${lead.id}`).set('Content-Type', 'application/fhir+json').send({ ...lead, telecom: [{ system: 'phone', value: '0551-1234567' }] });
    expect(update.status).toBe(200);
  });

  it('refuses codes that are not in the WS 218 or level code systems', async () => {
    const res = await post({ resourceType: 'Organization', name: 'x', type: [{ coding: [{ system: INSTITUTION_TYPE_SYSTEM, code: 'Z9' }] }, { coding: [{ system: LEVEL_GRADE_SYSTEM, code: '4A' }] }] });
    expect(res.status).toBe(422);
    expect(res.body.issue.map((i: { expression: string[] }) => i.expression[0])).toEqual(['Organization.type[0].coding[0]', 'Organization.type[1].coding[0]']);
  });

  it('refuses an administrative division that is not a GB/T 2260 code', async () => {
    const res = await post({ resourceType: 'Organization', name: 'x', address: division('3401') });
    expect(res.status).toBe(422);
    expect(res.body.issue[0].expression).toEqual(['Organization.address[0].extension[0].valueCoding']);
  });

  it('refuses a partOf that loops back', async () => {
    const res = await request(server.app).put(`/fhir/Organization/${alliance.id}`).set('Content-Type', 'application/fhir+json').send({ ...alliance, partOf: { reference: `Organization/${lead.id}` } });
    expect(res.status).toBe(422);
    expect(res.body.issue[0].diagnostics).toMatch(/would make Organization\/.* part of itself/);
  });
});

describe('registration desk searches', () => {
  const search = async (type: string, query: Record<string, string>): Promise<string[]> => {
    const res = await request(server.app).get(`/fhir/${type}`).query(query);
    expect(res.status).toBe(200);
    return ids(res.body as Bundle);
  };

  it('finds institutions by identifier, name, alias, type, level, alliance and division', async () => {
    expect(await search('Organization', { identifier: `${USCC_SYSTEM}|12340100485960578H` })).toEqual([lead.id]);
    expect(await search('Organization', { identifier: `${INSTITUTION_LICENCE_SYSTEM}|PDY00001X34010211A1001` })).toEqual([lead.id]);
    expect(await search('Organization', { 'name:contains': '人民医院' })).toEqual([lead.id]);
    expect(await search('Organization', { name: '市一院' })).toEqual([lead.id]);
    expect(await search('Organization', { type: `${INSTITUTION_TYPE_SYSTEM}|B1` })).toEqual([member.id]);
    expect(await search('Organization', { type: `${LEVEL_GRADE_SYSTEM}|3A` })).toEqual([lead.id]);
    expect(await search('Organization', { partof: `Organization/${alliance.id}` })).toEqual([lead.id, member.id].sort());
    expect(await search('Organization', { division: '340104' })).toEqual([lead.id]);
    expect(await search('Organization', { division: '3401' })).toEqual([lead.id, member.id].sort());
    expect(await search('Organization', { address: '合肥' })).toEqual([lead.id, member.id].sort());
  });

  it('finds practitioners by licence and name, and their roles by organisation and specialty', async () => {
    const doctor = await create<Practitioner>(server, { resourceType: 'Practitioner', identifier: [{ system: PHYSICIAN_LICENCE_SYSTEM, value: '110340100012345' }], name: [{ text: '王医生', family: '王' }] });
    const role = await create(server, { resourceType: 'PractitionerRole', practitioner: { reference: `Practitioner/${doctor.id}` }, organization: { reference: `Organization/${lead.id}` }, specialty: [{ coding: [{ system: DEPT, code: '03.04' }] }] });
    expect(await search('Practitioner', { identifier: `${PHYSICIAN_LICENCE_SYSTEM}|110340100012345` })).toEqual([doctor.id]);
    expect(await search('Practitioner', { name: '王' })).toEqual([doctor.id]);
    expect(await search('PractitionerRole', { organization: `Organization/${lead.id}`, specialty: `${DEPT}|03.04` })).toEqual([role.id]);
    expect(await search('PractitionerRole', { 'practitioner.identifier': `${PHYSICIAN_LICENCE_SYSTEM}|110340100012345` })).toEqual([role.id]);
  });

  it('finds the departments that take referrals for a specialty, and a hospital\'s MLLP endpoint', async () => {
    const cardiology = await create(server, { resourceType: 'HealthcareService', providedBy: { reference: `Organization/${lead.id}` }, name: '心血管内科', specialty: [{ coding: [{ system: DEPT, code: '03.04' }] }], referralMethod: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/service-referral-method', code: 'elec' }] }] });
    const endpoint = await create(server, { resourceType: 'Endpoint', status: 'active', connectionType: { system: 'http://terminology.hl7.org/CodeSystem/endpoint-connection-type', code: 'hl7v2-mllp' }, managingOrganization: { reference: `Organization/${lead.id}` }, payloadType: [{ text: 'HL7 v2' }], address: 'mllp://his.hospital-a.example:2575' });
    expect(await search('HealthcareService', { specialty: `${DEPT}|03.04`, organization: `Organization/${lead.id}` })).toEqual([cardiology.id]);
    expect(await search('HealthcareService', { 'organization.partof': `Organization/${alliance.id}` })).toEqual([cardiology.id]);
    expect(await search('HealthcareService', { specialty: `${DEPT}|03.04`, 'organization.division': '3401' })).toEqual([cardiology.id]);
    expect(await search('Endpoint', { organization: `Organization/${lead.id}`, 'connection-type': 'hl7v2-mllp', status: 'active' })).toEqual([endpoint.id]);
    const location = await create(server, { resourceType: 'Location', name: '门诊楼', managingOrganization: { reference: `Organization/${lead.id}` }, address: division('340104')[0] });
    expect(await search('Location', { organization: `Organization/${lead.id}`, division: '340104' })).toEqual([location.id]);
  });
});

describe('health workers, services and endpoints refused with the reason', () => {
  it('a physician licence that is not 15 digits, and a licence registered twice', async () => {
    const bad = await post({ resourceType: 'Practitioner', identifier: [{ system: PHYSICIAN_LICENCE_SYSTEM, value: '11034010001234' }] });
    expect(bad.status).toBe(422);
    expect(bad.body.issue[0].diagnostics).toMatch(/15 digits/);
    await create(server, { resourceType: 'Practitioner', identifier: [{ system: PHYSICIAN_LICENCE_SYSTEM, value: '110340100099999' }] });
    const twice = await post({ resourceType: 'Practitioner', identifier: [{ system: PHYSICIAN_LICENCE_SYSTEM, value: '110340100099999' }] });
    expect(twice.status).toBe(422);
    expect(twice.body.issue[0].code).toBe('duplicate');
  });

  it('a practitioner\'s resident ID with a wrong check digit', async () => {
    const res = await post({ resourceType: 'Practitioner', identifier: [{ system: 'urn:oid:2.16.156.10011.1.3', value: '340104198001011235' }] });
    expect(res.status).toBe(422);
    expect(res.body.issue[0].diagnostics).toMatch(/GB 11643 check.*should be "4"/);
  });

  it('a PractitionerRole without its organisation', async () => {
    const res = await post({ resourceType: 'PractitionerRole', practitioner: { display: 'x' } });
    expect(res.status).toBe(422);
    expect(res.body.issue[0].code).toBe('required');
  });

  it('a HealthcareService without providedBy, or whose specialty cannot be matched', async () => {
    const res = await post({ resourceType: 'HealthcareService', specialty: [{ coding: [{ code: '03.04' }] }, { coding: [{ system: DEPT, code: '99' }] }] });
    expect(res.status).toBe(422);
    expect(res.body.issue.map((i: { expression: string[] }) => i.expression[0])).toEqual(['HealthcareService.providedBy', 'HealthcareService.specialty[0].coding[0]', 'HealthcareService.specialty[1].coding[0]']);
  });

  it('endpoints whose address the platform cannot use', async () => {
    const mllp = await post({ resourceType: 'Endpoint', status: 'active', connectionType: { code: 'hl7v2-mllp' }, payloadType: [{ text: 'v2' }], managingOrganization: { reference: `Organization/${lead.id}` }, address: 'tcp://10.0.0.1:2575' });
    expect(mllp.status).toBe(422);
    expect(mllp.body.issue[0].diagnostics).toMatch(/mllp:\/\/host:port/);
    const fhir = await post({ resourceType: 'Endpoint', status: 'active', connectionType: { code: 'hl7-fhir-rest' }, payloadType: [{ text: 'FHIR' }], address: 'https://user:secret@fhir.example/r4' });
    expect(fhir.status).toBe(422);
    expect(fhir.body.issue.map((i: { code: string }) => i.code)).toEqual(['security', 'required']);
    const good = await post({ resourceType: 'Endpoint', status: 'active', connectionType: { code: 'hl7-fhir-rest' }, payloadType: [{ text: 'FHIR' }], managingOrganization: { reference: `Organization/${lead.id}` }, address: 'https://fhir.hospital-a.example/r4' });
    expect(good.status).toBe(201);
  });
});
