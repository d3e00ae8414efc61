/**
 * `npm run bench:recognition`: the ordering screen's question, `Patient/[id]/$recognizable-results?code=…`, for a
 * resident with many results. Runs the FHIR server with the recognition module (as main.ts wires it, in this one
 * process, without the workers and the start-up content the question does not use) on a fresh PostgreSQL database
 * and answers over HTTP; files
 * `--observations` results (default 5,000) for the resident's record at hospital A over the past year (the 16 items
 * of the bureau's table and others), links it with the resident's record at hospital B through a golden record (as
 * the MPI does), grants A's laboratory its mark, then asks from B `--requests` times (default 300, one at a time,
 * after a warm-up) and reports p50/p90/p99 latency.
 *
 *   npm run bench:recognition                                   # 5,000 observations
 *   npm run bench:recognition -- --observations 500 --requests 100
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Bundle, BundleEntry, Observation, Patient } from '@medplum/fhirtypes';
import pino from 'pino';
import { ClientStore, ConsentDecisions, createFhirServer, FhirRepository, migrate, openDatabase, securityMigrations } from '../fhir-server';
import { recognitionMigrations, recognitionStoreExtensions } from '../recognition';
import { createTerminologyService, terminologyMigrations } from '../terminology';
import { adminQuery } from './platform';
import { machineDescription, writeSection } from './report';

const ADMIN_URL = process.env.BENCH_POSTGRES_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** The server in this process on a fresh database, and an administrator's token. */
async function startServer(): Promise<{ baseUrl: string; databaseUrl: string; token: string; analyze(): Promise<void>; stop(): Promise<void> }> {
  const dbName = `huimin_bench_recognition_${Date.now().toString(36)}`;
  await adminQuery(`CREATE DATABASE ${dbName}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${dbName}`;
  const db = await openDatabase(url.toString(), undefined, 10);
  await migrate(db, [...securityMigrations, ...terminologyMigrations, ...recognitionMigrations]);
  const secret = randomBytes(24).toString('base64url');
  await new ClientStore(db).ensureAdmin({ clientId: 'bench-admin', secret });
  const listener = createServer();
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const publicBaseUrl = `http://127.0.0.1:${(listener.address() as AddressInfo).port}`;
  const readRepo = new FhirRepository(db, { enforceReferentialIntegrity: true, baseUrl: `${publicBaseUrl}/fhir` });
  const recognition = recognitionStoreExtensions({ db, repository: readRepo, terminology: createTerminologyService(db, readRepo), consent: new ConsentDecisions(db), authorities: [] });
  const server = createFhirServer({
    db,
    logger: pino({ level: 'warn' }),
    publicBaseUrl,
    fhirBasePath: '/fhir',
    redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    redisPrefix: `huimin-bench-${dbName}`,
    maxBodyBytes: 50 * 1024 * 1024,
    maxJsonDepth: 64,
    maxPageSize: 1000,
    defaultPageSize: 20,
    enforceReferentialIntegrity: true,
    operations: recognition.operations,
    security: { rateLimitPerClient: 0, rateLimitTokenEndpoint: 0, accessTokenLifetimeS: 3600 },
    auditJournalDir: path.join(os.tmpdir(), `huimin-bench-audit-${dbName}`),
  });
  listener.on('request', server.app);
  const tokenRes = await fetch(`${publicBaseUrl}/auth/token`, {
    method: 'POST',
    headers: { Authorization: `Basic ${Buffer.from(`bench-admin:${secret}`).toString('base64')}`, 'Content-Type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials',
  });
  const { access_token: token } = (await tokenRes.json()) as { access_token: string };
  return {
    baseUrl: `${publicBaseUrl}/fhir`,
    databaseUrl: url.toString(),
    token,
    analyze: async () => {
      await db.query('ANALYZE');
    },
    stop: async () => {
      await new Promise((resolve) => listener.close(resolve));
      await server.stop();
      await db.close();
      if (process.env.BENCH_KEEP_DATABASE) {
        console.error(`kept the database ${dbName} (BENCH_KEEP_DATABASE is set)`);
      } else {
        await adminQuery(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
      }
    },
  };
}

function option(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
}

const ITEMS = ['2823-3', '2951-2', '2075-0', '17861-6', '2885-2', '1751-7', '2345-7', '14749-6', '2093-3', '2571-8', '2085-9', '13457-7', '1975-2', '4548-4', '718-7', '6690-2', '777-3', '2160-0', '3094-0', '1742-6'];
const GRANT_TAG = { system: 'http://huimin.health/fhir/CodeSystem/platform-role', code: 'recognition-grant' };

function quantile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const observations = option(args, 'observations', 5000);
  const requests = option(args, 'requests', 300);
  const platform = await startServer();
  const authorization = `Bearer ${platform.token}`;
  const base = platform.baseUrl;
  const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${base}/${path}`, { method, headers: { Authorization: authorization, 'Content-Type': 'application/fhir+json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };
  try {
    const machine = await machineDescription(platform.databaseUrl);
    await call('PUT', 'Organization/HOSP-A', { resourceType: 'Organization', id: 'HOSP-A', name: 'Hospital A' });
    await call('PUT', 'Organization/HOSP-A-LAB', { resourceType: 'Organization', id: 'HOSP-A-LAB', name: 'Hospital A laboratory', partOf: { reference: 'Organization/HOSP-A' } });
    await call('POST', 'HealthcareService', {
      resourceType: 'HealthcareService',
      meta: { tag: [GRANT_TAG] },
      active: true,
      providedBy: { reference: 'Organization/HOSP-A-LAB' },
      type: ITEMS.map((code) => ({ coding: [{ system: 'http://loinc.org', code }] })),
      extension: [{ url: 'http://huimin.health/fhir/StructureDefinition/recognition-grant', extension: [{ url: 'scope', valueCoding: { system: 'http://huimin.health/fhir/CodeSystem/recognition-scope', code: 'provincial', display: '本省' } }] }],
    });
    const atA = await call<Patient>('POST', 'Patient', { resourceType: 'Patient', name: [{ family: 'A' }] });
    const atB = await call<Patient>('POST', 'Patient', { resourceType: 'Patient', name: [{ family: 'B' }] });
    const golden = await call<Patient>('POST', 'Patient', { resourceType: 'Patient', link: [atA, atB].map((p) => ({ other: { reference: `Patient/${p.id}` }, type: 'seealso' })) });
    for (const p of [atA, atB]) {
      await call('PUT', `Patient/${p.id}`, { ...p, link: [{ other: { reference: `Patient/${golden.id}` }, type: 'refer' }] });
    }
    const loadStarted = Date.now();
    for (let done = 0; done < observations; done += 500) {
      const entry: BundleEntry[] = [];
      for (let i = done; i < Math.min(observations, done + 500); i++) {
        const taken = new Date(Date.now() - ((i * 7919) % 365) * 86_400_000 - (i % 24) * 3_600_000).toISOString();
        const observation: Observation = {
          resourceType: 'Observation',
          status: 'final',
          code: { coding: [{ system: 'http://loinc.org', code: ITEMS[i % ITEMS.length] }] },
          subject: { reference: `Patient/${atA.id}` },
          performer: [{ reference: 'Organization/HOSP-A-LAB' }],
          effectiveDateTime: taken,
          issued: taken,
          valueQuantity: { value: 4 + (i % 10) / 10, unit: 'mmol/L', system: 'http://unitsofmeasure.org', code: 'mmol/L' },
        };
        entry.push({ resource: observation, request: { method: 'POST', url: 'Observation' } });
      }
      await call<Bundle>('POST', '', { resourceType: 'Bundle', type: 'batch', entry });
    }
    const loadSeconds = (Date.now() - loadStarted) / 1000;
    // What the platform's StatisticsKeeper does after a load (db/statistics.ts): without statistics the planner
    // guesses one row per lookup and picks plans many times slower.
    await platform.analyze();
    const ask = async (): Promise<{ ms: number; total: number }> => {
      const started = performance.now();
      const bundle = await call<Bundle>('GET', `Patient/${atB.id}/$recognizable-results?code=${encodeURIComponent('http://loinc.org|2823-3')}`);
      return { ms: performance.now() - started, total: bundle.total ?? 0 };
    };
    for (let i = 0; i < 20; i++) await ask();
    const load = os.loadavg()[0];
    const times: number[] = [];
    let found = 0;
    for (let i = 0; i < requests; i++) {
      const { ms, total } = await ask();
      times.push(ms);
      found = total;
    }
    times.sort((a, b) => a - b);
    const line = `| ${observations} | ${requests} | ${found} | ${quantile(times, 0.5).toFixed(1)} | ${quantile(times, 0.9).toFixed(1)} | ${quantile(times, 0.99).toFixed(1)} |`;
    console.log(`observations ${observations} (loaded in ${loadSeconds.toFixed(1)} s), found ${found}, p50 ${quantile(times, 0.5).toFixed(1)} ms, p90 ${quantile(times, 0.9).toFixed(1)} ms, p99 ${quantile(times, 0.99).toFixed(1)} ms`);
    writeSection(
      'recognition',
      [
        '## Result recognition on demand (issue 9, `npm run bench:recognition`)',
        '',
        `Command: \`npm run bench:recognition -- --observations ${observations} --requests ${requests}\`. Machine: ${machine}.`,
        '',
        "`GET Patient/[id]/$recognizable-results?code=http://loinc.org|2823-3` over HTTP with an administrator's token, one request at a time,",
        "from the resident's record at hospital B, whose results are all filed at hospital A (linked through a golden",
        'record). Target: p50 under 50 ms for a resident with 5,000 Observations.',
        '',
        `Load average when the measurement started: ${load.toFixed(1)} on ${os.cpus().length} cores${load > os.cpus().length ? ' (a shared machine: other work competed for the CPU, so these figures are high and noisy; re-run on an idle machine)' : ''}.`,
        '',
        '| observations | requests | results found | p50 ms | p90 ms | p99 ms |',
        '| --- | --- | --- | --- | --- | --- |',
        line,
      ].join('\n'),
    );
  } finally {
    await platform.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
