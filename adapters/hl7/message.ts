/**
 * A small HL7 v2 (ER7, "pipe and hat") parser.
 *
 * Why not @medplum/core's `Hl7Message`: it does not decode escape sequences (\F\, \S\, \T\, \R\, \E\, \X..\,
 * \.br\), so a name or a result containing an escaped delimiter would arrive garbled, and its subcomponent index is
 * 0-based where everything else is 1-based. This parser keeps the raw text of every field and decodes escapes only
 * when a value is read, so the message text stays as it was received.
 *
 * Numbering follows the standard: `seg.get(5, 1)` is PID-5.1. For MSH, MSH-1 is the field separator and MSH-2 the
 * encoding characters, so `msh.get(9, 2)` is the trigger event as everywhere else.
 */

export interface Delimiters {
  field: string;
  component: string;
  repetition: string;
  escape: string;
  subcomponent: string;
}

export class Hl7ParseError extends Error {}

/** One repetition of a field: components and subcomponents, read with 1-based indexes. */
export class FieldValue {
  constructor(
    readonly raw: string,
    private readonly d: Delimiters,
  ) {}

  /** Component `c`, subcomponent `s` (both 1-based), escapes decoded; '' when absent. */
  get(c = 1, s = 1): string {
    const component = this.raw.split(this.d.component)[c - 1] ?? '';
    const sub = component.split(this.d.subcomponent)[s - 1] ?? '';
    return unescapeHl7(sub, this.d);
  }

  /** The raw text of component `c` (subcomponent delimiters kept), for types whose components are composite. */
  component(c: number): FieldValue {
    const raw = this.raw.split(this.d.component)[c - 1] ?? '';
    // A component read as a field of its own: its subcomponents become components.
    return new FieldValue(raw, { ...this.d, component: this.d.subcomponent });
  }

  /** The components from `c` on, as a value of their own (XCN.2… read as an XPN). */
  from(c: number): FieldValue {
    return new FieldValue(this.raw.split(this.d.component).slice(c - 1).join(this.d.component), this.d);
  }

  /** This value with the first component of `other` put before it (PRD-7 id + PRD-2 name → an XCN). */
  prefixedBy(other: FieldValue): FieldValue {
    const first = other.raw.split(this.d.component)[0] ?? '';
    return new FieldValue(`${first}${this.d.component}${this.raw}`, this.d);
  }

  /** Every component, escapes decoded (subcomponents joined as sent). */
  components(): string[] {
    return this.raw.split(this.d.component).map((c) => unescapeHl7(c, this.d));
  }

  get empty(): boolean {
    return this.raw === '' || this.raw === '""';
  }

  /** The whole repetition as text, escapes decoded (for ST/TX/FT values). */
  text(): string {
    return unescapeHl7(this.raw, this.d);
  }
}

export class Segment {
  /** `fields[n]` is the raw text of field n (for MSH, fields[1] is the field separator). */
  constructor(
    readonly name: string,
    readonly fields: string[],
    private readonly d: Delimiters,
    /** 0-based position of the segment in the message. */
    readonly index: number,
    /** 1-based occurrence among the segments of the same name (ERR-2.2). */
    readonly occurrence = 1,
  ) {}

  /** Raw text of field `n`. */
  raw(n: number): string {
    return this.fields[n] ?? '';
  }

  /** Every repetition of field `n` (none when the field is empty). */
  reps(n: number): FieldValue[] {
    const raw = this.raw(n);
    if (raw === '') {
      return [];
    }
    // MSH-2 holds the encoding characters themselves; it has no repetitions.
    if (this.name === 'MSH' && n <= 2) {
      return [new FieldValue(raw, { ...this.d, component: '\u0000', repetition: '\u0000', subcomponent: '\u0000', escape: '\u0000' })];
    }
    return raw.split(this.d.repetition).map((r) => new FieldValue(r, this.d));
  }

  /** First repetition of field `n` (an empty value when the field is empty). */
  field(n: number): FieldValue {
    return this.reps(n)[0] ?? new FieldValue('', this.d);
  }

  /** Field `n`, component `c`, subcomponent `s` of the first repetition, escapes decoded. */
  get(n: number, c = 1, s = 1): string {
    return this.field(n).get(c, s);
  }
}

export class Hl7Message {
  constructor(
    readonly segments: Segment[],
    readonly delimiters: Delimiters,
  ) {}

  get msh(): Segment {
    return this.segments[0];
  }

  /** First segment with this name. */
  segment(name: string): Segment | undefined {
    return this.segments.find((s) => s.name === name);
  }

  all(name: string): Segment[] {
    return this.segments.filter((s) => s.name === name);
  }

  get messageType(): string {
    return this.msh.get(9, 1).toUpperCase();
  }

  get triggerEvent(): string {
    return this.msh.get(9, 2).toUpperCase();
  }

  get controlId(): string {
    return this.msh.get(10);
  }

  get version(): string {
    return this.msh.get(12);
  }
}

/** Splits text into segment lines: `\r`, `\n` and `\r\n` are all accepted, blank lines are skipped. */
export function segmentLines(text: string): string[] {
  return text
    .split(/\r\n|\r|\n/)
    .map((line) => line.replace(/[ \t]+$/, ''))
    .filter((line) => line.length > 0);
}

/** Reads the delimiters from the start of an MSH (or FHS/BHS) segment. */
export function delimitersOf(line: string): Delimiters {
  if (line.length < 8) {
    throw new Hl7ParseError('MSH is too short to hold its field separator and encoding characters (MSH-1, MSH-2)');
  }
  const field = line[3];
  let encoding = line.slice(4, line.indexOf(field, 4) === -1 ? 8 : line.indexOf(field, 4));
  // A doubled escape character (\`^~\\&\`) is a sender's string-quoting slip, common enough to be read as meant.
  if (encoding.length === 5 && encoding[2] === encoding[3]) {
    encoding = encoding.slice(0, 3) + encoding.slice(4);
  }
  if (encoding.length < 3 || encoding.length > 5) {
    throw new Hl7ParseError(`MSH-2 must hold 4 encoding characters, got "${encoding}"`);
  }
  const chars = [field, ...encoding.slice(0, 4)];
  if (new Set(chars).size !== chars.length || chars.some((c) => /[A-Za-z0-9\r\n]/.test(c))) {
    throw new Hl7ParseError(`MSH-1/MSH-2 delimiters must be distinct punctuation characters, got "${field}${encoding}"`);
  }
  return {
    field,
    component: encoding[0],
    repetition: encoding[1],
    escape: encoding[2],
    subcomponent: encoding[3] ?? '&',
  };
}

/** Parses one message (text already decoded from its character set, MLLP framing removed). */
export function parseHl7(text: string): Hl7Message {
  const lines = segmentLines(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  if (lines.length === 0) {
    throw new Hl7ParseError('The message is empty');
  }
  if (!lines[0].startsWith('MSH')) {
    throw new Hl7ParseError(`A message must start with an MSH segment, it starts with "${lines[0].slice(0, 3)}"`);
  }
  const d = delimitersOf(lines[0]);
  const seen = new Map<string, number>();
  const segments = lines.map((line, index) => {
    const parts = line.split(d.field);
    const name = parts[0];
    if (!/^[A-Z][A-Z0-9]{2}$/.test(name)) {
      throw new Hl7ParseError(`Segment ${index + 1} has an invalid name "${name.slice(0, 10)}"`);
    }
    // MSH-1 is the field separator itself, so MSH's fields are shifted by one against the split.
    const fields = name === 'MSH' ? [name, d.field, ...parts.slice(1)] : parts;
    const occurrence = (seen.get(name) ?? 0) + 1;
    seen.set(name, occurrence);
    return new Segment(name, fields, d, index, occurrence);
  });
  return new Hl7Message(segments, d);
}

/** Decodes HL7 escape sequences. Formatting escapes (\H\, \N\, \Cxxyy\, \Mxxyyzz\) are dropped. */
export function unescapeHl7(value: string, d: Delimiters): string {
  const e = d.escape;
  if (!e || e === '\u0000' || !value.includes(e)) {
    return value;
  }
  let out = '';
  let i = 0;
  while (i < value.length) {
    const ch = value[i];
    if (ch !== e) {
      out += ch;
      i++;
      continue;
    }
    const end = value.indexOf(e, i + 1);
    if (end === -1) {
      out += value.slice(i);
      break;
    }
    const seq = value.slice(i + 1, end);
    out += decodeEscape(seq, d) ?? `${e}${seq}${e}`;
    i = end + 1;
  }
  return out;
}

function decodeEscape(seq: string, d: Delimiters): string | undefined {
  switch (seq) {
    case 'F':
      return d.field;
    case 'S':
      return d.component;
    case 'T':
      return d.subcomponent;
    case 'R':
      return d.repetition;
    case 'E':
      return d.escape;
    case '.br':
      return '\n';
    case 'H':
    case 'N':
      return '';
  }
  if (/^X([0-9A-Fa-f]{2})+$/.test(seq)) {
    // Hexadecimal data: bytes in the message's character set, which has already been decoded to text, so the
    // bytes are read as UTF-8 (the common case: \X0D\\X0A\ line breaks).
    return Buffer.from(seq.slice(1), 'hex').toString('utf8');
  }
  if (/^(C[0-9A-Fa-f]{4}|M[0-9A-Fa-f]{4,6}|\.(sp|fi|nf|in|ti|sk|ce)[+-]?\d*)$/.test(seq)) {
    return seq === '.sp' ? '\n' : '';
  }
  return undefined;
}

/** Escapes a value for an outgoing message (ACK texts, outbound messages). */
export function escapeHl7(value: string, d: Delimiters): string {
  let out = '';
  for (const ch of value) {
    if (ch === d.escape) out += `${d.escape}E${d.escape}`;
    else if (ch === d.field) out += `${d.escape}F${d.escape}`;
    else if (ch === d.component) out += `${d.escape}S${d.escape}`;
    else if (ch === d.subcomponent) out += `${d.escape}T${d.escape}`;
    else if (ch === d.repetition) out += `${d.escape}R${d.escape}`;
    else if (ch === '\r' || ch === '\n') out += `${d.escape}.br${d.escape}`;
    else out += ch;
  }
  return out;
}

export const STANDARD_DELIMITERS: Delimiters = { field: '|', component: '^', repetition: '~', escape: '\\', subcomponent: '&' };
