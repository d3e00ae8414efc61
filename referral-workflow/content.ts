/** The workflow's regional content: the referral reason CodeSystem, installed once into the store. */
import type { CodeSystem } from '@medplum/fhirtypes';
import type { FhirRepository } from '../fhir-server';
import reasons from './content/referral-reasons.json';

export const referralReasons = reasons as CodeSystem;

/** Stores the CodeSystem unless a CodeSystem with its url exists (safe to call from every process at start). */
export async function installReferralContent(repository: FhirRepository): Promise<void> {
  await repository.write((s) => s.conditionalCreate(referralReasons, `url=${encodeURIComponent(referralReasons.url as string)}`));
}
