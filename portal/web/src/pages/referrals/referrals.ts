/** Referral Tasks as the desk works them: which are overdue, their priority, where they go, their deadline. */
import type { HealthcareService, Patient, Resource, ServiceRequest, Task } from '@medplum/fhirtypes';
import { displayNames, search } from '../../fhir';

export const DIRECTION_EXTENSION = 'http://huimin.health/fhir/StructureDefinition/referral-direction';
export const GREEN_CHANNEL_EXTENSION = 'http://huimin.health/fhir/StructureDefinition/referral-green-channel';
export const RESERVATION_SYSTEM = 'http://huimin.health/fhir/CodeSystem/slot-reservation';
export const OPEN = ['draft', 'requested', 'received', 'accepted', 'ready', 'in-progress', 'on-hold'];
const PRIORITY_RANK: Record<string, number> = { stat: 0, asap: 1, urgent: 2, routine: 3 };

export interface Referral {
  task: Task;
  request?: ServiceRequest;
  patient?: Patient;
  direction?: 'up' | 'down';
  green: boolean;
  deadline?: string;
  overdue: boolean;
}

export function businessStatus(task: Task): string | undefined {
  return task.businessStatus?.coding?.[0]?.code ?? task.businessStatus?.text;
}

export function toReferral(task: Task, included: Resource[]): Referral {
  const request = included.find((r): r is ServiceRequest => r.resourceType === 'ServiceRequest' && `ServiceRequest/${r.id}` === task.focus?.reference);
  const patient = included.find((r): r is Patient => r.resourceType === 'Patient' && `Patient/${r.id}` === task.for?.reference);
  const deadline = task.restriction?.period?.end;
  const open = OPEN.includes(task.status) && task.status !== 'accepted';
  return {
    task,
    request,
    patient,
    direction: request?.extension?.find((e) => e.url === DIRECTION_EXTENSION)?.valueCode as 'up' | 'down' | undefined,
    green: request?.extension?.some((e) => e.url === GREEN_CHANNEL_EXTENSION && e.valueBoolean) ?? false,
    deadline,
    overdue: businessStatus(task) === 'overdue' || (open && !!deadline && new Date(deadline).getTime() < Date.now()),
  };
}

/** Overdue first, then green channel, then by priority, then the nearest deadline. */
export function compareReferrals(a: Referral, b: Referral): number {
  return (
    Number(b.overdue) - Number(a.overdue) ||
    Number(b.green) - Number(a.green) ||
    (PRIORITY_RANK[a.task.priority ?? 'routine'] ?? 3) - (PRIORITY_RANK[b.task.priority ?? 'routine'] ?? 3) ||
    (a.deadline ?? '9999').localeCompare(b.deadline ?? '9999')
  );
}

/** The references a Task of this organisation may be addressed to: the organisation and its departments. */
export async function ownReferences(organization: string | undefined): Promise<{ refs: string[]; services: HealthcareService[] }> {
  if (!organization) return { refs: [], services: [] };
  const services = (await search<HealthcareService>('HealthcareService', { organization, _count: '100' })).resources;
  return { refs: [organization, ...services.map((s) => `HealthcareService/${s.id}`)], services };
}

export async function loadWorklist(direction: 'incoming' | 'outgoing', organization: string | undefined): Promise<{ referrals: Referral[]; names: Record<string, string> }> {
  const { refs } = await ownReferences(organization);
  const params: Record<string, string | string[]> = { _count: '200', _include: ['Task:focus', 'Task:patient'] };
  if (organization) params[direction === 'incoming' ? 'owner' : 'requester'] = direction === 'incoming' ? refs.join(',') : organization;
  const found = await search<Task>('Task', params);
  const referrals = found.resources
    .filter((t) => !organization || (direction === 'incoming' ? refs.includes(t.owner?.reference ?? '') : true))
    .map((t) => toReferral(t, found.included))
    .filter((r) => !r.request || r.request.category?.some((c) => c.coding?.some((k) => k.code === '3457005')))
    .sort(compareReferrals);
  const names = await displayNames(referrals.flatMap((r) => [r.task.owner?.reference, r.task.requester?.reference]));
  return { referrals, names };
}
