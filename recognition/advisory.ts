/**
 * The DetectedIssue a recognition check raises: one per order (its identifier names the order, so a repeated check
 * creates nothing twice), implicating the order and the prior results, owned by the ordering institution so that
 * its systems may decide on it and subscribe to it (`DetectedIssue?_security=<owner tag>|Organization/…`).
 */
import type { DetectedIssue, MedicationRequest, Reference, Resource, ServiceRequest } from '@medplum/fhirtypes';
import { OWNER_TAG_SYSTEM, type FhirRepository } from '../fhir-server';
import { ADVISORY_ID, ISSUE_SYSTEM } from './fhir';

export type Order = ServiceRequest | MedicationRequest;

export interface AdvisoryInput {
  kind: 'duplicate-test' | 'duplicate-medication';
  order: Order;
  institution?: string;
  /** The prior results (Observations) or the active prescriptions and dispenses elsewhere. */
  evidence: Array<{ reference: string; text: string }>;
}

const DISPLAY = { 'duplicate-test': 'Duplicate test: a recognisable result exists', 'duplicate-medication': 'Duplicate medication across hospitals' };

export function advisoryIdentifier(order: Resource): string {
  return `${order.resourceType}-${order.id}`;
}

export async function raiseAdvisory(repo: FhirRepository, input: AdvisoryInput, now: Date): Promise<DetectedIssue> {
  const { order } = input;
  const value = advisoryIdentifier(order);
  const issue: DetectedIssue = {
    resourceType: 'DetectedIssue',
    meta: input.institution ? { security: [{ system: OWNER_TAG_SYSTEM, code: input.institution, display: 'owning organization' }] } : undefined,
    identifier: [{ system: ADVISORY_ID, value }],
    status: 'final',
    code: {
      coding: [
        { system: ISSUE_SYSTEM, code: input.kind, display: DISPLAY[input.kind] },
        ...(input.kind === 'duplicate-medication' ? [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'DUPTHPY', display: 'Duplicate Therapy Alert' }] : []),
      ],
    },
    severity: 'low',
    patient: order.subject as Reference<never>,
    identifiedDateTime: now.toISOString(),
    implicated: [{ reference: `${order.resourceType}/${order.id}` }, ...input.evidence.map((e) => ({ reference: e.reference, display: e.text }))],
    evidence: [{ detail: input.evidence.map((e) => ({ reference: e.reference, display: e.text })) }],
    detail: input.evidence.map((e) => e.text).join('; ').slice(0, 4000),
  };
  const { resource } = await repo.write((s) => s.conditionalCreate(issue, `identifier=${encodeURIComponent(ADVISORY_ID)}|${encodeURIComponent(value)}`));
  return resource as DetectedIssue;
}
