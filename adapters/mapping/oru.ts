/**
 * ORU^R01 → DiagnosticReport (per OBR) + Observations (per OBX), upserted by the filler (else placer) order number,
 * so a corrected result replaces the preliminary one instead of adding to it.
 */
import type { Attachment, DiagnosticReport, Observation } from '@medplum/fhirtypes';
import { HL7_ERROR, MessageRejected, requiredMissing, type Problem } from '../hl7/problems';
import { ownedId, type MappingContext, type Ref } from './context';
import type { Segment } from '../hl7/message';
import { codeableConcept, dateTime, entityIdentifier, facilityIdentifier } from './datatypes';
import { writeEncounter } from './encounter';
import { noteText, orderGroups } from './groups';
import { observationFromObx, translatedCode } from './observation';
import { writePatient } from './patient';
import { specimenOf, writeSpecimens } from './specimen';

/** OBR-25 result status (HL7 table 0123) → DiagnosticReport.status. */
const REPORT_STATUS: Record<string, DiagnosticReport['status']> = {
  F: 'final', C: 'corrected', P: 'preliminary', R: 'partial', S: 'partial', A: 'partial', I: 'registered', O: 'registered', X: 'cancelled', M: 'corrected',
};

/** Statuses of a result that is out (final or corrected since): a later message may correct it, not take it back. */
const SETTLED = new Set(['final', 'amended', 'corrected', 'appended']);
/** Statuses of a result still being worked on. */
const UNSETTLED = new Set(['registered', 'preliminary', 'partial']);

/**
 * A preliminary result that arrives after the final one (messages overtaking each other, a resend from a queue)
 * must not overwrite it: the final result stays and the message is answered AA with a warning naming the field.
 */
function overtaken(current: { status?: string } | undefined, incoming: string | undefined, where: Omit<Problem, 'code' | 'reason' | 'severity'>, what: string): Problem | undefined {
  if (!current?.status || !SETTLED.has(current.status) || !incoming || !UNSETTLED.has(incoming)) {
    return undefined;
  }
  return {
    ...where,
    code: HL7_ERROR.applicationRecordLocked,
    severity: 'W',
    reason: `${what} is already ${current.status}; this ${incoming} version was not applied`,
  };
}

export async function mapOru(ctx: MappingContext): Promise<void> {
  const groups = orderGroups(ctx.message);
  if (groups.length === 0 || groups.every((g) => !g.obr)) {
    throw requiredMissing('OBR', undefined, 'ORU^R01 needs at least one OBR (observation request) segment');
  }
  const patients = new Map<object, Ref>();
  for (const group of groups) {
    if (!group.pid) {
      throw requiredMissing('PID', undefined, 'ORU^R01 needs a PID segment before its results');
    }
    const subject = patients.get(group.pid) ?? (await writePatient(ctx, group.pid, 'create-if-none'));
    patients.set(group.pid, subject);
    if (!group.obr) {
      if (group.orc) {
        throw new MessageRejected('AE', [{ segment: 'OBX', sequence: group.results[0]?.obx.occurrence, code: HL7_ERROR.segmentSequence, reason: 'OBX after an ORC that has no OBR' }]);
      }
      await patientObservations(ctx, group.results, subject);
      continue;
    }
    const obr = group.obr;
    const encounter = await writeEncounter(ctx, group.pv1, subject, 'from-pv1', subject.reference as string, 'create-if-none');
    const order =
      entityIdentifier(obr.field(3)) ?? entityIdentifier(obr.field(2)) ?? (group.orc ? (entityIdentifier(group.orc.field(3)) ?? entityIdentifier(group.orc.field(2))) : undefined);
    if (!order) {
      throw requiredMissing('OBR', 3, 'OBR-3 (filler order number) and OBR-2 (placer order number) are both empty', obr.occurrence);
    }
    const identifier = facilityIdentifier(ctx.facility, 'report', order.value, order.namespace);
    const code = await translatedCode(ctx, codeableConcept(obr.field(4), ctx.facility));
    if (!code) {
      throw requiredMissing('OBR', 4, 'OBR-4 (universal service identifier) is empty', obr.occurrence);
    }
    const status = REPORT_STATUS[obr.get(25).toUpperCase()] ?? 'unknown';
    const late = overtaken(await ctx.writer.current<DiagnosticReport>('DiagnosticReport', identifier), status, { segment: 'OBR', sequence: obr.occurrence, field: 25 }, `Report ${order.value}`);
    if (late) {
      ctx.writer.warnings.push(late);
      continue;
    }
    const effective = dateTime(obr.get(7), ctx.facility, obr, 7);
    const specimens = await writeSpecimens(ctx, obr, group.specimens, subject, order);
    const results: Ref[] = [];
    // OBX lines without an observation identifier are the report's narrative (TX/FT/ST) or its document (ED).
    const narrative: string[] = [];
    const presentedForm: Attachment[] = [];
    const coded = group.results.filter(({ obx }) => {
      if (obx.get(3, 1) || obx.get(3, 2)) return true;
      const type = obx.get(2).toUpperCase();
      if (type === 'ED') {
        const ed = obx.field(5);
        if (ed.get(5)) presentedForm.push({ contentType: ed.get(2) && ed.get(3) ? `${ed.get(2)}/${ed.get(3)}`.toLowerCase() : 'application/octet-stream', data: ed.get(5).replace(/\s+/g, '') });
        return false;
      }
      if (['TX', 'FT', 'ST', ''].includes(type)) {
        narrative.push(...obx.reps(5).map((r) => r.text()));
        return false;
      }
      return true;
    });
    const setIds = coded.map((r) => r.obx.get(1));
    const observationIds = coded.map(({ obx }, index) => {
      const setId = setIds[index] && setIds.indexOf(setIds[index]) === index ? setIds[index] : `#${index + 1}`;
      const subId = obx.get(4);
      return facilityIdentifier(ctx.facility, 'observation', `${order.value}-${setId}${subId ? `-${subId}` : ''}`, order.namespace);
    });
    await ctx.writer.prefetch('Observation', observationIds);
    const performers = new Map<string, Ref>();
    for (const [index, { obx, notes, specimen }] of coded.entries()) {
      const observation = await observationFromObx(ctx, obx, {
        subject,
        encounter,
        effective,
        identifier: observationIds[index],
        notes: notes.map(noteText),
        specimen: specimenOf(specimens, specimen),
      });
      for (const p of observation.performer ?? []) if (p.reference?.startsWith('Organization/')) performers.set(p.reference, p);
      const key = observation.identifier?.[0] ?? {};
      const lateResult = overtaken(await ctx.writer.current<Observation>('Observation', key), observation.status, { segment: 'OBX', sequence: obx.occurrence, field: 11 }, `Result ${key.value}`);
      if (lateResult) {
        ctx.writer.warnings.push(lateResult);
        results.push({ reference: `Observation/${ownedId('Observation', key)}` });
        continue;
      }
      results.push(await ctx.writer.put(observation, key));
    }
    const report: DiagnosticReport = {
      resourceType: 'DiagnosticReport',
      identifier: [identifier],
      status,
      code,
      subject,
    };
    if (encounter) report.encounter = encounter;
    if (effective) report.effectiveDateTime = effective;
    const issued = dateTime(obr.get(22), ctx.facility, obr, 22);
    if (issued) report.issued = issued.length > 10 ? issued : undefined;
    if (!report.issued) delete report.issued;
    const category = codeableConcept(obr.field(24), ctx.facility);
    if (category) report.category = [category];
    if (results.length) report.result = results;
    if (specimens.all.length) report.specimen = specimens.all;
    // The report's performers: the organisations that performed its results (OBX-23).
    if (performers.size) report.performer = [...performers.values()];
    const conclusion = group.notes.map(noteText).join('\n');
    if (conclusion) report.conclusion = conclusion;
    if (narrative.length) {
      presentedForm.unshift({ contentType: 'text/plain; charset=utf-8', data: Buffer.from(narrative.join('\n'), 'utf8').toString('base64') });
    }
    if (presentedForm.length) report.presentedForm = presentedForm;
    await ctx.writer.put(report, identifier);
  }
}

/**
 * OBX right after the PID, outside any order (not in the ORU_R01 structure, but sent): observations about the
 * patient, keyed by the message and their position.
 */
async function patientObservations(ctx: MappingContext, results: Array<{ obx: Segment; notes: Segment[] }>, subject: Ref): Promise<void> {
  for (const [index, { obx, notes }] of results.entries()) {
    if (!obx.get(3, 1) && !obx.get(3, 2)) {
      continue; // no observation identifier: nothing to call it by (the raw message keeps it)
    }
    const identifier = facilityIdentifier(ctx.facility, 'observation', `${ctx.message.controlId}-${index + 1}`, 'message');
    const observation = await observationFromObx(ctx, obx, { subject, identifier, notes: notes.map(noteText) });
    await ctx.writer.put(observation, identifier);
  }
}
