/**
 * Code translation, local code → standard code (LOINC for results). Mappings take this interface; the default reads
 * ConceptMap resources from the store (the terminology module's `translate` service can be injected instead).
 */
import { parseSearchRequest } from '@medplum/core';
import type { Coding, ConceptMap } from '@medplum/fhirtypes';
import type { FhirRepository } from '../fhir-server';
import { isLocalSystem } from './mapping/datatypes';
import type { Facility } from './facilities';

export interface CodeTranslator {
  /** Standard codings for a local code; empty when there is no mapping. */
  translate(facility: Facility, system: string, code: string): Promise<Coding[]>;
}

const USABLE = new Set(['equivalent', 'equal', 'wider', 'subsumes', 'relatedto', 'inexact', 'specializes', 'narrower']);

/** Reads ConceptMaps whose group source is the local code system (ConceptMap?source-system=…&source-code=…). */
export class ConceptMapTranslator implements CodeTranslator {
  private readonly cache = new Map<string, { codings: Coding[]; at: number }>();

  constructor(
    private readonly repo: FhirRepository,
    private readonly ttlMs = 60_000,
  ) {}

  async translate(_facility: Facility, system: string, code: string): Promise<Coding[]> {
    const key = `${system}|${code}`;
    const cached = this.cache.get(key);
    if (cached && Date.now() - cached.at < this.ttlMs) {
      return cached.codings;
    }
    const request = parseSearchRequest('ConceptMap', { 'source-system': system, 'source-code': code, status: 'active' });
    const page = await this.repo.search(request, { count: 10, offset: 0 });
    const codings: Coding[] = [];
    for (const row of page.rows) {
      const map = JSON.parse(row.content) as ConceptMap;
      for (const group of map.group ?? []) {
        if (group.source !== system) continue;
        for (const element of group.element ?? []) {
          if (element.code !== code) continue;
          for (const target of element.target ?? []) {
            if (target.code && USABLE.has(target.equivalence ?? 'equivalent') && !codings.some((c) => c.system === group.target && c.code === target.code)) {
              codings.push({ system: group.target, code: target.code, display: target.display });
            }
          }
        }
      }
    }
    this.cache.set(key, { codings, at: Date.now() });
    return codings;
  }
}

/** What the terminology module offers (terminology/index.ts's TerminologyService), narrowed to what mapping needs. */
export interface TerminologyTranslation {
  translate(request: { system: string; code: string; maxAgeMs?: number }): Promise<{ matches: { equivalence: string; concept: Coding }[] }>;
  recordUnmapped(code: { system: string; code: string; source?: string }): Promise<void>;
}

/**
 * Local codes through the terminology service: every ConceptMap it knows, cached there. A hospital's ConceptMap
 * loaded from its staff's CSV (`npm run terminology -- conceptmap`) names the local codes under the hospital's lab
 * code system (terminology's hospitalLabSystem, keyed by the facility's MSH-4 identifier), so a local code is looked
 * up under the system the message gave it and then under that one. A code without a mapping is recorded in the
 * unmapped-code report for the hospital's staff.
 */
export class TerminologyTranslator implements CodeTranslator {
  constructor(
    private readonly terminology: TerminologyTranslation,
    /** How stale a cached ConceptMap may be on this hot path. */
    private readonly maxAgeMs: number,
    /** The lab code system of a hospital's CSV ConceptMap, by facility key. */
    private readonly hospitalLabSystem: (facilityKey: string) => string,
  ) {}

  async translate(facility: Facility, system: string, code: string): Promise<Coding[]> {
    const systems = isLocalSystem(system, facility) ? [system, this.hospitalLabSystem(facility.key)] : [system];
    for (const candidate of systems) {
      const codings = await this.lookup(candidate, code);
      if (codings.length > 0) {
        return codings;
      }
    }
    await this.terminology.recordUnmapped({ system, code, source: `Organization/${facility.id}` });
    return [];
  }

  private async lookup(system: string, code: string): Promise<Coding[]> {
    const { matches } = await this.terminology.translate({ system, code, maxAgeMs: this.maxAgeMs });
    const codings: Coding[] = [];
    for (const m of matches) {
      if (USABLE.has(m.equivalence) && !codings.some((c) => c.system === m.concept.system && c.code === m.concept.code)) {
        codings.push({ system: m.concept.system, code: m.concept.code, display: m.concept.display });
      }
    }
    return codings;
  }
}
