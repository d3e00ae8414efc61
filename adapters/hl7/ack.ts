/**
 * Acknowledgments (original mode): MSH + MSA, and one ERR per problem. ERR carries the location both the v2.3/2.4
 * way (ERR-1, ELD) and the v2.5+ way (ERR-2 ERL, ERR-3 code, ERR-4 severity, ERR-8 text), so senders of any
 * version from 2.3 to 2.8 can read it.
 */
import { randomUUID } from 'node:crypto';
import { escapeHl7, STANDARD_DELIMITERS, type Delimiters } from './message';
import { HL7_ERROR_TEXT, type AckCode, type Problem } from './problems';

/** What an ACK echoes from the message it answers (raw MSH fields; empty when the MSH could not be read). */
export interface AckHeader {
  sendingApplication: string;
  sendingFacility: string;
  receivingApplication: string;
  receivingFacility: string;
  controlId: string;
  triggerEvent: string;
  version: string;
  processingId: string;
  charset: string;
  delimiters: Delimiters;
}

export const EMPTY_HEADER: AckHeader = {
  sendingApplication: '',
  sendingFacility: '',
  receivingApplication: '',
  receivingFacility: '',
  controlId: '',
  triggerEvent: '',
  version: '2.5',
  processingId: 'P',
  charset: '',
  delimiters: STANDARD_DELIMITERS,
};

export function hl7Timestamp(date = new Date()): string {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  const offset = -date.getTimezoneOffset();
  const sign = offset >= 0 ? '+' : '-';
  return (
    `${date.getFullYear()}${p(date.getMonth() + 1)}${p(date.getDate())}${p(date.getHours())}${p(date.getMinutes())}${p(date.getSeconds())}` +
    `${sign}${p(Math.floor(Math.abs(offset) / 60))}${p(Math.abs(offset) % 60)}`
  );
}

export function buildAck(header: AckHeader, code: AckCode, problems: Problem[] = [], text = ''): string {
  const d = header.delimiters;
  const f = d.field;
  const esc = (v: string): string => escapeHl7(v, d);
  const msh = [
    'MSH',
    `${d.component}${d.repetition}${d.escape}${d.subcomponent}`,
    // The answer goes back: receiving and sending swap.
    header.receivingApplication || 'HUIMIN',
    header.receivingFacility || 'HUIMIN',
    header.sendingApplication,
    header.sendingFacility,
    hl7Timestamp(),
    '',
    `ACK${d.component}${header.triggerEvent}${d.component}ACK`,
    randomUUID().replace(/-/g, '').slice(0, 20),
    header.processingId || 'P',
    header.version || '2.5',
    '',
    '',
    '',
    '',
    '',
    header.charset,
  ];
  // MSH's own fields are already in wire form (raw, as received), except what we generate.
  let mshLine = msh.join(f);
  while (mshLine.endsWith(f)) {
    mshLine = mshLine.slice(0, -f.length);
  }
  const lines = [mshLine];
  lines.push(['MSA', code, esc(header.controlId), ...(text ? [esc(text.slice(0, 80))] : [])].join(f));
  for (const p of problems) {
    const c = d.component;
    const eld = [p.segment ?? '', p.sequence ?? (p.segment ? 1 : ''), p.field ?? '', `${p.code}${d.subcomponent}${esc(HL7_ERROR_TEXT[p.code] ?? '')}${d.subcomponent}HL70357`].join(c);
    const erl = [p.segment ?? '', p.sequence ?? (p.segment ? 1 : ''), p.field ?? '', p.field ? 1 : '', p.component ?? ''].join(c);
    const cwe = [p.code, esc(HL7_ERROR_TEXT[p.code] ?? ''), 'HL70357'].join(c);
    lines.push(['ERR', eld, erl, cwe, p.severity ?? 'E', '', '', '', esc(p.reason)].join(f));
  }
  return lines.join('\r') + '\r';
}
