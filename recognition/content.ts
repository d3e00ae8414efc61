/** The module's regional code systems (exception reasons, outcomes, advisories, grant scopes), installed once into the store. */
import type { Bundle, CodeSystem } from '@medplum/fhirtypes';
import type { FhirRepository } from '../fhir-server';
import bundle from './content/recognition-codesystems.json';
import { COUNTS_AS_REFUSAL, EXCEPTION_REASON_SYSTEM } from './fhir';

export const recognitionCodeSystems: CodeSystem[] = ((bundle as Bundle).entry ?? []).map((e) => e.resource as CodeSystem);

const reasonSystem = recognitionCodeSystems.find((cs) => cs.url === EXCEPTION_REASON_SYSTEM) as CodeSystem;

export interface ExceptionReason {
  code: string;
  display: string;
  /** False for the two reasons left out of the recognition rate. */
  counted: boolean;
  requiresDisease: boolean;
}

export function exceptionReason(code: string): ExceptionReason | undefined {
  const concept = reasonSystem.concept?.find((c) => c.code === code);
  if (!concept) return undefined;
  const flag = (name: string): boolean | undefined => concept.property?.find((p) => p.code === name)?.valueBoolean;
  return { code, display: concept.display ?? code, counted: flag(COUNTS_AS_REFUSAL) !== false, requiresDisease: flag('requires-disease') === true };
}

export const exceptionReasonCodes: string[] = (reasonSystem.concept ?? []).map((c) => c.code);

/** Stores each CodeSystem unless one with its url exists (safe to call from every process at start). */
export async function installRecognitionContent(repository: FhirRepository): Promise<void> {
  for (const cs of recognitionCodeSystems) {
    await repository.write((s) => s.conditionalCreate(cs, `url=${encodeURIComponent(cs.url as string)}`));
  }
}
