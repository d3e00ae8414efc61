/**
 * Date search (search.html, "date" and "prefixes"): every prefix against date, dateTime, instant, Period (closed and
 * open) and Timing values, with implicit precision ranges and time zones. Expected ids are worked out by hand from
 * the ranges in the comments; `ap` is checked far enough from today that its 10% widening cannot reach another
 * value for decades.
 */
import type { Observation, Patient, Resource, ServiceRequest } from '@medplum/fhirtypes';
import type { Database } from '../db';
import { loadFhirDefinitions } from '../definitions';
import { compileSearch, extractIndexRows, parseSearch, queryRecord, replaceIndexRows, SqlParams } from '../search';
import { createTestDatabase, type Backend } from '../../test/databases';

const patient = (id: string, birthDate: string): Patient => ({ resourceType: 'Patient', id, birthDate });
const observation = (id: string, effective: Partial<Observation>): Observation => ({
  resourceType: 'Observation',
  id,
  status: 'final',
  code: { text: 'x' },
  ...effective,
});
const request = (id: string, occurrenceTiming: ServiceRequest['occurrenceTiming']): ServiceRequest => ({
  resourceType: 'ServiceRequest',
  id,
  status: 'active',
  intent: 'order',
  subject: { reference: 'Patient/y1980' },
  occurrenceTiming,
});

const resources: Resource[] = [
  patient('y1980', '1980'), // [1980-01-01, 1980-12-31T23:59:59.999Z]
  patient('m1980', '1980-05'), // May 1980
  patient('d1980', '1980-05-10'), // that day, UTC
  patient('y1990', '1990'),
  patient('y1970', '1970'),
  observation('dt', { effectiveDateTime: '2024-03-01T10:00:00+08:00' }), // the second 2024-03-01T02:00:00Z
  observation('inst', { effectiveInstant: '2024-03-01T02:00:00.123Z' }), // that millisecond
  observation('period', { effectivePeriod: { start: '2024-01-01', end: '2024-01-31' } }), // all of January
  observation('open', { effectivePeriod: { start: '2024-06-01' } }), // from June 2024 on, no end
  request('events', { event: ['2024-02-01', '2024-02-05'] }), // Feb 1 to the end of Feb 5
  request('bounds', { repeat: { boundsPeriod: { start: '2024-03-01', end: '2024-03-31' } } }), // March
];

describe.each<Backend>(['postgres', 'pglite'])('date search on %s', (backend) => {
  let db: Database;

  beforeAll(async () => {
    loadFhirDefinitions();
    db = await createTestDatabase(backend);
    await db.transaction(async (tx) => {
      for (const r of resources) {
        await tx.query(`INSERT INTO resource (res_type, id, version_id, last_updated, content) VALUES ($1, $2, 1, now(), $3)`, [
          r.resourceType,
          r.id,
          JSON.stringify(r),
        ]);
      }
      await replaceIndexRows(
        tx,
        resources.map((r) => ({ resourceType: r.resourceType, id: r.id as string, rows: extractIndexRows(r) })),
      );
    });
  });
  afterAll(async () => {
    await db.close();
  });

  async function search(url: string): Promise<string[]> {
    const [type, query] = url.split('?');
    const params = new SqlParams();
    const parsed = parseSearch(type, queryRecord(new URLSearchParams(query)));
    const { where } = compileSearch(parsed, params, { alias: 'r' });
    const sql = `SELECT r.id FROM resource r WHERE r.res_type = ${params.add(type)} ${where.map((w) => `AND ${w}`).join(' ')} ORDER BY r.id`;
    return (await db.query<{ id: string }>(sql, params.values)).map((row) => row.id);
  }

  test.each([
    // date values and their implicit ranges
    ['Patient?birthdate=1980', ['d1980', 'm1980', 'y1980']],
    ['Patient?birthdate=1980-05', ['d1980', 'm1980']],
    ['Patient?birthdate=eq1980-05-10', ['d1980']],
    ['Patient?birthdate=ne1980-05', ['y1970', 'y1980', 'y1990']],
    ['Patient?birthdate=gt1980-05-10', ['m1980', 'y1980', 'y1990']],
    ['Patient?birthdate=lt1980-05', ['y1970', 'y1980']],
    ['Patient?birthdate=ge1980-05-10', ['d1980', 'm1980', 'y1980', 'y1990']],
    ['Patient?birthdate=le1980-05-10', ['d1980', 'm1980', 'y1970', 'y1980']],
    ['Patient?birthdate=sa1980-05', ['y1990']],
    ['Patient?birthdate=eb1980-05', ['y1970']],
    ['Patient?birthdate=ap1980', ['d1980', 'm1980', 'y1980']],
    // a day is not inside one second of it
    ['Patient?birthdate=1980-05-10T10:00:00+08:00', []],
    // dateTime and instant, with time zones
    ['Observation?date=2024-03-01', ['dt', 'inst']],
    ['Observation?date=2024-03-01T10:00:00%2B08:00', ['dt', 'inst']],
    // an unencoded '+' arrives as a space, and is read as the '+' it was
    ['Observation?date=2024-03-01T10:00:00+08:00', ['dt', 'inst']],
    ['Observation?date=2024-02-29T22:00:00-04:00', ['dt', 'inst']],
    ['Observation?date=2024-03-01T09:59:59+08:00', []],
    ['Observation?date=2024-03-01T02:00:00.123Z', ['inst']],
    ['Observation?date=ge2024-03-01T02:00:00.124Z', ['dt', 'open']],
    ['Observation?date=2024-03-01T02:00Z', ['dt', 'inst']],
    // Periods: closed and open-ended
    ['Observation?date=2024', ['dt', 'inst', 'period']],
    ['Observation?date=2024-01', ['period']],
    ['Observation?date=2024-01-15', []],
    ['Observation?date=ne2024-01', ['dt', 'inst', 'open']],
    ['Observation?date=gt2024-01-15', ['dt', 'inst', 'open', 'period']],
    ['Observation?date=gt2024-03-01', ['open']],
    ['Observation?date=lt2024-01-15', ['period']],
    ['Observation?date=ge2024-03-01', ['dt', 'inst', 'open']],
    ['Observation?date=le2024-01', ['period']],
    ['Observation?date=sa2024-02', ['dt', 'inst', 'open']],
    ['Observation?date=eb2024-03', ['period']],
    ['Observation?date=eb2024-06-01', ['dt', 'inst', 'period']],
    ['Observation?date=sa2023', ['dt', 'inst', 'open', 'period']],
    ['Observation?date=gt2100', ['open']],
    // OR'ed values keep their own prefixes; AND by repetition
    ['Observation?date=2024-01,sa2024-05', ['open', 'period']],
    ['Observation?date=ge2024-01&date=lt2024-02', ['period']],
    // Timing: one range from the first to the last occurrence
    ['ServiceRequest?occurrence=2024-02-01', []],
    ['ServiceRequest?occurrence=2024-02', ['events']],
    ['ServiceRequest?occurrence=gt2024-02-03', ['bounds', 'events']],
    ['ServiceRequest?occurrence=2024-03', ['bounds']],
    ['ServiceRequest?occurrence=lt2024-02-02', ['events']],
  ])('%s', async (url, expected) => {
    expect(await search(url)).toEqual(expected);
  });
});
