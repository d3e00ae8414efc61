/**
 * `npm run bench:documents`: document sharing on the built platform (fresh database, as `npm run bench` does):
 * publishing WS/T 500 CDA documents as raw uploads (header read, patient and author resolved, DocumentReference
 * made, content stored by hash), finding them (ITI-67), retrieving them (ITI-68), rendering one, and streaming a
 * large Binary up and down. Records the figures in docs/performance.md.
 *
 *   npm run bench:documents                                   # --documents 500 --patients 50 --concurrency 8 --large-mib 32
 *   npm run bench:documents -- --documents 2000 --large-mib 90
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Bundle, Organization, Patient } from '@medplum/fhirtypes';
import { checkResidentId, DOCUMENT_TYPE_SYSTEM } from '../registry';
import { startPlatform } from './platform';
import { machineDescription, writeBenchSection } from './report';

function option(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
}

let authorization = '';

async function call(url: string, init: RequestInit = {}): Promise<Response> {
  const res = await fetch(url, { ...init, headers: { Authorization: authorization, ...(init.headers as Record<string, string>) } });
  if (!res.ok) {
    throw new Error(`${init.method ?? 'GET'} ${url}: ${res.status} ${await res.text()}`);
  }
  return res;
}

const postJson = async <T>(url: string, body: unknown): Promise<T> =>
  (await (await call(url, { method: 'POST', headers: { 'Content-Type': 'application/fhir+json' }, body: JSON.stringify(body) })).json()) as T;

/** An 18-digit resident ID with a valid check digit, from a running number. */
function residentId(n: number): string {
  const base = `3401041980${String(n).padStart(7, '0')}`;
  for (const check of '0123456789X') {
    if (!checkResidentId(base + check)) {
      return base + check;
    }
  }
  throw new Error('unreachable');
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

function summary(name: string, values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  const f = (n: number): string => `${n.toFixed(1)} ms`;
  return `${name}: p50 ${f(percentile(sorted, 0.5))}, p95 ${f(percentile(sorted, 0.95))}, p99 ${f(percentile(sorted, 0.99))}, max ${f(sorted[sorted.length - 1])} (n=${sorted.length})`;
}

/** Runs `task(i)` for i < n with `concurrency` at a time; returns each call's duration in ms. */
async function timed(n: number, concurrency: number, task: (i: number) => Promise<void>): Promise<{ ms: number[]; seconds: number }> {
  const ms: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < n; i = next++) {
        const t0 = performance.now();
        await task(i);
        ms.push(performance.now() - t0);
      }
    }),
  );
  return { ms, seconds: (performance.now() - started) / 1000 };
}

/** `mib` MiB of random bytes, produced 1 MiB at a time (the harness holds no more than the server should). */
function randomStream(mib: number, hash: ReturnType<typeof createHash>): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent === mib) {
        controller.close();
        return;
      }
      const chunk = randomBytes(1024 * 1024);
      hash.update(chunk);
      sent++;
      controller.enqueue(chunk);
    },
  });
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const documents = option(args, 'documents', 500);
  const patients = option(args, 'patients', 50);
  const concurrency = option(args, 'concurrency', 8);
  const largeMib = option(args, 'large-mib', 32);
  const platform = await startPlatform(Number(process.env.BENCH_PORT ?? 18919));
  authorization = `Bearer ${platform.token}`;
  const base = platform.baseUrl;
  try {
    const machine = await machineDescription(platform.databaseUrl);
    const sample = readFileSync(path.resolve(__dirname, '../../registry/test/samples/wst500-c0001-synthetic.xml'), 'utf8');
    await postJson<Organization>(`${base}/Organization`, { resourceType: 'Organization', name: '惠民市第一人民医院（虚构）', identifier: [{ system: 'urn:oid:2.16.156.10011.1.5', value: 'HM-HOSP-A' }] });
    const patientIds: string[] = [];
    for (let p = 0; p < patients; p++) {
      const created = await postJson<Patient>(`${base}/Patient`, { resourceType: 'Patient', identifier: [{ system: 'urn:oid:2.16.156.10011.1.3', value: residentId(p) }] });
      patientIds.push(created.id as string);
    }
    const loadBefore = os.loadavg()[0];
    const binaryIds: string[] = new Array(documents);
    const publish = await timed(documents, concurrency, async (i) => {
      const xml = sample.replace('340104198001011234', residentId(i % patients)).replace('HM-DOC-0001', `HM-BENCH-${i}`).replace('HR340104000001', `HR-BENCH-${i % patients}`);
      const res = await call(`${base}/Binary`, { method: 'POST', headers: { 'Content-Type': 'application/hl7-cda+xml' }, body: xml });
      binaryIds[i] = ((await res.json()) as { id: string }).id;
    });
    const find = await timed(patients * 4, concurrency, async (i) => {
      const query = new URLSearchParams({ patient: `Patient/${patientIds[i % patients]}`, type: `${DOCUMENT_TYPE_SYSTEM}|C0001`, date: 'ge2025-01-01', status: 'current' });
      const bundle = (await (await call(`${base}/DocumentReference?${query}`)).json()) as Bundle;
      if (!bundle.entry?.length) {
        throw new Error('ITI-67 found nothing');
      }
    });
    const retrieve = await timed(documents, concurrency, async (i) => {
      await (await call(`${base}/Binary/${binaryIds[i]}`, { headers: { Accept: 'application/hl7-cda+xml' } })).arrayBuffer();
    });
    const firstDoc = (await (await call(`${base}/Binary/${binaryIds[0]}?_format=json`)).json()) as { securityContext: { reference: string } };
    const render = await timed(50, concurrency, async () => {
      await (await call(`${base}/${firstDoc.securityContext.reference}/$render`, { headers: { Accept: 'text/html' } })).text();
    });
    // One large document, streamed up and down and compared by hash.
    const sent = createHash('sha256');
    const upStart = performance.now();
    const uploaded = (await (await call(`${base}/Binary`, { method: 'POST', headers: { 'Content-Type': 'application/octet-stream' }, body: randomStream(largeMib, sent), duplex: 'half' } as RequestInit)).json()) as { id: string };
    const upSeconds = (performance.now() - upStart) / 1000;
    const received = createHash('sha256');
    const downStart = performance.now();
    const download = await call(`${base}/Binary/${uploaded.id}`, { headers: { Accept: '*/*' } });
    for await (const chunk of download.body as unknown as AsyncIterable<Uint8Array>) {
      received.update(chunk);
    }
    const downSeconds = (performance.now() - downStart) / 1000;
    if (sent.digest('hex') !== received.digest('hex')) {
      throw new Error('the large document came back different');
    }
    const lines = [
      `${documents} CDA documents (${Buffer.byteLength(sample)} bytes each) for ${patients} patients, ${concurrency} clients; ` +
        `machine load average ${loadBefore.toFixed(1)} before, ${os.loadavg()[0].toFixed(1)} after, on ${os.cpus().length} CPUs`,
      `${summary('publish (raw CDA upload → header read, patient resolved, DocumentReference made)', publish.ms)}; ${(documents / publish.seconds).toFixed(1)} documents/s`,
      summary('ITI-67 find (patient, type, date, status=current)', find.ms),
      summary('ITI-68 retrieve (raw document)', retrieve.ms),
      summary('$render (HTML view)', render.ms),
      `large Binary of ${largeMib} MiB: upload ${(largeMib / upSeconds).toFixed(1)} MiB/s, download ${(largeMib / downSeconds).toFixed(1)} MiB/s (same SHA-256 back)`,
    ];
    console.log(lines.join('\n'));
    writeBenchSection(
      'documents',
      '## Document sharing (issue 7: MHD with WS/T 500 CDA)',
      `Command: \`npm run bench:documents -- --documents ${documents} --patients ${patients} --concurrency ${concurrency} --large-mib ${largeMib}\` (run ${new Date().toISOString()}).`,
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
