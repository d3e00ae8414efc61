/**
 * Code translation, local code → standard code (LOINC for results). Mappings take this interface; the default reads
 * ConceptMap resources from the store (the terminology module's `translate` service can be injected instead).
 */
import { parseSearchRequest } from '@medplum/core';
import type { Coding, ConceptMap } from '@medplum/fhirtypes';
import type { FhirRepository } from '../fhir-server';
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
