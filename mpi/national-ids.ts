/**
 * Chinese national person identifiers, one canonical system each, whatever OID the sender used:
 *   resident identity card (居民身份证, GB 11643)       urn:oid:2.16.156.10011.1.3
 *   resident health card (居民健康卡; the electronic    urn:oid:2.16.156.10011.1.19
 *     card's 64 hexadecimal characters, or a card number)
 *   social security card (社会保障卡)                   urn:huimin:sid:social-security-card
 * The first two are the National Health Commission's OIDs (WS/T 500 headers use them); the social security card has
 * no NHC OID, so the platform names it. Senders also use HL7 China OIDs (2.16.840.1.113883.2.23.1.9.1 for the
 * identity card, .9.2 for the social security card) and local aliases: those are listed here, and deployments add
 * theirs with HL7_NATIONAL_ID_ALIASES. The HL7 adapters and the master patient index both classify through this
 * table, so an identifier means the same thing on every path into the store.
 */
import type { Identifier } from '@medplum/fhirtypes';

export const RESIDENT_ID_SYSTEM = 'urn:oid:2.16.156.10011.1.3';
export const HEALTH_CARD_SYSTEM = 'urn:oid:2.16.156.10011.1.19';
export const SOCIAL_SECURITY_SYSTEM = 'urn:huimin:sid:social-security-card';

export type NationalIdKind = 'resident-id' | 'health-card' | 'social-security';

export const NATIONAL_ID_SYSTEMS: Record<NationalIdKind, string> = {
  'resident-id': RESIDENT_ID_SYSTEM,
  'health-card': HEALTH_CARD_SYSTEM,
  'social-security': SOCIAL_SECURITY_SYSTEM,
};

/** Assigning authorities (an OID with or without `urn:oid:`, a URI, or a name HIS systems put in CX-4.1). */
const AUTHORITIES = new Map<string, NationalIdKind>([
  ['2.16.156.10011.1.3', 'resident-id'],
  ['2.16.156.10011.1.19', 'health-card'],
  [SOCIAL_SECURITY_SYSTEM, 'social-security'],
  // HL7 China's identifiers for the same numbers, as its members' interfaces send them.
  ['2.16.840.1.113883.2.23.1.9.1', 'resident-id'],
  ['2.16.840.1.113883.2.23.1.9.2', 'social-security'],
  ['身份证', 'resident-id'],
  ['居民身份证', 'resident-id'],
  ['健康卡', 'health-card'],
  ['居民健康卡', 'health-card'],
  ['电子健康卡', 'health-card'],
  ['社保卡', 'social-security'],
  ['社会保障卡', 'social-security'],
]);

const KINDS: readonly NationalIdKind[] = ['resident-id', 'health-card', 'social-security'];

/** Adds authority aliases: `oid=resident-id,oid=health-card,oid=social-security` (HL7_NATIONAL_ID_ALIASES). */
export function registerNationalIdAliases(spec: string): void {
  for (const entry of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const [authority, kind] = entry.split('=').map((s) => s.trim());
    if (!authority || !KINDS.includes(kind as NationalIdKind)) {
      throw new Error(`HL7_NATIONAL_ID_ALIASES: "${entry}" must be <oid>=resident-id, <oid>=health-card or <oid>=social-security`);
    }
    AUTHORITIES.set(stripOid(authority), kind as NationalIdKind);
  }
}

const stripOid = (s: string): string => s.replace(/^urn:oid:/i, '');

/** The national identifier an assigning authority (or Identifier.system) stands for, if any. */
export function nationalIdKindOf(authority: string | undefined): NationalIdKind | undefined {
  return authority ? AUTHORITIES.get(stripOid(authority.trim())) : undefined;
}

// GB 11643-1999: weights of the 17 digits, and the check character for each sum modulo 11 (ISO 7064 MOD 11-2).
const WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK = '10X98765432';

/** The province-level divisions of GB/T 2260 (the first two digits of a resident ID's address code). */
const PROVINCES = new Set([
  '11', '12', '13', '14', '15', '21', '22', '23', '31', '32', '33', '34', '35', '36', '37',
  '41', '42', '43', '44', '45', '46', '50', '51', '52', '53', '54', '61', '62', '63', '64', '65', '71', '81', '82', '83',
]);

export function residentIdCheckCharacter(first17: string): string {
  return CHECK[WEIGHTS.reduce((acc, w, i) => acc + w * Number(first17[i]), 0) % 11];
}

/** GB 11643-1999: 17 digits and a valid ISO 7064 MOD 11-2 check character. */
export function isResidentIdNumber(value: string): boolean {
  return /^\d{17}[\dXx]$/.test(value) && residentIdCheckCharacter(value) === value[17].toUpperCase();
}

export interface ResidentId {
  /** The 18-character number, check character upper case. */
  value: string;
  /** The 15-digit number it was upgraded from (first-generation cards, before 1999). */
  legacy?: string;
  birthDate: string;
  gender: 'male' | 'female';
  /** The GB/T 2260 address code of the place of first registration. */
  addressCode: string;
  /** Things that do not make the number invalid, but deserve a look (an unknown address code). */
  warnings: string[];
}

export type Parsed<T> = { ok: true; id: T } | { ok: false; error: string };

function validDate(y: number, m: number, d: number): boolean {
  const date = new Date(Date.UTC(y, m - 1, d));
  return date.getUTCFullYear() === y && date.getUTCMonth() === m - 1 && date.getUTCDate() === d;
}

/**
 * A resident identity card number, validated: 18 characters with the right check character, or 15 digits (a
 * first-generation number, upgraded: century 19 inserted, check character computed). The birth date and sex it
 * encodes are read from it; an address code outside the known provinces is only a warning (codes of divisions
 * that were later abolished stay valid on the cards issued there).
 */
export function parseResidentId(raw: string): Parsed<ResidentId> {
  const input = raw.trim().replace(/\s+/g, '').toUpperCase();
  let value = input;
  let legacy: string | undefined;
  if (/^\d{15}$/.test(input)) {
    legacy = input;
    const first17 = `${input.slice(0, 6)}19${input.slice(6)}`;
    value = first17 + residentIdCheckCharacter(first17);
  } else if (!/^\d{17}[\dX]$/.test(input)) {
    return { ok: false, error: `"${raw}" is not a resident ID number: GB 11643 numbers are 18 characters (17 digits and a digit or X), or 15 digits for first-generation cards` };
  } else {
    const expected = residentIdCheckCharacter(input);
    if (expected !== input[17]) {
      return { ok: false, error: `Resident ID number ${input} has an invalid check character: ISO 7064 MOD 11-2 over its first 17 digits gives ${expected}, not ${input[17]} (a mistyped digit?)` };
    }
  }
  const y = Number(value.slice(6, 10));
  const m = Number(value.slice(10, 12));
  const d = Number(value.slice(12, 14));
  if (!validDate(y, m, d) || y < 1850) {
    return { ok: false, error: `Resident ID number ${value} encodes the birth date ${value.slice(6, 14)}, which is not a date` };
  }
  const birthDate = `${value.slice(6, 10)}-${value.slice(10, 12)}-${value.slice(12, 14)}`;
  if (birthDate > new Date().toISOString().slice(0, 10)) {
    return { ok: false, error: `Resident ID number ${value} encodes the birth date ${birthDate}, which is in the future` };
  }
  const warnings: string[] = [];
  const addressCode = value.slice(0, 6);
  if (!PROVINCES.has(addressCode.slice(0, 2))) {
    warnings.push(`Resident ID number ${value}: address code ${addressCode} is in no known province (GB/T 2260); accepted, but check the number`);
  }
  return {
    ok: true,
    id: { value, ...(legacy ? { legacy } : {}), birthDate, gender: Number(value[16]) % 2 === 1 ? 'male' : 'female', addressCode, warnings },
  };
}

/** A health card number: the electronic health card's 64 hexadecimal characters (upper-cased), or a card number. */
export function parseHealthCard(raw: string): Parsed<string> {
  const v = raw.trim().replace(/\s+/g, '');
  if (/^[0-9a-fA-F]{64}$/.test(v)) {
    return { ok: true, id: v.toUpperCase() };
  }
  if (/^[0-9A-Za-z]{6,40}$/.test(v)) {
    return { ok: true, id: v.toUpperCase() };
  }
  return { ok: false, error: `"${raw}" is not a health card number: the electronic health card's is 64 hexadecimal characters, a card number 6-40 letters and digits` };
}

/** A social security card number (社会保障卡号, letters and digits; the social security number is the resident ID). */
export function parseSocialSecurity(raw: string): Parsed<string> {
  const v = raw.trim().replace(/\s+/g, '').toUpperCase();
  return /^[0-9A-Z]{6,30}$/.test(v) ? { ok: true, id: v } : { ok: false, error: `"${raw}" is not a social security card number (6-30 letters and digits)` };
}

export interface NormalisedIdentifier {
  kind: NationalIdKind;
  /** The identifier in its canonical system and form. */
  identifier: Identifier;
  /** The 15-digit number kept beside an upgraded one, `use: old`, so that a search by the old number still finds it. */
  legacy?: Identifier;
  resident?: ResidentId;
  warnings: string[];
}

const V2_0203 = 'http://terminology.hl7.org/CodeSystem/v2-0203';
const TYPES: Record<NationalIdKind, Identifier['type']> = {
  'resident-id': { coding: [{ system: V2_0203, code: 'NNCHN', display: 'National Person Identifier (China)' }] },
  'health-card': { coding: [{ system: V2_0203, code: 'HC', display: 'Health Card Number' }] },
  'social-security': { coding: [{ system: V2_0203, code: 'SS', display: 'Social Security number' }] },
};

/**
 * A national identifier in its canonical system and form; `undefined` when the identifier is not a national one;
 * an error text when it claims to be one but its value is invalid (a wrong check character).
 */
export function normaliseNationalId(kind: NationalIdKind, value: string, template: Identifier = {}): NormalisedIdentifier | { error: string } {
  const base: Identifier = { ...template, type: template.type ?? TYPES[kind], system: NATIONAL_ID_SYSTEMS[kind] };
  if (kind === 'resident-id') {
    const parsed = parseResidentId(value);
    if (!parsed.ok) return { error: parsed.error };
    const identifier: Identifier = { use: 'official', ...base, value: parsed.id.value };
    return {
      kind,
      identifier,
      ...(parsed.id.legacy ? { legacy: { ...base, use: 'old', value: parsed.id.legacy } } : {}),
      resident: parsed.id,
      warnings: parsed.id.warnings,
    };
  }
  const parsed = kind === 'health-card' ? parseHealthCard(value) : parseSocialSecurity(value);
  if (!parsed.ok) return { error: parsed.error };
  return { kind, identifier: { ...base, value: parsed.id }, warnings: [] };
}

/** The kind of a FHIR Identifier by its system (canonical or alias). */
export function nationalIdKindOfIdentifier(identifier: Identifier): NationalIdKind | undefined {
  return nationalIdKindOf(identifier.system);
}

/** The canonical `system|value` token of a national identifier, or undefined (not national, or invalid). */
export function nationalIdToken(identifier: Identifier): { kind: NationalIdKind; value: string } | undefined {
  const kind = nationalIdKindOfIdentifier(identifier);
  if (!kind || !identifier.value || identifier.use === 'old') return undefined;
  const n = normaliseNationalId(kind, identifier.value);
  return 'error' in n ? undefined : { kind, value: n.identifier.value as string };
}
