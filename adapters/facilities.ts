/**
 * Facilities: the registered Organizations that may send HL7 v2. An Organization is a facility when it carries the
 * tag `http://huimin.health/fhir/CodeSystem/platform-role|hl7-facility` (meta.tag: the registration, which the
 * facility-connection view lists) and one of its identifiers has the value the sender puts in MSH-4 (its namespace
 * id, MSH-4.1, or its universal id, MSH-4.2).
 * Its adapter settings are one extension on the Organization (so they are managed with the FHIR API like the rest
 * of the registration):
 *
 *   extension: [{ url: 'http://huimin.health/fhir/StructureDefinition/hl7-facility', extension: [
 *     { url: 'charset', valueString: 'GB 18030-2000' },          // when MSH-18 is empty
 *     { url: 'mrnSystem', valueUri: 'urn:oid:1.2.156.…' },         // system of its medical record numbers
 *     { url: 'allowedAddress', valueString: '10.1.2.3' },          // repeatable: only from these addresses
 *     { url: 'tlsSubject', valueString: 'his.hospital-a.example' }, // only over TLS with this client certificate CN
 *     { url: 'timezone', valueString: '+08:00' }                    // for times sent without an offset (default)
 *   ]}]
 */
import { parseSearchRequest } from '@medplum/core';
import type { Extension, Organization } from '@medplum/fhirtypes';
import type { FhirRepository } from '../fhir-server';
import { HL7_ERROR, rejected } from './hl7/problems';
import type { PeerInfo } from './mllp/server';

export const FACILITY_EXTENSION = 'http://huimin.health/fhir/StructureDefinition/hl7-facility';
/** The tag that registers an Organization as an HL7 v2 facility (searchable with `_tag`). */
export const FACILITY_TAG_SYSTEM = 'http://huimin.health/fhir/CodeSystem/platform-role';
export const FACILITY_TAG_CODE = 'hl7-facility';
export const FACILITY_TAG = `${FACILITY_TAG_SYSTEM}|${FACILITY_TAG_CODE}`;

export interface Facility {
  /** Organization id. */
  id: string;
  name: string;
  /** The identifier value that matched MSH-4. */
  key: string;
  charset?: string;
  /** System of the facility's MRNs (PID-3 without a national assigning authority). */
  mrnSystem: string;
  /** Base for the facility's other identifier systems (visits, orders, local codes). */
  systemBase: string;
  allowedAddresses: string[];
  tlsSubject?: string;
  /** UTC offset for times sent without one (FHIR requires an offset on a dateTime with a time). */
  timezone: string;
}

function sub(ext: Extension | undefined, url: string): Extension[] {
  return ext?.extension?.filter((e) => e.url === url) ?? [];
}

export function facilityFromOrganization(org: Organization, key: string): Facility {
  const ext = org.extension?.find((e) => e.url === FACILITY_EXTENSION);
  const systemBase = `urn:huimin:hl7:${encodeURIComponent(key)}`;
  const value = (e: Extension): string | undefined => e.valueString ?? e.valueUri ?? e.valueCode;
  return {
    id: org.id as string,
    name: org.name ?? key,
    key,
    charset: sub(ext, 'charset').map(value)[0],
    mrnSystem: sub(ext, 'mrnSystem').map(value)[0] ?? `${systemBase}:mrn`,
    systemBase,
    allowedAddresses: sub(ext, 'allowedAddress').map(value).filter((v): v is string => Boolean(v)),
    tlsSubject: sub(ext, 'tlsSubject').map(value)[0],
    timezone: sub(ext, 'timezone').map(value)[0] ?? '+08:00',
  };
}

/** Looks facilities up by MSH-4, with a short cache so that a busy connection does not search for every message. */
export class FacilityRegistry {
  private readonly cache = new Map<string, { facility: Facility | undefined; at: number }>();

  constructor(
    private readonly repo: FhirRepository,
    private readonly ttlMs = 30_000,
  ) {}

  /** The facility for MSH-4's namespace id and universal id, or undefined when none is registered. */
  async find(namespaceId: string, universalId: string): Promise<Facility | undefined> {
    for (const key of [namespaceId, universalId].filter((k) => k.trim() !== '')) {
      const cached = this.cache.get(key);
      if (cached && Date.now() - cached.at < this.ttlMs) {
        if (cached.facility) return cached.facility;
        continue;
      }
      const request = parseSearchRequest('Organization', { identifier: key, _tag: FACILITY_TAG });
      const page = await this.repo.search(request, { count: 2, offset: 0 });
      const facility = page.rows.length === 1 ? facilityFromOrganization(JSON.parse(page.rows[0].content) as Organization, key) : undefined;
      this.cache.set(key, { facility, at: Date.now() });
      if (facility) return facility;
    }
    return undefined;
  }

  /** Forget cached lookups (after a registration changed). */
  clear(): void {
    this.cache.clear();
  }
}

/** Refuses (AR) a message whose connection does not match what the facility is tied to. */
export function checkPeer(facility: Facility, peer: PeerInfo | undefined): void {
  if (!peer) {
    return; // batch files and replays come from an operator, not a connection
  }
  if (facility.allowedAddresses.length > 0 && !facility.allowedAddresses.includes(peer.address)) {
    throw rejected(HL7_ERROR.unknownKeyIdentifier, `Facility ${facility.key} may not send from address ${peer.address}`, 'MSH', 4);
  }
  if (facility.tlsSubject && peer.tlsSubject !== facility.tlsSubject) {
    throw rejected(HL7_ERROR.unknownKeyIdentifier, `Facility ${facility.key} must connect over TLS with its own client certificate`, 'MSH', 4);
  }
}
