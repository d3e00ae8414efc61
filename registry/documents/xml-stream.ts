/**
 * Streaming XML for documents: bytes → text in the document's declared encoding (UTF-8, GB18030/GBK, … through
 * iconv-lite) → sax events, chunk by chunk. sax never resolves external entities or DTDs, so a hostile document
 * cannot make the server fetch files or expand entity bombs.
 */
import iconv from 'iconv-lite';
import sax from 'sax';

export interface XmlHandlers {
  open(node: sax.QualifiedTag, path: readonly string[]): void;
  close(local: string, path: readonly string[]): void;
  text(text: string, path: readonly string[]): void;
}

/** Thrown by a handler to stop reading early (the header is read; the body is not needed). */
export class StopParsing extends Error {}

const HEAD_BYTES = 200;

/** The encoding an XML declaration names, looking only at the first bytes (ASCII-compatible encodings). */
function declaredEncoding(head: Buffer): string {
  const declaration = /^\uFEFF?<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9_\-.]+)["']/.exec(head.subarray(0, HEAD_BYTES).toString('latin1'));
  const name = declaration?.[1] ?? 'utf-8';
  return iconv.encodingExists(name) ? name : 'utf-8';
}

export class XmlFormatError extends Error {}

/** A sax parser fed with bytes: decodes them in the declared encoding and reports the first error as XmlFormatError. */
export class XmlFeeder {
  private readonly parser = sax.parser(true, { xmlns: true, position: true });
  private readonly path: string[] = [];
  private failure: Error | undefined;
  private decoder: ReturnType<typeof iconv.getDecoder> | undefined;
  /** The first bytes, kept until the XML declaration can be read. */
  private head: Buffer | undefined;

  constructor(handlers: XmlHandlers) {
    const { parser, path } = this;
    parser.onerror = (err) => {
      this.failure ??= new XmlFormatError(err.message.replace(/\n/g, ' '));
      // sax stops at an error unless resumed; the first error is the one reported once this write returns.
      parser.resume();
    };
    parser.onopentag = (node) => {
      const tag = node as sax.QualifiedTag;
      path.push(tag.local);
      handlers.open(tag, path);
    };
    parser.onclosetag = () => {
      handlers.close(path[path.length - 1], path);
      path.pop();
    };
    parser.ontext = (text) => handlers.text(text, path);
    parser.oncdata = (text) => handlers.text(text, path);
    // Documents exchanged between systems have no DTD: one is refused rather than half-honoured.
    parser.ondoctype = () => {
      throw new XmlFormatError('the document has a DOCTYPE declaration; DTDs and entity declarations are not accepted');
    };
  }

  feed(piece: Uint8Array): void {
    const bytes = Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
    if (!this.decoder) {
      // The XML declaration must be seen whole before the encoding is chosen.
      this.head = this.head ? Buffer.concat([this.head, bytes]) : bytes;
      if (this.head.length < HEAD_BYTES) {
        return;
      }
      this.start();
      return;
    }
    this.parser.write(this.decoder.write(bytes));
    this.check();
  }

  end(): void {
    if (!this.decoder) {
      this.start();
    }
    this.parser.write(this.decoder?.end() ?? '');
    this.parser.close();
    this.check();
  }

  private start(): void {
    const head = this.head ?? Buffer.alloc(0);
    this.head = undefined;
    this.decoder = iconv.getDecoder(declaredEncoding(head));
    this.parser.write(this.decoder.write(head));
    this.check();
  }

  private check(): void {
    if (this.failure) {
      throw this.failure;
    }
  }
}

/**
 * Feeds the content to sax, calling the handlers with the path of local element names (namespaces are checked by
 * the caller on the root). Resolves when the document ended or a handler threw StopParsing.
 */
export async function parseXmlStream(chunks: AsyncIterable<Uint8Array>, handlers: XmlHandlers): Promise<void> {
  const feeder = new XmlFeeder(handlers);
  try {
    for await (const piece of chunks) {
      feeder.feed(piece);
    }
    feeder.end();
  } catch (err) {
    if (err instanceof StopParsing) {
      return;
    }
    throw err;
  }
}
