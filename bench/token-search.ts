/**
 * `npm run bench:search -- [--resources 1000000]`: search latency on a large store (token, reference, page 100 by
 * cursor, `_sort`, `_total=estimate`, system level). Loads the resources
 * in-process through the repository's public write API (set-based batches, validation and indexing included),
 * then starts the platform on that database and times token searches over HTTP.
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import type { Observation, Patient } from '@medplum/fhirtypes';
import { FhirRepository, loadFhirDefinitions, migrate, openDatabase, securityMigrations } from '../fhir-server';
import { startPlatform } from './platform';
import { machineDescription, writeSection } from './report';

const CODES = ['2339-0', '2093-3', '718-7', '8867-4', '8310-5', '29463-7', '8302-2', '8480-6', '8462-4', '39156-5'];
const PATIENTS = 1000;
const BATCH = 1000;

function observation(i: number, patientIds: string[]): Observation {
  // One code in a thousand is the rare code, so that both selective and unselective searches are measured.
  const code = i % 1000 === 0 ? '1558-6' : CODES[i % CODES.length];
  return {
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code }] },
    subject: { reference: `Patient/${patientIds[i % patientIds.length]}` },
    effectiveDateTime: new Date(Date.UTC(2020, 0, 1) + (i % 1500) * 86_400_000).toISOString(),
    valueQuantity: { value: (i % 200) / 2, unit: 'mg/dL', system: 'http://unitsofmeasure.org', code: 'mg/dL' },
  };
}

async function load(databaseUrl: string, total: number): Promise<number> {
  loadFhirDefinitions();
  const db = await openDatabase(databaseUrl, undefined);
  await migrate(db, securityMigrations);
  const repo = new FhirRepository(db, { enforceReferentialIntegrity: true, baseUrl: 'http://127.0.0.1/fhir' });
  const patientIds = await repo.write(async (s) => {
    const ids: string[] = [];
    for (let i = 0; i < PATIENTS; i++) {
      const p: Patient = { resourceType: 'Patient', name: [{ family: `Bench${i}` }] };
      ids.push((await s.create(p, randomUUID())).id as string);
    }
    return ids;
  });
  const started = performance.now();
  for (let done = 0; done < total; done += BATCH) {
    await repo.write(async (s) => {
      for (let i = done; i < Math.min(total, done + BATCH); i++) {
        await s.create(observation(i, patientIds));
      }
    });
    if (done % 100_000 === 0) {
      console.error(`loaded ${done} of ${total}`);
    }
  }
  const seconds = (performance.now() - started) / 1000;
  await db.query('VACUUM ANALYZE');
  await db.close();
  return total / seconds;
}

let bearer = '';

async function time(url: string, rounds: number): Promise<{ p50: number; p99: number; matches: number }> {
  const lat: number[] = [];
  let matches = 0;
  for (let i = 0; i < rounds; i++) {
    const t = performance.now();
    const res = await fetch(url, { headers: { Authorization: bearer } });
    const body = (await res.json()) as { entry?: unknown[] };
    lat.push(performance.now() - t);
    if (!res.ok) {
      throw new Error(`${url}: HTTP ${res.status}`);
    }
    matches = body.entry?.length ?? 0;
  }
  lat.sort((a, b) => a - b);
  return { p50: lat[Math.floor(lat.length / 2)], p99: lat[Math.floor(lat.length * 0.99)], matches };
}

/** The relative URL of page `n` of a search, reached by following next links (keyset cursors) from page 1. */
async function pageUrl(baseUrl: string, query: string, n: number): Promise<string> {
  let url = `${baseUrl}/${query}`;
  for (let page = 1; page < n; page++) {
    const bundle = (await (await fetch(url, { headers: { Authorization: bearer } })).json()) as { link?: Array<{ relation: string; url: string }> };
    const next = bundle.link?.find((l) => l.relation === 'next')?.url;
    if (!next) {
      throw new Error(`${query} has only ${page} pages`);
    }
    url = next;
  }
  const parsed = new URL(url);
  return `${parsed.pathname.replace(/^\/fhir\//, '')}${parsed.search}`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { resources: { type: 'string', default: '1000000' } } });
  const total = Number(values.resources);
  const platform = await startPlatform(Number(process.env.BENCH_PORT ?? 18081));
  try {
    // The platform process is idle while we load through the repository on the same database.
    const loadRate = await load(platform.databaseUrl, total);
    const machine = await machineDescription(platform.databaseUrl);
    // Patient i has the Observations j with j % PATIENTS = i, so its code is CODES[i % CODES.length].
    bearer = `Bearer ${platform.token}`;
    const patient = await (await fetch(`${platform.baseUrl}/Patient?family:exact=Bench7`, { headers: { Authorization: bearer } })).json() as { entry: Array<{ resource: { id: string } }> };
    const patientId = patient.entry[0].resource.id;
    const common = 'Observation?code=http://loinc.org|718-7';
    const queries: Record<string, string> = {
      'rare code (1 in 1000)': 'Observation?code=http://loinc.org|1558-6',
      'common code, first page': common,
      'common code, page 100': await pageUrl(platform.baseUrl, common, 100),
      'patient and code': `Observation?patient=${patientId}&code=http://loinc.org|${CODES[7 % CODES.length]}`,
      'patient, newest first (_sort=-date)': `Observation?patient=${patientId}&_sort=-date`,
      'common code, _total=estimate': `${common}&_total=estimate`,
      'system level, two types by _id': `?_type=Patient,Observation&_id=${patientId}`,
    };
    const lines = [`loaded ${total} Observations (+${PATIENTS} Patients) at ${loadRate.toFixed(0)} resources/s in-process`];
    for (const [name, query] of Object.entries(queries)) {
      await time(`${platform.baseUrl}/${query}`, 20);
      const r = await time(`${platform.baseUrl}/${query}`, 200);
      lines.push(`${name}: p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms (${r.matches} entries on the page) — GET ${query.length > 160 ? `${query.slice(0, 160)}…` : query}`);
    }
    console.log(lines.join('\n'));
    writeSection(
      'token-search',
      ['## Search on a large store', '', `Command: \`npm run bench:search -- --resources ${total}\` (run ${new Date().toISOString()})`, '',
        `Machine: ${machine}`, '', '```', ...lines, '```'].join('\n'),
    );
  } finally {
    await platform.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
