/**
 * Duplicate medication across hospitals (WS/T 790.18 reminder service): a new prescription whose ingredient the
 * resident already receives elsewhere — an active MedicationRequest or a MedicationDispense whose supply has not run
 * out at another institution — raises the same kind of advisory as a duplicate test.
 */
import type { CodeableConcept, Medication, MedicationDispense, MedicationRequest, Reference, Resource } from '@medplum/fhirtypes';
import { ownerOf, type FhirRepository } from '../fhir-server';
import { codings, localRef, readResource, searchAll, sourceOrganization } from './fhir';

const DAY_MS = 24 * 3600 * 1000;
/** A dispense without a days' supply is taken to last this long. */
const DEFAULT_SUPPLY_DAYS = 30;

export interface ActiveElsewhere {
  resource: MedicationRequest | MedicationDispense;
  ingredient: string;
  institution?: string;
}

/** The ingredient codings of a medication: the Medication's ingredients, or the medication's own code. */
async function ingredientsOf(repo: FhirRepository, concept: CodeableConcept | undefined, reference: Reference | undefined, cache: Map<string, Set<string>>): Promise<Set<string>> {
  const key = reference?.reference ?? JSON.stringify(concept ?? {});
  const cached = cache.get(key);
  if (cached) return cached;
  const found = new Set<string>();
  const ref = localRef(reference);
  const medication = ref?.resourceType === 'Medication' ? await readResource<Medication>(repo, 'Medication', ref.id) : undefined;
  for (const ingredient of medication?.ingredient ?? []) {
    codings(ingredient.itemCodeableConcept).forEach((c) => found.add(`${c.system}|${c.code}`));
  }
  if (found.size === 0) {
    codings(concept ?? medication?.code).forEach((c) => found.add(`${c.system}|${c.code}`));
  }
  cache.set(key, found);
  return found;
}

function supplyEnds(dispense: MedicationDispense): number | undefined {
  const handed = Date.parse(dispense.whenHandedOver ?? dispense.whenPrepared ?? '');
  if (Number.isNaN(handed)) return undefined;
  const days = dispense.daysSupply?.value ?? DEFAULT_SUPPLY_DAYS;
  return handed + days * DAY_MS;
}

export async function duplicateMedication(repo: FhirRepository, prescription: MedicationRequest, patients: string[], institution: string | undefined, now: Date): Promise<ActiveElsewhere[]> {
  const cache = new Map<string, Set<string>>();
  const wanted = await ingredientsOf(repo, prescription.medicationCodeableConcept, prescription.medicationReference, cache);
  if (wanted.size === 0 || patients.length === 0) return [];
  const subjects = patients.join(',');
  const self = `MedicationRequest/${prescription.id}`;
  const elsewhere = (r: Resource): string | undefined => {
    const from = sourceOrganization(r, ownerOf);
    return from !== institution ? (from ?? 'unknown') : undefined;
  };
  const found: ActiveElsewhere[] = [];
  for (const request of await searchAll<MedicationRequest>(repo, 'MedicationRequest', `subject=${subjects}&status=active`, 500)) {
    if (`MedicationRequest/${request.id}` === self || !elsewhere(request)) continue;
    const theirs = await ingredientsOf(repo, request.medicationCodeableConcept, request.medicationReference, cache);
    const shared = [...theirs].find((i) => wanted.has(i));
    if (shared) found.push({ resource: request, ingredient: shared, institution: sourceOrganization(request, ownerOf) });
  }
  const since = new Date(now.getTime() - 180 * DAY_MS).toISOString();
  for (const dispense of await searchAll<MedicationDispense>(repo, 'MedicationDispense', `subject=${subjects}&status=completed,in-progress&whenhandedover=ge${since}`, 500)) {
    const ends = supplyEnds(dispense);
    if (!elsewhere(dispense) || ends === undefined || ends < now.getTime()) continue;
    const theirs = await ingredientsOf(repo, dispense.medicationCodeableConcept, dispense.medicationReference, cache);
    const shared = [...theirs].find((i) => wanted.has(i));
    if (shared) found.push({ resource: dispense, ingredient: shared, institution: sourceOrganization(dispense, ownerOf) });
  }
  return found;
}
