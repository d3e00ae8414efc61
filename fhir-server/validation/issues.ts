/**
 * Small helpers shared by the validation steps: building OperationOutcome issues and turning JSON paths into the
 * FHIRPath-style expressions that clients expect (`Observation.component[0].code`).
 */
import type { OperationOutcomeIssue } from '@medplum/fhirtypes';

export type IssueSeverity = OperationOutcomeIssue['severity'];
export type IssueCode = OperationOutcomeIssue['code'];

export function makeIssue(
  severity: IssueSeverity,
  code: IssueCode,
  diagnostics: string,
  expression?: string
): OperationOutcomeIssue {
  const issue: OperationOutcomeIssue = { severity, code, details: { text: diagnostics }, diagnostics };
  if (expression) {
    issue.expression = [expression];
  }
  return issue;
}

export function isErrorIssue(issue: OperationOutcomeIssue): boolean {
  return issue.severity === 'error' || issue.severity === 'fatal';
}

/**
 * Converts a JSON pointer (as produced by ajv, e.g. `/component/0/code`) below a resource of type `rootType` into
 * `Observation.component[0].code`. Numeric segments are array indices in FHIR JSON: no FHIR property is a number.
 */
export function pointerToExpression(rootType: string, pointer: string): string {
  let result = rootType;
  if (!pointer) {
    return result;
  }
  for (const raw of pointer.slice(1).split('/')) {
    const segment = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    result += /^\d+$/.test(segment) ? `[${segment}]` : `.${segment}`;
  }
  return result;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
