/**
 * The CapabilityStatement, generated from what the code supports (the router's interactions, the indexed
 * search parameters), never maintained by hand.
 */
import { getSearchParameters } from '@medplum/core';
import type { CapabilityStatement, CapabilityStatementRestResource, ResourceType } from '@medplum/fhirtypes';
import { r4ResourceTypes } from '../definitions';
import { indexedParams, isSearchableComposite, runtimeParams } from '../search';
import { profilesRegistered, registeredProfilesOf } from '../validation';
import type { OperationRegistry } from './operations';

/**
 * Built once per registry and base URL, and again when the stored SearchParameters change (their `generation`):
 * otherwise the statement only changes when the code does.
 */
const cache = new WeakMap<OperationRegistry, Map<string, { generation: string; statement: CapabilityStatement }>>();

/** ImplementationGuides this server declares it implements (CapabilityStatement.implementationGuide). */
const implementationGuides = new Set<string>();

/** Declares an ImplementationGuide (its canonical URL) whose profiles this process's validator knows. */
export function declareImplementationGuide(url: string): void {
  implementationGuides.add(url);
}

/** What the statement depends on besides the code: stored SearchParameters, registered profiles, declared guides. */
const generationNow = (): string => `${runtimeParams.generation}:${profilesRegistered()}:${implementationGuides.size}`;

/** Interactions the router answers for every resource type. */
const TYPE_INTERACTIONS: CapabilityStatementRestResource['interaction'] = [
  'read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'history-type', 'create', 'search-type',
].map((code) => ({ code: code as NonNullable<CapabilityStatementRestResource['interaction']>[number]['code'] }));

const RESULT_PARAMETERS = [
  { name: '_count', type: 'number', documentation: 'Page size, bounded by the server maximum' },
  { name: '_cursor', type: 'string', documentation: 'Keyset paging position, set in next links (opaque; stable while data changes)' },
  { name: '_offset', type: 'number', documentation: 'Rows to skip; accepted, but links page by _cursor' },
  { name: '_sort', type: 'string', documentation: 'Several keys, - for descending, on any indexed parameter, _id and _lastUpdated; missing values last' },
  { name: '_total', type: 'token', documentation: 'none, estimate (the planner\'s estimate) or accurate' },
  { name: '_summary', type: 'token', documentation: 'true, text, data, count or false (also on read)' },
  { name: '_elements', type: 'string', documentation: 'Top-level elements to return, with the mandatory ones, id and meta (also on read)' },
] as const;

function resourceEntry(type: string, operations: OperationRegistry): CapabilityStatementRestResource {
  // What is indexed is what can be searched: the R4 parameters and those stored at runtime, and the composites (R4
  // and stored) whose components all have an indexed type (search/composite.ts).
  const composites = [
    ...Object.values(getSearchParameters(type) ?? {}).filter((p) => p.type === 'composite' && isSearchableComposite(type, p.code as string)),
    ...runtimeParams.compositesFor(type).map((p) => p.param),
  ];
  const params = [
    ...indexedParams(type).map(({ code, param }) => ({ name: code, definition: param.url, type: param.type })),
    ...composites.map((p) => ({ name: p.code as string, definition: p.url, type: p.type })),
  ].sort((a, b) => a.name.localeCompare(b.name));
  const supported = registeredProfilesOf(type);
  return {
    type: type as ResourceType,
    profile: `http://hl7.org/fhir/StructureDefinition/${type}`,
    // Profiles a resource may claim in meta.profile and be validated against (registerProfile).
    ...(supported.length ? { supportedProfile: supported } : {}),
    interaction: TYPE_INTERACTIONS,
    versioning: 'versioned-update',
    readHistory: true,
    updateCreate: true,
    conditionalCreate: true,
    conditionalRead: 'full-support',
    conditionalUpdate: true,
    conditionalDelete: 'single',
    referencePolicy: ['literal', 'local', 'enforced'],
    searchParam: [
      { name: '_id', type: 'token', definition: 'http://hl7.org/fhir/SearchParameter/Resource-id' },
      { name: '_lastUpdated', type: 'date', definition: 'http://hl7.org/fhir/SearchParameter/Resource-lastUpdated' },
      ...params.filter((p) => p.name !== '_id' && p.name !== '_lastUpdated'),
      ...RESULT_PARAMETERS.map((p) => ({ ...p })),
    ],
    operation: operations
      .all()
      .filter((op) => op.advertised !== false && op.levels.some((l) => l !== 'system') && (!op.resourceTypes || op.resourceTypes.includes(type)))
      .map((op) => ({ name: op.name, definition: op.definition })),
  };
}

export function capabilityStatement(baseUrl: string, operations: OperationRegistry): CapabilityStatement {
  let byBase = cache.get(operations);
  if (!byBase) {
    byBase = new Map();
    cache.set(operations, byBase);
  }
  const generation = generationNow();
  let statement = byBase.get(baseUrl)?.generation === generation ? byBase.get(baseUrl)?.statement : undefined;
  if (!statement) {
    statement = {
      resourceType: 'CapabilityStatement',
      status: 'active',
      date: new Date().toISOString(),
      kind: 'instance',
      // Bulk Data Access (STU2): the server answers $export at system level (fhir-server/bulk).
      ...(operations.find('export', { level: 'system' }) ? { instantiates: ['http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data'] } : {}),
      name: 'Huimin',
      title: 'Huimin regional health information platform',
      publisher: 'Huimin',
      software: { name: 'Huimin', version: process.env.npm_package_version ?? '0.1.0' },
      implementation: { description: 'Huimin FHIR R4 server', url: baseUrl },
      fhirVersion: '4.0.1',
      ...(implementationGuides.size ? { implementationGuide: [...implementationGuides].sort() } : {}),
      format: ['application/fhir+json', 'json'],
      patchFormat: ['application/json-patch+json'],
      rest: [
        {
          mode: 'server',
          resource: [...r4ResourceTypes()].sort().map((type) => resourceEntry(type, operations)),
          interaction: [{ code: 'transaction' }, { code: 'batch' }, { code: 'history-system' }, { code: 'search-system' }],
          // System-level search (GET [base]?_type=…): the parameters every resource has, beside the result parameters.
          searchParam: [
            ...['_id', '_lastUpdated', '_tag', '_profile', '_security', '_source'].map((name) => ({
              name,
              type: (name === '_lastUpdated' ? 'date' : name === '_profile' || name === '_source' ? 'uri' : 'token') as 'date' | 'uri' | 'token',
              definition: `http://hl7.org/fhir/SearchParameter/Resource-${name.slice(1)}`,
            })),
            { name: '_type', type: 'token', documentation: 'The types to search, comma-separated; every type when absent' },
            ...RESULT_PARAMETERS.map((p) => ({ ...p })),
          ],
          operation: operations
            .all()
            .filter((op) => op.advertised !== false && op.levels.includes('system'))
            .map((op) => ({ name: op.name, definition: op.definition })),
        },
      ],
    };
    byBase.set(baseUrl, { generation, statement });
  }
  return statement;
}
