/**
 * A worker process dying mid-flow: BullMQ hands its unfinished steps to the workers that remain once their lock
 * expires, and the repeated steps create nothing twice (no second notification, no second appointment).
 */
import type { Appointment, Bundle, Communication, Slot, Task } from '@medplum/fhirtypes';
import { codes, type ReferralMessageSender } from '..';
import { deleteKeysWithPrefix } from '../../test/redis-keys';
import { api, createHarness, waitFor, type Harness } from './harness';
import { addSlots, buildCity, submitReferral, type City } from './fixtures';

let h: Harness;
let fhir: ReturnType<typeof api>;
let city: City;
const sent: string[] = [];
/** The first process's HL7 link hangs on its first message: the notify step is caught half done. */
let hangFirst = true;
const hangingHl7: ReferralMessageSender = {
  sendReferral: ({ task }) => {
    if (hangFirst) {
      hangFirst = false;
      return new Promise(() => undefined);
    }
    sent.push(task.id as string);
    return Promise.resolve();
  },
};
const workingHl7: ReferralMessageSender = { sendReferral: async ({ task }) => void sent.push(task.id as string) };

beforeAll(async () => {
  // Short locks, so that a dead worker's jobs are taken over within a couple of seconds.
  h = await createHarness({}, { hl7: hangingHl7 }, { lockDurationMs: 1500, stalledIntervalMs: 1000 });
  fhir = api(h.server);
  city = await buildCity(fhir);
  await addSlots(fhir, city.schedule, 30, Date.now() + 24 * 3600_000);
});
afterAll(() => h.close());

const count = async (path: string): Promise<number> => ((await fhir.search(`${path}&_summary=count`)) as Bundle).total ?? 0;

describe('crash and resume', () => {
  it('resumes a step a dead worker left half done, without a second notification', async () => {
    const { taskId } = await submitReferral(fhir, city, { from: city.clinic, to: city.hospital, direction: 'up' });
    // The notify step has written its Communication and hangs in the HL7 send.
    await waitFor(async () => (await count(`Communication?based-on=Task/${taskId}`)) === 1 || undefined, 10_000, 'notification');
    expect(sent).toEqual([]);
    await h.workflow.kill();
    const second = h.startWorkers({ hl7: workingHl7 });
    await waitFor(() => sent.includes(taskId) || undefined, 15_000, 'HL7 message from the second worker');
    expect(await count(`Communication?based-on=Task/${taskId}`)).toBe(1);
    expect(sent.filter((id) => id === taskId)).toHaveLength(1);
    h.workflow = second;
  });

  it('loses and duplicates nothing when the workers die during a burst of referrals', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      ids.push((await submitReferral(fhir, city, { from: city.clinic, to: city.hospital, direction: 'up' })).taskId);
    }
    // The receiver accepts each referral as soon as it is routed, while the workers die and come back.
    const accepted = new Set<string>();
    const acceptRouted = async (): Promise<void> => {
      for (const id of ids.filter((x) => !accepted.has(x))) {
        const task = await fhir.read<Task>('Task', id);
        if (task.status === 'received') {
          await fhir.post(`Task/${id}/$accept`, { resourceType: 'Parameters', parameter: [{ name: 'actor', valueReference: { reference: `Organization/${city.hospital.id}` } }] }).expect(200);
          accepted.add(id);
        }
      }
    };
    await waitFor(async () => {
      await acceptRouted();
      return accepted.size >= 5 || undefined;
    }, 15_000, 'first acceptances');
    await h.workflow.kill();
    h.workflow = h.startWorkers({ hl7: workingHl7 });
    await waitFor(async () => {
      await acceptRouted();
      return accepted.size === ids.length || undefined;
    }, 30_000, 'every referral routed and accepted');
    await waitFor(async () => {
      const tasks = await Promise.all(ids.map((id) => fhir.read<Task>('Task', id)));
      return tasks.every((t) => codes.businessStatusOf(t) === 'booked') || undefined;
    }, 30_000, 'every referral booked');
    for (const id of ids) {
      const notices = (await fhir.search(`Communication?based-on=Task/${id}&_count=20`)).entry?.map((e) => e.resource as Communication) ?? [];
      // One routed notice to the receiver, one booked notice to the coordinator.
      expect(notices.map((c) => c.identifier?.[0].value).sort()).toEqual([`${id}-booked`, `${id}-routed`]);
      const appointments = await fhir.search(`Appointment?identifier=${encodeURIComponent(codes.APPOINTMENT_ID)}|${id}`);
      expect(appointments.entry).toHaveLength(1);
      expect((appointments.entry?.[0].resource as Appointment).status).toBe('booked');
      expect(sent.filter((x) => x === id)).toHaveLength(1);
    }
    const busy = (await fhir.search(`Slot?schedule=Schedule/${city.schedule.id}&status=busy&_count=100`)).entry?.map((e) => e.resource as Slot) ?? [];
    expect(busy).toHaveLength(ids.length);
  });

  it('loses no referral when Redis loses its jobs: the Tasks say what is open', async () => {
    await h.workflow.close();
    const { taskId } = await submitReferral(fhir, city, { from: city.clinic, to: city.hospital, direction: 'up' });
    await waitFor(async () => (await h.server.relay.pending()) === 0 || undefined, 10_000, 'relay'); // the event is in Redis only...
    await deleteKeysWithPrefix(h.redisUrl, h.prefix); // ...and Redis forgets everything (a restart without persistence)
    h.workflow = h.startWorkers({ hl7: workingHl7 });
    const routed = await waitFor(async () => {
      const t = await fhir.read<Task>('Task', taskId);
      return t.status === 'received' ? t : undefined;
    }, 15_000, 'routing after recovery');
    expect(codes.businessStatusOf(routed)).toBe('routed');
    await waitFor(() => sent.includes(taskId) || undefined, 10_000, 'notification after recovery');
  });

  it('shares the work between two processes, each referral handled once', async () => {
    const notified: [string[], string[]] = [[], []];
    const ids: string[] = [];
    const first = h.startWorkers({ hl7: workingHl7, onStep: (step, id) => void (step === 'notify' && notified[0].push(id)) });
    const second = h.startWorkers({ hl7: workingHl7, onStep: (step, id) => void (step === 'notify' && notified[1].push(id)) });
    const mine = (list: string[]): number => list.filter((id) => ids.includes(id)).length;
    await h.workflow.close();
    h.workflow = first;
    for (let i = 0; i < 30; i++) {
      ids.push((await submitReferral(fhir, city, { from: city.clinic, to: city.hospital, direction: 'up' })).taskId);
    }
    await waitFor(() => mine(notified[0]) + mine(notified[1]) >= ids.length || undefined, 30_000, 'every referral notified');
    for (const id of ids) {
      expect(await count(`Communication?based-on=Task/${id}`)).toBe(1);
    }
    expect(mine(notified[0]) + mine(notified[1])).toBe(ids.length);
    expect(mine(notified[0])).toBeGreaterThan(0);
    expect(mine(notified[1])).toBeGreaterThan(0);
    await second.close();
  });
});
