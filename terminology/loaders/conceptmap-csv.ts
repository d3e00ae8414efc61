/**
 * Per-hospital ConceptMaps from a CSV that the hospital's staff edit: one row per local code with the LOINC code
 * it means. Columns (English or Chinese headers): local_code/本地编码, local_display/本地名称, loinc_code/LOINC编码,
 * and optionally loinc_display/LOINC名称, equivalence/等价关系 (default equivalent), comment/备注.
 * Rows without a LOINC code are reported as unmapped (and recorded in the unmapped-code report); the ConceptMap
 * is written to the store (update by id), so re-loading the edited CSV replaces it.
 */
import { parse } from 'csv-parse';
import type { ConceptMap, ConceptMapGroupElement } from '@medplum/fhirtypes';
import type { FhirRepository } from '../../fhir-server';
import type { TerminologyService } from '../service';
import { progressStream, type LoaderOptions } from './common';
import { LOINC_URL } from './loinc';

export const REGIONAL_BASE = 'http://huimin.health/fhir';
const EQUIVALENCES = new Set(['relatedto', 'equivalent', 'equal', 'wider', 'subsumes', 'narrower', 'specializes', 'inexact', 'unmatched', 'disjoint']);
const LOINC_CODE = /^\d{1,7}-\d$/;

export interface ConceptMapCsvOptions extends LoaderOptions {
  file: string;
  /** The hospital's id in the platform (letters, digits, hyphens), e.g. ahslyy. */
  hospital: string;
  /** The hospital's local code system; default http://huimin.health/fhir/hospital/{hospital}/CodeSystem/lab. */
  sourceSystem?: string;
  version?: string;
}

export interface ConceptMapCsvReport {
  conceptMap: string;
  mapped: number;
  /** Local codes with no LOINC code in the CSV. */
  unmapped: Array<{ code: string; display?: string }>;
  /** Rows refused, with the reason (bad LOINC code, unknown equivalence, missing local code). */
  rejected: Array<{ line: number; reason: string }>;
  /** LOINC codes that the loaded LOINC release does not know (only checked when a full release is loaded). */
  unknownLoinc: string[];
}

const cell = (row: Record<string, string>, names: string[]): string | undefined => {
  for (const name of names) {
    const value = row[name]?.trim();
    if (value) {
      return value;
    }
  }
  return undefined;
};

export function hospitalLabSystem(hospital: string): string {
  return `${REGIONAL_BASE}/hospital/${hospital}/CodeSystem/lab`;
}

export async function loadConceptMapCsv(repository: FhirRepository, service: TerminologyService, options: ConceptMapCsvOptions): Promise<ConceptMapCsvReport> {
  if (!/^[A-Za-z0-9-]{1,40}$/.test(options.hospital)) {
    throw new Error(`The hospital id must be letters, digits and hyphens (at most 40), got "${options.hospital}"`);
  }
  const source = options.sourceSystem ?? hospitalLabSystem(options.hospital);
  const id = `${options.hospital}-lab-loinc`;
  const url = `${REGIONAL_BASE}/ConceptMap/${id}`;
  const elements = new Map<string, ConceptMapGroupElement>();
  const report: ConceptMapCsvReport = { conceptMap: url, mapped: 0, unmapped: [], rejected: [], unknownLoinc: [] };
  const { stream, done } = progressStream(options.file, `ConceptMap ${options.hospital}`, options);
  let line = 1;
  try {
    for await (const row of stream.pipe(parse({ columns: true, bom: true, skip_empty_lines: true, trim: true })) as AsyncIterable<Record<string, string>>) {
      line++;
      const code = cell(row, ['local_code', '本地编码']);
      const display = cell(row, ['local_display', '本地名称']);
      const loinc = cell(row, ['loinc_code', 'LOINC编码', 'loinc']);
      const equivalence = cell(row, ['equivalence', '等价关系']) ?? 'equivalent';
      if (!code) {
        report.rejected.push({ line, reason: 'no local code' });
        continue;
      }
      if (!loinc) {
        report.unmapped.push({ code, display });
        await service.recordUnmapped({ conceptMap: url, system: source, code, display, source: 'concept map CSV' });
        continue;
      }
      if (!LOINC_CODE.test(loinc)) {
        report.rejected.push({ line, reason: `"${loinc}" is not a LOINC code (digits, hyphen, check digit)` });
        continue;
      }
      if (!EQUIVALENCES.has(equivalence)) {
        report.rejected.push({ line, reason: `unknown equivalence "${equivalence}"` });
        continue;
      }
      const element = elements.get(code) ?? { code, ...(display ? { display } : {}), target: [] };
      const comment = cell(row, ['comment', '备注']);
      const targetDisplay = cell(row, ['loinc_display', 'LOINC名称']);
      element.target?.push({ code: loinc, ...(targetDisplay ? { display: targetDisplay } : {}), equivalence: equivalence as 'equivalent', ...(comment ? { comment } : {}) });
      elements.set(code, element);
      report.mapped++;
    }
  } finally {
    done();
  }
  // Check targets against a full LOINC release when one is loaded (the bundled subset knows only common tests).
  const loincModel = await service.codeSystem(LOINC_URL);
  if (loincModel && loincModel.resource.content === 'not-present' && loincModel.concepts.size > 0) {
    const unknown = new Set<string>();
    for (const element of elements.values()) {
      for (const target of element.target ?? []) {
        if (target.code && !loincModel.get(target.code)) {
          unknown.add(target.code);
        }
      }
    }
    report.unknownLoinc = [...unknown];
  }
  const conceptMap: ConceptMap = {
    resourceType: 'ConceptMap',
    id,
    url,
    version: options.version ?? new Date().toISOString().slice(0, 10),
    name: `${options.hospital.replace(/-/g, '_')}_lab_to_LOINC`,
    title: `${options.hospital} 检验项目本地编码 → LOINC`,
    status: 'active',
    targetUri: 'http://loinc.org/vs',
    group: [{ source, target: LOINC_URL, element: [...elements.values()] }],
  };
  if (elements.size === 0) {
    delete conceptMap.group;
  }
  await repository.write((session) => session.update('ConceptMap', id, conceptMap));
  service.invalidate();
  return report;
}
