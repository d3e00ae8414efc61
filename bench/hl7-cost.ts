/**
 * `npm run bench:hl7-cost`: what one ORU^R01 costs the platform, in process (no MLLP, no worker processes): CPU time
 * and database round trips per message, and where the CPU goes (with `node --cpu-prof`). A loaded machine makes wall
 * time meaningless; CPU per message and round trips per message change little with load, so before/after
 * comparisons of a change to the pipeline are made with this, beside `bench:hl7`.
 *
 *   npm run build && node dist/bench/hl7-cost.js --messages 300 [--profile /tmp/hl7.cpuprofile] [--statements]
 *
 * With --profile, the CPU profile covers the measured messages only (not start-up, schema compilation or warm-up);
 * open it in Chrome DevTools or any .cpuprofile viewer.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import os from 'node:os';
import pino from 'pino';
import { adapterMigrations, createAdapters, FACILITY_TAG_CODE, FACILITY_TAG_SYSTEM } from '../adapters';
import { FhirRepository, securityMigrations, type Queryable } from '../fhir-server';
import { migrate, openDatabase, type Database } from '../fhir-server/db';
import { adminQuery } from './platform';
import { oruMessage } from './hl7-messages';

const ADMIN_URL = process.env.BENCH_POSTGRES_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

function textArg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

/** Counts the statements sent to the database, inside and outside transactions; keeps the last ones' text. */
function counted(db: Database): { db: Database; count: () => number; recent: string[] } {
  let n = 0;
  const recent: string[] = [];
  const wrap = (q: Queryable): Queryable =>
    new Proxy(q, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (prop === 'query' || prop === 'exec') {
          return (...args: unknown[]) => {
            n++;
            recent.push(String(args[0]).replace(/\s+/g, ' ').slice(0, 110));
            if (recent.length > 40) recent.shift();
            return (value as (...a: unknown[]) => unknown).apply(target, args);
          };
        }
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
  const proxy = new Proxy(db, {
    get(target, prop, receiver) {
      if (prop === 'transaction') {
        return <T>(fn: (tx: Queryable) => Promise<T>) => {
          n += 2; // BEGIN, COMMIT
          recent.push('BEGIN … COMMIT');
          return target.transaction((tx) => fn(wrap(tx)));
        };
      }
      return Reflect.get(wrap(target), prop, receiver);
    },
  });
  return { db: proxy, count: () => n, recent };
}

let sequence = 0;
function oru(facility: string, patient: number): Buffer {
  const n = ++sequence;
  return oruMessage(`C-${n}`, n, facility, patient);
}

async function main(): Promise<void> {
  const messages = arg('messages', 300);
  const dbName = `huimin_cost_${randomBytes(4).toString('hex')}`;
  await adminQuery(`CREATE DATABASE ${dbName}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${dbName}`;
  const raw = await openDatabase(url.toString(), undefined);
  try {
    await migrate(raw, [...securityMigrations, ...adapterMigrations]);
    const { db, count, recent } = counted(raw);
    const repo = new FhirRepository(db, { enforceReferentialIntegrity: true, baseUrl: 'http://127.0.0.1/fhir' });
    await repo.write((s) =>
      s.create({ resourceType: 'Organization', meta: { tag: [{ system: FACILITY_TAG_SYSTEM, code: FACILITY_TAG_CODE }] }, identifier: [{ system: 'urn:huimin:facility', value: 'COST-H1' }], name: 'COST-H1', active: true }),
    );
    const { ingest } = createAdapters({ repo, logger: pino({ level: 'silent' }) });
    const patients = 50;
    for (let k = 0; k < patients + 20; k++) {
      const result = await ingest.receive(oru('COST-H1', k % patients)); // warm-up: the patients, caches, JIT
      if (result.outcome !== 'AA') throw new Error(`warm-up message answered ${result.outcome}: ${JSON.stringify(result.problems)}`);
    }
    const profileFile = textArg('profile');
    const inspector = profileFile ? new Session() : undefined;
    if (inspector) {
      inspector.connect();
      await inspector.post('Profiler.enable');
      await inspector.post('Profiler.start');
    }
    const load = os.loadavg();
    const before = { cpu: process.cpuUsage(), queries: count(), at: performance.now() };
    for (let k = 0; k < messages; k++) {
      const result = await ingest.receive(oru('COST-H1', k % patients));
      if (result.outcome !== 'AA') throw new Error(`message answered ${result.outcome}: ${JSON.stringify(result.problems)}`);
    }
    const cpu = process.cpuUsage(before.cpu);
    const wall = performance.now() - before.at;
    if (inspector && profileFile) {
      const { profile } = await inspector.post('Profiler.stop');
      writeFileSync(profileFile, JSON.stringify(profile));
      inspector.disconnect();
    }
    if (process.argv.includes('--statements')) {
      const last = recent.lastIndexOf('BEGIN … COMMIT');
      console.log(`statements of the last message:\n  ${recent.slice(last).join('\n  ')}`);
    }
    console.log(
      [
        `ORU^R01 (one OBR, six OBX), ${messages} messages one after another, in process:`,
        `  application CPU per message: ${((cpu.user + cpu.system) / 1000 / messages).toFixed(2)} ms (user ${(cpu.user / 1000 / messages).toFixed(2)}, system ${(cpu.system / 1000 / messages).toFixed(2)})`,
        `  database statements per message: ${((count() - before.queries) / messages).toFixed(1)}`,
        `  wall time per message: ${(wall / messages).toFixed(2)} ms (${((messages * 1000) / wall).toFixed(0)} messages/s sequentially)`,
        `  load average at start: ${load.map((l) => l.toFixed(2)).join(' ')}; at end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`,
      ].join('\n'),
    );
  } finally {
    await raw.close();
    await adminQuery(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
