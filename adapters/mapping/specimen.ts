/**
 * The specimen of an order's results → Specimen (HL7 v2-to-FHIR IG "SPM to Specimen", "OBR to Specimen"):
 * SPM (v2.5 and later) or, when a message has no SPM, OBR-15 specimen source with OBR-7 and OBR-14 (v2.3/2.4, which
 * have no SPM). Recognition compares the specimen types of an order and a prior result, so a result must name its
 * specimen when the sender gives one.
 *
 * Upserted by the specimen's own number (SPM-2 filler, else placer), else by the order number and the SPM set id:
 * a corrected result names the same Specimen again instead of adding one.
 */
import type { CodeableConcept, Identifier, Specimen } from '@medplum/fhirtypes';
import type { Segment } from '../hl7/message';
import type { MappingContext, Ref } from './context';
import { codeableConcept, dateTime, facilityIdentifier } from './datatypes';

const V2_0203 = 'http://terminology.hl7.org/CodeSystem/v2-0203';

export interface SpecimenRefs {
  /** Every specimen of the order, in order (DiagnosticReport.specimen). */
  all: Ref[];
  /** The Specimen of an SPM segment of the group. */
  bySegment: Map<Segment, Ref>;
}

/** SPM-2 (EIP): the placer's and the filler's specimen numbers (each an EI in subcomponents). */
function specimenNumbers(spm: Segment): { placer?: { value: string; namespace: string }; filler?: { value: string; namespace: string } } {
  const eip = spm.field(2);
  const ei = (c: number): { value: string; namespace: string } | undefined => {
    const value = eip.get(c, 1);
    return value ? { value, namespace: eip.get(c, 2) || eip.get(c, 3) } : undefined;
  };
  return { placer: ei(1), filler: ei(2) };
}

function fromSpm(ctx: MappingContext, spm: Segment, subject: Ref, order: { value: string; namespace: string }, position: number): { specimen: Specimen; key: Identifier } {
  const { placer, filler } = specimenNumbers(spm);
  const identifiers: Identifier[] = [];
  if (placer) identifiers.push({ ...facilityIdentifier(ctx.facility, 'specimen-placer', placer.value, placer.namespace), type: { coding: [{ system: V2_0203, code: 'PLAC' }] } });
  if (filler) identifiers.push({ ...facilityIdentifier(ctx.facility, 'specimen-filler', filler.value, filler.namespace), type: { coding: [{ system: V2_0203, code: 'FILL' }] } });
  // Without a specimen number, the order and the SPM set id (SPM-1, else the position) name it.
  const key = filler ? identifiers[identifiers.length - 1] : placer ? identifiers[0] : facilityIdentifier(ctx.facility, 'specimen', `${order.value}-${spm.get(1) || `#${position}`}`, order.namespace);
  if (!placer && !filler) identifiers.push(key);
  const specimen: Specimen = { resourceType: 'Specimen', identifier: identifiers, subject };
  if (filler) specimen.accessionIdentifier = { system: identifiers[identifiers.length - 1].system, value: filler.value };
  const type = codeableConcept(spm.field(4), ctx.facility);
  if (type) specimen.type = type;
  const collection: NonNullable<Specimen['collection']> = {};
  const start = dateTime(spm.get(17, 1), ctx.facility, spm, 17);
  const end = dateTime(spm.get(17, 2), ctx.facility, spm, 17);
  if (start && end && end !== start) collection.collectedPeriod = { start, end };
  else if (start) collection.collectedDateTime = start;
  const method = codeableConcept(spm.field(7), ctx.facility);
  if (method) collection.method = method;
  const site = codeableConcept(spm.field(8), ctx.facility);
  if (site) collection.bodySite = site;
  if (Object.keys(collection).length) specimen.collection = collection;
  const received = dateTime(spm.get(18), ctx.facility, spm, 18);
  if (received) specimen.receivedTime = received;
  const conditions = spm.reps(24).map((r) => codeableConcept(r, ctx.facility)).filter((c): c is CodeableConcept => c !== undefined);
  if (conditions.length) specimen.condition = conditions;
  // SPM-21 reject reason, SPM-20 availability (table 0136).
  if (spm.field(21).get(1) || spm.field(21).get(2)) specimen.status = 'unsatisfactory';
  else if (spm.get(20).toUpperCase() === 'Y') specimen.status = 'available';
  else if (spm.get(20).toUpperCase() === 'N') specimen.status = 'unavailable';
  const description = spm.get(14);
  if (description) specimen.note = [{ text: description }];
  return { specimen, key };
}

/** OBR-15 (SPS: source code in component 1, body site in component 4), OBR-7 collection time, OBR-14 received time. */
function fromObr(ctx: MappingContext, obr: Segment, subject: Ref, order: { value: string; namespace: string }): { specimen: Specimen; key: Identifier } | undefined {
  const sps = obr.field(15);
  const type = codeableConcept(sps.component(1), ctx.facility);
  if (!type) return undefined;
  const key = facilityIdentifier(ctx.facility, 'specimen', `${order.value}-obr-${obr.get(1) || obr.occurrence}`, order.namespace);
  const specimen: Specimen = { resourceType: 'Specimen', identifier: [key], subject, type };
  const collected = dateTime(obr.get(7), ctx.facility, obr, 7);
  const site = codeableConcept(sps.component(4), ctx.facility);
  if (collected || site) specimen.collection = { ...(collected ? { collectedDateTime: collected } : {}), ...(site ? { bodySite: site } : {}) };
  const received = dateTime(obr.get(14), ctx.facility, obr, 14);
  if (received) specimen.receivedTime = received;
  return { specimen, key };
}

/** Writes the specimens of one order group (SPM segments, else OBR-15) in the message's transaction. */
export async function writeSpecimens(ctx: MappingContext, obr: Segment, specimens: Segment[], subject: Ref, order: { value: string; namespace: string }): Promise<SpecimenRefs> {
  const refs: SpecimenRefs = { all: [], bySegment: new Map() };
  if (specimens.length) {
    for (const [index, spm] of specimens.entries()) {
      const { specimen, key } = fromSpm(ctx, spm, subject, order, index + 1);
      const ref = await ctx.writer.put(specimen, key);
      refs.all.push(ref);
      refs.bySegment.set(spm, ref);
    }
    return refs;
  }
  const old = fromObr(ctx, obr, subject, order);
  if (old) refs.all.push(await ctx.writer.put(old.specimen, old.key));
  return refs;
}

/**
 * The Specimen a result is about: the SPM it follows (an observation of that specimen), else the order's only
 * specimen; none when the order has several and the OBX does not say which.
 */
export function specimenOf(refs: SpecimenRefs, specimen: Segment | undefined): Ref | undefined {
  if (specimen && refs.bySegment.has(specimen)) return refs.bySegment.get(specimen);
  return refs.all.length === 1 ? refs.all[0] : undefined;
}
