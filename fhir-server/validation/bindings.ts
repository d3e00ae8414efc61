/**
 * Step 4: value-set bindings. `validateResource` from @medplum/core checks structure and invariants but not
 * terminology, so it accepts Patient.gender "robot". walk.ts calls this for every code / Coding /
 * CodeableConcept / Quantity whose element has a required binding (profiles.ts for a profile's bindings), and for
 * every Coding / CodeableConcept with an extensible binding (a warning, never an error). Value sets are expanded
 * locally when they can be (see valuesets.ts); the others are asked of the registered CodeValidator (the
 * terminology module), and when nobody can tell, the code is accepted.
 */
import type { InternalTypeSchema } from '@medplum/core';
import type { Coding, OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import { isPlainObject, makeIssue } from './issues';
import { getExpansion } from './valuesets';

/**
 * A terminology service that judges codes against value sets the store cannot expand from its own definitions
 * (filters, LOINC, SNOMED CT, regional value sets). Registered from outside (createFhirServer's `codeValidator`)
 * so that the dependency points from the terminology module to the store. It is called on the write path, so it
 * answers synchronously from what it holds: `undefined` means "cannot tell (yet)", and the code is accepted.
 */
export interface CodeValidator {
  /** Whether `code` (of `system`; any system of the value set when undefined) is in the value set. */
  inValueSet(valueSet: string, system: string | undefined, code: string): boolean | undefined;
}

let codeValidator: CodeValidator | undefined;

export function registerCodeValidator(validator: CodeValidator | undefined): void {
  codeValidator = validator;
}

/** Is (system, code) a member? `system` undefined: a bare `code` element, a member in any system. */
type Membership = (system: string | undefined, code: string) => boolean;

function membershipOf(valueSet: string): Membership | undefined {
  const expansion = getExpansion(valueSet);
  if (expansion) {
    return (system, code) => (system === undefined ? [...expansion.values()].some((codes) => codes.has(code)) : !!expansion.get(system)?.has(code));
  }
  const validator = codeValidator;
  if (validator) {
    return (system, code) => validator.inValueSet(valueSet, system, code) !== false;
  }
  return undefined;
}

/** The element types a required binding is checked on (others, e.g. string or uri, are left alone). */
export const CODED_TYPES = new Set(['code', 'Coding', 'CodeableConcept', 'Quantity']);

function inValueSet(member: Membership, coding: Coding): boolean {
  return !!coding.system && !!coding.code && member(coding.system, coding.code);
}

function isCheckableCoding(value: unknown): value is Coding {
  return isPlainObject(value) && typeof value.system === 'string' && typeof value.code === 'string';
}

function formatCoding(coding: Coding): string {
  return `${coding.system}#${coding.code}`;
}

/** Checks one coded value; returns the diagnostics prefix if it is not in the value set, otherwise undefined. */
function violation(type: string, value: unknown, member: Membership): string | undefined {
  if (type === 'code') {
    if (typeof value !== 'string') {
      return undefined;
    }
    return member(undefined, value) ? undefined : `Value "${value}" is`;
  }
  // A Quantity's unit is coded by system + code, like a Coding.
  if (type === 'Coding' || type === 'Quantity') {
    // A Coding without system or code cannot be judged (and is a structural matter, not a terminology one).
    return isCheckableCoding(value) && !inValueSet(member, value) ? `Coding ${formatCoding(value)} is` : undefined;
  }
  // CodeableConcept: FHIR's rule for required bindings is that at least one coding must come from the value set.
  // A text-only concept carries no code to check.
  const codings = isPlainObject(value) && Array.isArray(value.coding) ? value.coding.filter(isCheckableCoding) : [];
  if (codings.length === 0 || codings.some((c) => inValueSet(member, c))) {
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
  const member = membershipOf(valueSet);
  const problem = member ? violation(type, value, member) : undefined;
  if (problem) {
    const url = valueSet.split('|')[0];
    issues.push(makeIssue('error', 'code-invalid', `${problem} not in the required value set ${url} (${path})`, path));
  }
}

/**
 * Checks a Coding or CodeableConcept against an extensible binding: codes from elsewhere are allowed when the
 * value set has no suitable concept, so a miss is a warning for a human to look at, never a refusal.
 */
export function checkExtensibleBinding(
  type: string,
  value: unknown,
  valueSet: string,
  path: string,
  issues: OperationOutcomeIssue[]
): void {
  if (type !== 'Coding' && type !== 'CodeableConcept') {
    return;
  }
  const member = membershipOf(valueSet);
  const problem = member ? violation(type, value, member) : undefined;
  if (problem) {
    const url = valueSet.split('|')[0];
    issues.push(makeIssue('warning', 'code-invalid', `${problem} not in the extensible value set ${url} (${path}); use a code from it when one fits`, path));
  }
}
