/**
 * HL7 CDA R2 documents as China's shared documents use them (WS/T 500 电子病历共享文档规范, WS/T 483 健康档案共享文档):
 * the header read into the metadata a DocumentReference needs, and a human-readable HTML view. Both stream the
 * document through sax: the header is read from the first chunks only; the view is written as the document is read.
 */
import type sax from 'sax';
import { documentTypeDisplay } from './document-types';
import { parseXmlStream, StopParsing, XmlFeeder, XmlFormatError } from './xml-stream';

export const CDA_CONTENT_TYPE = 'application/hl7-cda+xml';
const HL7_V3 = 'urn:hl7-org:v3';

export interface CdaId {
  /** The OID of the assigning authority. */
  root: string;
  extension?: string;
}

export interface CdaHeader {
  realmCode?: string;
  templateIds: string[];
  /** ClinicalDocument/id: the document's unique id (DocumentReference.masterIdentifier). */
  id?: CdaId;
  code?: { code: string; codeSystem?: string; displayName?: string };
  title?: string;
  effectiveTime?: string;
  confidentialityCode?: string;
  /** recordTarget/patientRole/id and …/patient/id: health record number, ID card number, MRN, … */
  patientIds: CdaId[];
  patientName?: string;
  patientGender?: string;
  patientBirthTime?: string;
  authorTime?: string;
  authorIds: CdaId[];
  authorName?: string;
  authorOrganization?: { ids: CdaId[]; name?: string };
  custodian?: { ids: CdaId[]; name?: string };
  /** relatedDocument: `RPLC` (this document replaces the parent), `APND`, `XFRM`. */
  relatedDocuments: Array<{ typeCode: string; ids: CdaId[] }>;
}

export class CdaFormatError extends Error {}

const attr = (node: sax.QualifiedTag, name: string): string | undefined => {
  const value = node.attributes[name] as sax.QualifiedAttribute | undefined;
  return value?.value;
};

const idOf = (node: sax.QualifiedTag): CdaId | undefined => {
  const root = attr(node, 'root');
  return root ? { root, ...(attr(node, 'extension') ? { extension: attr(node, 'extension') } : {}) } : undefined;
};

/**
 * Reads the header (everything before the body's `component`), then stops reading, or with `wholeDocument` reads
 * on to the end so that a document that is not well-formed further down is refused when it is filed, not found
 * out when someone opens it.
 */
export async function readCdaHeader(chunks: AsyncIterable<Uint8Array>, options: { wholeDocument?: boolean } = {}): Promise<CdaHeader> {
  const header: CdaHeader = { templateIds: [], patientIds: [], authorIds: [], relatedDocuments: [] };
  let text = '';
  let sawRoot = false;
  try {
    await parseXmlStream(chunks, {
      open(node, path) {
        text = '';
        const p = path.join('/');
        if (path.length === 1) {
          if (node.local !== 'ClinicalDocument' || node.uri !== HL7_V3) {
            throw new CdaFormatError(`The document's root element is {${node.uri}}${node.local}, not ClinicalDocument in the HL7 v3 namespace (${HL7_V3})`);
          }
          sawRoot = true;
          return;
        }
        if (path.length === 2 && node.local === 'component' && !options.wholeDocument) {
          // The body starts: the header is complete.
          throw new StopParsing();
        }
        if (path.length > 2 && path[1] === 'component') {
          return;
        }
        const id = node.local === 'id' ? idOf(node) : undefined;
        switch (p) {
          case 'ClinicalDocument/realmCode':
            header.realmCode = attr(node, 'code');
            break;
          case 'ClinicalDocument/templateId':
            if (attr(node, 'root')) header.templateIds.push(attr(node, 'root') as string);
            break;
          case 'ClinicalDocument/id':
            header.id = id;
            break;
          case 'ClinicalDocument/code': {
            const code = attr(node, 'code');
            if (code) header.code = { code, codeSystem: attr(node, 'codeSystem'), displayName: attr(node, 'displayName') };
            break;
          }
          case 'ClinicalDocument/effectiveTime':
            header.effectiveTime = attr(node, 'value');
            break;
          case 'ClinicalDocument/confidentialityCode':
            header.confidentialityCode = attr(node, 'code');
            break;
          case 'ClinicalDocument/recordTarget/patientRole/id':
          case 'ClinicalDocument/recordTarget/patientRole/patient/id':
            if (id?.extension) header.patientIds.push(id);
            break;
          case 'ClinicalDocument/recordTarget/patientRole/patient/administrativeGenderCode':
            header.patientGender = attr(node, 'displayName') ?? attr(node, 'code');
            break;
          case 'ClinicalDocument/recordTarget/patientRole/patient/birthTime':
            header.patientBirthTime = attr(node, 'value');
            break;
          case 'ClinicalDocument/author/time':
            header.authorTime ??= attr(node, 'value');
            break;
          case 'ClinicalDocument/author/assignedAuthor/id':
            if (id) header.authorIds.push(id);
            break;
          case 'ClinicalDocument/author/assignedAuthor/representedOrganization':
            header.authorOrganization ??= { ids: [] };
            break;
          case 'ClinicalDocument/author/assignedAuthor/representedOrganization/id':
            if (id) header.authorOrganization?.ids.push(id);
            break;
          case 'ClinicalDocument/custodian/assignedCustodian/representedCustodianOrganization':
            header.custodian = { ids: [] };
            break;
          case 'ClinicalDocument/custodian/assignedCustodian/representedCustodianOrganization/id':
            if (id) header.custodian?.ids.push(id);
            break;
          case 'ClinicalDocument/relatedDocument':
            header.relatedDocuments.push({ typeCode: attr(node, 'typeCode') ?? '', ids: [] });
            break;
          case 'ClinicalDocument/relatedDocument/parentDocument/id':
            if (id) header.relatedDocuments[header.relatedDocuments.length - 1]?.ids.push(id);
            break;
        }
      },
      text(value, path) {
        if (path[1] !== 'component') text += value;
      },
      close(_local, path) {
        if (path.length > 2 && path[1] === 'component') {
          return;
        }
        const value = text.trim();
        text = '';
        if (!value) return;
        switch (path.join('/')) {
          case 'ClinicalDocument/title':
            header.title = value;
            break;
          case 'ClinicalDocument/recordTarget/patientRole/patient/name':
            header.patientName = value;
            break;
          case 'ClinicalDocument/author/assignedAuthor/assignedPerson/name':
            header.authorName ??= value;
            break;
          case 'ClinicalDocument/author/assignedAuthor/representedOrganization/name':
            if (header.authorOrganization) header.authorOrganization.name ??= value;
            break;
          case 'ClinicalDocument/custodian/assignedCustodian/representedCustodianOrganization/name':
            if (header.custodian) header.custodian.name = value;
            break;
        }
      },
    });
  } catch (err) {
    if (err instanceof XmlFormatError) {
      throw new CdaFormatError(`The document is not acceptable XML: ${err.message}`);
    }
    throw err;
  }
  if (!sawRoot) {
    throw new CdaFormatError('The document is empty: no ClinicalDocument element');
  }
  return header;
}

/** CDA TS (`yyyyMMddHHmmss[.f][+zzzz]`, any prefix of it) as a FHIR dateTime; China's time zone when none is given. */
export function cdaTimeToFhir(ts: string | undefined): string | undefined {
  const m = ts ? /^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d+)?([+-]\d{4})?$/.exec(ts) : null;
  if (!m) {
    return undefined;
  }
  const [, y, mo, d, h, mi, s, zone] = m;
  if (!mo) return y;
  if (!d) return `${y}-${mo}`;
  if (!h) return `${y}-${mo}-${d}`;
  const z = zone ? `${zone.slice(0, 3)}:${zone.slice(3)}` : '+08:00';
  return `${y}-${mo}-${d}T${h}:${mi ?? '00'}:${s ?? '00'}${z}`;
}

const escapeHtml = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);

/** CDA narrative block elements and the HTML each becomes (anything else is rendered as its text only). */
const NARRATIVE: Record<string, string> = {
  paragraph: 'p',
  list: 'ul',
  item: 'li',
  table: 'table',
  thead: 'thead',
  tbody: 'tbody',
  tr: 'tr',
  td: 'td',
  th: 'th',
  caption: 'caption',
  br: 'br',
  sub: 'sub',
  sup: 'sup',
};

/**
 * A readable HTML page of the document, produced while the document streams in: the header (title, patient,
 * author, custodian, date), then each section's title and narrative (`text`), and for sections whose content is
 * only coded (`entry`, as many WS/T 500 sections are) each observation's name and value. The page has no scripts,
 * styles or links; every text is escaped.
 */
export async function* renderCdaHtml(chunks: AsyncIterable<Uint8Array>): AsyncIterable<string> {
  const out: string[] = [];
  const header: Partial<{ title: string; patient: string; gender: string; birth: string; author: string; organization: string; custodian: string; date: string; code: string }> = {};
  let text = '';
  let headerWritten = false;
  /** Depth of the `text` element of the section being rendered, when inside one. */
  let narrativeDepth = -1;
  let observation: { label?: string; value?: string } | undefined;

  const writeHeader = (): void => {
    if (headerWritten) return;
    headerWritten = true;
    const rows: Array<[string, string | undefined]> = [
      ['患者 Patient', [header.patient, header.gender, header.birth && `出生 ${header.birth}`].filter(Boolean).join(' · ')],
      ['文档类型 Type', header.code],
      ['文档日期 Date', header.date],
      ['作者 Author', [header.author, header.organization].filter(Boolean).join(' · ')],
      ['保管机构 Custodian', header.custodian],
    ];
    out.push(`<h1>${escapeHtml(header.title ?? 'Clinical document')}</h1>\n<table>\n`);
    for (const [label, value] of rows) {
      if (value) out.push(`<tr><th>${escapeHtml(label)}</th><td>${escapeHtml(value)}</td></tr>\n`);
    }
    out.push('</table>\n');
  };

  out.push('<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="utf-8"><title>Clinical document</title></head><body>\n');
  const feeder = new XmlFeeder({
    open(node, path) {
      text = '';
      const p = path.join('/');
      if (path.length === 1 && (node.local !== 'ClinicalDocument' || node.uri !== HL7_V3)) {
        throw new CdaFormatError(`The document's root element is {${node.uri}}${node.local}, not ClinicalDocument in the HL7 v3 namespace`);
      }
      if (path.length === 2 && node.local === 'component') {
        writeHeader();
      }
      if (p === 'ClinicalDocument/code') {
        const code = attr(node, 'code');
        header.code = [code, attr(node, 'displayName') ?? (code ? documentTypeDisplay(code) : undefined)].filter(Boolean).join(' ');
      }
      if (p === 'ClinicalDocument/effectiveTime') header.date = cdaTimeToFhir(attr(node, 'value'));
      if (p === 'ClinicalDocument/recordTarget/patientRole/patient/administrativeGenderCode') header.gender = attr(node, 'displayName') ?? attr(node, 'code');
      if (p === 'ClinicalDocument/recordTarget/patientRole/patient/birthTime') header.birth = cdaTimeToFhir(attr(node, 'value'));
      if (narrativeDepth >= 0) {
        const tag = NARRATIVE[node.local];
        if (tag) out.push(tag === 'br' ? '<br>' : `<${tag}>`);
        return;
      }
      if (node.local === 'section') out.push('<section>\n');
      if (node.local === 'text' && path[path.length - 2] === 'section') {
        narrativeDepth = path.length;
        out.push('<div>');
      }
      if (node.local === 'observation') observation = {};
      if (observation && node.local === 'code' && path[path.length - 2] === 'observation') observation.label = attr(node, 'displayName') ?? attr(node, 'code');
      if (observation && node.local === 'value' && path[path.length - 2] === 'observation') {
        const value = attr(node, 'value');
        observation.value = value !== undefined ? [value, attr(node, 'unit')].filter(Boolean).join(' ') : attr(node, 'displayName') ?? attr(node, 'code');
      }
    },
    text(value) {
      if (narrativeDepth >= 0) {
        out.push(escapeHtml(value));
      } else {
        text += value;
      }
    },
    close(local, path) {
      const value = text.trim();
      text = '';
      const p = path.join('/');
      if (narrativeDepth >= 0) {
        if (path.length === narrativeDepth) {
          narrativeDepth = -1;
          out.push('</div>\n');
        } else if (NARRATIVE[local] && NARRATIVE[local] !== 'br') {
          out.push(`</${NARRATIVE[local]}>`);
        }
        return;
      }
      if (p === 'ClinicalDocument/title') header.title = value;
      if (p === 'ClinicalDocument/recordTarget/patientRole/patient/name') header.patient = value;
      if (p === 'ClinicalDocument/author/assignedAuthor/assignedPerson/name') header.author ??= value;
      if (p === 'ClinicalDocument/author/assignedAuthor/representedOrganization/name') header.organization ??= value;
      if (p === 'ClinicalDocument/custodian/assignedCustodian/representedCustodianOrganization/name') header.custodian = value;
      if (local === 'title' && path[path.length - 2] === 'section' && value) out.push(`<h2>${escapeHtml(value)}</h2>\n`);
      if (local === 'value' && observation && !observation.value && value) observation.value = value;
      if (local === 'observation' && observation) {
        if (observation.label || observation.value) {
          out.push(`<p>${escapeHtml(observation.label ?? '')}${observation.label && observation.value ? '：' : ''}${escapeHtml(observation.value ?? '')}</p>\n`);
        }
        observation = undefined;
      }
      if (local === 'section') out.push('</section>\n');
    },
  });
  // One chunk in, its part of the page out: the page is paced by whoever reads it.
  try {
    for await (const chunk of chunks) {
      feeder.feed(chunk);
      if (out.length > 0) {
        yield out.splice(0, out.length).join('');
      }
    }
    feeder.end();
  } catch (err) {
    throw err instanceof XmlFormatError ? new CdaFormatError(`The document is not acceptable XML: ${err.message}`) : err;
  }
  writeHeader();
  out.push('</body></html>\n');
  yield out.splice(0, out.length).join('');
}
