/**
 * `_summary` and `_elements` (FHIR R4 search.html §3.1.1.5.8-9): the resources of a searchset, or of a read,
 * reduced to some of their top-level elements and tagged SUBSETTED so that no client mistakes them for the whole
 * resource (and updates with them). Which elements are summary and which are mandatory comes from the R4
 * StructureDefinitions as @medplum/core indexed them (`isSummary`, `min > 0`).
 *
 * Only top-level elements are selected: `_summary=true` keeps a summary element with everything inside it, even
 * where a nested element of a backbone is not marked summary (R4 marks very few of those).
 */
import { tryGetDataType } from '@medplum/core';
import type { Coding, Resource } from '@medplum/fhirtypes';
import { badRequest } from '../errors';

export const SUBSETTED: Coding = {
  system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue',
  code: 'SUBSETTED',
  display: 'subsetted',
};

/** What the client asked to keep; `undefined` from `subsetOf` means the whole resource. */
export type Subset = { summary: 'true' | 'text' | 'data' } | { elements: string[] };

/** `_summary` (true, text, data, false; count is answered by the search itself) and `_elements`, checked. */
export function subsetOf(query: URLSearchParams): Subset | undefined {
  const summary = query.get('_summary');
  const elements = query.getAll('_elements');
  if (summary !== null && elements.length > 0 && summary !== 'false') {
    throw badRequest('_summary and _elements cannot be combined');
  }
  if (summary === 'true' || summary === 'text' || summary === 'data') {
    return { summary };
  }
  if (summary !== null && summary !== 'false' && summary !== 'count') {
    throw badRequest(`_summary must be true, text, data, count or false, got "${summary}"`);
  }
  if (elements.length > 0) {
    // Base element names; some clients prefix them with the type ("Patient.name"), which is accepted.
    const names = elements.flatMap((e) => e.split(',')).map((e) => e.trim().replace(/^[A-Z][A-Za-z]+\./, '')).filter(Boolean);
    return { elements: names };
  }
  return undefined;
}

/** Whether the JSON key `key` belongs to the element `name` (`value` covers `valueQuantity`, `_birthDate` is birthDate's). */
function keyOf(key: string, name: string): boolean {
  const base = key.startsWith('_') ? key.slice(1) : key;
  return base === name || (base.startsWith(name) && /^[A-Z]/.test(base.slice(name.length)));
}

/** Which top-level JSON keys of a resource of `resourceType` the subset keeps. */
function keptKeys(resourceType: string, subset: Subset): (key: string) => boolean {
  const schema = tryGetDataType(resourceType);
  const mandatory = [...(schema?.mandatoryProperties ?? [])];
  let names: string[];
  if ('elements' in subset) {
    names = [...subset.elements, ...mandatory];
  } else if (subset.summary === 'true') {
    names = [...(schema?.summaryProperties ?? []), ...mandatory];
  } else if (subset.summary === 'text') {
    names = ['text', ...mandatory];
  } else {
    return (key) => key !== 'text' && key !== '_text';
  }
  return (key) => names.some((name) => keyOf(key, name));
}

/** A copy of `resource` with only the subset's elements (always resourceType, id and meta), tagged SUBSETTED. */
export function subsetResource(resource: Resource, subset: Subset): Resource {
  const keep = keptKeys(resource.resourceType, subset);
  const result: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(resource)) {
    if (key === 'resourceType' || key === 'id' || key === 'meta' || keep(key)) {
      result[key] = value;
    }
  }
  const tags = (resource.meta?.tag ?? []).filter((t) => !(t.system === SUBSETTED.system && t.code === SUBSETTED.code));
  result.meta = { ...resource.meta, tag: [...tags, SUBSETTED] };
  return result as unknown as Resource;
}

/** The stored JSON text of a resource, reduced to the subset (parsed and re-serialised only when one is asked). */
export function subsetJson(json: string, subset: Subset | undefined): string {
  return subset ? JSON.stringify(subsetResource(JSON.parse(json) as Resource, subset)) : json;
}
