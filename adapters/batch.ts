/**
 * Splitting a file or batch into messages: each message starts at an MSH segment; batch envelopes (FHS, BHS, BTS,
 * FTS) are dropped. Works on bytes (a latin1 view keeps byte offsets), so that each message is decoded later as a
 * whole by its own MSH-18.
 */
const ENVELOPE = /^(FHS|BHS|BTS|FTS)/;

export function splitMessages(bytes: Buffer): Buffer[] {
  let body = bytes;
  if (body.length >= 3 && body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf) {
    body = body.subarray(3);
  }
  const text = body.toString('latin1');
  const lines: Array<{ start: number; end: number; line: string }> = [];
  const re = /[^\r\n]+/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    lines.push({ start: m.index, end: m.index + m[0].length, line: m[0] });
  }
  const messages: Buffer[] = [];
  let current: Array<{ start: number; end: number }> = [];
  const flush = (): void => {
    if (current.length) {
      messages.push(Buffer.concat(current.map((l) => Buffer.concat([body.subarray(l.start, l.end), Buffer.from('\r')]))));
    }
    current = [];
  };
  for (const l of lines) {
    if (ENVELOPE.test(l.line)) {
      flush();
      continue;
    }
    if (l.line.startsWith('MSH')) flush();
    if (l.line.trim() === '') continue;
    current.push(l);
  }
  flush();
  return messages;
}
