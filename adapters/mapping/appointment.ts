/**
 * SIU^S12 (new booking), S13 (rescheduled), S14 (modified), S15 (cancelled), S16 (discontinued), S17 (deleted),
 * S26 (no-show) → Appointment, upserted by the
 * filler appointment id (SCH-2, else the placer's SCH-1). Times from TQ1-7/8 (v2.5+) or SCH-11 (older), else AIS-4.
 */
import type { Appointment, AppointmentParticipant } from '@medplum/fhirtypes';
import { requiredMissing } from '../hl7/problems';
import type { MappingContext } from './context';
import { codeableConcept, dateTime, entityIdentifier, facilityIdentifier } from './datatypes';
import { noteText } from './groups';
import { writePatient } from './patient';
import { writePractitioner } from './practitioner';

export const SIU_EVENTS = ['S12', 'S13', 'S14', 'S15', 'S16', 'S17', 'S26'];

/** S12 new, S13 rescheduled, S14 modified, S15 cancelled, S16 discontinued, S17 deleted, S26 no-show. */
const STATUS: Record<string, Appointment['status']> = { S12: 'booked', S13: 'booked', S14: 'booked', S15: 'cancelled', S16: 'cancelled', S17: 'entered-in-error', S26: 'noshow' };

export async function mapAppointment(ctx: MappingContext): Promise<void> {
  const m = ctx.message;
  const sch = m.segment('SCH');
  if (!sch) throw requiredMissing('SCH', undefined, `SIU^${m.triggerEvent} needs an SCH segment`);
  const key = entityIdentifier(sch.field(2)) ?? entityIdentifier(sch.field(1));
  if (!key) throw requiredMissing('SCH', 2, 'SCH-2 (filler appointment id) and SCH-1 (placer appointment id) are both empty');
  const identifier = facilityIdentifier(ctx.facility, 'appointment', key.value, key.namespace);
  const patient = await writePatient(ctx, m.segment('PID'), 'create-if-none');
  const participant: AppointmentParticipant[] = [{ actor: patient, status: 'accepted', required: 'required' }];
  for (const aip of m.all('AIP')) {
    const actor = await writePractitioner(ctx, aip.field(3));
    const type = codeableConcept(aip.field(4), ctx.facility);
    if (actor) participant.push({ actor, status: 'accepted', ...(type ? { type: [type] } : {}) });
  }
  for (const ail of m.all('AIL')) {
    const pl = ail.field(3);
    const name = [pl.get(4, 1), pl.get(1), pl.get(2), pl.get(3)].filter(Boolean).join(' ');
    if (name) participant.push({ actor: { display: name }, status: 'accepted' });
  }
  const tq1 = m.segment('TQ1');
  const ais = m.segment('AIS');
  const start =
    (tq1 && dateTime(tq1.get(7), ctx.facility, tq1, 7)) ?? dateTime(sch.get(11, 4), ctx.facility, sch, 11) ?? (ais && dateTime(ais.get(4), ctx.facility, ais, 4));
  const end = (tq1 && dateTime(tq1.get(8), ctx.facility, tq1, 8)) ?? dateTime(sch.get(11, 5), ctx.facility, sch, 11);
  const appointment: Appointment = {
    resourceType: 'Appointment',
    identifier: [identifier],
    status: STATUS[m.triggerEvent] ?? 'booked',
    participant,
  };
  // FHIR: start and end come together, or not at all (unless the appointment is proposed or cancelled).
  if (start && end) {
    appointment.start = toInstant(start);
    appointment.end = toInstant(end);
  }
  const minutes = Number(sch.get(9));
  if (Number.isInteger(minutes) && minutes > 0 && (sch.get(10, 1) || 'min').toLowerCase().startsWith('min')) appointment.minutesDuration = minutes;
  const reason = codeableConcept(sch.field(6), ctx.facility);
  if (reason) appointment.reasonCode = [reason];
  const type = codeableConcept(sch.field(8), ctx.facility);
  if (type) appointment.appointmentType = type;
  const service = ais && codeableConcept(ais.field(3), ctx.facility);
  if (service) appointment.serviceType = [service];
  if (m.triggerEvent === 'S15' || m.triggerEvent === 'S16') {
    const cancel = codeableConcept(sch.field(6), ctx.facility);
    if (cancel?.text) appointment.cancelationReason = { text: cancel.text };
  }
  const notes = m.all('NTE').map(noteText).filter(Boolean);
  if (notes.length) appointment.comment = notes.join('\n');
  await ctx.writer.put(appointment, identifier);
}

/** Appointment.start/end are instants: seconds and a zone are needed. */
function toInstant(dt: string): string | undefined {
  return dt.length >= 19 ? dt : undefined;
}
