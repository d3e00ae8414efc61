/**
 * The terminology service: $lookup, $validate-code, $subsumes, $expand and $translate as plain functions, used by
 * the REST operations (operations.ts) and in-process by the HL7 adapters, the recognition workflow and validation.
 */
import type { CodeSystem, Coding, ConceptMap, ConceptMapGroup, ValueSet, ValueSetExpansionParameter } from '@medplum/fhirtypes';
import { randomUUID } from 'node:crypto';
import { FhirError, issue, loadFhirDefinitions, notFound, outcome, type Database, type FhirRepository } from '../fhir-server';
import { CodeSystemModel, modelFromResource, normaliseText, type Concept, type Designation } from './model';
import { compareVersions, ResourceResolver, splitCanonical, versionMatches, type Overlay } from './resolver';
import { containsEntry, expansionProperties, nestByHierarchy } from './expansion-entry';
import { checkViolation, isWildcard, rulesKey, type SystemVersionRules } from './system-versions';
import { compileValueSet, expansionParameterOf, MissingDefinition, type CompiledValueSet, type ComposeContext, type ExpansionEntry } from './valueset';

/** The extension by which a value set names the CodeSystem supplements its expansion uses. */
const VALUESET_SUPPLEMENT = 'http://hl7.org/fhir/StructureDefinition/valueset-supplement';
/** How long in-process callers (validation, HL7 messages) may reuse a resolved definition. */
export const HOT_PATH_MAX_AGE_MS = 5_000;
/** The largest expansion returned without paging (count) or a text filter narrowing it. */
export const MAX_EXPANSION = 10_000;
/** The most unmapped codes one report lists. */
export const MAX_UNMAPPED = 10_000;
/** The longest text filter of $expand. */
export const MAX_FILTER_LENGTH = 200;

export interface CallOptions {
  /** Resources supplied with the request (`tx-resource`), used before the store's. */
  overlay?: Overlay;
  /** Accept a definition resolved up to this many ms ago (0: check the store now). */
  maxAgeMs?: number;
  /** CodeSystem supplements to apply (`useSupplement`): their designations and properties join the concepts. */
  supplements?: CodeSystem[];
  /** system-version, check-system-version and force-system-version: which code system versions to use. */
  systemVersions?: SystemVersionRules;
  /** default-valueset-version: url → the version of a value set to import where the importing value set names none. */
  valueSetVersions?: ReadonlyMap<string, string>;
}

export interface LookupRequest extends CallOptions {
  system: string;
  code: string;
  version?: string;
  displayLanguage?: string;
  /** Properties wanted; undefined means all. */
  properties?: string[];
}

export interface LookupResult {
  name: string;
  version?: string;
  display?: string;
  definition?: string;
  abstract: boolean;
  inactive: boolean;
  designations: Designation[];
  properties: Array<{ code: string; value: string | number | boolean | Coding; type: string }>;
}

export interface ValidateCodeRequest extends CallOptions {
  /** Validate against this value set (canonical, or the resource itself); otherwise against the code system. */
  valueSet?: string | ValueSet;
  system?: string;
  systemVersion?: string;
  code?: string;
  display?: string;
  coding?: Coding;
  codings?: Coding[];
  displayLanguage?: string;
  /** Refuse inactive codes (default: accept them, with a message). */
  activeOnly?: boolean;
  /** false: the context does not allow abstract (notSelectable) codes. */
  abstract?: boolean;
  /** lenient-display-validation: a wrong display is reported, but the code stays valid. */
  lenientDisplay?: boolean;
  /** A coding without a system is not valid (a Coding must say its system); a bare `code` may take the value set's. */
  requireSystem?: boolean;
  /** inferSystem: a bare code is only valid when exactly one code system of the value set has it. */
  inferSystem?: boolean;
}

export interface ValidateCodeResult {
  result: boolean;
  message?: string;
  display?: string;
  system?: string;
  version?: string;
  code?: string;
  inactive?: boolean;
  /** Internal: the code is not in its (known) code system. */
  unknownCode?: boolean;
}

export interface ExpandRequest extends CallOptions {
  valueSet: string | ValueSet;
  filter?: string;
  count?: number;
  offset?: number;
  displayLanguage?: string;
  activeOnly?: boolean;
  includeDesignations?: boolean;
  /** `designation`: which designations includeDesignations returns (`urn:ietf:bcp:47|de`, or a use as system|code). */
  designations?: string[];
  /** `property`: the concept properties each entry carries. */
  properties?: string[];
  /** includeDefinition: each entry carries its definition (as the `definition` property). */
  includeDefinition?: boolean;
  /** excludeNotForUI: leave out abstract (notSelectable) codes, which a user interface must not offer. */
  excludeNotForUI?: boolean;
  /** excludeNested=false: nest members under their parents (not when paging or filtering, which cut the tree). */
  nested?: boolean;
  /** Parameters echoed in expansion.parameter. */
  echo?: ValueSetExpansionParameter[];
}

export type SubsumesOutcome = 'equivalent' | 'subsumes' | 'subsumed-by' | 'not-subsumed';

export interface TranslateRequest extends CallOptions {
  conceptMapUrl?: string;
  conceptMapVersion?: string;
  system: string;
  code: string;
  version?: string;
  /** Value set the code comes from / the target codes must come from (ConceptMap.sourceUri / targetUri). */
  source?: string;
  target?: string;
  targetSystem?: string;
  reverse?: boolean;
}

export interface TranslateMatch {
  equivalence: string;
  concept: Coding;
  /** The ConceptMap that gave the match. */
  source: string;
  comment?: string;
}

export interface TranslateResult {
  result: boolean;
  message?: string;
  matches: TranslateMatch[];
  /** More than one distinct target concept was found (the caller must not pick one blindly). */
  ambiguous: boolean;
}

export interface UnmappedCode {
  conceptMap?: string;
  system: string;
  code: string;
  display?: string;
  /** Where it was seen, e.g. the sending facility of an HL7 message. */
  source?: string;
}

const POSITIVE = new Set(['relatedto', 'equivalent', 'equal', 'wider', 'subsumes', 'narrower', 'specializes', 'inexact']);
const REVERSED: Record<string, string> = { wider: 'narrower', narrower: 'wider', subsumes: 'specializes', specializes: 'subsumes' };

/**
 * The display in the requested language, else the concept's own. Each requested language (a list, as in
 * Accept-Language) is tried in turn: a designation in exactly that language (zh-TW), then in its base language
 * (zh), then in a regional variant of it (zh-CN for zh).
 */
export function displayIn(entry: { display?: string; designations: Designation[] }, language: string | undefined, displayLanguage?: string): string | undefined {
  if (language) {
    const own = displayLanguage?.toLowerCase();
    for (const wanted of language.split(',').map((l) => l.split(';')[0].trim().toLowerCase())) {
      // The display itself is in the code system's language: it is the preferred term there.
      if (own && entry.display !== undefined && (own === wanted || own.startsWith(`${wanted}-`))) {
        return entry.display;
      }
      const lang = (d: Designation): string => d.language?.toLowerCase() ?? '';
      const designation =
        entry.designations.find((d) => lang(d) === wanted) ??
        entry.designations.find((d) => lang(d) !== '' && wanted.startsWith(lang(d) + '-')) ??
        entry.designations.find((d) => lang(d).startsWith(wanted + '-'));
      if (designation) {
        return designation.value;
      }
    }
  }
  return entry.display;
}

/** A copy of the model whose concepts carry the supplements' designations and properties as well. */
const supplemented = new WeakMap<CodeSystemModel, Map<string, CodeSystemModel>>();

function withSupplements(model: CodeSystemModel, supplements: CodeSystem[]): CodeSystemModel {
  const key = supplements.map((s) => `${s.url}|${s.version ?? ''}|${s.meta?.versionId ?? ''}`).join(' ');
  const cached = supplemented.get(model)?.get(key);
  if (cached) {
    return cached;
  }
  const extra = supplements.map(modelFromResource);
  const merged = new CodeSystemModel(model.resource);
  for (const concept of model.concepts.values()) {
    const additions = extra.map((m) => m.concepts.get(concept.code)).filter((c): c is Concept => !!c);
    merged.add(
      additions.length === 0
        ? { ...concept, children: [] }
        : {
            ...concept,
            children: [],
            designations: [...concept.designations, ...additions.flatMap((c) => c.designations)],
            properties: [...concept.properties, ...additions.flatMap((c) => c.properties)],
          }
    );
  }
  merged.link();
  const byKey = supplemented.get(model) ?? new Map<string, CodeSystemModel>();
  byKey.set(key, merged);
  supplemented.set(model, byKey);
  return merged;
}

/** `url|version` of every value set a compiled value set imports (directly or further down), each once. */
function usedValueSets(compiled: CompiledValueSet): string[] {
  const used = new Set<string>();
  for (const clause of compiled.allClauses()) {
    for (const vs of clause.valueSets) {
      if (vs.valueSet.url) {
        used.add(vs.valueSet.version ? `${vs.valueSet.url}|${vs.valueSet.version}` : vs.valueSet.url);
      }
    }
  }
  return [...used];
}

/**
 * Of the members with a coding's code (one per code system version the value set includes it from), the one the
 * coding means: the version it names, else one whose display it uses, else the latest version.
 */
function chooseEntry(entries: ExpansionEntry[], coding: Coding): ExpansionEntry | undefined {
  if (entries.length <= 1) {
    return entries[0];
  }
  const latestFirst = [...entries].sort((a, b) => compareVersions(b.version, a.version));
  if (coding.version) {
    const named = coding.version;
    return latestFirst.find((e) => e.version === named) ?? latestFirst.find((e) => e.pattern !== undefined && versionMatches(e.pattern, named)) ?? latestFirst[0];
  }
  if (coding.display) {
    const shown = coding.display;
    const byDisplay = latestFirst.find((e) => e.display === shown || e.designations.some((d) => d.value === shown));
    if (byDisplay) {
      return byDisplay;
    }
  }
  return latestFirst[0];
}

export class TerminologyService {
  readonly resolver: ResourceResolver;
  private readonly compiled = new Map<string, { at: number; vs: CompiledValueSet }>();
  private readonly validated = new Map<string, { at: number; result: ValidateCodeResult }>();

  constructor(
    readonly db: Database,
    readonly repository: FhirRepository,
  ) {
    // The store's search (CodeSystem?url=…) needs the search parameter definitions, also outside the server (commands).
    loadFhirDefinitions();
    this.resolver = new ResourceResolver(repository, db);
  }

  /** Forget cached definitions (after loaders or content loading wrote resources). */
  invalidate(): void {
    this.resolver.invalidate();
    this.compiled.clear();
    this.validated.clear();
  }

  /** The code system's model; undefined when no CodeSystem has that URL (and version). */
  async codeSystem(system: string, version?: string, options: CallOptions = {}): Promise<CodeSystemModel | undefined> {
    const canonical = version ? `${system}|${version}` : system;
    const resource = await this.resolver.find<CodeSystem>('CodeSystem', canonical, options.overlay, options.maxAgeMs);
    if (!resource) {
      return undefined;
    }
    const model = await this.resolver.model(resource);
    const supplements = (options.supplements ?? []).filter((s) => splitCanonical(s.supplements ?? '').url === model.url);
    return supplements.length > 0 ? withSupplements(model, supplements) : model;
  }

  /** The supplements named by `useSupplement` canonicals; a supplement that cannot be found is a 404. */
  async supplements(canonicals: string[], options: CallOptions = {}): Promise<CodeSystem[]> {
    const found: CodeSystem[] = [];
    for (const canonical of canonicals) {
      const supplement = await this.resolver.find<CodeSystem>('CodeSystem', canonical, options.overlay, options.maxAgeMs);
      if (!supplement || supplement.content !== 'supplement') {
        throw new FhirError(404, outcome([issue('error', 'not-found', `The CodeSystem supplement '${canonical}' could not be found`)]));
      }
      found.push(supplement);
    }
    return found;
  }

  private async requireCodeSystem(system: string, version: string | undefined, options: CallOptions): Promise<CodeSystemModel> {
    const model = await this.codeSystem(system, version, options);
    if (!model) {
      if (version && (await this.codeSystem(system, undefined, options))) {
        throw new MissingDefinition('CodeSystem', `${system}|${version}`);
      }
      throw new MissingDefinition('CodeSystem', version ? `${system}|${version}` : system);
    }
    if (model.concepts.size === 0 && model.resource.content === 'not-present') {
      throw new FhirError(
        422,
        outcome([issue('error', 'not-supported', `The code system ${system} is known, but its concepts are not loaded on this server (load its release with a terminology loader)`)]),
      );
    }
    return model;
  }

  // ---------------------------------------------------------------- $lookup

  async lookup(request: LookupRequest): Promise<LookupResult> {
    const rules = request.systemVersions;
    const version = request.version ?? rules?.force.get(request.system) ?? rules?.default.get(request.system) ?? rules?.check.get(request.system);
    const model = await this.requireCodeSystem(request.system, version, request);
    const violation = checkViolation(rules, request.system, model.version);
    if (violation) {
      throw new FhirError(400, outcome([issue('error', 'invalid', violation)]));
    }
    const concept = model.get(request.code);
    if (!concept) {
      throw notFound(`Unknown code '${request.code}' in the CodeSystem '${request.system}'${model.version ? ` version '${model.version}'` : ''}`);
    }
    const wanted = request.properties?.length && !request.properties.includes('*') ? new Set(request.properties) : undefined;
    const want = (code: string): boolean => !wanted || wanted.has(code);
    const properties: LookupResult['properties'] = [];
    for (const p of concept.properties) {
      if (want(p.code) && p.code !== 'parent' && p.code !== 'child') {
        properties.push({ code: p.code, value: p.value, type: p.type });
      }
    }
    if (want('inactive') && !concept.properties.some((p) => p.code === 'inactive')) {
      properties.push({ code: 'inactive', value: concept.inactive, type: 'boolean' });
    }
    if (want('parent')) {
      concept.parents.forEach((parent) => properties.push({ code: 'parent', value: parent, type: 'code' }));
    }
    if (want('child')) {
      concept.children.forEach((child) => properties.push({ code: 'child', value: child, type: 'code' }));
    }
    return {
      name: model.resource.title ?? model.resource.name ?? model.url,
      version: model.version,
      display: displayIn(concept, request.displayLanguage, model.resource.language),
      definition: concept.definition,
      abstract: concept.abstract,
      inactive: concept.inactive,
      // The display is a designation in the code system's language too (as for includeDesignations in $expand).
      designations:
        concept.display !== undefined && model.resource.language && !concept.designations.some((d) => d.value === concept.display && d.language === model.resource.language)
          ? [{ language: model.resource.language, value: concept.display }, ...concept.designations]
          : concept.designations,
      properties,
    };
  }

  // ---------------------------------------------------------------- $subsumes

  async subsumes(request: { system: string; version?: string; codeA: string; codeB: string } & CallOptions): Promise<SubsumesOutcome> {
    const model = await this.requireCodeSystem(request.system, request.version, request);
    const a = model.get(request.codeA);
    const b = model.get(request.codeB);
    for (const [code, concept] of [[request.codeA, a], [request.codeB, b]] as const) {
      if (!concept) {
        throw new FhirError(400, outcome([issue('error', 'invalid', `Unknown code '${code}' in the CodeSystem '${request.system}'`)]));
      }
    }
    const codeA = (a as Concept).code;
    const codeB = (b as Concept).code;
    if (codeA === codeB) {
      return 'equivalent';
    }
    if (model.subsumes(codeA, codeB)) {
      return 'subsumes';
    }
    if (model.subsumes(codeB, codeA)) {
      return 'subsumed-by';
    }
    return 'not-subsumed';
  }

  // ---------------------------------------------------------------- value sets

  /** The compiled value set (canonical or resource); 404 when the canonical is unknown. */
  async compiledValueSet(valueSet: string | ValueSet, options: CallOptions = {}, visiting = new Set<string>()): Promise<CompiledValueSet> {
    const maxAge = options.maxAgeMs ?? 0;
    let resource: ValueSet | undefined;
    if (typeof valueSet === 'string') {
      const cacheKey = options.systemVersions || options.valueSetVersions?.size ? `${valueSet} ${rulesKey(options.systemVersions)} ${[...(options.valueSetVersions ?? [])].join(',')}` : valueSet;
      const cacheable = !options.overlay?.length && !options.supplements?.length;
      const cached = cacheable ? this.compiled.get(cacheKey) : undefined;
      if (cached && maxAge > 0 && Date.now() - cached.at < maxAge) {
        return cached.vs;
      }
      if (visiting.has(valueSet)) {
        throw new FhirError(422, outcome([issue('error', 'invalid', `The value set ${valueSet} includes itself`)]));
      }
      resource = await this.resolver.find<ValueSet>('ValueSet', valueSet, options.overlay, maxAge);
      if (!resource) {
        throw new MissingDefinition('ValueSet', valueSet);
      }
      visiting = new Set([...visiting, valueSet]);
      // The same value set version over the same code system versions: reuse the compiled value set (and its
      // expansion), so that paging and text filters over a large value set do not rebuild it per request.
      if (cached && cached.vs.valueSet === resource && (await this.stillCurrent(cached.vs, options, visiting))) {
        cached.at = Date.now();
        return cached.vs;
      }
      const declared = await this.declaredSupplements(resource, options);
      const compiled = await compileValueSet(this.composeContext(declared ?? options), resource, visiting);
      if (cacheable && !declared) {
        if (this.compiled.size > 2000) {
          this.compiled.clear();
        }
        this.compiled.set(cacheKey, { at: Date.now(), vs: compiled });
      }
      return compiled;
    }
    resource = valueSet;
    options = (await this.declaredSupplements(resource, options)) ?? options;
    const context = this.composeContext(options);
    const contained = (resource.contained ?? []).filter((r): r is ValueSet => r.resourceType === 'ValueSet');
    if (contained.length > 0) {
      // compose.include.valueSet '#id' refers to a value set contained in this one.
      const outer = context.valueSet;
      context.valueSet = (canonical, seen) => {
        const local = canonical.startsWith('#') ? contained.find((c) => c.id === canonical.slice(1)) : undefined;
        return local ? this.compiledValueSet(local, options, seen) : outer(canonical, seen);
      };
    }
    return compileValueSet(context, resource, visiting);
  }

  /**
   * The options with the supplements a value set names (extension valueset-supplement) added, or undefined when it
   * names none. An unknown supplement is an error, as with useSupplement.
   */
  private async declaredSupplements(valueSet: ValueSet, options: CallOptions): Promise<CallOptions | undefined> {
    const canonicals = (valueSet.extension ?? [])
      .filter((e) => e.url === VALUESET_SUPPLEMENT)
      .map((e) => e.valueCanonical ?? e.valueUri)
      .filter((c): c is string => !!c);
    if (canonicals.length === 0) {
      return undefined;
    }
    const found = await this.supplements(canonicals, options);
    return { ...options, supplements: [...(options.supplements ?? []), ...found] };
  }

  /** Whether every code system and value set a compiled value set used is still the current one. */
  private async stillCurrent(compiled: CompiledValueSet, options: CallOptions, visiting: Set<string>): Promise<boolean> {
    for (const clause of [...compiled.includes, ...compiled.excludes]) {
      if (clause.system !== undefined && clause.model !== undefined) {
        const model = await this.codeSystem(clause.system, clause.lookupVersion, options);
        if (model !== clause.model) {
          return false;
        }
        // A pinned version that was missing may have been written since.
        if (clause.missingVersion !== undefined && (await this.codeSystem(clause.system, clause.missingVersion, options))) {
          return false;
        }
      }
      for (const [i, canonical] of clause.valueSetCanonicals.entries()) {
        if ((await this.compiledValueSet(canonical, options, visiting)) !== clause.valueSets[i]) {
          return false;
        }
      }
    }
    return true;
  }

  private composeContext(options: CallOptions): ComposeContext {
    return {
      codeSystem: (system, version) => this.codeSystem(system, version, options),
      valueSet: (canonical, visiting) => {
        // An import without a version takes the default-valueset-version for that value set, when one is given.
        const { url, version } = splitCanonical(canonical);
        const pinned = version === undefined ? options.valueSetVersions?.get(url) : undefined;
        return this.compiledValueSet(pinned ? `${url}|${pinned}` : canonical, options, visiting);
      },
      rules: options.systemVersions,
    };
  }

  async expand(request: ExpandRequest): Promise<ValueSet> {
    const compiled = await this.compiledValueSet(request.valueSet, request);
    this.refuseUnusableVersions(compiled, request);
    // A value set that leaves inactive codes out (compose.inactive false) cannot be widened by activeOnly=false.
    const activeOnly = request.activeOnly === true || compiled.valueSet.compose?.inactive === false;
    let entries = compiled.entries();
    if (activeOnly) {
      entries = entries.filter((e) => !e.inactive);
    }
    if (request.excludeNotForUI) {
      entries = entries.filter((e) => !e.abstract);
    }
    if (request.filter && request.filter.length > MAX_FILTER_LENGTH) {
      throw new FhirError(400, outcome([issue('error', 'too-costly', `The text filter is limited to ${MAX_FILTER_LENGTH} characters`)]));
    }
    if (request.filter?.trim()) {
      const words = normaliseText(request.filter).split(/\s+/).filter(Boolean);
      entries = entries.filter((e) => {
        const text = e.concept?.searchText ?? normaliseText([e.display ?? '', ...e.designations.map((d) => d.value)].join('\u0001'));
        return words.every((w) => text.includes(w));
      });
    }
    if (request.count !== undefined && request.count > MAX_EXPANSION) {
      throw new FhirError(400, outcome([issue('error', 'too-costly', `count is at most ${MAX_EXPANSION}; page with offset`)]));
    }
    const offset = Math.max(0, request.offset ?? 0);
    const total = entries.length;
    if (request.count === undefined && total - offset > MAX_EXPANSION) {
      throw new FhirError(
        422,
        outcome([issue('error', 'too-costly', `The expansion has ${total} codes, more than the ${MAX_EXPANSION} returned at once: page it with count and offset, or narrow it with filter`)]),
      );
    }
    const page = entries.slice(offset, request.count === undefined ? undefined : offset + Math.max(0, request.count));
    // The code systems the entries come from: their language (the display's) and property definitions.
    const models = new Map<string, CodeSystemModel>();
    for (const clause of compiled.allClauses()) {
      if (clause.system !== undefined && clause.model) {
        models.set(`${clause.system}|${clause.model.version ?? ''}`, clause.model);
      }
    }
    const properties = [...new Set([...(request.properties ?? []), ...(request.includeDefinition ? ['definition'] : [])])];
    const options = { ...request, properties };
    const flat = page.map((e) => containsEntry(e, options, displayIn, models.get(`${e.system}|${e.version ?? ''}`)?.resource.language));
    const whole = request.count === undefined && offset === 0 && !request.filter?.trim();
    const contains = request.nested && whole ? nestByHierarchy(page, flat) : flat;
    const propertyExtensions = properties.length > 0 ? expansionProperties(properties, [...models.values()]) : [];
    const { expansion: _old, ...rest } = compiled.valueSet;
    return {
      ...rest,
      resourceType: 'ValueSet',
      expansion: {
        ...(propertyExtensions.length > 0 ? { extension: propertyExtensions } : {}),
        identifier: `urn:uuid:${randomUUID()}`,
        timestamp: new Date().toISOString(),
        total,
        offset,
        parameter: [
          ...(request.echo ?? []),
          ...compiled.usedCodeSystems.map((u) => ({ name: 'used-codesystem', valueUri: u })),
          ...usedValueSets(compiled).map((u) => ({ name: 'used-valueset', valueUri: u })),
        ],
        ...(contains.length > 0 ? { contains } : {}),
      },
    };
  }

  /**
   * An expansion cannot be made when a code system version the value set pins does not exist, or when the version
   * used breaks a check-system-version parameter ($validate-code answers false in these cases instead).
   */
  private refuseUnusableVersions(compiled: CompiledValueSet, request: CallOptions): void {
    for (const clause of compiled.allClauses()) {
      if (clause.system === undefined || clause.model === undefined) {
        continue;
      }
      if (clause.missingVersion !== undefined) {
        throw new MissingDefinition('CodeSystem', `${clause.system}|${clause.missingVersion}`);
      }
      const violation = checkViolation(request.systemVersions, clause.system, clause.model.version);
      if (violation) {
        throw new FhirError(400, outcome([issue('error', 'invalid', violation)]));
      }
    }
  }

  // ---------------------------------------------------------------- $validate-code

  /**
   * Validates a code (or coding, or any of several codings: a CodeableConcept) against a value set or its code
   * system. Unknown value sets and code systems are errors (FhirError 404); a code that is not valid is a result
   * of false with a message.
   */
  async validateCode(request: ValidateCodeRequest): Promise<ValidateCodeResult> {
    const codings: Coding[] = request.codings?.length
      ? request.codings
      : request.coding
        ? [request.coding]
        : [{ system: request.system, version: request.systemVersion, code: request.code, display: request.display }];
    const cacheKey =
      request.maxAgeMs && !request.overlay?.length && !request.supplements?.length && typeof request.valueSet !== 'object'
        ? JSON.stringify([request.valueSet, codings, request.displayLanguage, request.activeOnly, request.abstract, request.lenientDisplay, request.requireSystem, request.inferSystem, rulesKey(request.systemVersions)])
        : undefined;
    if (cacheKey) {
      const hit = this.validated.get(cacheKey);
      if (hit && Date.now() - hit.at < (request.maxAgeMs as number)) {
        return hit.result;
      }
    }
    const results: ValidateCodeResult[] = [];
    for (const coding of codings) {
      results.push(await this.validateCoding(coding, request));
    }
    // A CodeableConcept is valid when one of its codings is, unless another names a code its (known) code
    // system does not have: that is an error in the data, whatever the other codings say.
    const valid = results.find((r) => r.result);
    const unknownCode = results.find((r) => r.unknownCode);
    let result: ValidateCodeResult;
    if (valid && unknownCode) {
      result = { ...valid, result: false, message: unknownCode.message };
    } else if (valid) {
      result = valid;
    } else {
      result = results.length === 1 ? results[0] : { result: false, message: results.map((r) => r.message).filter(Boolean).join('; ') || 'No coding is valid' };
    }
    delete result.unknownCode;
    if (cacheKey) {
      if (this.validated.size > 100_000) {
        this.validated.clear();
      }
      this.validated.set(cacheKey, { at: Date.now(), result });
    }
    return result;
  }

  private async validateCoding(coding: Coding, request: ValidateCodeRequest): Promise<ValidateCodeResult> {
    const code = coding.code;
    if (!code) {
      throw new FhirError(400, outcome([issue('error', 'invalid', 'No code to validate: give code (with system or url), coding or codeableConcept')]));
    }
    let system = coding.system;
    let version = coding.version;
    let concept: { code: string; display?: string; designations: Designation[]; inactive: boolean; abstract: boolean } | undefined;
    let where: string;
    /** The value set leaves inactive codes out (compose.inactive false). */
    let activeOnlyByValueSet = false;
    /** The display language the value set sets (its displayLanguage expansion parameter, else its language). */
    let valueSetLanguage: string | undefined;
    if (request.valueSet) {
      const compiled = await this.compiledValueSet(request.valueSet, request);
      activeOnlyByValueSet = compiled.valueSet.compose?.inactive === false;
      valueSetLanguage = expansionParameterOf(compiled.valueSet, 'displayLanguage') ?? compiled.valueSet.language;
      where = `the value set '${compiled.valueSet.url ?? compiled.valueSet.id}'`;
      if (!system) {
        if (request.requireSystem) {
          return { result: false, code, message: `The coding has no system: a code without a system has no defined meaning, so '${code}' is not in ${where}` };
        }
        // A bare code (e.g. a `code` element): any system of the value set.
        const systems = [...new Set(compiled.usedCodeSystems.map((u) => splitCanonical(u).url))].filter((s) => compiled.has(s, code));
        if (request.inferSystem && systems.length > 1) {
          return { result: false, code, message: `The system of the code '${code}' cannot be determined: ${where} has it in ${systems.join(', ')}` };
        }
        system = systems[0];
        if (!system) {
          return { result: false, code, message: `The code '${code}' is not in ${where}` };
        }
      }
      const entry = chooseEntry(compiled.matches(system, code), coding);
      const wholeFragment = compiled.includes.some((c) => c.system === system && !c.listed && c.filters.length === 0 && c.model?.resource.content === 'fragment');
      if (!entry && wholeFragment && !compiled.includes.find((c) => c.system === system)?.model?.get(code)) {
        return { result: true, system, code, message: `Unknown code '${code}' in a fragment of the CodeSystem '${system}': it may exist in the full code system, so it is not refused` };
      }
      if (!entry) {
        // Say whether the code is unknown in its system or only outside the value set.
        const model = await this.codeSystem(system, version, request);
        const known = model && model.concepts.size > 0;
        const found = known ? model.get(code) : undefined;
        const unknown = known && !found ? `Unknown code '${code}' in the CodeSystem '${system}'; ` : '';
        // Say what the code is (display, version) even though the value set does not hold it.
        return {
          result: false,
          system,
          code,
          ...(model?.version ? { version: model.version } : {}),
          ...(found ? { display: displayIn(found, request.displayLanguage) } : {}),
          unknownCode: !!unknown,
          message: `${unknown}The code '${system}#${code}' is not in ${where}`,
        };
      }
      concept = entry;
      if (entry.missingVersion !== undefined) {
        // The value set pins a version that does not exist: not valid; say what the code is where it can.
        const named = version ? await this.codeSystem(system, version, request) : undefined;
        const shown = named?.get(code) ?? entry;
        return {
          result: false,
          system,
          code,
          version: named?.version ?? entry.version,
          display: displayIn(shown, request.displayLanguage),
          message: `A definition for CodeSystem '${system}' version '${entry.missingVersion}' (named by ${where}) could not be found, so the code cannot be validated`,
        };
      }
      // A coding version inside the value set's wildcard (1.0.0 for 1.x.x) selects that version.
      const withinWildcard = version && entry.pinned && isWildcard(entry.pattern) && versionMatches(entry.pattern as string, version);
      if (version && entry.pinned && entry.version && !versionMatches(version, entry.version) && !withinWildcard) {
        return {
          result: false,
          system,
          code,
          version: entry.version,
          display: displayIn(entry, request.displayLanguage),
          message: `The version '${version}' of ${system} is not the version '${entry.version}' that ${where} includes`,
        };
      }
      if (version && (!entry.pinned || withinWildcard)) {
        // The coding names a version of the code system: the concept must exist in that version.
        const model = await this.codeSystem(system, version, request);
        if (!model) {
          return { result: false, system, code, display: displayIn(entry, request.displayLanguage), message: `A definition for CodeSystem '${system}' version '${version}' could not be found, so the code cannot be validated` };
        }
        const found = model.get(code);
        if (!found) {
          return { result: false, system, version: model.version, code, unknownCode: true, message: `Unknown code '${code}' in the CodeSystem '${system}' version '${model.version}'` };
        }
        concept = found;
        version = model.version;
      } else {
        version = entry.version ?? version;
      }
    } else {
      if (!system) {
        throw new FhirError(400, outcome([issue('error', 'invalid', 'A code system (system or url) is needed to validate a code without a value set')]));
      }
      const rules = request.systemVersions;
      const model = await this.requireCodeSystem(system, version ?? rules?.force.get(system) ?? rules?.default.get(system) ?? rules?.check.get(system), request);
      version = model.version;
      where = `the CodeSystem '${system}'`;
      if (model.resource.content === 'supplement') {
        return { result: false, system, code, message: `CodeSystem ${system}${version ? `|${version}` : ''} is a supplement, so it cannot be used as the system of a code` };
      }
      const found = model.get(code);
      if (!found && model.resource.content === 'fragment') {
        return { result: true, system, version, code, message: `Unknown code '${code}' in a fragment of ${where}: it may exist in the full code system, so it is not refused` };
      }
      if (!found) {
        return { result: false, system, version, code, unknownCode: true, message: `Unknown code '${code}' in ${where}${model.version ? ` version '${model.version}'` : ''}` };
      }
      concept = found;
    }
    // The code system's own language, when a language is asked for (its display is the preferred term in it).
    const language = request.displayLanguage ?? valueSetLanguage;
    const ownLanguage = language ? (await this.codeSystem(system, version, request))?.resource.language : undefined;
    // The code is echoed as given (a code system that is not case-sensitive accepts it in another case).
    const result: ValidateCodeResult = { result: true, system, version, code, display: displayIn(concept, request.displayLanguage, ownLanguage) };
    const violation = checkViolation(request.systemVersions, system, version);
    if (violation) {
      return { ...result, result: false, message: violation };
    }
    if (concept.inactive) {
      result.inactive = true;
      if (request.activeOnly || activeOnlyByValueSet) {
        return { ...result, result: false, message: `The code '${system}#${code}' is inactive` };
      }
      result.message = `The code '${system}#${code}' is valid but inactive`;
    }
    if (concept.abstract && request.abstract === false) {
      return { ...result, result: false, message: `The code '${system}#${code}' is abstract (not selectable), and not allowed in this context` };
    }
    if (concept.code !== code) {
      result.message = `The code '${code}' differs in case from the code '${concept.code}' of ${where}`;
    }
    if (coding.display !== undefined && coding.display !== '') {
      // With a display language in effect, only the terms in that language (and those in no stated language) are
      // valid displays: a German designation is not a valid display for an English one.
      const wanted = language?.split(',').map((l) => l.split(';')[0].trim().toLowerCase()).filter((l) => l && l !== '*');
      const inLanguage = (lang: string | undefined): boolean =>
        !wanted?.length || !lang || wanted.some((w) => lang.toLowerCase() === w || lang.toLowerCase().startsWith(`${w}-`) || w.startsWith(`${lang.toLowerCase()}-`));
      const all = [concept.display, ...concept.designations.map((d) => d.value)].filter((d): d is string => !!d);
      const inWanted = [
        ...(inLanguage(ownLanguage) ? [concept.display] : []),
        ...concept.designations.filter((d) => inLanguage(d.language)).map((d) => d.value),
      ].filter((d): d is string => !!d);
      // No term at all in the languages asked for: the terms of the default language are the valid ones.
      const valid = inWanted.length > 0 ? inWanted : all;
      if (all.length > 0 && !valid.includes(coding.display)) {
        const message = `Wrong Display Name '${coding.display}' for ${system}#${concept.code}${wanted?.length ? ` in the language ${language}` : ''}. Valid display is '${valid[0] ?? concept.display ?? all[0]}'`;
        // lenient-display-validation: a wrong display is a warning, not an invalid code.
        return request.lenientDisplay ? { ...result, message } : { ...result, result: false, message };
      }
    }
    return result;
  }

  // ---------------------------------------------------------------- $translate

  async translate(request: TranslateRequest): Promise<TranslateResult> {
    const reverse = request.reverse === true;
    let maps: ConceptMap[];
    if (request.conceptMapUrl) {
      const canonical = request.conceptMapVersion ? `${request.conceptMapUrl}|${request.conceptMapVersion}` : request.conceptMapUrl;
      const map = await this.resolver.find<ConceptMap>('ConceptMap', canonical, request.overlay, request.maxAgeMs);
      if (!map) {
        throw notFound(`A definition for the ConceptMap '${canonical}' could not be found`);
      }
      maps = [map];
    } else {
      maps = await this.resolver.conceptMapsFor(request.system, reverse, request.overlay, request.maxAgeMs);
    }
    const scope = (value: ConceptMap['sourceUri'] | undefined, canonical: ConceptMap['sourceCanonical'] | undefined): string | undefined => value ?? canonical;
    maps = maps.filter((map) => {
      const source = scope(map.sourceUri, map.sourceCanonical);
      const target = scope(map.targetUri, map.targetCanonical);
      const [from, to] = reverse ? [target, source] : [source, target];
      return (!request.source || from === request.source) && (!request.target || to === request.target);
    });
    const matches: TranslateMatch[] = [];
    for (const map of maps) {
      for (const group of map.group ?? []) {
        matches.push(...this.translateGroup(map, group, request, reverse));
      }
    }
    const positive = matches.filter((m) => POSITIVE.has(m.equivalence));
    const targets = new Set(positive.map((m) => `${m.concept.system}|${m.concept.code}`));
    const ambiguous = targets.size > 1;
    let message: string | undefined;
    if (matches.length === 0) {
      message = `No mapping found for ${request.system}#${request.code}${maps.length === 0 ? ' (no ConceptMap applies)' : ''}`;
    } else if (positive.length === 0) {
      message = `${request.system}#${request.code} is mapped only as ${[...new Set(matches.map((m) => m.equivalence))].join(', ')}`;
    } else if (ambiguous) {
      message = `Ambiguous translation: ${request.system}#${request.code} maps to ${targets.size} different concepts (${[...targets].join(', ')})`;
    }
    return { result: positive.length > 0, message, matches, ambiguous };
  }

  private translateGroup(map: ConceptMap, group: ConceptMapGroup, request: TranslateRequest, reverse: boolean): TranslateMatch[] {
    const from = reverse ? group.target : group.source;
    const to = reverse ? group.source : group.target;
    if (from !== request.system || (request.targetSystem && to !== request.targetSystem)) {
      return [];
    }
    const source = map.url ?? `ConceptMap/${map.id}`;
    const matches: TranslateMatch[] = [];
    for (const element of group.element ?? []) {
      for (const target of element.target ?? []) {
        const [fromCode, toCode, toDisplay] = reverse ? [target.code, element.code, element.display] : [element.code, target.code, target.display];
        if (fromCode !== request.code) {
          continue;
        }
        const equivalence = reverse ? (REVERSED[target.equivalence ?? ''] ?? target.equivalence ?? 'equivalent') : (target.equivalence ?? 'equivalent');
        matches.push({
          equivalence,
          concept: { system: to, ...(!reverse && group.targetVersion ? { version: group.targetVersion } : {}), ...(toCode ? { code: toCode } : {}), ...(toDisplay ? { display: toDisplay } : {}) },
          source,
          ...(target.comment ? { comment: target.comment } : {}),
        });
      }
    }
    const mapped = (group.element ?? []).some((e) => (reverse ? e.target?.some((t) => t.code === request.code) : e.code === request.code));
    if (!reverse && !mapped && group.unmapped) {
      const u = group.unmapped;
      if (u.mode === 'provided') {
        matches.push({ equivalence: 'equal', concept: { system: to, code: request.code }, source });
      } else if (u.mode === 'fixed' && u.code) {
        matches.push({ equivalence: 'inexact', concept: { system: to, code: u.code, ...(u.display ? { display: u.display } : {}) }, source });
      }
    }
    return matches;
  }

  // ---------------------------------------------------------------- unmapped codes

  /** Records a local code that met no mapping (HL7 adapters call this); counted per ConceptMap, system and code. */
  async recordUnmapped(code: UnmappedCode): Promise<void> {
    await this.db.query(
      `INSERT INTO tx_unmapped (concept_map, system_url, code, display, source) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (concept_map, system_url, code) DO UPDATE
         SET occurrences = tx_unmapped.occurrences + 1, last_seen = now(),
             display = COALESCE(EXCLUDED.display, tx_unmapped.display), source = COALESCE(EXCLUDED.source, tx_unmapped.source)`,
      [code.conceptMap ?? '', code.system, code.code, code.display ?? null, code.source ?? null],
    );
  }

  /**
   * The unmapped codes seen, most frequent first: all, or those of one ConceptMap. `sourceSystems` widens a
   * ConceptMap's report to the codes recorded without a map (the HL7 adapters record a miss against the local code
   * system only) whose system is one the map translates from.
   */
  async unmappedCodes(
    conceptMap?: string,
    filter: { sourceSystems?: string[]; system?: string; limit?: number } = {},
  ): Promise<Array<UnmappedCode & { occurrences: number; firstSeen: Date; lastSeen: Date }>> {
    const rows = await this.db.query<{
      concept_map: string;
      system_url: string;
      code: string;
      display: string | null;
      source: string | null;
      occurrences: number;
      first_seen: Date;
      last_seen: Date;
    }>(
      `SELECT concept_map, system_url, code, display, source, occurrences, first_seen, last_seen FROM tx_unmapped
        WHERE ($1::text IS NULL OR concept_map = $1 OR (concept_map = '' AND system_url = ANY($2::text[])))
          AND ($3::text IS NULL OR system_url = $3)
        ORDER BY occurrences DESC, system_url, code LIMIT $4`,
      [conceptMap ?? null, filter.sourceSystems ?? [], filter.system ?? null, Math.min(Math.max(1, filter.limit ?? MAX_UNMAPPED), MAX_UNMAPPED)],
    );
    return rows.map((r) => ({
      conceptMap: r.concept_map || undefined,
      system: r.system_url,
      code: r.code,
      display: r.display ?? undefined,
      source: r.source ?? undefined,
      occurrences: Number(r.occurrences),
      firstSeen: new Date(r.first_seen),
      lastSeen: new Date(r.last_seen),
    }));
  }
}
