/**
 * Which organisation a party of a workflow resource acts for. A Task (a referral) is addressed to an Organization,
 * or to one of its HealthcareServices (a department) or PractitionerRoles (a doctor's post there); each of the three
 * is the business of the organisation behind it. The access policy (who may change a Task) and the referral
 * workflow (who may accept or reject one) both decide by this one rule.
 */
import type { HealthcareService, PractitionerRole, Reference } from '@medplum/fhirtypes';
import type { ResourceReader } from '../repository';

const PARTY = /^(Organization|HealthcareService|PractitionerRole)\/([A-Za-z0-9\-.]{1,64})$/;

/**
 * Whether the party is the organisation itself, or a HealthcareService it provides (`providedBy`), or a
 * PractitionerRole at it (`organization`). Other references (a Practitioner, a Patient, an absolute URL) are not.
 */
export async function partyOfOrganization(party: Reference | undefined, organization: string, read: ResourceReader): Promise<boolean> {
  const match = PARTY.exec(party?.reference ?? '');
  if (!match) {
    return false;
  }
  const [reference, type, id] = match;
  if (type === 'Organization') {
    return reference === organization;
  }
  if (type === 'HealthcareService') {
    return (await read<HealthcareService>(type, id))?.providedBy?.reference === organization;
  }
  return (await read<PractitionerRole>(type, id))?.organization?.reference === organization;
}
