/**
 * VXU^V04 → Immunization per RXA, upserted by the order's filler (else placer) number, else by patient, vaccine and
 * date (an immunisation record rarely carries an order).
 */
import type { Immunization } from '@medplum/fhirtypes';
import { requiredMissing } from '../hl7/problems';
import type { MappingContext } from './context';
import { codeableConcept, dateTime, date, entityIdentifier, facilityIdentifier } from './datatypes';
import { quantityUnit } from './observation';
import { writePatient } from './patient';
import { writePractitioner } from './practitioner';

export async function mapImmunization(ctx: MappingContext): Promise<void> {
  const m = ctx.message;
  const patient = await writePatient(ctx, m.segment('PID'), 'create-if-none');
  const rxas = m.all('RXA');
  if (rxas.length === 0) throw requiredMissing('RXA', undefined, 'VXU^V04 needs at least one RXA segment');
  let orc = undefined as ReturnType<typeof m.segment>;
  for (const s of m.segments) {
    if (s.name === 'ORC') orc = s;
    if (s.name !== 'RXA') continue;
    const rxa = s;
    const vaccine = codeableConcept(rxa.field(5), ctx.facility);
    if (!vaccine) throw requiredMissing('RXA', 5, 'RXA-5 (administered code) is empty', rxa.occurrence);
    const occurrence = dateTime(rxa.get(3), ctx.facility, rxa, 3);
    if (!occurrence) throw requiredMissing('RXA', 3, 'RXA-3 (date/time start of administration) is empty', rxa.occurrence);
    const order = orc ? (entityIdentifier(orc.field(3)) ?? entityIdentifier(orc.field(2))) : undefined;
    const identifier = order
      ? facilityIdentifier(ctx.facility, 'immunization', order.value, order.namespace)
      : facilityIdentifier(ctx.facility, 'immunization-by-date', `${patient.reference}|${rxa.get(5)}|${rxa.get(3)}`);
    const completion = rxa.get(20).toUpperCase();
    const immunization: Immunization = {
      resourceType: 'Immunization',
      identifier: [identifier],
      status: rxa.get(21).toUpperCase() === 'D' ? 'entered-in-error' : completion === 'RE' || completion === 'NA' ? 'not-done' : 'completed',
      vaccineCode: vaccine,
      patient,
      occurrenceDateTime: occurrence,
    };
    const informationSource = rxa.get(9, 1);
    if (informationSource) immunization.primarySource = informationSource === '00';
    const dose = Number(rxa.get(6));
    if (rxa.get(6) && Number.isFinite(dose) && dose !== 999) immunization.doseQuantity = { value: dose, ...quantityUnit(rxa.field(7)) };
    if (rxa.get(15)) immunization.lotNumber = rxa.get(15);
    const expiration = date(rxa.get(16), ctx.facility, rxa, 16);
    if (expiration) immunization.expirationDate = expiration;
    if (rxa.get(17, 2) || rxa.get(17, 1)) immunization.manufacturer = { display: rxa.get(17, 2) || rxa.get(17, 1) };
    const performer = await writePractitioner(ctx, rxa.field(10));
    if (performer) immunization.performer = [{ actor: performer, function: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0443', code: 'AP', display: 'Administering Provider' }] } }];
    if (completion === 'RE') immunization.statusReason = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'PATOBJ', display: 'patient objection' }] };
    const rxr = m.segments[rxa.index + 1]?.name === 'RXR' ? m.segments[rxa.index + 1] : undefined;
    if (rxr) {
      const route = codeableConcept(rxr.field(1), ctx.facility);
      if (route) immunization.route = route;
      const site = codeableConcept(rxr.field(2), ctx.facility);
      if (site) immunization.site = site;
    }
    await ctx.writer.put(immunization, identifier);
  }
}
