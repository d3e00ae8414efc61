/**
 * Step 4: required value-set bindings. `validateResource` from @medplum/core checks structure and invariants but
 * not terminology, so it accepts Patient.gender "robot". walk.ts calls this for every code / Coding /
 * CodeableConcept / Quantity whose element has a required binding (profiles.ts for a profile's bindings). Only
 * value sets we can expand locally are checked (see valuesets.ts); the others are silently accepted.
 */
import type { InternalTypeSchema } from '@medplum/core';
import type { Coding, OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import { isPlainObject, makeIssue } from './issues';
import { getExpansion, type Expansion } from './valuesets';

/** The element types a required binding is checked on (others, e.g. string or uri, are left alone). */
export const CODED_TYPES = new Set(['code', 'Coding', 'CodeableConcept', 'Quantity']);

function inExpansion(expansion: Expansion, coding: Coding): boolean {
  return !!coding.system && !!coding.code && !!expansion.get(coding.system)?.has(coding.code);
}

function isCheckableCoding(value: unknown): value is Coding {
  return isPlainObject(value) && typeof value.system === 'string' && typeof value.code === 'string';
}

function formatCoding(coding: Coding): string {
  return `${coding.system}#${coding.code}`;
}

/** Checks one coded value; returns the diagnostics prefix if it violates the binding, otherwise undefined. */
function violation(type: string, value: unknown, expansion: Expansion): string | undefined {
  if (type === 'code') {
    if (typeof value !== 'string') {
      return undefined;
    }
    for (const codes of expansion.values()) {
      if (codes.has(value)) {
        return undefined;
      }
    }
    return `Value "${value}" is`;
  }
  // A Quantity's unit is coded by system + code, like a Coding.
  if (type === 'Coding' || type === 'Quantity') {
    // A Coding without system or code cannot be judged (and is a structural matter, not a terminology one).
    return isCheckableCoding(value) && !inExpansion(expansion, value) ? `Coding ${formatCoding(value)} is` : undefined;
  }
  // CodeableConcept: FHIR's rule for required bindings is that at least one coding must come from the value set.
  // A text-only concept carries no code to check.
  const codings = isPlainObject(value) && Array.isArray(value.coding) ? value.coding.filter(isCheckableCoding) : [];
  if (codings.length === 0 || codings.some((c) => inExpansion(expansion, c))) {
    return undefined;
  }
  return `None of the codings (${codings.map(formatCoding).join(', ')}) is`;
}

/**
 * Required bindings a profile puts on the resource's own elements (e.g. `Observation.value[x]` bound to
 * age-units). Bindings on deeper paths of a profile are not checked.
 */
export function checkProfileBindings(resource: Resource, schema: InternalTypeSchema): OperationOutcomeIssue[] {
  const issues: OperationOutcomeIssue[] = [];
  const values = resource as unknown as Record<string, unknown>;
  for (const [name, element] of Object.entries(schema.elements)) {
    const valueSet = element.binding?.strength === 'required' ? element.binding.valueSet : undefined;
    if (!valueSet || name.includes('.')) {
      continue;
    }
    for (const { code } of element.type) {
      const key = name.endsWith('[x]') ? name.slice(0, -3) + code.charAt(0).toUpperCase() + code.slice(1) : name;
      const value = values[key];
      if (value === undefined || !CODED_TYPES.has(code)) {
        continue;
      }
      const path = `${resource.resourceType}.${key}`;
      const items: unknown[] = Array.isArray(value) ? value : [value];
      items.forEach((item, i) =>
        checkRequiredBinding(code, item, valueSet, Array.isArray(value) ? `${path}[${i}]` : path, issues)
      );
    }
  }
  return issues;
}

/** Checks `value` (of element type `type`, at `path`) against the required binding to `valueSet`. */
export function checkRequiredBinding(
  type: string,
  value: unknown,
  valueSet: string,
  path: string,
  issues: OperationOutcomeIssue[]
): void {
  const expansion = getExpansion(valueSet);
  const problem = expansion ? violation(type, value, expansion) : undefined;
  if (problem) {
    const url = valueSet.split('|')[0];
    issues.push(makeIssue('error', 'code-invalid', `${problem} not in the required value set ${url} (${path})`, path));
  }
}
