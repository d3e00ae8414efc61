/**
 * `$export` of Synthea R4 data (../shared/fixtures/synthea-r4, see its SOURCE.md), loaded through the store's
 * batch and transaction endpoint: the NDJSON line counts per type equal the stored counts (system level, and the
 * patient compartments at Patient level), every line is a whole resource of its file's type, and a Group of some
 * patients exports exactly what their `$everything` holds. The organisations and practitioners and the first
 * PATIENT_FILES patients are loaded: enough for files of several parts per type, at a quarter of the whole set's
 * load time (fixtures-synthea.test.ts loads all 47 and checks the store's counts).
 */
import type { Bundle } from '@medplum/fhirtypes';
import request from 'supertest';
import { createTestServer, type TestServer } from '../../../test/server';
import { describeWithFixtures, listFixtureFiles, mapWithConcurrency, readFixtureJson } from '../../../test/fixtures';
import { BulkClient, type Manifest } from './helpers';

const FHIR_JSON = 'application/fhir+json';
const SYNTHEA = 'synthea-r4';
const LONG = 900_000;
const PATIENT_FILES = 12;

/** Line counts per type over a manifest's files. */
function countsOf(manifest: Manifest): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const out of manifest.output) {
    counts[out.type] = (counts[out.type] ?? 0) + out.count;
  }
  return counts;
}

describeWithFixtures(SYNTHEA, '$export of the Synthea R4 set', () => {
  let server: TestServer;
  let admin: BulkClient;

  beforeAll(async () => {
    // Files of 500 resources, so that the larger types (Observation, Claim, …) span several.
    server = await createTestServer('postgres', { bulkExport: { resourcesPerFile: 500 } });
    admin = new BulkClient(server, server.adminToken);
    const files = listFixtureFiles(SYNTHEA, '.json');
    for (const file of files.filter((f) => f.startsWith('0-'))) {
      const res = await request(server.app).post('/fhir').set('Content-Type', FHIR_JSON).send(readFixtureJson<Bundle>(SYNTHEA, file));
      expect(res.status).toBe(200);
    }
    await mapWithConcurrency(
      files.filter((f) => !f.startsWith('0-')).slice(0, PATIENT_FILES),
      2,
      async (file) => {
        const res = await request(server.app).post('/fhir').set('Content-Type', FHIR_JSON).send(readFixtureJson<Bundle>(SYNTHEA, file));
        expect(res.status).toBe(200);
      },
    );
  }, LONG);
  afterAll(async () => {
    await server?.close();
  });

  /** Stored resources per type, as the store's count search answers. */
  async function storedCount(type: string): Promise<number> {
    const res = await request(server.app).get(`/fhir/${type}?_summary=count`);
    expect(res.status).toBe(200);
    return (res.body as Bundle).total as number;
  }

  it('exports the system: NDJSON line counts per type equal the stored counts', async () => {
    const manifest = await admin.export('/fhir/$export');
    const counts = countsOf(manifest);
    expect(counts.Patient).toBe(PATIENT_FILES);
    const types = (await server.db.query<{ res_type: string }>('SELECT DISTINCT res_type FROM resource WHERE NOT deleted')).map((r) => r.res_type).sort();
    expect(Object.keys(counts).sort()).toEqual(types);
    let lines = 0;
    for (const type of types) {
      expect({ type, count: counts[type] }).toEqual({ type, count: await storedCount(type) });
    }
    // Every file read back line by line: whole resources of the file's type, as many as the manifest says.
    for (const out of manifest.output) {
      const resources = await admin.lines(out.url);
      expect(resources).toHaveLength(out.count);
      expect(resources.every((r) => r.resourceType === out.type && typeof r.id === 'string')).toBe(true);
      lines += resources.length;
    }
    expect(lines).toBeGreaterThan(3_000);
    expect(manifest.output.filter((o) => o.type === 'Observation').length).toBeGreaterThan(1);
  }, LONG);

  it('exports every patient compartment at Patient level: counts equal the stored counts of those types', async () => {
    const manifest = await admin.export('/fhir/Patient/$export?_type=Patient,Encounter,Observation,Condition,Claim,ExplanationOfBenefit');
    const counts = countsOf(manifest);
    for (const type of ['Patient', 'Encounter', 'Observation', 'Condition', 'Claim', 'ExplanationOfBenefit']) {
      expect({ type, count: counts[type] }).toEqual({ type, count: await storedCount(type) });
    }
  }, LONG);

  it('exports a Group of three patients: exactly what their $everything holds', async () => {
    const patients = ((await request(server.app).get('/fhir/Patient?_count=3')).body as Bundle).entry?.map((e) => e.resource?.id as string) ?? [];
    expect(patients).toHaveLength(3);
    await request(server.app)
      .put('/fhir/Group/three')
      .set('Content-Type', FHIR_JSON)
      .send({ resourceType: 'Group', id: 'three', type: 'person', actual: true, member: patients.map((id) => ({ entity: { reference: `Patient/${id}` } })) })
      .expect(201);
    const expected: string[] = [];
    for (const id of patients) {
      let url: string | undefined = `/fhir/Patient/${id}/$everything?_count=1000`;
      while (url) {
        const page = (await request(server.app).get(url)).body as Bundle;
        expected.push(...(page.entry ?? []).map((e) => `${e.resource?.resourceType}/${e.resource?.id}`));
        const next = page.link?.find((l) => l.relation === 'next')?.url;
        url = next ? next.replace(/^https?:\/\/[^/]+/, '') : undefined;
      }
    }
    const exported = await admin.exported(await admin.export('/fhir/Group/three/$export'));
    // The Group itself is in its members' compartments (Group.member): both have it.
    expect(exported).toContain('Group/three');
    expect(exported).toEqual([...new Set(expected)].sort());
  }, LONG);
});
