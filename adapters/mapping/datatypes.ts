/**
 * HL7 v2 data types → FHIR data types, following the HL7 v2-to-FHIR IG's datatype maps (CX → Identifier,
 * XPN → HumanName, XAD → Address, XTN → ContactPoint, CWE/CE → CodeableConcept, DTM → dateTime).
 */
import type { Address, CodeableConcept, Coding, ContactPoint, HumanName, Identifier } from '@medplum/fhirtypes';
import type { FieldValue, Segment } from '../hl7/message';
import { contentError } from '../hl7/problems';
import type { Facility } from '../facilities';

/** HL7 table 0396 coding system names → FHIR system URIs. */
const CODING_SYSTEMS: Record<string, string> = {
  LN: 'http://loinc.org',
  LOINC: 'http://loinc.org',
  SCT: 'http://snomed.info/sct',
  SNM: 'http://snomed.info/sct',
  SNOMED: 'http://snomed.info/sct',
  I10: 'http://hl7.org/fhir/sid/icd-10',
  'I10C': 'http://hl7.org/fhir/sid/icd-10-cm',
  I9C: 'http://hl7.org/fhir/sid/icd-9-cm',
  CVX: 'http://hl7.org/fhir/sid/cvx',
  MVX: 'http://hl7.org/fhir/sid/mvx',
  NDC: 'http://hl7.org/fhir/sid/ndc',
  UCUM: 'http://unitsofmeasure.org',
  RXNORM: 'http://www.nlm.nih.gov/research/umls/rxnorm',
  CPT: 'http://www.ama-assn.org/go/cpt',
  C4: 'http://www.ama-assn.org/go/cpt',
};

export const LOINC = 'http://loinc.org';
export const UCUM = 'http://unitsofmeasure.org';

/** The FHIR system for a coding system name; local names (L, 99xxx, empty) get the facility's own namespace. */
export function codingSystem(name: string, facility: Facility): string {
  const n = name.trim().toUpperCase();
  if (CODING_SYSTEMS[n]) return CODING_SYSTEMS[n];
  const table = /^HL7(\d{4})$/.exec(n);
  if (table) return `http://terminology.hl7.org/CodeSystem/v2-${table[1]}`;
  if (/^\d+(\.\d+)+$/.test(name.trim())) return `urn:oid:${name.trim()}`;
  return `${facility.systemBase}:codesystem:${encodeURIComponent(name.trim() || 'L')}`;
}

export function isLocalSystem(system: string, facility: Facility): boolean {
  return system.startsWith(`${facility.systemBase}:codesystem:`);
}

/** CWE/CE/CNE → CodeableConcept (primary and alternate codings, text); undefined when empty. */
export function codeableConcept(v: FieldValue | undefined, facility: Facility): CodeableConcept | undefined {
  if (!v || v.empty) return undefined;
  const coding: Coding[] = [];
  for (const base of [1, 4]) {
    const code = v.get(base);
    if (code) {
      coding.push({ system: codingSystem(v.get(base + 2), facility), code, display: v.get(base + 1) || undefined });
    }
  }
  const text = v.get(9) || v.get(2) || v.get(5) || (coding.length === 0 ? v.get(1) : undefined);
  const cc: CodeableConcept = {};
  if (coding.length) cc.coding = coding.map(clean);
  if (text) cc.text = text;
  return cc.coding || cc.text ? cc : undefined;
}

function clean<T extends object>(o: T): T {
  for (const k of Object.keys(o) as Array<keyof T>) {
    if (o[k] === undefined || o[k] === '') delete o[k];
  }
  return o;
}

const DTM = /^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\.\d{1,4})?([+-]\d{4})?$/;

/**
 * DTM/TS → FHIR dateTime. A time without an offset gets the facility's time zone (FHIR requires one).
 * Throws an AE naming the field when the value is not a date.
 */
export function dateTime(raw: string, facility: Facility, segment: Segment, field: number): string | undefined {
  const value = raw.trim();
  if (value === '' || value === '""') return undefined;
  const m = DTM.exec(value);
  if (!m || !validParts(m)) {
    throw contentError(segment.name, field, `"${value}" is not an HL7 date/time (YYYY[MM[DD[HHMM[SS[.S]]]]][+/-ZZZZ])`, undefined, sequenceOf(segment));
  }
  const [, y, mo, d, h, mi, s, frac, tz] = m;
  if (!mo) return y;
  if (!d) return `${y}-${mo}`;
  if (!h) return `${y}-${mo}-${d}`;
  const offset = tz ? `${tz.slice(0, 3)}:${tz.slice(3)}` : facility.timezone;
  return `${y}-${mo}-${d}T${h}:${mi ?? '00'}:${s ?? '00'}${frac ?? ''}${offset}`;
}

/** DT → FHIR date (time parts dropped). */
export function date(raw: string, facility: Facility, segment: Segment, field: number): string | undefined {
  const dt = dateTime(raw, facility, segment, field);
  return dt?.slice(0, 10);
}

export function toInstant(dt: string | undefined): Date | undefined {
  if (!dt) return undefined;
  const d = new Date(dt.length === 4 ? `${dt}-01-01` : dt.length === 7 ? `${dt}-01` : dt);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

function validParts(m: RegExpExecArray): boolean {
  const [, , mo, d, h, mi, s] = m;
  if (mo && (+mo < 1 || +mo > 12)) return false;
  if (d && (+d < 1 || +d > 31)) return false;
  if (h && +h > 23) return false;
  if (mi && +mi > 59) return false;
  if (s && +s > 60) return false;
  return true;
}

/** 1-based occurrence of a segment among those with its name (for ERR-2.2). */
export function sequenceOf(segment: Segment): number {
  return segment.occurrence;
}

const NAME_USE: Record<string, HumanName['use']> = { L: 'official', D: 'usual', M: 'maiden', C: 'old', A: 'nickname', N: 'nickname', S: 'anonymous', U: 'temp', B: 'official' };
const CJK = /[\u3400-\u9fff\u{20000}-\u{3134f}]/u;

/** XPN → HumanName. A Chinese name sent whole in XPN.1 stays whole (also as text): family/given are not guessed. */
export function humanName(v: FieldValue): HumanName | undefined {
  if (v.empty) return undefined;
  const family = v.get(1, 1);
  const given = [v.get(2), v.get(3)].filter(Boolean);
  const name: HumanName = {};
  if (family) name.family = family;
  if (given.length) name.given = given;
  if (v.get(4)) name.suffix = [v.get(4)];
  if (v.get(5)) name.prefix = [v.get(5)];
  const use = NAME_USE[v.get(7).toUpperCase()];
  if (use) name.use = use;
  if (CJK.test(family + given.join(''))) {
    name.text = `${family}${given.join('')}`;
  }
  return name.family || name.given || name.text ? name : undefined;
}

const ADDRESS_USE: Record<string, Address['use']> = { H: 'home', B: 'work', O: 'work', C: 'temp', BA: 'old', M: 'home' };

export function address(v: FieldValue): Address | undefined {
  if (v.empty) return undefined;
  const line = [v.get(1, 1), v.get(2)].filter(Boolean);
  const a: Address = {};
  if (line.length) a.line = line;
  if (v.get(3)) a.city = v.get(3);
  if (v.get(4)) a.state = v.get(4);
  if (v.get(5)) a.postalCode = v.get(5);
  if (v.get(6)) a.country = v.get(6);
  if (v.get(9)) a.district = v.get(9);
  const use = ADDRESS_USE[v.get(7).toUpperCase()];
  if (use) a.use = use;
  if (v.get(7).toUpperCase() === 'M') a.type = 'postal';
  return Object.keys(a).length ? a : undefined;
}

/** XTN → ContactPoint (number from XTN.12, else area+local, else the v2.3 XTN.1; email from XTN.4). */
export function contactPoint(v: FieldValue, defaultUse: ContactPoint['use']): ContactPoint | undefined {
  if (v.empty) return undefined;
  const email = v.get(4);
  const equipment = v.get(3).toUpperCase();
  if (email || equipment === 'INTERNET' || equipment === 'X.400') {
    const value = email || v.get(1);
    return value ? { system: 'email', value } : undefined;
  }
  const number = v.get(12) || [v.get(5) ? `+${v.get(5)}` : '', v.get(6), v.get(7)].filter(Boolean).join(' ') || v.get(1);
  if (!number) return undefined;
  const use2 = v.get(2).toUpperCase();
  const use: ContactPoint['use'] = use2 === 'WPN' ? 'work' : use2 === 'PRN' ? 'home' : use2 === 'ORN' ? 'mobile' : defaultUse;
  return { system: equipment === 'FX' ? 'fax' : equipment === 'CP' ? 'phone' : 'phone', value: number, use: equipment === 'CP' ? 'mobile' : use };
}

/** EI → the parts that make an identifier: its value and the namespace that assigned it. */
export function entityIdentifier(v: FieldValue): { value: string; namespace: string } | undefined {
  const value = v.get(1);
  if (!value) return undefined;
  return { value, namespace: v.get(2) || v.get(3) };
}

/** An Identifier in one of the facility's own systems (visits, orders, documents…). */
export function facilityIdentifier(facility: Facility, kind: string, value: string, namespace = ''): Identifier {
  return { system: `${facility.systemBase}:${kind}${namespace ? `:${encodeURIComponent(namespace)}` : ''}`, value };
}

/** The search condition that finds a resource by an identifier (for conditional writes). */
export function identifierQuery(identifier: Identifier): string {
  const esc = (s: string): string => s.replace(/[\\|,$]/g, (c) => `\\${c}`);
  return `identifier=${encodeURIComponent(`${esc(identifier.system ?? '')}|${esc(identifier.value ?? '')}`)}`;
}

/** The text of every repetition of a field joined by newlines (TX/FT/ST values spanning repetitions). */
export function text(segment: Segment, field: number): string {
  return segment
    .reps(field)
    .map((r) => r.text())
    .join('\n');
}
