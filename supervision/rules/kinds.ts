/**
 * The evaluators: one SQL query per kind of rule over the fact tables, giving the suspicions (candidates) a rule
 * raises. Each runs in one of three scopes, with the same SQL:
 *  - `ids`: the facts a change event touched (within seconds of the write);
 *  - `from`/`to`: every fact of a period (batch re-evaluation when a rule is added or changed, and the monthly run);
 *  - `open`: what is overdue now (the periodic tick: referral deadlines, silent feeds, stays still going on).
 * A candidate's `key` makes it unique per rule (sv_finding), so re-evaluating never raises a suspicion twice.
 */
import type { Queryable } from '../../fhir-server';
import type { Rule, RuleKind } from './catalogue';

export interface Scope {
  /** Ids of the changed resources (of the kind's trigger type). */
  ids?: string[];
  /** Period of the facts' own dates, [from, to). */
  from?: string;
  to?: string;
  /** What is overdue at `now` (tick). */
  open?: boolean;
  /** The evaluation instant, ISO. */
  now: string;
  /** For audit rules: the days whose audit facts changed. */
  days?: string[];
}

export interface Candidate {
  key: string;
  occurredAt: string;
  institution?: string;
  department?: string;
  practitioner?: string;
  patient?: string;
  /** Local references of the records the finding implicates (`MedicationRequest/1`). */
  implicated: string[];
  /** What was found, in words. */
  detail: string;
  value?: number;
  threshold?: number;
  unit?: string;
}

/** Recognition windows by test code (the recognition module's table, or the rule's own parameters). */
export interface ValidityWindowSource {
  windowDays(system: string, code: string): Promise<number | undefined>;
}

export interface EvaluationContext {
  q: Queryable;
  windows: ValidityWindowSource;
}

interface KindEvaluator {
  /** The resource types whose changes make this kind look again; none: only by period or tick. */
  triggers: readonly string[];
  /** Whether the periodic tick runs it (scope `open`). */
  tick?: boolean;
  /** Whether a period run applies. */
  period?: boolean;
  evaluate(ctx: EvaluationContext, rule: Rule, scope: Scope): Promise<Candidate[]>;
}

interface Row {
  key: string;
  occurred_at: Date | string;
  institution: string | null;
  department: string | null;
  practitioner: string | null;
  patient: string | null;
  implicated: string[];
  value: string | number | null;
  threshold: string | number | null;
  [extra: string]: unknown;
}

const LIVE = `NOT IN ('cancelled', 'entered-in-error', 'draft', 'revoked')`;

/** SQL parameters with numbered placeholders. */
class Params {
  readonly values: unknown[] = [];
  add(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

/** The scope as a condition on the fact's id column and date column. */
function scoped(p: Params, scope: Scope, idColumn: string, dateColumn: string): string {
  if (scope.ids) {
    return `${idColumn} = ANY(${p.add(scope.ids)}::text[])`;
  }
  const parts: string[] = [];
  if (scope.from) parts.push(`${dateColumn} >= ${p.add(scope.from)}::timestamptz`);
  if (scope.to) parts.push(`${dateColumn} < ${p.add(scope.to)}::timestamptz`);
  return parts.length ? parts.join(' AND ') : 'true';
}

const num = (v: unknown): number | undefined => (v === null || v === undefined ? undefined : Number(v));
const round = (v: number | undefined, digits = 2): string => (v === undefined ? '?' : String(Math.round(v * 10 ** digits) / 10 ** digits));

function candidates(rows: Row[], detail: (r: Row) => string, unit?: string): Candidate[] {
  return rows.map((r) => ({
    key: r.key,
    occurredAt: new Date(r.occurred_at).toISOString(),
    institution: r.institution ?? undefined,
    department: r.department ?? undefined,
    practitioner: r.practitioner ?? undefined,
    patient: r.patient ?? undefined,
    implicated: r.implicated ?? [],
    detail: detail(r),
    value: num(r.value),
    threshold: num(r.threshold),
    unit,
  }));
}

const P = (r: Rule, name: string): unknown => r.params[name];

const daysSupply: KindEvaluator = {
  triggers: ['MedicationRequest'],
  period: true,
  async evaluate({ q }, rule, scope) {
    const p = new Params();
    const out = p.add(P(rule, 'outpatientMaxDays'));
    const emer = p.add(P(rule, 'emergencyMaxDays'));
    const rows = await q.query<Row>(
      `SELECT p.id AS key, p.authored AS occurred_at, p.institution, p.department, p.practitioner, p.patient,
         ARRAY['MedicationRequest/' || p.id] AS implicated, p.days_supply AS value,
         CASE p.setting WHEN 'emergency' THEN ${emer}::numeric ELSE ${out}::numeric END AS threshold, p.setting
       FROM sv_prescription p
       WHERE p.setting IN ('outpatient', 'emergency') AND NOT p.long_term AND p.extension_reason IS NULL AND p.status ${LIVE}
         AND p.days_supply > CASE p.setting WHEN 'emergency' THEN ${emer}::numeric ELSE ${out}::numeric END
         AND ${scoped(p, scope, 'p.id', 'p.authored')}`,
      p.values,
    );
    return candidates(rows, (r) => `${r.setting} prescription for ${round(num(r.value))} days' supply without a stated reason; the limit is ${num(r.threshold)} days`, 'd');
  },
};

const drugCount: KindEvaluator = {
  triggers: ['MedicationRequest'],
  period: true,
  async evaluate({ q }, rule, scope) {
    const p = new Params();
    const max = p.add(P(rule, 'maxDrugs'));
    const where = scope.ids
      ? `(p.institution, p.group_id) IN (SELECT institution, group_id FROM sv_prescription WHERE id = ANY(${p.add(scope.ids)}::text[]))`
      : scoped(p, scope, 'p.id', 'p.authored');
    const rows = await q.query<Row>(
      `SELECT coalesce(p.institution, '') || '|' || p.group_id AS key, min(p.authored) AS occurred_at, p.institution,
         min(p.department) AS department, min(p.practitioner) AS practitioner, min(p.patient) AS patient,
         array_agg('MedicationRequest/' || p.id ORDER BY p.id) AS implicated, count(*) AS value, ${max}::numeric AS threshold
       FROM sv_prescription p
       WHERE p.status ${LIVE} AND p.setting <> 'inpatient' AND ${where}
       GROUP BY p.institution, p.group_id
       HAVING count(*) > ${max}::numeric`,
      p.values,
    );
    return candidates(rows, (r) => `${num(r.value)} drugs on one prescription; at most ${num(r.threshold)} are allowed`, 'drugs');
  },
};

const longTerm: KindEvaluator = {
  triggers: ['MedicationRequest'],
  period: true,
  async evaluate({ q }, rule, scope) {
    const p = new Params();
    const weeks = p.add(P(rule, 'maxWeeks'));
    const chronicWeeks = p.add(P(rule, 'stableChronicMaxWeeks'));
    const classes = p.add(JSON.stringify(P(rule, 'excludedClasses')));
    const tbAtc = p.add(P(rule, 'tuberculosisAtc'));
    const tbDx = p.add(P(rule, 'tuberculosisDiagnoses'));
    const rows = await q.query<Row>(
      `SELECT * FROM (
         SELECT p.id AS key, p.authored AS occurred_at, p.institution, p.department, p.practitioner, p.patient,
           ARRAY['MedicationRequest/' || p.id] AS implicated, p.days_supply AS value,
           (CASE WHEN p.stable_chronic THEN ${chronicWeeks}::numeric ELSE ${weeks}::numeric END) * 7 AS threshold,
           (SELECT string_agg(DISTINCT c.key, ', ') FROM jsonb_each(${classes}::jsonb) c, jsonb_array_elements_text(c.value) prefix
             WHERE p.ingredient LIKE prefix || '%'
               AND NOT (c.key = 'antimicrobial' AND (
                 EXISTS (SELECT 1 FROM unnest(${tbAtc}::text[]) t WHERE p.ingredient LIKE t || '%')
                 OR EXISTS (SELECT 1 FROM unnest(p.reason_codes) rc, unnest(${tbDx}::text[]) d WHERE rc LIKE d || '%')))) AS excluded_class
         FROM sv_prescription p
         WHERE p.long_term AND p.status ${LIVE} AND ${scoped(p, scope, 'p.id', 'p.authored')}
       ) x WHERE x.value > x.threshold OR x.excluded_class IS NOT NULL`,
      p.values,
    );
    return candidates(rows, (r) =>
      r.excluded_class
        ? `long-term prescription of an excluded drug class (${String(r.excluded_class)}), ${round(num(r.value))} days' supply`
        : `long-term prescription for ${round(num(r.value))} days; the limit is ${num(r.threshold)} days`,
    'd');
  },
};

const validity: KindEvaluator = {
  triggers: ['MedicationRequest'],
  period: true,
  async evaluate({ q }, rule, scope) {
    const p = new Params();
    const max = p.add(P(rule, 'maxValidityDays'));
    const rows = await q.query<Row>(
      `SELECT p.id AS key, p.authored AS occurred_at, p.institution, p.department, p.practitioner, p.patient,
         ARRAY['MedicationRequest/' || p.id] AS implicated, p.validity_days AS value, ${max}::numeric AS threshold
       FROM sv_prescription p
       WHERE p.validity_days > ${max}::numeric AND p.status ${LIVE} AND ${scoped(p, scope, 'p.id', 'p.authored')}`,
      p.values,
    );
    return candidates(rows, (r) => `prescription valid for ${round(num(r.value))} days; at most ${num(r.threshold)} are allowed`, 'd');
  },
};

const duplicateDrug: KindEvaluator = {
  triggers: ['MedicationRequest'],
  period: true,
  async evaluate({ q }, rule, scope) {
    const p = new Params();
    const statuses = p.add(P(rule, 'statuses'));
    const where = scope.ids
      ? `(p.id = ANY(${p.add(scope.ids)}::text[]) OR o.id = ANY(${p.add(scope.ids)}::text[]))`
      : scoped(p, scope, 'p.id', 'p.authored');
    const rows = await q.query<Row>(
      `SELECT p.id AS key, p.authored AS occurred_at, p.institution, p.department, p.practitioner, p.patient,
         ARRAY['MedicationRequest/' || p.id] || array_agg(DISTINCT 'MedicationRequest/' || o.id) AS implicated,
         count(DISTINCT o.id) AS value, 0 AS threshold, p.ingredient, string_agg(DISTINCT o.institution, ', ') AS elsewhere
       FROM sv_prescription p
       JOIN sv_prescription o ON o.patient = p.patient AND o.ingredient = p.ingredient AND o.id <> p.id
         AND o.institution IS DISTINCT FROM p.institution AND o.status = ANY(${statuses}::text[])
         AND o.authored <= p.authored AND o.authored + coalesce(o.days_supply, 1) * interval '1 day' > p.authored
       WHERE p.ingredient IS NOT NULL AND p.patient IS NOT NULL AND p.status = ANY(${statuses}::text[]) AND ${where}
       GROUP BY p.id, p.authored, p.institution, p.department, p.practitioner, p.patient, p.ingredient`,
      p.values,
    );
    return candidates(rows, (r) => `${String(r.ingredient)} prescribed while a prescription of the same ingredient is active at ${String(r.elsewhere)}`);
  },
};

const duplicateTest: KindEvaluator = {
  triggers: ['ServiceRequest', 'Observation', 'DiagnosticReport'],
  period: true,
  async evaluate({ q, windows }, rule, scope) {
    // The windows of the codes concerned: from the recognition module's table when it knows the code, else the rule's.
    const codeRows = scope.ids
      ? await q.query<{ code_system: string; code: string }>(
          `SELECT DISTINCT o.code_system, o.code FROM sv_order o WHERE o.id = ANY($1::text[]) AND o.code IS NOT NULL AND o.code_system IS NOT NULL`,
          [scope.ids],
        )
      : await q.query<{ code_system: string; code: string }>(
          `SELECT DISTINCT code_system, code FROM sv_order WHERE kind = 'order' AND code IS NOT NULL AND code_system IS NOT NULL
             AND ($1::timestamptz IS NULL OR at >= $1) AND ($2::timestamptz IS NULL OR at < $2)`,
          [scope.from ?? null, scope.to ?? null],
        );
    const own = (P(rule, 'windows') as Array<{ system?: string; code?: string; days?: number }>) ?? [];
    const systems: string[] = [];
    const codes: string[] = [];
    const days: number[] = [];
    for (const { code_system: system, code } of codeRows) {
      const fromSource = await windows.windowDays(system, code);
      const window = fromSource ?? own.find((w) => w.system === system && w.code === code)?.days ?? (P(rule, 'defaultDays') as number);
      if (window && window > 0) {
        systems.push(system);
        codes.push(code);
        days.push(window);
      }
    }
    if (codes.length === 0) {
      return [];
    }
    const p = new Params();
    const w = `unnest(${p.add(systems)}::text[], ${p.add(codes)}::text[], ${p.add(days)}::numeric[]) AS w(system, code, days)`;
    const where = scope.ids
      ? `(o.id = ANY(${p.add(scope.ids)}::text[]) OR r.id = ANY(${p.add(scope.ids)}::text[]))`
      : scoped(p, scope, 'o.id', 'o.at');
    const rows = await q.query<Row>(
      `SELECT o.res_type || '/' || o.id AS key, o.at AS occurred_at, o.institution, o.department, o.practitioner, o.patient,
         ARRAY[o.res_type || '/' || o.id] || array_agg(DISTINCT r.res_type || '/' || r.id) AS implicated,
         min(extract(epoch FROM o.at - r.at) / 86400) AS value, w.days AS threshold, o.code
       FROM sv_order o
       JOIN ${w} ON w.system = o.code_system AND w.code = o.code
       JOIN sv_order r ON r.kind = 'result' AND r.patient = o.patient AND r.code = o.code AND r.code_system = o.code_system
         AND r.status IN ('final', 'amended', 'corrected') AND r.at <= o.at AND r.at > o.at - w.days * interval '1 day'
       WHERE o.kind = 'order' AND o.res_type = 'ServiceRequest' AND o.status ${LIVE} AND o.repeat_reason IS NULL
         AND o.patient IS NOT NULL AND ${where}
       GROUP BY o.res_type, o.id, o.at, o.institution, o.department, o.practitioner, o.patient, w.days, o.code`,
      p.values,
    );
    return candidates(rows, (r) => `test ${String(r.code)} ordered ${round(num(r.value), 1)} days after a result of the same test, within its ${num(r.threshold)}-day recognition window, without a recorded reason`, 'd');
  },
};

interface Restriction {
  atc?: string;
  system?: string;
  code?: string;
  sex?: string;
  minAge?: number;
  maxAge?: number;
  label?: string;
}

function restrictionText(r: Row): string {
  const parts = [r.r_sex ? `${String(r.r_sex)} patients only` : undefined, r.r_min !== null ? `from age ${num(r.r_min)}` : undefined, r.r_max !== null ? `up to age ${num(r.r_max)}` : undefined];
  return `${String(r.r_label ?? r.r_code)} (${parts.filter(Boolean).join(', ')}) for a ${String(r.gender ?? 'unknown-sex')} patient aged ${round(num(r.value), 0)}`;
}

const restrictionViolated = (alias: string, at: string): string => `(
  (r.sex IS NOT NULL AND ${alias}.patient_gender IS NOT NULL AND ${alias}.patient_gender <> r.sex)
  OR (r."minAge" IS NOT NULL AND ${alias}.patient_birth IS NOT NULL AND date_part('year', age(${at}::date, ${alias}.patient_birth)) < r."minAge")
  OR (r."maxAge" IS NOT NULL AND ${alias}.patient_birth IS NOT NULL AND date_part('year', age(${at}::date, ${alias}.patient_birth)) > r."maxAge"))`;

const RESTRICTION_COLUMNS = `r.sex AS r_sex, r."minAge" AS r_min, r."maxAge" AS r_max, r.label AS r_label`;
const RESTRICTION_RECORD = `r(atc text, system text, code text, sex text, "minAge" numeric, "maxAge" numeric, label text)`;

const drugRestriction: KindEvaluator = {
  triggers: ['MedicationRequest'],
  period: true,
  async evaluate({ q }, rule, scope) {
    const p = new Params();
    const list = p.add(JSON.stringify(P(rule, 'restrictions') as Restriction[]));
    const rows = await q.query<Row>(
      `SELECT p.id || '|' || r.atc AS key, p.authored AS occurred_at, p.institution, p.department, p.practitioner, p.patient,
         ARRAY['MedicationRequest/' || p.id] AS implicated, date_part('year', age(p.authored::date, p.patient_birth)) AS value,
         NULL AS threshold, p.patient_gender AS gender, r.atc AS r_code, ${RESTRICTION_COLUMNS}
       FROM sv_prescription p, jsonb_to_recordset(${list}::jsonb) AS ${RESTRICTION_RECORD}
       WHERE r.atc IS NOT NULL AND p.ingredient LIKE r.atc || '%' AND p.status ${LIVE} AND ${restrictionViolated('p', 'p.authored')}
         AND ${scoped(p, scope, 'p.id', 'p.authored')}`,
      p.values,
    );
    return candidates(rows, (r) => `restricted drug ${restrictionText(r)}`);
  },
};

const procedureRestriction: KindEvaluator = {
  triggers: ['ServiceRequest', 'Procedure'],
  period: true,
  async evaluate({ q }, rule, scope) {
    const p = new Params();
    const list = p.add(JSON.stringify(P(rule, 'restrictions') as Restriction[]));
    const rows = await q.query<Row>(
      `SELECT o.res_type || '/' || o.id || '|' || r.code AS key, o.at AS occurred_at, o.institution, o.department, o.practitioner, o.patient,
         ARRAY[o.res_type || '/' || o.id] AS implicated, date_part('year', age(o.at::date, o.patient_birth)) AS value,
         NULL AS threshold, o.patient_gender AS gender, r.code AS r_code, ${RESTRICTION_COLUMNS}
       FROM sv_order o, jsonb_to_recordset(${list}::jsonb) AS ${RESTRICTION_RECORD}
       WHERE o.kind IN ('order', 'procedure') AND r.code IS NOT NULL AND o.code = r.code AND (r.system IS NULL OR o.code_system = r.system)
         AND o.status ${LIVE} AND o.at IS NOT NULL AND ${restrictionViolated('o', 'o.at')}
         AND ${scoped(p, scope, 'o.id', 'o.at')}`,
      p.values,
    );
    return candidates(rows, (r) => `restricted procedure ${restrictionText(r)}`);
  },
};

const readmission: KindEvaluator = {
  triggers: ['Encounter'],
  period: true,
  async evaluate({ q }, rule, scope) {
    const p = new Params();
    const days = p.add(P(rule, 'days'));
    const chars = p.add(P(rule, 'diagnosisChars'));
    const excluded = p.add(P(rule, 'excludedDiagnoses'));
    const excludePlanned = p.add(P(rule, 'excludePlanned'));
    const where = scope.ids
      ? `(e2.id = ANY(${p.add(scope.ids)}::text[]) OR e1.id = ANY(${p.add(scope.ids)}::text[]))`
      : scoped(p, scope, 'e2.id', 'e2.start_at');
    const rows = await q.query<Row>(
      `SELECT DISTINCT ON (e2.id) e1.id || '|' || e2.id AS key, e2.start_at AS occurred_at, e2.institution, e2.department, e2.practitioner,
         e2.patient, ARRAY['Encounter/' || e1.id, 'Encounter/' || e2.id] AS implicated,
         extract(epoch FROM e2.start_at - e1.end_at) / 86400 AS value, ${days}::numeric AS threshold, e2.principal_dx AS dx
       FROM sv_encounter e2
       JOIN sv_encounter e1 ON e1.patient = e2.patient AND e1.institution = e2.institution AND e1.id <> e2.id AND e1.class = 'inpatient'
         AND e1.end_at IS NOT NULL AND e1.end_at <= e2.start_at AND e2.start_at <= e1.end_at + ${days}::numeric * interval '1 day'
         AND e1.status NOT IN ('cancelled', 'entered-in-error')
         AND left(e1.principal_dx, ${chars}::int) = left(e2.principal_dx, ${chars}::int)
       WHERE e2.class = 'inpatient' AND e2.status NOT IN ('cancelled', 'entered-in-error') AND e2.principal_dx IS NOT NULL
         AND e2.patient IS NOT NULL
         AND NOT EXISTS (SELECT 1 FROM unnest(${excluded}::text[]) x WHERE e2.principal_dx LIKE upper(replace(x, '.', '')) || '%')
         AND NOT (${excludePlanned}::boolean AND e2.planned)
         AND ${where}
       ORDER BY e2.id, e1.end_at DESC`,
      p.values,
    );
    return candidates(rows, (r) => `re-admitted ${round(num(r.value), 1)} days after discharge with the same principal diagnosis (${String(r.dx)}); window ${num(r.threshold)} days`, 'd');
  },
};

const lengthOfStay: KindEvaluator = {
  triggers: ['Encounter'],
  tick: true,
  period: true,
  async evaluate({ q }, rule, scope) {
    const p = new Params();
    const max = p.add(P(rule, 'maxDays'));
    const now = p.add(scope.now);
    const where = scope.open ? 'e.end_at IS NULL' : scoped(p, scope, 'e.id', 'e.start_at');
    const rows = await q.query<Row>(
      `SELECT e.id AS key, e.start_at AS occurred_at, e.institution, e.department, e.practitioner, e.patient,
         ARRAY['Encounter/' || e.id] AS implicated, extract(epoch FROM coalesce(e.end_at, ${now}::timestamptz) - e.start_at) / 86400 AS value,
         ${max}::numeric AS threshold, e.end_at IS NULL AS ongoing
       FROM sv_encounter e
       WHERE e.class = 'inpatient' AND e.status NOT IN ('cancelled', 'entered-in-error') AND e.start_at IS NOT NULL
         AND coalesce(e.end_at, ${now}::timestamptz) - e.start_at > ${max}::numeric * interval '1 day' AND ${where}`,
      p.values,
    );
    return candidates(rows, (r) => `${r.ongoing ? 'stay still going on after' : 'stay of'} ${round(num(r.value), 1)} days; the threshold is ${num(r.threshold)} days`, 'd');
  },
};

const referralDeadline: KindEvaluator = {
  triggers: ['Task'],
  tick: true,
  period: true,
  async evaluate({ q }, rule, scope) {
    const p = new Params();
    const grace = p.add(P(rule, 'graceMinutes'));
    const now = p.add(scope.now);
    const where = scope.open ? 'r.responded_at IS NULL' : scoped(p, scope, 'r.task_id', 'r.deadline');
    const rows = await q.query<Row>(
      `SELECT r.task_id AS key, r.deadline AS occurred_at, r.receiver AS institution, NULL AS department, NULL AS practitioner, NULL AS patient,
         ARRAY['Task/' || r.task_id] || CASE WHEN r.service_request IS NULL THEN ARRAY[]::text[] ELSE ARRAY['ServiceRequest/' || r.service_request] END AS implicated,
         extract(epoch FROM coalesce(r.responded_at, ${now}::timestamptz) - r.deadline) / 3600 AS value, ${grace}::numeric / 60 AS threshold,
         r.responded_at IS NULL AS unanswered
       FROM sv_referral r
       WHERE r.deadline IS NOT NULL AND r.status NOT IN ('draft', 'entered-in-error')
         AND r.deadline + ${grace}::numeric * interval '1 minute' < coalesce(r.responded_at, ${now}::timestamptz)
         AND (r.responded_at IS NOT NULL OR r.status NOT IN ('cancelled', 'completed', 'rejected', 'failed')) AND ${where}`,
      p.values,
    );
    return candidates(rows, (r) => `referral ${r.unanswered ? 'still unanswered' : 'answered'} ${round(num(r.value), 1)} hours after its deadline`, 'h');
  },
};

const silentFeed: KindEvaluator = {
  triggers: [],
  tick: true,
  async evaluate({ q }, rule, scope) {
    const rows = await q.query<Row>(
      `SELECT f.institution || '|' || max(f.last_at)::text AS key, max(f.last_at) AS occurred_at, f.institution, NULL AS department,
         NULL AS practitioner, NULL AS patient, ARRAY[]::text[] AS implicated,
         extract(epoch FROM $2::timestamptz - max(f.last_at)) / 3600 AS value, $1::numeric AS threshold
       FROM sv_feed f
       GROUP BY f.institution
       HAVING max(f.last_at) < $2::timestamptz - $1::numeric * interval '1 hour'
       UNION ALL
       SELECT o.id || '|never', $2::timestamptz, o.id, NULL, NULL, NULL, ARRAY[]::text[], NULL, $1::numeric
       FROM sv_organization o
       WHERE o.provider AND o.active AND o.part_of IS NULL AND NOT EXISTS (SELECT 1 FROM sv_feed f WHERE f.institution = o.id)`,
      [P(rule, 'silentHours'), scope.now],
    );
    return candidates(rows, (r) => (r.value === null ? 'an active provider institution that has never sent data' : `no data received for ${round(num(r.value), 1)} hours; the limit is ${num(r.threshold)} hours`), 'h');
  },
};

const auditWithoutCare: KindEvaluator = {
  triggers: [],
  tick: true,
  async evaluate({ q }, rule, scope) {
    if (!scope.days?.length) return [];
    const rows = await q.query<Row>(
      `SELECT ap.client_id || '|' || ap.day::text AS key, ap.day::timestamptz AS occurred_at, ap.organization AS institution, NULL AS department,
         ap.practitioner, NULL AS patient, ARRAY[]::text[] AS implicated, count(*) AS value, $1::numeric AS threshold,
         ap.client_id, (array_agg(ap.patient ORDER BY ap.patient))[1:20] AS patients
       FROM sv_audit_patient ap
       WHERE ap.day = ANY($2::date[])
         AND NOT EXISTS (SELECT 1 FROM sv_care c WHERE c.patient = ap.patient AND c.organization = ap.organization)
       GROUP BY ap.client_id, ap.day, ap.organization, ap.practitioner
       HAVING count(*) > $1::numeric`,
      [P(rule, 'maxPatientsPerDay'), scope.days],
    );
    return candidates(rows, (r) => `clinician client ${String(r.client_id)}${r.practitioner ? ` (${r.practitioner})` : ''} touched the records of ${num(r.value)} patients without a care relationship on one day (at most ${num(r.threshold)}): ${(r.patients as string[]).join(', ')}`, 'patients');
  },
};

const auditBreakGlass: KindEvaluator = {
  triggers: [],
  tick: true,
  async evaluate({ q }, _rule, scope) {
    if (!scope.ids?.length) return [];
    const rows = await q.query<Row>(
      `SELECT b.audit_id AS key, b.recorded AS occurred_at, b.organization AS institution, NULL AS department, b.practitioner,
         b.patients[1] AS patient, ARRAY[]::text[] AS implicated, NULL AS value, NULL AS threshold, b.client_id, b.reason, b.patients
       FROM sv_audit_break_glass b WHERE b.audit_id = ANY($1::text[])`,
      [scope.ids],
    );
    return candidates(rows, (r) => `break-the-glass access by client ${String(r.client_id)}${r.practitioner ? ` (${r.practitioner})` : ''} to ${(r.patients as string[]).join(', ') || 'no patient record'}; reason given: "${String(r.reason ?? '')}" (AuditEvent/${r.key})`);
  },
};

const auditVolume: KindEvaluator = {
  triggers: [],
  tick: true,
  async evaluate({ q }, rule, scope) {
    if (!scope.days?.length) return [];
    const rows = await q.query<Row>(
      `SELECT d.client_id || '|' || d.day::text AS key, d.day::timestamptz AS occurred_at, d.organization AS institution, NULL AS department,
         d.practitioner, NULL AS patient, ARRAY[]::text[] AS implicated, d.reads AS value,
         greatest($2::numeric, $1::numeric * base.usual) AS threshold, d.client_id, base.usual
       FROM sv_audit_day d
       JOIN LATERAL (SELECT sum(b.reads)::numeric / $3::numeric AS usual FROM sv_audit_day b
         WHERE b.client_id = d.client_id AND b.day >= d.day - $3::int AND b.day < d.day HAVING count(*) > 0) base ON true
       WHERE d.day = ANY($4::date[]) AND d.reads > $2::numeric AND d.reads > $1::numeric * base.usual`,
      [P(rule, 'factor'), P(rule, 'minReads'), P(rule, 'baselineDays'), scope.days],
    );
    return candidates(rows, (r) => `client ${String(r.client_id)} made ${num(r.value)} reads in one day against a usual ${round(num(r.usual), 0)} a day (threshold ${round(num(r.threshold), 0)})`, 'reads');
  },
};

const antimicrobials: KindEvaluator = {
  triggers: [],
  period: true,
  // Evaluated by the indicator module over a whole period (see indicators.ts); listed here for completeness.
  async evaluate() {
    return [];
  },
};

export const EVALUATORS: Record<RuleKind, KindEvaluator> = {
  'prescription-days-supply': daysSupply,
  'prescription-drug-count': drugCount,
  'long-term-prescription': longTerm,
  'prescription-validity': validity,
  'duplicate-drug': duplicateDrug,
  'duplicate-test': duplicateTest,
  'drug-restriction': drugRestriction,
  'procedure-restriction': procedureRestriction,
  readmission,
  'length-of-stay': lengthOfStay,
  'antimicrobial-indicators': antimicrobials,
  'referral-deadline': referralDeadline,
  'silent-feed': silentFeed,
  'audit-reading-without-care': auditWithoutCare,
  'audit-break-glass': auditBreakGlass,
  'audit-read-volume': auditVolume,
};

/** The kinds a change of this resource type asks to look again. */
export function kindsTriggeredBy(resourceType: string): RuleKind[] {
  return (Object.keys(EVALUATORS) as RuleKind[]).filter((k) => EVALUATORS[k].triggers.includes(resourceType));
}

export const TICK_KINDS = (Object.keys(EVALUATORS) as RuleKind[]).filter((k) => EVALUATORS[k].tick && !k.startsWith('audit-'));
export const AUDIT_KINDS: RuleKind[] = ['audit-reading-without-care', 'audit-break-glass', 'audit-read-volume'];
export const PERIOD_KINDS = (Object.keys(EVALUATORS) as RuleKind[]).filter((k) => EVALUATORS[k].period);
