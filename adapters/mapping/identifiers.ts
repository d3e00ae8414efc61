/**
 * Patient identifiers (PID-3, PID-19, MRG-1): the facility's MRNs in the facility's MRN system, and Chinese national
 * identifiers (resident identity card, health card, social security card) in their canonical systems, whatever
 * OID or type code the sender used for them. The table of national systems and their aliases is the master patient
 * index's (mpi/national-ids.ts): what the index links on is classified the same way on every path.
 */
import type { Identifier } from '@medplum/fhirtypes';
import { NATIONAL_ID_SYSTEMS, nationalIdKindOf, parseResidentId, type NationalIdKind } from '../../mpi';
import type { Facility } from '../facilities';
import type { FieldValue } from '../hl7/message';

export { RESIDENT_ID_SYSTEM, HEALTH_CARD_SYSTEM } from '../../mpi';

const V2_0203 = 'http://terminology.hl7.org/CodeSystem/v2-0203';

/** A valid resident ID number, 18 characters or a 15-digit first-generation one. */
const isResidentId = (value: string): boolean => parseResidentId(value).ok;

export interface PatientIdentifier {
  identifier: Identifier;
  kind: 'mrn' | NationalIdKind | 'other';
}

/** One CX repetition → a Patient.identifier, classified. */
export function patientIdentifier(cx: FieldValue, facility: Facility): PatientIdentifier | undefined {
  const value = cx.get(1).trim();
  if (!value) return undefined;
  const namespace = cx.get(4, 1);
  const universal = cx.get(4, 2).replace(/^urn:oid:/, '');
  const type = cx.get(5).toUpperCase();
  const kind =
    nationalIdKindOf(universal) ??
    nationalIdKindOf(namespace) ??
    (['NNCHN', 'NI', 'CZ'].includes(type) && isResidentId(value) ? 'resident-id' : undefined) ??
    (type === 'HC' ? 'health-card' : undefined);
  if (kind) {
    // The value as sent: the platform's Patient write rule (mpi) upgrades 15-digit numbers and refuses wrong check characters.
    return { kind, identifier: { ...(kind === 'resident-id' ? { use: 'official' as const } : {}), type: typeOf(TYPE_CODES[kind].code, TYPE_CODES[kind].display), system: NATIONAL_ID_SYSTEMS[kind], value: value.toUpperCase() } };
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
  if (isResidentId(v)) {
    return { kind: 'resident-id', identifier: { use: 'official', type: typeOf('NNCHN', 'National Person Identifier (China)'), system: NATIONAL_ID_SYSTEMS['resident-id'], value: v.toUpperCase() } };
  }
  return { kind: 'other', identifier: { type: typeOf('SS'), system: `${facility.systemBase}:pid-19`, value: v } };
}

const TYPE_CODES: Record<NationalIdKind, { code: string; display: string }> = {
  'resident-id': { code: 'NNCHN', display: 'National Person Identifier (China)' },
  'health-card': { code: 'HC', display: 'Health Card Number' },
  'social-security': { code: 'SS', display: 'Social Security number' },
};

function typeOf(code: string, display?: string): Identifier['type'] {
  return { coding: [{ system: V2_0203, code, ...(display ? { display } : {}) }] };
}
