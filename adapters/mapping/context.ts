/**
 * What every mapping works with: the parsed message, the sending facility, the write session of the message's
 * one transaction, the code translator, and helpers for upserts by identifier (conditional writes) that remember
 * what this message already wrote, so that a practitioner named twice is written once.
 */
import type { Reference, Resource } from '@medplum/fhirtypes';
import type { FhirRepository, WriteSession } from '../../fhir-server';
import type { Facility } from '../facilities';
import type { Hl7Message } from '../hl7/message';
import type { CodeTranslator } from '../translator';

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

export class MessageWriter {
  private readonly byCondition = new Map<string, Reference>();
  /** `Type/id` of every resource written (created or updated) by this message. */
  readonly written: string[] = [];

  constructor(
    private readonly session: WriteSession,
    private readonly repo: FhirRepository,
    private readonly source: string,
  ) {}

  private stamp<T extends Resource>(resource: T): T {
    return { ...resource, meta: { ...resource.meta, source: this.source } };
  }

  /**
   * Conditional update (`PUT Type?identifier=…`): creates the resource or replaces the one that matches.
   * 'create-if-none' is a conditional create: an existing match is left as it is (a result must not overwrite the
   * demographics an ADT feed keeps).
   */
  async put<T extends Resource>(resource: T, condition: string, mode: Mode = 'upsert'): Promise<Ref> {
    const key = `${resource.resourceType}?${condition}`;
    const known = this.byCondition.get(key);
    if (known) return known;
    const outcome =
      mode === 'upsert'
        ? await this.session.conditionalUpdate(resource.resourceType, condition, this.stamp(resource))
        : await this.session.conditionalCreate(this.stamp(resource), condition);
    const ref = { reference: `${resource.resourceType}/${outcome.resource.id}` };
    if (mode === 'upsert' || outcome.created) this.written.push(ref.reference);
    this.byCondition.set(key, ref);
    return ref;
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
