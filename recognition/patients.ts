/**
 * All of one resident's patient records across hospitals, by the master patient index's links: a hospital's source
 * Patient has `link {other: Patient/<golden>, type: 'refer'}`, the golden Patient has `link {other:
 * Patient/<source>, type: 'seealso'}` to each source. Followed through the repository, so it works with hand-linked
 * patients today and with the MPI's links later.
 */
import type { Patient } from '@medplum/fhirtypes';
import type { FhirRepository } from '../fhir-server';
import { localRef, readResource } from './fhir';

/** Beyond this many records something is wrong with the links; the search stays bounded. */
const MAX_RECORDS = 50;

function linked(patient: Patient, type: 'refer' | 'seealso'): string[] {
  return (patient.link ?? []).filter((l) => l.type === type).map((l) => localRef(l.other)).filter((r) => r?.resourceType === 'Patient').map((r) => r!.id);
}

/**
 * `Patient/<id>` of every record of the resident the given Patient belongs to, itself first: source → golden → all
 * sources. A Patient without links is its own only record. The golden record itself is included (results may be
 * filed against it).
 */
export async function residentPatients(repo: FhirRepository, patientId: string): Promise<string[]> {
  const start = await readResource<Patient>(repo, 'Patient', patientId);
  if (!start) {
    return [];
  }
  const ids = new Set<string>([patientId]);
  const goldens = start.link?.some((l) => l.type === 'seealso') ? [start] : [];
  for (const goldenId of linked(start, 'refer')) {
    const golden = await readResource<Patient>(repo, 'Patient', goldenId);
    if (golden) {
      ids.add(goldenId);
      goldens.push(golden);
    }
  }
  for (const golden of goldens) {
    for (const source of linked(golden, 'seealso')) {
      if (ids.size >= MAX_RECORDS) break;
      ids.add(source);
    }
  }
  return [...ids].map((id) => `Patient/${id}`);
}
