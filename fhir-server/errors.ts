/**
 * Errors that become OperationOutcome responses. Everything the REST layer reports to a client goes through
 * `toOperationOutcome`, so that no stack trace or SQL text ever leaves the server.
 */
import { getStatus, OperationOutcomeError } from '@medplum/core';
import type { OperationOutcome, OperationOutcomeIssue } from '@medplum/fhirtypes';

type IssueType = OperationOutcomeIssue['code'];

export class FhirError extends Error {
  constructor(
    readonly status: number,
    readonly outcome: OperationOutcome,
    /** Headers the answer must carry, e.g. WWW-Authenticate on a 401 or Retry-After on a 429. */
    readonly headers?: Record<string, string>,
  ) {
    super(outcome.issue?.[0]?.diagnostics ?? `HTTP ${status}`);
  }
}

export function outcome(issues: OperationOutcomeIssue[]): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue: issues };
}

export function issue(
  severity: OperationOutcomeIssue['severity'],
  code: IssueType,
  diagnostics: string,
  expression?: string[],
): OperationOutcomeIssue {
  return { severity, code, diagnostics, ...(expression ? { expression } : {}) };
}

function error(status: number, code: IssueType, diagnostics: string, expression?: string[]): FhirError {
  return new FhirError(status, outcome([issue('error', code, diagnostics, expression)]));
}

export const badRequest = (diagnostics: string, expression?: string[]): FhirError =>
  error(400, 'invalid', diagnostics, expression);
export const notFound = (diagnostics: string): FhirError => error(404, 'not-found', diagnostics);
export const gone = (diagnostics: string): FhirError => error(410, 'deleted', diagnostics);
export const forbidden = (diagnostics: string): FhirError => error(403, 'forbidden', diagnostics);
export const conflict = (diagnostics: string): FhirError => error(409, 'conflict', diagnostics);
export const preconditionFailed = (diagnostics: string): FhirError => error(412, 'conflict', diagnostics);
export const notSupported = (status: number, diagnostics: string): FhirError => error(status, 'not-supported', diagnostics);
export const unprocessable = (issues: OperationOutcomeIssue[]): FhirError => new FhirError(422, outcome(issues));

/** The HTTP status and OperationOutcome for any error; `undefined` status means an unexpected bug (500). */
export function describeError(err: unknown): { status: number; outcome: OperationOutcome; unexpected: boolean } {
  if (err instanceof FhirError) {
    return { status: err.status, outcome: err.outcome, unexpected: false };
  }
  if (err instanceof OperationOutcomeError) {
    // @medplum/core puts its message in details.text; clients of this server read diagnostics.
    const issues = (err.outcome.issue ?? []).map((i) => ({ ...i, diagnostics: i.diagnostics ?? i.details?.text }));
    return { status: getStatus(err.outcome), outcome: { ...err.outcome, issue: issues }, unexpected: false };
  }
  return {
    status: 500,
    outcome: outcome([issue('error', 'exception', 'Internal server error; the request id in the response identifies it in the server log')]),
    unexpected: true,
  };
}
