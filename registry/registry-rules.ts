/**
 * The registries' rules on writes (institution, health-worker, service, location and endpoint registries of
 * WS/T 790), run in each write's transaction whatever the path (REST, bundle, the CSV load): identifiers are
 * checked by their system's rule and kept unique, codes of the registries' code systems must exist, `partOf`
 * hierarchies (medical alliances, buildings) may not loop, and endpoints must be addresses the platform can use.
 * Every refusal is a 422 OperationOutcome naming the element (FHIRPath) and what is wrong with it.
 */
import type { CodeSystem, CodeSystemConcept, Coding, Endpoint, HealthcareService, Identifier, Location, Organization, OperationOutcomeIssue, PractitionerRole, Reference, Resource } from '@medplum/fhirtypes';
import { unprocessable, type WriteInterceptor, type WriteSession } from '../fhir-server';
import departments from './content/clinical-department.json';
import levelGrades from './content/hospital-level-grade.json';
import institutionTypes from './content/ws-218-institution-type.json';
import { checkDivisionCode, IDENTIFIER_CHECKS, UNIQUE_SYSTEMS } from './identifiers';

export const DIVISION_EXTENSION = 'http://huimin.health/fhir/StructureDefinition/administrative-division';
const DIVISION_SYSTEM = 'http://huimin.health/fhir/CodeSystem/gb-t-2260';
/** How far up a partOf chain is followed before it is called a loop (alliances nest two or three deep). */
const MAX_PART_OF_DEPTH = 20;

/** The codes of a CodeSystem (with its hierarchy flattened). */
function codesOf(system: CodeSystem): Set<string> {
  const codes = new Set<string>();
  const walk = (concepts: CodeSystemConcept[] | undefined): void => {
    for (const concept of concepts ?? []) {
      codes.add(concept.code as string);
      walk(concept.concept);
    }
  };
  walk(system.concept);
  return codes;
}

/** Code systems this module defines, whose codes it checks itself (they are small and fixed). */
const OWN_CODE_SYSTEMS = new Map<string, Set<string>>(
  [institutionTypes, levelGrades, departments].map((cs) => [(cs as CodeSystem).url as string, codesOf(cs as CodeSystem)]),
);

type Issue = OperationOutcomeIssue;
const issueAt = (expression: string, diagnostics: string, code: Issue['code'] = 'value'): Issue => ({ severity: 'error', code, diagnostics, expression: [expression] });

function identifierIssues(resource: Resource & { identifier?: Identifier[] }): Issue[] {
  const issues: Issue[] = [];
  (resource.identifier ?? []).forEach((identifier, i) => {
    const check = identifier.system ? IDENTIFIER_CHECKS[identifier.system] : undefined;
    if (!check) {
      return;
    }
    const problem = identifier.value === undefined ? 'the identifier has a system but no value' : check(identifier.value);
    if (problem) {
      issues.push(issueAt(`${resource.resourceType}.identifier[${i}].value`, `${resource.resourceType}.identifier[${i}] (${identifier.system}): ${problem}`));
    }
  });
  return issues;
}

/** Another resource of this type already holding one of the resource's unique identifiers. */
async function duplicateIssues(session: WriteSession, resource: Resource & { identifier?: Identifier[] }, id: string): Promise<Issue[]> {
  const unique = UNIQUE_SYSTEMS[resource.resourceType] ?? [];
  const issues: Issue[] = [];
  for (const [i, identifier] of (resource.identifier ?? []).entries()) {
    if (!identifier.system || !identifier.value || !unique.includes(identifier.system)) {
      continue;
    }
    const holders = (await session.findUnderLock(resource.resourceType, `identifier=${encodeURIComponent(`${identifier.system}|${identifier.value}`)}`)).filter((h) => h !== id);
    if (holders.length > 0) {
      issues.push(issueAt(`${resource.resourceType}.identifier[${i}]`, `${identifier.system}|${identifier.value} is already registered to ${resource.resourceType}/${holders[0]}; update that one instead of registering it twice`, 'duplicate'));
    }
  }
  return issues;
}

function codingIssues(codings: Array<{ path: string; coding: Coding }>): Issue[] {
  return codings.flatMap(({ path, coding }) => {
    const codes = coding.system ? OWN_CODE_SYSTEMS.get(coding.system) : undefined;
    return codes && !codes.has(coding.code ?? '') ? [issueAt(path, `${path}: "${coding.code ?? ''}" is not a code of ${coding.system}`, 'code-invalid')] : [];
  });
}

const codingsAt = (path: string, concepts: Array<{ coding?: Coding[] }> | undefined): Array<{ path: string; coding: Coding }> =>
  (concepts ?? []).flatMap((concept, i) => (concept.coding ?? []).map((coding, j) => ({ path: `${path}[${i}].coding[${j}]`, coding })));

function divisionIssues(resourceType: string, addresses: Array<{ extension?: Array<{ url?: string; valueCoding?: Coding }> }>): Issue[] {
  const issues: Issue[] = [];
  addresses.forEach((address, i) => {
    (address.extension ?? []).forEach((ext, j) => {
      if (ext.url !== DIVISION_EXTENSION) {
        return;
      }
      const path = `${resourceType}.address[${i}].extension[${j}].valueCoding`;
      if (!ext.valueCoding?.code || (ext.valueCoding.system && ext.valueCoding.system !== DIVISION_SYSTEM)) {
        issues.push(issueAt(path, `${path}: the administrative division is a Coding of ${DIVISION_SYSTEM} (GB/T 2260)`));
        return;
      }
      const problem = checkDivisionCode(ext.valueCoding.code);
      if (problem) {
        issues.push(issueAt(path, `${path}: ${problem}`));
      }
    });
  });
  return issues;
}

/** `partOf` may not point at the resource itself or at one of its own parts (a loop would hang every hierarchy walk). */
async function partOfIssues(session: WriteSession, resourceType: 'Organization' | 'Location', id: string, partOf: Reference | undefined): Promise<Issue[]> {
  let next = partOf?.reference;
  const seen = new Set<string>();
  for (let depth = 0; next && depth < MAX_PART_OF_DEPTH; depth++) {
    const match = new RegExp(`^${resourceType}/([A-Za-z0-9\\-.]{1,64})$`).exec(next);
    if (!match) {
      return depth === 0 ? [issueAt(`${resourceType}.partOf`, `${resourceType}.partOf must refer to a ${resourceType} of this server, got "${next}"`)] : [];
    }
    if (match[1] === id || seen.has(match[1])) {
      return [issueAt(`${resourceType}.partOf`, `${resourceType}.partOf ${partOf?.reference} would make ${resourceType}/${id} part of itself (the partOf chain loops back)`, 'business-rule')];
    }
    seen.add(match[1]);
    const parent = await session.read<Organization | Location>(resourceType, match[1]);
    next = parent?.partOf?.reference;
  }
  return next ? [issueAt(`${resourceType}.partOf`, `${resourceType}.partOf chain is deeper than ${MAX_PART_OF_DEPTH} levels`, 'business-rule')] : [];
}

function refuse(issues: Issue[]): void {
  if (issues.length > 0) {
    throw unprocessable(issues);
  }
}

function endpointIssues(endpoint: Endpoint): Issue[] {
  const issues: Issue[] = [];
  const type = endpoint.connectionType?.code;
  const address = endpoint.address ?? '';
  if (type === 'hl7v2-mllp') {
    const match = /^mllp:\/\/([A-Za-z0-9\-.]+|\[[0-9a-fA-F:]+\]):(\d{1,5})\/?$/.exec(address);
    if (!match || Number(match[2]) < 1 || Number(match[2]) > 65535) {
      issues.push(issueAt('Endpoint.address', `Endpoint.address "${address}" is not an MLLP address: mllp://host:port (port 1–65535), as the HL7 v2 sender expects`));
    }
  } else if (type === 'hl7-fhir-rest' || type === 'ihe-xds' || type === 'direct-project') {
    let url: URL | undefined;
    try {
      url = new URL(address);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
      issues.push(issueAt('Endpoint.address', `Endpoint.address "${address}" is not an absolute http(s) URL, as a ${type} endpoint needs`));
    } else if (url.username || url.password) {
      issues.push(issueAt('Endpoint.address', 'Endpoint.address carries credentials (user:password@); endpoints are readable by every client, so credentials go elsewhere', 'security'));
    }
  }
  if (!endpoint.managingOrganization?.reference) {
    issues.push(issueAt('Endpoint.managingOrganization', 'Endpoint.managingOrganization is required: it says whose system the address reaches (outbound HL7 and subscriptions look endpoints up by organisation)', 'required'));
  }
  return issues;
}

function healthcareServiceIssues(service: HealthcareService): Issue[] {
  const issues: Issue[] = [];
  if (!service.providedBy?.reference) {
    issues.push(issueAt('HealthcareService.providedBy', 'HealthcareService.providedBy is required: the Organization whose department this is (referrals to an Organization are routed to its services)', 'required'));
  }
  (service.specialty ?? []).forEach((specialty, i) => {
    (specialty.coding ?? []).forEach((coding, j) => {
      if (!coding.system || !coding.code) {
        issues.push(issueAt(`HealthcareService.specialty[${i}].coding[${j}]`, `HealthcareService.specialty[${i}].coding[${j}] needs a system and a code: referrals are matched to services by system and code`));
      }
    });
  });
  return [...issues, ...codingIssues(codingsAt('HealthcareService.specialty', service.specialty))];
}

/** The interceptor for every registry resource type. */
export function registryRule(): WriteInterceptor {
  return {
    resourceTypes: ['Organization', 'Practitioner', 'PractitionerRole', 'HealthcareService', 'Location', 'Endpoint'],
    async beforeWrite(session, write) {
      const resource = write.resource;
      if (!resource) {
        return undefined;
      }
      const issues: Issue[] = identifierIssues(resource as Resource & { identifier?: Identifier[] });
      switch (resource.resourceType) {
        case 'Organization':
          issues.push(...codingIssues(codingsAt('Organization.type', resource.type)), ...divisionIssues('Organization', resource.address ?? []));
          if (issues.length === 0) issues.push(...(await partOfIssues(session, 'Organization', write.id, resource.partOf)));
          break;
        case 'Location':
          issues.push(...divisionIssues('Location', resource.address ? [resource.address] : []));
          if (issues.length === 0) issues.push(...(await partOfIssues(session, 'Location', write.id, resource.partOf)));
          break;
        case 'PractitionerRole': {
          const role = resource as PractitionerRole;
          if (!role.practitioner?.reference || !role.organization?.reference) {
            issues.push(issueAt('PractitionerRole', 'A PractitionerRole of the health-worker registry names both the practitioner and the organization where the role is held', 'required'));
          }
          issues.push(...codingIssues(codingsAt('PractitionerRole.specialty', role.specialty)));
          break;
        }
        case 'HealthcareService':
          issues.push(...healthcareServiceIssues(resource));
          break;
        case 'Endpoint':
          issues.push(...endpointIssues(resource));
          break;
      }
      refuse(issues);
      refuse(await duplicateIssues(session, resource as Resource & { identifier?: Identifier[] }, write.id));
      return undefined;
    },
  };
}
