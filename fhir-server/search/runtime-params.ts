/**
 * SearchParameter resources stored at runtime (regional extensions such as ethnicity or household registration):
 * indexed on every write, searchable, listed in the CapabilityStatement, exactly like the R4 parameters, without a
 * schema change (index rows are per parameter type, not per parameter).
 *
 * Each process keeps the stored SearchParameters in memory and reloads them when they change. The platform runs
 * several worker processes, so a change is detected from the database itself: the count and the latest
 * `last_updated` of the SearchParameter rows (deletions included, as they stay flagged) — one index-only lookup,
 * made at most once per `REFRESH_INTERVAL_MS` before a search or a write. The process that wrote the change
 * reloads at once; the others within that interval. Resources written before a parameter existed (or by another
 * process within that interval) are brought up to date by `$reindex`.
 *
 * Rules: a stored parameter applies when its status is not `retired`, its type is one this server indexes (or it is
 * a composite whose components' definitions are, see `RuntimeCompositeParam`), and its expression parses; its full FHIRPath expression is evaluated with @medplum/core's evaluator on each resource of
 * its base types. A stored parameter whose code an R4 parameter of that type already has is ignored: the R4
 * definition, which the store's own rows were written with, wins. A parameter on `Resource` or `DomainResource`
 * applies to every type.
 *
 * Index rows follow the definition a resource was written under: after a parameter is changed or deleted, the
 * rows it wrote stay until `$reindex` of its types rewrites them (a deleted parameter is no longer searchable, so
 * they are not found meanwhile, unless a new parameter takes the same code).
 */
import { parseFhirPath, type FhirPathAtom } from '@medplum/core';
import type { SearchParameter } from '@medplum/fhirtypes';
import type { Queryable } from '../db/database';
import type { SearchType } from './search-type';

/** How stale a process's view of the stored SearchParameters may be, at most. */
export const REFRESH_INTERVAL_MS = 1000;

export interface RuntimeParam {
  readonly code: string;
  readonly param: SearchParameter;
  readonly expression: FhirPathAtom;
  readonly type: SearchType;
  readonly runtime: true;
}

/**
 * A stored composite parameter (type `composite`): its components are indexed through their own types, the rows
 * of each element its expression yields sharing a group number, exactly like an R4 composite (composite.ts).
 */
export interface RuntimeCompositeParam {
  readonly code: string;
  readonly param: SearchParameter;
  readonly expression: FhirPathAtom;
  readonly components: ReadonlyArray<{ readonly expression: FhirPathAtom; readonly type: SearchType }>;
  readonly runtime: true;
}

export interface RuntimeParamsSource {
  /** The handler of each indexed SearchParameter.type. */
  searchTypes: Partial<Record<SearchParameter['type'], SearchType>>;
  /** Whether `resourceType` already has an R4 parameter named `code`. */
  isBuiltIn(resourceType: string, code: string): boolean;
  /** The R4 parameter of one of `bases` with this canonical URL (a composite's component definition). */
  r4Definition(url: string, bases: readonly string[]): SearchParameter | undefined;
  /** Every resource type, for parameters defined on Resource or DomainResource (and `Resource`, for system search). */
  allTypes(): Iterable<string>;
}

/** The stored SearchParameters as one process knows them. */
export class RuntimeSearchParams {
  private byType = new Map<string, RuntimeParam[]>();
  private compositesByType = new Map<string, RuntimeCompositeParam[]>();
  private version: string | undefined;
  private checkedAt = 0;
  private inFlight: Promise<void> | undefined;
  /** Bumped on every reload, so that caches built from the parameters (the CapabilityStatement) know to rebuild. */
  generation = 0;

  constructor(
    private readonly source: RuntimeParamsSource,
    private readonly intervalMs = REFRESH_INTERVAL_MS,
  ) {}

  /** The runtime parameters of `resourceType`. */
  forType(resourceType: string): readonly RuntimeParam[] {
    return this.byType.get(resourceType) ?? [];
  }

  /** Whether any stored parameter applies at all (nearly never on a store without regional extensions). */
  any(): boolean {
    return this.byType.size > 0 || this.compositesByType.size > 0;
  }

  /** The runtime composite parameters of `resourceType`. */
  compositesFor(resourceType: string): readonly RuntimeCompositeParam[] {
    return this.compositesByType.get(resourceType) ?? [];
  }

  /**
   * Reloads the parameters when the stored ones changed. Cheap when called often: at most one version check per
   * interval (unless `force`), and concurrent callers share one check.
   */
  async refresh(q: Queryable, force = false): Promise<void> {
    if (!force && Date.now() - this.checkedAt < this.intervalMs) {
      return;
    }
    if (!this.inFlight) {
      this.inFlight = this.check(q).finally(() => {
        this.inFlight = undefined;
      });
    }
    await this.inFlight;
  }

  private async check(q: Queryable): Promise<void> {
    this.checkedAt = Date.now();
    const [row] = await q.query<{ n: number; at: Date | string | null }>(
      `SELECT count(*)::int AS n, max(last_updated) AS at FROM resource WHERE res_type = 'SearchParameter'`,
      [],
      { prepare: true },
    );
    const version = `${row.n}@${row.at === null ? '' : new Date(row.at).toISOString()}`;
    if (version === this.version) {
      return;
    }
    const rows = await q.query<{ content: string }>(
      `SELECT content FROM resource WHERE res_type = 'SearchParameter' AND NOT deleted ORDER BY id`,
    );
    this.load(rows.map((r) => JSON.parse(r.content) as SearchParameter));
    this.version = version;
  }

  /** Replaces the known parameters with those among `params` that apply (see the module's rules). */
  load(params: SearchParameter[]): void {
    const byType = new Map<string, RuntimeParam[]>();
    const compositesByType = new Map<string, RuntimeCompositeParam[]>();
    const byUrl = new Map(params.filter((p) => p.url && p.status !== 'retired').map((p) => [p.url as string, p]));
    const taken = (base: string, code: string) =>
      this.source.isBuiltIn(base, code) || byType.get(base)?.some((p) => p.code === code) || compositesByType.get(base)?.some((p) => p.code === code);
    for (const param of params) {
      if (param.status === 'retired' || !param.code || !param.expression) {
        continue;
      }
      const type = this.source.searchTypes[param.type];
      if (!type && param.type !== 'composite') {
        continue;
      }
      let expression: FhirPathAtom;
      try {
        expression = parseFhirPath(param.expression);
      } catch {
        continue; // a stored parameter with an expression that does not parse cannot index anything
      }
      const declared: readonly string[] = param.base ?? [];
      const bases = declared.includes('Resource') || declared.includes('DomainResource') ? [...this.source.allTypes()] : declared;
      const composite = type ? undefined : this.composite(param, expression, bases, byUrl);
      if (!type && !composite) {
        continue;
      }
      for (const base of bases) {
        if (taken(base, param.code)) {
          continue;
        }
        if (type) {
          byType.set(base, [...(byType.get(base) ?? []), { code: param.code, param, expression, type, runtime: true as const }]);
        } else if (composite) {
          compositesByType.set(base, [...(compositesByType.get(base) ?? []), composite]);
        }
      }
    }
    this.byType = byType;
    this.compositesByType = compositesByType;
    this.generation++;
  }

  /**
   * A stored composite whose every component has an expression that parses and a definition (an R4 parameter of
   * one of its bases, or another stored one) of an indexed type; undefined otherwise, and it is not searchable.
   */
  private composite(
    param: SearchParameter,
    expression: FhirPathAtom,
    bases: readonly string[],
    stored: ReadonlyMap<string, SearchParameter>,
  ): RuntimeCompositeParam | undefined {
    if (!param.component?.length) {
      return undefined;
    }
    const components: Array<RuntimeCompositeParam['components'][number]> = [];
    for (const component of param.component) {
      const definition = component.definition
        ? (stored.get(component.definition) ?? this.source.r4Definition(component.definition, bases))
        : undefined;
      const type = definition && this.source.searchTypes[definition.type];
      if (!type || !component.expression) {
        return undefined;
      }
      try {
        components.push({ expression: parseFhirPath(component.expression), type });
      } catch {
        return undefined;
      }
    }
    return { code: param.code as string, param, expression, components, runtime: true };
  }
}
