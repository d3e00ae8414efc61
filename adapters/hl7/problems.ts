/**
 * What goes wrong with a message, in the terms an ACK reports it: the acknowledgment code (AE: the content is
 * wrong; AR: the message cannot be accepted at all), the HL7 error code (table 0357), and where (segment, field).
 */

export type AckCode = 'AA' | 'AE' | 'AR';

/** HL7 table 0357 (message error condition codes) entries used here. */
export const HL7_ERROR = {
  segmentSequence: '100',
  requiredFieldMissing: '101',
  dataTypeError: '102',
  tableValueNotFound: '103',
  unsupportedMessageType: '200',
  unsupportedEventCode: '201',
  unsupportedProcessingId: '202',
  unsupportedVersionId: '203',
  unknownKeyIdentifier: '204',
  duplicateKeyIdentifier: '205',
  applicationRecordLocked: '206',
  applicationInternalError: '207',
} as const;

export const HL7_ERROR_TEXT: Record<string, string> = {
  '100': 'Segment sequence error',
  '101': 'Required field missing',
  '102': 'Data type error',
  '103': 'Table value not found',
  '200': 'Unsupported message type',
  '201': 'Unsupported event code',
  '202': 'Unsupported processing id',
  '203': 'Unsupported version id',
  '204': 'Unknown key identifier',
  '205': 'Duplicate key identifier',
  '206': 'Application record locked',
  '207': 'Application internal error',
};

export interface Problem {
  /** Segment name, e.g. 'PID'. */
  segment?: string;
  /** 1-based occurrence of the segment in the message (ERR-2.2). */
  sequence?: number;
  /** Field number, e.g. 7 for PID-7. */
  field?: number;
  component?: number;
  /** HL7 table 0357 code. */
  code: string;
  /** What is wrong, for a person: goes to ERR-8 (and the message store). */
  reason: string;
  severity?: 'E' | 'W';
}

/** A message that is refused: thrown by parsing and mapping, turned into an AE/AR ACK by the pipeline. */
export class MessageRejected extends Error {
  constructor(
    readonly ack: 'AE' | 'AR',
    readonly problems: Problem[],
  ) {
    super(problems.map(describeProblem).join('; '));
  }
}

export function describeProblem(p: Problem): string {
  const where = p.segment ? `${p.segment}${p.field ? `-${p.field}${p.component ? `.${p.component}` : ''}` : ''}: ` : '';
  return `${where}${p.reason}`;
}

/** AE: the content of a field is wrong or missing. */
export function contentError(segment: string, field: number | undefined, reason: string, code: string = HL7_ERROR.dataTypeError, sequence?: number): MessageRejected {
  return new MessageRejected('AE', [{ segment, field, reason, code, sequence }]);
}

export function requiredMissing(segment: string, field: number | undefined, reason: string, sequence?: number): MessageRejected {
  return contentError(segment, field, reason, HL7_ERROR.requiredFieldMissing, sequence);
}

/** AR: the message as a whole cannot be accepted (unknown sender, unsupported type, unreadable). */
export function rejected(code: string, reason: string, segment?: string, field?: number): MessageRejected {
  return new MessageRejected('AR', [{ segment, field, reason, code }]);
}
