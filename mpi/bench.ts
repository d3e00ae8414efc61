/**
 * npm run bench:mpi — `Patient/$match` against an index of N residents (N=2,000,000 is the target; PATIENTS
 * overrides, default 20,000 so that it runs anywhere), in a fresh database:
 *   - the index's tables (mpi_patient, mpi_key) are bulk-loaded with synthetic residents: a surname among the
 *     100 commonest, a two-character given name, a birth date 1940–2020, sex, a mobile number, a resident ID for 30%;
 *   - golden Patient records are written through the store for the QUERIES residents the queries aim at (writing
 *     two million golden records through the store would take the bench hours; the others are only in the
 *     index, and a candidate without a readable golden record is skipped, as a hidden one is);
 *   - $match over HTTP (POST, admin token): by resident ID (certain), by name + birth date + sex + phone
 *     (probable), by a homophone of the name with the birth date (possible/probable); p50 and p95 in ms;
 *   - the plan of the candidate query, to show that it is index lookups (no sequential scan).
 * DATABASE_URL: PostgreSQL (a schema is created and dropped); unset: in-memory PGlite.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Patient } from '@medplum/fhirtypes';
import pino from 'pino';
import { ClientStore, createFhirServer, migrate, openDatabase, securityMigrations, type Database } from '../fhir-server';
import { deleteKeysWithPrefix } from '../test/redis-keys';
import { blockingKeys, demographicsOf, loadMpiConfig, MasterPatientIndex, mpiMigrations, residentIdCheckCharacter, RESIDENT_ID_SYSTEM, GOLDEN_TAG, MPI_SYSTEM } from '.';

const N = Number(process.env.PATIENTS ?? 20_000);
const QUERIES = Number(process.env.QUERIES ?? 300);
const BATCH = 5_000;

const SURNAMES = '王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤'.split('');
const GIVEN = '伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏飞辉建国文斌宇浩凯晨欣怡子轩雨涵梓博思佳俊鑫琳丹宁波雪松海燕志春梅林峰亮成婷慧颖'.split('');
// Homophones of some given-name characters (the usual input-method slip), for the typo queries.
const HOMOPHONE: Record<string, string> = { 伟: '玮', 芳: '方', 静: '靜', 丽: '莉', 强: '墙', 军: '君', 洋: '阳', 杰: '洁', 明: '鸣', 华: '化' };

/** A deterministic pseudo-random sequence, so that runs are comparable. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s ^ (s >>> 15), 2246822507) + 0x6d2b79f5) >>> 0;
    return s / 2 ** 32;
  };
}

function resident(i: number): Patient {
  const r = rng(i + 1);
  const family = SURNAMES[Math.floor(r() * SURNAMES.length)];
  const given = GIVEN[Math.floor(r() * GIVEN.length)] + (r() < 0.7 ? GIVEN[Math.floor(r() * GIVEN.length)] : '');
  const day = new Date(Date.UTC(1940, 0, 1) + Math.floor(r() * 80 * 365.25) * 86_400_000).toISOString().slice(0, 10);
  const gender = r() < 0.5 ? 'male' : 'female';
  const phone = `13${String(Math.floor(r() * 1e9)).padStart(9, '0')}`;
  const patient: Patient = { resourceType: 'Patient', id: `p${i}`, name: [{ family, given: [given] }], birthDate: day, gender, telecom: [{ system: 'phone', value: phone }] };
  if (r() < 0.3) {
    const seq = String(Math.floor(r() * 1000)).padStart(3, '0');
    const sexDigit = (Number(seq[2]) % 2 === 1) === (gender === 'male') ? seq : seq.slice(0, 2) + String((Number(seq[2]) + 1) % 10);
    const first17 = `340104${day.replace(/-/g, '')}${sexDigit}`;
    patient.identifier = [{ system: RESIDENT_ID_SYSTEM, value: first17 + residentIdCheckCharacter(first17) }];
  }
  return patient;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function time(n: number, fn: (i: number) => Promise<unknown>): Promise<{ p50: number; p95: number }> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const started = process.hrtime.bigint();
    await fn(i);
    samples.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  samples.sort((a, b) => a - b);
  return { p50: percentile(samples, 50), p95: percentile(samples, 95) };
}

async function openBenchDatabase(): Promise<{ db: Database; drop(): Promise<void> }> {
  const base = process.env.DATABASE_URL;
  if (!base) return { db: await openDatabase(undefined, undefined), drop: async () => undefined };
  const schema = `bench_mpi_${randomBytes(4).toString('hex')}`;
  const admin = await openDatabase(base, undefined, 1);
  await admin.exec(`CREATE SCHEMA ${schema}`);
  const url = new URL(base);
  url.searchParams.set('options', `-c search_path=${schema}`);
  const db = await openDatabase(url.toString(), undefined, 4);
  return {
    db,
    drop: async () => {
      await db.close();
      await admin.exec(`DROP SCHEMA ${schema} CASCADE`);
      await admin.close();
    },
  };
}

/** The index's rows for residents [from, to): one golden record per resident, `g<i>`. */
async function loadIndex(db: Database, from: number, to: number): Promise<void> {
  const ids: string[] = [];
  const goldens: string[] = [];
  const demographics: string[] = [];
  const keyRows: Array<[string, string]> = [];
  for (let i = from; i < to; i++) {
    const d = demographicsOf(resident(i));
    ids.push(`p${i}`);
    goldens.push(`g${i}`);
    demographics.push(JSON.stringify(d));
    for (const key of blockingKeys(d)) keyRows.push([key, `p${i}`]);
  }
  await db.query(
    `INSERT INTO mpi_patient (id, golden_id, demographics, fingerprint) SELECT u.id, u.g, u.d::jsonb, '' FROM unnest($1::text[], $2::text[], $3::text[]) AS u(id, g, d)`,
    [ids, goldens, demographics],
  );
  await db.query('INSERT INTO mpi_key (key, patient_id) SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING', [keyRows.map((k) => k[0]), keyRows.map((k) => k[1])]);
}

async function main(): Promise<void> {
  const { db, drop } = await openBenchDatabase();
  await migrate(db, [...securityMigrations, ...mpiMigrations]);
  let started = Date.now();
  for (let from = 0; from < N; from += BATCH) {
    await loadIndex(db, from, Math.min(N, from + BATCH));
    if ((from / BATCH) % 40 === 0 && from > 0) console.log(`  … ${from} residents indexed`);
  }
  await db.exec('ANALYZE mpi_patient; ANALYZE mpi_key');
  const loadSeconds = (Date.now() - started) / 1000;

  const mpi = new MasterPatientIndex({ ...loadMpiConfig(), workers: false });
  const prefix = `bench-mpi-${randomBytes(4).toString('hex')}`;
  const server = createFhirServer({
    db,
    logger: pino({ level: 'silent' }),
    publicBaseUrl: 'http://127.0.0.1',
    fhirBasePath: '/fhir',
    redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    redisPrefix: prefix,
    maxBodyBytes: 10 * 1024 * 1024,
    maxJsonDepth: 64,
    maxPageSize: 1000,
    defaultPageSize: 20,
    enforceReferentialIntegrity: false,
    security: { rateLimitPerClient: 0, accessTokenLifetimeS: 3600 },
    ...mpi.storeExtensions(),
  });
  await mpi.start({ repository: server.repository, redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', redisPrefix: prefix });
  // The golden records the queries aim at (spread over the index).
  const targets = Array.from({ length: QUERIES }, (_, q) => Math.floor((q * N) / QUERIES));
  await server.repository.write(async (s) => {
    for (const i of targets) {
      const p = resident(i);
      await s.update('Patient', `g${i}`, { ...p, id: `g${i}`, meta: { tag: [GOLDEN_TAG] }, identifier: [{ system: MPI_SYSTEM, value: `g${i}` }], link: [{ other: { reference: `Patient/p${i}` }, type: 'seealso' }] });
    }
  });
  const adminSecret = randomBytes(16).toString('hex');
  await new ClientStore(db).ensureAdmin({ clientId: 'bench-admin', secret: adminSecret });
  const listener = createServer(server.app).listen(0, '127.0.0.1');
  await new Promise((resolve) => listener.once('listening', resolve));
  const port = (listener.address() as AddressInfo).port;
  const tokenRes = await fetch(`http://127.0.0.1:${port}/auth/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`bench-admin:${adminSecret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials',
  });
  const { access_token: token } = (await tokenRes.json()) as { access_token: string };
  let matched = 0;
  const match = async (patient: Patient, expect: string): Promise<void> => {
    const res = await fetch(`http://127.0.0.1:${port}/fhir/Patient/$match`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' },
      body: JSON.stringify({ resourceType: 'Parameters', parameter: [{ name: 'resource', resource: patient }, { name: 'count', valueInteger: 5 }] }),
    });
    if (res.status !== 200) throw new Error(`$match: ${res.status} ${await res.text()}`);
    const bundle = (await res.json()) as { entry?: Array<{ resource?: { id?: string } }> };
    if (bundle.entry?.some((e) => e.resource?.id === expect)) matched++;
  };
  const withId = targets.filter((i) => resident(i).identifier);
  const byName = (i: number): Patient => {
    const { identifier: _id, ...rest } = resident(i);
    return { ...rest, id: undefined };
  };
  const typo = (i: number): Patient => {
    const p = byName(i);
    const given = p.name?.[0].given?.[0] ?? '';
    const changed = given.replace(/./, (c) => HOMOPHONE[c] ?? c);
    return { ...p, name: [{ family: p.name?.[0].family, given: [changed] }] };
  };
  for (const i of targets.slice(0, 20)) await match(byName(i), `g${i}`); // warm-up
  matched = 0;
  const results: Array<[string, { p50: number; p95: number }, number]> = [];
  started = Date.now();
  const byIdResult = await time(withId.length, (q) => match({ resourceType: 'Patient', identifier: resident(withId[q]).identifier }, `g${withId[q]}`));
  results.push([`by resident ID (${withId.length} queries)`, byIdResult, matched]);
  matched = 0;
  results.push([`by name + birth date + sex + phone (${targets.length})`, await time(targets.length, (q) => match(byName(targets[q]), `g${targets[q]}`)), matched]);
  matched = 0;
  results.push([`by a homophone of the name + birth date + sex + phone (${targets.length})`, await time(targets.length, (q) => match(typo(targets[q]), `g${targets[q]}`)), matched]);
  const d = demographicsOf(byName(targets[0]));
  const plan = await db.query<{ 'QUERY PLAN': string }>(
    `EXPLAIN SELECT p.id, p.golden_id, p.demographics FROM mpi_patient p WHERE p.id IN (SELECT k.patient_id FROM mpi_key k WHERE k.key = ANY($1::text[]) LIMIT 500)`,
    [blockingKeys(d)],
  );
  const keyCounts = await db.query<{ avg: string; max: string }>('SELECT avg(n)::numeric(10,1) AS avg, max(n) AS max FROM (SELECT count(*) AS n FROM mpi_key GROUP BY key) x');
  await new Promise((resolve) => listener.close(resolve));
  await mpi.stop();
  await server.stop();
  await drop();
  // The relay's queues under this run's prefix.
  await deleteKeysWithPrefix(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', prefix);

  console.log(`\n$match against ${N.toLocaleString()} indexed residents (${db.description}); index loaded in ${loadSeconds.toFixed(1)} s`);
  console.log(`blocking keys: ${keyCounts[0].avg} residents per key on average, ${keyCounts[0].max} at most`);
  console.log('| query | p50 ms | p95 ms | expected golden record found |');
  console.log('| --- | --- | --- | --- |');
  for (const [name, t, found] of results) console.log(`| ${name} | ${t.p50.toFixed(1)} | ${t.p95.toFixed(1)} | ${found} |`);
  console.log('\ncandidate query plan:');
  console.log(plan.map((r) => `  ${typeof r === 'string' ? r : Object.values(r)[0]}`).join('\n'));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
