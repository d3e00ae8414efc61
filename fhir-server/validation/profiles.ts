/**
 * Step 3: @medplum/core's validator (cardinality, primitive formats, invariants, slicing, fixed/pattern values)
 * against the base StructureDefinition, every registered or core profile the resource claims in meta.profile,
 * and the vital-signs profile an Observation's code implies (core-profiles.ts).
 */
import {
  getAllDataTypes,
  loadDataType,
  normalizeErrorString,
  OperationOutcomeError,
  tryGetProfile,
  validateResource,
  validateTypedValue,
  type InternalTypeSchema,
} from '@medplum/core';
import type { OperationOutcomeIssue, Resource, StructureDefinition } from '@medplum/fhirtypes';
import { getCoreProfile, impliedProfile } from './core-profiles';
import { makeIssue } from './issues';

const profiles = new Map<string, StructureDefinition>();
/** Parsed profiles by URL. Parsing a profile snapshot costs ~8 ms, so it is done once per profile. */
const parsed = new Map<string, InternalTypeSchema>();

export function getRegisteredProfile(url: string): StructureDefinition | undefined {
  return profiles.get(url);
}

export function registerProfile(profile: StructureDefinition): void {
  if (!profile.url || !profile.snapshot?.element?.length) {
    throw new Error(`Profile ${profile.url ?? profile.id ?? '(no url)'} needs a url and a snapshot to be registered`);
  }
  profiles.set(profile.url, profile);
  parsed.delete(profile.url);
}

function getParsedProfile(url: string, profile: StructureDefinition): InternalTypeSchema | undefined {
  let schema = parsed.get(url);
  if (!schema) {
    // Also makes the profile known to @medplum/core by URL, so elements typed with it resolve during validation.
    loadDataType(profile);
    schema = tryGetProfile(url);
    if (schema) {
      parsed.set(url, schema);
    }
  }
  return schema;
}

/**
 * `validateResource` returns warnings when the resource is valid but throws an OperationOutcomeError carrying
 * every issue (errors and warnings) as soon as there is an error. Any other exception means the validator itself
 * choked on the input; it becomes one error issue rather than a crash of the write.
 */
function collectIssues(run: () => OperationOutcomeIssue[], against: string): OperationOutcomeIssue[] {
  try {
    return run();
  } catch (err) {
    if (err instanceof OperationOutcomeError) {
      return err.outcome.issue ?? [];
    }
    return [makeIssue('error', 'exception', `Could not validate against ${against}: ${normalizeErrorString(err)}`)];
  }
}

/**
 * Validates against an already parsed profile. `validateResource(resource, { profile })` would re-parse the
 * snapshot on every call; `validateTypedValue` looks its schema up by type name instead, so the parsed profile is
 * registered under a private name for the duration of this (synchronous) call only, never visible to other code.
 */
function validateWithProfile(resource: Resource, url: string, schema: InternalTypeSchema): OperationOutcomeIssue[] {
  const registry = getAllDataTypes();
  const key = `huimin-validation-profile:${url}`;
  registry[key] = schema;
  try {
    return collectIssues(() => validateTypedValue({ type: key, value: resource }), `profile ${url}`);
  } finally {
    delete registry[key];
  }
}

/**
 * Issues from the base definition, each claimed profile (unknown profiles yield a warning, not a check) and the
 * vital-signs profile implied by an Observation's code.
 */
export function validateAgainstDefinitions(resource: Resource): OperationOutcomeIssue[] {
  const issues = collectIssues(() => validateResource(resource), resource.resourceType);
  const urls = new Set((resource.meta?.profile ?? []).map((canonical) => canonical.split('|')[0]));
  const implied = impliedProfile(resource);
  if (implied) {
    urls.add(implied);
  }
  const at = `${resource.resourceType}.meta.profile`;
  for (const url of urls) {
    const profile = profiles.get(url) ?? getCoreProfile(url);
    if (!profile) {
      issues.push(makeIssue('warning', 'not-supported', `Profile ${url} is not known to this server and was not checked`, at));
      continue;
    }
    if (profile.type !== resource.resourceType) {
      issues.push(makeIssue('error', 'invalid', `Profile ${url} constrains ${profile.type}, not ${resource.resourceType}`, at));
      continue;
    }
    const schema = getParsedProfile(url, profile);
    if (schema) {
      issues.push(...validateWithProfile(resource, url, schema));
    }
  }
  return issues;
}
