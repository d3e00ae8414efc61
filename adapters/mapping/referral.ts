/**
 * REF^I12 (new referral), I13 (modify), I14 (cancel) → a referral ServiceRequest and the Task that the referral
 * workflow acts on, both upserted by the originating referral identifier (RF1-6). The referring provider (PRD-1
 * RP) is the requester; the referred-to provider (RT) the performer and the Task's owner.
 */
import type { ServiceRequest, Task } from '@medplum/fhirtypes';
import { requiredMissing } from '../hl7/problems';
import type { MappingContext, Ref } from './context';
import { codeableConcept, dateTime, entityIdentifier, facilityIdentifier } from './datatypes';
import { writePractitioner } from './practitioner';
import { writePatient } from './patient';

export const REF_EVENTS = ['I12', 'I13', 'I14'];

const SNOMED_REFERRAL = { system: 'http://snomed.info/sct', code: '3457005', display: 'Patient referral' };
const PRIORITY: Record<string, ServiceRequest['priority']> = { S: 'stat', A: 'asap', R: 'routine' };

export async function mapReferral(ctx: MappingContext): Promise<void> {
  const m = ctx.message;
  const rf1 = m.segment('RF1');
  if (!rf1) throw requiredMissing('RF1', undefined, `REF^${m.triggerEvent} needs an RF1 segment`);
  const key = entityIdentifier(rf1.field(6)) ?? entityIdentifier(rf1.field(11));
  if (!key) throw requiredMissing('RF1', 6, 'RF1-6 (originating referral identifier) is empty', rf1.occurrence);
  const identifier = facilityIdentifier(ctx.facility, 'referral', key.value, key.namespace);
  const patient = await writePatient(ctx, m.segment('PID'), 'create-if-none');
  let requester: Ref | undefined;
  let performer: Ref | undefined;
  for (const prd of m.all('PRD')) {
    const role = prd.get(1).toUpperCase();
    // PRD-2 is an XPN and PRD-7 the provider's identifiers: together they make an XCN.
    const person = await writePractitioner(ctx, prd.field(2).prefixedBy(prd.field(7)));
    if (role === 'RP' && !requester) requester = person;
    if (role === 'RT' && !performer) performer = person;
  }
  const cancelled = m.triggerEvent === 'I14';
  const request: ServiceRequest = {
    resourceType: 'ServiceRequest',
    identifier: [identifier],
    status: cancelled ? 'revoked' : 'active',
    intent: 'order',
    category: [{ coding: [SNOMED_REFERRAL] }],
    subject: patient,
  };
  const priority = PRIORITY[rf1.get(2).toUpperCase()];
  if (priority) request.priority = priority;
  // RF1-3 (referral type: medical, dental…) adds to the category; what is asked for is the OBR's service, if sent.
  const type = codeableConcept(rf1.field(3), ctx.facility);
  if (type) request.category?.push(type);
  const obr = m.segment('OBR');
  const code = obr && codeableConcept(obr.field(4), ctx.facility);
  if (code) request.code = code;
  const authoredOn = dateTime(rf1.get(7), ctx.facility, rf1, 7);
  if (authoredOn) request.authoredOn = authoredOn;
  const reasons = rf1.reps(10).map((r) => codeableConcept(r, ctx.facility)).filter((c) => c !== undefined);
  if (reasons.length) request.reasonCode = reasons;
  if (requester) request.requester = requester;
  if (performer) request.performer = [performer];
  const requestRef = await ctx.writer.put(request, identifier);
  const task: Task = {
    resourceType: 'Task',
    identifier: [identifier],
    status: cancelled ? 'cancelled' : 'requested',
    intent: 'order',
    code: { coding: [{ system: 'http://hl7.org/fhir/CodeSystem/task-code', code: 'fulfill', display: 'Fulfill the focal request' }] },
    focus: requestRef,
    for: patient,
    basedOn: [requestRef],
  };
  if (authoredOn) task.authoredOn = authoredOn;
  if (requester) task.requester = requester;
  if (performer) task.owner = performer;
  await ctx.writer.put(task, identifier);
}
