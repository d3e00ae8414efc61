/**
 * The two patch formats FHIR defines: JSON Patch (RFC 6902, `application/json-patch+json`) and FHIRPath Patch
 * (a Parameters resource). Both come from @medplum/core; this module turns their failures into OperationOutcomes.
 */
import { applyPatch, fhirpathPatchTypedValue, parseFhirPathPatchParameters, toTypedValue, type Operation } from '@medplum/core';
import type { Parameters, Resource } from '@medplum/fhirtypes';
import { unprocessable } from '../errors';

export type ResourcePatch = { format: 'json-patch'; operations: Operation[] } | { format: 'fhirpath-patch'; parameters: Parameters };

function failed(format: string, message: string): Error {
  return unprocessable([{ severity: 'error', code: 'processing', diagnostics: `${format} failed: ${message}` }]);
}

/** Applies the patch to `resource` in place. */
export function applyResourcePatch(resource: Resource, patch: ResourcePatch): void {
  if (patch.format === 'json-patch') {
    const errors = applyPatch(resource, patch.operations).filter((e) => e !== null);
    if (errors.length > 0) {
      throw unprocessable(
        errors.map((e) => ({ severity: 'error', code: 'processing', diagnostics: `JSON Patch failed: ${e.message}` })),
      );
    }
    return;
  }
  try {
    fhirpathPatchTypedValue(toTypedValue(resource), parseFhirPathPatchParameters(patch.parameters));
  } catch (err) {
    throw failed('FHIRPath Patch', err instanceof Error ? err.message : String(err));
  }
}
