/**
 * The write-time validator. Every create/update runs `validateResourceForWrite`; the caller refuses the write when
 * any returned issue has severity error or fatal. Steps (see docs/validation.md):
 *   1. the value is an object of a known resourceType;
 *   2. structure against the official R4 JSON schema (ajv);
 *   3. @medplum/core's validator against the base StructureDefinition and registered meta.profile profiles;
 *   4. required value-set bindings that can be expanded locally, and rules none of the above check (walk.ts).
 *
 * Writes of resources the platform's own code built (`trustedStructure`: the HL7 adapters' mappings, typed with
 * @medplum/fhirtypes) skip step 3 for the base definition — the costliest step, and one whose structural checks
 * step 2 repeats — unless they claim profiles. Their values, which come from outside (an HL7 message), are still
 * checked: formats, enums and required elements of the schema (2), bindings and rules (4), and the primitive checks
 * of step 3 that the schema does not make (primitive-values.ts). Not checked for them: the base definitions'
 * FHIRPath invariants and required primitive elements, which the building code's types guarantee. Implied
 * vital-signs profiles only ever give warnings on writes, and writes keep errors only: skipped too.
 */
import type { OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import { loadFhirDefinitions } from '../definitions';
import { isErrorIssue, isPlainObject, makeIssue } from './issues';
import { validateAgainstDefinitions, type ImpliedProfileSeverity } from './profiles';
import { isKnownResourceType, validateStructure } from './structure';
import { checkContent } from './walk';
import { checkPrimitiveValues } from './primitive-values';

export { registerProfile, profilesRegistered, registeredProfilesOf } from './profiles';
export { requireDefinedExtensions } from './extensions';
export { registerCodeValidator, type CodeValidator } from './bindings';

/**
 * Steps 2-4 overlap (a missing element or an unknown property is seen by both ajv and @medplum/core, a bad code by
 * the schema's enum and by the binding check). An error is dropped when an earlier step already reported an error
 * at the same location, so the client gets one message per problem: binding and rule messages first (they are
 * the most specific), then the schema's, then @medplum/core's. Several errors of one step at a location stay.
 */
function mergeSteps(steps: OperationOutcomeIssue[][]): OperationOutcomeIssue[] {
  const reported = new Set<string>();
  const result: OperationOutcomeIssue[] = [];
  for (const issues of steps) {
    const kept = issues.filter((issue) => {
      const at = issue.expression?.[0];
      return !at || !isErrorIssue(issue) || !reported.has(at);
    });
    for (const issue of kept) {
      if (issue.expression?.[0] && isErrorIssue(issue)) {
        reported.add(issue.expression[0]);
      }
    }
    result.push(...kept);
  }
  return result;
}

export interface ValidationOptions {
  /** Severity of violations of R4's implied vital-signs profiles (default: warning; the reference validator: error). */
  impliedProfiles?: ImpliedProfileSeverity;
  /** The resource was built by the platform's own typed code (see above); its content may still come from outside. */
  trustedStructure?: boolean;
}

export function validateResourceForWrite(resource: unknown, options: ValidationOptions = {}): OperationOutcomeIssue[] {
  if (!isPlainObject(resource)) {
    const found = Array.isArray(resource) ? 'an array' : resource === null ? 'null' : typeof resource;
    return [makeIssue('error', 'invalid', `A resource must be a JSON object, found ${found}`)];
  }
  const resourceType = resource.resourceType;
  if (typeof resourceType !== 'string' || resourceType === '') {
    return [makeIssue('error', 'invalid', 'The resource has no resourceType property')];
  }
  if (!isKnownResourceType(resourceType)) {
    return [makeIssue('error', 'not-supported', `Unknown resourceType "${resourceType}": not a FHIR R4 resource type`)];
  }
  loadFhirDefinitions();
  const structureIssues = validateStructure(resource, resourceType);
  const claimsProfiles = Array.isArray((resource.meta as Resource['meta'])?.profile) && ((resource.meta as Resource['meta'])?.profile?.length ?? 0) > 0;
  const definitionIssues =
    options.trustedStructure && !claimsProfiles
      ? checkPrimitiveValues(resource, resourceType)
      : validateAgainstDefinitions(resource as unknown as Resource, options.impliedProfiles);
  const contentIssues = checkContent(resource, resourceType);
  return mergeSteps([contentIssues, structureIssues, definitionIssues]);
}
