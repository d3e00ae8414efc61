/**
 * AuditEvents in the style of IHE Basic Audit Log Patterns (BALP): one per request, naming who (client, its
 * organisation, the practitioner behind a clinician's call), what (interaction, resources, the query), when, from
 * where, why (purpose of use) and the outcome.
 *
 * What is stored (and hashed into the chain) is the event's facts as compact JSON, built in a few microseconds on
 * every request; the AuditEvent resource is rendered from them when someone reads the log. The rendering is a pure
 * function of the facts, so the chain covers everything the resource says.
 */
import { randomUUID } from 'node:crypto';
import type { AuditEvent, AuditEventAgent, AuditEventEntity } from '@medplum/fhirtypes';

/** Who called, as far as it is known (an unauthenticated attempt knows only the network address). */
export interface AuditAgent {
  clientId?: string;
  clientName?: string;
  role?: string;
  organization?: string;
  practitioner?: string;
  /** The username of a person signed in through a SMART app, and their display name. */
  user?: string;
  userName?: string;
  address?: string;
}

export interface AuditFacts {
  agent: AuditAgent;
  /** read, vread, search-type, history-instance, create, update, patch, delete, operation:$x, batch, transaction, token, register … */
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
  /** v3 ActReason code: TREAT, HOPERAT, HSYSADMIN, or BTG for break-the-glass. */
  purposeOfUse?: string;
  breakGlassReason?: string;
  requestId?: string;
  /**
   * For the record of a write: the id of the intent recorded before it ran (see AuditLog.intend). An intent has
   * status 0; it reaches the log only when its request never finished (the process died), as an unknown outcome.
   */
  intent?: string;
}

/** The stored form: the facts with an id and the time. */
export interface StoredAuditFacts extends AuditFacts {
  id: string;
  recorded: string;
}

/** An event ready for the log: its stored JSON and the keys AuditEvent searches use (see audit_event). */
export interface AuditRecord {
  id: string;
  recorded: string;
  keys: string[];
  content: string;
}

export const AUDIT_FLAG_SYSTEM = 'https://huimin.health/fhir/CodeSystem/audit-flag';
export const BREAK_GLASS_FLAG = 'break-the-glass';
const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
const OBJECT_ROLE = 'http://terminology.hl7.org/CodeSystem/object-role';
const ENTITY_TYPE = { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '2', display: 'System Object' };

/** 0 success, 4 minor failure (refused, invalid), 8 serious failure (server error, or an intent whose request never finished). */
function outcomeCode(status: number): '0' | '4' | '8' {
  return status === 0 ? '8' : status < 400 ? '0' : status < 500 ? '4' : '8';
}

/** The search keys of an event; control characters are replaced (they separate keys in the insert). */
function keysOf(f: StoredAuditFacts): string[] {
  const agents = [f.agent.clientId, f.agent.organization, f.agent.practitioner, f.agent.user].filter((x): x is string => !!x);
  return [
    `id:${f.id}`,
    `outcome:${outcomeCode(f.status)}`,
    `action:${f.action}`,
    ...f.entities.map((e) => `entity:${e}`),
    ...agents.map((a) => `agent:${a}`),
    ...(f.breakGlassReason ? [`flag:${BREAK_GLASS_FLAG}`] : []),
    ...(f.intent ? [`intent:${f.intent}`] : []),
  ].map((k) => k.replace(/[\u0000-\u001f]/g, '?'));
}

export function auditRecord(facts: AuditFacts): AuditRecord {
  const stored: StoredAuditFacts = { id: randomUUID(), recorded: new Date().toISOString(), ...facts, entities: facts.entities.slice(0, 100) };
  return { id: stored.id, recorded: stored.recorded, keys: keysOf(stored), content: JSON.stringify(stored) };
}

/** The record of stored facts (for a journal being recovered), and whether it is an intent. */
export function auditRecordOf(content: string): AuditRecord & { isIntent: boolean } {
  const stored = JSON.parse(content) as StoredAuditFacts;
  if (typeof stored.id !== 'string' || typeof stored.recorded !== 'string' || !Array.isArray(stored.entities)) {
    throw new Error('not an audit record');
  }
  return { id: stored.id, recorded: stored.recorded, keys: keysOf(stored), content, isIntent: stored.status === 0 };
}

/** The AuditEvent resource that stored facts describe. */
export function renderAuditEvent(content: string, serverUrl: string): AuditEvent {
  const f = JSON.parse(content) as StoredAuditFacts;
  const { agent } = f;
  const agents: AuditEventAgent[] = [
    {
      type: { coding: [{ system: DCM, code: '110153', display: 'Source Role ID' }] },
      who: agent.clientId
        ? { identifier: { system: 'urn:huimin:client-id', value: agent.clientId }, display: agent.clientName }
        : { display: 'unauthenticated caller' },
      ...(agent.role ? { role: [{ text: agent.role }] } : {}),
      requestor: !agent.practitioner && !agent.user,
      ...(agent.address ? { network: { address: agent.address, type: '2' as const } } : {}),
    },
  ];
  if (agent.organization) {
    agents.push({ type: { text: 'owning organization of the client' }, who: { reference: agent.organization }, requestor: false });
  }
  if (agent.practitioner) {
    agents.push({
      type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/extra-security-role-type', code: 'humanuser', display: 'human user' }] },
      who: { reference: agent.practitioner },
      requestor: true,
    });
  }
  if (agent.user) {
    agents.push({
      type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/extra-security-role-type', code: 'humanuser', display: 'human user' }] },
      who: { identifier: { system: 'urn:huimin:user', value: agent.user }, display: agent.userName ?? agent.user },
      ...(agent.role ? { role: [{ text: agent.role }] } : {}),
      requestor: !agent.practitioner,
    });
  }
  agents.push({
    type: { coding: [{ system: DCM, code: '110152', display: 'Destination Role ID' }] },
    who: { display: 'Huimin FHIR server' },
    requestor: false,
    network: { address: serverUrl, type: '5' },
  });
  const entities: AuditEventEntity[] = f.entities.map((ref) => ({
    what: { reference: ref },
    type: ENTITY_TYPE,
    role: ref.startsWith('Patient/') ? { system: OBJECT_ROLE, code: '1', display: 'Patient' } : { system: OBJECT_ROLE, code: '4', display: 'Domain Resource' },
  }));
  if (f.query) {
    entities.push({ type: ENTITY_TYPE, role: { system: OBJECT_ROLE, code: '24', display: 'Query' }, query: Buffer.from(f.query.slice(0, 4000), 'utf8').toString('base64') });
  }
  const description = [f.description, f.breakGlassReason ? `break-the-glass: ${f.breakGlassReason}` : undefined].filter(Boolean).join('; ');
  return {
    resourceType: 'AuditEvent',
    id: f.id,
    meta: {
      lastUpdated: f.recorded,
      ...(f.breakGlassReason ? { tag: [{ system: AUDIT_FLAG_SYSTEM, code: BREAK_GLASS_FLAG, display: 'flagged for review' }] } : {}),
    },
    type: { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest', display: 'RESTful Operation' },
    subtype: [{ system: 'http://hl7.org/fhir/restful-interaction', code: f.interaction }],
    action: f.action,
    recorded: f.recorded,
    outcome: outcomeCode(f.status),
    ...(description ? { outcomeDesc: description.slice(0, 1000) } : {}),
    purposeOfEvent: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: f.purposeOfUse ?? 'HOPERAT' }] }],
    agent: agents,
    source: {
      observer: { display: 'Huimin FHIR server' },
      type: [{ system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4', display: 'Application Server' }],
    },
    ...(entities.length ? { entity: entities } : {}),
    ...(f.requestId ? { extension: [{ url: 'https://huimin.health/fhir/StructureDefinition/request-id', valueString: f.requestId }] } : {}),
  };
}
