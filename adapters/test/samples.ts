/** The public HL7 v2 samples in ../shared/fixtures/hl7v2, split into messages as a sender would send them. */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fixturePath } from '../../test/fixtures';
import { splitMessages } from '../batch';

export interface SampleMessage {
  file: string;
  /** Position in a file that holds several messages (0 for single-message files). */
  index: number;
  bytes: Buffer;
}

export const SAMPLE_FOLDERS = ['fhir-converter', 'hapi-hl7v2', 'linuxforhealth-hl7v2-fhir-converter', 'efferent-hl7-v2'];

export function sampleMessages(): SampleMessage[] {
  const out: SampleMessage[] = [];
  for (const folder of SAMPLE_FOLDERS) {
    for (const name of readdirSync(fixturePath('hl7v2', folder)).filter((n) => n.endsWith('.hl7')).sort()) {
      const file = path.join(folder, name);
      const bytes = readFileSync(fixturePath('hl7v2', file));
      const parts = splitMessages(bytes);
      // A leading BOM is kept on a single-message file: senders do send it, and the platform must cope.
      if (parts.length === 1) out.push({ file, index: 0, bytes });
      else parts.forEach((b, index) => out.push({ file, index, bytes: b }));
    }
  }
  return out;
}

/** MSH-4.1 of a message (for registering the samples' facilities). */
export function sendingFacility(bytes: Buffer): string {
  const text = bytes.toString('utf8').replace(/^\uFEFF/, '');
  const sep = text[3];
  const comp = text[4];
  return (text.split(/[\r\n]/)[0].split(sep)[3] ?? '').split(comp)[0];
}
