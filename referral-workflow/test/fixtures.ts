/** A small city for referral tests: a community clinic, a municipal hospital with a cardiology schedule, a patient. */
import type { Bundle, CarePlan, DocumentReference, HealthcareService, Organization, Patient, Schedule, ServiceRequest, Slot, Task } from '@medplum/fhirtypes';
import { codes } from '..';
import type { api } from './harness';

type Api = ReturnType<typeof api>;

export interface City {
  patient: Patient;
  clinic: Organization;
  hospital: Organization;
  hospital2: Organization;
  cardiology: HealthcareService;
  schedule: Schedule;
}

export async function buildCity(fhir: Api): Promise<City> {
  const patient = await fhir.create<Patient>({ resourceType: 'Patient', name: [{ family: '张', given: ['伟'] }] });
  const clinic = await fhir.create<Organization>({ resourceType: 'Organization', name: '东城社区卫生服务中心', active: true });
  const hospital = await fhir.create<Organization>({ resourceType: 'Organization', name: '市第一人民医院', active: true });
  const hospital2 = await fhir.create<Organization>({ resourceType: 'Organization', name: '市中心医院', active: true });
  const cardiology = await fhir.create<HealthcareService>({ resourceType: 'HealthcareService', active: true, providedBy: { reference: `Organization/${hospital.id}` }, name: '心内科' });
  const schedule = await fhir.create<Schedule>({ resourceType: 'Schedule', active: true, actor: [{ reference: `HealthcareService/${cardiology.id}` }] });
  return { patient, clinic, hospital, hospital2, cardiology, schedule };
}

export async function addSlots(fhir: Api, schedule: Schedule, count: number, fromMs: number): Promise<Slot[]> {
  const slots: Slot[] = [];
  for (let i = 0; i < count; i++) {
    const start = fromMs + i * 3600_000;
    slots.push(await fhir.create<Slot>({ resourceType: 'Slot', schedule: { reference: `Schedule/${schedule.id}` }, status: 'free', start: new Date(start).toISOString(), end: new Date(start + 900_000).toISOString() }));
  }
  return slots;
}

export interface ReferralInput {
  from: Organization;
  to: Organization;
  direction: 'up' | 'down';
  priority?: ServiceRequest['priority'];
  green?: boolean;
  supportingInfo?: string[];
  reason?: string;
}

/** The referring side's transaction: ServiceRequest and Task together. */
export function referralBundle(city: City, input: ReferralInput): Bundle {
  const srUrl = 'urn:uuid:6f1c4e0a-2a7b-4a44-9d8e-0c1b2a3d4e5f';
  const sr: ServiceRequest = {
    resourceType: 'ServiceRequest',
    status: 'active',
    intent: 'order',
    priority: input.priority ?? 'routine',
    category: [{ coding: [{ system: codes.SNOMED, code: codes.REFERRAL_CATEGORY, display: 'Patient referral' }] }, { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' }] }],
    extension: [
      { url: codes.DIRECTION_EXTENSION, valueCode: input.direction },
      ...(input.green ? [{ url: codes.GREEN_CHANNEL_EXTENSION, valueBoolean: true }] : []),
    ],
    subject: { reference: `Patient/${city.patient.id}` },
    requester: { reference: `Organization/${input.from.id}` },
    performer: [{ reference: `Organization/${input.to.id}` }],
    reasonCode: [{ coding: [{ system: codes.REASON_SYSTEM, code: input.reason ?? (input.direction === 'up' ? 'difficult-diagnosis' : 'rehabilitation') }] }],
    supportingInfo: input.supportingInfo?.map((reference) => ({ reference })),
    authoredOn: new Date().toISOString(),
  };
  const task: Task = {
    resourceType: 'Task',
    status: 'requested',
    intent: 'order',
    priority: input.priority ?? 'routine',
    focus: { reference: srUrl },
    for: { reference: `Patient/${city.patient.id}` },
    requester: { reference: `Organization/${input.from.id}` },
    owner: { reference: `Organization/${input.to.id}` },
    authoredOn: new Date().toISOString(),
  };
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      { fullUrl: srUrl, resource: sr, request: { method: 'POST', url: 'ServiceRequest' } },
      { resource: task, request: { method: 'POST', url: 'Task' } },
    ],
  };
}

/** Submits a referral; returns the Task and ServiceRequest ids. */
export async function submitReferral(fhir: Api, city: City, input: ReferralInput): Promise<{ taskId: string; srId: string }> {
  const res = await fhir.post('', referralBundle(city, input)).expect(200);
  const locations = (res.body as Bundle).entry?.map((e) => e.response?.location ?? '') ?? [];
  const idIn = (location: string, type: string): string => new RegExp(`${type}/([^/]+)`).exec(location)?.[1] as string;
  return { srId: idIn(locations[0], 'ServiceRequest'), taskId: idIn(locations[1], 'Task') };
}

export async function dischargeDocuments(fhir: Api, city: City, activities = 2): Promise<{ carePlan: CarePlan; summary: DocumentReference }> {
  const carePlan = await fhir.create<CarePlan>({
    resourceType: 'CarePlan',
    status: 'active',
    intent: 'plan',
    subject: { reference: `Patient/${city.patient.id}` },
    title: '心脏康复计划',
    activity: Array.from({ length: activities }, (_, i) => ({ detail: { status: 'scheduled' as const, description: `康复随访 ${i + 1}` } })),
  });
  const summary = await fhir.create<DocumentReference>({
    resourceType: 'DocumentReference',
    status: 'current',
    type: { coding: [{ system: 'http://loinc.org', code: '18842-5', display: 'Discharge summary' }] },
    subject: { reference: `Patient/${city.patient.id}` },
    content: [{ attachment: { contentType: 'text/plain', data: Buffer.from('出院小结').toString('base64') } }],
  });
  return { carePlan, summary };
}
