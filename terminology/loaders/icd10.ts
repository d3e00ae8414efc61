/**
 * ICD-10 loader: a ClaML release (WHO's XML format, streamed with sax) or a CSV table (the national clinical
 * edition is distributed as a spreadsheet: export it with columns code, display and optionally parent and
 * display_en; the Chinese headers 编码/疾病编码, 名称/疾病名称 and 上级编码 are understood too).
 */
import { parse } from 'csv-parse';
import sax from 'sax';
import type { FhirRepository } from '../../fhir-server';
import type { TerminologyService } from '../service';
import { loadCodeSystem, progressStream, type LoadedConcept, type LoadReport, type LoaderOptions } from './common';

export const ICD10_WHO_URL = 'http://hl7.org/fhir/sid/icd-10';
export const ICD10_CN_URL = 'http://huimin.health/fhir/CodeSystem/icd-10-cn';

export interface Icd10LoadOptions extends LoaderOptions {
  file: string;
  /** Release version, e.g. 2019 (WHO) or 2.0 (国家临床版 2.0). */
  version: string;
  /** Defaults: WHO ICD-10 for ClaML, the national clinical edition for CSV. */
  system?: string;
  title?: string;
}

/** Streams the Classes of a ClaML file; chapters and blocks become not-selectable grouping concepts. */
async function claml(file: string, options: LoaderOptions, add: (c: LoadedConcept) => Promise<void>): Promise<void> {
  const parser = sax.parser(true, { trim: false, normalize: true });
  const ready: LoadedConcept[] = [];
  let current: (LoadedConcept & { kind?: string }) | undefined;
  let rubricKind: string | undefined;
  let label: { lang?: string; text: string } | undefined;
  parser.onopentag = (tag) => {
    const attr = (name: string): string | undefined => {
      const value = tag.attributes[name];
      return typeof value === 'string' ? value : value?.value;
    };
    if (tag.name === 'Class') {
      current = { code: attr('code') as string, kind: attr('kind'), parents: [], designations: [] };
    } else if (current && tag.name === 'SuperClass') {
      current.parents?.push(attr('code') as string);
    } else if (current && tag.name === 'Rubric') {
      rubricKind = attr('kind');
    } else if (current && tag.name === 'Label') {
      label = { lang: attr('xml:lang'), text: '' };
    }
  };
  parser.ontext = (text) => {
    if (label) {
      label.text += text;
    }
  };
  parser.onclosetag = (name) => {
    if (name === 'Label' && current && label) {
      const value = label.text.replace(/\s+/g, ' ').trim();
      if (rubricKind === 'preferred' && value) {
        current.display ??= value;
        current.designations?.push({ language: label.lang, value });
      } else if (rubricKind === 'preferredLong' && value) {
        current.designations?.push({ language: label.lang, use: { system: 'http://hl7.org/fhir/claml-rubric-kind', code: 'preferredLong' }, value });
      }
      label = undefined;
    } else if (name === 'Rubric') {
      rubricKind = undefined;
    } else if (name === 'Class' && current) {
      const { kind, ...concept } = current;
      ready.push({
        ...concept,
        abstract: kind === 'chapter' || kind === 'block',
        properties: kind ? [{ code: 'kind', type: 'code', value: kind }] : [],
      });
      current = undefined;
    }
  };
  const { stream, done } = progressStream(file, 'ICD-10', options);
  try {
    for await (const chunk of stream) {
      parser.write(chunk.toString());
      for (const concept of ready.splice(0)) {
        await add(concept);
      }
    }
    parser.close();
    for (const concept of ready.splice(0)) {
      await add(concept);
    }
  } finally {
    done();
  }
}

const column = (row: Record<string, string>, names: string[]): string | undefined => {
  for (const name of names) {
    if (row[name]?.trim()) {
      return row[name].trim();
    }
  }
  return undefined;
};

/** Streams a CSV table; without a parent column, a subcategory's parent is its category (E11.900 → E11). */
async function csv(file: string, options: LoaderOptions, add: (c: LoadedConcept) => Promise<void>): Promise<void> {
  const { stream, done } = progressStream(file, 'ICD-10', options);
  try {
    for await (const row of stream.pipe(parse({ columns: true, bom: true, skip_empty_lines: true, trim: true })) as AsyncIterable<Record<string, string>>) {
      const code = column(row, ['code', '编码', '疾病编码', '主要编码']);
      const display = column(row, ['display', '名称', '疾病名称']);
      if (!code) {
        continue;
      }
      const english = column(row, ['display_en', '英文名称']);
      const parent = column(row, ['parent', '上级编码']) ?? (code.includes('.') ? code.split('.')[0] : undefined);
      await add({
        code,
        display,
        parents: parent && parent !== code ? [parent] : [],
        designations: [...(display ? [{ language: 'zh-CN', value: display }] : []), ...(english ? [{ language: 'en', value: english }] : [])],
      });
    }
  } finally {
    done();
  }
}

export async function loadIcd10(repository: FhirRepository, service: TerminologyService, options: Icd10LoadOptions): Promise<LoadReport> {
  const isClaml = /\.xml$/i.test(options.file);
  const system = options.system ?? (isClaml ? ICD10_WHO_URL : ICD10_CN_URL);
  const slug = system === ICD10_WHO_URL ? 'icd-10' : system === ICD10_CN_URL ? 'icd-10-cn' : 'icd-10-custom';
  return loadCodeSystem(
    repository,
    service,
    {
      resourceType: 'CodeSystem',
      id: `${slug}-${options.version.replace(/[^A-Za-z0-9.-]/g, '-')}`,
      url: system,
      version: options.version,
      name: 'ICD10',
      title: options.title ?? (isClaml ? 'ICD-10' : '疾病分类与代码 国家临床版'),
      status: 'active',
      hierarchyMeaning: 'is-a',
      caseSensitive: true,
      content: 'not-present',
      copyright: 'ICD-10 is © World Health Organization. Loaded from the deployment\'s licensed release.',
      property: [{ code: 'kind', type: 'code', description: 'ClaML class kind: chapter | block | category' }],
    },
    async (writer) => (isClaml ? claml : csv)(options.file, options, (c) => writer.add(c)),
  );
}
