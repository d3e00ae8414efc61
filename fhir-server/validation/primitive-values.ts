/**
 * The primitive-value checks of @medplum/core's validator that the JSON schema (structure.ts) does not make, for
 * writes that skip @medplum/core (`trustedStructure`, see index.ts): strings without control characters (FHIR
 * strings are XML-legal text), finite numbers, and no empty objects (ele-1: an element has a value or children).
 * One pass over the resource; what the values say is still checked, whoever built the structure around them.
 */
import type { OperationOutcomeIssue } from '@medplum/fhirtypes';
import { isPlainObject, makeIssue } from './issues';

/** C0 controls other than tab, line feed and carriage return: not allowed in a FHIR string. */
const CONTROL = /[\u0000-\u0008\u000B\u000C\u000E-\u001F]/;

/** At most this many issues: a resource full of bad text needs no thousand messages. */
const MAX_ISSUES = 20;

export function checkPrimitiveValues(resource: Record<string, unknown>, resourceType: string): OperationOutcomeIssue[] {
  const issues: OperationOutcomeIssue[] = [];
  const visit = (value: unknown, path: string): void => {
    if (issues.length >= MAX_ISSUES) return;
    if (typeof value === 'string') {
      if (CONTROL.test(value)) issues.push(makeIssue('error', 'value', `${path}: a FHIR string may not contain control characters`, path));
    } else if (typeof value === 'number') {
      if (!Number.isFinite(value)) issues.push(makeIssue('error', 'value', `${path}: ${value} is not a number FHIR can hold`, path));
    } else if (Array.isArray(value)) {
      value.forEach((item, i) => visit(item, `${path}[${i}]`));
    } else if (isPlainObject(value)) {
      const entries = Object.entries(value);
      if (entries.length === 0) issues.push(makeIssue('error', 'structure', `${path}: an element must have a value or children; omit it instead`, path));
      for (const [key, item] of entries) visit(item, `${path}.${key}`);
    }
  };
  for (const [key, value] of Object.entries(resource)) visit(value, `${resourceType}.${key}`);
  return issues;
}
