/**
 * The CapabilityStatement, generated from what the code supports (the router's interactions, the indexed
 * search parameters), never maintained by hand.
 */
import { getSearchParameters } from '@medplum/core';
import type { CapabilityStatement, CapabilityStatementRestResource, ResourceType, SearchParameter } from '@medplum/fhirtypes';
import { r4ResourceTypes } from '../definitions';
import { isSearchableComposite } from '../search';
import type { OperationRegistry } from './operations';

/** Built once per registry and base URL: the statement only changes when the code does. */
const cache = new WeakMap<OperationRegistry, Map<string, CapabilityStatement>>();

/** SearchParameter types that are extracted at write time and searchable (composites: see isSearchable; special ones are not). */
const INDEXED_PARAMETER_TYPES = new Set(['string', 'token', 'date', 'reference', 'number', 'quantity', 'uri']);

/** A composite is searchable when each of its components has an indexed type (search/composite.ts). */
const isSearchable = (type: string, p: SearchParameter): boolean =>
  INDEXED_PARAMETER_TYPES.has(p.type as string) || (p.type === 'composite' && isSearchableComposite(type, p.code as string));

/** Interactions the router answers for every resource type. */
const TYPE_INTERACTIONS: CapabilityStatementRestResource['interaction'] = [
  'read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'history-type', 'create', 'search-type',
].map((code) => ({ code: code as NonNullable<CapabilityStatementRestResource['interaction']>[number]['code'] }));

const RESULT_PARAMETERS = [
  { name: '_count', type: 'number', documentation: 'Page size, bounded by the server maximum' },
  { name: '_offset', type: 'number', documentation: 'Paging offset (used in next/previous links)' },
  { name: '_total', type: 'token', documentation: 'accurate: count all matches' },
  { name: '_summary', type: 'token', documentation: 'count: return only the total' },
] as const;

function resourceEntry(type: string, operations: OperationRegistry): CapabilityStatementRestResource {
  const params = Object.values(getSearchParameters(type) ?? {})
    .filter((p) => isSearchable(type, p))
    .map((p) => ({ name: p.code as string, definition: p.url, type: p.type }))
    .sort((a, b) => a.name.localeCompare(b.name));
  return {
    type: type as ResourceType,
    profile: `http://hl7.org/fhir/StructureDefinition/${type}`,
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
      .filter((op) => op.levels.some((l) => l !== 'system') && (!op.resourceTypes || op.resourceTypes.includes(type)))
      .map((op) => ({ name: op.name, definition: op.definition })),
  };
}

export function capabilityStatement(baseUrl: string, operations: OperationRegistry): CapabilityStatement {
  let byBase = cache.get(operations);
  if (!byBase) {
    byBase = new Map();
    cache.set(operations, byBase);
  }
  let statement = byBase.get(baseUrl);
  if (!statement) {
    statement = {
      resourceType: 'CapabilityStatement',
      status: 'active',
      date: new Date().toISOString(),
      kind: 'instance',
      name: 'Huimin',
      title: 'Huimin regional health information platform',
      publisher: 'Huimin',
      software: { name: 'Huimin', version: process.env.npm_package_version ?? '0.1.0' },
      implementation: { description: 'Huimin FHIR R4 server', url: baseUrl },
      fhirVersion: '4.0.1',
      format: ['application/fhir+json', 'json'],
      patchFormat: ['application/json-patch+json'],
      rest: [
        {
          mode: 'server',
          resource: [...r4ResourceTypes()].sort().map((type) => resourceEntry(type, operations)),
          interaction: [{ code: 'transaction' }, { code: 'batch' }, { code: 'history-system' }],
          operation: operations
            .all()
            .filter((op) => op.levels.includes('system'))
            .map((op) => ({ name: op.name, definition: op.definition })),
        },
      ],
    };
    byBase.set(baseUrl, statement);
  }
  return statement;
}
