/** The institution list load: created, updated, unchanged, refused rows; parents later in the file; fields kept. */
import { Readable } from 'node:stream';
import type { Organization } from '@medplum/fhirtypes';
import request from 'supertest';
import type { TestServer } from '../../test/server';
import { loadInstitutionCsv, USCC_SYSTEM } from '..';
import { createRegistryServer } from './harness';

let server: TestServer;

beforeAll(async () => {
  server = await createRegistryServer();
});

afterAll(async () => {
  await server.close();
});

const CSV = `\uFEFFuscc,name,licence,alias,type,level_grade,division,address,phone,parent_uscc,active
12340100485960578H,惠民市第一人民医院,PDY00001X34010211A1001,市一院;一院,A1,3A,340104,合肥市蜀山区长江西路100号,0551-1234567,,true
52340100MJ00000015,南七街道社区卫生服务中心,,,B1,,340111,合肥市包河区,,12340100485960578H,
12340100485960578C,校验位错误的医院,,,A1,,340104,,,,
,没有信用代码的诊所,,,D2,,,,,,
12340100485960579F,等级代码错误的医院,,,A1,4A,340104,,,,
`;

const load = (text: string) => loadInstitutionCsv(server.repository, Readable.from([Buffer.from(text)]));

describe('loading the institution list', () => {
  it('reports every row: created, and refused with the registry\'s reasons', async () => {
    const report = await load(CSV);
    expect(report.counts).toEqual({ created: 2, updated: 0, unchanged: 0, error: 3 });
    expect(report.rows.map((r) => [r.line, r.outcome])).toEqual([
      [2, 'created'],
      [3, 'created'],
      [4, 'error'],
      [5, 'error'],
      [6, 'error'],
    ]);
    expect(report.rows[2].message).toMatch(/fails the GB 32100 check/);
    expect(report.rows[3].message).toMatch(/the uscc column is empty/);
    expect(report.rows[4].message).toMatch(/"4A" is not a code of http:\/\/huimin.health\/fhir\/CodeSystem\/hospital-level-grade/);
  });

  it('builds the Organization from the columns, the member part of its lead institution', async () => {
    const found = await request(server.app).get('/fhir/Organization').query({ identifier: `${USCC_SYSTEM}|52340100MJ00000015` });
    const member = found.body.entry[0].resource as Organization;
    const lead = (await request(server.app).get('/fhir/Organization').query({ identifier: `${USCC_SYSTEM}|12340100485960578H` })).body.entry[0].resource as Organization;
    expect(member.partOf?.reference).toBe(`Organization/${lead.id}`);
    expect(lead).toMatchObject({ name: '惠民市第一人民医院', alias: ['市一院', '一院'], active: true, telecom: [{ system: 'phone', value: '0551-1234567', use: 'work' }] });
    expect(lead.address?.[0]).toMatchObject({ text: '合肥市蜀山区长江西路100号', extension: [{ valueCoding: { code: '340104' } }] });
  });

  it('is idempotent: a second load changes nothing and writes no version', async () => {
    const report = await load(CSV);
    expect(report.counts).toEqual({ created: 0, updated: 0, unchanged: 2, error: 3 });
    const lead = (await request(server.app).get('/fhir/Organization').query({ identifier: `${USCC_SYSTEM}|12340100485960578H` })).body.entry[0].resource as Organization;
    expect(lead.meta?.versionId).toBe('1');
  });

  it('updates what the list changes and keeps what others added', async () => {
    const lead = (await request(server.app).get('/fhir/Organization').query({ identifier: `${USCC_SYSTEM}|12340100485960578H` })).body.entry[0].resource as Organization;
    const tagged = { ...lead, identifier: [...(lead.identifier ?? []), { system: 'urn:oid:2.16.156.10011.1.5', value: 'HM-HOSP-A' }], meta: { tag: [{ system: 'http://huimin.health/fhir/CodeSystem/platform-role', code: 'hl7-facility' }] } };
    expect((await request(server.app).put(`/fhir/Organization/${lead.id}`).set('Content-Type', 'application/fhir+json').send(tagged)).status).toBe(200);
    const report = await load(CSV.replace('0551-1234567', '0551-7654321'));
    expect(report.rows[0]).toMatchObject({ outcome: 'updated', id: lead.id });
    const after = (await request(server.app).get(`/fhir/Organization/${lead.id}`)).body as Organization;
    expect(after.telecom).toEqual([{ system: 'phone', value: '0551-7654321', use: 'work' }]);
    expect(after.identifier).toContainEqual({ system: 'urn:oid:2.16.156.10011.1.5', value: 'HM-HOSP-A' });
    expect(after.meta?.tag).toEqual([{ system: 'http://huimin.health/fhir/CodeSystem/platform-role', code: 'hl7-facility' }]);
  });

  it('takes a row whose parent comes later in the file after the others, and reports a parent that never comes', async () => {
    const text = `uscc,name,parent_uscc
91340100MA0000002X,后来的成员,91340100MA0000003Y
91340100MA0000003Y,后来的牵头医院,
91340100MA0000004A,没有上级的成员,91340100MA0000009Z
`.replace(/91340100MA000000(\d)./g, (_m, d) => {
      const { usccCheckCharacter } = jest.requireActual('..') as typeof import('..');
      return `91340100MA000000${d}${usccCheckCharacter(`91340100MA000000${d}`)}`;
    });
    const report = await load(text);
    expect(report.rows.map((r) => [r.line, r.outcome])).toEqual([
      [2, 'created'],
      [3, 'created'],
      [4, 'error'],
    ]);
    expect(report.rows[2].message).toMatch(/parent_uscc/);
  });

  it('reports malformed records at their line and loads the others', async () => {
    const report = await load('uscc,name\n12340100485960578H,惠民市第一人民医院\nx,y,z\n"unterminated,x\n');
    expect(report.rows.map((r) => [r.line, r.outcome])).toEqual([
      [2, 'unchanged'],
      [3, 'error'],
      [4, 'error'],
    ]);
    expect(report.rows[1].message).toMatch(/cannot be read: Invalid Record Length/);
    expect(report.rows[2].message).toMatch(/Quote Not Closed/);
  });
});
