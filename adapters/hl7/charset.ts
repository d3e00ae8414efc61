/**
 * Character sets. A message is decoded as a whole, after MLLP framing has been removed and never chunk by chunk,
 * so that a multi-byte character (张伟 in GB18030 is four bytes, 䶮 in GB18030 four and in UTF-8 three) is never cut.
 *
 * The charset comes from MSH-18 when the sender declares it (HL7 table 0211), otherwise from the facility's
 * configuration; a facility with none configured gets UTF-8 when the bytes are valid UTF-8 and GB18030 otherwise
 * (a GB18030-encoded Chinese text is practically never valid UTF-8, and both are ASCII-compatible).
 */
import iconv from 'iconv-lite';

const UTF8_BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/** HL7 table 0211 values (and the spellings Chinese HIS vendors use) → iconv-lite encoding names. */
const TABLE_0211: Record<string, string> = {
  'ASCII': 'latin1',
  '8859/1': 'latin1',
  '8859/2': 'iso-8859-2',
  '8859/5': 'iso-8859-5',
  '8859/7': 'iso-8859-7',
  '8859/15': 'iso-8859-15',
  'UNICODE UTF-8': 'utf8',
  'UNICODE': 'utf8',
  'UTF-8': 'utf8',
  'UTF8': 'utf8',
  'UNICODE UTF-16': 'utf16le',
  'GB 18030-2000': 'gb18030',
  'GB18030-2000': 'gb18030',
  'GB 18030-2005': 'gb18030',
  'GB18030': 'gb18030',
  'GB 18030': 'gb18030',
  'GBK': 'gbk',
  'ISO IR58': 'gb2312',
  'GB2312': 'gb2312',
  'BIG-5': 'big5',
  'BIG5': 'big5',
};

export class CharsetError extends Error {}

/** The iconv-lite encoding for an MSH-18 value, or undefined when it names no charset we can decode. */
export function encodingFor(msh18: string): string | undefined {
  const key = msh18.trim().toUpperCase();
  const name = TABLE_0211[key] ?? (iconv.encodingExists(key) ? key.toLowerCase() : undefined);
  return name;
}

export function hasUtf8Bom(bytes: Buffer): boolean {
  return bytes.length >= 3 && bytes.subarray(0, 3).equals(UTF8_BOM);
}

export function isValidUtf8(bytes: Buffer): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

export interface MshPeek {
  fieldSeparator: string;
  /** MSH-n as raw text (first repetition, escapes not decoded): index n. */
  field(n: number): string;
}

/**
 * Reads MSH before the message is decoded: the first segment decoded tentatively (UTF-8 when valid, GB18030
 * otherwise). Enough to learn MSH-4 (the facility) and MSH-18 (the charset).
 */
export function peekMsh(bytes: Buffer): MshPeek | undefined {
  const body = hasUtf8Bom(bytes) ? bytes.subarray(3) : bytes;
  let end = body.findIndex((b) => b === 0x0d || b === 0x0a);
  if (end === -1) {
    end = body.length;
  }
  const line = body.subarray(0, Math.min(end, 4096));
  const text = isValidUtf8(line) ? line.toString('utf8') : iconv.decode(line, 'gb18030');
  if (!text.startsWith('MSH') || text.length < 4) {
    return undefined;
  }
  const sep = text[3];
  const parts = text.split(sep);
  const repetition = text[5];
  return {
    fieldSeparator: sep,
    field: (n: number) => (n === 1 ? sep : n === 2 ? (parts[1] ?? '') : (parts[n - 1] ?? '').split(repetition)[0]),
  };
}

export interface Decoded {
  text: string;
  /** The iconv-lite encoding used. */
  encoding: string;
  /** Where it came from: 'MSH-18', 'BOM', 'facility' or 'detected'. */
  source: 'MSH-18' | 'BOM' | 'facility' | 'detected';
}

/** Decodes a whole message. Throws CharsetError when MSH-18 names a charset that cannot be decoded. */
export function decodeMessage(bytes: Buffer, msh18: string, facilityCharset?: string): Decoded {
  if (msh18.trim() !== '') {
    const encoding = encodingFor(msh18);
    if (!encoding) {
      throw new CharsetError(`MSH-18 names character set "${msh18}", which this platform cannot decode`);
    }
    const body = hasUtf8Bom(bytes) && encoding === 'utf8' ? bytes.subarray(3) : bytes;
    return { text: iconv.decode(body, encoding), encoding, source: 'MSH-18' };
  }
  if (hasUtf8Bom(bytes)) {
    return { text: bytes.subarray(3).toString('utf8'), encoding: 'utf8', source: 'BOM' };
  }
  if (facilityCharset) {
    const encoding = encodingFor(facilityCharset) ?? 'gb18030';
    return { text: iconv.decode(bytes, encoding), encoding, source: 'facility' };
  }
  const encoding = isValidUtf8(bytes) ? 'utf8' : 'gb18030';
  return { text: iconv.decode(bytes, encoding), encoding, source: 'detected' };
}

/** Encodes an outgoing message (an ACK) in the charset the incoming one used. */
export function encodeMessage(text: string, encoding: string): Buffer {
  return iconv.encode(text, encoding);
}
