/**
 * Rules on data types that the R4 JSON schema cannot express and @medplum/core's validator does not check, all
 * of which the reference Java validator enforces: Attachment.size must match the inline data, a Period must not
 * end before it starts (per-1), and a Narrative must be safe XHTML (narrative.ts).
 */
import type { OperationOutcomeIssue } from '@medplum/fhirtypes';
import { makeIssue } from './issues';
import { checkNarrativeDiv } from './narrative';

function checkAttachment(value: Record<string, unknown>, path: string, issues: OperationOutcomeIssue[]): void {
  if (typeof value.data !== 'string' || typeof value.size !== 'number') {
    return;
  }
  const actual = Buffer.from(value.data, 'base64').length;
  if (actual !== value.size) {
    issues.push(
      makeIssue(
        'error',
        'value',
        `${path}.size is ${value.size} but the attached data is ${actual} bytes`,
        `${path}.size`
      )
    );
  }
}

/**
 * per-1 is `start <= end` in FHIRPath. Full date-times compare as instants. Otherwise FHIRPath compares at the
 * common precision and, when the values agree there but differ in precision (2023-06-21 vs 2023-06-21T06:20Z),
 * the result is empty, which does not satisfy the invariant: the reference validator reports those too.
 */
function periodIsOrdered(start: string, end: string): boolean {
  if (start.includes('T') && end.includes('T')) {
    const [a, b] = [Date.parse(start), Date.parse(end)];
    return Number.isNaN(a) || Number.isNaN(b) || a <= b;
  }
  const startDate = start.slice(0, 10);
  const endDate = end.slice(0, 10);
  const common = Math.min(startDate.length, endDate.length);
  const [a, b] = [startDate.slice(0, common), endDate.slice(0, common)];
  if (a !== b) {
    return a < b;
  }
  return start.length === end.length;
}

function checkPeriod(value: Record<string, unknown>, path: string, issues: OperationOutcomeIssue[]): void {
  const { start, end } = value;
  if (typeof start === 'string' && typeof end === 'string' && !periodIsOrdered(start, end)) {
    issues.push(
      makeIssue('error', 'invariant', `${path}: start (${start}) must not be after end (${end}) (per-1)`, path)
    );
  }
}

export function checkDatatype(
  type: string,
  value: Record<string, unknown>,
  path: string,
  issues: OperationOutcomeIssue[]
) {
  switch (type) {
    case 'Attachment':
      checkAttachment(value, path, issues);
      break;
    case 'Period':
      checkPeriod(value, path, issues);
      break;
    case 'Narrative':
      if (typeof value.div === 'string') {
        checkNarrativeDiv(value.div, `${path}.div`, issues);
      }
      break;
    default:
      break;
  }
}
