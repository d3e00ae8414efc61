/**
 * ORU^R01 → DiagnosticReport (per OBR) + Observations (per OBX), upserted by the filler (else placer) order number,
 * so a corrected result replaces the preliminary one instead of adding to it.
 */
import type { DiagnosticReport } from '@medplum/fhirtypes';
import { HL7_ERROR, MessageRejected, requiredMissing } from '../hl7/problems';
import type { MappingContext, Ref } from './context';
import { codeableConcept, dateTime, entityIdentifier, facilityIdentifier, identifierQuery } from './datatypes';
import { writeEncounter } from './encounter';
import { noteText, orderGroups } from './groups';
import { observationFromObx, translatedCode } from './observation';
import { writePatient } from './patient';

/** OBR-25 result status (HL7 table 0123) → DiagnosticReport.status. */
const REPORT_STATUS: Record<string, DiagnosticReport['status']> = {
  F: 'final', C: 'corrected', P: 'preliminary', R: 'partial', S: 'partial', A: 'partial', I: 'registered', O: 'registered', X: 'cancelled', M: 'corrected',
};

export async function mapOru(ctx: MappingContext): Promise<void> {
  const groups = orderGroups(ctx.message);
  if (groups.length === 0 || groups.every((g) => !g.obr)) {
    throw requiredMissing('OBR', undefined, 'ORU^R01 needs at least one OBR (observation request) segment');
  }
  const patients = new Map<object, Ref>();
  for (const group of groups) {
    if (!group.obr) {
      throw new MessageRejected('AE', [{ segment: 'OBX', sequence: group.results[0]?.obx.occurrence, code: HL7_ERROR.segmentSequence, reason: 'OBX before any OBR' }]);
    }
    const obr = group.obr;
    if (!group.pid) {
      throw requiredMissing('PID', undefined, 'ORU^R01 needs a PID segment before its OBR');
    }
    const subject = patients.get(group.pid) ?? (await writePatient(ctx, group.pid, 'create-if-none'));
    patients.set(group.pid, subject);
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
    const effective = dateTime(obr.get(7), ctx.facility, obr, 7);
    const results: Ref[] = [];
    const setIds = group.results.map((r) => r.obx.get(1));
    for (const [index, { obx, notes }] of group.results.entries()) {
      const setId = setIds[index] && setIds.indexOf(setIds[index]) === index ? setIds[index] : `#${index + 1}`;
      const subId = obx.get(4);
      const observation = await observationFromObx(ctx, obx, {
        subject,
        encounter,
        effective,
        identifier: facilityIdentifier(ctx.facility, 'observation', `${order.value}-${setId}${subId ? `-${subId}` : ''}`, order.namespace),
        notes: notes.map(noteText),
      });
      results.push(await ctx.writer.put(observation, identifierQuery(observation.identifier?.[0] ?? {})));
    }
    const report: DiagnosticReport = {
      resourceType: 'DiagnosticReport',
      identifier: [identifier],
      status: REPORT_STATUS[obr.get(25).toUpperCase()] ?? 'unknown',
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
    const conclusion = group.notes.map(noteText).join('\n');
    if (conclusion) report.conclusion = conclusion;
    await ctx.writer.put(report, identifierQuery(identifier));
  }
}
