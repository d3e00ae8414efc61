/**
 * Compiled searches run against real databases: PostgreSQL and PGlite, with the same resources indexed through
 * replaceIndexRows, must return the same ids for every parameter type, modifier and prefix.
 */
import { OperationOutcomeError, parseSearchRequest, type Operator, type SearchRequest } from '@medplum/core';
import type { Observation, Patient, Resource, RiskAssessment, ValueSet } from '@medplum/fhirtypes';
import type { Database } from '../db';
import { loadFhirDefinitions } from '../definitions';
import { compartmentsOf, compileSearch, deleteIndexRows, extractIndexRows, orderByClause, replaceIndexRows, SqlParams } from '../search';
import { createTestDatabase, type Backend } from '../../test/databases';

const BASE = 'https://huimin.example/fhir';

const patients: Patient[] = [
  {
    resourceType: 'Patient',
    id: 'p1',
    meta: { tag: [{ system: 'http://huimin/tags', code: 'vip' }], profile: ['http://huimin/sd/patient'], source: 'http://huimin/his' },
    name: [{ family: '张', given: ['伟'], text: '张伟' }],
    gender: 'male',
    birthDate: '1980-05-10',
    identifier: [{ system: 'urn:mrn', value: 'M1' }],
    managingOrganization: { reference: 'Organization/org1' },
  },
  {
    resourceType: 'Patient',
    id: 'p2',
    meta: { security: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' }] },
    name: [{ family: 'Zoë', given: ['Élodie'] }],
    gender: 'female',
    birthDate: '1992',
    identifier: [{ system: 'urn:mrn', value: 'M2' }, { value: 'X9' }],
    generalPractitioner: [{ reference: 'Practitioner/dr1' }],
  },
  {
    resourceType: 'Patient',
    id: 'p3',
    name: [{ family: 'Zhang', given: ['Wei'] }],
    gender: 'male',
    birthDate: '2001-01-01',
    managingOrganization: { reference: `${BASE}/Organization/org3` },
  },
  { resourceType: 'Patient', id: 'p4', name: [{ family: "O'Brien_%" }] },
];

const observations: Observation[] = [
  {
    resourceType: 'Observation',
    id: 'o1',
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '29463-7', display: 'Body weight' }] },
    subject: { reference: 'Patient/p1' },
    effectiveDateTime: '2024-03-01T10:00:00Z',
    valueQuantity: { value: 5.4, unit: 'milligram', system: 'http://unitsofmeasure.org', code: 'mg' },
  },
  {
    resourceType: 'Observation',
    id: 'o2',
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '8480-6' }] },
    subject: { reference: 'Patient/p2' },
    effectivePeriod: { start: '2023-01-01' },
    valueQuantity: { value: 120, unit: 'mmHg' },
  },
  {
    resourceType: 'Observation',
    id: 'o3',
    status: 'preliminary',
    code: { text: 'Weight note' },
    subject: { reference: 'Patient/p3' },
  },
];

const others: Resource[] = [
  { resourceType: 'RiskAssessment', id: 'r1', status: 'final', subject: { reference: 'Patient/p1' }, prediction: [{ probabilityDecimal: 0.02 }] } as RiskAssessment,
  { resourceType: 'RiskAssessment', id: 'r2', status: 'final', subject: { reference: 'Patient/p2' }, prediction: [{ probabilityDecimal: 0.5 }] } as RiskAssessment,
  { resourceType: 'ValueSet', id: 'v1', status: 'active', url: 'http://huimin/vs/a' } as ValueSet,
  { resourceType: 'ValueSet', id: 'v2', status: 'active', url: 'http://huimin/vs/b' } as ValueSet,
  { resourceType: 'ValueSet', id: 'v3', status: 'active', url: 'http://elsewhere/vs' } as ValueSet,
];

/** last_updated per resource, for _lastUpdated and its sort. */
const UPDATED: Record<string, string> = { p1: '2024-01-01T00:00:00Z', p2: '2024-06-01T00:00:00Z', p3: '2025-01-01T00:00:00Z' };

async function load(db: Database, resources: Resource[]): Promise<void> {
  await db.transaction(async (tx) => {
    const items = resources.map((r) => ({ resourceType: r.resourceType, id: r.id as string, rows: extractIndexRows(r) }));
    for (const [i, r] of resources.entries()) {
      await tx.query(
        `INSERT INTO resource (res_type, id, version_id, last_updated, content, compartments) VALUES ($1, $2, 1, $3, $4, $5)`,
        [r.resourceType, r.id, UPDATED[r.id as string] ?? new Date().toISOString(), JSON.stringify(r), compartmentsOf(r, items[i].rows)],
      );
    }
    await replaceIndexRows(tx, items);
  });
}

async function run(db: Database, request: SearchRequest): Promise<string[]> {
  const params = new SqlParams();
  const type = params.add(request.resourceType);
  const { where, orderBy } = compileSearch(request, params, { alias: 'r', baseUrl: BASE });
  const sql =
    `SELECT r.id FROM resource r WHERE r.res_type = ${type} AND NOT r.deleted` +
    where.map((w) => ` AND ${w}`).join('') +
    ` ORDER BY ${orderByClause(orderBy)}`;
  return (await db.query<{ id: string }>(sql, params.values)).map((row) => row.id);
}

const search = (db: Database, url: string) => run(db, parseSearchRequest(url));

describe.each<Backend>(['postgres', 'pglite'])('search on %s', (backend) => {
  let db: Database;

  beforeAll(async () => {
    loadFhirDefinitions();
    db = await createTestDatabase(backend);
    await load(db, [...patients, ...observations, ...others]);
  });

  afterAll(async () => {
    await db.close();
  });

  test.each([
    ['Patient?family=zhang', ['p3']],
    ['Patient?family=张', ['p1']],
    ['Patient?name=伟', ['p1']],
    ['Patient?name=张伟', ['p1']],
    ['Patient?family=zoe', ['p2']],
    ['Patient?family=ZOË', ['p2']],
    ['Patient?given=elo', ['p2']],
    ['Patient?family:exact=Zoë', ['p2']],
    ['Patient?family:exact=zoë', []],
    ['Patient?family:contains=rie', ['p4']],
    ['Patient?family:contains=_', ['p4']],
    ['Patient?family=o%27brien_%25', ['p4']],
    ['Patient?family=zhang,zoe', ['p2', 'p3']],
    ['Patient?name=zh&given=wei', ['p3']],
    ['Patient?name=zh&given=elodie', []],
  ])('string %s', async (url, ids) => {
    expect(await search(db, url)).toEqual(ids);
  });

  test.each([
    ['Patient?gender=male', ['p1', 'p3']],
    ['Patient?gender=male,female', ['p1', 'p2', 'p3']],
    ['Patient?gender:not=male', ['p2', 'p4']],
    ['Patient?gender:missing=true', ['p4']],
    ['Patient?gender:missing=false', ['p1', 'p2', 'p3']],
    ['Patient?identifier=urn:mrn|M1', ['p1']],
    ['Patient?identifier=M2', ['p2']],
    ['Patient?identifier=|X9', ['p2']],
    ['Patient?identifier=|M1', []],
    ['Patient?identifier=urn:mrn|', ['p1', 'p2']],
    ['Patient?_tag=http://huimin/tags|vip', ['p1']],
    ['Patient?_security=R', ['p2']],
    ['Patient?_id=p1,p3', ['p1', 'p3']],
    ['Patient?_id:not=p1', ['p2', 'p3', 'p4']],
    ['Observation?code=http://loinc.org|29463-7', ['o1']],
    ['Observation?code:text=body', ['o1']],
    ['Observation?code:text=weight', ['o3']],
    ['Observation?status=final', ['o1', 'o2']],
  ])('token %s', async (url, ids) => {
    expect(await search(db, url)).toEqual(ids);
  });

  test.each([
    ['Patient?birthdate=1980', ['p1']],
    ['Patient?birthdate=1980-05', ['p1']],
    ['Patient?birthdate=1980-05-11', []],
    ['Patient?birthdate=ne1980', ['p2', 'p3']],
    ['Patient?birthdate=gt1990', ['p2', 'p3']],
    ['Patient?birthdate=lt1990-01-01', ['p1']],
    ['Patient?birthdate=ge1992', ['p2', 'p3']],
    ['Patient?birthdate=le1992', ['p1', 'p2']],
    ['Patient?birthdate=sa1992', ['p3']],
    ['Patient?birthdate=eb1992', ['p1']],
    ['Patient?birthdate=ap1992-06', ['p2']],
    ['Patient?birthdate=ap9999', []],
    ['Patient?birthdate=gt1990&birthdate=lt2000', ['p2']],
    ['Patient?birthdate:missing=true', ['p4']],
    ['Observation?date=2024', ['o1']],
    ['Observation?date=ge2023', ['o1', 'o2']],
    ['Observation?date=sa2022', ['o1', 'o2']],
    ['Observation?date=eb2024', []],
    ['Observation?date=2024-03-01T18:00:00%2B08:00', ['o1']],
    ['Patient?_lastUpdated=gt2024-03', ['p2', 'p3', 'p4']],
    ['Patient?_lastUpdated=2024', ['p1', 'p2']],
    ['Patient?_lastUpdated=lt2024-06-01T00:00:00Z', ['p1']],
  ])('date %s', async (url, ids) => {
    expect(await search(db, url)).toEqual(ids);
  });

  test.each([
    ['RiskAssessment?probability=0.02', ['r1']],
    ['RiskAssessment?probability=0.020', ['r1']],
    ['RiskAssessment?probability=0.03', []],
    ['RiskAssessment?probability=gt0.1', ['r2']],
    ['RiskAssessment?probability=le0.02', ['r1']],
    ['RiskAssessment?probability=ne0.5', ['r1']],
    ['RiskAssessment?probability=ap0.48', ['r2']],
    ['Observation?value-quantity=5.4', ['o1']],
    ['Observation?value-quantity=5', ['o1']],
    ['Observation?value-quantity=5.40', ['o1']],
    ['Observation?value-quantity=5.41', []],
    ['Observation?value-quantity=5.4|http://unitsofmeasure.org|mg', ['o1']],
    ['Observation?value-quantity=5.4||mg', ['o1']],
    ['Observation?value-quantity=5.4||g', []],
    ['Observation?value-quantity=120||mmHg', ['o2']],
    ['Observation?value-quantity=gt100', ['o2']],
    ['Observation?value-quantity=lt6', ['o1']],
    ['Observation?value-quantity=ap5', ['o1']],
    ['Observation?value-quantity=ne5.4', ['o2']],
    ['Observation?value-quantity:missing=true', ['o3']],
  ])('number and quantity %s', async (url, ids) => {
    expect(await search(db, url)).toEqual(ids);
  });

  test.each([
    ['Patient?organization=Organization/org1', ['p1']],
    ['Patient?organization=org1', ['p1']],
    [`Patient?organization=${BASE}/Organization/org1`, ['p1']],
    [`Patient?organization=${BASE}/Organization/org3`, ['p3']],
    ['Patient?general-practitioner=Practitioner/dr1', ['p2']],
    ['Patient?general-practitioner:missing=true', ['p1', 'p3', 'p4']],
    ['Observation?subject=Patient/p1,Patient/p2', ['o1', 'o2']],
    ['Observation?patient=p3', ['o3']],
    ['Observation?_compartment=Patient/p2', ['o2']],
  ])('reference %s', async (url, ids) => {
    expect(await search(db, url)).toEqual(ids);
  });

  test('reference with a :Type modifier', async () => {
    const request = (type: string): SearchRequest => ({
      resourceType: 'Observation',
      filters: [{ code: 'subject', operator: type as Operator, value: 'p1' }],
    });
    expect(await run(db, request('Patient'))).toEqual(['o1']);
    expect(await run(db, request('Group'))).toEqual([]);
  });

  test.each([
    ['ValueSet?url=http://huimin/vs/a', ['v1']],
    ['ValueSet?url:below=http://huimin/vs', ['v1', 'v2']],
    ['ValueSet?url:above=http://huimin/vs/a/extra', ['v1']],
    ['Patient?_profile=http://huimin/sd/patient', ['p1']],
    ['Patient?_source:below=http://huimin/', ['p1']],
  ])('uri %s', async (url, ids) => {
    expect(await search(db, url)).toEqual(ids);
  });

  test.each([
    ['Patient?_sort=birthdate', ['p1', 'p2', 'p3', 'p4']],
    ['Patient?_sort=-birthdate', ['p3', 'p2', 'p1', 'p4']],
    ['Patient?_sort=gender,-birthdate', ['p2', 'p3', 'p1', 'p4']],
    ['Patient?_sort=-_lastUpdated&_id=p1,p2,p3', ['p3', 'p2', 'p1']],
    ['Patient?_sort=-_id', ['p4', 'p3', 'p2', 'p1']],
    ['Observation?_sort=-value-quantity', ['o2', 'o1', 'o3']],
    ['Observation?_sort=code', ['o1', 'o2', 'o3']],
    ['RiskAssessment?_sort=-probability', ['r2', 'r1']],
    ['Patient?_sort=family&family=z', ['p3', 'p2']],
    ['Patient?_sort=general-practitioner', ['p2', 'p1', 'p3', 'p4']],
    ['ValueSet?_sort=-url', ['v2', 'v1', 'v3']],
  ])('sort %s', async (url, ids) => {
    expect(await search(db, url)).toEqual(ids);
  });

  test.each([
    ['Patient?foo=bar', "Unknown search parameter 'foo' for resource type Patient"],
    ['Patient?family:below=x', "Modifier or prefix 'below' is not supported on string search parameter 'family'"],
    ['Patient?gender:missing=maybe', "Invalid value 'maybe' for search parameter 'gender': :missing takes true or false"],
    ['Patient?_sort=foo', "Unknown search parameter 'foo' for resource type Patient"],
    ['Observation?subject.name=x', "'subject.name' is ambiguous: Observation.subject may refer to"],
  ])('bad request %s', async (url, message) => {
    let error: unknown;
    try {
      await search(db, url);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(OperationOutcomeError);
    const outcome = (error as OperationOutcomeError).outcome;
    expect(outcome.issue?.[0]?.code).toBe('invalid');
    expect(outcome.issue?.[0]?.details?.text).toContain(message);
  });

  test('composite parameters are compiled from a filter built by hand (medplum\'s parser refuses them)', async () => {
    const request: SearchRequest = {
      resourceType: 'Observation',
      filters: [{ code: 'code-value-quantity', operator: 'eq', value: 'http://loinc.org|29463-7$5.4' }],
    };
    expect(await run(db, request)).toEqual(['o1']);
  });

  test('replaceIndexRows is set-based: one delete and at most one insert per table for a whole batch', async () => {
    const statements: string[] = [];
    await db.transaction(async (tx) => {
      const counting = {
        query: <T>(sql: string, values?: unknown[]) => {
          statements.push(sql);
          return tx.query<T>(sql, values);
        },
        exec: (sql: string) => tx.exec(sql),
      };
      const batch = [...patients, ...observations].map((r) => ({ resourceType: r.resourceType, id: r.id as string, rows: extractIndexRows(r) }));
      await replaceIndexRows(counting, batch);
    });
    expect(statements.filter((s) => s.includes('DELETE'))).toHaveLength(1);
    expect(statements.filter((s) => s.startsWith('INSERT')).length).toBeLessThanOrEqual(7);
    expect(await search(db, 'Patient?family=zhang')).toEqual(['p3']);
  });

  test('replaceIndexRows replaces, deleteIndexRows removes', async () => {
    const renamed: Patient = { ...patients[2], name: [{ family: 'Li' }] };
    await db.transaction((tx) => replaceIndexRows(tx, [{ resourceType: 'Patient', id: 'p3', rows: extractIndexRows(renamed) }]));
    expect(await search(db, 'Patient?family=zhang')).toEqual([]);
    expect(await search(db, 'Patient?family=li')).toEqual(['p3']);
    await db.transaction((tx) => deleteIndexRows(tx, [{ resourceType: 'Patient', id: 'p3' }]));
    expect(await search(db, 'Patient?family=li')).toEqual([]);
    const left = await db.query<{ n: number }>(
      `SELECT (SELECT count(*) FROM search_string WHERE res_id = 'p3') + (SELECT count(*) FROM search_date WHERE res_id = 'p3')
        + (SELECT count(*) FROM search_token WHERE res_id = 'p3') + (SELECT count(*) FROM search_reference WHERE res_id = 'p3') AS n`,
    );
    expect(Number(left[0].n)).toBe(0);
    await db.transaction((tx) => replaceIndexRows(tx, [{ resourceType: 'Patient', id: 'p3', rows: extractIndexRows(patients[2]) }]));
    expect(await search(db, 'Patient?family=zhang')).toEqual(['p3']);
  });
});
