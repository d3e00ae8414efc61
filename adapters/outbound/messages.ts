/**
 * Outgoing HL7 v2.5 messages, built from FHIR resources: REF^I12 (a referral), ORU^R01 (a result notification),
 * ORR^O02 / ORL^O22 (the application response to an order that came as ORM^O01 / OML^O21) and QBP^Q22 (a patient
 * demographics query, IHE PDQ). Values are escaped; messages are sent as UTF-8 (MSH-18).
 */
import { randomUUID } from 'node:crypto';
import type { DetectedIssue, DiagnosticReport, HumanName, Identifier, Observation, Patient, ServiceRequest } from '@medplum/fhirtypes';
import { hl7Timestamp } from '../hl7/ack';
import { escapeHl7, STANDARD_DELIMITERS } from '../hl7/message';

const e = (v: string | undefined): string => escapeHl7(v ?? '', STANDARD_DELIMITERS);

export interface Header {
  /** MSH-4: the platform's facility id. */
  sendingFacility: string;
  /** MSH-6: the receiving facility (its MSH-4 key). */
  receivingFacility: string;
  controlId?: string;
}

function msh(h: Header, type: string): string {
  return ['MSH', '^~\\&', 'HUIMIN', e(h.sendingFacility), 'HIS', e(h.receivingFacility), hl7Timestamp(), '', type, e(h.controlId ?? randomUUID().replace(/-/g, '').slice(0, 20)), 'P', '2.5', '', '', 'AL', 'NE', 'CHN', 'UNICODE UTF-8'].join('|');
}

function dtm(fhir: string | undefined): string {
  if (!fhir) return '';
  const m = /^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?(?:T(\d{2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?(Z|[+-]\d{2}:\d{2})?)?/.exec(fhir);
  if (!m) return '';
  const [, y, mo = '', d = '', h = '', mi = '', s = '', tz = ''] = m;
  return `${y}${mo}${d}${h}${mi}${s}${tz === 'Z' ? '+0000' : tz.replace(':', '')}`;
}

function xpn(name: HumanName | undefined): string {
  if (!name) return '';
  return [e(name.family ?? name.text), e(name.given?.[0]), e(name.given?.slice(1).join(' '))].join('^').replace(/\^+$/, '');
}

function cx(identifier: Identifier): string {
  const oid = identifier.system?.startsWith('urn:oid:') ? identifier.system.slice(8) : '';
  return `${e(identifier.value)}^^^${oid ? `&${oid}&ISO` : e(identifier.system)}^${e(identifier.type?.coding?.[0]?.code)}`.replace(/\^+$/, '');
}

function pid(patient: Patient): string {
  const gender = { male: 'M', female: 'F', other: 'O', unknown: 'U' }[patient.gender ?? 'unknown'] ?? 'U';
  return ['PID', '1', '', (patient.identifier ?? []).map(cx).join('~'), '', xpn(patient.name?.[0]), '', dtm(patient.birthDate), gender].join('|');
}

function cwe(cc: { coding?: Array<{ code?: string; display?: string; system?: string }>; text?: string } | undefined): string {
  const c = cc?.coding?.[0];
  if (!c) return e(cc?.text);
  const system = c.system === 'http://loinc.org' ? 'LN' : c.system === 'http://snomed.info/sct' ? 'SCT' : 'L';
  return [e(c.code), e(c.display ?? cc?.text), system].join('^');
}

/** REF^I12: a referral to the receiving facility (RF1 from the ServiceRequest, PID from the patient). */
export function refI12(h: Header, request: ServiceRequest, patient: Patient): string {
  const referral = request.identifier?.[0]?.value ?? request.id ?? '';
  const priority = { stat: 'S', asap: 'A', urgent: 'A', routine: 'R' }[request.priority ?? 'routine'] ?? 'R';
  const rf1 = ['RF1', 'P^Pending^HL70283', `${priority}^^HL70280`, '', '', '', e(referral), dtm(request.authoredOn), '', '', (request.reasonCode ?? []).map(cwe).join('~')].join('|');
  const lines = [msh(h, 'REF^I12^REF_I12'), rf1, pid(patient)];
  if (request.code) lines.push(['OBR', '1', e(referral), '', cwe(request.code)].join('|'));
  return lines.join('\r') + '\r';
}

const REPORT_STATUS = { final: 'F', corrected: 'C', amended: 'C', appended: 'C', preliminary: 'P', partial: 'P', registered: 'I', cancelled: 'X' };
const RESULT_STATUS = { final: 'F', corrected: 'C', amended: 'C', preliminary: 'P', registered: 'I', cancelled: 'X', 'entered-in-error': 'W' };

/** ORU^R01: a result notification (OBR from the report, OBX per numeric, coded or text Observation). */
export function oruR01(h: Header, report: DiagnosticReport, observations: Observation[], patient: Patient): string {
  const lines = [msh(h, 'ORU^R01^ORU_R01'), pid(patient)];
  const id = report.identifier?.[0]?.value ?? report.id ?? '';
  const status = (REPORT_STATUS as Record<string, string>)[report.status] ?? 'F';
  lines.push(['OBR', '1', '', e(id), cwe(report.code), '', '', dtm(report.effectiveDateTime), '', '', '', '', '', '', '', '', '', '', '', '', '', '', dtm(report.issued), '', '', status].join('|'));
  observations.forEach((o, i) => {
    let type = 'ST';
    let value = '';
    let units = '';
    if (o.valueQuantity) {
      type = 'NM';
      value = String(o.valueQuantity.value ?? '');
      units = o.valueQuantity.code ? `${e(o.valueQuantity.code)}^${e(o.valueQuantity.unit)}^UCUM` : e(o.valueQuantity.unit);
    } else if (o.valueCodeableConcept) {
      type = 'CWE';
      value = cwe(o.valueCodeableConcept);
    } else if (o.valueString !== undefined) {
      value = e(o.valueString);
    }
    const range = o.referenceRange?.[0];
    const rangeText = range?.text ?? (range?.low || range?.high ? `${range.low?.value ?? ''}-${range.high?.value ?? ''}` : '');
    const interpretation = o.interpretation?.[0]?.coding?.[0]?.code ?? '';
    const obxStatus = (RESULT_STATUS as Record<string, string>)[o.status] ?? 'F';
    lines.push(['OBX', String(i + 1), type, cwe(o.code), '', value, units, e(rangeText), e(interpretation), '', '', obxStatus, '', '', dtm(o.effectiveDateTime)].join('|'));
  });
  return lines.join('\r') + '\r';
}

/** The order message an order response answers: its type (ORM or OML) and its MSH-10. */
export interface AnsweredOrder {
  messageType: 'ORM' | 'OML';
  controlId: string;
}

/** The order numbers as the ordering system sent them (the adapters keep them as PLAC/FILL identifiers). */
function orderNumber(request: ServiceRequest, type: 'PLAC' | 'FILL'): string {
  const id = request.identifier?.find((i) => i.type?.coding?.some((c) => c.code === type));
  return id ? e(id.value) : '';
}

/**
 * ORR^O02 (to an ORM^O01) or ORL^O22 (to an OML^O21): the platform's application response to an order, here to
 * tell the ordering system that recognisable prior results exist (an advisory, HL7 v2.5 ORR_O02 / ORL_O22):
 *
 *   MSA  AA with the order message's MSH-10 (MSA-2), so the HIS files the answer with its order;
 *   ORC  order control OK (table 0119: the order stands — the doctor decides), the placer and filler numbers, the
 *        order status (ORC-5, table 0038, from the ServiceRequest's) and ORC-16 order control code reason = the
 *        advisory's code (duplicate-test);
 *   OBR  the service ordered (ORR's order detail, ORL's observation request);
 *   NTE  the advisory's detail, one line per prior result (value, date, hospital, mark), at message level after
 *        MSA: the one place both structures allow notes.
 *
 * The response carries no OBX (neither structure allows result values in it), so the prior results themselves go
 * separately as ORU^R01.
 */
export function orderResponse(h: Header, answered: AnsweredOrder, request: ServiceRequest, patient: Patient, advisory: DetectedIssue): string {
  const type = answered.messageType === 'OML' ? 'ORL^O22^ORL_O22' : 'ORR^O02^ORR_O02';
  const status = { active: 'IP', 'on-hold': 'HD', revoked: 'CA', completed: 'CM', 'entered-in-error': 'ER', draft: 'SC', unknown: '' }[request.status] ?? '';
  const reason = advisory.code?.coding?.[0];
  const orc = ['ORC', 'OK', orderNumber(request, 'PLAC'), orderNumber(request, 'FILL'), '', status, '', '', '', '', '', '', '', '', '', '', reason ? `${e(reason.code)}^${e(reason.display ?? advisory.code?.text ?? 'recognisable prior result')}^L` : ''].join('|');
  // NTE at message level, after MSA: the one place both ORR_O02 and ORL_O22 (v2.5) allow notes.
  const notes = (advisory.detail ?? '')
    .split('\n')
    .filter((line) => line.trim())
    .map((line, i) => ['NTE', String(i + 1), 'L', e(line), 'RE^Remark^HL70364'].join('|'));
  const lines = [msh(h, type), `MSA|AA|${e(answered.controlId)}`, ...notes, pid(patient), orc];
  if (request.code) lines.push(['OBR', '1', orderNumber(request, 'PLAC'), orderNumber(request, 'FILL'), cwe(request.code)].join('|'));
  return lines.join('\r') + '\r';
}

/** QBP^Q22 (IHE PDQ): find a patient by an identifier. */
export function qbpQ22(h: Header, identifier: { system?: string; value: string }, queryTag = randomUUID().slice(0, 16)): string {
  const oid = identifier.system?.startsWith('urn:oid:') ? identifier.system.slice(8) : '';
  const parameters = [`@PID.3.1^${e(identifier.value)}`, ...(oid ? [`@PID.3.4.2^${e(oid)}`] : [])].join('~');
  return [msh(h, 'QBP^Q22^QBP_Q21'), ['QPD', 'IHE PDQ Query', e(queryTag), parameters].join('|'), 'RCP|I|10^RD'].join('\r') + '\r';
}
