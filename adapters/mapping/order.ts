/**
 * ORM^O01 and OML^O21 → ServiceRequest per order (ORC, with its OBR), upserted by the placer order number (else the
 * filler's), so that a cancel or a status change updates the request it is about; its specimens (OML's SPM, else
 * OBR-15) → Specimen, referenced from `ServiceRequest.specimen`.
 */
import type { Identifier, ServiceRequest } from '@medplum/fhirtypes';
import { requiredMissing } from '../hl7/problems';
import type { MappingContext } from './context';
import { codeableConcept, dateTime, entityIdentifier, facilityIdentifier } from './datatypes';
import { writeEncounter } from './encounter';
import { noteText, orderGroups } from './groups';
import { translatedCode } from './observation';
import { writePatient } from './patient';
import { writePractitioner } from './practitioner';
import { writeSpecimens } from './specimen';

const V2_0203 = 'http://terminology.hl7.org/CodeSystem/v2-0203';

/** ORC-1 order control (table 0119) → ServiceRequest.status; SC (status changed) reads ORC-5 (table 0038). */
const CONTROL_STATUS: Record<string, ServiceRequest['status']> = {
  NW: 'active', XO: 'active', RL: 'active', OK: 'active', SN: 'active', PA: 'active', RP: 'active', RO: 'active',
  CA: 'revoked', OC: 'revoked', CR: 'revoked', DC: 'revoked', OD: 'revoked', DR: 'revoked',
  HD: 'on-hold', OH: 'on-hold', RE: 'completed',
};
const ORDER_STATUS: Record<string, ServiceRequest['status']> = {
  A: 'active', CA: 'revoked', CM: 'completed', DC: 'revoked', ER: 'entered-in-error', HD: 'on-hold', IP: 'active', RP: 'active', SC: 'active',
};
const PRIORITY: Record<string, ServiceRequest['priority']> = { S: 'stat', A: 'asap', R: 'routine', P: 'urgent', T: 'urgent', C: 'urgent' };

export async function mapOrder(ctx: MappingContext): Promise<void> {
  const groups = orderGroups(ctx.message).filter((g) => g.orc || g.obr);
  if (groups.length === 0) {
    throw requiredMissing('ORC', undefined, `${ctx.message.messageType}^${ctx.message.triggerEvent} holds no order (ORC/OBR)`);
  }
  for (const group of groups) {
    const { orc, obr } = group;
    const subject = await writePatient(ctx, group.pid, 'create-if-none');
    const placer = (orc && entityIdentifier(orc.field(2))) ?? (obr && entityIdentifier(obr.field(2)));
    const filler = (orc && entityIdentifier(orc.field(3))) ?? (obr && entityIdentifier(obr.field(3)));
    // Without an order number, the placer group number (ORC-4) and the service code together name the order.
    const group4 = orc && entityIdentifier(orc.field(4));
    const groupKey = group4 && obr?.get(4, 1) ? { value: `${group4.value}|${obr.get(4, 1)}`, namespace: group4.namespace } : undefined;
    const key = placer ?? filler ?? groupKey;
    if (!key) {
      const segment = orc ?? obr;
      throw requiredMissing(segment?.name ?? 'ORC', 2, 'the placer order number (ORC-2/OBR-2) and filler order number (ORC-3/OBR-3) are both empty', segment?.occurrence);
    }
    const identifiers: Identifier[] = [];
    if (placer) identifiers.push({ ...facilityIdentifier(ctx.facility, 'order-placer', placer.value, placer.namespace), type: { coding: [{ system: V2_0203, code: 'PLAC' }] } });
    if (filler) identifiers.push({ ...facilityIdentifier(ctx.facility, 'order-filler', filler.value, filler.namespace), type: { coding: [{ system: V2_0203, code: 'FILL' }] } });
    if (!placer && !filler && groupKey) identifiers.push({ ...facilityIdentifier(ctx.facility, 'order-group', groupKey.value, groupKey.namespace), type: { coding: [{ system: V2_0203, code: 'PGN' }] } });
    const control = orc?.get(1).toUpperCase() ?? 'NW';
    const status = control === 'SC' ? (ORDER_STATUS[orc?.get(5).toUpperCase() ?? ''] ?? 'active') : (CONTROL_STATUS[control] ?? 'active');
    const request: ServiceRequest = { resourceType: 'ServiceRequest', identifier: identifiers, status, intent: 'order', subject };
    const code = obr ? await translatedCode(ctx, codeableConcept(obr.field(4), ctx.facility)) : undefined;
    if (code) request.code = code;
    const encounter = await writeEncounter(ctx, group.pv1, subject, 'from-pv1', subject.reference as string, 'create-if-none');
    if (encounter) request.encounter = encounter;
    const authoredOn = orc ? dateTime(orc.get(9), ctx.facility, orc, 9) : undefined;
    if (authoredOn) request.authoredOn = authoredOn;
    const requester = (orc && (await writePractitioner(ctx, orc.field(12)))) ?? (obr && (await writePractitioner(ctx, obr.field(16))));
    if (requester) request.requester = requester;
    const occurrence = obr ? dateTime(obr.get(7), ctx.facility, obr, 7) : undefined;
    if (occurrence) request.occurrenceDateTime = occurrence;
    const priority = PRIORITY[(obr?.get(5) || orc?.get(7, 6) || '').toUpperCase()];
    if (priority) request.priority = priority;
    const reasons = (obr?.reps(31) ?? []).map((r) => codeableConcept(r, ctx.facility)).filter((c) => c !== undefined);
    if (reasons.length) request.reasonCode = reasons;
    const notes = group.notes.map(noteText).filter(Boolean);
    if (notes.length) request.note = notes.map((text) => ({ text }));
    // The specimen the order is for (OML's SPM, or OBR-15): recognition compares it with a prior result's.
    if (obr) {
      const specimens = await writeSpecimens(ctx, obr, group.specimens, subject, key);
      if (specimens.all.length) request.specimen = specimens.all;
    }
    await ctx.writer.put(request, identifiers[0]);
  }
}
