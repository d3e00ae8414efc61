/**
 * The life of an export job: waiting and running (202 with X-Progress and Retry-After), completed (200 manifest
 * with Expires), failed (the error's status and OperationOutcome), cancelled by DELETE (files removed, a running
 * worker stops), taken over when its process died, shared by several processes, and expired (404, then removed).
 * The server of each test runs no jobs itself; the test drives workers on the same database, as other processes.
 */
import pino from 'pino';
import request from 'supertest';
import type { Backend } from '../../../test/databases';
import { createTestServer, type TestServer } from '../../../test/server';
import { BulkExportWorker, DEFAULT_BULK_EXPORT, type BulkExportSettings } from '../worker';
import { runExport, JobLost } from '../exporter';
import { BulkClient } from './helpers';

const FHIR_JSON = 'application/fhir+json';
const logger = pino({ level: 'silent' });

describe.each<Backend>(['postgres', 'pglite'])('export jobs on %s', (backend) => {
  let server: TestServer;
  let client: BulkClient;
  const workers: BulkExportWorker[] = [];

  /** Another process's claim loop, on the same database. */
  const worker = (settings: Partial<BulkExportSettings> = {}): BulkExportWorker => {
    const w = new BulkExportWorker(server.db, { ...DEFAULT_BULK_EXPORT, partSize: 2, pollIntervalMs: 60_000, ...settings, runJobs: true, baseUrl: server.baseUrl }, logger);
    workers.push(w);
    return w;
  };
  const runAll = async (w: BulkExportWorker): Promise<void> => {
    w.wake();
    await w.idle();
  };
  const partCount = async (jobId: string): Promise<number> =>
    Number((await server.db.query<{ n: number }>('SELECT count(*) AS n FROM bulk_export_part WHERE job_id = $1', [jobId]))[0].n);
  const jobIdOf = (pollUrl: string): string => new URL(pollUrl).searchParams.get('_jobId') as string;

  // Setting up a server and its data takes long on a busy machine: 5 minutes, not the default minute.
  beforeAll(async () => {
    server = await createTestServer(backend, { bulkExport: { runJobs: false, lifetimeS: 1 } });
    client = new BulkClient(server, server.adminToken);
    for (let i = 1; i <= 5; i++) {
      const res = await request(server.app).put(`/fhir/Patient/p${i}`).set('Content-Type', FHIR_JSON).send({ resourceType: 'Patient', id: `p${i}` });
      expect(res.status).toBe(201);
    }
  }, 300_000);
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop()));
  });
  afterAll(async () => {
    await server.close();
  });

  it('answers 202 with X-Progress and Retry-After while waiting and running, then 200 with the manifest and Expires', async () => {
    const poll = (await client.kickOff('/fhir/Patient/$export')).headers['content-location'];
    const waiting = await client.get(poll);
    expect(waiting.status).toBe(202);
    expect(waiting.headers['x-progress']).toBe('waiting for a worker');
    expect(waiting.headers['retry-after']).toBe('2');
    expect(waiting.text).toBe('');

    const w = worker();
    const job = await w.jobs.claim('another-process', 60_000);
    expect(job?.id).toBe(jobIdOf(poll));
    await w.jobs.beat(job!.id, 'another-process', 2, '2 resources exported; now Patient');
    const running = await client.get(poll);
    expect(running.status).toBe(202);
    expect(running.headers['x-progress']).toBe('2 resources exported; now Patient');
    // That process dies: it stops beating, and once its heartbeat is stale another takes the job and starts over.
    await server.db.query(`INSERT INTO bulk_export_part (job_id, kind, res_type, file_no, seq, lines, content) VALUES ($1, 'output', 'Patient', 1, 0, 1, '{"partial":true}\n')`, [job!.id]);
    const survivor = worker({ staleAfterMs: 100 });
    await new Promise((r) => setTimeout(r, 1200));
    await runAll(survivor);

    const done = await client.get(poll);
    expect(done.status).toBe(200);
    expect(done.headers['content-type']).toMatch(/^application\/json/);
    expect(Date.parse(done.headers.expires)).toBeGreaterThan(Date.now() - 1000);
    const manifest = JSON.parse(done.text);
    expect(manifest.output).toEqual([{ type: 'Patient', url: expect.stringContaining('/fhir/$export-file?'), count: 5 }]);
    expect((await client.lines(manifest.output[0].url)).map((p) => p.id)).toEqual(['p1', 'p2', 'p3', 'p4', 'p5']);
  });

  it('cancels a waiting export with DELETE: 202, then 404', async () => {
    const poll = (await client.kickOff('/fhir/$export?_type=Patient')).headers['content-location'];
    const cancelled = await client.delete(poll);
    expect(cancelled.status).toBe(202);
    expect(cancelled.body.resourceType).toBe('OperationOutcome');
    expect((await client.get(poll)).status).toBe(404);
    expect((await client.delete(poll)).status).toBe(404);
    const w = worker();
    await runAll(w);
    expect(await w.jobs.claim('nobody', 60_000)).toBeUndefined();
  });

  it('cancels a running export: its files are removed and the worker stops at its next part', async () => {
    const poll = (await client.kickOff('/fhir/$export?_type=Patient')).headers['content-location'];
    const w = worker();
    const job = (await w.jobs.claim('runner', 60_000))!;
    let parts = 0;
    const run = runExport(server.db, job, { partSize: 1, resourcesPerFile: 100, parallelism: 1, clockMarginMs: 0, baseUrl: server.baseUrl }, async (n, progress) => {
      parts++;
      if (parts === 2) {
        // Two parts written (on PostgreSQL not yet committed: a cancelled export's parts roll back).
        expect(n).toBe(2);
        expect((await client.delete(poll)).status).toBe(202);
      }
      return w.jobs.beat(job.id, 'runner', n, progress);
    });
    await expect(run).rejects.toBeInstanceOf(JobLost);
    expect(parts).toBe(2);
    expect(await partCount(job.id)).toBe(0);
    expect((await client.get(poll)).status).toBe(404);
  });

  it('answers a failed export with its error status and OperationOutcome', async () => {
    const poll = (await client.kickOff('/fhir/$export?_type=Patient')).headers['content-location'];
    // A search that passed the kick-off's checks but cannot run (here: a filter on a parameter removed since).
    await server.db.query(`UPDATE bulk_export_job SET spec = $2 WHERE id = $1`, [
      jobIdOf(poll),
      JSON.stringify({ level: 'system', types: ['Patient'], typeFilters: { Patient: ['birthdate=notadate'] } }),
    ]);
    await runAll(worker());
    const failed = await client.get(poll);
    expect(failed.status).toBe(400);
    expect(failed.body.resourceType).toBe('OperationOutcome');
  });

  it('shares jobs between processes: each runs once, and each process serves any job\'s files', async () => {
    const polls: string[] = [];
    for (const type of ['Patient', 'Patient', 'Patient']) {
      polls.push((await client.kickOff(`/fhir/$export?_type=${type}`)).headers['content-location']);
    }
    const [a, b] = [worker(), worker()];
    a.wake();
    b.wake();
    await Promise.all([a.idle(), b.idle()]);
    for (const poll of polls) {
      const manifest = JSON.parse((await client.get(poll)).text);
      expect(manifest.output).toEqual([expect.objectContaining({ type: 'Patient', count: 5 })]);
    }
  });

  it('expires: after the configured lifetime the status and files are 404, and cleanup removes them', async () => {
    const poll = (await client.kickOff('/fhir/$export?_type=Patient')).headers['content-location'];
    const w = worker({ lifetimeS: 1 });
    await runAll(w);
    const manifest = JSON.parse((await client.get(poll)).text);
    const id = jobIdOf(poll);
    expect(await partCount(id)).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 1500));
    expect((await client.get(poll)).status).toBe(404);
    expect((await client.get(manifest.output[0].url)).status).toBe(404);
    expect(await w.cleanup()).toBeGreaterThanOrEqual(1);
    expect(await partCount(id)).toBe(0);
    expect(await server.db.query('SELECT 1 FROM bulk_export_job WHERE id = $1', [id])).toHaveLength(0);
  });
});
