/**
 * The adapters module's public face: HL7 v2 in (MLLP listener, mappings to FHIR, ACKs, message store, replay) for
 * the hospital HIS/LIS/PACS systems of the region. It talks to the store only through `fhir-server/index.ts`.
 */
export { createAdapters, adaptersFor, type Adapters, type AdapterOptions, type Hl7ListenerConfig } from './runtime';
export { Hl7Ingest, type IngestResult } from './ingest';
export { adapterMigrations } from './store/migrations';
export { hl7Operations, facilityView } from './operations';
export { FACILITY_EXTENSION, FACILITY_TAG, FACILITY_TAG_CODE, FACILITY_TAG_SYSTEM, type Facility } from './facilities';
export { ConceptMapTranslator, TerminologyTranslator, type CodeTranslator, type TerminologyTranslation } from './translator';
export { MllpClient, MllpServer, frame } from './mllp/server';
export { RESIDENT_ID_SYSTEM, HEALTH_CARD_SYSTEM } from './mapping/identifiers';
export { SUPPORTED_MESSAGES } from './mapping';
export { searchMessages, getMessage, type StoredMessage } from './store/message-store';
export { Hl7Outbound, outboundFor, OUTBOUND_QUEUE, DEAD_LETTER_QUEUE, type DeadLetter, type OutboundJob, type OutboundOptions } from './outbound/queue';
export { queryDemographics } from './outbound/query';
export { Hl7ReferralSender } from './outbound/referral-sender';
export { refI12, oruR01, orderResponse, qbpQ22 } from './outbound/messages';
