/**
 * Step 4: one typed traversal of the resource along the @medplum/core type schemas (which carry each
 * element's type and ElementDefinition.binding), checking what neither the JSON schema nor `validateResource`
 * checks: required bindings, empty arrays, data-type rules (datatype-rules.ts) and resource rules
 * (resource-rules.ts). Nested resources (contained, Bundle.entry.resource, Parameters.parameter.resource) are
 * walked with their own type, so every rule applies at any depth.
 */
import { tryGetDataType } from '@medplum/core';
import type { OperationOutcomeIssue } from '@medplum/fhirtypes';
import { CODED_TYPES, checkExtensibleBinding, checkRequiredBinding } from './bindings';
import { checkDatatype } from './datatype-rules';
import { checkExtension, type ExtensionHost } from './extensions';
import { isPlainObject, makeIssue } from './issues';
import { checkResource } from './resource-rules';

/** How one JSON property of a type is walked. */
interface PropertyPlan {
  type: string;
  /** ElementDefinition path, e.g. `Patient.name`: the context an extension on this element is used in. */
  path: string;
  /** Canonical URL of a required binding, only for the coded types we check. */
  valueSet?: string;
  /** Canonical URL of an extensible binding (Coding, CodeableConcept): a miss is a warning. */
  extensibleValueSet?: string;
}

/** Per type name: JSON property name → plan; choice elements (`value[x]`) get one entry per type. Built once. */
const plans = new Map<string, Map<string, PropertyPlan> | null>();

function buildPlan(typeName: string): Map<string, PropertyPlan> | null {
  const schema = tryGetDataType(typeName);
  if (!schema) {
    return null;
  }
  const plan = new Map<string, PropertyPlan>();
  for (const [name, element] of Object.entries(schema.elements)) {
    const binding = element.binding;
    const required = binding?.strength === 'required' ? binding.valueSet : undefined;
    const extensible = binding?.strength === 'extensible' ? binding.valueSet : undefined;
    for (const { code } of element.type) {
      const key = name.endsWith('[x]') ? name.slice(0, -3) + code.charAt(0).toUpperCase() + code.slice(1) : name;
      plan.set(key, {
        type: code,
        path: element.path,
        valueSet: required && CODED_TYPES.has(code) ? required : undefined,
        extensibleValueSet: extensible && CODED_TYPES.has(code) ? extensible : undefined,
      });
    }
  }
  return plan;
}

function getPlan(typeName: string): Map<string, PropertyPlan> | null {
  let plan = plans.get(typeName);
  if (plan === undefined) {
    plan = buildPlan(typeName);
    plans.set(typeName, plan);
  }
  return plan;
}

function walkItems(
  raw: unknown,
  property: PropertyPlan,
  expression: string,
  host: ExtensionHost,
  issues: OperationOutcomeIssue[]
): void {
  const items = Array.isArray(raw) ? raw : [raw];
  for (let i = 0; i < items.length; i++) {
    const item: unknown = items[i];
    const path = Array.isArray(raw) ? `${expression}[${i}]` : expression;
    if (property.valueSet) {
      checkRequiredBinding(property.type, item, property.valueSet, path, issues);
    } else if (property.extensibleValueSet) {
      checkExtensibleBinding(property.type, item, property.extensibleValueSet, path, issues);
    }
    if (property.type === 'Extension') {
      checkExtension(item, host, path, issues);
    }
    if (!isPlainObject(item)) {
      continue;
    }
    if (property.type === 'Resource') {
      if (typeof item.resourceType === 'string') {
        walkResource(item, item.resourceType, path, issues);
      }
    } else {
      const definitionPath = tryGetDataType(property.type)?.path;
      walk(
        item,
        property.type,
        { type: property.type, path: property.path, isResource: false, definitionPath },
        path,
        issues
      );
    }
  }
}

/**
 * Walks the properties of `value`, a complex value of type `type`. `host` is what an extension directly on this
 * value is checked against: usually the value itself, but the primitive element for `_birthDate`-style values.
 */
function walk(
  value: Record<string, unknown>,
  type: string,
  host: ExtensionHost,
  expression: string,
  issues: OperationOutcomeIssue[]
): void {
  const plan = getPlan(type);
  if (!plan) {
    return;
  }
  checkDatatype(type, value, expression, issues);
  for (const [key, raw] of Object.entries(value)) {
    const path = `${expression}.${key}`;
    if (Array.isArray(raw) && raw.length === 0) {
      issues.push(
        makeIssue('error', 'structure', `${path}: an array must not be empty; omit the property instead`, path)
      );
      continue;
    }
    const property = plan.get(key);
    if (property) {
      walkItems(raw, property, path, host, issues);
      continue;
    }
    // `_birthDate` holds the id/extensions of the primitive `birthDate`: walk it as an Element whose extensions
    // sit on that primitive element.
    const primitive = key.startsWith('_') ? plan.get(key.slice(1)) : undefined;
    if (primitive) {
      const element: ExtensionHost = { type: primitive.type, path: primitive.path, isResource: false };
      const items: unknown[] = Array.isArray(raw) ? raw : [raw];
      items.forEach((item, i) => {
        if (isPlainObject(item)) {
          walk(item, 'Element', element, Array.isArray(raw) ? `${path}[${i}]` : path, issues);
        }
      });
    }
  }
}

function walkResource(
  resource: Record<string, unknown>,
  resourceType: string,
  expression: string,
  issues: OperationOutcomeIssue[]
) {
  checkResource(resourceType, resource, expression, issues);
  walk(resource, resourceType, { type: resourceType, path: resourceType, isResource: true }, expression, issues);
}

/** Binding and rule issues for `resource`, with FHIRPath expressions rooted at its resourceType. */
export function checkContent(resource: Record<string, unknown>, resourceType: string): OperationOutcomeIssue[] {
  const issues: OperationOutcomeIssue[] = [];
  walkResource(resource, resourceType, resourceType, issues);
  return issues;
}
