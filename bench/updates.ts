/**
 * `npm run bench:updates`: sustained If-Match updates of Patients, which the shared harness only samples (its update
 * phase is 200 requests, over in a fraction of a second). Starts the platform on a fresh database (bench/platform.ts),
 * creates the Patients in transaction bundles, then for `--duration` seconds PUTs each Patient with the version it
 * last got back, from `--concurrency` clients. Besides throughput and latency it reports the CPU time the platform's
 * processes and its PostgreSQL backends spent per update (from /proc), which a busy machine distorts less than
 * throughput. Prints its figures; does not rewrite docs/performance.md.
 *
 *   npm run bench:updates -- --patients 200 --concurrency 8 --duration 15
 */
import { readdirSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { Bundle, Patient } from '@medplum/fhirtypes';
import pg from 'pg';
import { startPlatform } from './platform';

const { values: opt } = parseArgs({
  options: {
    patients: { type: 'string', default: '200' },
    concurrency: { type: 'string', default: '8' },
    duration: { type: 'string', default: '15' },
    /** Seconds to wait after the creates, so that the change-event consumers (the MPI linking) have settled. */
    settle: { type: 'string', default: '10' },
  },
});
const PATIENTS = Number(opt.patients);
const CONCURRENCY = Number(opt.concurrency);
const DURATION_MS = Number(opt.duration) * 1000;
const SETTLE_MS = Number(opt.settle) * 1000;
const CLOCK_TICKS_PER_S = 100;

/** utime + stime of a process in clock ticks (0 when it has gone). */
function cpuTicks(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

/** A process and all its descendants (the platform's cluster workers). */
function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const parent = Number(readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1].split(' ')[1]);
      children.set(parent, [...(children.get(parent) ?? []), Number(entry)]);
    } catch {
      // the process ended while the list was read
    }
  }
  const out: number[] = [];
  const walk = (pid: number): void => {
    out.push(pid);
    (children.get(pid) ?? []).forEach(walk);
  };
  walk(root);
  return out;
}

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? 0;

async function main(): Promise<void> {
  const platform = await startPlatform(Number(process.env.BENCH_PORT ?? 18081));
  const admin = new pg.Client({ connectionString: platform.databaseUrl });
  await admin.connect();
  const databaseName = new URL(platform.databaseUrl).pathname.slice(1);
  const cpu = async (): Promise<{ app: number; db: number }> => {
    const backends = await admin.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [databaseName]);
    const app = processTree(platform.pid).reduce((sum, pid) => sum + cpuTicks(pid), 0);
    const db = backends.rows.reduce((sum, row) => sum + cpuTicks(row.pid), 0);
    return { app, db };
  };
  const headers = { accept: 'application/fhir+json', 'content-type': 'application/fhir+json', authorization: `Bearer ${platform.token}` };
  try {
    const patients: Patient[] = [];
    for (let first = 0; first < PATIENTS; first += 50) {
      const entry = Array.from({ length: Math.min(50, PATIENTS - first) }, (_, k) => {
        const i = first + k;
        const patient: Patient = {
          resourceType: 'Patient',
          identifier: [{ system: 'urn:huimin-bench:patient', value: `update-${i}` }],
          name: [{ use: 'official', family: `Update${i % 50}`, given: ['Ann'] }],
          gender: i % 2 ? 'female' : 'male',
          birthDate: `19${50 + (i % 49)}-0${1 + (i % 9)}-1${i % 10}`,
          address: [{ city: 'Springfield', postalCode: String(10000 + i) }],
        };
        return { resource: patient, request: { method: 'POST' as const, url: 'Patient' } };
      });
      const res = await fetch(`${platform.baseUrl}`, { method: 'POST', headers, body: JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry }) });
      if (res.status !== 200) throw new Error(`creating Patients: HTTP ${res.status} ${(await res.text()).slice(0, 300)}`);
      patients.push(...(((await res.json()) as Bundle).entry ?? []).map((e) => e.resource as Patient));
    }
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    // The consumers may have written a Patient since its create: start from the current versions.
    const current = await Promise.all(patients.map(async (p) => (await (await fetch(`${platform.baseUrl}/Patient/${p.id}`, { headers })).json()) as Patient));
    const latencies: number[] = [];
    let failed = 0;
    let conflicts = 0;
    let phone = 0;
    const load0 = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    const before = await cpu();
    const start = performance.now();
    const end = start + DURATION_MS;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async (_, worker) => {
        for (let k = worker; performance.now() < end; k += CONCURRENCY) {
          const j = k % current.length;
          const patient = current[j];
          const body = { ...patient, telecom: [{ system: 'phone', value: `555-${phone++}`, use: 'home' }] };
          const t0 = performance.now();
          const res = await fetch(`${platform.baseUrl}/Patient/${patient.id}`, {
            method: 'PUT',
            headers: { ...headers, 'if-match': `W/"${patient.meta?.versionId}"` },
            body: JSON.stringify(body),
          });
          const text = await res.text();
          latencies.push(performance.now() - t0);
          if (res.status !== 200) {
            // A 412 is a correct answer when another writer (the MPI's linking) got there first: count it apart.
            if (res.status === 412) {
              conflicts++;
            } else if (++failed <= 5) {
              console.error(`update Patient/${patient.id}: HTTP ${res.status} ${text.slice(0, 200)}`);
            }
            current[j] = (await (await fetch(`${platform.baseUrl}/Patient/${patient.id}`, { headers })).json()) as Patient;
            continue;
          }
          current[j] = JSON.parse(text) as Patient;
        }
      }),
    );
    const elapsed = performance.now() - start;
    const after = await cpu();
    const load1 = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    const sorted = [...latencies].sort((a, b) => a - b);
    const perUpdate = (ticks: number): string => ((ticks * 1000) / CLOCK_TICKS_PER_S / latencies.length).toFixed(2);
    console.log(`updates ${latencies.length} in ${(elapsed / 1000).toFixed(1)} s: ${((latencies.length * 1000) / elapsed).toFixed(1)}/s, p50 ${percentile(sorted, 50).toFixed(1)} ms, p99 ${percentile(sorted, 99).toFixed(1)} ms, ${conflicts} answered 412 (another writer first), ${failed} failed`);
    console.log(`CPU per update: platform ${perUpdate(after.app - before.app)} ms, PostgreSQL backends ${perUpdate(after.db - before.db)} ms`);
    console.log(`load average ${load0} before, ${load1} after (${patients.length} Patients, concurrency ${CONCURRENCY})`);
    if (failed > 0) process.exitCode = 1;
  } finally {
    await admin.end();
    await platform.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
