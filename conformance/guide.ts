/**
 * The regional implementation guide as read from `conformance/ig/`: the ImplementationGuide resource, the
 * StructureDefinitions (profiles and extensions, snapshots built here from their differentials), the code systems
 * and value sets no other module defines, and the examples with what validating each must give.
 *
 * The files are written with the default canonical base; a deployment with another base (HUIMIN_CANONICAL_BASE)
 * gets every occurrence of it replaced, so the guide is always self-consistent under one base.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { CodeSystem, ImplementationGuide, Resource, StructureDefinition, ValueSet } from '@medplum/fhirtypes';
import { DEFAULT_CANONICAL_BASE } from './config';
import { withSnapshot } from './snapshot';

/** conformance/ig in the sources, also when running from dist/ (tsc copies only the JSON files code imports). */
export const GUIDE_DIR =
  [path.join(__dirname, '..', '..', 'conformance', 'ig'), path.join(__dirname, 'ig')].find(existsSync) ?? path.join(__dirname, 'ig');

export interface GuideExample {
  file: string;
  resource: Resource;
  /** The profile the example claims (meta.profile). */
  profile: string;
  valid: boolean;
  /** For an invalid example: the `expression` of the error validation must report … */
  expression?: string;
  /** … and a text its message must contain (the invariant's key, where the error is an invariant's). */
  message?: string;
}

export interface ImplementationGuideContent {
  canonicalBase: string;
  implementationGuide: ImplementationGuide;
  /** Extensions then profiles, each with a complete snapshot (what the validator needs). */
  structureDefinitions: StructureDefinition[];
  terminology: (CodeSystem | ValueSet)[];
  examples: GuideExample[];
}

interface Expectation {
  file: string;
  profile: string;
  valid: boolean;
  expression?: string;
  message?: string;
}

function readJson<T>(file: string, canonicalBase: string): T {
  const text = readFileSync(file, 'utf8');
  return JSON.parse(canonicalBase === DEFAULT_CANONICAL_BASE ? text : text.replaceAll(DEFAULT_CANONICAL_BASE, () => canonicalBase)) as T;
}

function readFolder<T>(dir: string, folder: string, canonicalBase: string): T[] {
  return readdirSync(path.join(dir, folder))
    .filter((f) => f.endsWith('.json') && f !== 'expectations.json')
    .sort()
    .map((f) => readJson<T>(path.join(dir, folder, f), canonicalBase));
}

export function loadImplementationGuide(canonicalBase: string = DEFAULT_CANONICAL_BASE, dir: string = GUIDE_DIR): ImplementationGuideContent {
  // Extensions first: the profiles' extension slices take their elements from them.
  const extensions = readFolder<StructureDefinition>(dir, 'extensions', canonicalBase).map((sd) => withSnapshot(sd));
  const byUrl = new Map(extensions.map((sd) => [sd.url, sd]));
  const profiles = readFolder<StructureDefinition>(dir, 'profiles', canonicalBase).map((sd) => withSnapshot(sd, (url) => byUrl.get(url)));
  const structureDefinitions = [...extensions, ...profiles];
  const expectations = readJson<Expectation[]>(path.join(dir, 'examples', 'expectations.json'), canonicalBase);
  return {
    canonicalBase,
    implementationGuide: readJson<ImplementationGuide>(path.join(dir, 'ImplementationGuide-huimin.json'), canonicalBase),
    structureDefinitions,
    terminology: readFolder<CodeSystem | ValueSet>(dir, 'terminology', canonicalBase),
    examples: expectations.map((e) => ({ ...e, resource: readJson<Resource>(path.join(dir, 'examples', e.file), canonicalBase) })),
  };
}

/**
 * A StructureDefinition as the store publishes it: the snapshot without the R4 base definitions' own element and
 * type extensions (normative-version, fhir-type …), which describe the base specification, not this profile, and
 * which the store's validator does not allow where the R4 files carry them.
 */
export function publishedDefinition(definition: StructureDefinition): StructureDefinition {
  const element = (definition.snapshot?.element ?? []).map(({ extension: _meta, ...e }) => ({
    ...e,
    ...(e.type ? { type: e.type.map(({ extension: _fhirType, ...t }) => t) } : {}),
  }));
  return { ...definition, snapshot: { element } };
}

/**
 * Every resource the guide writes into the store: definitions and terminology first, the ImplementationGuide last.
 * (A resource a later version of the guide drops stays in the store; delete it by hand if it must go.)
 */
export function guideResources(guide: ImplementationGuideContent): Resource[] {
  return [...guide.structureDefinitions.map(publishedDefinition), ...guide.terminology, guide.implementationGuide];
}
