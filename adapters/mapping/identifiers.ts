/**
 * Patient identifiers (PID-3, PID-19, MRG-1): the facility's MRNs in the facility's MRN system, and Chinese national
 * identifiers normalised to their national systems, whatever OID or type code the sender used for them:
 *   resident identity card (居民身份证)  urn:oid:2.16.156.10011.1.3
 *   resident health card (居民健康卡)    urn:oid:2.16.156.10011.1.19
 * This is what the master patient index links on.
 */
import type { Identifier } from '@medplum/fhirtypes';
import type { Facility } from '../facilities';
import type { FieldValue } from '../hl7/message';

export const RESIDENT_ID_SYSTEM = 'urn:oid:2.16.156.10011.1.3';
export const HEALTH_CARD_SYSTEM = 'urn:oid:2.16.156.10011.1.19';
const V2_0203 = 'http://terminology.hl7.org/CodeSystem/v2-0203';

/**
 * Assigning authorities (CX-4.1 namespace or CX-4.2 universal id, with or without `urn:oid:`) that mean a national
 * identifier. Besides the national OIDs, deployments add the HL7 China OIDs their senders use through
 * HL7_NATIONAL_ID_ALIASES (see adapters/README.md), e.g. `2.16.840.1.113883.2.23.x=resident-id`.
 */
const AUTHORITIES = new Map<string, 'resident-id' | 'health-card'>([
  ['2.16.156.10011.1.3', 'resident-id'],
  ['2.16.156.10011.1.19', 'health-card'],
  ['身份证', 'resident-id'],
  ['居民身份证', 'resident-id'],
  ['健康卡', 'health-card'],
  ['居民健康卡', 'health-card'],
]);

/** Adds authority aliases: `oid=resident-id,oid=health-card`. */
export function registerNationalIdAliases(spec: string): void {
  for (const entry of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const [authority, kind] = entry.split('=').map((s) => s.trim());
    if (kind !== 'resident-id' && kind !== 'health-card') {
      throw new Error(`HL7_NATIONAL_ID_ALIASES: "${entry}" must be <oid>=resident-id or <oid>=health-card`);
    }
    AUTHORITIES.set(authority.replace(/^urn:oid:/, ''), kind);
  }
}

const WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK = '10X98765432';

/** GB 11643-1999: 17 digits and an ISO 7064 MOD 11-2 check character. */
export function isResidentIdNumber(value: string): boolean {
  if (!/^\d{17}[\dXx]$/.test(value)) return false;
  const sum = WEIGHTS.reduce((acc, w, i) => acc + w * Number(value[i]), 0);
  return CHECK[sum % 11] === value[17].toUpperCase();
}

export interface PatientIdentifier {
  identifier: Identifier;
  kind: 'mrn' | 'resident-id' | 'health-card' | 'other';
}

/** One CX repetition → a Patient.identifier, classified. */
export function patientIdentifier(cx: FieldValue, facility: Facility): PatientIdentifier | undefined {
  const value = cx.get(1).trim();
  if (!value) return undefined;
  const namespace = cx.get(4, 1);
  const universal = cx.get(4, 2).replace(/^urn:oid:/, '');
  const type = cx.get(5).toUpperCase();
  const kind =
    AUTHORITIES.get(universal) ??
    AUTHORITIES.get(namespace.replace(/^urn:oid:/, '')) ??
    (['NNCHN', 'NI', 'CZ'].includes(type) && isResidentIdNumber(value) ? 'resident-id' : undefined) ??
    (type === 'HC' ? 'health-card' : undefined);
  if (kind === 'resident-id') {
    return { kind, identifier: { use: 'official', type: typeOf('NNCHN', 'National Person Identifier (China)'), system: RESIDENT_ID_SYSTEM, value: value.toUpperCase() } };
  }
  if (kind === 'health-card') {
    return { kind, identifier: { type: typeOf('HC', 'Health Card Number'), system: HEALTH_CARD_SYSTEM, value } };
  }
  // The facility's own numbers: no assigning authority, or the facility itself, or typed MR/PI/PT.
  const own = (!namespace && !universal) || namespace === facility.key || universal === facility.key;
  if (own && (type === '' || type === 'MR' || type === 'PI' || type === 'PT' || type === 'PN')) {
    return { kind: 'mrn', identifier: { use: 'usual', type: typeOf('MR', 'Medical record number'), system: facility.mrnSystem, value } };
  }
  const system = universal && /^\d+(\.\d+)+$/.test(universal)
    ? `urn:oid:${universal}`
    : `${facility.systemBase}:authority:${encodeURIComponent(namespace || universal || 'local')}`;
  const identifier: Identifier = { system, value };
  if (type) identifier.type = typeOf(type);
  // An MR number assigned by another authority is still the record number the sender knows the patient by.
  return { kind: type === 'MR' ? 'mrn' : 'other', identifier };
}

/** PID-19 (SSN field): Chinese senders put the resident ID number there. */
export function pid19Identifier(value: string, facility: Facility): PatientIdentifier | undefined {
  const v = value.trim();
  if (!v) return undefined;
  if (isResidentIdNumber(v)) {
    return { kind: 'resident-id', identifier: { use: 'official', type: typeOf('NNCHN', 'National Person Identifier (China)'), system: RESIDENT_ID_SYSTEM, value: v.toUpperCase() } };
  }
  return { kind: 'other', identifier: { type: typeOf('SS'), system: `${facility.systemBase}:pid-19`, value: v } };
}

function typeOf(code: string, display?: string): Identifier['type'] {
  return { coding: [{ system: V2_0203, code, ...(display ? { display } : {}) }] };
}
