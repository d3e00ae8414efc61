/**
 * PV1 → Encounter (+ Location for the assigned bed, Practitioner for attending/referring/consulting doctors),
 * upserted by the visit number (PV1-19). A PV1 without a visit number is keyed by the admit time (PV1-44) for the
 * patient; a PV1 with neither gives no Encounter (there is nothing to recognise the visit by).
 */
import type { Encounter, EncounterParticipant, Location } from '@medplum/fhirtypes';
import type { Segment } from '../hl7/message';
import type { MappingContext, Ref } from './context';
import { codeableConcept, dateTime, facilityIdentifier } from './datatypes';
import { writePractitioner } from './practitioner';

const V3_ACT_CODE = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';
/** PV1-2 patient class (HL7 table 0004) → Encounter.class. */
const CLASS: Record<string, { code: string; display: string }> = {
  I: { code: 'IMP', display: 'inpatient encounter' },
  O: { code: 'AMB', display: 'ambulatory' },
  E: { code: 'EMER', display: 'emergency' },
  P: { code: 'PRENC', display: 'pre-admission' },
  R: { code: 'AMB', display: 'ambulatory' },
  B: { code: 'IMP', display: 'inpatient encounter' },
  C: { code: 'AMB', display: 'ambulatory' },
  N: { code: 'AMB', display: 'ambulatory' },
  H: { code: 'HH', display: 'home health' },
  V: { code: 'VR', display: 'virtual' },
};

const PARTICIPANT_TYPE = 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType';

async function writeLocation(ctx: MappingContext, pv1: Segment, field: number): Promise<Ref | undefined> {
  const pl = pv1.field(field);
  if (pl.empty) return undefined;
  const parts = [pl.get(1), pl.get(2), pl.get(3)];
  const key = parts.filter(Boolean).join('-');
  if (!key) return undefined;
  const identifier = facilityIdentifier(ctx.facility, 'location', [pl.get(4, 1), ...parts].join('^'));
  const location: Location = {
    resourceType: 'Location',
    identifier: [identifier],
    name: [pl.get(4, 1), pl.get(7), pl.get(8), ...parts].filter(Boolean).join(' '),
    status: 'active',
    mode: 'instance',
    managingOrganization: { reference: `Organization/${ctx.facility.id}` },
  };
  const kind = pl.get(3) ? 'bd' : pl.get(2) ? 'ro' : 'wa';
  location.physicalType = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/location-physical-type', code: kind }] };
  return ctx.writer.put(location, identifier);
}

export async function writeEncounter(
  ctx: MappingContext,
  pv1: Segment | undefined,
  patient: Ref,
  status: Encounter['status'] | 'from-pv1',
  patientKey: string,
  /** Messages other than ADT only create a visit they refer to; they do not change it. */
  mode: 'upsert' | 'create-if-none' = 'upsert',
): Promise<Ref | undefined> {
  if (!pv1) return undefined;
  const visit = pv1.get(19);
  const admit = dateTime(pv1.get(44), ctx.facility, pv1, 44);
  const discharge = dateTime(pv1.get(45), ctx.facility, pv1, 45);
  if (!visit && !admit) return undefined;
  const identifier = visit
    ? facilityIdentifier(ctx.facility, 'visit', visit, pv1.get(19, 4))
    : facilityIdentifier(ctx.facility, 'visit-by-admit-time', `${patientKey}|${pv1.get(44)}`);
  const cls = CLASS[pv1.get(2).toUpperCase()];
  const encounter: Encounter = {
    resourceType: 'Encounter',
    identifier: [identifier],
    status: status === 'from-pv1' ? (discharge ? 'finished' : 'in-progress') : status,
    class: cls
      ? { system: V3_ACT_CODE, ...cls }
      : pv1.get(2)
        ? { system: 'http://terminology.hl7.org/CodeSystem/v2-0004', code: pv1.get(2) }
        : { system: V3_ACT_CODE, code: 'AMB', display: 'ambulatory' },
    subject: patient,
    serviceProvider: { reference: `Organization/${ctx.facility.id}` },
  };
  if (admit || discharge) encounter.period = { ...(admit ? { start: admit } : {}), ...(discharge ? { end: discharge } : {}) };
  const type = codeableConcept(pv1.field(4), ctx.facility);
  if (type) encounter.type = [type];
  const service = codeableConcept(pv1.field(10), ctx.facility);
  if (service) encounter.serviceType = service;
  const participants: EncounterParticipant[] = [];
  for (const [field, code, display] of [[7, 'ATND', 'attender'], [8, 'REF', 'referrer'], [9, 'CON', 'consultant'], [17, 'ADM', 'admitter']] as const) {
    for (const xcn of pv1.reps(field)) {
      const individual = await writePractitioner(ctx, xcn);
      if (individual) participants.push({ type: [{ coding: [{ system: PARTICIPANT_TYPE, code, display }] }], individual });
    }
  }
  if (participants.length) encounter.participant = participants;
  const location = await writeLocation(ctx, pv1, 3);
  if (location) encounter.location = [{ location, status: encounter.status === 'finished' ? 'completed' : 'active' }];
  return ctx.writer.put(encounter, identifier, mode);
}
