/**
 * How one member of an expansion is written (ValueSet.expansion.contains), per the $expand parameters that shape it:
 * displayLanguage, includeDesignations with `designation` (which designations), `property` and includeDefinition
 * (which concept properties). R4 has no contains.property: it is written as R5's cross-version extension, as the
 * R4 ↔ R5 conversion of the FHIR tooling does, and the properties' definitions go to expansion's extension.
 */
import type { Extension, ValueSetExpansionContains } from '@medplum/fhirtypes';
import type { CodeSystemModel, Designation } from './model';
import type { ExpansionEntry } from './valueset';

export const CONTAINS_PROPERTY_EXTENSION = 'http://hl7.org/fhir/5.0/StructureDefinition/extension-ValueSet.expansion.contains.property';
export const EXPANSION_PROPERTY_EXTENSION = 'http://hl7.org/fhir/5.0/StructureDefinition/extension-ValueSet.expansion.property';
/** The URI of the properties every code system has (terminology-service.html, "Properties"). */
const STANDARD_PROPERTY_BASE = 'http://hl7.org/fhir/concept-properties#';
const LANGUAGE_SYSTEM = 'urn:ietf:bcp:47';

export interface EntryOptions {
  displayLanguage?: string;
  includeDesignations?: boolean;
  /** `designation` parameters (`urn:ietf:bcp:47|de` for a language, `system|code` for a use): the designations wanted. */
  designations?: string[];
  /** Property codes wanted (`property`; `definition` too with includeDefinition). */
  properties?: string[];
}

/** The display in the requested language, else the concept's own (see displayIn in service.ts). */
export type DisplayIn = (entry: { display?: string; designations: Designation[] }, language: string | undefined, displayLanguage?: string) => string | undefined;

function designationWanted(d: Designation, filters: string[] | undefined): boolean {
  if (!filters?.length) {
    return true;
  }
  return filters.some((f) => {
    const bar = f.indexOf('|');
    const [system, code] = bar < 0 ? [undefined, f] : [f.slice(0, bar), f.slice(bar + 1)];
    if (system === LANGUAGE_SYSTEM || system === undefined) {
      const lang = d.language?.toLowerCase() ?? '';
      if (lang === code.toLowerCase() || lang.startsWith(`${code.toLowerCase()}-`)) {
        return true;
      }
    }
    return d.use?.code === code && (system === undefined || d.use.system === system);
  });
}

/** The value of one property of the entry's concept, as [value[x] suffix, value] pairs. */
function propertyValues(e: ExpansionEntry, code: string): Array<[string, unknown]> {
  const concept = e.concept;
  if (!concept) {
    return [];
  }
  if (code === 'definition') {
    return concept.definition ? [['String', concept.definition]] : [];
  }
  if (code === 'inactive') {
    return [['Boolean', concept.inactive]];
  }
  if (code === 'parent') {
    return concept.parents.map((p) => ['Code', p]);
  }
  if (code === 'child') {
    return concept.children.map((c) => ['Code', c]);
  }
  return concept.properties.filter((p) => p.code === code).map((p) => [p.type.charAt(0).toUpperCase() + p.type.slice(1), p.value]);
}

export function containsEntry(e: ExpansionEntry, options: EntryOptions, displayIn: DisplayIn, language: string | undefined): ValueSetExpansionContains {
  const display = displayIn(e, options.displayLanguage, language);
  const designations: Designation[] = [];
  if (options.includeDesignations) {
    // The code system's own display is a designation in its language too, so that a client that asked for another
    // display language still sees it.
    const base = e.display !== undefined && language && !e.designations.some((d) => d.value === e.display && d.language === language) ? [{ language, value: e.display }] : [];
    designations.push(...[...base, ...e.designations].filter((d) => designationWanted(d, options.designations)));
  }
  const extension: Extension[] = [];
  for (const code of options.properties ?? []) {
    for (const [type, value] of propertyValues(e, code)) {
      extension.push({ url: CONTAINS_PROPERTY_EXTENSION, extension: [{ url: 'code', valueCode: code }, { url: 'value', [`value${type}`]: value } as Extension] });
    }
  }
  return {
    ...(extension.length > 0 ? { extension } : {}),
    system: e.system,
    ...(e.version ? { version: e.version } : {}),
    ...(e.abstract ? { abstract: true } : {}),
    ...(e.inactive ? { inactive: true } : {}),
    code: e.code,
    ...(display !== undefined ? { display } : {}),
    ...(designations.length > 0
      ? { designation: designations.map((d) => ({ ...(d.language ? { language: d.language } : {}), ...(d.use ? { use: d.use } : {}), value: d.value })) }
      : {}),
  };
}

/** expansion.property (as the R5 extension): the code and URI of each property the entries carry. */
export function expansionProperties(codes: string[], models: CodeSystemModel[]): Extension[] {
  return codes.map((code) => {
    const declared = models.map((m) => m.resource.property?.find((p) => p.code === code)).find((p) => p?.uri);
    return {
      url: EXPANSION_PROPERTY_EXTENSION,
      extension: [
        { url: 'code', valueCode: code },
        { url: 'uri', valueUri: declared?.uri ?? `${STANDARD_PROPERTY_BASE}${code}` },
      ],
    };
  });
}

/**
 * excludeNested=false: members whose parent (in the code system's hierarchy) is also a member are written inside
 * it (contains.contains), in expansion order; the others stay at the top. `entries[i]` is written as `contains[i]`.
 */
export function nestByHierarchy(entries: ExpansionEntry[], contains: ValueSetExpansionContains[]): ValueSetExpansionContains[] {
  const key = (system: string, version: string | undefined, code: string): string => `${system}\u0000${version ?? ''}\u0000${code}`;
  const index = new Map<string, number>();
  entries.forEach((e, i) => index.set(key(e.system, e.version, e.code), i));
  const roots: ValueSetExpansionContains[] = [];
  entries.forEach((e, i) => {
    const parent = e.concept?.parents.map((p) => index.get(key(e.system, e.version, p))).find((at): at is number => at !== undefined && at !== i);
    if (parent === undefined) {
      roots.push(contains[i]);
    } else {
      const host = contains[parent];
      host.contains = [...(host.contains ?? []), contains[i]];
    }
  });
  // A cycle in the hierarchy (a polyhierarchy written both ways) would leave members nowhere: keep the flat list.
  const count = (list: ValueSetExpansionContains[]): number => list.reduce((n, c) => n + 1 + count(c.contains ?? []), 0);
  if (count(roots) !== contains.length) {
    contains.forEach((c) => delete c.contains);
    return contains;
  }
  return roots;
}
