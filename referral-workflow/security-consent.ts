/**
 * The referral engine's consent check, answered by the security module's consent rules: a referral is not sent to
 * a receiver that the patient's active patient-privacy Consent denies the whole record to. The receiver is the
 * Task's owner; when that is a HealthcareService, its providing Organization is the one consents name.
 */
import type { HealthcareService, Reference } from '@medplum/fhirtypes';
import type { ConsentDecisions, FhirRepository } from '../fhir-server';
import type { ConsentChecker } from './engine';
import { readResource } from './fhir';

export function securityConsent(decisions: ConsentDecisions, repository: FhirRepository): ConsentChecker {
  return {
    async allowsSharing({ patient, recipient }) {
      if (!patient?.reference) {
        return { allowed: true };
      }
      const organization = await receivingOrganization(recipient, repository);
      if (!organization) {
        return { allowed: true };
      }
      const consent = await decisions.wholeRecordDenial(patient.reference, organization);
      return consent ? { allowed: false, reason: `Consent/${consent} denies sharing the patient's record with ${organization}` } : { allowed: true };
    },
  };
}

async function receivingOrganization(recipient: Reference, repository: FhirRepository): Promise<string | undefined> {
  const [type, id] = (recipient.reference ?? '').split('/');
  if (type === 'Organization') {
    return recipient.reference;
  }
  if (type === 'HealthcareService' && id) {
    return (await readResource<HealthcareService>(repository, 'HealthcareService', id))?.providedBy?.reference;
  }
  return undefined;
}
