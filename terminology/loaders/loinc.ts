/**
 * LOINC loader: streams Loinc.csv of a LOINC release (and optionally a Chinese linguistic variant file) into the
 * terminology tables, as CodeSystem http://loinc.org of the given version.
 */
import { parse } from 'csv-parse';
import type { FhirRepository } from '../../fhir-server';
import type { ConceptPropertyValue } from '../model';
import type { TerminologyService } from '../service';
import { loadCodeSystem, progressStream, type LoadReport, type LoaderOptions } from './common';

export const LOINC_URL = 'http://loinc.org';

/** Loinc.csv columns kept as concept properties (the LOINC parts and classification). */
const PROPERTY_COLUMNS: Record<string, string> = {
  COMPONENT: 'COMPONENT',
  PROPERTY: 'PROPERTY',
  TIME_ASPCT: 'TIME_ASPCT',
  SYSTEM: 'SYSTEM',
  SCALE_TYP: 'SCALE_TYP',
  METHOD_TYP: 'METHOD_TYP',
  CLASS: 'CLASS',
  CLASSTYPE: 'CLASSTYPE',
  ORDER_OBS: 'ORDER_OBS',
  STATUS: 'STATUS',
  EXAMPLE_UCUM_UNITS: 'EXAMPLE_UCUM_UNITS',
};

export interface LoincLoadOptions extends LoaderOptions {
  /** Path to Loinc.csv (LoincTable/Loinc.csv in the release). */
  file: string;
  /** The LOINC version of the release, e.g. 2.77. */
  version: string;
  /** A linguistic variant file (e.g. zhCN…LinguisticVariant.csv): LOINC_NUM and the translated names become zh-CN designations. */
  chineseVariantFile?: string;
}

async function* rows(file: string, label: string, options: LoaderOptions): AsyncGenerator<Record<string, string>> {
  const { stream, done } = progressStream(file, label, options);
  try {
    // bom: release files may start with a byte-order mark; relax_quotes: some free-text columns quote loosely.
    yield* stream.pipe(parse({ columns: true, bom: true, relax_quotes: true, skip_empty_lines: true }));
  } finally {
    done();
  }
}

/** The zh-CN names of a linguistic variant file, by LOINC number (small enough to hold: one string per code). */
async function chineseNames(file: string, options: LoaderOptions): Promise<Map<string, string>> {
  const names = new Map<string, string>();
  for await (const row of rows(file, 'LOINC zh-CN', options)) {
    const name = row.LinguisticVariantDisplayName || row.LONG_COMMON_NAME || row.SHORTNAME;
    if (row.LOINC_NUM && name) {
      names.set(row.LOINC_NUM, name);
    }
  }
  return names;
}

export async function loadLoinc(repository: FhirRepository, service: TerminologyService, options: LoincLoadOptions): Promise<LoadReport> {
  const chinese = options.chineseVariantFile ? await chineseNames(options.chineseVariantFile, options) : new Map<string, string>();
  return loadCodeSystem(
    repository,
    service,
    {
      resourceType: 'CodeSystem',
      id: `loinc-${options.version.replace(/[^A-Za-z0-9.-]/g, '-')}`,
      url: LOINC_URL,
      version: options.version,
      name: 'LOINC',
      title: 'LOINC',
      status: 'active',
      publisher: 'Regenstrief Institute, Inc.',
      copyright:
        'This material contains content from LOINC (http://loinc.org). LOINC is copyright © Regenstrief Institute, Inc. and the Logical Observation Identifiers Names and Codes (LOINC) Committee and is available at no cost under the license at http://loinc.org/license.',
      caseSensitive: false,
      content: 'not-present',
      property: [
        ...Object.keys(PROPERTY_COLUMNS).map((code) => ({ code, type: 'string' as const })),
      ],
    },
    async (writer) => {
      for await (const row of rows(options.file, 'LOINC', options)) {
        const code = row.LOINC_NUM;
        if (!code) {
          continue;
        }
        const properties: ConceptPropertyValue[] = [];
        for (const column of Object.keys(PROPERTY_COLUMNS)) {
          if (row[column]) {
            properties.push({ code: PROPERTY_COLUMNS[column], type: 'string', value: row[column] });
          }
        }
        const display = row.LONG_COMMON_NAME || row.SHORTNAME || row.COMPONENT;
        const designations = [
          ...(row.SHORTNAME ? [{ language: 'en', use: { system: 'http://loinc.org', code: 'SHORTNAME' }, value: row.SHORTNAME }] : []),
          ...(row.DisplayName ? [{ language: 'en', use: { system: 'http://loinc.org', code: 'DisplayName' }, value: row.DisplayName }] : []),
          ...(chinese.has(code) ? [{ language: 'zh-CN', value: chinese.get(code) as string }] : []),
        ];
        await writer.add({
          code,
          display,
          definition: row.DefinitionDescription || undefined,
          inactive: row.STATUS === 'DEPRECATED',
          designations,
          properties,
        });
      }
    },
  );
}
