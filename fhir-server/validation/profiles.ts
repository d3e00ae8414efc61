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
import { checkProfileBindings } from './bindings';
import { getCoreProfile, impliedProfile } from './core-profiles';
import { makeIssue } from './issues';
import { dropFalsePositives } from './medplum-quirks';
import { snapshotFromDifferential } from './snapshot';

const profiles = new Map<string, StructureDefinition>();
/**
 * A required slice inside a slice (e.g. bp's `component:SystolicBP.code.coding:SBPCode`). @medplum/core parses
 * such a nested slice as a sibling of the outer slices, so it matches no value and every resource fails with
 * "Incorrect number of values provided for slice ...". Such profiles are not run through @medplum/core.
 */
const NESTED_SLICE = /:[^.]+\..*:[^.]+$/;
const unsupported = new Map<string, boolean>();

function hasRequiredNestedSlice(url: string, profile: StructureDefinition): boolean {
  let result = unsupported.get(url);
  if (result === undefined) {
    result = (profile.snapshot?.element ?? []).some((e) => !!e.id && NESTED_SLICE.test(e.id) && (e.min ?? 0) > 0);
    unsupported.set(url, result);
  }
  return result;
}

/** Parsed profiles by URL. Parsing a profile snapshot costs ~8 ms, so it is done once per profile. */
const parsed = new Map<string, InternalTypeSchema>();

/** Counts registrations, so that caches of what is known (extensions.ts) can tell they are stale. */
let registrations = 0;

export function profilesRegistered(): number {
  return registrations;
}

/** The registered constraint profiles of a resource type (the CapabilityStatement's supportedProfile). */
export function registeredProfilesOf(resourceType: string): string[] {
  return [...profiles.values()].filter((p) => p.type === resourceType && p.kind === 'resource').map((p) => p.url as string).sort();
}

export function getRegisteredProfile(url: string): StructureDefinition | undefined {
  return profiles.get(url);
}

/** Parses a complete profile once; @medplum/core then also resolves elements typed with it by URL. */
function parseProfile(url: string, profile: StructureDefinition): InternalTypeSchema | undefined {
  // @medplum/core files parsed definitions by name, which a profile may lack; any label will do.
  loadDataType(profile.name ? profile : { ...profile, name: url });
  const schema = tryGetProfile(url);
  if (schema) {
    parsed.set(url, schema);
  }
  return schema;
}

/**
 * Registers a profile by its url. It needs a snapshot, or a differential simple enough for snapshot.ts to derive
 * one, and @medplum/core must be able to parse it; otherwise this throws, as silently accepting a profile we
 * cannot check would be misleading.
 */
export function registerProfile(profile: StructureDefinition): void {
  const complete = profile.snapshot?.element?.length ? profile : snapshotFromDifferential(profile);
  if (!profile.url || !complete) {
    throw new Error(`Profile ${profile.url ?? profile.id ?? '(no url)'} needs a url and a snapshot to be registered`);
  }
  // @medplum/core files a definition whose url is a base type's in place of that base type, for every caller.
  if (
    profile.derivation !== 'constraint' ||
    profile.url === `http://hl7.org/fhir/StructureDefinition/${profile.type}`
  ) {
    throw new Error(`${profile.url} is not a profile (derivation "constraint" of a base type)`);
  }
  if (!parseProfile(profile.url, complete)) {
    throw new Error(`Profile ${profile.url} could not be parsed`);
  }
  profiles.set(profile.url, complete);
  unsupported.delete(profile.url);
  registrations++;
}

/** The parsed registered profile, or the core one (parsed on first use). */
function getParsedProfile(url: string, profile: StructureDefinition): InternalTypeSchema | undefined {
  return parsed.get(url) ?? parseProfile(url, profile);
}

/**
 * `validateResource` returns warnings when the resource is valid but throws an OperationOutcomeError carrying
 * every issue (errors and warnings) as soon as there is an error. Any other exception means the validator itself
 * choked on the input; it becomes one error issue rather than a crash of the write.
 */
function collectIssues(
  resource: Resource,
  run: () => OperationOutcomeIssue[],
  against: string
): OperationOutcomeIssue[] {
  try {
    return run();
  } catch (err) {
    if (err instanceof OperationOutcomeError) {
      return dropFalsePositives(resource as unknown as Record<string, unknown>, err.outcome.issue ?? []);
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
    return collectIssues(resource, () => validateTypedValue({ type: key, value: resource }), `profile ${url}`);
  } finally {
    delete registry[key];
  }
}

/**
 * How a violation of a profile the resource does not claim, but that R4 implies (the vital-signs profiles implied
 * by an Observation's LOINC code), is reported. The reference validator reports errors; a regional platform must
 * not refuse a hospital's result because its category coding is imperfect, so writes get warnings by default.
 */
export type ImpliedProfileSeverity = 'error' | 'warning';

/**
 * Issues from the base definition, each claimed profile (unknown profiles yield a warning, not a check) and the
 * vital-signs profile implied by an Observation's code.
 */
export function validateAgainstDefinitions(resource: Resource, impliedSeverity: ImpliedProfileSeverity = 'warning'): OperationOutcomeIssue[] {
  const issues = collectIssues(resource, () => validateResource(resource), resource.resourceType);
  const urls = new Set((resource.meta?.profile ?? []).map((canonical) => canonical.split('|')[0]));
  const implied = impliedProfile(resource);
  const onlyImplied = implied !== undefined && !urls.has(implied);
  if (implied) {
    urls.add(implied);
  }
  const at = `${resource.resourceType}.meta.profile`;
  for (const url of urls) {
    const profile = profiles.get(url) ?? getCoreProfile(url);
    if (!profile) {
      issues.push(
        makeIssue('warning', 'not-supported', `Profile ${url} is not known to this server and was not checked`, at)
      );
      continue;
    }
    if (profile.type !== resource.resourceType) {
      issues.push(
        makeIssue('error', 'invalid', `Profile ${url} constrains ${profile.type}, not ${resource.resourceType}`, at)
      );
      continue;
    }
    if (hasRequiredNestedSlice(url, profile)) {
      const message = `Profile ${url} uses required slices within slices, which this server cannot evaluate; not checked`;
      issues.push(makeIssue('warning', 'not-supported', message, at));
      continue;
    }
    const schema = getParsedProfile(url, profile);
    if (schema) {
      const found = [...validateWithProfile(resource, url, schema), ...checkProfileBindings(resource, schema)];
      issues.push(...(url === implied && onlyImplied && impliedSeverity === 'warning' ? found.map((i) => asImpliedWarning(i, url)) : found));
    }
  }
  return issues;
}

function asImpliedWarning(issue: OperationOutcomeIssue, url: string): OperationOutcomeIssue {
  if (issue.severity !== 'error' && issue.severity !== 'fatal') {
    return issue;
  }
  const text = issue.diagnostics ?? issue.details?.text ?? 'does not conform';
  return { ...issue, severity: 'warning', diagnostics: `${text} (R4 implies profile ${url} for this code; not claimed in meta.profile)` };
}
