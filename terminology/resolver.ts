/**
 * Finds CodeSystem, ValueSet and ConceptMap resources by canonical URL (and version) in the FHIR store, and keeps
 * the models built from them. The store is the single source of truth: a resource written through the REST API
 * is seen by the next operation, because every look-up checks which version is current (one indexed search) and
 * rebuilds a model only when that version changed. In-process callers on the hot path (validation of writes, HL7
 * messages) may accept an answer up to `maxAgeMs` old and skip that search.
 */
import { parseSearchRequest } from '@medplum/core';
import type { CodeSystem, ConceptMap, Resource, ValueSet } from '@medplum/fhirtypes';
import type { Database, FhirRepository } from '../fhir-server';
import { CodeSystemModel, makeConcept, modelFromResource, type ConceptPropertyValue, type Designation } from './model';

export type CanonicalType = 'CodeSystem' | 'ValueSet' | 'ConceptMap';

/** Resources supplied with one request (the `tx-resource` parameter): used before the store's. */
export type Overlay = readonly Resource[];

interface Candidate {
  key: string;
  resource: CodeSystem | ValueSet | ConceptMap;
}

/** Most candidates one canonical URL may have (one per version). */
const MAX_VERSIONS = 50;
/** Models kept in memory; a model of a large code system is tens of megabytes. */
const MAX_MODELS = 300;

/**
 * Whether a requested version matches an actual one: exactly, or with `x` (or `*`) parts as wildcards (1.x.x and
 * 1.x match 1.2.0). A plain shorter version is not a prefix match: `1` names no version of a code system whose
 * versions are 1.0.0 and 1.2.0 (as the HL7 terminology tests expect).
 */
export function versionMatches(requested: string, actual: string): boolean {
  if (requested === actual) {
    return true;
  }
  const want = requested.split('.');
  const have = actual.split('.');
  const wild = (p: string): boolean => p === 'x' || p === '*';
  // A trailing wildcard covers the remaining parts (1.x matches 1.2.0).
  return want.length <= have.length && want.some(wild) && (want.length === have.length || wild(want[want.length - 1])) && want.every((p, i) => wild(p) || p === have[i]);
}

/** Compares version strings, numeric parts numerically: 1.10.0 > 1.9.2. */
export function compareVersions(a: string | undefined, b: string | undefined): number {
  return (a ?? '').localeCompare(b ?? '', 'en', { numeric: true });
}

/**
 * The candidate matching `version`: exactly, else the latest that matches its wildcards. Without a version,
 * the latest, preferring whole code systems to fragments (a loaded LOINC release over the bundled subset).
 */
export function pickVersion<T extends { version?: string; content?: string }>(candidates: T[], version: string | undefined): T | undefined {
  if (version) {
    return (
      candidates.find((c) => c.version === version) ??
      candidates
        .filter((c) => c.version !== undefined && versionMatches(version, c.version))
        .sort((a, b) => compareVersions(b.version, a.version))[0]
    );
  }
  const fragment = (c: T): number => (c.content === 'fragment' ? 1 : 0);
  return [...candidates].sort((a, b) => fragment(a) - fragment(b) || compareVersions(b.version, a.version))[0];
}

export function splitCanonical(canonical: string): { url: string; version?: string } {
  const bar = canonical.indexOf('|');
  return bar < 0 ? { url: canonical } : { url: canonical.slice(0, bar), version: canonical.slice(bar + 1) || undefined };
}

export class ResourceResolver {
  private readonly found = new Map<string, { at: number; candidates: Candidate[] }>();
  private readonly parsed = new Map<string, Candidate['resource']>();
  private readonly models = new Map<string, CodeSystemModel>();

  constructor(
    private readonly repo: FhirRepository,
    private readonly db: Database,
  ) {}

  /** Forget what was found, e.g. after a loader wrote resources. */
  invalidate(): void {
    this.found.clear();
  }

  /** Every version of the resources with this canonical URL, from the overlay and the store. */
  async findAll<T extends Candidate['resource']>(type: CanonicalType, url: string, overlay: Overlay = [], maxAgeMs = 0): Promise<T[]> {
    const local = overlay.filter((r): r is T => r.resourceType === type && (r as T).url === url);
    const stored = await this.stored(type, url, maxAgeMs);
    // A supplied resource replaces a stored one of the same version.
    const versions = new Set(local.map((r) => r.version ?? ''));
    return [...local, ...(stored.map((c) => c.resource) as T[]).filter((r) => !versions.has(r.version ?? ''))];
  }

  async find<T extends Candidate['resource']>(type: CanonicalType, canonical: string, overlay: Overlay = [], maxAgeMs = 0): Promise<T | undefined> {
    const { url, version } = splitCanonical(canonical);
    return pickVersion(await this.findAll<T>(type, url, overlay, maxAgeMs), version);
  }

  /** The model of a code system version; concepts of a `not-present` code system come from tx_concept. */
  async model(codeSystem: CodeSystem): Promise<CodeSystemModel> {
    const key = codeSystem.meta?.versionId && codeSystem.id ? `${codeSystem.id}/${codeSystem.meta.versionId}` : undefined;
    const cached = key ? this.models.get(key) : undefined;
    if (cached) {
      return cached;
    }
    const model = codeSystem.content === 'not-present' ? await this.modelFromTables(codeSystem) : modelFromResource(codeSystem);
    if (key) {
      if (this.models.size >= MAX_MODELS) {
        this.models.delete(this.models.keys().next().value as string);
      }
      this.models.set(key, model);
    }
    return model;
  }

  /** ConceptMaps in the store whose groups map from (or, reversed, to) `system`. */
  async conceptMapsFor(system: string, reverse: boolean, overlay: Overlay = [], maxAgeMs = 0): Promise<ConceptMap[]> {
    const param = reverse ? 'target-system' : 'source-system';
    const cacheKey = `ConceptMap ${param} ${system}`;
    const hit = this.found.get(cacheKey);
    let stored: ConceptMap[];
    if (hit && maxAgeMs > 0 && Date.now() - hit.at < maxAgeMs) {
      stored = hit.candidates.map((c) => c.resource as ConceptMap);
    } else {
      const page = await this.repo.search(parseSearchRequest('ConceptMap', { [param]: system }), { count: 100, offset: 0 });
      const candidates = page.rows.map((row) => {
        const versionId = /"versionId":"([^"]+)"/.exec(row.content.slice(0, 400))?.[1] ?? '';
        const key = `ConceptMap/${row.id}/${versionId}`;
        return { key, resource: this.parse<ConceptMap>(key, row.content) };
      });
      this.found.set(cacheKey, { at: Date.now(), candidates });
      stored = candidates.map((c) => c.resource);
    }
    const local = overlay.filter((r): r is ConceptMap => r.resourceType === 'ConceptMap');
    return [...local, ...stored];
  }

  private async stored(type: CanonicalType, url: string, maxAgeMs: number): Promise<Candidate[]> {
    const cacheKey = `${type} ${url}`;
    const hit = this.found.get(cacheKey);
    if (hit && maxAgeMs > 0 && Date.now() - hit.at < maxAgeMs) {
      return hit.candidates;
    }
    const page = await this.repo.search(parseSearchRequest(type, { url }), { count: MAX_VERSIONS, offset: 0 });
    const candidates = page.rows.map((row) => {
      // The store writes meta (with versionId) right after id, so this reads it without parsing the whole text.
      const versionId = /"versionId":"([^"]+)"/.exec(row.content.slice(0, 400))?.[1] ?? '';
      const key = `${type}/${row.id}/${versionId}`;
      return { key, resource: this.parse(key, row.content) };
    });
    if (this.found.size > 10_000) {
      this.found.clear();
    }
    this.found.set(cacheKey, { at: Date.now(), candidates });
    return candidates;
  }

  private parse<T extends Candidate['resource']>(key: string, text: string): T {
    const cached = this.parsed.get(key);
    if (cached) {
      return cached as T;
    }
    const resource = JSON.parse(text) as T;
    if (this.parsed.size > 5000) {
      this.parsed.clear();
    }
    this.parsed.set(key, resource);
    return resource;
  }

  private async modelFromTables(codeSystem: CodeSystem): Promise<CodeSystemModel> {
    const { concept: _none, ...metadata } = codeSystem;
    const model = new CodeSystemModel(metadata as CodeSystem);
    const rows = await this.db.query<{
      code: string;
      display: string | null;
      definition: string | null;
      inactive: boolean;
      abstract: boolean;
      parents: string[];
      designations: string;
      properties: string;
    }>(
      `SELECT code, display, definition, inactive, abstract, parents, designations, properties
         FROM tx_concept WHERE system_url = $1 AND system_version = $2`,
      [codeSystem.url, codeSystem.version ?? ''],
    );
    for (const row of rows) {
      model.add(
        makeConcept({
          code: row.code,
          display: row.display ?? undefined,
          definition: row.definition ?? undefined,
          inactive: row.inactive,
          abstract: row.abstract,
          parents: row.parents,
          designations: JSON.parse(row.designations) as Designation[],
          properties: JSON.parse(row.properties) as ConceptPropertyValue[],
        })
      );
    }
    model.link();
    return model;
  }
}
