/**
 * The shape of a patient merge, the same from every path (ADT^A40/A34/A39 in the HL7 adapters, `Patient/$merge`):
 * the surviving patient gets `link: replaces` to the prior one; the prior one is kept (its history and the
 * records that point to it stay), made inactive, with `link: replaced-by` to the survivor. The index then files the
 * prior patient's records under the survivor's golden record.
 */
import type { Patient, PatientLink } from '@medplum/fhirtypes';

/** `links` with `link` instead of any earlier link to the same patient. */
export function withLink(links: PatientLink[] | undefined, link: PatientLink): PatientLink[] {
  const others = (links ?? []).filter((l) => l.other.reference !== link.other.reference);
  return [...others, link];
}

/** The two patients as a merge leaves them; both must have their ids. */
export function mergePatients<S extends Patient & { id: string }, P extends Patient & { id: string }>(survivor: S, prior: P): { survivor: S; prior: P } {
  return {
    survivor: { ...survivor, link: withLink(survivor.link, { other: { reference: `Patient/${prior.id}` }, type: 'replaces' }) },
    prior: { ...prior, active: false, link: withLink(prior.link, { other: { reference: `Patient/${survivor.id}` }, type: 'replaced-by' }) },
  };
}
