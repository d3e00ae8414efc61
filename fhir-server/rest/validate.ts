/**
 * `$validate` at type and instance level (modes create and update): the same validation a write gets, without
 * storing anything. Answers 200 with an OperationOutcome whether or not the resource is valid.
 */
import type { Parameters, Resource } from '@medplum/fhirtypes';
import { badRequest, notSupported, outcome } from '../errors';
import { validateResourceForWrite } from '../validation';
import type { FhirRequest, FhirResponse, RouteContext } from './types';

function resourceAndMode(body: unknown): { resource: unknown; mode?: string } {
  const b = body as Resource | undefined;
  if (b?.resourceType === 'Parameters') {
    const params = (b as Parameters).parameter ?? [];
    return {
      resource: params.find((p) => p.name === 'resource')?.resource,
      mode: params.find((p) => p.name === 'mode')?.valueCode,
    };
  }
  return { resource: body };
}

export async function validateOperation(ctx: RouteContext, request: FhirRequest, type: string, id?: string): Promise<FhirResponse> {
  const { resource, mode = id ? 'update' : 'create' } = resourceAndMode(request.body);
  if (mode === 'delete') {
    throw notSupported(400, '$validate mode "delete" is not supported; a DELETE answers 409 with the referencing resources when a delete is refused');
  }
  if (mode !== 'create' && mode !== 'update') {
    throw badRequest(`$validate mode must be create or update, got "${mode}"`);
  }
  if (typeof resource !== 'object' || resource === null) {
    throw badRequest('$validate needs a resource: the body itself, or a Parameters with a "resource" parameter');
  }
  const typed = resource as Resource;
  if (typed.resourceType !== type) {
    throw badRequest(`The resource's type "${String(typed.resourceType)}" does not match the URL's type "${type}"`);
  }
  const issues = validateResourceForWrite(resource);
  if (mode === 'update') {
    if (!typed.id) {
      issues.push({ severity: 'error', code: 'required', diagnostics: 'An update needs the resource id', expression: [`${type}.id`] });
    } else if (id && typed.id !== id) {
      issues.push({ severity: 'error', code: 'invalid', diagnostics: `The resource id "${typed.id}" does not match the URL's id "${id}"`, expression: [`${type}.id`] });
    }
  }
  if (id) {
    await ctx.repo.read(type, id, ctx.session?.tx);
  }
  if (issues.length === 0) {
    issues.push({ severity: 'information', code: 'informational', diagnostics: 'Validation passed: no errors or warnings' });
  }
  return { status: 200, body: outcome(issues) };
}
