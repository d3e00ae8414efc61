/** Appointment booking: slots turn busy in the booking's transaction, the last-slot race, cancel, no-show, reservations. */
import type { Appointment, Bundle, HealthcareService, MeasureReport, Organization, Patient, Schedule, ServiceRequest, Slot } from '@medplum/fhirtypes';
import { api, createHarness, waitFor, type Harness } from './harness';
import { codes, reservationOf } from '..';

let h: Harness;
let fhir: ReturnType<typeof api>;
let patient: Patient;
let schedule: Schedule;
let hospital: Organization;

const HOUR = 3600_000;
const at = (ms: number): string => new Date(ms).toISOString();

async function slot(startMs: number, status: Slot['status'] = 'free', on = schedule): Promise<Slot> {
  return fhir.create<Slot>({ resourceType: 'Slot', schedule: { reference: `Schedule/${on.id}` }, status, start: at(startMs), end: at(startMs + 15 * 60_000) });
}

/** A free slot (the schedule's reservation rule holds back every third one: create until one is free). */
async function freeSlot(startMs: number, extra: Partial<Slot> = {}): Promise<Slot> {
  for (let i = 0; ; i++) {
    const s = await fhir.create<Slot>({ resourceType: 'Slot', schedule: { reference: `Schedule/${schedule.id}` }, status: 'free', start: at(startMs + i * HOUR), end: at(startMs + i * HOUR + 900_000), ...extra });
    if (s.status === 'free') {
      return s;
    }
  }
}

const appointment = (s: Slot, extra: Partial<Appointment> = {}): Appointment => ({
  resourceType: 'Appointment',
  status: 'booked',
  slot: [{ reference: `Slot/${s.id}` }],
  participant: [{ actor: { reference: `Patient/${patient.id}` }, status: 'accepted' }],
  ...extra,
});

beforeAll(async () => {
  // A third of the slots of each schedule reserved for referrals, released 2 hours before their start.
  h = await createHarness({ REFERRAL_SLOT_SHARE: '0.34', REFERRAL_SLOT_RELEASE_BEFORE: 'PT2H' });
  fhir = api(h.server);
  patient = await fhir.create<Patient>({ resourceType: 'Patient', name: [{ family: '李' }] });
  hospital = await fhir.create<Organization>({ resourceType: 'Organization', name: '市第一人民医院', address: [{ district: '东城区' }] });
  const cardiology = await fhir.create<HealthcareService>({ resourceType: 'HealthcareService', providedBy: { reference: `Organization/${hospital.id}` }, name: '心内科', specialty: [{ coding: [{ system: 'http://snomed.info/sct', code: '394579002' }] }] });
  schedule = await fhir.create<Schedule>({ resourceType: 'Schedule', active: true, actor: [{ reference: `HealthcareService/${cardiology.id}` }] });
});
afterAll(() => h.close());

describe('booking', () => {
  it('turns the slot busy in the same transaction, and answers 409 for a slot no longer free', async () => {
    const s = await slot(Date.now() + 48 * HOUR);
    expect(s.status).toBe('free'); // the first slot of the schedule is not reserved (k=0)
    const booked = await fhir.create<Appointment>(appointment(s));
    // The slot's times were filled in (a booked appointment needs them).
    expect(booked.start).toBe(s.start);
    expect((await fhir.read<Slot>('Slot', s.id as string)).status).toBe('busy');
    const again = await fhir.post('Appointment', appointment(s)).expect(409);
    expect(again.body.resourceType).toBe('OperationOutcome');
    expect(again.body.issue[0].diagnostics).toContain(`Slot/${s.id} is no longer free`);
  });

  it('gives exactly one appointment for a hundred concurrent bookings of the last slot', async () => {
    const free = await freeSlot(Date.now() + 72 * HOUR);
    const results = await Promise.all(Array.from({ length: 100 }, () => fhir.post('Appointment', appointment(free))));
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((x) => x === 201)).toHaveLength(1);
    expect(statuses.filter((x) => x === 409)).toHaveLength(99);
    const found = await fhir.search(`Appointment?slot=Slot/${free.id}`);
    expect(found.entry).toHaveLength(1);
  });

  it('books through Appointment/$book (Argonaut) with the same rule', async () => {
    const s = await freeSlot(Date.now() + 80 * HOUR);
    const params = { resourceType: 'Parameters', parameter: [{ name: 'appt-resource', resource: appointment(s, { status: 'proposed' }) }] };
    const res = await fhir.post('Appointment/$book', params).expect(200);
    const booked = (res.body as Bundle).entry?.[0].resource as Appointment;
    expect([booked.status, booked.start]).toEqual(['booked', s.start]);
    expect((await fhir.read<Slot>('Slot', s.id as string)).status).toBe('busy');
    const again = await fhir.post('Appointment/$book', params).expect(409);
    expect(again.body.issue[0].diagnostics).toContain('is no longer free');
    await fhir.post('Appointment/$book', { resourceType: 'Parameters', parameter: [] }).expect(400);
  });

  it('frees the slot on cancellation and keeps it on a no-show', async () => {
    const free1 = await freeSlot(Date.now() + 96 * HOUR);
    const a = await fhir.create<Appointment>(appointment(free1));
    await fhir.update({ ...a, status: 'cancelled', cancelationReason: { text: 'patient asked' } });
    expect((await fhir.read<Slot>('Slot', free1.id as string)).status).toBe('free');
    // Booked again by someone else, who does not come.
    const b = await fhir.create<Appointment>(appointment(free1));
    const noshow = (await fhir.update({ ...b, status: 'noshow' })).body as Appointment;
    expect(noshow.status).toBe('noshow');
    expect((await fhir.read<Slot>('Slot', free1.id as string)).status).toBe('busy');
    const noshows = await fhir.search(`Appointment?status=noshow&patient=Patient/${patient.id}`);
    expect(noshows.entry?.map((e) => e.resource?.id)).toContain(b.id);
  });

  it('finds free slots across the city with plain FHIR search, by specialty, with _include of the schedule and its actor', async () => {
    const other = await fhir.create<Schedule>({ resourceType: 'Schedule', active: true, actor: [{ reference: `Organization/${hospital.id}` }] as Schedule['actor'] });
    await slot(Date.now() + 120 * HOUR, 'free', other); // another department: not cardiology
    const mine = await freeSlot(Date.now() + 121 * HOUR, { specialty: [{ coding: [{ system: 'http://snomed.info/sct', code: '394579002' }] }] });
    const from = at(Date.now());
    // Slot.specialty is a search parameter of its own; hospital and district go through Schedule?actor=… first
    // (chained parameters such as schedule.actor:HealthcareService.specialty are not supported by the store yet).
    const bundle: Bundle = await fhir.search(
      `Slot?status=free&start=ge${encodeURIComponent(from)}&specialty=394579002&_include=Slot:schedule&_include:iterate=Schedule:actor&_count=100`,
    );
    const slots = bundle.entry?.filter((e) => e.search?.mode === 'match') ?? [];
    const included = bundle.entry?.filter((e) => e.search?.mode === 'include') ?? [];
    expect(slots.length).toBeGreaterThan(0);
    expect(slots.every((e) => (e.resource as Slot).status === 'free')).toBe(true);
    expect(slots.map((e) => e.resource?.id)).toContain(mine.id);
    expect(slots.every((e) => (e.resource as Slot).schedule.reference === `Schedule/${schedule.id}`)).toBe(true);
    expect(included.map((e) => e.resource?.resourceType).sort()).toEqual(['HealthcareService', 'Schedule']);
  });

  it('reserves a share of a schedule for referrals, refuses it to the public, and releases it before the slot', async () => {
    const published = await fhir.create<Schedule>({ resourceType: 'Schedule', active: true, actor: [{ reference: `Organization/${hospital.id}` }] as Schedule['actor'] });
    const start = Date.now() + 30 * HOUR;
    const transaction: Bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: Array.from({ length: 9 }, (_, i) => ({
        resource: { resourceType: 'Slot', schedule: { reference: `Schedule/${published.id}` }, status: 'free', start: at(start + i * HOUR), end: at(start + i * HOUR + 15 * 60_000) } as Slot,
        request: { method: 'POST' as const, url: 'Slot' },
      })),
    };
    await fhir.post('', transaction).expect(200);
    const all = (await fhir.search(`Slot?schedule=Schedule/${published.id}&_count=100&_sort=start`)).entry?.map((e) => e.resource as Slot) ?? [];
    const reserved = all.filter((s) => reservationOf(s) === 'reserved');
    expect(reserved).toHaveLength(3); // 0.34 × 9
    expect(reserved.every((s) => s.status === 'busy-unavailable')).toBe(true);
    // The public cannot book a reserved slot; an appointment based on a referral can.
    const publicTry = await fhir.post('Appointment', appointment(reserved[0])).expect(409);
    expect(publicTry.body.issue[0].diagnostics).toContain('reserved for referrals');
    const referral = await fhir.create<ServiceRequest>({
      resourceType: 'ServiceRequest',
      status: 'active',
      intent: 'order',
      category: [{ coding: [{ system: codes.SNOMED, code: codes.REFERRAL_CATEGORY }] }],
      extension: [{ url: codes.DIRECTION_EXTENSION, valueCode: 'up' }],
      subject: { reference: `Patient/${patient.id}` },
    });
    await fhir.create<Appointment>(appointment(reserved[0], { basedOn: [{ reference: `ServiceRequest/${referral.id}` }] }));
    const used = await fhir.read<Slot>('Slot', reserved[0].id as string);
    expect([used.status, reservationOf(used)]).toEqual(['busy', 'used']);
    // Time passes until 2 hours before the second reserved slot: it goes to the public; the third stays reserved.
    h.clock.set(Date.parse(reserved[1].start) - 2 * HOUR + 1000);
    const released = await waitFor(async () => {
      await h.workflow.engine.promoteDueTimers();
      const s = await fhir.read<Slot>('Slot', reserved[1].id as string);
      return s.status === 'free' ? s : undefined;
    }, 10_000, 'release');
    expect(reservationOf(released)).toBe('released');
    expect(reservationOf(await fhir.read<Slot>('Slot', reserved[2].id as string))).toBe('reserved');

    // The bureau's figure: reserved-slot use per institution (the schedule's actor) and month.
    const month = (reserved[0].start as string).slice(0, 7);
    const report = await fhir.search(`$referral-report?period-start=${month}&period-end=2999-01-01`);
    const mine = report.entry?.map((e) => e.resource as MeasureReport).filter((r) => r.reporter?.reference === `Organization/${hospital.id}`) ?? [];
    const total = (code: string): number => mine.reduce((n, r) => n + (r.group?.find((g) => g.code?.coding?.[0].code === code)?.population?.[0].count ?? 0), 0);
    expect([total('slots-reserved'), total('slots-used'), total('slots-released'), total('slots-unused')]).toEqual([3, 1, 1, 1]);
  });
});
