/**
 * `$reindex` as an asynchronous job (issue 3): kick-off answers 202 with a status URL, the status reports progress
 * while the job waits or runs and the result when done, a job whose process died is resumed from its last
 * committed batch (neither skipping nor repeating one), a cancelled job is gone, and a search on a SearchParameter
 * that older resources are not yet reindexed with says so in its bundle. Instance-level `$reindex` stays
 * synchronous. The platform's own claim loop is off here: each test runs jobs with a worker of its own, as
 * another process would, so that it can look at a job before and while it runs.
 */
import pino from 'pino';
import request from 'supertest';
import type { Bundle, OperationOutcome, Parameters, Patient, SearchParameter } from '@medplum/fhirtypes';
import { DEFAULT_REINDEX, ReindexWorker } from '../reindex';
import { ReindexJobs } from '../reindex/jobs';
import { JobLost, runReindex } from '../reindex/runner';
import { createTestServer, TEST_PUBLIC_URL, type TestServer } from '../../test/server';

const FHIR_JSON = 'application/fhir+json';
const ETHNICITY_URL = 'http://huimin.health/fhir/StructureDefinition/ethnicity';
const DISTRICT_URL = 'http://huimin.health/fhir/StructureDefinition/birth-district';
const GB3304 = 'http://huimin.health/fhir/CodeSystem/gb3304';
const BATCH = 2;

const param = (code: string, type: SearchParameter['type'], expression: string): SearchParameter => ({
  resourceType: 'SearchParameter',
  id: `patient-${code}`,
  url: `http://huimin.health/fhir/SearchParameter/patient-${code}`,
  name: code,
  status: 'active',
  description: `${code} from a regional extension`,
  code,
  base: ['Patient'],
  type,
  expression,
});

const ethnicity = param('ethnicity', 'token', `Patient.extension.where(url='${ETHNICITY_URL}').value`);
const district = param('birth-district', 'string', `Patient.extension.where(url='${DISTRICT_URL}').value`);

/** Five patients, written before either parameter exists: ethnicity 01 for r1–r3, 02 for r4–r5; all born in 西湖区. */
const patients: Patient[] = [1, 2, 3, 4, 5].map((n) => ({
  resourceType: 'Patient',
  id: `r${n}`,
  extension: [
    { url: ETHNICITY_URL, valueCoding: { system: GB3304, code: n <= 3 ? '01' : '02' } },
    { url: DISTRICT_URL, valueString: '西湖区' },
  ],
}));

describe('asynchronous $reindex', () => {
  let server: TestServer;
  const api = () => request(server.app);
  const put = async (resource: Patient | SearchParameter) => {
    const res = await api().put(`/fhir/${resource.resourceType}/${resource.id}`).set('Content-Type', FHIR_JSON).send(resource);
    expect([200, 201]).toContain(res.status);
  };
  const searchBundle = async (url: string) => {
    const res = await api().get(url);
    expect(res.status).toBe(200);
    const bundle = res.body as Bundle;
    const matches = (bundle.entry ?? []).filter((e) => e.search?.mode === 'match').map((e) => e.resource?.id);
    const outcome = bundle.entry?.find((e) => e.search?.mode === 'outcome')?.resource as OperationOutcome | undefined;
    return { matches, incomplete: (outcome?.issue ?? []).filter((i) => i.code === 'incomplete') };
  };
  const kickOff = async (path: string) => {
    const res = await api().post(path).set('Content-Type', FHIR_JSON).set('Prefer', 'respond-async').send({ resourceType: 'Parameters' });
    expect(res.status).toBe(202);
    const location = res.headers['content-location'] as string;
    expect(location).toMatch(new RegExp(`^${TEST_PUBLIC_URL}/fhir/\\$reindex-status\\?_jobId=[0-9a-f]{32}$`));
    return { statusPath: location.slice(TEST_PUBLIC_URL.length), jobId: location.split('=')[1] };
  };
  /** Runs every waiting job as another platform process would. */
  const runWorker = async () => {
    const worker = new ReindexWorker(server.db, { ...DEFAULT_REINDEX, batchSize: BATCH }, pino({ level: 'silent' }));
    worker.start();
    await worker.idle();
    await worker.stop();
  };
  const result = async (statusPath: string): Promise<Parameters> => {
    const res = await api().get(statusPath);
    expect(res.status).toBe(200);
    const bundle = res.body as Bundle;
    expect(bundle.type).toBe('batch-response');
    expect(bundle.entry?.[0].response?.status).toBe('200 OK');
    return bundle.entry?.[0].resource as Parameters;
  };

  beforeAll(async () => {
    server = await createTestServer('postgres', { reindex: { runJobs: false, batchSize: BATCH } });
    for (const p of patients) {
      await put(p);
    }
  });
  afterAll(async () => {
    await server.close();
  });

  it('warns that a new parameter misses older resources until a reindex of their type finishes', async () => {
    await put(ethnicity);
    const before = await searchBundle('/fhir/Patient?ethnicity=01');
    expect(before.matches).toEqual([]);
    expect(before.incomplete).toHaveLength(1);
    expect(before.incomplete[0]).toMatchObject({ severity: 'warning', expression: ['ethnicity'] });
    expect(before.incomplete[0].diagnostics).toContain('SearchParameter/patient-ethnicity');
    // Wherever the parameter is used: a sort key, a chain's last parameter (on Patient, from Observation).
    expect((await searchBundle('/fhir/Patient?_sort=ethnicity')).incomplete).toHaveLength(1);
    expect((await searchBundle('/fhir/Observation?subject:Patient.ethnicity=01')).incomplete).toHaveLength(1);
    // A search that does not use it is not concerned.
    expect((await searchBundle('/fhir/Patient?_id=r1')).incomplete).toEqual([]);

    const { statusPath } = await kickOff('/fhir/Patient/$reindex');
    const waiting = await api().get(statusPath);
    expect(waiting.status).toBe(202);
    expect(waiting.headers['x-progress']).toBe('waiting for a worker');
    expect(waiting.headers['retry-after']).toBe('2');
    // Still pending while the job waits.
    expect((await searchBundle('/fhir/Patient?ethnicity=01')).incomplete).toHaveLength(1);

    await runWorker();
    expect((await result(statusPath)).parameter).toEqual([
      { name: 'resources', valueInteger: 5 },
      { name: 'type', part: [{ name: 'resourceType', valueCode: 'Patient' }, { name: 'resources', valueInteger: 5 }] },
    ]);
    const after = await searchBundle('/fhir/Patient?ethnicity=01');
    expect(after.matches).toEqual(['r1', 'r2', 'r3']);
    expect(after.incomplete).toEqual([]);
    expect((await searchBundle(`/fhir/Patient?ethnicity=${encodeURIComponent(`${GB3304}|02`)}`)).matches).toEqual(['r4', 'r5']);
  });

  it('reports progress, and resumes a job whose process died after its last committed batch', async () => {
    await put(district);
    expect((await searchBundle('/fhir/Patient?birth-district=西湖')).incomplete).toHaveLength(1);
    const { statusPath, jobId } = await kickOff('/fhir/Patient/$reindex');

    // A process claims the job, commits two batches (four patients), and dies before the third.
    const jobs = new ReindexJobs(server.db);
    const claimed = await jobs.claim('dead-process', DEFAULT_REINDEX.staleAfterMs, new Date());
    expect(claimed?.id).toBe(jobId);
    let batches = 0;
    await expect(runReindex(server.db, jobs, claimed!, 'dead-process', { batchSize: BATCH }, () => batches++ < 2)).rejects.toBeInstanceOf(JobLost);
    const running = await api().get(statusPath);
    expect(running.status).toBe(202);
    expect(running.headers['x-progress']).toMatch(/^Patient \(1 of 1 types\): 4 of about \d+; 4 resources reindexed in all$/);
    // Those four are searchable already, the fifth not yet; the parameter is still reported as incomplete.
    const partial = await searchBundle('/fhir/Patient?birth-district=西湖');
    expect(partial.matches).toEqual(['r1', 'r2', 'r3', 'r4']);
    expect(partial.incomplete).toHaveLength(1);

    // While its heartbeat is fresh, no other process takes it.
    await runWorker();
    expect((await api().get(statusPath)).status).toBe(202);
    // Its heartbeat goes stale: another process resumes it at the fifth patient.
    await server.db.query(`UPDATE reindex_job SET heartbeat_at = now() - interval '1 hour' WHERE id = $1`, [jobId]);
    await runWorker();
    expect((await result(statusPath)).parameter?.[0]).toEqual({ name: 'resources', valueInteger: 5 });
    const done = await searchBundle('/fhir/Patient?birth-district=西湖');
    expect(done.matches).toEqual(['r1', 'r2', 'r3', 'r4', 'r5']);
    expect(done.incomplete).toEqual([]);
  });

  it('cancels a job: its status is gone, and no worker runs it', async () => {
    const { statusPath, jobId } = await kickOff('/fhir/$reindex');
    expect((await api().delete(statusPath)).status).toBe(202);
    expect((await api().get(statusPath)).status).toBe(404);
    await runWorker();
    expect(await server.db.query('SELECT id FROM reindex_job WHERE id = $1', [jobId])).toEqual([]);
    expect((await api().get('/fhir/$reindex-status?_jobId=nonsense')).status).toBe(400);
  });

  it('reindexes one resource synchronously, and is open to administrators only', async () => {
    const one = await api().post('/fhir/Patient/r1/$reindex').set('Content-Type', FHIR_JSON).send({ resourceType: 'Parameters' });
    expect(one.status).toBe(200);
    expect((one.body as Parameters).parameter?.[0]).toEqual({ name: 'resources', valueInteger: 1 });
    expect((await api().post('/fhir/Patient/nobody/$reindex').set('Content-Type', FHIR_JSON).send({ resourceType: 'Parameters' })).status).toBe(404);

    const { token } = await server.tokenFor({ role: 'facility-system', organization: 'Organization/h1' });
    const refused = await request(server.rawApp).post('/fhir/Patient/$reindex').set('Authorization', `Bearer ${token}`).set('Content-Type', FHIR_JSON).send({ resourceType: 'Parameters' });
    expect(refused.status).toBe(403);
    expect(await server.db.query(`SELECT id FROM reindex_job WHERE status = 'accepted'`)).toEqual([]);
  });
});
