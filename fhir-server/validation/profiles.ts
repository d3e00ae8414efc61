/**
 * Step 3: @medplum/core's `validateResource` (cardinality, primitive formats, invariants, slicing, fixed/pattern
 * values) against the base StructureDefinition and against every registered profile the resource claims.
 */
import { loadDataType, OperationOutcomeError, normalizeErrorString, validateResource } from '@medplum/core';
import type { OperationOutcomeIssue, Resource, StructureDefinition } from '@medplum/fhirtypes';
import { makeIssue } from './issues';

const profiles = new Map<string, StructureDefinition>();

export function registerProfile(profile: StructureDefinition): void {
  if (!profile.url || !profile.snapshot?.element?.length) {
    throw new Error(`Profile ${profile.url ?? profile.id ?? '(no url)'} needs a url and a snapshot to be registered`);
  }
  // Also known to @medplum/core by URL, so elements typed with this profile resolve during validation.
  loadDataType(profile);
  profiles.set(profile.url, profile);
}

/**
 * Runs `validateResource`, which returns warnings when the resource is valid but throws an OperationOutcomeError
 * carrying every issue (errors and warnings) as soon as there is an error. Any other exception means the
 * validator itself choked on the input; it becomes one error issue rather than a crash of the write.
 */
function runValidator(resource: Resource, profile?: StructureDefinition): OperationOutcomeIssue[] {
  try {
    return validateResource(resource, profile ? { profile } : undefined);
  } catch (err) {
    if (err instanceof OperationOutcomeError) {
      return err.outcome.issue ?? [];
    }
    const against = profile ? `profile ${profile.url}` : `${resource.resourceType}`;
    return [makeIssue('error', 'exception', `Could not validate against ${against}: ${normalizeErrorString(err)}`)];
  }
}

/** Issues from the base definition and each claimed profile (unknown profiles yield a warning, not a check). */
export function validateAgainstDefinitions(resource: Resource): OperationOutcomeIssue[] {
  const issues = runValidator(resource);
  for (const canonical of resource.meta?.profile ?? []) {
    const url = canonical.split('|')[0];
    const profile = profiles.get(url);
    if (!profile) {
      issues.push(
        makeIssue('warning', 'not-supported', `Profile ${url} is not known to this server and was not checked`, `${resource.resourceType}.meta.profile`)
      );
      continue;
    }
    if (profile.type !== resource.resourceType) {
      issues.push(
        makeIssue('error', 'invalid', `Profile ${url} constrains ${profile.type}, not ${resource.resourceType}`, `${resource.resourceType}.meta.profile`)
      );
      continue;
    }
    issues.push(...runValidator(resource, profile));
  }
  return issues;
}
