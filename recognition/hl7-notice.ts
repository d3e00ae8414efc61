/**
 * The HL7 channel of an advisory (an AdvisoryNotifier): when the order came by HL7 (ORM/OML through the adapters)
 * and the ordering hospital registered an MLLP Endpoint, the prior results' DiagnosticReports go to it as ORU^R01
 * through the adapters' outbound queue (retries, dead letters), so its HIS shows the result it may recognise.
 *
 * The adapters' outbound offers REF^I12 and ORU^R01 only: an ORR^O02 answering the order (with its placer number
 * and the advisory) is not available, and results filed without a DiagnosticReport cannot go as ORU^R01. Those
 * hospitals learn of the advisory through FHIR Subscriptions on DetectedIssue.
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
    const reports = await searchAll<DiagnosticReport>(this.repo, 'DiagnosticReport', `result=${results.map((r) => `Observation/${r.id}`).join(',')}`, 20);
    for (const report of reports) {
      await this.outbound.enqueue({
        kind: 'result',
        resource: `DiagnosticReport/${report.id}`,
        facility: facility.id,
        facilityKey: key,
        // MSH-10 (at most 20 characters): the same for every repetition of this advisory's notice.
        controlId: createHash('sha256').update(`${issue.id}|${report.id}`).digest('base64url').slice(0, 20),
      });
    }
  }
}
