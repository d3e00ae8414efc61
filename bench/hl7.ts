/**
 * `npm run bench:hl7`: HL7 v2 throughput and ACK latency, end to end (MLLP in, FHIR committed, ACK out), against
 * the built platform started as a deployment runs it (worker processes sharing the HL7 port), on a fresh database.
 *
 *   0. each facility registers 50 patients (ADT^A28), so that results come for known patients;
 *   1. throughput: ten facilities, one connection each, sending ORU^R01 (one OBR, six numeric OBX) as fast as
 *      their ACKs come back;
 *   2. latency: the same ten connections paced to 100 messages/s in total, ACK latency measured from each message's
 *      scheduled send time (so queueing counts).
 *
 *   npm run bench:hl7 -- --duration 20
 */
import os from 'node:os';
import { MllpClient } from '../adapters/mllp/server';
import { FACILITY_TAG_CODE, FACILITY_TAG_SYSTEM } from '../adapters/facilities';
import { startPlatform } from './platform';
import { machineDescription, writeSection } from './report';
import { oruMessage } from './hl7-messages';

const CONNECTIONS = 10;
/** Patients per facility: results arrive for patients the hospital registered first (ADT), as in a day's work. */
const PATIENTS = 50;
const HTTP_PORT = Number(process.env.BENCH_PORT ?? 18090);
const HL7_PORT = Number(process.env.BENCH_HL7_PORT ?? 12590);

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

let sequence = 0;
function a28(facility: string, patient: number): Buffer {
  const n = ++sequence;
  return Buffer.from(
    [
      `MSH|^~\\&|HIS|${facility}|HUIMIN|CITY|20250301090000+0800||ADT^A28^ADT_A05|R-${n}|P|2.5.1|||||CHN|UNICODE UTF-8`,
      `PID|1||P${patient}^^^${facility}^MR||张^伟${patient}||19800101|M`,
    ].join('\r') + '\r',
    'utf8',
  );
}

function oru(facility: string, patient: number): Buffer {
  const n = ++sequence;
  return oruMessage(`B-${n}`, n, facility, patient);
}

function percentile(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : NaN;
}

async function registerFacilities(baseUrl: string, token: string): Promise<string[]> {
  const keys = Array.from({ length: CONNECTIONS }, (_, i) => `BENCH-H${i + 1}`);
  for (const key of keys) {
    const res = await fetch(`${baseUrl}/Organization`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/fhir+json', Authorization: `Bearer ${token}` },
      body: JSON.stringify({ resourceType: 'Organization', meta: { tag: [{ system: FACILITY_TAG_SYSTEM, code: FACILITY_TAG_CODE }] }, identifier: [{ system: 'urn:huimin:facility', value: key }], name: key, active: true }),
    });
    if (!res.ok) throw new Error(`registering ${key}: ${res.status} ${await res.text()}`);
  }
  return keys;
}

/** Connects to the HL7 port, waiting while the worker processes start listening on it. */
async function connect(): Promise<MllpClient> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await new MllpClient('127.0.0.1', HL7_PORT).connect();
    } catch (err) {
      if (attempt >= 60) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

interface Phase {
  messages: number;
  refused: number;
  seconds: number;
  latencies: number[];
}

/** Each facility registers its patients (ADT^A28: a new Patient each). */
async function registerPatients(clients: MllpClient[], facilities: string[]): Promise<Phase> {
  const latencies: number[] = [];
  let refused = 0;
  const started = Date.now();
  await Promise.all(
    clients.map(async (c, i) => {
      for (let k = 0; k < PATIENTS; k++) {
        const t = performance.now();
        const ack = (await c.send(a28(facilities[i], i * 1000 + k))).toString();
        latencies.push(performance.now() - t);
        if (!ack.includes('MSA|AA|')) refused++;
      }
    }),
  );
  return { messages: latencies.length, refused, seconds: (Date.now() - started) / 1000, latencies: latencies.sort((a, b) => a - b) };
}

async function closedLoop(clients: MllpClient[], facilities: string[], seconds: number): Promise<Phase> {
  const latencies: number[] = [];
  let refused = 0;
  const end = Date.now() + seconds * 1000;
  const started = Date.now();
  await Promise.all(
    clients.map(async (c, i) => {
      for (let k = 0; Date.now() < end; k++) {
        const t = performance.now();
        const ack = (await c.send(oru(facilities[i], i * 1000 + (k % PATIENTS)))).toString();
        latencies.push(performance.now() - t);
        if (!ack.includes('MSA|AA|')) refused++;
      }
    }),
  );
  return { messages: latencies.length, refused, seconds: (Date.now() - started) / 1000, latencies: latencies.sort((a, b) => a - b) };
}

async function paced(clients: MllpClient[], facilities: string[], seconds: number, rate: number): Promise<Phase> {
  const latencies: number[] = [];
  let refused = 0;
  const perConnection = rate / clients.length;
  const interval = 1000 / perConnection;
  const started = performance.now();
  await Promise.all(
    clients.map(async (c, i) => {
      // Offsets spread the connections over the interval.
      for (let k = 0; k < seconds * perConnection; k++) {
        const scheduled = started + (i / clients.length) * interval + k * interval;
        const wait = scheduled - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        const ack = (await c.send(oru(facilities[i], i * 1000 + (k % PATIENTS)))).toString();
        latencies.push(performance.now() - scheduled);
        if (!ack.includes('MSA|AA|')) refused++;
      }
    }),
  );
  return { messages: latencies.length, refused, seconds: (performance.now() - started) / 1000, latencies: latencies.sort((a, b) => a - b) };
}

async function main(): Promise<void> {
  const duration = arg('duration', 15);
  process.env.HL7_PORT = String(HL7_PORT);
  const loadAtStart = os.loadavg();
  const platform = await startPlatform(HTTP_PORT);
  try {
    const facilities = await registerFacilities(platform.baseUrl, platform.token);
    const clients = await Promise.all(facilities.map(() => connect()));
    const registration = await registerPatients(clients, facilities);
    await closedLoop(clients, facilities, 3); // warm-up: prepared statements, caches, JIT
    const throughput = await closedLoop(clients, facilities, duration);
    const latency = await paced(clients, facilities, duration, 100);
    clients.forEach((c) => c.close());
    const rate = throughput.messages / throughput.seconds;
    const row = (name: string, p: Phase): string =>
      `| ${name} | ${p.messages} | ${(p.messages / p.seconds).toFixed(0)} | ${percentile(p.latencies, 50).toFixed(1)} | ${percentile(p.latencies, 99).toFixed(1)} | ${p.refused} |`;
    const body = [
      '## HL7 v2 inbound (`npm run bench:hl7`)',
      '',
      // The machine may be shared (other test suites, benchmarks): the load average says how much it was.
      `Measured ${new Date().toISOString().slice(0, 10)} on ${await machineDescription(platform.databaseUrl)}. Application, PostgreSQL, Redis and the senders share its cores; load average (1/5/15 min) ${loadAtStart.map((l) => l.toFixed(1)).join(' / ')} at the start, ${os.loadavg().map((l) => l.toFixed(1)).join(' / ')} at the end.`,
      '',
      `ORU^R01 messages (one OBR, six numeric OBX: a DiagnosticReport and six Observations written, the raw message stored) for ${PATIENTS} patients per facility that an ADT^A28 registered first, from ${CONNECTIONS} facilities over ${CONNECTIONS} MLLP connections, the platform with its default worker processes sharing the HL7 port. Latency is from send (or, paced, from the scheduled send time) to the ACK.`,
      '',
      '| phase | messages | messages/s | ACK p50 ms | ACK p99 ms | not AA |',
      '| --- | --- | --- | --- | --- | --- |',
      row(`ADT^A28 registering ${CONNECTIONS * PATIENTS} new patients (before the results)`, registration),
      row(`ORU^R01 as fast as ACKs return, ${duration} s`, throughput),
      row(`ORU^R01 paced at 100 messages/s, ${duration} s`, latency),
      '',
      `Targets: at least 200 messages/s end to end (${rate >= 200 ? 'met' : 'not met'}: ${rate.toFixed(0)}/s); ACK p99 under 100 ms at 100 messages/s (${percentile(latency.latencies, 99) < 100 ? 'met' : 'not met'}: ${percentile(latency.latencies, 99).toFixed(1)} ms).`,
    ].join('\n');
    console.log(body);
    writeSection('hl7', body);
  } finally {
    await platform.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
