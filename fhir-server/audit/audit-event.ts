/**
 * AuditEvent resources in the style of IHE Basic Audit Log Patterns (BALP): one per request, naming who (client,
 * its organisation, the practitioner behind a clinician's call), what (interaction, resources, the query), when,
 * from where, why (purpose of use) and the outcome.
 */
import { randomUUID } from 'node:crypto';
import type { AuditEvent, AuditEventAgent, AuditEventEntity, Coding } from '@medplum/fhirtypes';

/** The audit-log row that goes with the resource: the columns that AuditEvent searches use. */
export interface AuditRecord {
  id: string;
  recorded: string;
  entityRefs: string[];
  agentRefs: string[];
  action: string;
  outcome: string;
  flags: string[];
  content: string;
}

/** Who called, as far as it is known (an unauthenticated attempt knows only the network address). */
export interface AuditAgent {
  clientId?: string;
  clientName?: string;
  role?: string;
  organization?: string;
  practitioner?: string;
  address?: string;
}

export interface AuditFacts {
  agent: AuditAgent;
  /** read, vread, search-type, history-instance, create, update, patch, delete, operation, batch, transaction, capabilities, login, register … */
  interaction: string;
  /** C, R, U, D or E (FHIR audit-event-action). */
  action: 'C' | 'R' | 'U' | 'D' | 'E';
  status: number;
  /** Why it failed, for denials and errors. */
  description?: string;
  /** 'Observation/1', 'Patient/2' … : what was touched. */
  entities: string[];
  /** The query of a search or operation, as sent. */
  query?: string;
  /** v3 ActReason code: TREAT for ordinary use, BTG for break-the-glass. */
  purposeOfUse?: string;
  breakGlassReason?: string;
  requestId?: string;
  /** The server's base URL, naming the destination. */
  serverUrl: string;
}

export const AUDIT_FLAG_SYSTEM = 'https://huimin.health/fhir/CodeSystem/audit-flag';
export const BREAK_GLASS_FLAG = 'break-the-glass';
const DCM = 'http://dicom.nema.org/resources/ontology/DCM';

function outcomeCode(status: number): '0' | '4' | '8' {
  return status < 400 ? '0' : status < 500 ? '4' : '8';
}

function patientsOf(entities: string[]): string[] {
  return entities.filter((e) => e.startsWith('Patient/'));
}

export function buildAuditEvent(facts: AuditFacts): AuditRecord {
  const id = randomUUID();
  const recorded = new Date().toISOString();
  const { agent } = facts;
  const flags = facts.breakGlassReason ? [BREAK_GLASS_FLAG] : [];
  const agents: AuditEventAgent[] = [
    {
      type: { coding: [{ system: DCM, code: '110153', display: 'Source Role ID' }] },
      who: agent.clientId
        ? { identifier: { system: 'urn:huimin:client-id', value: agent.clientId }, display: agent.clientName }
        : { display: 'unauthenticated caller' },
      ...(agent.role ? { role: [{ text: agent.role }] } : {}),
      requestor: !agent.practitioner,
      ...(agent.address ? { network: { address: agent.address, type: '2' as const } } : {}),
    },
  ];
  if (agent.organization) {
    agents.push({ type: { text: 'owning organization of the client' }, who: { reference: agent.organization }, requestor: false });
  }
  if (agent.practitioner) {
    agents.push({ type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/extra-security-role-type', code: 'humanuser', display: 'human user' }] }, who: { reference: agent.practitioner }, requestor: true });
  }
  agents.push({
    type: { coding: [{ system: DCM, code: '110152', display: 'Destination Role ID' }] },
    who: { display: 'Huimin FHIR server' },
    requestor: false,
    network: { address: facts.serverUrl, type: '5' },
  });
  const entities: AuditEventEntity[] = facts.entities.map((ref) => ({
    what: { reference: ref },
    type: { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '2', display: 'System Object' },
    role: ref.startsWith('Patient/')
      ? { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '1', display: 'Patient' }
      : { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '4', display: 'Domain Resource' },
  }));
  if (facts.query) {
    entities.push({
      type: { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '2', display: 'System Object' },
      role: { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '24', display: 'Query' },
      query: Buffer.from(facts.query.slice(0, 4000), 'utf8').toString('base64'),
    });
  }
  const purpose: Coding = { system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: facts.purposeOfUse ?? 'HOPERAT' };
  const description = [facts.description, facts.breakGlassReason ? `break-the-glass: ${facts.breakGlassReason}` : undefined].filter(Boolean).join('; ');
  const event: AuditEvent = {
    resourceType: 'AuditEvent',
    id,
    meta: {
      lastUpdated: recorded,
      ...(flags.length ? { tag: flags.map((code) => ({ system: AUDIT_FLAG_SYSTEM, code, display: 'flagged for review' })) } : {}),
    },
    type: { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest', display: 'RESTful Operation' },
    subtype: [{ system: 'http://hl7.org/fhir/restful-interaction', code: facts.interaction }],
    action: facts.action,
    recorded,
    outcome: outcomeCode(facts.status),
    ...(description ? { outcomeDesc: description.slice(0, 1000) } : {}),
    purposeOfEvent: [{ coding: [purpose] }],
    agent: agents,
    source: {
      observer: { display: 'Huimin FHIR server' },
      type: [{ system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4', display: 'Application Server' }],
    },
    ...(entities.length ? { entity: entities } : {}),
    ...(facts.requestId ? { extension: [{ url: 'https://huimin.health/fhir/StructureDefinition/request-id', valueString: facts.requestId }] } : {}),
  };
  const agentRefs = [agent.clientId, agent.organization, agent.practitioner].filter((x): x is string => !!x);
  return {
    id,
    recorded,
    entityRefs: [...new Set([...facts.entities, ...patientsOf(facts.entities)])],
    agentRefs,
    action: facts.action,
    outcome: outcomeCode(facts.status),
    flags,
    content: JSON.stringify(event),
  };
}
