/**
 * npm run bench:terminology — measures the terminology service on a synthetic 100,000-concept code system
 * (English displays, Chinese designations, a ten-way is-a tree), in a fresh database:
 *   - $lookup and $validate-code as the hot path calls them (in process, definitions cached);
 *   - the store's binding check through the BindingValidator (per coded element);
 *   - $expand with a text filter (English and Chinese) and $lookup over HTTP, p50/p95.
 * DATABASE_URL: PostgreSQL (a schema is created and dropped); unset: in-memory PGlite. CONCEPTS overrides the size.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { createFhirServer, FhirRepository, migrate, openDatabase, type Database } from '../fhir-server';
import { BindingValidator, createTerminologyService, terminologyMigrations, terminologyOperations } from '.';
import { loadCodeSystem } from './loaders/common';

const SIZE = Number(process.env.CONCEPTS ?? 100_000);
const SYSTEM = 'http://huimin.health/fhir/bench/CodeSystem/big';
const WORDS = ['glucose', 'serum', 'plasma', 'urine', 'blood', 'protein', 'enzyme', 'antibody', 'antigen', 'cell', 'count', 'ratio', 'mass', 'volume', 'activity', 'panel', 'culture', 'screen', 'level', 'index'];
const HANZI = ['血', '糖', '尿', '蛋白', '酶', '抗体', '抗原', '细胞', '计数', '比值', '质量', '体积', '活性', '组合', '培养', '筛查', '水平', '指数', '肝', '肾'];

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function time(n: number, fn: (i: number) => Promise<unknown> | unknown): Promise<{ p50: number; p95: number; mean: number }> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const started = process.hrtime.bigint();
    await fn(i);
    samples.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  samples.sort((a, b) => a - b);
  return { p50: percentile(samples, 50), p95: percentile(samples, 95), mean: samples.reduce((a, b) => a + b, 0) / n };
}

async function openBenchDatabase(): Promise<{ db: Database; drop(): Promise<void> }> {
  const base = process.env.DATABASE_URL;
  if (!base) {
    return { db: await openDatabase(undefined, undefined), drop: async () => undefined };
  }
  const schema = `bench_tx_${randomBytes(4).toString('hex')}`;
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

async function main(): Promise<void> {
  const { db, drop } = await openBenchDatabase();
  await migrate(db, terminologyMigrations);
  const baseUrl = 'http://127.0.0.1/fhir';
  const repository = new FhirRepository(db, { enforceReferentialIntegrity: false, baseUrl });
  const service = createTerminologyService(db, repository);

  let started = Date.now();
  await loadCodeSystem(repository, service, { resourceType: 'CodeSystem', id: 'bench-big', url: SYSTEM, version: '1', status: 'active', content: 'not-present', hierarchyMeaning: 'is-a' }, async (writer) => {
    for (let i = 1; i <= SIZE; i++) {
      const words = [WORDS[i % 20], WORDS[Math.floor(i / 20) % 20], WORDS[Math.floor(i / 400) % 20]];
      const hanzi = HANZI[i % 20] + HANZI[Math.floor(i / 20) % 20] + HANZI[Math.floor(i / 400) % 20];
      await writer.add({
        code: `C${i}`,
        display: `${words.join(' ')} ${i}`,
        parents: i > 1 ? [`C${Math.floor(i / 10)}`] : [],
        designations: [{ language: 'zh-CN', value: `${hanzi}${i}` }],
      });
    }
  });
  const loadSeconds = (Date.now() - started) / 1000;
  await repository.write((s) =>
    s.update('ValueSet', 'bench-big', { resourceType: 'ValueSet', id: 'bench-big', url: `${SYSTEM}-vs`, status: 'active', compose: { include: [{ system: SYSTEM }] } })
  );
  started = Date.now();
  await service.expand({ valueSet: `${SYSTEM}-vs`, count: 1 });
  const coldModel = (Date.now() - started) / 1000;

  const hot = { maxAgeMs: 60_000 };
  const lookup = await time(20_000, (i) => service.lookup({ system: SYSTEM, code: `C${(i % SIZE) + 1}`, ...hot }));
  const validate = await time(20_000, (i) => service.validateCode({ system: SYSTEM, code: `C${(i * 7919) % SIZE + 1}`, ...hot }));
  const validateVs = await time(20_000, (i) => service.validateCode({ valueSet: `${SYSTEM}-vs`, system: SYSTEM, code: `C${(i % 500) + 1}`, ...hot }));
  const bindings = new BindingValidator(service);
  await bindings.warm([`${SYSTEM}-vs`]);
  const binding = await time(100_000, (i) => bindings.inValueSet(`${SYSTEM}-vs`, SYSTEM, `C${(i % SIZE) + 1}`));

  // Over HTTP, through the FHIR router.
  const server = createFhirServer({
    db,
    logger: pino({ level: 'silent' }),
    publicBaseUrl: 'http://127.0.0.1',
    fhirBasePath: '/fhir',
    redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    redisPrefix: `bench-tx-${randomBytes(4).toString('hex')}`,
    maxBodyBytes: 10 * 1024 * 1024,
    maxJsonDepth: 64,
    maxPageSize: 1000,
    defaultPageSize: 20,
    enforceReferentialIntegrity: false,
    operations: terminologyOperations(service),
  });
  const listener = createServer(server.app).listen(0, '127.0.0.1');
  await new Promise((resolve) => listener.once('listening', resolve));
  const port = (listener.address() as AddressInfo).port;
  const get = async (path: string): Promise<unknown> => {
    const res = await fetch(`http://127.0.0.1:${port}/fhir/${path}`);
    if (res.status !== 200) {
      throw new Error(`${path}: ${res.status} ${await res.text()}`);
    }
    return res.json();
  };
  const vs = encodeURIComponent(`${SYSTEM}-vs`);
  const filters = ['glucose serum', 'antibody 12', '血糖', '抗体细胞', 'zzz'];
  const results: Array<[string, { p50: number; p95: number; mean: number }]> = [];
  for (const filter of filters) {
    await get(`ValueSet/$expand?url=${vs}&filter=${encodeURIComponent(filter)}&count=20`);
    results.push([`$expand filter "${filter}" count=20 (HTTP)`, await time(50, () => get(`ValueSet/$expand?url=${vs}&filter=${encodeURIComponent(filter)}&count=20`))]);
  }
  results.push(['$lookup (HTTP)', await time(500, (i) => get(`CodeSystem/$lookup?system=${encodeURIComponent(SYSTEM)}&code=C${(i % SIZE) + 1}`))]);
  results.push(['ValueSet $validate-code (HTTP)', await time(500, (i) => get(`ValueSet/$validate-code?url=${vs}&system=${encodeURIComponent(SYSTEM)}&code=C${(i % SIZE) + 1}`))]);
  await new Promise((resolve) => listener.close(resolve));
  await server.stop();

  const fmt = (ms: number): string => (ms < 1 ? `${(ms * 1000).toFixed(1)} µs` : `${ms.toFixed(2)} ms`);
  console.log(`storage: ${db.description}; ${SIZE} concepts loaded in ${loadSeconds.toFixed(1)} s; model built (first expand) in ${coldModel.toFixed(2)} s\n`);
  console.log('| what | p50 | p95 | mean |\n| --- | --- | --- | --- |');
  const rows: Array<[string, { p50: number; p95: number; mean: number }]> = [
    ['lookup, in process, warm', lookup],
    ['CodeSystem validate-code, in process, warm (cached result)', validate],
    ['ValueSet validate-code, in process, warm (cached result)', validateVs],
    ['binding check per coded element (BindingValidator, warm)', binding],
    ...results,
  ];
  for (const [what, t] of rows) {
    console.log(`| ${what} | ${fmt(t.p50)} | ${fmt(t.p95)} | ${fmt(t.mean)} |`);
  }
  await drop();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
