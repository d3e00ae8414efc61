/**
 * `npm run bench:export -- [--resources 200000]`: Bulk Data `$export` throughput. Loads Patients and Observations
 * in-process through the repository's public write API, starts the platform on that database (its worker processes
 * run export jobs), then over HTTP: kick-off, polls until the manifest is there (export rate: resources written to
 * NDJSON files per second), and downloads every file (download rate), checking that the line counts add up.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import type { Observation, Patient } from '@medplum/fhirtypes';
import { FhirRepository, loadFhirDefinitions, migrate, openDatabase, securityMigrations } from '../fhir-server';
import { startPlatform } from './platform';
import { machineDescription, writeSection } from './report';

const PATIENT_SHARE = 20; // one Patient per 20 resources
const BATCH = 1000;
const LOINC = [
  ['2339-0', 'Glucose [Mass/volume] in Blood', 'mg/dL'],
  ['718-7', 'Hemoglobin [Mass/volume] in Blood', 'g/dL'],
  ['8867-4', 'Heart rate', '/min'],
  ['8310-5', 'Body temperature', 'Cel'],
  ['29463-7', 'Body weight', 'kg'],
] as const;

/** An Observation of the size and shape of Synthea's vital signs and labs (about 900 bytes). */
function observation(i: number, patient: string): Observation {
  const [code, display, unit] = LOINC[i % LOINC.length];
  const when = new Date(Date.UTC(2015, 0, 1) + (i % 3000) * 86_400_000).toISOString();
  return {
    resourceType: 'Observation',
    status: 'final',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'laboratory', display: 'laboratory' }] }],
    code: { coding: [{ system: 'http://loinc.org', code, display }], text: display },
    subject: { reference: `Patient/${patient}` },
    encounter: { reference: `Encounter/bench-${i % 997}` },
    effectiveDateTime: when,
    issued: when,
    valueQuantity: { value: 50 + (i % 100) / 3, unit, system: 'http://unitsofmeasure.org', code: unit },
    interpretation: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation', code: 'N', display: 'Normal' }] }],
    note: [{ text: `Benchmark observation ${i}, recorded for the export throughput measurement.` }],
  };
}

async function load(databaseUrl: string, total: number): Promise<number> {
  loadFhirDefinitions();
  const db = await openDatabase(databaseUrl, undefined);
  await migrate(db, securityMigrations);
  // Encounters are referenced but not stored: referential integrity is not what is measured here.
  const repo = new FhirRepository(db, { enforceReferentialIntegrity: false, baseUrl: 'http://127.0.0.1/fhir' });
  const started = performance.now();
  const patients = Math.max(1, Math.floor(total / PATIENT_SHARE));
  for (let done = 0; done < total; done += BATCH) {
    await repo.write(async (s) => {
      for (let i = done; i < Math.min(total, done + BATCH); i++) {
        if (i < patients) {
          const p: Patient = { resourceType: 'Patient', id: `bench-${i}`, name: [{ family: `Bench${i}`, given: ['Export'] }], gender: i % 2 ? 'male' : 'female', birthDate: '1970-01-01' };
          await s.update('Patient', p.id as string, p);
        } else {
          await s.create(observation(i, `bench-${i % patients}`));
        }
      }
    });
    if (done % 50_000 === 0) {
      console.error(`loaded ${done} of ${total}`);
    }
  }
  const seconds = (performance.now() - started) / 1000;
  await db.query('VACUUM ANALYZE');
  await db.close();
  return total / seconds;
}

interface Manifest {
  output: Array<{ type: string; url: string; count: number }>;
}

/** Kick-off, then polls until the manifest is there. */
async function exportOf(baseUrl: string, auth: Record<string, string>, query: string): Promise<Manifest> {
  const kick = await fetch(`${baseUrl}/$export?${query}`, { headers: { ...auth, Accept: 'application/fhir+json', Prefer: 'respond-async' } });
  if (kick.status !== 202) {
    throw new Error(`kick-off answered ${kick.status}: ${await kick.text()}`);
  }
  const poll = kick.headers.get('content-location') as string;
  for (;;) {
    // Polled far more often than Retry-After asks, so that the time measured is the export's, not the wait's.
    await new Promise((r) => setTimeout(r, 50));
    const res = await fetch(poll, { headers: auth });
    if (res.status === 200) {
      return (await res.json()) as Manifest;
    }
    if (res.status !== 202) {
      throw new Error(`poll answered ${res.status}: ${await res.text()}`);
    }
  }
}

/** Waits until the platform's relay has moved the load's change events out of the outbox. */
async function outboxDrained(databaseUrl: string): Promise<void> {
  const db = await openDatabase(databaseUrl, undefined);
  try {
    for (;;) {
      const [{ n }] = await db.query<{ n: number }>('SELECT count(*) AS n FROM outbox');
      if (Number(n) === 0) {
        return;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  } finally {
    await db.close();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { resources: { type: 'string', default: '200000' } } });
  const total = Number(values.resources);
  // The workflow's consumers would otherwise be working through the load's change events during the export; what is
  // measured here is the export alone.
  process.env.WORKFLOW_WORKERS = 'false';
  // Nor may the master patient index add golden-record Patients from the load's Patient events while it runs: the
  // line counts are checked against what was loaded.
  process.env.MPI_WORKERS = 'false';
  const platform = await startPlatform(Number(process.env.BENCH_PORT ?? 18082));
  try {
    const loadRate = await load(platform.databaseUrl, total);
    const machine = await machineDescription(platform.databaseUrl);
    const auth = { Authorization: `Bearer ${platform.token}` };

    await outboxDrained(platform.databaseUrl);
    // The first request a process answers loads definitions and keys (seconds, once per process): warm every worker
    // process with small exports, so that what is timed is the export.
    for (let i = 0; i < 4; i++) {
      await exportOf(platform.baseUrl, auth, '_type=Practitioner');
    }
    const loadBefore = os.loadavg()[0];
    const started = performance.now();
    const manifest = await exportOf(platform.baseUrl, auth, '_type=Patient,Observation');
    const exportS = (performance.now() - started) / 1000;
    const exported = manifest.output.reduce((n, o) => n + o.count, 0);

    const downloadStarted = performance.now();
    let bytes = 0;
    let lines = 0;
    for (const out of manifest.output) {
      const res = await fetch(out.url, { headers: auth });
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        bytes += value.length;
        for (const byte of value) {
          if (byte === 10) lines++;
        }
      }
    }
    const downloadS = (performance.now() - downloadStarted) / 1000;
    if (exported !== total || lines !== total) {
      throw new Error(`exported ${exported} and downloaded ${lines} lines for ${total} stored resources`);
    }
    const report = [
      `machine load average ${loadBefore.toFixed(1)} before the export, ${os.loadavg()[0].toFixed(1)} after the download, on ${os.cpus().length} CPUs (a shared machine gives pessimistic figures)`,
      `loaded ${total} resources (${Math.floor(total / PATIENT_SHARE)} Patients, the rest Observations of ~900 bytes) at ${loadRate.toFixed(0)} resources/s in-process`,
      `export (kick-off to manifest, ${manifest.output.length} files): ${exported} resources in ${exportS.toFixed(2)} s = ${(exported / exportS).toFixed(0)} resources/s`,
      `download of every file: ${lines} lines, ${(bytes / 2 ** 20).toFixed(1)} MiB in ${downloadS.toFixed(2)} s = ${(lines / downloadS).toFixed(0)} resources/s, ${(bytes / 2 ** 20 / downloadS).toFixed(1)} MiB/s`,
    ];
    console.log(report.join('\n'));
    writeSection(
      'export',
      ['## Bulk export ($export)', '', `Command: \`npm run bench:export -- --resources ${total}\` (run ${new Date().toISOString()})`, '',
        `Machine: ${machine}`, '', '```', ...report, '```'].join('\n'),
    );
  } finally {
    await platform.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
