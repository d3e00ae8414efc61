/**
 * Corrections for @medplum/core validator findings that contradict the R4 specification. Each rule names the
 * message it corrects and checks the offending value itself, so a genuine problem is still reported.
 */
import type { OperationOutcomeIssue } from '@medplum/fhirtypes';
import { isPlainObject } from './issues';

/** R4's base64Binary regex: groups of four base64 characters, whitespace allowed around them. */
const R4_BASE64 = /^(\s*([0-9a-zA-Z+/=]){4}\s*)+$/;

/** The value at a FHIRPath-style expression such as `Media.content.data` or `Bundle.entry[0].resource.id`. */
function valueAt(resource: Record<string, unknown>, expression: string): unknown {
  let current: unknown = resource;
  for (const step of expression.split('.').slice(1)) {
    const match = /^([^[]+)(?:\[(\d+)\])?$/.exec(step);
    if (!match || !isPlainObject(current)) {
      return undefined;
    }
    current = current[match[1]];
    if (match[2] !== undefined) {
      current = Array.isArray(current) ? current[Number(match[2])] : undefined;
    }
  }
  return current;
}

/** @medplum/core rejects base64 with line breaks or spaces between groups, which R4 allows (and PDFs often have). */
function isFalseBase64Error(resource: Record<string, unknown>, issue: OperationOutcomeIssue): boolean {
  const at = issue.expression?.[0];
  if (issue.details?.text !== 'Invalid base64Binary format' || !at) {
    return false;
  }
  const value = valueAt(resource, at);
  return typeof value === 'string' && R4_BASE64.test(value);
}

export function dropFalsePositives(
  resource: Record<string, unknown>,
  issues: OperationOutcomeIssue[]
): OperationOutcomeIssue[] {
  return issues.filter((issue) => !isFalseBase64Error(resource, issue));
}
