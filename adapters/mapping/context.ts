/**
 * What every mapping works with: the parsed message, the sending facility, the write session of the message's
 * one transaction, the code translator, and helpers for upserts by identifier (conditional writes) that remember
 * what this message already wrote, so that a practitioner named twice is written once.
 */
import { createHash } from 'node:crypto';
import { parseSearchRequest } from '@medplum/core';
import type { Identifier, Reference, Resource } from '@medplum/fhirtypes';
import { FhirError, type FhirRepository, type WriteSession } from '../../fhir-server';
import type { Facility } from '../facilities';
import type { Problem } from '../hl7/problems';
import type { Hl7Message } from '../hl7/message';
import type { CodeTranslator } from '../translator';
import { identifierQuery } from './datatypes';
import type { PatientDirectory } from '../patient-directory';

/** A reference to something this message wrote (typed loosely: it fits any reference field). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Ref = Reference<any>;

export interface MappingContext {
  message: Hl7Message;
  facility: Facility;
  session: WriteSession;
  repo: FhirRepository;
  translator: CodeTranslator;
  /** meta.source of everything this message writes: names the facility and the message. */
  source: string;
  /** MSH-7, the time the sender created the message. */
  messageTime: Date;
  writer: MessageWriter;
}

type Mode = 'upsert' | 'create-if-none';

/**
 * The id of a resource the adapters own, derived from its identifier. Resources whose identifier is in one of a
 * facility's own systems (`urn:huimin:hl7:<facility>:visit`, `…:observation`, …) are written only by the adapters, so
 * the identifier can name the id: an upsert is then one update-as-create (one locked read) instead of a
 * conditional write (advisory lock, search, locked read), and two racing messages still meet on the primary key.
 */
export function ownedId(resourceType: string, identifier: Identifier): string {
  return `h7-${createHash('sha256').update(`${resourceType}|${identifier.system}|${identifier.value}`).digest('hex').slice(0, 40)}`;
}

export class MessageWriter {
  private readonly byKey = new Map<string, Ref>();
  /** Owned ids known (from prefetch) not to exist yet: created without a locked read. */
  private readonly absent = new Set<string>();
  /** `Type/id` of every resource written (created or updated) by this message. */
  readonly written: string[] = [];

  constructor(
    private readonly session: WriteSession,
    private readonly repo: FhirRepository,
    private readonly source: string,
    /** Identifier systems under this prefix belong to the adapters (see ownedId). */
    private readonly ownedSystems: string,
    /** Patients seen recently (identifier → id); undefined to always ask the store. */
    private readonly patients?: PatientDirectory,
  ) {}

  /** Patient identifiers → ids this message wrote or found, for the directory once the message is committed. */
  readonly learnedPatients = new Map<string, string>();
  /** Directory entries this message relied on. */
  readonly usedPatients = new Set<string>();
  /** What the message sent that was kept out without refusing it: ERR segments of severity W in the AA. */
  readonly warnings: Problem[] = [];

  private stamp<T extends Resource>(resource: T): T {
    return { ...resource, meta: { ...resource.meta, source: this.source } };
  }

  /**
   * Upsert by identifier: creates the resource or replaces the one with this identifier. 'create-if-none' leaves
   * an existing one as it is (a result must not overwrite the demographics an ADT feed keeps). Patients, whose
   * identifiers other writers (the API, the MPI) use too, go through conditional writes (`PUT Patient?identifier=…`,
   * `If-None-Exist`); the adapters' own resources through their identifier-derived id.
   */
  async put<T extends Resource>(resource: T, identifier: Identifier, mode: Mode = 'upsert'): Promise<Ref> {
    const key = `${resource.resourceType}|${identifier.system}|${identifier.value}`;
    const known = this.byKey.get(key);
    if (known) return known;
    let ref: { reference: string };
    if (resource.resourceType !== 'Patient' && identifier.system?.startsWith(this.ownedSystems)) {
      const id = ownedId(resource.resourceType, identifier);
      ref = { reference: `${resource.resourceType}/${id}` };
      if (this.absent.delete(ref.reference)) {
        await this.session.create(this.stamp({ ...resource, id }), id);
        this.written.push(ref.reference);
      } else {
        const exists = mode === 'create-if-none' && (await this.repo.read(resource.resourceType, id, this.session.tx).then(() => true, () => false));
        if (!exists) {
          await this.session.update(resource.resourceType, id, this.stamp({ ...resource, id }));
          this.written.push(ref.reference);
        }
      }
    } else if (resource.resourceType === 'Patient' && mode === 'create-if-none' && this.patients?.get(key)) {
      ref = { reference: `Patient/${this.patients.get(key)}` };
      this.usedPatients.add(key);
    } else {
      const condition = identifierQuery(identifier);
      const outcome =
        mode === 'upsert'
          ? await this.session.conditionalUpdate(resource.resourceType, condition, this.stamp(resource))
          : await this.session.conditionalCreate(this.stamp(resource), condition);
      ref = { reference: `${resource.resourceType}/${outcome.resource.id}` };
      if (mode === 'upsert' || outcome.created) this.written.push(ref.reference);
      if (resource.resourceType === 'Patient') this.learnedPatients.set(key, outcome.resource.id as string);
    }
    this.byKey.set(key, ref);
    return ref;
  }

  /**
   * Looks up in one search which of these owned resources exist already, so that the new ones (a laboratory's
   * results, mostly) are created without a locked read each. A concurrent creation of the same id still meets
   * the primary key, and the message's transaction is retried.
   */
  async prefetch(resourceType: string, identifiers: Identifier[]): Promise<void> {
    const ids = identifiers.filter((i) => i.system?.startsWith(this.ownedSystems)).map((i) => ownedId(resourceType, i));
    if (ids.length < 2) return;
    const page = await this.repo.search(parseSearchRequest(resourceType, { _id: ids.join(','), _elements: 'id' }), { count: ids.length, offset: 0 }, this.session.tx);
    const found = new Set(page.rows.map((r) => r.id));
    ids.filter((id) => !found.has(id)).forEach((id) => this.absent.add(`${resourceType}/${id}`));
  }

  /**
   * The stored version of a resource the adapters own (by its identifier), read in this transaction; undefined
   * when it does not exist yet.
   */
  async current<T extends Resource>(resourceType: string, identifier: Identifier): Promise<T | undefined> {
    const id = ownedId(resourceType, identifier);
    if (!identifier.system?.startsWith(this.ownedSystems) || this.absent.has(`${resourceType}/${id}`)) {
      return undefined;
    }
    try {
      return JSON.parse((await this.repo.read(resourceType, id, this.session.tx)).json) as T;
    } catch (err) {
      // Never written (404): created without another (locked) read, as after prefetch. Deleted (410): the ordinary
      // update re-creates it over its deleted row.
      if (err instanceof FhirError && err.status === 404) {
        this.absent.add(`${resourceType}/${id}`);
        return undefined;
      }
      if (err instanceof FhirError && err.status === 410) return undefined;
      throw err;
    }
  }

  /** A resource with no identifier to upsert on. */
  async create<T extends Resource>(resource: T): Promise<Ref> {
    const created = await this.session.create(this.stamp(resource));
    const ref = { reference: `${resource.resourceType}/${created.id}` };
    this.written.push(ref.reference);
    return ref;
  }

  /** Updates a resource read earlier in this transaction (merges). */
  async update<T extends Resource>(resource: T & { id: string }): Promise<Ref> {
    await this.session.update(resource.resourceType, resource.id, this.stamp(resource));
    const ref = { reference: `${resource.resourceType}/${resource.id}` };
    this.written.push(ref.reference);
    return ref;
  }

  /** The one resource a condition matches, read under the conditional-write lock; undefined when none. */
  async findOne<T extends Resource>(resourceType: T['resourceType'], condition: string): Promise<T | undefined> {
    const ids = await this.session.findUnderLock(resourceType, condition);
    if (ids.length !== 1) return undefined;
    const stored = await this.repo.read(resourceType, ids[0], this.session.tx);
    return JSON.parse(stored.json) as T;
  }
}
