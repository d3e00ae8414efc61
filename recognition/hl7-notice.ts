/**
 * The HL7 channel of an advisory (an AdvisoryNotifier): when the order came by HL7 (ORM/OML through the adapters)
 * and the ordering hospital registered an MLLP Endpoint, two things go to it through the adapters' outbound queue
 * (retries, dead letters):
 *
 *   1. the application response to the order — ORR^O02 for an ORM^O01, ORL^O22 for an OML^O21 (the adapters pick
 *      the type from the order message): MSA-2 the order's MSH-10, ORC-1 OK (the order stands until the doctor
 *      decides) with the placer/filler numbers and ORC-16 `duplicate-test`, NTE lines with the advisory's detail;
 *   2. the prior results' DiagnosticReports as ORU^R01. Kept because neither ORR_O02 nor ORL_O22 can carry result
 *      values (no OBX): the HIS needs the ORU to show and file the result the doctor may recognise.
 *
 * Results filed without a DiagnosticReport cannot go as ORU^R01; their values are in the response's NTE lines.
 */
import { createHash } from 'node:crypto';
import type { DiagnosticReport, Organization } from '@medplum/fhirtypes';
import type { OutboundJob } from '../adapters';
import type { FhirRepository } from '../fhir-server';
import { ADAPTER_SOURCE, localRef, readResource, searchAll } from './fhir';
import type { AdvisoryNotifier } from './engine';

/** The identifier system under which a facility's MSH-4 is registered. */
const FACILITY_IDENTIFIER_SYSTEM = 'urn:huimin:facility';

export class Hl7AdvisoryNotice implements AdvisoryNotifier {
  constructor(
    private readonly outbound: { enqueue(job: OutboundJob): Promise<string> },
    private readonly repo: FhirRepository,
  ) {}

  async advisoryRaised({ issue, order, results }: Parameters<AdvisoryNotifier['advisoryRaised']>[0]): Promise<void> {
    const facility = localRef(ADAPTER_SOURCE.exec(order.meta?.source ?? '')?.[1]);
    if (!facility || results.length === 0) {
      return;
    }
    const endpoints = await searchAll(this.repo, 'Endpoint', `organization=Organization/${facility.id}&connection-type=hl7v2-mllp&status=active`, 1);
    const organization = await readResource<Organization>(this.repo, 'Organization', facility.id);
    if (endpoints.length === 0 || !organization) {
      return;
    }
    const key = organization.identifier?.find((i) => i.system === FACILITY_IDENTIFIER_SYSTEM)?.value ?? organization.identifier?.[0]?.value ?? facility.id;
    // The same MSH-10 for every repetition of this advisory's notice (at most 20 characters).
    const controlId = (what: string): string => createHash('sha256').update(`${issue.id}|${what}`).digest('base64url').slice(0, 20);
    if (order.resourceType === 'ServiceRequest') await this.outbound.enqueue({ kind: 'order-response', resource: `ServiceRequest/${order.id}`, advisory: `DetectedIssue/${issue.id}`, facility: facility.id, facilityKey: key, controlId: controlId('order-response') });
    const reports = await searchAll<DiagnosticReport>(this.repo, 'DiagnosticReport', `result=${results.map((r) => `Observation/${r.id}`).join(',')}`, 20);
    for (const report of reports) {
      await this.outbound.enqueue({
        kind: 'result',
        resource: `DiagnosticReport/${report.id}`,
        facility: facility.id,
        facilityKey: key,
        controlId: controlId(report.id as string),
      });
    }
  }
}
