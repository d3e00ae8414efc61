/**
 * XCN (a person in an order, visit, result…) → Practitioner, upserted by the facility's staff number (XCN.1). A name
 * without a number gives a reference with a display only: there is nothing to recognise the person by next time.
 */
import type { Practitioner } from '@medplum/fhirtypes';
import type { FieldValue } from '../hl7/message';
import type { MappingContext, Ref } from './context';
import { facilityIdentifier, humanName } from './datatypes';

export async function writePractitioner(ctx: MappingContext, xcn: FieldValue | undefined): Promise<Ref | undefined> {
  if (!xcn || xcn.empty) return undefined;
  const id = xcn.get(1);
  // XCN.2… is an XPN shifted by one component.
  const name = humanName(xcn.from(2));
  const display = name ? (name.text ?? [name.prefix?.join(' '), name.given?.join(' '), name.family].filter(Boolean).join(' ')) : undefined;
  if (!id) {
    return display ? { display } : undefined;
  }
  const identifier = facilityIdentifier(ctx.facility, 'practitioner', id, xcn.get(9, 1));
  const practitioner: Practitioner = { resourceType: 'Practitioner', identifier: [identifier] };
  if (name) practitioner.name = [name];
  const ref = await ctx.writer.put(practitioner, identifier);
  return display ? { ...ref, display } : ref;
}
