/**
 * In-memory model of one code system version: its concepts by code, with designations, properties and the is-a
 * hierarchy resolved both ways. Built once per stored resource version (from the CodeSystem's nested concepts,
 * or from the tx_concept rows of a loaded release) and then shared by every operation, so that $lookup and
 * $validate-code are Map look-ups and $expand is a scan over plain objects.
 */
import type { CodeSystem, CodeSystemConcept, Coding } from '@medplum/fhirtypes';

export interface Designation {
  language?: string;
  use?: Coding;
  value: string;
}

/** A concept property with its FHIR type, as the `value[x]` it is written with. */
export interface ConceptPropertyValue {
  code: string;
  /** The `value[x]` suffix: code, Coding, string, integer, boolean, dateTime, decimal. */
  type: string;
  value: string | number | boolean | Coding;
}

export interface Concept {
  code: string;
  display?: string;
  definition?: string;
  designations: Designation[];
  properties: ConceptPropertyValue[];
  parents: string[];
  children: string[];
  inactive: boolean;
  /** notSelectable: a grouping concept that is not meant to be used in data. */
  abstract: boolean;
  /** Lower-cased display and designations, joined, for the text filter of $expand. */
  searchText: string;
}

/** The properties every code system has implicitly (terminology-service.html, "Properties"). */
const STANDARD_PROPERTY_BASE = 'http://hl7.org/fhir/concept-properties#';
/** The standard properties whose meaning the model uses (makeConcept). */
const STANDARD_CODES = new Set(['status', 'inactive', 'notSelectable', 'parent']);
// `deprecated` is not among them: a deprecated concept is still active, its use only discouraged (concept-properties).
const INACTIVE_STATUSES = new Set(['retired', 'inactive']);

export function normaliseText(text: string): string {
  return text.normalize('NFKC').toLowerCase();
}

export class CodeSystemModel {
  readonly concepts = new Map<string, Concept>();
  /** Upper-cased code → code, for code systems that are not case-sensitive. */
  private readonly folded = new Map<string, string>();
  private readonly descendantCache = new Map<string, Set<string>>();

  constructor(
    /** The resource without its concepts (they are in `concepts`). */
    readonly resource: CodeSystem,
  ) {}

  get url(): string {
    return this.resource.url as string;
  }

  get version(): string | undefined {
    return this.resource.version;
  }

  get caseSensitive(): boolean {
    return this.resource.caseSensitive !== false;
  }

  /** The concept with this code (case-insensitively when the code system says it is not case-sensitive). */
  get(code: string): Concept | undefined {
    const exact = this.concepts.get(code);
    if (exact || this.caseSensitive) {
      return exact;
    }
    const folded = this.folded.get(code.toUpperCase());
    return folded === undefined ? undefined : this.concepts.get(folded);
  }

  add(concept: Concept): void {
    this.concepts.set(concept.code, concept);
    this.folded.set(concept.code.toUpperCase(), concept.code);
  }

  /** Fills `children` from `parents` and the search text; call once after every concept was added. */
  link(): void {
    for (const concept of this.concepts.values()) {
      for (const parent of concept.parents) {
        const p = this.concepts.get(parent);
        if (p && !p.children.includes(concept.code)) {
          p.children.push(concept.code);
        }
      }
      concept.searchText = normaliseText([concept.display ?? '', ...concept.designations.map((d) => d.value)].join('\u0001'));
    }
  }

  /** The codes below `code` in the is-a hierarchy (not including it). */
  descendants(code: string): Set<string> {
    const cached = this.descendantCache.get(code);
    if (cached) {
      return cached;
    }
    const result = new Set<string>();
    const queue = [...(this.concepts.get(code)?.children ?? [])];
    while (queue.length > 0) {
      const next = queue.pop() as string;
      if (!result.has(next)) {
        result.add(next);
        queue.push(...(this.concepts.get(next)?.children ?? []));
      }
    }
    if (this.descendantCache.size > 1000) {
      this.descendantCache.clear();
    }
    this.descendantCache.set(code, result);
    return result;
  }

  /** Whether `ancestor` subsumes `code` (is it or is above it). */
  subsumes(ancestor: string, code: string): boolean {
    return ancestor === code || this.descendants(ancestor).has(code);
  }

  /** The declared type of a concept property (from CodeSystem.property), if declared. */
  propertyType(code: string): string | undefined {
    return this.resource.property?.find((p) => p.code === code)?.type;
  }
}

function propertyValue(p: NonNullable<CodeSystemConcept['property']>[number]): ConceptPropertyValue | undefined {
  for (const [key, value] of Object.entries(p)) {
    if (key.startsWith('value') && value !== undefined) {
      return { code: p.code as string, type: key.slice(5, 6).toLowerCase() + key.slice(6), value: value as ConceptPropertyValue['value'] };
    }
  }
  return undefined;
}

function fixType(type: string): string {
  // valueCoding → "coding" after lower-casing the first letter; FHIR calls the type "Coding".
  return type === 'coding' ? 'Coding' : type;
}

/** Builds a concept from its parts; `inactive` and `abstract` also follow the standard properties. */
export function makeConcept(input: {
  code: string;
  display?: string;
  definition?: string;
  designations?: Designation[];
  properties?: ConceptPropertyValue[];
  parents?: string[];
  inactive?: boolean;
  abstract?: boolean;
  /** Property code → the standard property it is (declared with a concept-properties URI under another code). */
  standard?: ReadonlyMap<string, string>;
}): Concept {
  const properties = input.properties ?? [];
  let inactive = input.inactive ?? false;
  let abstract = input.abstract ?? false;
  const parents = [...(input.parents ?? [])];
  for (const p of properties) {
    const code = input.standard?.get(p.code) ?? p.code;
    if (code === 'status' && typeof p.value === 'string' && INACTIVE_STATUSES.has(p.value)) {
      inactive = true;
    } else if (code === 'inactive' && p.value === true) {
      inactive = true;
    } else if (code === 'notSelectable' && p.value === true) {
      abstract = true;
    } else if (code === 'parent' && typeof p.value === 'string' && !parents.includes(p.value)) {
      parents.push(p.value);
    }
  }
  return {
    code: input.code,
    display: input.display,
    definition: input.definition,
    designations: input.designations ?? [],
    properties,
    parents,
    children: [],
    inactive,
    abstract,
    searchText: '',
  };
}

/** The model of a CodeSystem resource whose concepts are in the resource itself. */
/**
 * The properties a code system declares under its own code with a standard meaning (CodeSystem.property.uri
 * `http://hl7.org/fhir/concept-properties#notSelectable` under the code `not-selectable`): code → standard code.
 */
export function standardProperties(codeSystem: CodeSystem): Map<string, string> {
  const map = new Map<string, string>();
  for (const p of codeSystem.property ?? []) {
    const standard = p.uri?.startsWith(STANDARD_PROPERTY_BASE) ? p.uri.slice(STANDARD_PROPERTY_BASE.length) : undefined;
    if (p.code && standard && STANDARD_CODES.has(standard) && standard !== p.code) {
      map.set(p.code, standard);
    }
  }
  return map;
}

export function modelFromResource(codeSystem: CodeSystem): CodeSystemModel {
  const { concept, ...metadata } = codeSystem;
  const model = new CodeSystemModel(metadata as CodeSystem);
  const standard = standardProperties(codeSystem);
  const visit = (concepts: CodeSystemConcept[] | undefined, parent: string | undefined): void => {
    for (const c of concepts ?? []) {
      if (!c.code) {
        continue;
      }
      const existing = model.concepts.get(c.code);
      if (existing) {
        // The same code nested under two parents (polyhierarchy written as nesting).
        if (parent && !existing.parents.includes(parent)) {
          existing.parents.push(parent);
        }
      } else {
        const properties = (c.property ?? []).map(propertyValue).filter((p): p is ConceptPropertyValue => !!p);
        properties.forEach((p) => (p.type = fixType(p.type)));
        model.add(
          makeConcept({
            code: c.code,
            display: c.display,
            definition: c.definition,
            designations: (c.designation ?? []).filter((d) => d.value).map((d) => ({ language: d.language, use: d.use, value: d.value as string })),
            properties,
            parents: parent ? [parent] : [],
            standard,
          })
        );
      }
      visit(c.concept, c.code);
    }
  };
  visit(concept, undefined);
  model.link();
  return model;
}
