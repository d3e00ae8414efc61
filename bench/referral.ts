/**
 * `npm run bench:referral`: the workflow's reaction to new referrals. Starts the built platform on a fresh database
 * (as `npm run bench` does), submits referrals (ServiceRequest + Task in one transaction bundle, over HTTP) at a
 * steady rate, and measures, from the store's own timestamps, how long after the submission committed the engine
 * had routed the Task (its version 2) and notified the receiver (the Communication's commit). Records the figures
 * in docs/performance.md.
 *
 *   npm run bench:referral                          # --rate 50 --duration 20
 *   npm run bench:referral -- --rate 100 --duration 10
 */
import os from 'node:os';
import type { Bundle, Communication, Organization, Patient, Task } from '@medplum/fhirtypes';
import { startPlatform } from './platform';
import { machineDescription, writeBenchSection } from './report';

function option(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
}

const json = { 'Content-Type': 'application/fhir+json' };
/** The platform's administrator token (every request needs one), set once the platform is up. */
let authorization = '';

async function post<T>(url: string, body: unknown): Promise<T> {
  const res = await fetch(url, { method: 'POST', headers: { ...json, Authorization: authorization }, body: JSON.stringify(body) });
  if (!res.ok) {
    throw new Error(`POST ${url}: ${res.status} ${await res.text()}`);
  }
  return (await res.json()) as T;
}

async function get<T>(url: string): Promise<T> {
  const res = await fetch(url, { headers: { Authorization: authorization } });
  if (!res.ok) {
    throw new Error(`GET ${url}: ${res.status} ${await res.text()}`);
  }
  return (await res.json()) as T;
}

function referral(patient: string, clinic: string, hospital: string, i: number): Bundle {
  const sr = 'urn:uuid:00000000-0000-4000-8000-000000000001';
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      {
        fullUrl: sr,
        resource: {
          resourceType: 'ServiceRequest',
          status: 'active',
          intent: 'order',
          priority: i % 10 === 0 ? 'urgent' : 'routine',
          category: [{ coding: [{ system: 'http://snomed.info/sct', code: '3457005' }] }],
          extension: [{ url: 'http://huimin.health/fhir/StructureDefinition/referral-direction', valueCode: 'up' }],
          subject: { reference: patient },
          requester: { reference: clinic },
          performer: [{ reference: hospital }],
          reasonCode: [{ coding: [{ system: 'http://huimin.health/fhir/CodeSystem/referral-reason', code: 'further-examination' }] }],
        },
        request: { method: 'POST', url: 'ServiceRequest' },
      },
      {
        resource: {
          resourceType: 'Task',
          status: 'requested',
          intent: 'order',
          focus: { reference: sr },
          for: { reference: patient },
          requester: { reference: clinic },
          owner: { reference: hospital },
          authoredOn: new Date().toISOString(),
        },
        request: { method: 'POST', url: 'Task' },
      },
    ],
  };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

function summary(name: string, values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  const f = (n: number): string => `${n.toFixed(1)} ms`;
  return `${name}: p50 ${f(percentile(sorted, 0.5))}, p95 ${f(percentile(sorted, 0.95))}, p99 ${f(percentile(sorted, 0.99))}, max ${f(sorted[sorted.length - 1])} (n=${sorted.length})`;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const rate = option(args, 'rate', 50);
  const duration = option(args, 'duration', 20);
  const platform = await startPlatform(Number(process.env.BENCH_PORT ?? 18917));
  authorization = `Bearer ${platform.token}`;
  const base = platform.baseUrl;
  try {
    const machine = await machineDescription(platform.databaseUrl);
    const patient = await post<Patient>(`${base}/Patient`, { resourceType: 'Patient', name: [{ family: '测试' }] });
    const clinic = await post<Organization>(`${base}/Organization`, { resourceType: 'Organization', name: '社区卫生服务中心', active: true });
    const hospital = await post<Organization>(`${base}/Organization`, { resourceType: 'Organization', name: '市人民医院', active: true });
    const loadBefore = os.loadavg()[0];
    const total = rate * duration;
    const submitMs: number[] = [];
    const taskIds: string[] = [];
    const started = Date.now();
    const inFlight: Promise<void>[] = [];
    for (let i = 0; i < total; i++) {
      const due = started + (i * 1000) / rate;
      const wait = due - Date.now();
      if (wait > 0) {
        await new Promise((r) => setTimeout(r, wait));
      }
      inFlight.push(
        (async () => {
          const t0 = performance.now();
          const res = await post<Bundle>(base, referral(`Patient/${patient.id}`, `Organization/${clinic.id}`, `Organization/${hospital.id}`, i));
          submitMs.push(performance.now() - t0);
          taskIds.push(/Task\/([^/]+)/.exec(res.entry?.[1].response?.location ?? '')?.[1] as string);
        })(),
      );
    }
    await Promise.all(inFlight);
    const offered = total / ((Date.now() - started) / 1000);
    // Wait until every referral has been notified (or give up after a minute).
    const deadline = Date.now() + 60_000;
    let notified = 0;
    while (Date.now() < deadline) {
      notified = (await get<Bundle>(`${base}/Communication?category=http://snomed.info/sct|3457005&_summary=count`)).total ?? 0;
      if (notified >= total) {
        break;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    const routedMs: number[] = [];
    const notifiedMs: number[] = [];
    const sentAt = new Map<string, number>();
    for (let offset = 0; ; offset += 1000) {
      const page = await get<Bundle>(`${base}/Communication?category=http://snomed.info/sct|3457005&_count=1000&_offset=${offset}`);
      for (const e of page.entry ?? []) {
        const c = e.resource as Communication;
        const task = c.basedOn?.find((r) => r.reference?.startsWith('Task/'))?.reference?.slice(5);
        if (task) {
          sentAt.set(task, Date.parse(c.meta?.lastUpdated as string));
        }
      }
      if (!page.link?.some((l) => l.relation === 'next')) {
        break;
      }
    }
    for (const id of taskIds) {
      const v1 = await get<Task>(`${base}/Task/${id}/_history/1`);
      const v2 = await get<Task>(`${base}/Task/${id}/_history/2`).catch(() => undefined);
      const t1 = Date.parse(v1.meta?.lastUpdated as string);
      if (v2) {
        routedMs.push(Date.parse(v2.meta?.lastUpdated as string) - t1);
      }
      const sent = sentAt.get(id);
      if (sent !== undefined) {
        notifiedMs.push(sent - t1);
      }
    }
    const lines = [
      `offered ${offered.toFixed(1)} referrals/s for ${duration} s (${total} referrals); notified ${notifiedMs.length}/${total}; ` +
        `machine load average ${loadBefore.toFixed(1)} before, ${os.loadavg()[0].toFixed(1)} after, on ${os.cpus().length} CPUs`,
      summary('submission (HTTP transaction, client side)', submitMs),
      summary('routed (Task v2 committed after the submission committed)', routedMs),
      summary('routed and notified (Communication committed after the submission committed)', notifiedMs),
    ];
    console.log(lines.join('\n'));
    writeBenchSection(
      'referral',
      '## Referral workflow reaction (issue 8)',
      `Command: \`npm run bench:referral -- --rate ${rate} --duration ${duration}\` (run ${new Date().toISOString()}); target: routed and notified under 200 ms p99 at 50 referrals/s.`,
      machine,
      lines,
    );
  } finally {
    await platform.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
