/**
 * MDM^T02 (original document notification and content) → DocumentReference, upserted by the unique document number
 * (TXA-12). The content is the OBX text (TX/FT/ST lines) as UTF-8 text, or encapsulated data (ED) as sent.
 */
import type { Attachment, DocumentReference } from '@medplum/fhirtypes';
import { requiredMissing } from '../hl7/problems';
import type { MappingContext } from './context';
import { codeableConcept, dateTime, entityIdentifier, facilityIdentifier } from './datatypes';
import { writeEncounter } from './encounter';
import { writePatient } from './patient';
import { writePractitioner } from './practitioner';

/** TXA-17 document completion status (table 0271) → DocumentReference.docStatus. */
const DOC_STATUS: Record<string, DocumentReference['docStatus']> = { AU: 'final', LA: 'final', DO: 'preliminary', IP: 'preliminary', IN: 'preliminary', PA: 'preliminary', DI: 'preliminary', AM: 'amended' };

export async function mapDocument(ctx: MappingContext): Promise<void> {
  const m = ctx.message;
  const txa = m.segment('TXA');
  if (!txa) throw requiredMissing('TXA', undefined, `MDM^${m.triggerEvent} needs a TXA segment`);
  const key = entityIdentifier(txa.field(12)) ?? entityIdentifier(txa.field(14)) ?? entityIdentifier(txa.field(15));
  if (!key) throw requiredMissing('TXA', 12, 'TXA-12 (unique document number) is empty', txa.occurrence);
  const identifier = facilityIdentifier(ctx.facility, 'document', key.value, key.namespace);
  const subject = await writePatient(ctx, m.segment('PID'), 'create-if-none');
  const content: Attachment[] = [];
  const lines: string[] = [];
  for (const obx of m.all('OBX')) {
    const type = obx.get(2).toUpperCase();
    if (type === 'ED') {
      // ED: source ^ type of data ^ subtype ^ encoding ^ data
      const ed = obx.field(5);
      const data = ed.get(5);
      if (data) {
        const mime = ed.get(2) && ed.get(3) ? `${ed.get(2)}/${ed.get(3)}`.toLowerCase() : 'application/octet-stream';
        content.push({ contentType: mime, data: ed.get(4).toUpperCase() === 'BASE64' ? data.replace(/\s+/g, '') : Buffer.from(data, 'utf8').toString('base64') });
      }
    } else {
      lines.push(...obx.reps(5).map((r) => r.text()));
    }
  }
  if (lines.length) {
    content.unshift({ contentType: 'text/plain; charset=utf-8', data: Buffer.from(lines.join('\n'), 'utf8').toString('base64') });
  }
  if (content.length === 0) {
    throw requiredMissing('OBX', 5, `MDM^${m.triggerEvent} carries the document in OBX-5, and there is none`);
  }
  const created = dateTime(txa.get(4), ctx.facility, txa, 4) ?? dateTime(txa.get(6), ctx.facility, txa, 6);
  if (created) content.forEach((a) => (a.creation = created.length > 10 ? created : undefined));
  content.forEach((a) => a.creation === undefined && delete a.creation);
  const doc: DocumentReference = {
    resourceType: 'DocumentReference',
    masterIdentifier: identifier,
    identifier: [identifier],
    status: txa.get(17).toUpperCase() === 'OB' ? 'superseded' : 'current',
    subject,
    content: content.map((attachment) => ({ attachment })),
    custodian: { reference: `Organization/${ctx.facility.id}` },
  };
  const docStatus = DOC_STATUS[txa.get(17).toUpperCase()];
  if (docStatus) doc.docStatus = docStatus;
  const type = codeableConcept(txa.field(2), ctx.facility);
  if (type) doc.type = type;
  const date = dateTime(txa.get(6), ctx.facility, txa, 6) ?? dateTime(txa.get(4), ctx.facility, txa, 4);
  if (date && date.length > 10) doc.date = date;
  const authors = [];
  for (const xcn of txa.reps(9)) {
    const author = await writePractitioner(ctx, xcn);
    if (author) authors.push(author);
  }
  if (authors.length) doc.author = authors;
  const authenticator = await writePractitioner(ctx, txa.field(22));
  if (authenticator) doc.authenticator = authenticator;
  const encounter = await writeEncounter(ctx, m.segment('PV1'), subject, 'from-pv1', subject.reference as string, 'create-if-none');
  if (encounter) doc.context = { encounter: [encounter] };
  await ctx.writer.put(doc, identifier);
}
