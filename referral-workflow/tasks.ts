/**
 * Referral rules on writes (the Task state machine, what a referral ServiceRequest must carry) and the operations
 * the receiver and the coordinator call: Task/[id]/$accept, $reject and $reroute.
 *
 * The state machine is a store write rule, so it holds for every path (PUT, PATCH, bundles, HL7 adapters, the
 * engine): a Task may only move along FHIR Workflow's Task state machine. Who may accept or reject is checked by
 * the operations and, for plain writes, by the state rule: a hospital's caller decides only Tasks addressed to its
 * own organisation (the owner, or the HealthcareService or PractitionerRole the owner names, belongs to it), as the
 * bearer token says. An administrator, or the platform itself, names the deciding party in the `actor` parameter.
 */
import type { CodeableConcept, Organization, Parameters, ParametersParameter, Reference, ServiceRequest, Task } from '@medplum/fhirtypes';
import {
  badRequest,
  FhirError,
  notFound,
  operationParameters,
  partyOfOrganization,
  outcome,
  issue,
  unprocessable,
  type FhirOperation,
  type CallerIdentity,
  type FhirRequest,
  type InterceptedWrite,
  type RouteContext,
  type WriteInterceptor,
  type WriteSession,
} from '../fhir-server';
import { businessStatusOf, directionOf, DIRECTION_EXTENSION, isReferral, localRef, TASK_IO } from './fhir';

/** FHIR Workflow's Task state machine (https://hl7.org/fhir/R4/task.html#statemachine); any state may go to entered-in-error. */
export const TASK_TRANSITIONS: Record<Task['status'], readonly Task['status'][]> = {
  draft: ['requested', 'cancelled'],
  requested: ['received', 'accepted', 'rejected', 'cancelled', 'failed'],
  received: ['accepted', 'rejected', 'cancelled', 'failed'],
  accepted: ['ready', 'in-progress', 'on-hold', 'completed', 'cancelled', 'failed'],
  ready: ['in-progress', 'on-hold', 'completed', 'cancelled', 'failed'],
  'in-progress': ['on-hold', 'completed', 'cancelled', 'failed'],
  'on-hold': ['ready', 'in-progress', 'completed', 'cancelled', 'failed'],
  completed: [],
  rejected: [],
  cancelled: [],
  failed: [],
  'entered-in-error': [],
};

const forbidden = (diagnostics: string): FhirError => new FhirError(403, outcome([issue('error', 'forbidden', diagnostics)]));
const businessRule = (diagnostics: string, expression?: string[]): FhirError =>
  unprocessable([issue('error', 'business-rule', diagnostics, expression)]);

export function checkTaskTransition(from: Task['status'], to: Task['status']): void {
  if (from === to || to === 'entered-in-error') {
    return;
  }
  const allowed = TASK_TRANSITIONS[from] ?? [];
  if (!allowed.includes(to)) {
    throw businessRule(
      `A Task cannot go from ${from} to ${to}: ${allowed.length === 0 ? `${from} is a final state` : `from ${from} it may go to ${allowed.join(', ')}`}`,
      ['Task.status'],
    );
  }
}

/**
 * Task writes follow the state machine, and a hospital's caller moves a Task only when it is a party to it: the
 * receiver (owner) for every step, the sender (requester) too for submitting a draft, cancelling it or withdrawing
 * it in error. (Security lets both organisations write the Task, which stays the sender's record.)
 */
export function taskStateRule(): WriteInterceptor {
  return {
    resourceTypes: ['Task'],
    async beforeWrite(session: WriteSession, write: InterceptedWrite): Promise<void> {
      const previous = write.previous as Task | undefined;
      const next = write.resource as Task | undefined;
      if (!previous || !next) {
        return;
      }
      checkTaskTransition(previous.status, next.status);
      const organization = write.actor?.organization;
      if (!organization || previous.status === next.status) {
        return;
      }
      const senderMay = ['cancelled', 'entered-in-error'].includes(next.status) || (previous.status === 'draft' && next.status === 'requested');
      const parties = senderMay ? [previous.owner, previous.requester] : [previous.owner];
      for (const party of parties) {
        if (await belongsTo(session, party, organization)) {
          return;
        }
      }
      throw forbidden(
        `${organization} cannot move Task/${write.id} from ${previous.status} to ${next.status}: it is addressed to ${previous.owner?.reference ?? 'no owner'}`,
      );
    },
  };
}

/**
 * Whether a Task's party (owner or requester) is the organisation or one of its HealthcareServices or
 * PractitionerRoles (security's rule, the one that lets the addressee write the Task). Read inside the write's
 * transaction, so the answer holds for the write being made.
 */
function belongsTo(session: WriteSession, party: Reference | undefined, organization: string): Promise<boolean> {
  return partyOfOrganization(party, organization, (type, id) => session.read(type, id));
}

/**
 * A referral ServiceRequest (category SNOMED 3457005) is an order with a direction; a downward referral travels
 * with the rehabilitation/follow-up CarePlan and the discharge summary, or it cannot be submitted.
 */
export function referralRequestRule(): WriteInterceptor {
  return {
    resourceTypes: ['ServiceRequest'],
    async beforeWrite(_session: WriteSession, write: InterceptedWrite): Promise<void> {
      const sr = write.resource as ServiceRequest | undefined;
      if (!sr || !isReferral(sr) || ['revoked', 'entered-in-error', 'completed'].includes(sr.status)) {
        return;
      }
      if (sr.intent !== 'order') {
        throw businessRule(`A referral's intent is order, not ${sr.intent}`, ['ServiceRequest.intent']);
      }
      const direction = directionOf(sr);
      if (!direction) {
        throw businessRule(`A referral states its direction: extension ${DIRECTION_EXTENSION} with valueCode up or down`, ['ServiceRequest.extension']);
      }
      if (direction === 'down' && sr.status !== 'draft') {
        const types = (sr.supportingInfo ?? []).map((r) => localRef(r)?.resourceType);
        const missing = [
          types.includes('CarePlan') ? undefined : 'a rehabilitation/follow-up CarePlan',
          types.includes('DocumentReference') || types.includes('Composition') ? undefined : 'a discharge summary (DocumentReference or Composition)',
        ].filter(Boolean);
        if (missing.length > 0) {
          throw businessRule(`A downward referral needs ${missing.join(' and ')} in supportingInfo`, ['ServiceRequest.supportingInfo']);
        }
      }
    },
  };
}

function param(params: Parameters, name: string): ParametersParameter | undefined {
  return params.parameter?.find((p) => p.name === name);
}

/** A reference parameter given as valueReference, or as `Type/id` text (GET, or a plain string). */
function referenceParam(params: Parameters, name: string): Reference | undefined {
  const p = param(params, name);
  const ref = p?.valueReference?.reference ?? p?.valueString ?? p?.valueUri;
  return ref ? { reference: ref } : undefined;
}

function requiredReference(params: Parameters, name: string): Reference<Organization> {
  const ref = referenceParam(params, name);
  if (!ref || !localRef(ref)) {
    throw badRequest(`Parameter "${name}" is required: a reference such as Organization/123`);
  }
  return ref as Reference<Organization>;
}

async function lockTask(session: WriteSession, id: string): Promise<Task> {
  const task = await session.read<Task>('Task', id);
  if (!task) {
    throw notFound(`Task/${id} does not exist`);
  }
  return task;
}

/**
 * The receiver's decision: a hospital's caller decides for its own organisation (an `actor` it names must be the
 * Task's owner too); an administrator, or the platform itself, names the owner in `actor`.
 */
async function checkDecider(session: WriteSession, task: Task, params: Parameters, caller: CallerIdentity | undefined, what: string): Promise<void> {
  const named = referenceParam(params, 'actor');
  const organization = caller?.role === 'admin' ? undefined : caller?.organization;
  if (organization) {
    if (!(await belongsTo(session, task.owner, organization))) {
      throw forbidden(`${organization} cannot ${what} Task/${task.id}: it is addressed to ${task.owner?.reference ?? 'no owner'}`);
    }
  } else if (!named || !localRef(named)) {
    throw badRequest(`Parameter "actor" is required: the receiver deciding for the platform, such as Organization/123`);
  }
  if (named && task.owner?.reference !== named.reference) {
    throw forbidden(`${named.reference} cannot ${what} Task/${task.id}: it is addressed to ${task.owner?.reference ?? 'no owner'}`);
  }
}

function taskResponse(status: number, task: Task): { status: number; body: Task } {
  return { status, body: task };
}

/** Writes the Task at the version it was read at (If-Match), so that a concurrent change answers 412, not lost. */
async function writeTask(session: WriteSession, task: Task): Promise<Task> {
  const { resource } = await session.update('Task', task.id as string, task, Number(task.meta?.versionId));
  return resource as Task;
}

async function accept(ctx: RouteContext, request: FhirRequest, id: string): Promise<{ status: number; body: Task }> {
  const params = operationParameters(request);
  const slot = referenceParam(params, 'slot');
  const task = await ctx.repo.write(async (session) => {
    const current = await lockTask(session, id);
    await checkDecider(session, current, params, ctx.caller, 'accept');
    checkTaskTransition(current.status, 'accepted');
    const input = (current.input ?? []).filter((i) => !i.type.coding?.some((c) => c.system === TASK_IO && c.code === 'preferred-slot'));
    if (slot) {
      input.push({ type: { coding: [{ system: TASK_IO, code: 'preferred-slot' }] }, valueReference: slot });
    }
    return writeTask(session, {
      ...current,
      status: 'accepted',
      input: input.length > 0 ? input : undefined,
      lastModified: session.now,
      businessStatus: current.businessStatus && businessStatusOf(current) === 'overdue' ? current.businessStatus : undefined,
    });
  });
  return taskResponse(200, task);
}

async function reject(ctx: RouteContext, request: FhirRequest, id: string): Promise<{ status: number; body: Task }> {
  const params = operationParameters(request);
  const p = param(params, 'reason');
  const reason: CodeableConcept | undefined = p?.valueCodeableConcept ?? (p?.valueString ? { text: p.valueString } : undefined);
  if (!reason) {
    throw badRequest('Parameter "reason" is required: why the referral is rejected (valueString or valueCodeableConcept)');
  }
  const task = await ctx.repo.write(async (session) => {
    const current = await lockTask(session, id);
    await checkDecider(session, current, params, ctx.caller, 'reject');
    checkTaskTransition(current.status, 'rejected');
    return writeTask(session, { ...current, status: 'rejected', statusReason: reason, lastModified: session.now });
  });
  return taskResponse(200, task);
}

/**
 * The coordinator sends a rejected, failed or overdue referral to another receiver: a new Task (partOf the old
 * one, basedOn the ServiceRequest) for the new owner, the old Task cancelled if still open, the ServiceRequest's
 * performer changed: one transaction.
 */
async function reroute(ctx: RouteContext, request: FhirRequest, id: string): Promise<{ status: number; body: Task }> {
  const params = operationParameters(request);
  const owner = requiredReference(params, 'owner');
  const task = await ctx.repo.write(async (session) => {
    const current = await lockTask(session, id);
    const open = !TASK_TRANSITIONS[current.status] || TASK_TRANSITIONS[current.status].length > 0;
    const reroutable = ['rejected', 'failed'].includes(current.status) || (open && businessStatusOf(current) === 'overdue');
    if (!reroutable) {
      throw businessRule(`Task/${id} is ${current.status}${businessStatusOf(current) ? ` (${businessStatusOf(current)})` : ''}: only a rejected, failed or overdue referral can be re-routed`);
    }
    if (owner.reference === current.owner?.reference) {
      throw businessRule(`Task/${id} is already addressed to ${owner.reference}; re-route to another receiver`);
    }
    if (open) {
      await writeTask(session, { ...current, status: 'cancelled', statusReason: { text: `Re-routed to ${owner.reference}` }, lastModified: session.now });
    }
    const focus = localRef(current.focus);
    if (focus?.resourceType === 'ServiceRequest') {
      const sr = await session.read<ServiceRequest>('ServiceRequest', focus.id);
      if (sr) {
        await session.update('ServiceRequest', focus.id, { ...sr, performer: [owner] });
      }
    }
    const next: Task = {
      resourceType: 'Task',
      status: 'requested',
      intent: current.intent,
      priority: current.priority,
      code: current.code,
      focus: current.focus,
      for: current.for,
      requester: current.requester,
      owner,
      authoredOn: session.now,
      lastModified: session.now,
      basedOn: current.focus ? [current.focus] : current.basedOn,
      partOf: [{ reference: `Task/${id}` }],
      groupIdentifier: current.groupIdentifier,
    };
    return (await session.create(next)) as Task;
  });
  return taskResponse(201, task);
}

function taskOperation(name: string, run: (ctx: RouteContext, request: FhirRequest, id: string) => Promise<{ status: number; body: Task }>): FhirOperation {
  return {
    name,
    definition: `http://huimin.health/fhir/OperationDefinition/Task-${name}`,
    levels: ['instance'],
    resourceTypes: ['Task'],
    affectsState: true,
    invoke: (ctx, request, target) => run(ctx, request, target.id as string),
  };
}

export const taskOperations: readonly FhirOperation[] = [
  taskOperation('accept', accept),
  taskOperation('reject', reject),
  taskOperation('reroute', reroute),
];
