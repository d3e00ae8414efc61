/**
 * The referral workflow's HL7 channel (its ReferralMessageSender): a referral routed to a hospital that registered
 * an MLLP Endpoint goes out as REF^I12 through the outbound queue (retries, dead letters). A receiver without an
 * MLLP Endpoint gets nothing here: it learns of its referrals through Communications and FHIR Subscriptions.
 */
import { createHash } from 'node:crypto';
import type { HealthcareService, Organization, Reference, ServiceRequest, Task } from '@medplum/fhirtypes';
import { FhirError, type FhirRepository } from '../../fhir-server';
import { Hl7Outbound } from './queue';
import { facilityEndpoint, SendError } from './sender';

/** The identifier system under which a facility's MSH-4 is registered. */
const FACILITY_IDENTIFIER_SYSTEM = 'urn:huimin:facility';

export class Hl7ReferralSender {
  constructor(
    private readonly outbound: Hl7Outbound,
    private readonly repo: FhirRepository,
  ) {}

  async sendReferral({ task, serviceRequest, controlId }: { task: Task; serviceRequest: ServiceRequest; controlId: string }): Promise<void> {
    const organization = await this.receivingOrganization(task.owner);
    if (!organization?.id) {
      return;
    }
    try {
      await facilityEndpoint(this.repo, organization.id);
    } catch (err) {
      if (err instanceof SendError) {
        return;
      }
      throw err;
    }
    const key = organization.identifier?.find((i) => i.system === FACILITY_IDENTIFIER_SYSTEM)?.value ?? organization.identifier?.[0]?.value;
    await this.outbound.enqueue({
      kind: 'referral',
      resource: `ServiceRequest/${serviceRequest.id}`,
      facility: organization.id,
      facilityKey: key ?? organization.id,
      // MSH-10 is at most 20 characters in v2.5: a digest of the workflow's id, the same on every repetition.
      controlId: createHash('sha256').update(controlId).digest('base64url').slice(0, 20),
    });
  }

  /** The Task's owner, or the Organization that provides the HealthcareService it names. */
  private async receivingOrganization(owner: Reference | undefined): Promise<Organization | undefined> {
    const [type, id] = (owner?.reference ?? '').split('/');
    if (type === 'HealthcareService' && id) {
      const service = await this.readOrUndefined<HealthcareService>('HealthcareService', id);
      return this.receivingOrganization(service?.providedBy);
    }
    return type === 'Organization' && id ? this.readOrUndefined<Organization>('Organization', id) : undefined;
  }

  private async readOrUndefined<T>(type: string, id: string): Promise<T | undefined> {
    try {
      return JSON.parse((await this.repo.read(type, id)).json) as T;
    } catch (err) {
      if (err instanceof FhirError && (err.status === 404 || err.status === 410)) {
        return undefined;
      }
      throw err;
    }
  }
}
