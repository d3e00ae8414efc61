/**
 * Rules as versioned rows of `sv_rule`. A change (threshold, status, severity, effective period, legal basis) is a new
 * version written under a lock, never an update, so findings keep naming the version that raised them. Workers read
 * the rules in force from a cache that is refreshed at most once a second (and at once in the process that changed
 * a rule), so a change takes effect everywhere within a second, without a deployment.
 */
import { badRequest, conflict, notFound, type Database, type Queryable } from '../../fhir-server';
import { RULE_KINDS, SHIPPED_RULES, type Rule, type RuleCategory, type RuleKind, type RuleParams, type RuleSeverity } from './catalogue';
import { checkParams } from './params';

interface RuleRow {
  id: string;
  version: number;
  kind: RuleKind;
  category: RuleCategory;
  title: string;
  severity: RuleSeverity;
  status: 'active' | 'retired';
  params: RuleParams;
  effective_start: Date | null;
  effective_end: Date | null;
  legal_basis: string;
  changed_by: string;
  changed_at: Date;
}

function toRule(r: RuleRow): Rule {
  return {
    id: r.id,
    version: Number(r.version),
    kind: r.kind,
    category: r.category,
    title: r.title,
    severity: r.severity,
    status: r.status,
    params: typeof r.params === 'string' ? (JSON.parse(r.params) as RuleParams) : r.params,
    effectiveStart: r.effective_start ? new Date(r.effective_start).toISOString() : undefined,
    effectiveEnd: r.effective_end ? new Date(r.effective_end).toISOString() : undefined,
    legalBasis: r.legal_basis,
    changedBy: r.changed_by,
    changedAt: new Date(r.changed_at).toISOString(),
  };
}

/** What a change may set; anything left out keeps the value of the version before. */
export interface RuleChange {
  /** Parameters to replace, by name (others keep their values). */
  params?: RuleParams;
  status?: 'active' | 'retired';
  severity?: RuleSeverity;
  title?: string;
  legalBasis?: string;
  /** ISO instants; null clears. */
  effectiveStart?: string | null;
  effectiveEnd?: string | null;
  /** For a new rule only. */
  kind?: RuleKind;
  category?: RuleCategory;
}

const LATEST = `SELECT DISTINCT ON (id) * FROM sv_rule ORDER BY id, version DESC`;

export class RuleStore {
  private cache: { rules: Rule[]; at: number } | undefined;

  constructor(
    private readonly db: Database,
    private readonly now: () => number = Date.now,
  ) {}

  /** Writes the shipped rules as version 1 where they do not exist yet, with `overrides` on their parameters. */
  async install(overrides: Record<string, RuleParams> = {}): Promise<number> {
    let installed = 0;
    for (const rule of SHIPPED_RULES) {
      const params = { ...rule.params, ...(overrides[rule.id] ?? {}) };
      checkParams(rule.kind, params);
      const rows = await this.db.query(
        `INSERT INTO sv_rule (id, version, kind, category, title, severity, status, params, legal_basis, changed_by)
         SELECT $1, 1, $2, $3, $4, $5, 'active', $6::jsonb, $7, 'shipped'
         WHERE NOT EXISTS (SELECT 1 FROM sv_rule WHERE id = $1)
         ON CONFLICT DO NOTHING RETURNING id`,
        [rule.id, rule.kind, rule.category, rule.title, rule.severity, JSON.stringify(params), rule.legalBasis],
      );
      installed += rows.length;
    }
    this.cache = undefined;
    return installed;
  }

  /** The latest version of every rule (active and retired), at most a second old. */
  async latest(): Promise<Rule[]> {
    if (!this.cache || Date.now() - this.cache.at > 1000) {
      const rows = await this.db.query<RuleRow>(LATEST);
      this.cache = { rules: rows.map(toRule), at: Date.now() };
    }
    return this.cache.rules;
  }

  /** Active rules of these kinds. Whether a fact falls in a rule's effective period is checked by the evaluators. */
  async active(kinds?: readonly RuleKind[]): Promise<Rule[]> {
    return (await this.latest()).filter((r) => r.status === 'active' && (!kinds || kinds.includes(r.kind)));
  }

  async get(id: string, version?: number, q: Queryable = this.db): Promise<Rule | undefined> {
    const rows = version
      ? await q.query<RuleRow>('SELECT * FROM sv_rule WHERE id = $1 AND version = $2', [id, version])
      : await q.query<RuleRow>('SELECT * FROM sv_rule WHERE id = $1 ORDER BY version DESC LIMIT 1', [id]);
    return rows[0] ? toRule(rows[0]) : undefined;
  }

  async history(id?: string): Promise<Rule[]> {
    const rows = id
      ? await this.db.query<RuleRow>('SELECT * FROM sv_rule WHERE id = $1 ORDER BY version', [id])
      : await this.db.query<RuleRow>('SELECT * FROM sv_rule ORDER BY id, version');
    return rows.map(toRule);
  }

  /**
   * Writes the next version of rule `id` (or its first, for a new rule: kind, category, title and legal basis are then
   * required). `expectedVersion`, when given, must be the latest (409 otherwise), as If-Match does for resources.
   */
  async change(id: string, change: RuleChange, changedBy: string, expectedVersion?: number): Promise<Rule> {
    if (!/^[A-Z0-9][A-Z0-9-]{1,63}$/.test(id)) {
      throw badRequest(`A rule id is 2–64 upper-case letters, digits and hyphens, got "${id}"`);
    }
    const rule = await this.db.transaction(async (tx) => {
      // One writer per rule id at a time: the version numbers stay dense and no change is lost.
      await tx.query(`SELECT pg_advisory_xact_lock(hashtext('sv_rule:' || $1))`, [id]);
      const current = await this.get(id, undefined, tx);
      if (expectedVersion !== undefined && (current?.version ?? 0) !== expectedVersion) {
        throw conflict(`Rule ${id} is at version ${current?.version ?? 'none'}, not ${expectedVersion}: read it again and repeat the change`);
      }
      if (!current && (!change.kind || !change.category || !change.title || !change.legalBasis)) {
        throw notFound(`Rule ${id} does not exist; a new rule needs kind, category, title and legalBasis`);
      }
      if (current && change.kind && change.kind !== current.kind) {
        throw badRequest(`Rule ${id} is of kind ${current.kind}; a rule's kind cannot change (add a new rule instead)`);
      }
      const kind = (current?.kind ?? change.kind) as RuleKind;
      if (!RULE_KINDS.includes(kind)) {
        throw badRequest(`Unknown rule kind "${kind}"; kinds are ${RULE_KINDS.join(', ')}`);
      }
      const params = { ...(current?.params ?? {}), ...(change.params ?? {}) };
      checkParams(kind, params);
      const start = change.effectiveStart === undefined ? current?.effectiveStart : change.effectiveStart ?? undefined;
      const end = change.effectiveEnd === undefined ? current?.effectiveEnd : change.effectiveEnd ?? undefined;
      if (start && end && Date.parse(start) >= Date.parse(end)) {
        throw badRequest(`The effective period of rule ${id} ends (${end}) before it starts (${start})`);
      }
      const version = (current?.version ?? 0) + 1;
      await tx.query(
        `INSERT INTO sv_rule (id, version, kind, category, title, severity, status, params, effective_start, effective_end, legal_basis, changed_by, changed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11, $12, $13)`,
        [
          id,
          version,
          kind,
          change.category ?? current?.category,
          change.title ?? current?.title,
          change.severity ?? current?.severity ?? 'moderate',
          change.status ?? current?.status ?? 'active',
          JSON.stringify(params),
          start ?? null,
          end ?? null,
          change.legalBasis ?? current?.legalBasis,
          changedBy,
          new Date(this.now()).toISOString(),
        ],
      );
      return (await this.get(id, version, tx)) as Rule;
    });
    this.cache = undefined;
    return rule;
  }
}

/** Whether an instant falls in the rule's effective period (open ends unbounded). */
export function inEffect(rule: Rule, instant: string | Date | undefined): boolean {
  if (!instant) {
    return true;
  }
  const t = new Date(instant).getTime();
  return (!rule.effectiveStart || t >= Date.parse(rule.effectiveStart)) && (!rule.effectiveEnd || t < Date.parse(rule.effectiveEnd));
}
