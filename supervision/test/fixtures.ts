/** Seeded clinical data for supervision tests: organisations, patients, encounters, prescriptions, orders, results. */
import type { Condition, Encounter, MedicationRequest, Observation, Organization, Patient, ServiceRequest } from '@medplum/fhirtypes';
import { ATC, DAY, iso, type Harness } from './harness';

export async function organization(h: Harness, id: string, partOf?: string): Promise<void> {
  const org: Organization = {
    resourceType: 'Organization',
    id,
    active: true,
    name: `Hospital ${id}`,
    type: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/organization-type', code: partOf ? 'dept' : 'prov' }] }],
    ...(partOf ? { partOf: { reference: partOf } } : {}),
  };
  await h.server.repository.write((s) => s.update('Organization', id, org));
}

export async function patient(h: Harness, org: string, gender: Patient['gender'], birthDate: string): Promise<string> {
  const p = await h.write<Patient>(org, { resourceType: 'Patient', gender, birthDate, name: [{ family: 'Test' }] });
  return `Patient/${p.id}`;
}

export async function encounter(
  h: Harness,
  org: string,
  patientRef: string,
  cls: 'AMB' | 'EMER' | 'IMP',
  start: number,
  end?: number,
  dx?: string,
  extra: Partial<Encounter> = {},
): Promise<Encounter> {
  let diagnosis: Encounter['diagnosis'];
  if (dx) {
    const c = await h.write<Condition>(org, {
      resourceType: 'Condition',
      subject: { reference: patientRef },
      code: { coding: [{ system: 'http://hl7.org/fhir/sid/icd-10', code: dx }] },
    });
    diagnosis = [{ condition: { reference: `Condition/${c.id}` }, rank: 1 }];
  }
  return h.write<Encounter>(org, {
    resourceType: 'Encounter',
    status: end ? 'finished' : 'in-progress',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: cls },
    subject: { reference: patientRef },
    serviceProvider: { reference: org },
    period: { start: iso(start), ...(end ? { end: iso(end) } : {}) },
    ...(diagnosis ? { diagnosis } : {}),
    ...extra,
  });
}

export interface RxOptions {
  atc?: string;
  days?: number;
  validityDays?: number;
  longTerm?: boolean;
  stableChronic?: boolean;
  reason?: string;
  group?: string;
  authored?: number;
  encounter?: string;
  status?: MedicationRequest['status'];
  /** mg per dose, three times a day */
  doseMg?: number;
}

export function rx(patientRef: string, o: RxOptions = {}): MedicationRequest {
  const authored = o.authored ?? Date.now();
  return {
    resourceType: 'MedicationRequest',
    status: o.status ?? 'active',
    intent: 'order',
    subject: { reference: patientRef },
    authoredOn: iso(authored),
    medicationCodeableConcept: { coding: [{ system: ATC, code: o.atc ?? 'C09AA02' }] },
    ...(o.encounter ? { encounter: { reference: o.encounter } } : {}),
    ...(o.group ? { groupIdentifier: { system: 'urn:test:rx', value: o.group } } : {}),
    ...(o.longTerm ? { courseOfTherapyType: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy', code: 'continuous' }] } } : {}),
    ...(o.stableChronic ? { extension: [{ url: 'https://huimin.health/fhir/StructureDefinition/stable-chronic-patient', valueBoolean: true }] } : {}),
    ...(o.doseMg
      ? {
          dosageInstruction: [
            {
              timing: { repeat: { frequency: 3, period: 1, periodUnit: 'd' } },
              doseAndRate: [{ doseQuantity: { value: o.doseMg, unit: 'mg', system: 'http://unitsofmeasure.org', code: 'mg' } }],
            },
          ],
        }
      : {}),
    dispenseRequest: {
      ...(o.days !== undefined ? { expectedSupplyDuration: { value: o.days, unit: 'days', system: 'http://unitsofmeasure.org', code: 'd' } } : {}),
      ...(o.validityDays !== undefined ? { validityPeriod: { start: iso(authored), end: iso(authored + o.validityDays * DAY) } } : {}),
      ...(o.reason ? { extension: [{ url: 'https://huimin.health/fhir/StructureDefinition/extended-supply-reason', valueString: o.reason }] } : {}),
    },
  };
}

export function labOrder(patientRef: string, code: string, authored: number, reason?: string): ServiceRequest {
  return {
    resourceType: 'ServiceRequest',
    status: 'active',
    intent: 'order',
    subject: { reference: patientRef },
    code: { coding: [{ system: 'http://loinc.org', code }] },
    authoredOn: iso(authored),
    ...(reason ? { extension: [{ url: 'https://huimin.health/fhir/StructureDefinition/repeat-test-reason', valueString: reason }] } : {}),
  };
}

export function labResult(patientRef: string, code: string, effective: number): Observation {
  return {
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code }] },
    subject: { reference: patientRef },
    effectiveDateTime: iso(effective),
    valueQuantity: { value: 130, unit: 'g/L' },
  };
}

export function procedureOrder(patientRef: string, code: string, authored: number): ServiceRequest {
  return {
    resourceType: 'ServiceRequest',
    status: 'active',
    intent: 'order',
    subject: { reference: patientRef },
    code: { coding: [{ system: 'http://snomed.info/sct', code }] },
    authoredOn: iso(authored),
  };
}
