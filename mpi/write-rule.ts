/**
 * The index's rule on every Patient write (HTTP, bundles, HL7 adapters alike), inside the write's transaction:
 * - national identifiers are normalised to their canonical system (an NHC or HL7 China OID, a configured alias)
 *   and form; a 15-digit resident ID is upgraded to 18 characters and kept beside it as `use: old`;
 * - a resident ID number with a wrong check character (or no date in it) is refused with a 422 that says which
 *   identifier and why: a mistyped national number would link two residents or split one;
 * - the index's `refer` link survives updates that do not carry it (an ADT^A08 rewrites the whole Patient from the
 *   PID segment), so the golden record stays reachable from each hospital's copy between the index's writes.
 */
import type { Identifier, Patient } from '@medplum/fhirtypes';
import { issue, unprocessable, type WriteInterceptor } from '../fhir-server';
import { isGolden } from './golden';
import { nationalIdKindOfIdentifier, normaliseNationalId } from './national-ids';

export function normalisePatientIdentifiers(patient: Patient): { patient: Patient; errors: Array<{ index: number; message: string }>; warnings: string[] } {
  const errors: Array<{ index: number; message: string }> = [];
  const warnings: string[] = [];
  const out: Identifier[] = [];
  let changed = false;
  (patient.identifier ?? []).forEach((identifier, index) => {
    const kind = nationalIdKindOfIdentifier(identifier);
    if (!kind || identifier.value === undefined || identifier.use === 'old') {
      out.push(identifier);
      return;
    }
    const n = normaliseNationalId(kind, identifier.value, identifier);
    if ('error' in n) {
      errors.push({ index, message: n.error });
      out.push(identifier);
      return;
    }
    warnings.push(...n.warnings);
    const same = (a: Identifier, b: Identifier) => a.system === b.system && a.value === b.value;
    if (!same(n.identifier, identifier) || identifier.use !== n.identifier.use) changed = true;
    if (!out.some((o) => same(o, n.identifier))) out.push(n.identifier);
    if (n.legacy && !(patient.identifier ?? []).some((o) => same(o, n.legacy as Identifier))) {
      out.push(n.legacy);
      changed = true;
    }
  });
  return { patient: changed ? { ...patient, identifier: out } : patient, errors, warnings };
}

export function patientWriteRule(): WriteInterceptor {
  return {
    resourceTypes: ['Patient'],
    // Decides from the written resource and the version it replaces alone, so If-Match updates need no transaction.
    pure: true,
    async beforeWrite(_session, write) {
      const input = write.resource as Patient | undefined;
      if (!input || isGolden(input)) return undefined;
      const { patient, errors } = normalisePatientIdentifiers(input);
      if (errors.length) {
        throw unprocessable(errors.map((e) => issue('error', 'value', e.message, [`Patient.identifier[${e.index}].value`])));
      }
      const previous = write.previous as Patient | undefined;
      const kept = previous?.link?.filter((l) => l.type === 'refer') ?? [];
      if (kept.length && !patient.link?.some((l) => l.type === 'refer')) {
        return { ...patient, link: [...(patient.link ?? []), ...kept] };
      }
      return patient === input ? undefined : patient;
    },
  };
}
