/**
 * The inbound pipeline, from the bytes of one message to the ACK bytes:
 *
 *   read MSH → find the facility (MSH-4) → check the connection is the facility's → decode the whole message by
 *   MSH-18 or the facility's charset → parse → pick the mapping (MSH-9) → in ONE transaction: look for the same
 *   message already processed (the idempotency key), map it to FHIR resources, record it in the message store →
 *   commit → ACK AA.
 *
 * Anything wrong becomes an AE (content) or AR (cannot be accepted) with ERR segments naming segment, field and
 * reason, and the message is recorded with its outcome (kept for review and replay). An ACK AA is only ever sent
 * for a committed message, so a crash between commit and ACK leads the sender to resend, and the resend is
 * recognised and answered AA without writing anything again.
 */
import { randomUUID } from 'node:crypto';
import { OperationOutcomeError } from '@medplum/core';
import type { Logger } from 'pino';
import { FhirError, type FhirRepository } from '../fhir-server';
import { checkPeer, type Facility, type FacilityRegistry } from './facilities';
import { buildAck, EMPTY_HEADER, type AckHeader } from './hl7/ack';
import { CharsetError, decodeMessage, encodeMessage, hasUtf8Bom, isValidUtf8, peekMsh } from './hl7/charset';
import { delimitersOf, Hl7ParseError, parseHl7, type Hl7Message } from './hl7/message';
import { HL7_ERROR, MessageRejected, rejected, type AckCode, type Problem } from './hl7/problems';
import { KeyedSerializer } from './keyed-serializer';
import { PatientDirectory } from './patient-directory';
import { MessageWriter, type MappingContext } from './mapping/context';
import { dateTime, toInstant } from './mapping/datatypes';
import { mappingFor } from './mapping';
import { patientKeyOf } from './mapping/patient';
import type { PeerInfo } from './mllp/server';
import { contentHash, findProcessed, getMessage, insertMessage, markReplayed, type MessageRecord } from './store/message-store';
import type { CodeTranslator } from './translator';

const SUPPORTED_VERSIONS = /^2\.(3|3\.1|4|5|5\.1|6|7|7\.1|8|8\.1|8\.2)$/;

export interface IngestResult {
  /** The ACK message text (to be encoded in `encoding` and framed). */
  ack: string;
  /** The ACK encoded in the message's own charset. */
  ackBytes: Buffer;
  outcome: AckCode;
  /** The message store record of this receipt. */
  messageId: string;
  /** `Type/id` of the resources the message wrote (for a resend: those the first receipt wrote). */
  resources: string[];
  problems: Problem[];
  duplicateOf?: string;
}

export interface Hl7IngestOptions {
  repo: FhirRepository;
  facilities: FacilityRegistry;
  translator: CodeTranslator;
  logger: Logger;
}

interface Receipt {
  id: string;
  bytes: Buffer;
  hash: string;
  peer?: PeerInfo;
  replayOf?: string;
  header: AckHeader;
  facility?: Facility;
  sendingFacility: string;
  messageType: string;
  encoding: string;
}

export class Hl7Ingest {
  private readonly serializer = new KeyedSerializer();
  private readonly patients = new PatientDirectory();

  constructor(private readonly options: Hl7IngestOptions) {}

  /** Processes one message (MLLP framing already removed) and says how to answer it. Never throws. */
  async receive(bytes: Buffer, peer?: PeerInfo, replayOf?: string): Promise<IngestResult> {
    const receipt: Receipt = {
      id: randomUUID(),
      bytes,
      hash: contentHash(bytes),
      peer,
      replayOf,
      header: EMPTY_HEADER,
      sendingFacility: '',
      messageType: '',
      encoding: hasUtf8Bom(bytes) || isValidUtf8(bytes) ? 'utf8' : 'gb18030',
    };
    try {
      const message = await this.prepare(receipt);
      const mapping = mappingFor(message);
      const facility = receipt.facility as Facility;
      const key = patientKeyOf(message, facility);
      return await this.serializer.run(key, () => this.commit(receipt, message, facility, mapping));
    } catch (err) {
      return this.refuse(receipt, err);
    }
  }

  /** A frame beyond the size limit: refused AR from its first bytes (MSH), recorded with those bytes only. */
  async refuseOversized(head: Buffer, peer: PeerInfo | undefined, limit: number): Promise<IngestResult> {
    const receipt: Receipt = {
      id: randomUUID(),
      bytes: head,
      hash: contentHash(head),
      peer,
      header: EMPTY_HEADER,
      sendingFacility: '',
      messageType: '',
      encoding: 'utf8',
    };
    this.readHeader(receipt);
    return this.refuse(
      receipt,
      rejected(HL7_ERROR.applicationInternalError, `The message is larger than ${limit} bytes, the most this platform accepts in one message; only its first ${head.length} bytes were kept`),
    );
  }

  /** Processes a failed message again (after its facility, mapping or data were corrected). */
  async replay(messageId: string): Promise<IngestResult | undefined> {
    const original = await getMessage(this.options.repo.db, messageId);
    if (!original?.content) return undefined;
    if (original.outcome === 'AA') {
      throw new Error(`Message ${messageId} was accepted (AA); only failed messages are replayed`);
    }
    this.options.facilities.clear();
    const result = await this.receive(original.content, undefined, messageId);
    await markReplayed(this.options.repo.db, messageId, result.messageId);
    return result;
  }

  /** MSH as far as it can be read before decoding, for the ACK and the facility lookup. */
  private readHeader(r: Receipt): ReturnType<typeof peekMsh> {
    const peek = peekMsh(r.bytes);
    if (!peek) return undefined;
    let delimiters = EMPTY_HEADER.delimiters;
    try {
      delimiters = delimitersOf(`MSH${peek.fieldSeparator}${peek.field(2)}${peek.fieldSeparator}`);
    } catch {
      // The ACK then uses the standard delimiters.
    }
    const c = delimiters.component;
    r.sendingFacility = peek.field(4);
    r.messageType = peek.field(9).split(c).slice(0, 2).join('^');
    r.header = {
      sendingApplication: peek.field(3),
      sendingFacility: peek.field(4),
      receivingApplication: peek.field(5),
      receivingFacility: peek.field(6),
      controlId: peek.field(10),
      triggerEvent: peek.field(9).split(c)[1] ?? '',
      version: peek.field(12).split(c)[0] || '2.5',
      processingId: peek.field(11).split(c)[0] || 'P',
      charset: peek.field(18),
      delimiters,
    };
    return peek;
  }

  /** Everything up to the transaction: facility, connection check, charset, parse, required MSH fields. */
  private async prepare(r: Receipt): Promise<Hl7Message> {
    const peek = this.readHeader(r);
    if (!peek) {
      throw rejected(HL7_ERROR.segmentSequence, 'The message does not start with an MSH segment', 'MSH');
    }
    delimitersOf(`MSH${peek.fieldSeparator}${peek.field(2)}${peek.fieldSeparator}`);
    const c = r.header.delimiters.component;
    const [namespace = '', universal = ''] = peek.field(4).split(c);
    if (!namespace && !universal) {
      throw rejected(HL7_ERROR.requiredFieldMissing, 'MSH-4 (sending facility) is empty: the sender cannot be identified', 'MSH', 4);
    }
    const facility = await this.options.facilities.find(namespace, universal);
    if (!facility) {
      throw rejected(HL7_ERROR.unknownKeyIdentifier, `Sending facility "${namespace || universal}" (MSH-4) is not registered on this platform; the message is kept for review`, 'MSH', 4);
    }
    r.facility = facility;
    checkPeer(facility, r.peer);
    const decoded = decodeMessage(r.bytes, peek.field(18), facility.charset);
    r.encoding = decoded.encoding;
    const message = parseHl7(decoded.text);
    const msh = message.msh;
    if (!message.controlId) {
      throw rejected(HL7_ERROR.requiredFieldMissing, 'MSH-10 (message control id) is empty', 'MSH', 10);
    }
    if (!message.messageType || !message.triggerEvent) {
      throw rejected(HL7_ERROR.requiredFieldMissing, 'MSH-9 (message type) must give the type and the trigger event', 'MSH', 9);
    }
    if (!SUPPORTED_VERSIONS.test(msh.get(12))) {
      throw rejected(HL7_ERROR.unsupportedVersionId, `Version "${msh.get(12)}" (MSH-12) is not supported: 2.3 to 2.8 are`, 'MSH', 12);
    }
    return message;
  }

  private async commit(r: Receipt, message: Hl7Message, facility: Facility, mapping: (ctx: MappingContext) => Promise<void>): Promise<IngestResult> {
    const { repo, translator } = this.options;
    const messageTime = toInstant(dateTime(message.msh.get(7), facility, message.msh, 7)) ?? new Date();
    const source = `urn:huimin:hl7v2:Organization/${facility.id}:${encodeURIComponent(message.controlId)}#${r.id}`;
    let lastWriter: MessageWriter | undefined;
    const attempt = (patients: PatientDirectory | undefined): Promise<{ duplicateOf?: string; resources: string[]; writer?: MessageWriter }> =>
      repo.write(async (session) => {
        const previous = await findProcessed(session.tx, facility.id, message.controlId, r.hash);
        if (previous) {
          return { duplicateOf: previous.id, resources: previous.resources };
        }
        const writer = new MessageWriter(session, repo, source, facility.systemBase, patients);
        lastWriter = writer;
        await mapping({ message, facility, session, repo, translator, source, messageTime, writer });
        await insertMessage(session.tx, this.record(r, 'AA', writer.warnings, writer.written));
        return { duplicateOf: undefined, resources: writer.written, writer };
        // The mappings build every resource with typed code: the store checks their values (formats, codes,
        // bindings, text) but not their structure against the base definitions again (the costliest check).
      }, { trustedStructure: true });
    let result: Awaited<ReturnType<typeof attempt>>;
    try {
      result = await attempt(this.patients);
    } catch (err) {
      // A remembered patient may have been deleted since: once more, asking the store.
      const used = lastWriter?.usedPatients;
      if (!(err instanceof FhirError) || !used?.size) throw err;
      this.patients.forget(used);
      result = await attempt(undefined);
    }
    if (result.writer) {
      this.patients.learn(result.writer.learnedPatients);
    }
    if (result.duplicateOf) {
      // A resend: answered AA again, recorded as a repeat, nothing written twice.
      await insertMessage(repo.db, { ...this.record(r, 'AA', [], result.resources), duplicateOf: result.duplicateOf }).catch((err: unknown) =>
        this.options.logger.warn({ err, controlId: message.controlId }, 'could not record a resend; it was answered AA all the same'),
      );
    }
    const warnings = result.writer?.warnings ?? [];
    const ack = buildAck(r.header, 'AA', warnings);
    return { ack, ackBytes: encodeMessage(ack, r.encoding), outcome: 'AA', messageId: r.id, resources: result.resources, problems: warnings, duplicateOf: result.duplicateOf };
  }

  private record(r: Receipt, outcome: AckCode, errors: Problem[], resources: string[]): MessageRecord {
    return {
      id: r.id,
      facilityId: r.facility?.id ?? null,
      sendingFacility: r.sendingFacility,
      controlId: r.header.controlId,
      messageType: r.messageType,
      remoteAddress: r.peer?.address ?? null,
      charset: r.encoding,
      content: r.bytes,
      contentHash: r.hash,
      outcome,
      replayOf: r.replayOf,
      errors,
      resources,
    };
  }

  private async refuse(r: Receipt, err: unknown): Promise<IngestResult> {
    const rejection = asRejection(err);
    if (!rejection) {
      this.options.logger.error({ err, controlId: r.header.controlId, facility: r.sendingFacility }, 'HL7 message failed unexpectedly');
    }
    const refused =
      rejection ??
      new MessageRejected('AR', [{ code: HL7_ERROR.applicationInternalError, reason: 'The platform could not process the message now; it was not accepted, send it again later' }]);
    try {
      await insertMessage(this.options.repo.db, this.record(r, refused.ack, refused.problems, []));
    } catch (storeErr) {
      this.options.logger.error({ err: storeErr, controlId: r.header.controlId }, 'could not record a refused HL7 message');
    }
    const ack = buildAck(r.header, refused.ack, refused.problems, refused.problems[0]?.reason ?? '');
    return { ack, ackBytes: encodeMessage(ack, r.encoding), outcome: refused.ack, messageId: r.id, resources: [], problems: refused.problems };
  }
}

/** Known failures as AE/AR; undefined for an unexpected error (a bug or the database unreachable). */
function asRejection(err: unknown): MessageRejected | undefined {
  if (err instanceof MessageRejected) return err;
  if (err instanceof Hl7ParseError) return rejected(HL7_ERROR.segmentSequence, err.message, 'MSH');
  if (err instanceof CharsetError) return rejected(HL7_ERROR.tableValueNotFound, err.message, 'MSH', 18);
  const outcome = err instanceof FhirError ? err.outcome : err instanceof OperationOutcomeError ? err.outcome : undefined;
  if (outcome) {
    // The store refused a resource the mapping built from this message's content (validation, references…).
    const problems: Problem[] = (outcome.issue ?? [])
      .filter((i) => i.severity === 'error' || i.severity === 'fatal')
      .slice(0, 10)
      .map((i) => ({ code: HL7_ERROR.applicationInternalError, reason: `The FHIR resource built from this message was refused: ${i.diagnostics ?? i.details?.text ?? 'invalid'}${i.expression?.length ? ` (${i.expression.join(', ')})` : ''}` }));
    return new MessageRejected('AE', problems.length ? problems : [{ code: HL7_ERROR.applicationInternalError, reason: 'The FHIR resource built from this message was refused' }]);
  }
  return undefined;
}
