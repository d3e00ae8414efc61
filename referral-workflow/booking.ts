/**
 * Appointment booking as store rules: writing an Appointment that holds a Slot (status booked, arrived, …) turns
 * the Slot busy in the same transaction, and refuses with 409 when the Slot is no longer free; cancelling (or
 * deleting) the Appointment frees it again. Plain FHIR create, update, transaction bundles and the engine all go
 * through the same rule, so there is no second booking path to keep consistent.
 *
 * The race: every booking reads the Slot, then updates it with If-Match on the version it read. The update locks
 * the Slot's row; of a hundred concurrent bookings one gets the lock first and commits, and the others, once the
 * lock is released, find a newer version and fail with 412, answered here as 409 "no longer free".
 *
 * Slots held back for referrals: when a schedule's slots are published, a share of them (REFERRAL_SLOT_SHARE) is
 * created `busy-unavailable` with the meta tag slot-reservation|reserved instead of `free`, so that public searches
 * (`Slot?status=free`) do not offer them. Only an Appointment based on a ServiceRequest (a referral) may book one;
 * the engine releases unused ones to the public REFERRAL_SLOT_RELEASE_BEFORE the slot's start.
 */
import type { Appointment, Bundle, Coding, Resource, Slot } from '@medplum/fhirtypes';
import {
  badRequest,
  conflict,
  FhirError,
  operationParameters,
  unprocessable,
  type FhirOperation,
  type InterceptedWrite,
  type WriteInterceptor,
  type WriteSession,
} from '../fhir-server';
import { localRef, RESERVATION_SYSTEM } from './fhir';

/** Appointment statuses that occupy their slots (a no-show keeps the slot: the time has passed unused). */
const HOLDING = new Set(['pending', 'booked', 'arrived', 'fulfilled', 'checked-in', 'noshow']);

export type ReservationState = 'reserved' | 'used' | 'released';

export function reservationOf(slot: Slot): ReservationState | undefined {
  const code = slot.meta?.tag?.find((t) => t.system === RESERVATION_SYSTEM)?.code;
  return code === 'reserved' || code === 'used' || code === 'released' ? code : undefined;
}

/** The slot with its reservation tag set to `state` (other tags kept). */
export function withReservation<T extends Slot>(slot: T, state: ReservationState): T {
  const tags: Coding[] = (slot.meta?.tag ?? []).filter((t) => t.system !== RESERVATION_SYSTEM);
  tags.push({ system: RESERVATION_SYSTEM, code: state, display: `Referral reservation: ${state}` });
  return { ...slot, meta: { ...slot.meta, tag: tags } };
}

function heldSlots(appointment: Appointment | undefined): string[] {
  if (!appointment || !HOLDING.has(appointment.status)) {
    return [];
  }
  return (appointment.slot ?? []).map((s) => localRef(s)).filter((r) => r?.resourceType === 'Slot').map((r) => r!.id);
}

function isReferralAppointment(appointment: Appointment): boolean {
  return (appointment.basedOn ?? []).some((r) => localRef(r)?.resourceType === 'ServiceRequest');
}

async function takeSlot(session: WriteSession, appointment: Appointment, slotId: string): Promise<Slot> {
  const slot = await session.read<Slot>('Slot', slotId);
  if (!slot) {
    throw unprocessable([{ severity: 'error', code: 'not-found', diagnostics: `Slot/${slotId} does not exist`, expression: ['Appointment.slot'] }]);
  }
  const reserved = slot.status === 'busy-unavailable' && reservationOf(slot) === 'reserved';
  if (reserved && !isReferralAppointment(appointment)) {
    throw conflict(`Slot/${slotId} is reserved for referrals; book it with an Appointment based on the referral's ServiceRequest, or choose a free slot`);
  }
  if (slot.status !== 'free' && !reserved) {
    throw conflict(`Slot/${slotId} is no longer free (status ${slot.status}); choose another slot`);
  }
  const busy: Slot = { ...(reserved ? withReservation(slot, 'used') : slot), status: 'busy' };
  try {
    await session.update('Slot', slotId, busy, Number(slot.meta?.versionId));
  } catch (err) {
    if (err instanceof FhirError && err.status === 412) {
      throw conflict(`Slot/${slotId} was booked by someone else a moment ago; choose another slot`);
    }
    throw err;
  }
  return slot;
}

async function freeSlot(session: WriteSession, slotId: string): Promise<void> {
  const slot = await session.read<Slot>('Slot', slotId);
  if (!slot || slot.status !== 'busy') {
    return;
  }
  // A freed reserved slot goes to the public: the referral that held it no longer needs it.
  const freed: Slot = { ...(reservationOf(slot) === 'used' ? withReservation(slot, 'released') : slot), status: 'free' };
  await session.update('Slot', slotId, freed);
}

/** Appointment writes hold and free their slots. */
export function appointmentSlotRule(): WriteInterceptor {
  return {
    resourceTypes: ['Appointment'],
    async beforeWrite(session: WriteSession, write: InterceptedWrite): Promise<Resource | void> {
      const appointment = write.resource as Appointment | undefined;
      const before = heldSlots(write.previous as Appointment | undefined);
      const after = heldSlots(appointment);
      let taken: Slot | undefined;
      for (const id of after.filter((s) => !before.includes(s))) {
        const slot = await takeSlot(session, appointment as Appointment, id);
        taken ??= slot;
      }
      for (const id of before.filter((s) => !after.includes(s))) {
        await freeSlot(session, id);
      }
      // A booked appointment needs its times (FHIR invariant app-3): take them from the slot when absent.
      if (appointment && taken && !appointment.start && taken.start && taken.end) {
        return { ...appointment, start: taken.start, end: taken.end };
      }
    },
  };
}

/**
 * Slot creations: a share of each schedule's new free slots is held back for referrals. The decision counts the
 * schedule's slots (those already stored plus those created earlier in the same transaction, for a bundle that
 * publishes a whole schedule) and reserves the k-th slot when floor(k × share) steps up, which spreads the reserved
 * ones evenly through the schedule. Two transactions publishing the same schedule at once may both count the same
 * k; the share is then approximate, never wrong by more than the number of concurrent publishers.
 */
export function slotReservationRule(share: number): WriteInterceptor {
  const counted = new WeakMap<WriteSession, Map<string, number>>();
  return {
    resourceTypes: ['Slot'],
    async beforeWrite(session: WriteSession, write: InterceptedWrite): Promise<Resource | void> {
      const slot = write.resource as Slot | undefined;
      const schedule = localRef(slot?.schedule);
      if (share <= 0 || write.interaction !== 'create' || !slot || slot.status !== 'free' || !schedule || reservationOf(slot)) {
        return;
      }
      const perSchedule = counted.get(session) ?? new Map<string, number>();
      counted.set(session, perSchedule);
      let k = perSchedule.get(schedule.id);
      if (k === undefined) {
        k = (await session.find('Slot', `schedule=Schedule/${schedule.id}`, 1_000_000)).length;
      }
      perSchedule.set(schedule.id, k + 1);
      if (Math.floor((k + 1) * share) > Math.floor(k * share)) {
        return { ...withReservation(slot, 'reserved'), status: 'busy-unavailable' };
      }
    },
  };
}

/**
 * `POST Appointment/$book`, modelled on the Argonaut Scheduling operation: the Appointment comes as the
 * `appt-resource` parameter and is booked (status `booked` unless given) through the same rule as a plain create,
 * so a slot no longer free answers 409. The answer is a Bundle with the booked Appointment.
 */
export const bookOperation: FhirOperation = {
  name: 'book',
  definition: 'http://fhir.org/guides/argonaut-scheduling/OperationDefinition/appointment-book',
  levels: ['type'],
  resourceTypes: ['Appointment'],
  affectsState: true,
  invoke: async (ctx, request) => {
    const given = operationParameters(request).parameter?.find((p) => p.name === 'appt-resource')?.resource as Appointment | undefined;
    if (given?.resourceType !== 'Appointment') {
      throw badRequest('Parameter "appt-resource" is required: the Appointment to book, referencing its Slot');
    }
    if (!given.slot?.length) {
      throw badRequest('The Appointment to book references no Slot', ['Appointment.slot']);
    }
    const { id: _ignored, ...appointment } = given;
    const booked = (await ctx.repo.write((s) => s.create({ ...appointment, status: given.status === 'pending' ? 'pending' : 'booked' }))) as Appointment;
    const body: Bundle = {
      resourceType: 'Bundle',
      type: 'searchset',
      total: 1,
      entry: [{ fullUrl: `${ctx.baseUrl}/Appointment/${booked.id}`, resource: booked, search: { mode: 'match' } }],
    };
    return { status: 200, body };
  },
};
