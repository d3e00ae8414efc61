/**
 * Recognition status ("HR" marks), as the health bureau grants it: a HealthcareService tagged
 * `platform-role|recognition-grant`, owned by the bureau, whose `providedBy` is the lab or imaging department
 * (or the hospital), whose `type` lists the recognised items (LOINC codings) and whose extension gives the scope
 * and the validity period:
 *
 *   { resourceType: 'HealthcareService', meta: { tag: [{ system: GRANT_TAG_SYSTEM, code: 'recognition-grant' }] },
 *     active: true, providedBy: { reference: 'Organization/hosp-a-lab' },
 *     type: [{ coding: [{ system: 'http://loinc.org', code: '2823-3' }] }, …],
 *     extension: [{ url: GRANT_EXTENSION, extension: [
 *       { url: 'scope', valueCoding: { system: SCOPE_SYSTEM, code: 'regional', display: '合肥' } },
 *       { url: 'period', valuePeriod: { start: '2026-01-01', end: '2027-12-31' } } ] }] }
 *
 * Why a resource of its own and not an extension on the department's Organization: the department's Organization
 * belongs to its hospital, which may edit it; a grant is the bureau's act and must be editable by the bureau alone.
 * A HealthcareService owned by the bureau gets that from the store's ownership rule (only the owner changes it),
 * and a grant counts only when its owner is one of the configured authorities (or it was written by an
 * administrator), so a hospital cannot grant itself a mark. The grant's period follows the quality-control cycle;
 * a result qualifies when the grant was in force when the result was issued.
 */
import type { Extension, HealthcareService, Observation, Organization } from '@medplum/fhirtypes';
import { ownerOf, type FhirRepository } from '../fhir-server';
import { codings, GRANT_EXTENSION, GRANT_TAG_CODE, GRANT_TAG_SYSTEM, localRef, readResource, SCOPE_SYSTEM, searchAll, sourceOrganization } from './fhir';

/** The names of the scopes in the mark, when the grant does not spell them (a regional grant must name its city). */
const SCOPE_NAMES: Record<string, string> = { national: '全国', provincial: '本省' };

interface Grant {
  id: string;
  /** The department (or hospital) holding it, and the hospital the department is part of. */
  holder: string;
  holderParent?: string;
  items: Set<string>;
  mark: string;
  start?: number;
  end?: number;
}

/** How long grants are reused; a new or withdrawn grant is seen within this. */
const CACHE_MS = 5_000;

function sub(ext: Extension | undefined, url: string): Extension | undefined {
  return ext?.extension?.find((e) => e.url === url);
}

/** The instant a FHIR date or dateTime starts (a date's end is taken as the end of that day). */
function instant(value: string | undefined, endOfDay = false): number | undefined {
  if (!value) return undefined;
  if (/^\d{4}-\d{2}-\d{2}$/.test(value)) {
    // Dates of the bureau's grants are local (China Standard Time).
    return Date.parse(`${value}T${endOfDay ? '23:59:59.999' : '00:00:00'}+08:00`);
  }
  if (/^\d{4}(-\d{2})?$/.test(value)) {
    return Date.parse(value);
  }
  return Date.parse(value);
}

export class GrantRegistry {
  private cached: { at: number; grants: Grant[] } | undefined;

  constructor(
    private readonly repo: FhirRepository,
    /** `Organization/…` of the health bureau(s) whose grants count, besides those written by administrators. */
    private readonly authorities: readonly string[],
  ) {}

  private async grants(): Promise<Grant[]> {
    if (this.cached && Date.now() - this.cached.at < CACHE_MS) {
      return this.cached.grants;
    }
    const services = await searchAll<HealthcareService>(this.repo, 'HealthcareService', `_tag=${encodeURIComponent(`${GRANT_TAG_SYSTEM}|${GRANT_TAG_CODE}`)}`, 5_000);
    const parents = new Map<string, string | undefined>();
    const grants: Grant[] = [];
    for (const service of services) {
      const owner = ownerOf(service.meta);
      const holder = localRef(service.providedBy);
      const ext = service.extension?.find((e) => e.url === GRANT_EXTENSION);
      const scope = sub(ext, 'scope')?.valueCoding;
      if (service.active === false || (owner && !this.authorities.includes(owner)) || holder?.resourceType !== 'Organization' || !scope?.code) {
        continue;
      }
      const scopeName = scope.display ?? SCOPE_NAMES[scope.code];
      if (!scopeName || (scope.system && scope.system !== SCOPE_SYSTEM)) {
        continue;
      }
      const holderRef = `Organization/${holder.id}`;
      if (!parents.has(holderRef)) {
        const org = await readResource<Organization>(this.repo, 'Organization', holder.id);
        parents.set(holderRef, org?.partOf?.reference);
      }
      const period = sub(ext, 'period')?.valuePeriod;
      grants.push({
        id: service.id as string,
        holder: holderRef,
        holderParent: parents.get(holderRef),
        items: new Set(codings(service.type).map((c) => `${c.system}|${c.code}`)),
        mark: `${scopeName}HR`,
        start: instant(period?.start),
        end: instant(period?.end, true),
      });
    }
    this.cached = { at: Date.now(), grants };
    return grants;
  }

  /** `partOf` of Organizations named as performers, re-read like the grants. */
  private readonly parentsOf = new Map<string, { at: number; parent?: string }>();

  private async parent(ref: string): Promise<string | undefined> {
    const cached = this.parentsOf.get(ref);
    if (cached && Date.now() - cached.at < CACHE_MS) return cached.parent;
    const local = localRef(ref);
    const org = local ? await readResource<Organization>(this.repo, 'Organization', local.id) : undefined;
    const parent = localRef(org?.partOf)?.resourceType === 'Organization' ? org?.partOf?.reference : undefined;
    this.parentsOf.set(ref, { at: Date.now(), parent });
    return parent;
  }

  /** The Organization and those it is part of (department → hospital → …), nearest first. */
  private async lineage(ref: string): Promise<string[]> {
    const line = [ref];
    for (let next = await this.parent(ref); next && !line.includes(next) && line.length < 5; next = await this.parent(next)) {
      line.push(next);
    }
    return line;
  }

  /**
   * The mark ("本省HR", …) of the grant under which this result of this item is recognised, or undefined.
   *
   * The result's producers are its performing Organizations (Observation.performer: a department, from OBX-23 for
   * HL7 results); a grant counts when it is held by the performer or by an Organization the performer is part of
   * (a hospital's grant covers its departments), never by a sibling department. A result that names no performing
   * Organization is attributed to the organisation it came from (the owner of a FHIR write, the facility of an HL7
   * message); that names a hospital, not a department, so a grant held by one of its departments counts for it too.
   * The grant must have been in force when the result was issued.
   */
  async markOf(result: Observation, item: string): Promise<{ mark: string; grant: string; producer: string } | undefined> {
    const performers = (result.performer ?? []).filter((p) => localRef(p)?.resourceType === 'Organization').map((p) => p.reference as string);
    const issued = Date.parse(result.issued ?? result.effectiveDateTime ?? result.effectivePeriod?.start ?? '');
    if (Number.isNaN(issued)) {
      return undefined;
    }
    // Who may hold the grant: the performers and what they are part of; without a performer, the source and its departments.
    const holders = new Set<string>();
    let sourceHospital: string | undefined;
    if (performers.length) {
      for (const performer of new Set(performers)) (await this.lineage(performer)).forEach((o) => holders.add(o));
    } else {
      sourceHospital = sourceOrganization(result, ownerOf);
      if (!sourceHospital) return undefined;
      holders.add(sourceHospital);
    }
    for (const grant of await this.grants()) {
      const holds = holders.has(grant.holder) || (sourceHospital !== undefined && grant.holderParent === sourceHospital);
      if (holds && grant.items.has(item) && (grant.start === undefined || grant.start <= issued) && (grant.end === undefined || issued <= grant.end)) {
        return { mark: grant.mark, grant: `HealthcareService/${grant.id}`, producer: grant.holder };
      }
    }
    return undefined;
  }
}
