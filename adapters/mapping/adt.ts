/**
 * ADT^A01/A02/A03/A04/A05/A06/A07/A08/A11/A13/A28/A31 → Patient + Encounter (+ Practitioner, Location), and the
 * tracking and pending events (A09, A10, A14, A15, A16, A25, A26, A27) that only move the visit's state.
 *
 * The patient is upserted by MRN and the visit by visit number. Messages for one patient are applied in order
 * (the pipeline serialises them); one that arrives after a newer one was already applied (MSH-7 older than the
 * patient's clock) only creates what is missing and never overwrites newer demographics or visit state.
 */
import type { Encounter } from '@medplum/fhirtypes';
import { advancePatientClock } from '../store/message-store';
import type { MappingContext } from './context';
import { patientFromPid } from './patient';
import { writeEncounter } from './encounter';
import { requiredMissing } from '../hl7/problems';

/** What each event means for the visit; null: the event carries person information only. */
const ENCOUNTER_STATUS: Record<string, Encounter['status'] | 'from-pv1' | null> = {
  A01: 'in-progress', // admit
  A02: 'in-progress', // transfer: the new location comes in PV1-3
  A03: 'finished', // discharge
  A04: 'arrived', // register an outpatient
  A05: 'planned', // pre-admit
  A06: 'in-progress', // outpatient → inpatient
  A07: 'in-progress', // inpatient → outpatient
  A08: 'from-pv1', // update: finished when PV1-45 (discharge time) is there
  A09: 'from-pv1', // patient departing (tracking): the visit goes on
  A10: 'from-pv1', // patient arriving (tracking)
  A11: 'cancelled', // cancel admit
  A13: 'in-progress', // cancel discharge
  A14: 'planned', // pending admit
  A15: 'from-pv1', // pending transfer: nothing has moved yet
  A16: 'from-pv1', // pending discharge
  A25: 'from-pv1', // cancel pending discharge
  A26: 'from-pv1', // cancel pending transfer
  A27: 'cancelled', // cancel pending admit
  A28: null, // add person information
  A31: null, // update person information
};

export const ADT_EVENTS = Object.keys(ENCOUNTER_STATUS);

export async function mapAdt(ctx: MappingContext): Promise<void> {
  const pid = ctx.message.segment('PID');
  if (!pid) {
    throw requiredMissing('PID', undefined, `ADT^${ctx.message.triggerEvent} needs a PID segment`);
  }
  const { patient, primary } = patientFromPid(pid, ctx.facility);
  const current = await advancePatientClock(ctx.session.tx, ctx.facility.id, `${primary.system}|${primary.value}`, ctx.messageTime);
  const mode = current ? 'upsert' : 'create-if-none';
  const patientRef = await ctx.writer.put(patient, primary, mode);
  const status = ENCOUNTER_STATUS[ctx.message.triggerEvent];
  if (status === null || status === undefined) return;
  if (!current) {
    // A stale message: a newer one already set the visit's state.
    return;
  }
  await writeEncounter(ctx, ctx.message.segment('PV1'), patientRef, status, `${primary.system}|${primary.value}`);
}
