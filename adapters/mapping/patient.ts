/**
 * PID → Patient (HL7 v2-to-FHIR IG "PID to Patient"), upserted by the facility's MRN.
 */
import type { Identifier, Patient } from '@medplum/fhirtypes';
import type { Facility } from '../facilities';
import type { Hl7Message, Segment } from '../hl7/message';
import { requiredMissing } from '../hl7/problems';
import type { MappingContext, Ref } from './context';
import { address, contactPoint, date, dateTime, humanName } from './datatypes';
import { patientIdentifier, pid19Identifier, type PatientIdentifier } from './identifiers';

const GENDER: Record<string, Patient['gender']> = {
  M: 'male', F: 'female', O: 'other', A: 'other', U: 'unknown', N: 'unknown',
  // GB/T 2261.1 codes, as Chinese HIS send them
  '1': 'male', '2': 'female', '0': 'unknown', '9': 'unknown',
};

/** Every identifier of the PID segment (PID-3 repetitions, PID-2 of older versions, PID-19), classified. */
export function pidIdentifiers(pid: Segment, facility: Facility): PatientIdentifier[] {
  // PID-3 (identifier list), then PID-2 (external id) and PID-4 (alternate id) of older versions.
  const found = [...pid.reps(3), ...pid.reps(2), ...pid.reps(4)]
    .map((cx) => patientIdentifier(cx, facility))
    .filter((x): x is PatientIdentifier => x !== undefined);
  const p19 = pid19Identifier(pid.get(19), facility);
  if (p19) found.push(p19);
  // PID-20 driver's licence: number ^ issuing state ^ expiry.
  const licence = pid.field(20);
  if (licence.get(1)) {
    found.push({
      kind: 'other',
      identifier: {
        type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'DL' }] },
        system: `${facility.systemBase}:driver-licence${licence.get(2) ? `:${encodeURIComponent(licence.get(2))}` : ''}`,
        value: licence.get(1),
      },
    });
  }
  const unique = new Map(found.map((f) => [`${f.identifier.system}|${f.identifier.value}`, f]));
  return [...unique.values()];
}

/** The identifier the patient is upserted on: the facility MRN, else a national id, else the first one. */
export function primaryIdentifier(ids: PatientIdentifier[]): Identifier | undefined {
  return (ids.find((i) => i.kind === 'mrn' && i.identifier.system?.startsWith('urn:huimin:')) ?? ids.find((i) => i.kind === 'mrn') ?? ids.find((i) => i.kind === 'resident-id') ?? ids.find((i) => i.kind === 'health-card') ?? ids[0])?.identifier;
}

/** The per-patient ordering key of a message (facility + primary MRN), or undefined when it names no patient. */
export function patientKeyOf(message: Hl7Message, facility: Facility): string | undefined {
  const pid = message.segment('PID');
  if (!pid) return undefined;
  const id = primaryIdentifier(pidIdentifiers(pid, facility));
  return id ? `${facility.id}|${id.system}|${id.value}` : undefined;
}

export function patientFromPid(pid: Segment, facility: Facility): { patient: Patient; primary: Identifier } {
  const ids = pidIdentifiers(pid, facility);
  const primary = primaryIdentifier(ids);
  if (!primary) {
    throw requiredMissing('PID', 3, 'PID-3 (patient identifier list) holds no identifier', pid.occurrence);
  }
  const patient: Patient = { resourceType: 'Patient', identifier: ids.map((i) => i.identifier), active: true };
  const names = pid.reps(5).map(humanName).filter((n) => n !== undefined);
  if (names.length) patient.name = names;
  const gender = GENDER[pid.get(8).toUpperCase()];
  if (gender) patient.gender = gender;
  const birthDate = date(pid.get(7), facility, pid, 7);
  if (birthDate) patient.birthDate = birthDate;
  const addresses = pid.reps(11).map(address).filter((a) => a !== undefined);
  if (addresses.length) patient.address = addresses;
  const telecom = [...pid.reps(13).map((t) => contactPoint(t, 'home')), ...pid.reps(14).map((t) => contactPoint(t, 'work'))].filter((t) => t !== undefined);
  if (telecom.length) patient.telecom = telecom;
  const deceased = dateTime(pid.get(29), facility, pid, 29);
  if (deceased) patient.deceasedDateTime = deceased;
  else if (pid.get(30).toUpperCase() === 'Y') patient.deceasedBoolean = true;
  patient.managingOrganization = { reference: `Organization/${facility.id}` };
  return { patient, primary };
}

/**
 * Writes the message's patient. ADT feeds own demographics ('upsert'); other messages only create the patient when
 * the platform does not know it yet ('create-if-none').
 */
export async function writePatient(ctx: MappingContext, pid: Segment | undefined, mode: 'upsert' | 'create-if-none'): Promise<Ref> {
  if (!pid) {
    throw requiredMissing('PID', undefined, `${ctx.message.messageType}^${ctx.message.triggerEvent} needs a PID segment`);
  }
  const { patient, primary } = patientFromPid(pid, ctx.facility);
  return ctx.writer.put(patient, primary, mode);
}
