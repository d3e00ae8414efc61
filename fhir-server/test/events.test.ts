/**
 * Resource-change events through the transactional outbox, against real PostgreSQL (and PGlite) and real Redis:
 * the shared test Redis under this run's prefix, and a throwaway redis-server for the outage scenario.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { Queue, Worker } from 'bullmq';
import type { Database } from '../db';
import {
  appendChangeEvents,
  OutboxRelay,
  type OutboxRelayOptions,
  RESOURCE_CHANGE_QUEUE,
  type ResourceChangeEvent,
  type ResourceChangeJob,
} from '../events';
import { createTestDatabase, type Backend } from '../../test/databases';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const ALL_STATES = ['waiting', 'active', 'completed', 'failed', 'delayed', 'prioritized'] as const;

/** Closed in afterAll, whatever a test did, so that jest exits cleanly. */
const cleanups: Array<() => Promise<unknown>> = [];
/** Killed after the cleanups, so that no client is closed against a dead server (which delays exit). */
const redisServers: Array<() => Promise<void>> = [];

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) {
    await cleanup();
  }
  for (const stop of redisServers) {
    await stop();
  }
});

async function testDatabase(backend: Backend): Promise<Database> {
  const db = await createTestDatabase(backend);
  cleanups.push(() => db.close());
  return db;
}

function prefixFor(suffix: string): string {
  const base = process.env.TEST_REDIS_PREFIX;
  if (!base) {
    throw new Error('TEST_REDIS_PREFIX is not set: run the tests through jest (test/global-setup.ts)');
  }
  return `${base}-events-${suffix}`;
}

function event(id: string, versionId: number, interaction: ResourceChangeEvent['interaction'] = 'update'): ResourceChangeEvent {
  return {
    resourceType: 'Patient',
    id,
    versionId,
    interaction,
    occurredAt: new Date(Date.UTC(2026, 0, 1, 0, 0, versionId)).toISOString(),
  };
}

async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) {
      throw new Error(`Timed out waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** A queue handle for inspecting what the relay published. */
function inspector(prefix: string, connection: object = { url: REDIS_URL }): Queue<ResourceChangeJob> {
  const queue = new Queue<ResourceChangeJob>(RESOURCE_CHANGE_QUEUE, { connection, prefix });
  cleanups.push(() => queue.close());
  return queue;
}

async function jobsInOrder(queue: Queue<ResourceChangeJob>): Promise<ResourceChangeJob[]> {
  const jobs = await queue.getJobs([...ALL_STATES], 0, -1, true);
  return jobs.map((job) => job.data as ResourceChangeJob);
}

function startRelay(db: Database, options: Partial<OutboxRelayOptions> & { prefix: string }) {
  const relay = new OutboxRelay(db, {
    redisUrl: REDIS_URL,
    idleIntervalMs: 100,
    logger: { warn: () => undefined, info: () => undefined },
    ...options,
  });
  relay.start();
  cleanups.push(() => relay.stop());
  return relay;
}

describe.each<Backend>(['postgres', 'pglite'])('outbox relay on %s', (backend) => {
  let db: Database;

  beforeAll(async () => {
    db = await testDatabase(backend);
  });

  it('delivers committed events in order with their payload and jobIds, never rolled-back ones', async () => {
    const prefix = prefixFor(`${backend}-order`);
    const queue = inspector(prefix);
    const relay = startRelay(db, { prefix });

    const committed = [event('a', 1, 'create'), event('b', 1, 'create'), event('a', 2, 'update'), event('b', 2, 'delete')];
    await db.transaction((tx) => appendChangeEvents(tx, committed.slice(0, 3)));
    await expect(
      db.transaction(async (tx) => {
        await appendChangeEvents(tx, [event('rolled-back', 1, 'create')]);
        throw new Error('abort the change');
      }),
    ).rejects.toThrow('abort the change');
    await db.transaction((tx) => appendChangeEvents(tx, committed.slice(3)));
    relay.notify();

    await waitFor('four jobs', async () => (await queue.count()) === 4 && (await relay.pending()) === 0);
    const jobs = await jobsInOrder(queue);
    expect(jobs.map(({ seq: _seq, ...rest }) => rest)).toEqual(
      committed.map((e) => ({ ...e, eventId: `Patient/${e.id}/_history/${e.versionId}` })),
    );
    const seqs = jobs.map((j) => j.seq);
    expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);
    const stored = await queue.getJobs([...ALL_STATES]);
    expect(stored.map((j) => j.id).sort()).toEqual(jobs.map((j) => j.eventId).sort());
    expect(relay.healthy).toBe(true);
  });

  it('publishes to each consumer queue the events of the types it wants, in order', async () => {
    const prefix = prefixFor(`${backend}-targets`);
    // A database of its own: the relays of the other tests, still running, would take these events from a shared outbox.
    const db = await testDatabase(backend);
    const all = new Queue<ResourceChangeJob>('all-events', { connection: { url: REDIS_URL }, prefix });
    const tasks = new Queue<ResourceChangeJob>('task-events', { connection: { url: REDIS_URL }, prefix });
    cleanups.push(() => all.close(), () => tasks.close());
    const relay = startRelay(db, { prefix, queues: [{ name: 'all-events' }, { name: 'task-events', resourceTypes: ['Task'] }] });
    const events = [event('p', 1, 'create'), { ...event('t', 1, 'create'), resourceType: 'Task' }, event('p', 2), { ...event('t', 2), resourceType: 'Task' }];
    await db.transaction((tx) => appendChangeEvents(tx, events));
    relay.notify();
    await waitFor('the jobs', async () => (await all.count()) === 4 && (await tasks.count()) === 2);
    expect((await jobsInOrder(all)).map((j) => j.eventId)).toEqual(['Patient/p/_history/1', 'Task/t/_history/1', 'Patient/p/_history/2', 'Task/t/_history/2']);
    expect((await jobsInOrder(tasks)).map((j) => j.eventId)).toEqual(['Task/t/_history/1', 'Task/t/_history/2']);
    expect(await inspector(prefix).count()).toBe(0); // nothing for resource-changes when consumer queues are given
  });

  it('does not deliver twice an event re-relayed after a crash between queue add and outbox delete', async () => {
    const prefix = prefixFor(`${backend}-crash`);
    const queue = inspector(prefix);
    const events = [event('c', 1, 'create'), event('c', 2, 'patch')];
    await db.transaction((tx) => appendChangeEvents(tx, events));
    // What a relay that died after addBulk but before its DELETE committed leaves behind: the rows and the jobs.
    const [{ seq }] = await db.query<{ seq: number }>('SELECT min(seq) AS seq FROM outbox');
    await queue.addBulk(
      events.map((e, i) => {
        const eventId = `Patient/${e.id}/_history/${e.versionId}`;
        return { name: e.interaction, data: { ...e, eventId, seq: Number(seq) + i }, opts: { jobId: eventId } };
      }),
    );

    const relay = startRelay(db, { prefix });
    await waitFor('the outbox to drain', async () => (await relay.pending()) === 0);
    expect(await queue.count()).toBe(2);
  });
});

describe('outbox relay with Redis failures and competition (PostgreSQL)', () => {
  let db: Database;

  beforeEach(async () => {
    db = await testDatabase('postgres');
  });

  it('loses no event written while Redis is down, and delivers each exactly once when it is back', async () => {
    const port = await freePort();
    let redis = await startRedisServer(port);
    const childUrl = `redis://127.0.0.1:${port}`;
    const prefix = prefixFor('outage');
    const warnings: string[] = [];
    const relay = startRelay(db, {
      prefix,
      redisUrl: childUrl,
      maxBackoffMs: 400,
      commandTimeoutMs: 1000,
      logger: { warn: (_obj, msg) => warnings.push(msg), info: () => undefined },
    });
    const delivered: string[] = [];
    const worker = new Worker<ResourceChangeJob>(
      RESOURCE_CHANGE_QUEUE,
      async (job) => {
        delivered.push(job.data.eventId);
      },
      // Reconnect quickly after the restart instead of BullMQ's default of up to 20 s.
      { connection: { host: '127.0.0.1', port, retryStrategy: () => 100 }, prefix },
    );
    worker.on('error', () => undefined);
    cleanups.push(() => worker.close(true));

    const before = [1, 2, 3].map((v) => event('before', v));
    for (const e of before) {
      await db.transaction((tx) => appendChangeEvents(tx, [e]));
      relay.notify();
    }
    await waitFor('the events before the outage to be processed', () => delivered.length === before.length);

    await redis.stop();
    const during = [1, 2, 3, 4, 5].map((v) => event('during', v));
    for (const e of during) {
      // The API's write path: must succeed although Redis is gone.
      await db.transaction((tx) => appendChangeEvents(tx, [e]));
      relay.notify();
    }
    await waitFor('the relay to notice the outage', () => !relay.healthy);
    // Let it retry a few times with backoff: still one warning, and the events wait in the outbox.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(await relay.pending()).toBe(during.length);
    expect(relay.healthy).toBe(false);
    expect(warnings).toHaveLength(1);

    redis = await startRedisServer(port);
    await waitFor('the outbox to drain', async () => (await relay.pending()) === 0);
    await waitFor('every event to be processed', () => delivered.length >= before.length + during.length);
    // Give a duplicate, if there were one, the time to show up.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect([...delivered].sort()).toEqual([...before, ...during].map((e) => `Patient/${e.id}/_history/${e.versionId}`).sort());
    expect(relay.healthy).toBe(true);

    // The restarted Redis (no persistence) holds exactly the jobs relayed after the outage.
    const queue = inspector(prefix, { host: '127.0.0.1', port });
    const ids = (await queue.getJobs([...ALL_STATES])).map((j) => j.id);
    expect(ids.sort()).toEqual(during.map((e) => `Patient/${e.id}/_history/${e.versionId}`).sort());
  });

  it('never lets two relays on the same database deliver the same row', async () => {
    const events = Array.from({ length: 200 }, (_, i) => event(`competed-${i}`, 1, 'create'));
    await db.transaction((tx) => appendChangeEvents(tx, events));
    // Separate prefixes make a row relayed by both visible (jobId dedup would hide it within one queue).
    const prefixes = [prefixFor('compete-1'), prefixFor('compete-2')];
    const relays = prefixes.map((prefix) => startRelay(db, { prefix, batchSize: 5 }));
    await waitFor('the outbox to drain', async () => (await relays[0].pending()) === 0);

    const [first, second] = await Promise.all(
      prefixes.map(async (prefix) => (await inspector(prefix).getJobs([...ALL_STATES])).map((j) => j.id ?? '')),
    );
    expect(first.filter((id) => second.includes(id))).toEqual([]);
    expect([...first, ...second].sort()).toEqual(events.map((e) => `Patient/${e.id}/_history/1`).sort());
    // Both took part, so the test did exercise the row locking.
    expect(first.length).toBeGreaterThan(0);
    expect(second.length).toBeGreaterThan(0);
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** A throwaway redis-server without persistence; stop() kills it with SIGKILL, like a crash. */
async function startRedisServer(port: number): Promise<{ stop(): Promise<void> }> {
  const child: ChildProcess = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
    }
    await exited;
  };
  redisServers.push(stop);
  await new Promise<void>((resolve, reject) => {
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) {
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`redis-server exited (${code}): ${output}`)));
  });
  return { stop };
}
