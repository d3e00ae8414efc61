/**
 * Who an order (or prescription) belongs to, for the bureau's figures and for the advisory's owner: the
 * institution (the owner of a FHIR write, the facility of an HL7 message, else the requester's organisation), the
 * department (the requesting PractitionerRole's organisation) and the doctor (the requesting Practitioner).
 */
import type { MedicationRequest, Organization, PractitionerRole, ServiceRequest } from '@medplum/fhirtypes';
import { ownerOf, type FhirRepository } from '../fhir-server';
import { localRef, readResource, sourceOrganization } from './fhir';

export interface Attribution {
  institution?: string;
  department?: string;
  doctor?: string;
}

export async function attributionOf(repo: FhirRepository, order: ServiceRequest | MedicationRequest): Promise<Attribution> {
  const result: Attribution = { institution: sourceOrganization(order, ownerOf) };
  const requester = localRef(order.requester);
  if (requester?.resourceType === 'Practitioner') {
    result.doctor = order.requester?.reference;
  } else if (requester?.resourceType === 'PractitionerRole') {
    const role = await readResource<PractitionerRole>(repo, 'PractitionerRole', requester.id);
    result.doctor = role?.practitioner?.reference;
    const org = localRef(role?.organization);
    if (org) {
      result.department = `Organization/${org.id}`;
      // A department is an Organization partOf its hospital; the hospital is the institution when nothing else says.
      const department = await readResource<Organization>(repo, 'Organization', org.id);
      result.institution ??= department?.partOf?.reference ?? result.department;
    }
  } else if (requester?.resourceType === 'Organization') {
    result.institution ??= order.requester?.reference;
  }
  return result;
}
