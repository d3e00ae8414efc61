/**
 * Supervision's FHIR operations:
 * - `GET [base]/$supervision-rules[?id=&history=true]`: the rules in force (or every version), supervisors and admins;
 * - `POST [base]/$supervision-rule-update`: a new version of a rule (threshold, status, severity, effective period,
 *   legal basis) or a new rule of an existing kind, then the batch re-evaluation of a period; supervisors and admins;
 * - `POST [base]/$supervision-reevaluate`: re-evaluate rules over a period; supervisors and admins;
 * - `POST [base]/DetectedIssue/[id]/$supervision-review`: the decision of the finding's current review step;
 * - `[base]/Measure/[id]/$evaluate-measure` (and `Measure/$evaluate-measure?measure=`): an indicator's MeasureReport;
 * - `[base]/$supervision-status`: this process's evaluation lag (p50/p99 since start or the last `resetLag`), each
 *   worker process's (`worker`, as published in the last two minutes), the queues' backlog and the last batch
 *   re-evaluation; supervisors and admins.
 *
 * Rules are kept in supervision's own table rather than as FHIR resources: a rule's parameters are typed per kind
 * and checked on every change, and versions are dense and never rewritten, which a generic resource type (Library,
 * PlanDefinition) would only carry as opaque extensions. The operations render them as Parameters.
 */
import type { Parameters, ParametersParameter } from '@medplum/fhirtypes';
import {
  badRequest,
  FhirError,
  issue,
  notSupported,
  operationParameters,
  outcome,
  parameterValue,
  type CallerIdentity,
  type FhirOperation,
  type FhirRequest,
  type OperationTarget,
  type RouteContext,
} from '../fhir-server';
import type { SupervisionRuntime } from './runtime';
import { decisionParameters } from './review';
import { PERIOD_KINDS } from './rules/kinds';
import type { Rule, RuleCategory, RuleKind, RuleParams, RuleSeverity } from './rules/catalogue';
import type { RuleChange } from './rules/store';
import { parsePeriod, parseSubject, unknownMeasure } from './measures';

const BUREAU_ROLES = ['admin', 'supervisor'];
const DEF = 'https://huimin.health/fhir/OperationDefinition';

function ruleParameter(rule: Rule): ParametersParameter {
  const part: ParametersParameter[] = [
    { name: 'id', valueCode: rule.id },
    { name: 'version', valueInteger: rule.version },
    { name: 'kind', valueCode: rule.kind },
    { name: 'category', valueCode: rule.category },
    { name: 'title', valueString: rule.title },
    { name: 'severity', valueCode: rule.severity },
    { name: 'status', valueCode: rule.status },
    ...(rule.effectiveStart ? [{ name: 'effectiveStart', valueDateTime: rule.effectiveStart }] : []),
    ...(rule.effectiveEnd ? [{ name: 'effectiveEnd', valueDateTime: rule.effectiveEnd }] : []),
    { name: 'legalBasis', valueString: rule.legalBasis },
    { name: 'changedBy', valueString: rule.changedBy },
    { name: 'changedAt', valueDateTime: rule.changedAt },
    ...Object.entries(rule.params).map(([name, value]) => ({
      name: 'parameter',
      part: [
        { name: 'name', valueString: name },
        typeof value === 'number' ? { name: 'value', valueDecimal: value } : typeof value === 'boolean' ? { name: 'value', valueBoolean: value } : { name: 'value', valueString: JSON.stringify(value) },
      ],
    })),
  ];
  return { name: 'rule', part };
}

/** A parameter's value as JSON: numbers and booleans as they are; a string that is JSON (a list, an object) parsed. */
function jsonValue(p: ParametersParameter | undefined, name: string): unknown {
  if (!p) {
    throw badRequest(`parameter "${name}" has no value`);
  }
  if (p.valueDecimal !== undefined) return p.valueDecimal;
  if (p.valueInteger !== undefined) return p.valueInteger;
  if (p.valueUnsignedInt !== undefined) return p.valueUnsignedInt;
  if (p.valuePositiveInt !== undefined) return p.valuePositiveInt;
  if (p.valueBoolean !== undefined) return p.valueBoolean;
  const text = p.valueString ?? p.valueCode;
  if (text === undefined) {
    throw badRequest(`parameter "${name}" needs valueDecimal, valueInteger, valueBoolean or valueString (JSON for lists and objects)`);
  }
  const trimmed = text.trim();
  if (/^[[{]/.test(trimmed) || /^-?\d+(\.\d+)?$/.test(trimmed) || trimmed === 'true' || trimmed === 'false') {
    try {
      return JSON.parse(trimmed) as unknown;
    } catch {
      throw badRequest(`parameter "${name}": "${trimmed.slice(0, 80)}" is not valid JSON`);
    }
  }
  return text;
}

function oneOf<T extends string>(value: string | undefined, allowed: readonly T[], name: string): T | undefined {
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value)) {
    throw badRequest(`${name} must be one of ${allowed.join(', ')}, got "${value}"`);
  }
  return value as T;
}

function instant(value: string | undefined, name: string): string | null | undefined {
  if (value === undefined) return undefined;
  if (value === '') return null;
  if (Number.isNaN(Date.parse(value))) {
    throw badRequest(`${name} must be a date or dateTime, got "${value}"`);
  }
  return new Date(value).toISOString();
}

function changedBy(ctx: RouteContext): string {
  const c = ctx.caller;
  return c ? [c.clientId, c.organization].filter(Boolean).join(' / ') : 'platform';
}

export function supervisionOperations(runtime: SupervisionRuntime): FhirOperation[] {
  const rulesOp: FhirOperation = {
    name: 'supervision-rules',
    definition: `${DEF}/supervision-rules`,
    levels: ['system'],
    affectsState: false,
    roles: BUREAU_ROLES,
    async invoke(_ctx, request) {
      const params = operationParameters(request);
      const id = parameterValue(params, 'id');
      const history = parameterValue(params, 'history') === 'true';
      const { rules } = runtime.attached();
      const list = history ? await rules.history(id) : (await rules.latest()).filter((r) => !id || r.id === id);
      return { status: 200, body: { resourceType: 'Parameters', parameter: list.map(ruleParameter) } };
    },
  };

  const updateOp: FhirOperation = {
    name: 'supervision-rule-update',
    definition: `${DEF}/supervision-rule-update`,
    levels: ['system'],
    affectsState: true,
    roles: BUREAU_ROLES,
    // Who may call is decided here (roles, and for reviews the step's owner), not by the token's write scopes.
    authorizesCaller: true,
    async invoke(ctx, request) {
      if (request.method !== 'POST') {
        throw notSupported(405, '$supervision-rule-update changes a rule: use POST with a Parameters body');
      }
      const params = operationParameters(request);
      const id = parameterValue(params, 'id');
      if (!id) {
        throw badRequest('$supervision-rule-update needs the rule id (parameter "id")');
      }
      const expected = parameterValue(params, 'expectedVersion');
      const newParams: RuleParams = {};
      for (const p of (params.parameter ?? []).filter((x) => x.name === 'parameter')) {
        const name = p.part?.find((x) => x.name === 'name')?.valueString;
        if (!name) {
          throw badRequest('each "parameter" of $supervision-rule-update has a part "name" (valueString) and a part "value"');
        }
        newParams[name] = jsonValue(p.part?.find((x) => x.name === 'value'), name);
      }
      const change: RuleChange = {
        params: Object.keys(newParams).length ? newParams : undefined,
        status: oneOf(parameterValue(params, 'status'), ['active', 'retired'] as const, 'status'),
        severity: oneOf(parameterValue(params, 'severity'), ['high', 'moderate', 'low'] as const, 'severity') as RuleSeverity | undefined,
        title: parameterValue(params, 'title'),
        legalBasis: parameterValue(params, 'legalBasis'),
        effectiveStart: instant(parameterValue(params, 'effectiveStart'), 'effectiveStart'),
        effectiveEnd: instant(parameterValue(params, 'effectiveEnd'), 'effectiveEnd'),
        kind: parameterValue(params, 'kind') as RuleKind | undefined,
        category: oneOf(parameterValue(params, 'category'), ['policy', 'management', 'medical'] as const, 'category') as RuleCategory | undefined,
      };
      if (expected !== undefined && !/^\d+$/.test(expected)) {
        throw badRequest(`expectedVersion must be a whole number, got "${expected}"`);
      }
      const { rules, engine, now } = runtime.attached();
      const rule = await rules.change(id, change, changedBy(ctx), expected === undefined ? undefined : Number(expected));
      const out: ParametersParameter[] = [ruleParameter(rule)];
      // A changed rule looks again at a recent period (or the one asked for), so its new threshold applies to it.
      if (rule.status === 'active' && PERIOD_KINDS.includes(rule.kind)) {
        const to = instant(parameterValue(params, 'reevaluateTo'), 'reevaluateTo') ?? new Date(now()).toISOString();
        const defaultFrom = Math.max(now() - 31 * 86_400_000, rule.effectiveStart ? Date.parse(rule.effectiveStart) : 0);
        const from = instant(parameterValue(params, 'reevaluateFrom'), 'reevaluateFrom') ?? new Date(defaultFrom).toISOString();
        if (Date.parse(from) < Date.parse(to)) {
          const job = await engine.queueReevaluation({ start: from, end: to }, [rule.id]);
          out.push({ name: 'reevaluation', part: [{ name: 'job', valueString: job }, { name: 'periodStart', valueDateTime: from }, { name: 'periodEnd', valueDateTime: to }] });
        }
      }
      return { status: 200, body: { resourceType: 'Parameters', parameter: out } };
    },
  };

  const reevaluateOp: FhirOperation = {
    name: 'supervision-reevaluate',
    definition: `${DEF}/supervision-reevaluate`,
    levels: ['system'],
    affectsState: true,
    roles: BUREAU_ROLES,
    // Who may call is decided here (roles, and for reviews the step's owner), not by the token's write scopes.
    authorizesCaller: true,
    async invoke(_ctx, request) {
      const params = operationParameters(request);
      const period = parsePeriod(parameterValue(params, 'periodStart'), parameterValue(params, 'periodEnd'), runtime.attached().config.timeZone);
      const ruleIds = (params.parameter ?? []).filter((p) => p.name === 'rule').map((p) => p.valueCode ?? p.valueString ?? '');
      const { engine, rules } = runtime.attached();
      const known = new Set((await rules.latest()).map((r) => r.id));
      const unknown = ruleIds.filter((id) => !known.has(id));
      if (unknown.length > 0) {
        throw badRequest(`Unknown rule${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')} (see $supervision-rules)`);
      }
      const job = await engine.queueReevaluation(period, ruleIds.length ? ruleIds : undefined);
      return {
        status: 202,
        body: { resourceType: 'Parameters', parameter: [{ name: 'job', valueString: job }, { name: 'periodStart', valueDateTime: period.start }, { name: 'periodEnd', valueDateTime: period.end }] },
      };
    },
  };

  const reviewOp: FhirOperation = {
    name: 'supervision-review',
    definition: `${DEF}/supervision-review`,
    levels: ['instance'],
    resourceTypes: ['DetectedIssue'],
    affectsState: true,
    roles: ['admin', 'supervisor', 'facility-system', 'clinician'],
    // Who may call is decided here (roles, and for reviews the step's owner), not by the token's write scopes.
    authorizesCaller: true,
    async invoke(ctx, request, target: OperationTarget) {
      const params = operationParameters(request);
      const decision = parameterValue(params, 'decision');
      if (!decision) {
        throw badRequest('$supervision-review needs a decision (proceed, dismiss; appeal, accept; confirmed, dismissed, corrected)');
      }
      const actor: CallerIdentity = ctx.caller ?? { clientId: 'platform', role: 'admin' };
      const { engine } = runtime.attached();
      const result = await engine.review.decide(target.id as string, { decision, note: parameterValue(params, 'note') }, actor);
      return { status: 200, body: decisionParameters(result) };
    },
  };

  const evaluateOp: FhirOperation = {
    name: 'evaluate-measure',
    definition: 'http://hl7.org/fhir/OperationDefinition/Measure-evaluate-measure',
    levels: ['type', 'instance'],
    resourceTypes: ['Measure'],
    affectsState: false,
    async invoke(ctx, request: FhirRequest, target: OperationTarget) {
      const params: Parameters = operationParameters(request);
      const { measures, db, config, now } = runtime.attached();
      const which = target.id ?? parameterValue(params, 'measure');
      if (!which) {
        throw badRequest('Measure/$evaluate-measure needs the measure (its url in parameter "measure"), or call Measure/[id]/$evaluate-measure');
      }
      const provider = measures.byIdOrUrl(which);
      if (!provider) {
        throw unknownMeasure(which);
      }
      const reportType = parameterValue(params, 'reportType');
      if (reportType && reportType !== 'summary' && reportType !== 'population') {
        throw new FhirError(400, outcome([issue('error', 'not-supported', `reportType ${reportType} is not supported: supervision reports are summaries (reportType=summary)`)]));
      }
      const period = parsePeriod(parameterValue(params, 'periodStart'), parameterValue(params, 'periodEnd'), runtime.attached().config.timeZone);
      const subject = await parseSubject(db, parameterValue(params, 'subject'));
      const caller = ctx.caller;
      if (caller && !BUREAU_ROLES.includes(caller.role)) {
        // A hospital evaluates its own figures (or a department's of its own), never another's or the city's.
        const own = subject.kind === 'institution' && subject.reference === caller.organization;
        const ownDepartment =
          subject.kind === 'department' &&
          (await db.query('SELECT 1 FROM sv_organization WHERE id = $1 AND part_of = $2', [subject.reference, caller.organization ?? ''])).length > 0;
        if (!own && !ownDepartment) {
          throw new FhirError(403, outcome([issue('error', 'forbidden', `A ${caller.role} client evaluates measures for its own organisation (subject=${caller.organization ?? '?'}) or its departments only`)]));
        }
      }
      return { status: 200, body: await measures.report(db, provider, period, subject, config.bureau, now()) };
    },
  };

  const statusOp: FhirOperation = {
    name: 'supervision-status',
    definition: `${DEF}/supervision-status`,
    levels: ['system'],
    affectsState: false,
    roles: BUREAU_ROLES,
    async invoke(_ctx, request) {
      const { engine } = runtime.attached();
      // Resetting the lag samples changes no data (only this process's measurement), so GET stays allowed.
      if (request.method === 'POST' && parameterValue(operationParameters(request), 'resetLag') === 'true') {
        await engine.resetLag();
      }
      const lag = engine.lag();
      const workers = await engine.workersLag();
      const backlog = await engine.backlog();
      const last = engine.lastReevaluation;
      const parameter: ParametersParameter[] = [
        {
          name: 'lag',
          part: [
            { name: 'count', valueInteger: lag.count },
            ...(lag.p50 !== undefined ? [{ name: 'p50', valueDecimal: lag.p50 }] : []),
            ...(lag.p99 !== undefined ? [{ name: 'p99', valueDecimal: lag.p99 }] : []),
            ...(lag.max !== undefined ? [{ name: 'max', valueDecimal: lag.max }] : []),
          ],
        },
        // Every worker process's own lag (published at most once a second; this process's as of now).
        ...workers.map((w) => ({
          name: 'worker',
          part: [
            { name: 'name', valueString: w.worker },
            { name: 'updatedAt', valueDateTime: w.updatedAt },
            { name: 'count', valueInteger: w.lag.count },
            ...(w.lag.p50 !== undefined ? [{ name: 'p50', valueDecimal: w.lag.p50 }] : []),
            ...(w.lag.p99 !== undefined ? [{ name: 'p99', valueDecimal: w.lag.p99 }] : []),
            ...(w.lag.max !== undefined ? [{ name: 'max', valueDecimal: w.lag.max }] : []),
          ],
        })),
        ...(backlog ? [{ name: 'backlog', part: [{ name: 'events', valueInteger: backlog.events }, { name: 'jobs', valueInteger: backlog.jobs }] }] : []),
        ...(last
          ? [{ name: 'lastReevaluation', part: [{ name: 'periodStart', valueDateTime: last.period.start }, { name: 'periodEnd', valueDateTime: last.period.end }, { name: 'ms', valueInteger: last.ms }, { name: 'findings', valueInteger: last.findings }, { name: 'at', valueDateTime: last.at }] }]
          : []),
      ];
      return { status: 200, body: { resourceType: 'Parameters', parameter } };
    },
  };

  return [rulesOp, updateOp, reevaluateOp, reviewOp, evaluateOp, statusOp];
}
