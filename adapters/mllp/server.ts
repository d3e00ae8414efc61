/**
 * MLLP (Minimal Lower Layer Protocol) listener: each message travels as <VT> message <FS><CR>.
 *
 * Why node:net and not node-hl7-server: that library sets an encoding on the socket and decodes each TCP chunk as
 * UTF-8 text before it removes the framing, so GB18030 messages (the legacy Chinese HIS default) would be garbled,
 * and it has no bound on the size of a frame. Framing is a few lines; here the bytes of a frame are kept as they
 * are, bounded, and handed over whole, to be decoded by the charset the message declares (see hl7/charset.ts).
 *
 * Frames on one connection are answered in order (a sender waits for each ACK anyway); connections are served in
 * parallel. Optional TLS with a required client certificate.
 */
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';

const VT = 0x0b;
const FS = 0x1c;
const CR = 0x0d;
/** Frames one connection may have waiting for their ACK before the listener stops reading from it. */
const MAX_PIPELINED = 8;

export interface PeerInfo {
  /** Remote IP address (IPv4-mapped IPv6 addresses are given as IPv4). */
  address: string;
  port: number;
  /** Subject of the TLS client certificate (CN), when the connection is TLS. */
  tlsSubject?: string;
}

export interface MllpHandler {
  /** A whole frame's bytes; resolves to the ACK bytes to send back (undefined: send nothing). */
  onMessage(bytes: Buffer, peer: PeerInfo): Promise<Buffer | undefined>;
  /** A frame that passed the size limit: its first bytes only. The connection is closed after the answer. */
  onOversized(head: Buffer, peer: PeerInfo, limit: number): Promise<Buffer | undefined>;
}

export interface TlsFiles {
  certFile: string;
  keyFile: string;
  /** CA that client certificates must chain to; the client certificate is then required. */
  caFile?: string;
}

export interface MllpServerOptions {
  port: number;
  host: string;
  maxMessageBytes: number;
  /** Close a connection idle this long (ms); 0 never. Also ends a frame that never completes. */
  idleTimeoutMs: number;
  tls?: TlsFiles;
  logger: Logger;
}

export function frame(payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from([VT]), payload, Buffer.from([FS, CR])]);
}

export class MllpServer {
  private server?: net.Server;
  private readonly sockets = new Set<net.Socket>();

  constructor(
    private readonly options: MllpServerOptions,
    private readonly handler: MllpHandler,
  ) {}

  async listen(): Promise<number> {
    const onSocket = (socket: net.Socket): void => this.serve(socket);
    if (this.options.tls) {
      const t = this.options.tls;
      this.server = tls.createServer(
        {
          cert: readFileSync(t.certFile),
          key: readFileSync(t.keyFile),
          ca: t.caFile ? readFileSync(t.caFile) : undefined,
          requestCert: Boolean(t.caFile),
          rejectUnauthorized: Boolean(t.caFile),
        },
        onSocket,
      );
      this.server.on('tlsClientError', (err) => this.options.logger.warn({ err: err.message }, 'MLLP TLS handshake failed'));
    } else {
      this.server = net.createServer(onSocket);
    }
    const server = this.server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port, this.options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return (server.address() as net.AddressInfo).port;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) {
      socket.destroy();
    }
    const server = this.server;
    if (server) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  private serve(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', (err) => this.options.logger.debug({ err: err.message }, 'MLLP connection error'));
    if (this.options.idleTimeoutMs > 0) {
      socket.setTimeout(this.options.idleTimeoutMs, () => socket.destroy());
    }
    const peer: PeerInfo = {
      address: (socket.remoteAddress ?? '').replace(/^::ffff:/, ''),
      port: socket.remotePort ?? 0,
    };
    if (socket instanceof tls.TLSSocket) {
      const cert = socket.getPeerCertificate();
      const cn = cert?.subject?.CN;
      peer.tlsSubject = Array.isArray(cn) ? cn[0] : cn;
    }
    const limit = this.options.maxMessageBytes;
    let chunks: Buffer[] = [];
    let size = 0;
    let inFrame = false;
    let oversized = false;
    let head: Buffer | undefined;
    // Answers go out in the order the frames came in.
    let queue: Promise<void> = Promise.resolve();

    const send = (answer: Buffer | undefined, thenClose = false): void => {
      if (answer && !socket.destroyed) {
        socket.write(frame(answer));
      }
      if (thenClose) {
        // The sender may still be pushing megabytes we will not read: FIN after the answer, then cut it off.
        socket.end();
        setTimeout(() => socket.destroy(), 500).unref();
      }
    };

    // Frames a sender pipelines without waiting for ACKs wait here; past a few, reading pauses (bounded memory).
    let pending = 0;
    const complete = (bytes: Buffer): void => {
      if (++pending >= MAX_PIPELINED) socket.pause();
      queue = queue.then(async () => {
        try {
          send(await this.handler.onMessage(bytes, peer));
          if (--pending < MAX_PIPELINED && !oversized) socket.resume();
        } catch (err) {
          // The handler answers every problem with an ACK itself; reaching here means it could not even do that.
          this.options.logger.error({ err }, 'MLLP handler failed; closing the connection without an ACK');
          socket.destroy();
        }
      });
    };

    socket.on('data', (data: Buffer) => {
      let start = 0;
      for (let i = 0; i < data.length; i++) {
        const b = data[i];
        if (b === VT) {
          // A start byte inside a frame means the previous frame was cut off: it is dropped, unanswered.
          inFrame = true;
          oversized = false;
          chunks = [];
          size = 0;
          start = i + 1;
        } else if (inFrame && b === FS && (i + 1 >= data.length || data[i + 1] === CR)) {
          const part = data.subarray(start, i);
          if (!oversized) {
            chunks.push(part);
            complete(Buffer.concat(chunks));
          }
          inFrame = false;
          chunks = [];
          size = 0;
          if (i + 1 < data.length) {
            i++;
          }
          start = i + 1;
        }
      }
      if (inFrame && !oversized) {
        const rest = data.subarray(start);
        size += rest.length;
        if (size > limit) {
          oversized = true;
          head = Buffer.concat([...chunks, rest]).subarray(0, 64 * 1024);
          chunks = [];
          const first = head;
          // Refuse at once and close: reading on would make us buffer (or skip) megabytes for nothing.
          queue = queue.then(async () => {
            try {
              send(await this.handler.onOversized(first, peer, limit), true);
            } catch {
              socket.destroy();
            }
          });
          socket.pause();
        } else if (rest.length > 0) {
          chunks.push(Buffer.from(rest));
        }
      }
    });
  }
}

/** A small MLLP client: one request at a time on one connection (tests, the bench, outbound messages). */
export class MllpClient {
  private socket?: net.Socket;
  private buffer = Buffer.alloc(0);
  private waiting: Array<{ resolve: (b: Buffer) => void; reject: (e: Error) => void }> = [];
  private closedError?: Error;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly tlsOptions?: tls.ConnectionOptions,
  ) {}

  async connect(): Promise<this> {
    const socket = this.tlsOptions
      ? tls.connect({ host: this.host, port: this.port, ...this.tlsOptions })
      : net.connect({ host: this.host, port: this.port });
    this.socket = socket;
    await new Promise<void>((resolve, reject) => {
      socket.once(this.tlsOptions ? 'secureConnect' : 'connect', () => resolve());
      socket.once('error', reject);
    });
    socket.on('data', (data) => this.onData(data));
    const fail = (err: Error): void => {
      this.closedError = err;
      for (const w of this.waiting.splice(0)) {
        w.reject(err);
      }
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('connection closed')));
    return this;
  }

  /** Sends one framed payload and resolves to the payload of the answer frame. */
  async send(payload: Buffer | string): Promise<Buffer> {
    return this.sendRaw(frame(typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload));
  }

  /** Sends bytes as they are (no framing added): for truncated or malformed frames. */
  async sendRaw(bytes: Buffer): Promise<Buffer> {
    if (this.closedError) {
      throw this.closedError;
    }
    const answer = new Promise<Buffer>((resolve, reject) => this.waiting.push({ resolve, reject }));
    this.socket?.write(bytes);
    return answer;
  }

  write(bytes: Buffer): void {
    this.socket?.write(bytes);
  }

  get closed(): boolean {
    return this.closedError !== undefined;
  }

  close(): void {
    this.socket?.destroy();
  }

  private onData(data: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, data]);
    for (;;) {
      const start = this.buffer.indexOf(VT);
      const end = this.buffer.indexOf(FS, start + 1);
      if (start === -1 || end === -1) {
        return;
      }
      const payload = this.buffer.subarray(start + 1, end);
      this.buffer = this.buffer.subarray(end + 2);
      this.waiting.shift()?.resolve(Buffer.from(payload));
    }
  }
}
