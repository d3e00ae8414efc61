/**
 * Operator operations on the FHIR API (so they sit behind the same authentication as every FHIR call; the security
 * module should restrict them to an operator role):
 *
 *   GET  [base]/$hl7-messages?facility=&outcome=&type=&control-id=&since=&pending-replay=true&_count=&content=true
 *   POST [base]/$hl7-replay   (Parameters: message=<id> … | pending=true [facility=<Organization id>])
 *   GET  [base]/$hl7-facilities?silent-after-hours=24
 *   GET  [base]/$hl7-outbound-dead                (the outbound dead-letter list)
 *   POST [base]/$hl7-outbound-requeue  (Parameters: deadLetter=<id> … | facility=<Organization id> | all=true)
 *
 * Each call is audited by the platform's audit (an AuditEvent per FHIR request, naming the caller and the operation);
 * a requeued job also carries who requeued it, when, and the dead letter it came from.
 */
import type { Parameters, ParametersParameter } from '@medplum/fhirtypes';
import pino from 'pino';
import { parseSearchRequest } from '@medplum/core';
import { badRequest, notSupported, operationParameters, parameterValue, type FhirOperation, type FhirRepository } from '../fhir-server';
import { adaptersFor } from './runtime';
import { outboundFor, type DeadLetter } from './outbound/queue';
import { facilityActivity, searchMessages, type StoredMessage } from './store/message-store';
import { describeProblem } from './hl7/problems';
import { FACILITY_TAG } from './facilities';

const silentLogger = pino({ level: 'silent' });

function part(name: string, value: string | number | boolean | undefined): ParametersParameter[] {
  if (value === undefined || value === '') return [];
  if (typeof value === 'number') return [{ name, valueInteger: value }];
  if (typeof value === 'boolean') return [{ name, valueBoolean: value }];
  return [{ name, valueString: value }];
}

function messageParameter(m: StoredMessage): ParametersParameter {
  return {
    name: 'message',
    part: [
      ...part('id', m.id),
      { name: 'received', valueInstant: m.receivedAt.toISOString() },
      ...(m.facilityId ? [{ name: 'facility', valueReference: { reference: `Organization/${m.facilityId}` } }] : []),
      ...part('sendingFacility', m.sendingFacility),
      ...part('controlId', m.controlId),
      ...part('type', m.messageType),
      ...part('outcome', m.outcome),
      ...part('remoteAddress', m.remoteAddress ?? undefined),
      ...part('charset', m.charset ?? undefined),
      ...part('duplicateOf', m.duplicateOf ?? undefined),
      ...part('replayOf', m.replayOf ?? undefined),
      ...part('replayedBy', m.replayedBy ?? undefined),
      ...m.errors.map((e) => ({ name: 'error', valueString: describeProblem(e) })),
      ...m.resources.map((r) => ({ name: 'resource', valueReference: { reference: r } })),
      ...(m.content ? [{ name: 'content', valueBase64Binary: m.content.toString('base64') }] : []),
    ],
  };
}

function deadLetterParameter(d: DeadLetter): ParametersParameter {
  return {
    name: 'deadLetter',
    part: [
      ...part('id', d.id),
      ...part('kind', d.kind),
      { name: 'resource', valueReference: { reference: d.resource } },
      { name: 'facility', valueReference: { reference: `Organization/${d.facility}` } },
      ...part('controlId', d.controlId),
      ...part('error', d.error),
      ...(d.failedAt ? [{ name: 'failedAt', valueInstant: d.failedAt }] : []),
    ],
  };
}

/** The outbound queue of this process; a process without one (HL7 outbound not started) says so. */
function outbound(repo: FhirRepository): NonNullable<ReturnType<typeof outboundFor>> {
  const queue = outboundFor(repo);
  if (!queue) {
    throw notSupported(501, 'HL7 outbound is not running in this process');
  }
  return queue;
}

export const hl7Operations: readonly FhirOperation[] = [
  {
    name: 'hl7-messages',
    // Raw messages hold every facility's patients: operators and the bureau's supervisors only.
    roles: ['admin', 'supervisor'],
    definition: 'http://huimin.health/fhir/OperationDefinition/hl7-messages',
    levels: ['system'],
    affectsState: false,
    async invoke(ctx, request) {
      const p = operationParameters(request);
      const outcome = parameterValue(p, 'outcome');
      if (outcome !== undefined && !['AA', 'AE', 'AR'].includes(outcome)) throw badRequest('outcome must be AA, AE or AR');
      const since = parameterValue(p, 'since');
      if (since !== undefined && Number.isNaN(Date.parse(since))) throw badRequest('since must be a date or an instant');
      const count = Number(parameterValue(p, '_count') ?? 50);
      const messages = await searchMessages(ctx.repo.db, {
        facilityId: parameterValue(p, 'facility')?.replace(/^Organization\//, ''),
        outcome: outcome as 'AA' | 'AE' | 'AR' | undefined,
        messageType: parameterValue(p, 'type'),
        controlId: parameterValue(p, 'control-id'),
        since: since ? new Date(since) : undefined,
        pendingReplay: parameterValue(p, 'pending-replay') === 'true',
        limit: Number.isInteger(count) ? count : 50,
        withContent: parameterValue(p, 'content') === 'true',
      });
      const body: Parameters = { resourceType: 'Parameters', parameter: messages.map(messageParameter) };
      return { status: 200, body };
    },
  },
  {
    name: 'hl7-replay',
    roles: ['admin'],
    definition: 'http://huimin.health/fhir/OperationDefinition/hl7-replay',
    levels: ['system'],
    affectsState: true,
    async invoke(ctx, request) {
      const p = operationParameters(request);
      const ids = (p.parameter ?? []).filter((x) => x.name === 'message').map((x) => x.valueString ?? x.valueId ?? '');
      if (parameterValue(p, 'pending') === 'true') {
        const pending = await searchMessages(ctx.repo.db, { pendingReplay: true, facilityId: parameterValue(p, 'facility'), limit: 100 });
        ids.push(...pending.map((m) => m.id));
      }
      if (ids.length === 0) throw badRequest('Name the messages to replay (message=<id>, repeatable) or ask for pending=true');
      const { ingest } = adaptersFor(ctx.repo, silentLogger);
      const results: ParametersParameter[] = [];
      for (const id of ids) {
        try {
          const r = await ingest.replay(id);
          results.push({
            name: 'replay',
            part: r
              ? [...part('message', id), ...part('replay', r.messageId), ...part('outcome', r.outcome), ...r.problems.map((e) => ({ name: 'error', valueString: describeProblem(e) }))]
              : [...part('message', id), ...part('error', 'no such message')],
          });
        } catch (err) {
          results.push({ name: 'replay', part: [...part('message', id), ...part('error', (err as Error).message)] });
        }
      }
      return { status: 200, body: { resourceType: 'Parameters', parameter: results } };
    },
  },
  {
    name: 'hl7-outbound-dead',
    roles: ['admin', 'supervisor'],
    definition: 'http://huimin.health/fhir/OperationDefinition/hl7-outbound-dead',
    levels: ['system'],
    affectsState: false,
    async invoke(ctx) {
      const letters = await outbound(ctx.repo).deadLetters();
      return { status: 200, body: { resourceType: 'Parameters', parameter: letters.map(deadLetterParameter) } };
    },
  },
  {
    name: 'hl7-outbound-requeue',
    // Sending patient data to a hospital again is an operator's act: administrators only.
    roles: ['admin'],
    definition: 'http://huimin.health/fhir/OperationDefinition/hl7-outbound-requeue',
    levels: ['system'],
    affectsState: true,
    async invoke(ctx, request) {
      const p = operationParameters(request);
      const ids = (p.parameter ?? []).filter((x) => x.name === 'deadLetter').map((x) => x.valueString ?? x.valueId ?? '').filter(Boolean);
      const facility = parameterValue(p, 'facility')?.replace(/^Organization\//, '');
      if (ids.length === 0 && !facility && parameterValue(p, 'all') !== 'true') {
        throw badRequest('Name the dead letters to requeue (deadLetter=<id>, repeatable), a facility (facility=<Organization id>) or all=true');
      }
      if (ids.length > 1000) throw badRequest('At most 1000 dead letters at once');
      const requeued = await outbound(ctx.repo).requeueDeadLetters({ ids, facility, by: ctx.caller?.clientId ?? 'unauthenticated' });
      return {
        status: 200,
        body: {
          resourceType: 'Parameters',
          parameter: requeued.map((r) => ({
            name: 'requeued',
            part: [...part('deadLetter', r.deadLetter), ...part('job', r.job), { name: 'resource', valueReference: { reference: r.resource } }, { name: 'facility', valueReference: { reference: `Organization/${r.facility}` } }],
          })),
        },
      };
    },
  },
  {
    name: 'hl7-facilities',
    roles: ['admin', 'supervisor'],
    definition: 'http://huimin.health/fhir/OperationDefinition/hl7-facilities',
    levels: ['system'],
    affectsState: false,
    async invoke(ctx, request) {
      const p = operationParameters(request);
      const hours = Number(parameterValue(p, 'silent-after-hours') ?? 24);
      if (!Number.isFinite(hours) || hours <= 0) throw badRequest('silent-after-hours must be a positive number');
      const view = await facilityView(ctx.repo, hours);
      return { status: 200, body: view };
    },
  },
];

/** Registered facilities with their traffic over the last 30 days; silent when nothing came for `silentAfterHours`. */
export async function facilityView(repo: FhirRepository, silentAfterHours: number): Promise<Parameters> {
  const since = new Date(Date.now() - 30 * 24 * 3600 * 1000);
  const activity = await facilityActivity(repo.db, since);
  const page = await repo.search(parseSearchRequest('Organization', { _tag: FACILITY_TAG, _count: '1000' }), { count: 1000, offset: 0 });
  const registered = page.rows.map((r) => JSON.parse(r.content) as { id: string; name?: string });
  const now = Date.now();
  const parameter: ParametersParameter[] = [];
  for (const org of registered) {
    const a = activity.find((x) => x.facilityId === org.id);
    const silent = !a?.lastReceivedAt || now - a.lastReceivedAt.getTime() > silentAfterHours * 3600 * 1000;
    parameter.push({
      name: 'facility',
      part: [
        { name: 'organization', valueReference: { reference: `Organization/${org.id}`, display: org.name } },
        ...(a?.lastReceivedAt ? [{ name: 'lastMessage', valueInstant: a.lastReceivedAt.toISOString() }] : []),
        { name: 'messages', valueInteger: a?.total ?? 0 },
        { name: 'errors', valueInteger: a?.errors ?? 0 },
        { name: 'errorRate', valueDecimal: a?.total ? Math.round((a.errors / a.total) * 1000) / 1000 : 0 },
        { name: 'silent', valueBoolean: silent },
        ...Object.entries(a?.byType ?? {}).map(([type, n]) => ({ name: 'type', part: [{ name: 'code', valueString: type }, { name: 'count', valueInteger: n }] })),
      ],
    });
  }
  for (const a of activity.filter((x) => x.facilityId === null)) {
    parameter.push({
      name: 'unregistered',
      part: [...part('sendingFacility', a.sendingFacility || '(empty MSH-4)'), { name: 'messages', valueInteger: a.total }, ...(a.lastReceivedAt ? [{ name: 'lastMessage', valueInstant: a.lastReceivedAt.toISOString() }] : [])],
    });
  }
  const connected = parameter.filter((x) => x.name === 'facility');
  const live = connected.filter((x) => x.part?.find((y) => y.name === 'silent')?.valueBoolean === false).length;
  parameter.unshift({ name: 'registered', valueInteger: connected.length }, { name: 'connected', valueInteger: live });
  return { resourceType: 'Parameters', parameter };
}
