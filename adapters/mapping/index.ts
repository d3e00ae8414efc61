/** Which mapping handles which message type and event. */
import type { Hl7Message } from '../hl7/message';
import { HL7_ERROR, rejected } from '../hl7/problems';
import { ADT_EVENTS, mapAdt } from './adt';
import { mapAppointment, SIU_EVENTS } from './appointment';
import type { MappingContext } from './context';
import { mapDocument } from './document';
import { mapImmunization } from './immunization';
import { mapMerge, MERGE_EVENTS } from './merge';
import { mapOrder } from './order';
import { mapOru } from './oru';
import { mapReferral, REF_EVENTS } from './referral';

export type Mapping = (ctx: MappingContext) => Promise<void>;

const MAPPINGS: Record<string, Record<string, Mapping>> = {
  ADT: {
    ...Object.fromEntries(ADT_EVENTS.map((e) => [e, mapAdt])),
    ...Object.fromEntries(MERGE_EVENTS.map((e) => [e, mapMerge])),
  },
  ORU: { R01: mapOru },
  ORM: { O01: mapOrder },
  OML: { O21: mapOrder },
  SIU: Object.fromEntries(SIU_EVENTS.map((e) => [e, mapAppointment])),
  REF: Object.fromEntries(REF_EVENTS.map((e) => [e, mapReferral])),
  MDM: { T02: mapDocument },
  VXU: { V04: mapImmunization },
};

/** Every supported `TYPE^EVENT`, for documentation and the facility view. */
export const SUPPORTED_MESSAGES = Object.entries(MAPPINGS).flatMap(([type, events]) => Object.keys(events).map((e) => `${type}^${e}`));

/** The mapping for a message, or an AR naming MSH-9 when the type or event is not supported. */
export function mappingFor(message: Hl7Message): Mapping {
  const type = message.messageType;
  const event = message.triggerEvent;
  const byEvent = MAPPINGS[type];
  if (!byEvent) {
    throw rejected(HL7_ERROR.unsupportedMessageType, `Message type "${type}" is not accepted by this platform (see adapters/README.md for the accepted types)`, 'MSH', 9);
  }
  const mapping = byEvent[event];
  if (!mapping) {
    throw rejected(HL7_ERROR.unsupportedEventCode, `Event ${event} of ${type} is not accepted (accepted for ${type}: ${Object.keys(byEvent).join(' ')})`, 'MSH', 9);
  }
  return mapping;
}
