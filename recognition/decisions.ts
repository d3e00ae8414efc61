/**
 * The ordering doctor's decision on an advisory, as operations on the DetectedIssue (each one transaction, audited
 * like every request, open to clinicians, facility systems and administrators; the store's ownership rule lets only
 * the ordering institution change its advisory and its order):
 *
 *   POST DetectedIssue/[id]/$recognition-accept
 *        The prior result is recognised: the order is revoked (ServiceRequest) or cancelled (MedicationRequest)
 *        with the reason "recognised", the prior results are listed for the order's encounter (a List with
 *        encounter, subject and the results), and the advisory records the mitigation.
 *   POST DetectedIssue/[id]/$recognition-override   Parameters: reason (code of the exception-reason CodeSystem),
 *        disease (CodeableConcept, required for serial-monitoring), note (string)
 *        A new test is needed: the reason is the advisory's mitigation; the order stays.
 *
 * Each decision is also a row of `recognition_decision` (same transaction), from which the figures are computed.
 */
import type { CodeableConcept, DetectedIssue, DetectedIssueMitigation, List, MedicationRequest, Reference, ServiceRequest } from '@medplum/fhirtypes';
import {
  badRequest,
  conflict,
  notFound,
  operationParameters,
  parameterValue,
  unprocessable,
  issue as outcomeIssue,
  type FhirOperation,
  type FhirRequest,
  type RouteContext,
  type WriteSession,
} from '../fhir-server';
import { type Order } from './advisory';
import { attributionOf, type Attribution } from './attribution';
import { exceptionReason, exceptionReasonCodes } from './content';
import { BASE, codings, EXCEPTION_REASON_SYSTEM, ISSUE_SYSTEM, LOINC, localRef, OUTCOME_SYSTEM, readResource, RECOGNISED_LIST_ID, STATUS_REASON_EXTENSION } from './fhir';
import type { RecognitionFinder } from './finder';

export const MONITORED_CONDITION_EXTENSION = `${BASE}/StructureDefinition/recognition-monitored-condition`;

interface Loaded {
  issue: DetectedIssue & { id: string; meta: { versionId: string } };
  kind: 'test' | 'medication';
  order: Order & { id: string };
}

async function load(session: WriteSession, id: string): Promise<Loaded> {
  const issue = await session.read<DetectedIssue>('DetectedIssue', id);
  if (!issue) {
    throw notFound(`DetectedIssue/${id} does not exist`);
  }
  const code = codings(issue.code).find((c) => c.system === ISSUE_SYSTEM)?.code;
  if (code !== 'duplicate-test' && code !== 'duplicate-medication') {
    throw unprocessable([outcomeIssue('error', 'business-rule', `DetectedIssue/${id} is not a recognition advisory (code ${ISSUE_SYSTEM}|duplicate-test or duplicate-medication)`)]);
  }
  if (issue.mitigation?.length) {
    throw conflict(`DetectedIssue/${id} was already decided (${codings(issue.mitigation[0].action).map((c) => c.code).join(', ')} on ${issue.mitigation[0].date ?? 'an earlier date'})`);
  }
  const orderRef = localRef(issue.implicated?.[0]);
  const order = orderRef && (orderRef.resourceType === 'ServiceRequest' || orderRef.resourceType === 'MedicationRequest') ? await session.read<Order>(orderRef.resourceType, orderRef.id) : undefined;
  if (!order) {
    throw unprocessable([outcomeIssue('error', 'business-rule', `The order DetectedIssue/${id} is about (${issue.implicated?.[0]?.reference ?? 'none'}) no longer exists`)]);
  }
  return { issue: issue as Loaded['issue'], kind: code === 'duplicate-test' ? 'test' : 'medication', order: order as Loaded['order'] };
}

function practitionerOf(ctx: RouteContext): Reference | undefined {
  const practitioner = ctx.caller?.practitioner;
  return practitioner ? { reference: practitioner } : undefined;
}

interface DecisionFacts {
  who: Attribution;
  item?: { system: string; code: string; price?: number };
}

/**
 * Who the order belongs to and which item (and price) it is, read before the decision's transaction (reads
 * outside it would wait for it on embedded PGlite's one connection).
 */
async function decisionFacts(ctx: RouteContext, id: string, finder: RecognitionFinder): Promise<DecisionFacts> {
  const issue = await readResource<DetectedIssue>(ctx.repo, 'DetectedIssue', id);
  const ref = localRef(issue?.implicated?.[0]);
  const order = ref ? await readResource<Order>(ctx.repo, ref.resourceType, ref.id) : undefined;
  if (!order) {
    return { who: {} };
  }
  const who = await attributionOf(ctx.repo, order);
  if (order.resourceType !== 'ServiceRequest') {
    return { who };
  }
  // The item (and its price) the prior results were recognised as, through the ConceptMaps like the check.
  const [item] = await finder.itemsOf(order.code);
  return { who, item: item ?? (codings(order.code).find((c) => c.system === LOINC) as DecisionFacts['item']) };
}

async function recordDecision(
  session: WriteSession,
  facts: DecisionFacts,
  loaded: Loaded,
  decision: { outcome: 'recognised' | 'not-recognised'; reason?: string; counted: boolean; by?: string },
): Promise<void> {
  const { who, item } = facts;
  await session.tx.query(
    `INSERT INTO recognition_decision (issue_id, kind, outcome, reason_code, counted, institution, department, doctor, item_system, item_code, price, decided_by)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
    [
      loaded.issue.id,
      loaded.kind,
      decision.outcome,
      decision.reason ?? null,
      decision.counted,
      who.institution ?? null,
      who.department ?? null,
      who.doctor ?? null,
      item?.system ?? null,
      item?.code ?? null,
      decision.outcome === 'recognised' && loaded.kind === 'test' ? (item?.price ?? null) : null,
      decision.by ?? null,
    ],
  );
}

async function writeIssue(session: WriteSession, issue: Loaded['issue'], mitigation: DetectedIssueMitigation): Promise<DetectedIssue> {
  const { resource } = await session.update('DetectedIssue', issue.id, { ...issue, mitigation: [mitigation] }, Number(issue.meta.versionId));
  return resource as DetectedIssue;
}

function orderStatusReason(): CodeableConcept {
  return { coding: [{ system: OUTCOME_SYSTEM, code: 'recognised', display: 'Prior result recognised; the order is revoked' }], text: 'recognised' };
}

async function accept(ctx: RouteContext, _request: FhirRequest, id: string, finder: RecognitionFinder): Promise<DetectedIssue> {
  const facts = await decisionFacts(ctx, id, finder);
  return ctx.repo.write(async (session) => {
    const loaded = await load(session, id);
    const { order, issue } = loaded;
    const priors = (issue.implicated ?? []).slice(1).filter((r) => localRef(r));
    if (order.resourceType === 'ServiceRequest') {
      // R4's ServiceRequest has no statusReason: the core extension request-statusReason carries it.
      const extension = [...(order.extension ?? []).filter((e) => e.url !== STATUS_REASON_EXTENSION), { url: STATUS_REASON_EXTENSION, valueCodeableConcept: orderStatusReason() }];
      const supportingInfo = [...(order.supportingInfo ?? []), ...priors.filter((p) => !(order.supportingInfo ?? []).some((s) => s.reference === p.reference))];
      await session.update('ServiceRequest', order.id, { ...order, status: 'revoked', extension, supportingInfo } as ServiceRequest, Number(order.meta?.versionId));
    } else {
      await session.update('MedicationRequest', order.id, { ...order, status: 'cancelled', statusReason: orderStatusReason() } as MedicationRequest, Number(order.meta?.versionId));
    }
    if (loaded.kind === 'test') {
      // The recognised results become part of the visit's record: a List for the order's encounter.
      const list: List = {
        resourceType: 'List',
        identifier: [{ system: RECOGNISED_LIST_ID, value: issue.id }],
        status: 'current',
        mode: 'snapshot',
        title: 'Recognised results (互认结果)',
        code: { coding: [{ system: OUTCOME_SYSTEM, code: 'recognised', display: 'Prior result recognised; the order is revoked' }] },
        subject: order.subject as Reference<never>,
        encounter: order.encounter as Reference<never> | undefined,
        date: session.now,
        source: practitionerOf(ctx) as Reference<never> | undefined,
        entry: priors.map((item) => ({ item })),
      };
      await session.conditionalCreate(list, `identifier=${encodeURIComponent(RECOGNISED_LIST_ID)}|${encodeURIComponent(issue.id)}`);
    }
    await recordDecision(session, facts, loaded, { outcome: 'recognised', counted: true, by: ctx.caller?.practitioner ?? ctx.caller?.clientId });
    return writeIssue(session, issue, {
      action: { coding: [{ system: OUTCOME_SYSTEM, code: 'recognised', display: 'Prior result recognised; the order is revoked' }] },
      date: session.now,
      author: practitionerOf(ctx) as Reference<never> | undefined,
    });
  });
}

async function override(ctx: RouteContext, request: FhirRequest, id: string, finder: RecognitionFinder): Promise<DetectedIssue> {
  const params = operationParameters(request);
  const reasonParam = params.parameter?.find((p) => p.name === 'reason');
  const code = reasonParam?.valueCoding?.code ?? reasonParam?.valueCodeableConcept?.coding?.find((c) => c.system === EXCEPTION_REASON_SYSTEM)?.code ?? parameterValue(params, 'reason');
  const reason = code ? exceptionReason(code) : undefined;
  if (!reason) {
    throw badRequest(`Parameter "reason" is required: a code of ${EXCEPTION_REASON_SYSTEM} (${exceptionReasonCodes.join(', ')})${code ? `; "${code}" is not one` : ''}`);
  }
  const diseaseParam = params.parameter?.find((p) => p.name === 'disease');
  const disease: CodeableConcept | undefined = diseaseParam?.valueCodeableConcept ?? (diseaseParam?.valueString ? { text: diseaseParam.valueString } : undefined);
  if (reason.requiresDisease && !disease?.coding?.length && !disease?.text) {
    throw badRequest(`Reason "${reason.code}" (${reason.display}) needs the monitored disease: parameter "disease" (valueCodeableConcept, e.g. ICD-10, or valueString)`);
  }
  const note = parameterValue(params, 'note');
  if (note && note.length > 2000) {
    throw badRequest('Parameter "note" is at most 2000 characters');
  }
  const facts = await decisionFacts(ctx, id, finder);
  return ctx.repo.write(async (session) => {
    const loaded = await load(session, id);
    await recordDecision(session, facts, loaded, { outcome: 'not-recognised', reason: reason.code, counted: reason.counted, by: ctx.caller?.practitioner ?? ctx.caller?.clientId });
    return writeIssue(session, loaded.issue, {
      extension: disease ? [{ url: MONITORED_CONDITION_EXTENSION, valueCodeableConcept: disease }] : undefined,
      action: { coding: [{ system: EXCEPTION_REASON_SYSTEM, code: reason.code, display: reason.display }], text: note ?? reason.display },
      date: session.now,
      author: practitionerOf(ctx) as Reference<never> | undefined,
    });
  });
}

export function decisionOperations(finder: RecognitionFinder): FhirOperation[] {
  const op = (name: string, run: typeof accept): FhirOperation => ({
    name,
    definition: `${BASE}/OperationDefinition/DetectedIssue-${name}`,
    levels: ['instance'],
    resourceTypes: ['DetectedIssue'],
    affectsState: true,
    roles: ['clinician', 'facility-system', 'admin'],
    invoke: async (ctx, request, target) => ({ status: 200, body: await run(ctx, request, target.id as string, finder) }),
  });
  return [op('recognition-accept', accept), op('recognition-override', override)];
}
