/**
 * Golden records and the link convention other modules rely on:
 *   source Patient (a hospital's record, kept as sent)  link { other: Patient/<golden>, type: 'refer' }
 *   golden Patient (the resident, written by the index) link { other: Patient/<source>, type: 'seealso' } per source
 *   merges                                              'replaced-by' / 'replaces' (mpi/merge-links.ts)
 * A golden Patient is tagged, carries the enterprise identifier (system `urn:huimin:mpi`, value its id) and the
 * demographics of its most recently updated source; it carries no national identifier itself, so that a
 * conditional write by a resident ID number keeps finding the one hospital record it means.
 */
import type { Identifier, Patient, PatientLink, SearchParameter } from '@medplum/fhirtypes';

export const MPI_TAG_SYSTEM = 'https://huimin.health/fhir/CodeSystem/mpi';
export const GOLDEN_TAG = { system: MPI_TAG_SYSTEM, code: 'golden', display: 'Golden record of the master patient index' };
/** The enterprise identifier domain: a golden record's identifier (PIXm targetSystem for the enterprise id). */
export const MPI_SYSTEM = 'urn:huimin:mpi';

/**
 * The store's search rows for "the patients whose records belong to this one": a golden record's `seealso`
 * sources and a merge survivor's `replaces` patients. The store expands `patient=`/`subject=` searches and
 * `$everything` through these rows (createFhirServer's `patientLinkParameter`).
 */
export const LINKED_RECORDS_PARAMETER: SearchParameter & { id: string } = {
  resourceType: 'SearchParameter',
  id: 'patient-linked-records',
  url: 'http://huimin.health/fhir/SearchParameter/patient-linked-records',
  name: 'linked-records',
  status: 'active',
  description: 'Patients whose records belong to this one: the sources of a golden record (seealso), the patients a merge survivor replaces',
  code: 'linked-records',
  base: ['Patient'],
  type: 'reference',
  target: ['Patient'],
  expression: "Patient.link.where(type = 'seealso' or type = 'replaces').other",
};

/** PDQm (ITI-78) asks for `mothersMaidenName`, which R4 does not define. */
export const MOTHERS_MAIDEN_NAME_PARAMETER: SearchParameter & { id: string } = {
  resourceType: 'SearchParameter',
  id: 'patient-mothers-maiden-name',
  url: 'https://profiles.ihe.net/ITI/PDQm/SearchParameter/PDQm-mothersMaidenName',
  name: 'mothersMaidenName',
  status: 'active',
  description: "The mother's maiden name (patient-mothersMaidenName extension), for IHE PDQm",
  code: 'mothersMaidenName',
  base: ['Patient'],
  type: 'string',
  expression: "Patient.extension.where(url = 'http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName').value",
};

export const isGolden = (p: Patient): boolean => (p.meta?.tag ?? []).some((t) => t.system === MPI_TAG_SYSTEM && t.code === 'golden');

const ref = (id: string): string => `Patient/${id}`;
export const idOfRef = (reference: string | undefined): string | undefined => /^Patient\/([A-Za-z0-9\-.]{1,64})$/.exec(reference ?? '')?.[1];

/** The golden record a source names (its `refer` link). */
export const goldenOf = (source: Patient): string | undefined => idOfRef(source.link?.find((l) => l.type === 'refer')?.other.reference);

/** The patient a merge replaced this one by. */
export const replacedBy = (p: Patient): string | undefined => idOfRef(p.link?.find((l) => l.type === 'replaced-by')?.other.reference);

/** The source with its `refer` link to `goldenId` (and no other `refer` link). */
export function referTo(source: Patient, goldenId: string): Patient {
  const others = (source.link ?? []).filter((l) => l.type !== 'refer');
  return { ...source, link: [...others, { other: { reference: ref(goldenId) }, type: 'refer' }] };
}

/** The golden record for these sources (newest first); merge links of the existing golden record are kept. */
export function buildGolden(goldenId: string, sources: Patient[], existing: Patient | undefined, replacedById?: string): Patient & { id: string } {
  const kept: PatientLink[] = (existing?.link ?? []).filter((l) => l.type === 'replaces');
  // A golden record left without sources (all moved elsewhere) points to where they went.
  if (replacedById && sources.length === 0) kept.push({ other: { reference: ref(replacedById) }, type: 'replaced-by' });
  const links: PatientLink[] = [...sources.map((s) => ({ other: { reference: ref(s.id as string) }, type: 'seealso' as const })), ...kept];
  const latest = sources.find((s) => s.active !== false) ?? sources[0];
  const identifier: Identifier[] = [{ use: 'official', system: MPI_SYSTEM, value: goldenId }];
  const golden: Patient & { id: string } = {
    resourceType: 'Patient',
    id: goldenId,
    meta: { tag: [GOLDEN_TAG] },
    identifier,
    active: sources.length > 0,
  };
  if (latest?.name) golden.name = latest.name;
  const telecom = sources.flatMap((s) => s.telecom ?? []).filter((t, i, all) => all.findIndex((o) => o.system === t.system && o.value === t.value) === i);
  if (telecom.length) golden.telecom = telecom;
  const gender = sources.find((s) => s.gender)?.gender;
  if (gender) golden.gender = gender;
  const birthDate = sources.find((s) => s.birthDate)?.birthDate;
  if (birthDate) golden.birthDate = birthDate;
  const deceased = sources.find((s) => s.deceasedDateTime || s.deceasedBoolean);
  if (deceased?.deceasedDateTime) golden.deceasedDateTime = deceased.deceasedDateTime;
  else if (deceased?.deceasedBoolean) golden.deceasedBoolean = true;
  const address = sources.find((s) => s.address?.length)?.address;
  if (address) golden.address = address;
  if (links.length) golden.link = links;
  return golden;
}

/** Whether two versions of a Patient say the same, meta aside. */
export function sameContent(a: Patient | undefined, b: Patient | undefined): boolean {
  if (!a || !b) return a === b;
  const strip = ({ meta: _meta, ...rest }: Patient) => rest;
  return stable(strip(a)) === stable(strip(b));
}

function stable(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stable).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stable((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}
