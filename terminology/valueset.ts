/**
 * ValueSet compose evaluation. A value set is compiled once into include/exclude clauses whose filters are
 * predicates over concepts; the compiled value set answers both questions the operations ask:
 *   - `has(system, code)`: is this code a member? ($validate-code, required bindings) — without expanding, so that
 *     "all of LOINC" or "everything below this SNOMED concept" costs a Map look-up, not a 100,000-row list;
 *   - `entries()`: every member, in compose order, without duplicates ($expand).
 */
import type { Coding, ValueSet, ValueSetComposeInclude, ValueSetComposeIncludeConcept, ValueSetComposeIncludeFilter } from '@medplum/fhirtypes';
import { FhirError, outcome, issue } from '../fhir-server';
import type { CodeSystemModel, Concept, Designation } from './model';
import { compareVersions } from './resolver';
import { clauseVersion, type SystemVersionRules } from './system-versions';

export interface ExpansionEntry {
  system: string;
  version?: string;
  code: string;
  display?: string;
  inactive: boolean;
  abstract: boolean;
  designations: Designation[];
  /** The code system's concept, when the code system is known (undefined for codes of an unknown system listed by the value set). */
  concept?: Concept;
  /** The value set names the code system version (compose.include.version), or a forced version applies. */
  pinned: boolean;
  /** The version the value set (or force-system-version) asked for, possibly with wildcards (1.x.x). */
  pattern?: string;
  /** The version the include named could not be found: `version` and the concept are the fallback's. */
  missingVersion?: string;
}

/** Something the value set refers to could not be found: the caller says which (code system or value set). */
export class MissingDefinition extends FhirError {
  constructor(
    readonly kind: 'CodeSystem' | 'ValueSet',
    readonly canonical: string,
    detail = '',
  ) {
    const text =
      kind === 'CodeSystem'
        ? `A definition for CodeSystem '${canonical}' could not be found, so the code cannot be validated${detail}`
        : `A definition for the value Set '${canonical}' could not be found${detail}`;
    super(404, outcome([issue('error', 'not-found', text)]));
  }
}

export function unsupportedFilter(text: string): FhirError {
  return new FhirError(400, outcome([issue('error', 'not-supported', text)]));
}

type Predicate = (concept: Concept) => boolean;

export interface CompiledClause {
  system?: string;
  /** The version pinned by the include (or forced by force-system-version), possibly a wildcard. */
  version?: string;
  /** The version the model was resolved with (pinned, else system-version/check-system-version, else latest). */
  lookupVersion?: string;
  /** The pinned version could not be found; the model is the version that would otherwise be used. */
  missingVersion?: string;
  model?: CodeSystemModel;
  /** Codes listed by `concept`, with the value set's own display and designations. */
  listed?: Map<string, ValueSetComposeIncludeConcept>;
  filters: Predicate[];
  valueSets: CompiledValueSet[];
  /** The canonicals `valueSets` were compiled from (to check they are still current). */
  valueSetCanonicals: string[];
}

function valueText(value: Concept['properties'][number]['value']): string {
  return typeof value === 'object' ? ((value as Coding).code ?? '') : String(value);
}

/**
 * Whether the pattern quantifies a group that itself holds an unbounded quantifier, like `(a+)+`: JavaScript's
 * backtracking engine can take exponential time on such a pattern (ReDoS), blocking the whole process. A simple
 * scan over groups; escaped characters and character classes are skipped.
 */
export function hasNestedQuantifier(pattern: string): boolean {
  // Per open group: does it hold an unbounded quantifier (+, *, {n,})?
  const groups: boolean[] = [];
  // Whether the token just read is a group holding one.
  let afterUnboundedGroup = false;
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === '\\') {
      i++;
      afterUnboundedGroup = false;
      continue;
    }
    if (ch === '[') {
      while (i < pattern.length && pattern[i] !== ']') {
        i += pattern[i] === '\\' ? 2 : 1;
      }
      afterUnboundedGroup = false;
      continue;
    }
    if (ch === '(') {
      groups.push(false);
      afterUnboundedGroup = false;
      continue;
    }
    if (ch === ')') {
      afterUnboundedGroup = groups.pop() ?? false;
      if (afterUnboundedGroup && groups.length > 0) {
        groups[groups.length - 1] = true;
      }
      continue;
    }
    const unbounded = ch === '+' || ch === '*' || (ch === '{' && /^\{\d+,\}/.test(pattern.slice(i)));
    if (unbounded) {
      if (afterUnboundedGroup) {
        return true;
      }
      if (groups.length > 0) {
        groups[groups.length - 1] = true;
      }
    }
    afterUnboundedGroup = false;
  }
  return false;
}

/** A regex that must match the whole value (FHIR filter `regex`); refused when it is not a valid pattern. */
function wholeMatch(pattern: string): RegExp {
  if (pattern.length > 500) {
    throw unsupportedFilter('A regex filter is limited to 500 characters');
  }
  if (hasNestedQuantifier(pattern)) {
    throw unsupportedFilter(`The regex filter '${pattern}' repeats a group that already repeats (such as (a+)+): refused, since matching it can take exponential time`);
  }
  try {
    return new RegExp(`^(?:${pattern})$`, 'u');
  } catch {
    throw new FhirError(400, outcome([issue('error', 'invalid', `The regex filter '${pattern}' is not a valid regular expression`)]));
  }
}

/** Turns one compose filter into a predicate over the code system's concepts. */
export function compileFilter(model: CodeSystemModel, filter: ValueSetComposeIncludeFilter): Predicate {
  const property = filter.property ?? '';
  const op: string = filter.op ?? '';
  if (filter.value === undefined || filter.value === '') {
    // A filter without a value (absent, or only a data-absent-reason) selects nothing meaningful: the value set is broken.
    throw new FhirError(400, outcome([issue('error', 'invalid', `The filter '${property} ${op}' of the value set has no value`)]));
  }
  const value = filter.value;
  if (property === 'concept' || property === 'code') {
    switch (op) {
      case 'is-a': {
        const below = model.descendants(value);
        return (c) => c.code === value || below.has(c.code);
      }
      case 'descendent-of':
      case 'descendant-of': {
        const below = model.descendants(value);
        return (c) => below.has(c.code);
      }
      case 'is-not-a': {
        const below = model.descendants(value);
        return (c) => c.code !== value && !below.has(c.code);
      }
      case 'child-of':
        return (c) => c.parents.includes(value);
      case 'generalizes':
        return (c) => model.subsumes(c.code, value);
      case '=':
        return (c) => c.code === value;
      case 'in': {
        const codes = new Set(value.split(',').map((v) => v.trim()));
        return (c) => codes.has(c.code);
      }
      case 'not-in': {
        const codes = new Set(value.split(',').map((v) => v.trim()));
        return (c) => !codes.has(c.code);
      }
      case 'regex': {
        const re = wholeMatch(value);
        return (c) => re.test(c.code);
      }
      default:
        throw unsupportedFilter(`The filter operator '${op}' is not supported on property '${property}'`);
    }
  }
  // Any other property: display, inactive, parent/child, or a property the code system defines.
  const values = (c: Concept): string[] => {
    switch (property) {
      case 'display':
        return c.display === undefined ? [] : [c.display];
      case 'inactive':
        return [String(c.inactive)];
      case 'notSelectable': {
        // Only a concept that says whether it is selectable matches `notSelectable = false`; one that does not say is neither.
        const stated = c.properties.filter((p) => p.code === 'notSelectable').map((p) => valueText(p.value));
        return stated.length > 0 ? stated : c.abstract ? ['true'] : [];
      }
      case 'parent':
        return c.parents;
      case 'child':
        return c.children;
      default:
        return c.properties.filter((p) => p.code === property).map((p) => valueText(p.value));
    }
  };
  switch (op) {
    case '=':
      return (c) => values(c).includes(value);
    case 'in': {
      const wanted = new Set(value.split(',').map((v) => v.trim()));
      return (c) => values(c).some((v) => wanted.has(v));
    }
    case 'not-in': {
      const unwanted = new Set(value.split(',').map((v) => v.trim()));
      return (c) => !values(c).some((v) => unwanted.has(v));
    }
    case 'regex': {
      const re = wholeMatch(value);
      return (c) => values(c).some((v) => re.test(v));
    }
    case 'exists':
      return (c) => (values(c).length > 0) === (value !== 'false');
    default:
      throw unsupportedFilter(`The filter operator '${op}' is not supported on property '${property}'`);
  }
}

function entryOf(clause: CompiledClause, concept: Concept | undefined, code: string): ExpansionEntry {
  const listed = clause.listed?.get(code);
  return {
    system: clause.system as string,
    version: clause.model?.version ?? clause.version,
    code: concept?.code ?? code,
    display: concept?.display ?? listed?.display,
    inactive: concept?.inactive ?? false,
    abstract: concept?.abstract ?? false,
    designations: listed?.designation?.length
      ? [
          ...listed.designation.filter((d) => d.value).map((d) => ({ language: d.language, use: d.use, value: d.value as string })),
          ...(concept?.designations ?? []),
        ]
      : (concept?.designations ?? []),
    concept,
    pinned: clause.version !== undefined,
    ...(clause.version !== undefined ? { pattern: clause.version } : {}),
    ...(clause.missingVersion !== undefined ? { missingVersion: clause.missingVersion } : {}),
  };
}

function clauseHas(clause: CompiledClause, system: string, code: string): ExpansionEntry | undefined {
  if (clause.system === undefined) {
    // Only value sets: their intersection.
    const [first, ...others] = clause.valueSets;
    const entry = first?.has(system, code);
    return entry && others.every((vs) => vs.has(system, code)) ? entry : undefined;
  }
  if (system !== clause.system) {
    return undefined;
  }
  let concept: Concept | undefined;
  if (clause.model && clause.model.concepts.size > 0) {
    concept = clause.model.get(code);
    if (!concept) {
      return undefined;
    }
    code = concept.code;
  }
  if (clause.listed && !clause.listed.has(code)) {
    return undefined;
  }
  if (!concept && !clause.listed) {
    return undefined;
  }
  if (concept && !clause.filters.every((f) => f(concept))) {
    return undefined;
  }
  if (!clause.valueSets.every((vs) => vs.has(system, code))) {
    return undefined;
  }
  return entryOf(clause, concept, code);
}

function clauseEntries(clause: CompiledClause): ExpansionEntry[] {
  if (clause.system === undefined) {
    const [first, ...others] = clause.valueSets;
    return (first?.entries() ?? []).filter((e) => others.every((vs) => vs.has(e.system, e.code)));
  }
  const result: ExpansionEntry[] = [];
  const known = clause.model && clause.model.concepts.size > 0 ? clause.model : undefined;
  if (clause.listed) {
    for (const code of clause.listed.keys()) {
      const entry = clauseHas(clause, clause.system, code);
      if (entry) {
        result.push(entry);
      }
    }
    return result;
  }
  for (const concept of known?.concepts.values() ?? []) {
    if (clause.filters.every((f) => f(concept)) && clause.valueSets.every((vs) => vs.has(clause.system as string, concept.code))) {
      result.push(entryOf(clause, concept, concept.code));
    }
  }
  return result;
}

/** The expansion parameter a value set's compose can carry (extension valueset-expansion-parameter). */
const EXPANSION_PARAMETER = 'http://hl7.org/fhir/StructureDefinition/valueset-expansion-parameter';

/**
 * `versionsMatch` of the compose: true merges a code included from several versions of its code system into one
 * entry; false makes an exclude remove a code only from the version it names. Undefined when not said.
 */
export function versionsMatchOf(valueSet: ValueSet): boolean | undefined {
  const value = expansionParameterOf(valueSet, 'versionsMatch');
  return value === undefined ? undefined : value === 'true';
}

/** The value (as text) of an expansion parameter the value set's compose sets, e.g. displayLanguage. */
export function expansionParameterOf(valueSet: ValueSet, name: string): string | undefined {
  for (const ext of valueSet.compose?.extension ?? []) {
    if (ext.url !== EXPANSION_PARAMETER || ext.extension?.find((e) => e.url === 'name')?.valueCode !== name) {
      continue;
    }
    const value = ext.extension?.find((e) => e.url === 'value');
    const text = value && Object.entries(value).find(([k]) => k.startsWith('value'))?.[1];
    if (text !== undefined) {
      return String(text);
    }
  }
  return undefined;
}

export class CompiledValueSet {
  private expansion?: ExpansionEntry[];
  /** See versionsMatchOf. */
  readonly versionsMatch: boolean | undefined;

  constructor(
    readonly valueSet: ValueSet,
    readonly includes: CompiledClause[],
    readonly excludes: CompiledClause[],
    /** `system|version` of every code system the compose used. */
    readonly usedCodeSystems: string[],
  ) {
    this.versionsMatch = versionsMatchOf(valueSet);
  }

  /**
   * Whether an exclude removes this entry. An exclude removes a code whatever the version it was included from
   * (excluding version 1 of a code system removes its codes from version 2 too), except when the compose says
   * versionsMatch false, or the exclude lists the code under a named version: then only from that version.
   */
  private excluded(entry: ExpansionEntry): boolean {
    return this.excludes.some((x) => {
      const hit = clauseHas(x, entry.system, entry.code);
      if (!hit) {
        return false;
      }
      const sameVersionOnly = this.versionsMatch === false || (x.listed !== undefined && x.version !== undefined);
      return !sameVersionOnly || hit.version === entry.version;
    });
  }

  /** Every member with this code: one per code system version the value set includes it from. */
  matches(system: string, code: string): ExpansionEntry[] {
    const found: ExpansionEntry[] = [];
    for (const include of this.includes) {
      const entry = clauseHas(include, system, code);
      if (entry && !found.some((e) => e.version === entry.version) && !this.excluded(entry)) {
        found.push(entry);
      }
    }
    return found;
  }

  /** Every include and exclude clause, those of the value sets they import too. */
  *allClauses(): Generator<CompiledClause> {
    for (const clause of [...this.includes, ...this.excludes]) {
      yield clause;
      for (const vs of clause.valueSets) {
        yield* vs.allClauses();
      }
    }
  }

  has(system: string, code: string): ExpansionEntry | undefined {
    for (const include of this.includes) {
      const entry = clauseHas(include, system, code);
      if (entry && !this.excluded(entry)) {
        return entry;
      }
    }
    return undefined;
  }

  /**
   * Every member, in the order of the compose, each once: a code included from two versions of its code system is
   * two members (unless versionsMatch merges them).
   */
  entries(): ExpansionEntry[] {
    if (!this.expansion) {
      // key → index in result
      const seen = new Map<string, number>();
      const result: ExpansionEntry[] = [];
      for (const include of this.includes) {
        for (const entry of clauseEntries(include)) {
          const key = `${entry.system}\u0000${this.versionsMatch ? '' : (entry.version ?? '')}\u0000${entry.code}`;
          const at = seen.get(key);
          if (at !== undefined) {
            // Merged versions (versionsMatch): the code stays where it first came, as the latest version has it.
            if (this.versionsMatch && compareVersions(entry.version, result[at].version) > 0 && !this.excluded(entry)) {
              result[at] = entry;
            }
          } else if (!this.excluded(entry)) {
            seen.set(key, result.length);
            result.push(entry);
          }
        }
      }
      this.expansion = result;
    }
    return this.expansion;
  }
}

/** What compilation needs from the service: code system models and other value sets, by canonical. */
export interface ComposeContext {
  codeSystem(system: string, version: string | undefined): Promise<CodeSystemModel | undefined>;
  valueSet(canonical: string, visiting: Set<string>): Promise<CompiledValueSet>;
  /** system-version, check-system-version and force-system-version of the request. */
  rules?: SystemVersionRules;
}

async function compileClause(ctx: ComposeContext, clause: ValueSetComposeInclude, visiting: Set<string>, used: Set<string>): Promise<CompiledClause> {
  const valueSets: CompiledValueSet[] = [];
  for (const canonical of clause.valueSet ?? []) {
    const vs = await ctx.valueSet(canonical, visiting);
    vs.usedCodeSystems.forEach((u) => used.add(u));
    valueSets.push(vs);
  }
  if (!clause.system) {
    if (valueSets.length === 0) {
      throw new FhirError(400, outcome([issue('error', 'invalid', 'A compose include/exclude has neither system nor valueSet')]));
    }
    return { filters: [], valueSets, valueSetCanonicals: clause.valueSet ?? [] };
  }
  const { pinned, lookup } = clauseVersion(ctx.rules, clause.system, clause.version);
  let lookupVersion = lookup;
  let model = await ctx.codeSystem(clause.system, lookupVersion);
  let missingVersion: string | undefined;
  if (!model && pinned !== undefined) {
    // The pinned version is unknown but others are: compile against the version that would be used without the
    // pin, so that $validate-code can still say what the code is; $expand refuses (missingVersion).
    lookupVersion = clauseVersion(ctx.rules, clause.system, undefined).lookup;
    model = await ctx.codeSystem(clause.system, lookupVersion);
    missingVersion = model ? pinned : undefined;
  }
  const listed = clause.concept?.length ? new Map(clause.concept.map((c) => [c.code as string, c])) : undefined;
  const usable = model && (model.concepts.size > 0 || model.resource.content !== 'not-present') ? model : undefined;
  if (!usable && (!listed || clause.filter?.length)) {
    throw new MissingDefinition('CodeSystem', pinned ? `${clause.system}|${pinned}` : clause.system);
  }
  used.add(`${clause.system}${usable?.version ? `|${usable.version}` : pinned ? `|${pinned}` : ''}`);
  const filters = usable ? (clause.filter ?? []).map((f) => compileFilter(usable, f)) : [];
  return {
    system: clause.system,
    version: pinned,
    lookupVersion,
    ...(missingVersion !== undefined ? { missingVersion } : {}),
    model: usable,
    listed,
    filters,
    valueSets,
    valueSetCanonicals: clause.valueSet ?? [],
  };
}

export async function compileValueSet(ctx: ComposeContext, valueSet: ValueSet, visiting: Set<string>): Promise<CompiledValueSet> {
  const compose = valueSet.compose;
  if (!compose?.include?.length) {
    if (valueSet.expansion?.contains) {
      // A value set that only comes expanded: its members are the expansion's codes.
      const byCode = new Map<string, ValueSetComposeIncludeConcept[]>();
      for (const c of valueSet.expansion.contains) {
        if (c.system && c.code) {
          byCode.set(c.system, [...(byCode.get(c.system) ?? []), { code: c.code, display: c.display }]);
        }
      }
      const includes: CompiledClause[] = [...byCode.entries()].map(([system, concepts]) => ({
        system,
        listed: new Map(concepts.map((c) => [c.code as string, c])),
        filters: [],
        valueSets: [],
        valueSetCanonicals: [],
      }));
      return new CompiledValueSet(valueSet, includes, [], []);
    }
    throw new FhirError(422, outcome([issue('error', 'invalid', `The value set ${valueSet.url ?? valueSet.id} has no compose and no expansion`)]));
  }
  const used = new Set<string>();
  const includes: CompiledClause[] = [];
  for (const include of compose.include) {
    includes.push(await compileClause(ctx, include, visiting, used));
  }
  const excludes: CompiledClause[] = [];
  for (const exclude of compose.exclude ?? []) {
    excludes.push(await compileClause(ctx, exclude, visiting, used));
  }
  return new CompiledValueSet(valueSet, includes, excludes, [...used]);
}
