/**
 * ADT^A40 (merge patient – patient identifier list), A34 and A39 (merge patient id / person) → patient merge:
 * the surviving patient (PID) gets `link: replaces` to the prior one (MRG-1), and the prior one `active: false`
 * with `link: replaced-by`. Nothing is deleted; a prior patient the platform never saw is recorded inactive, so that
 * the merge can still be followed from its identifier.
 */
import { randomUUID } from 'node:crypto';
import type { Patient } from '@medplum/fhirtypes';
import { mergePatients } from '../../mpi';
import type { Segment } from '../hl7/message';
import { requiredMissing } from '../hl7/problems';
import { advancePatientClock } from '../store/message-store';
import type { MappingContext } from './context';
import { identifierQuery } from './datatypes';
import { patientIdentifier, type PatientIdentifier } from './identifiers';
import { patientFromPid, primaryIdentifier } from './patient';

export const MERGE_EVENTS = ['A34', 'A39', 'A40'];

export async function mapMerge(ctx: MappingContext): Promise<void> {
  const pairs: Array<{ pid: Segment; mrg: Segment }> = [];
  let pid: Segment | undefined;
  for (const segment of ctx.message.segments) {
    if (segment.name === 'PID') pid = segment;
    if (segment.name === 'MRG' && pid) pairs.push({ pid, mrg: segment });
  }
  if (pairs.length === 0) {
    throw requiredMissing(ctx.message.segment('PID') ? 'MRG' : 'PID', undefined, `ADT^${ctx.message.triggerEvent} needs a PID followed by an MRG segment`);
  }
  for (const { pid, mrg } of pairs) {
    const { patient, primary } = patientFromPid(pid, ctx.facility);
    const priorIds = [...mrg.reps(1), ...mrg.reps(4)]
      .map((cx) => patientIdentifier(cx, ctx.facility))
      .filter((x): x is PatientIdentifier => x !== undefined);
    const priorKey = primaryIdentifier(priorIds);
    if (!priorKey) {
      throw requiredMissing('MRG', 1, 'MRG-1 (prior patient identifier list) holds no identifier', mrg.occurrence);
    }
    await advancePatientClock(ctx.session.tx, ctx.facility.id, `${primary.system}|${primary.value}`, ctx.messageTime);
    const survivorExisting = await ctx.writer.findOne<Patient>('Patient', identifierQuery(primary));
    const priorExisting = await ctx.writer.findOne<Patient>('Patient', identifierQuery(priorKey));
    // Both ids are settled first, so that each patient is written once, with its link to the other.
    const survivorId = survivorExisting?.id ?? randomUUID();
    const priorId = priorExisting?.id ?? randomUUID();
    // The same shape as Patient/$merge (mpi/merge-links.ts).
    const { survivor, prior } = mergePatients(
      { ...patient, id: survivorId, ...(survivorExisting?.link ? { link: survivorExisting.link } : {}) },
      { ...(priorExisting ?? { resourceType: 'Patient', identifier: priorIds.map((p) => p.identifier), managingOrganization: { reference: `Organization/${ctx.facility.id}` } }), id: priorId },
    );
    await ctx.writer.update(survivor);
    await ctx.writer.update(prior);
  }
}
