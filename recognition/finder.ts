/**
 * The question both the order check and the ordering screen ask: which of this resident's results, at any hospital,
 * stand in for a new test of these items? A result is recognisable when it is final (or amended/corrected), its
 * code is the item's (LOINC, or a local code the ConceptMaps make equivalent), it was taken within the item's
 * validity window, it was produced under an HR grant in force when it was issued, its specimen type (when both
 * the order and the result name one) is the order's, and the patient's consent lets it be shared with the asker.
 */
import type { CodeableConcept, Coding, Observation, Reference, Specimen } from '@medplum/fhirtypes';
import { ownerOf, OWNER_TAG_SYSTEM, type ConsentDecisions, type FhirRepository } from '../fhir-server';
import { codings, LOINC, localRef, readResource, searchAll, sourceOrganization } from './fhir';
import type { ItemTable, RecognitionItem } from './items';
import type { GrantRegistry } from './qualification';

/** What the terminology service offers for $translate (TerminologyService fits it). */
export interface CodeTranslation {
  translate(request: { system: string; code: string; targetSystem?: string; reverse?: boolean; maxAgeMs?: number }): Promise<{ matches: Array<{ equivalence: string; concept: Coding }> }>;
}

/** Only these count as "the same test": a wider or narrower code is another test. */
const EQUIVALENT = new Set(['equivalent', 'equal']);
const FINAL = new Set(['final', 'amended', 'corrected']);
/** Translations may be this old on the ordering screen's path. */
const TRANSLATION_MAX_AGE_MS = 60_000;
const DAY_MS = 24 * 3600 * 1000;
/** At most this many results (of the items, within the widest window) are examined per question. */
const MAX_RESULTS = 1000;

export interface Recognisable {
  observation: Observation;
  /** The item (LOINC) it is recognised as, and its window. */
  item: RecognitionItem;
  mark: string;
  grant: string;
  producer: string;
  /** The hospital it came from (owner or HL7 facility). */
  institution?: string;
  takenAt: string;
}

export interface Question {
  /** `Patient/…` of every record of the resident (see patients.ts). */
  patients: string[];
  /** The order's code (any codings: LOINC or local). */
  code: CodeableConcept;
  /** Specimen the order names, if any: results of another specimen type are not the same test. */
  specimen?: Reference[];
  /** The organisation asking: the patient's consent must let the results be shared with it. */
  asker?: string;
  now: Date;
}

export class RecognitionFinder {
  constructor(
    /** The platform's repository: results of every hospital (consent is applied here, per record). */
    readonly repository: FhirRepository,
    private readonly items: ItemTable,
    private readonly grants: GrantRegistry,
    private readonly terminology: CodeTranslation | undefined,
    private readonly consent: ConsentDecisions | undefined,
  ) {}

  /** The recognised items (LOINC codings with a window in the bureau's table) an order's code stands for. */
  async itemsOf(code: CodeableConcept | undefined): Promise<RecognitionItem[]> {
    const found = new Map<string, RecognitionItem>();
    for (const coding of codings(code)) {
      if (!coding.system || !coding.code) continue;
      const direct = await this.items.get(coding.system, coding.code);
      if (direct) {
        found.set(`${direct.system}|${direct.code}`, direct);
        continue;
      }
      if (coding.system === LOINC || !this.terminology) continue;
      const { matches } = await this.terminology.translate({ system: coding.system, code: coding.code, targetSystem: LOINC, maxAgeMs: TRANSLATION_MAX_AGE_MS });
      for (const m of matches) {
        const item = EQUIVALENT.has(m.equivalence) && m.concept.system && m.concept.code ? await this.items.get(m.concept.system, m.concept.code) : undefined;
        if (item) found.set(`${item.system}|${item.code}`, item);
      }
    }
    return [...found.values()];
  }

  /** The item's codes to search results by: the LOINC code and the local codes the ConceptMaps make equivalent to it. */
  private async searchCodes(item: RecognitionItem): Promise<string[]> {
    const codes = [`${item.system}|${item.code}`];
    if (this.terminology) {
      const { matches } = await this.terminology.translate({ system: item.system, code: item.code, reverse: true, maxAgeMs: TRANSLATION_MAX_AGE_MS });
      for (const m of matches) {
        if (EQUIVALENT.has(m.equivalence) && m.concept.system && m.concept.code) codes.push(`${m.concept.system}|${m.concept.code}`);
      }
    }
    return codes;
  }

  async find(question: Question): Promise<Recognisable[]> {
    const items = await this.itemsOf(question.code);
    if (items.length === 0 || question.patients.length === 0) {
      return [];
    }
    const patients = await this.shareable(question.patients, question.asker);
    if (patients.length === 0) {
      return [];
    }
    const byCode = new Map<string, RecognitionItem>();
    for (const item of items) {
      for (const code of await this.searchCodes(item)) byCode.set(code, item);
    }
    const widest = Math.max(...items.map((i) => i.windowDays));
    const since = new Date(question.now.getTime() - widest * DAY_MS).toISOString();
    // Subjects, codes and the window narrow the search to a handful of rows; status and order are checked here,
    // which is cheaper than two more index conditions and a sort on the store's side (see docs/performance.md).
    const query = new URLSearchParams({ subject: patients.join(','), code: [...byCode.keys()].join(','), date: `ge${since}` });
    const results = (await searchAll<Observation>(this.repository, 'Observation', query.toString(), MAX_RESULTS))
      .filter((o) => FINAL.has(o.status))
      .map((o) => ({ o, at: Date.parse(o.effectiveDateTime ?? o.effectivePeriod?.start ?? o.issued ?? '') }))
      .sort((a, b) => b.at - a.at)
      .map(({ o }) => o);
    const orderSpecimens = question.specimen?.length ? await this.specimenTypes(question.specimen) : undefined;
    const found: Recognisable[] = [];
    for (const observation of results) {
      const item = codings(observation.code).map((c) => byCode.get(`${c.system}|${c.code}`)).find((i) => i !== undefined);
      const takenAt = observation.effectiveDateTime ?? observation.effectivePeriod?.start ?? observation.issued;
      if (!item || !takenAt || Date.parse(takenAt) < question.now.getTime() - item.windowDays * DAY_MS) {
        continue;
      }
      // Labelled results (sensitive data under a patient's consent rules) are not offered for recognition.
      if ((observation.meta?.security ?? []).some((s) => s.system !== OWNER_TAG_SYSTEM)) {
        continue;
      }
      const mark = await this.grants.markOf(observation, `${item.system}|${item.code}`);
      if (!mark) {
        continue;
      }
      if (orderSpecimens?.size && observation.specimen && differentSpecimen(orderSpecimens, await this.specimenTypes([observation.specimen]))) {
        continue;
      }
      found.push({ observation, item, ...mark, institution: sourceOrganization(observation, ownerOf), takenAt });
    }
    return found;
  }

  /** The records whose sharing with the asker no Consent of the patient denies. */
  private async shareable(patients: string[], asker: string | undefined): Promise<string[]> {
    if (!asker || !this.consent) {
      return patients;
    }
    const allowed: string[] = [];
    for (const patient of patients) {
      if (!(await this.consent.wholeRecordDenial(patient, asker))) allowed.push(patient);
    }
    return allowed;
  }

  private async specimenTypes(refs: Reference[]): Promise<Set<string>> {
    const types = new Set<string>();
    for (const ref of refs) {
      const local = localRef(ref);
      const specimen = local?.resourceType === 'Specimen' ? await readResource<Specimen>(this.repository, 'Specimen', local.id) : undefined;
      codings(specimen?.type).forEach((c) => types.add(`${c.system}|${c.code}`));
    }
    return types;
  }
}

/**
 * Whether two specimen types say different things. Only codings of a system both sides use are compared: a
 * hospital's local specimen codes (HL7 SPM-4 sent with the LIS's own table) cannot be compared with another
 * hospital's or with SNOMED, and then the item's LOINC code, which names the specimen, decides alone.
 */
export function differentSpecimen(order: Set<string>, result: Set<string>): boolean {
  const system = (t: string): string => t.slice(0, t.lastIndexOf('|'));
  const shared = new Set([...order].map(system).filter((s) => [...result].some((t) => system(t) === s)));
  if (shared.size === 0) return false;
  return ![...result].some((t) => shared.has(system(t)) && order.has(t));
}
