// A client connection as the broker sees it: bytes in, bytes out. Outgoing
// bytes are collected per connection and written once per event-loop turn
// (small packets are copied into one buffer; large payloads are passed by
// reference and written with writev). The transport knows nothing of MQTT.

import type { Duplex } from 'node:stream';

/** Something that runs a function once a condition is met (the broker's committer: once the store committed). */
export interface Gate {
  after(fn: () => void): void;
  /** Number of the batch that after() adds to now (grows as batches are taken); gates open in this order. */
  readonly batch: number;
}

/** What the listener knows of a connection before any MQTT byte (set by the transport, read by the broker). */
export interface ConnectionMeta {
  /** Listener name (ListenerOptions.name). */
  listener: string;
  transport: 'tcp' | 'tls' | 'ws' | 'wss';
  /** Client IP address without port (from the PROXY header where the listener takes one); '' if unknown. */
  remoteIp: string;
  /**
   * The user name the client certificate gives (identityAsUsername 'cn' or 'subject'): such a client is
   * authenticated by its certificate; undefined when the listener does not take identities from certificates.
   */
  certificateUsername?: string;
}

export interface ConnectionHandler {
  onData(chunk: Buffer): void;
  /** The socket took all it had buffered: the broker may send what it held back. */
  onDrain(): void;
  onClose(): void;
}

/** Payloads at least this large are written by reference instead of copied. */
const COPY_LIMIT = 2048;
const MIN_CHUNK = 256;
const MAX_CHUNK = 64 * 1024;

const dirty: Connection[] = [];
let flushScheduled = false;

function flushAll(): void {
  flushScheduled = false;
  // A flush may schedule more writes for the next turn; take the current list.
  const list = dirty.splice(0, dirty.length);
  for (const c of list) c.flush();
}

function onSocketData(this: Duplex & { petrel?: Connection }, chunk: Buffer): void {
  this.petrel!.handler.onData(chunk);
}
function onSocketDrain(this: Duplex & { petrel?: Connection }): void {
  this.petrel!.drained();
}
function onSocketEnd(this: Duplex & { petrel?: Connection }): void {
  this.petrel!.peerEnded();
}
function onSocketClose(this: Duplex & { petrel?: Connection }): void {
  this.petrel!.closed();
}
function onSocketError(this: Duplex & { petrel?: Connection }): void {
  // 'close' follows; errors such as ECONNRESET are part of life for a broker.
}

export class Connection {
  handler: ConnectionHandler;
  private address: string | undefined = undefined;
  private readonly addressOf: (socket: Duplex) => string;
  private readonly socket: Duplex & { petrel?: Connection; writableLength: number };
  private chunk: Buffer | null = null;
  private off = 0;
  private parts: Buffer[] | null = null;
  /** Bytes collected and not yet handed to the socket. */
  private pending = 0;
  private sizeHint = MIN_CHUNK;
  private queued = false;
  private ending = false;
  /** Someone found the connection backed up and waits for room (see writable). */
  private waitingDrain = false;
  /** Output is held back until a gate opens (see holdUntil): gates not yet open, and the batch of the last. */
  private holds = 0;
  private heldBatch = -1;
  /** Destroys the socket if the peer has not closed 2 s after end(). */
  private endTimer: NodeJS.Timeout | null = null;
  /** end() was called while held: it runs when the gate opens. */
  private endWhenOpen = false;
  /** Bytes buffered at which the connection counts as backed up. */
  private readonly limit: number;
  isClosed = false;
  /** Listener, transport, client IP, certificate identity (see ConnectionMeta). */
  meta: ConnectionMeta = { listener: 'tcp', transport: 'tcp', remoteIp: '' };
  /** Bytes handed to the socket in total. */
  bytesOut = 0;

  /** addressOf names the peer (e.g. '10.0.0.7:51234'); asked only when someone wants it. */
  constructor(socket: Duplex, addressOf: (socket: Duplex) => string, handler: ConnectionHandler, limit: number) {
    this.socket = socket as Duplex & { petrel?: Connection; writableLength: number };
    this.limit = limit;
    this.addressOf = addressOf;
    this.handler = handler;
    this.socket.petrel = this;
    socket.on('data', onSocketData);
    socket.on('drain', onSocketDrain);
    socket.on('end', onSocketEnd);
    socket.on('close', onSocketClose);
    socket.on('error', onSocketError);
  }

  get remoteAddress(): string {
    return (this.address ??= this.addressOf(this.socket));
  }

  /** Bytes waiting to be sent (ours and the socket's). */
  get buffered(): number {
    return this.pending + this.socket.writableLength;
  }

  /**
   * False when more than the limit is buffered; the handler's onDrain() is called once there is room again.
   * What was collected in this turn is handed to the socket first, so what counts is what the socket could
   * not send (the peer does not read), not how much was written in one turn.
   */
  get writable(): boolean {
    if (this.pending + this.socket.writableLength < this.limit) return true;
    if (this.pending > 0 && this.holds === 0) {
      this.flush();
      if (this.socket.writableLength < this.limit) return true;
    }
    this.waitingDrain = true;
    return false;
  }

  /**
   * Hold everything written so far (and until the gate opens) off the wire until gate.after() runs: the broker
   * uses it so that a packet reaches the client only after the store committed what it depends on.
   */
  holdUntil(gate: Gate): void {
    if (this.isClosed || this.heldBatch === gate.batch) return;
    // Held already for an earlier batch: wait for this one too (the last gate to open lets it go).
    this.holds++;
    this.heldBatch = gate.batch;
    gate.after(() => {
      if (--this.holds > 0) return;
      this.heldBatch = -1;
      if (this.endWhenOpen) {
        this.endWhenOpen = false;
        this.ending = false;
        this.end();
      } else {
        this.flush();
      }
    });
  }

  /** Called on the socket's 'drain', and after each flush. */
  drained(): void {
    if (this.waitingDrain && !this.isClosed && this.pending + this.socket.writableLength < this.limit) {
      this.waitingDrain = false;
      this.handler.onDrain();
    }
  }

  /**
   * Queue bytes. Small ones are copied (the caller may reuse its buffer); large ones are kept by reference.
   * `owned`: the buffer is the caller's to give away (freshly encoded); the first write of a turn then
   * goes out as it is, without a copy.
   */
  write(data: Buffer, owned = false): void {
    if (this.isClosed || this.ending) return;
    const n = data.length;
    if (n >= COPY_LIMIT || (owned && this.pending === 0)) {
      this.cut();
      (this.parts ??= []).push(data);
    } else {
      const at = this.reserve(n);
      data.copy(this.chunk!, at);
    }
    this.pending += n;
    this.mark();
  }

  /**
   * Queue a header (copied, with a 16-bit big-endian value written at valueOffset unless it is -1, and
   * flagBits OR-ed into its first byte) followed by a body.
   */
  writeWithHeader(header: Buffer, valueOffset: number, value: number, flagBits: number, body: Buffer): void {
    if (this.isClosed || this.ending) return;
    const h = header.length;
    const b = body.length;
    const large = b >= COPY_LIMIT;
    // A large body goes to the socket as it is, after the header; a small one is copied behind it.
    const at = this.reserve(large ? h : h + b);
    const chunk = this.chunk!;
    header.copy(chunk, at);
    if (valueOffset >= 0) {
      chunk[at + valueOffset] = value >>> 8;
      chunk[at + valueOffset + 1] = value & 0xff;
    }
    chunk[at] |= flagBits;
    if (large) {
      this.cut();
      (this.parts ??= []).push(body);
    } else if (b > 0) {
      body.copy(chunk, at + h);
    }
    this.pending += h + b;
    this.mark();
  }

  /** Flush what is queued, then close the connection (destroyed if the peer does not read within 2 s). */
  end(): void {
    if (this.isClosed || this.ending) return;
    if (this.holds > 0) {
      // What is held goes out (then the socket ends) when the gate opens.
      this.endWhenOpen = true;
      this.ending = true;
      this.endTimer ??= setTimeout(() => this.destroy(), 2000).unref();
      return;
    }
    this.flush();
    this.ending = true;
    this.socket.end();
    // A peer that never closes its side is cut off; the timer goes with the socket (see closed).
    this.endTimer ??= setTimeout(() => this.destroy(), 2000).unref();
  }

  destroy(): void {
    if (this.isClosed) return;
    this.socket.destroy();
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  /**
   * The peer ended its side (a half-open socket): the handler hears it as the peer going away, then our side
   * ends (after any hold: see holdUntil). The handler's onClose() may be called again by the socket's 'close'.
   */
  peerEnded(): void {
    if (this.isClosed) return;
    this.handler.onClose();
    this.end();
  }

  /** Called by the socket's 'close'. */
  closed(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    if (this.endTimer !== null) {
      // Else the timer would keep this connection (and its buffers) alive for 2 s after the close.
      clearTimeout(this.endTimer);
      this.endTimer = null;
    }
    this.chunk = null;
    this.parts = null;
    this.pending = 0;
    this.handler.onClose();
  }

  /** Hand what is queued to the socket: one write, or one writev for several parts. */
  flush(): void {
    this.queued = false;
    if (this.pending === 0 || this.isClosed || this.holds > 0) return;
    this.cut();
    const parts = this.parts!;
    this.parts = null;
    const s = this.socket;
    if (parts.length === 1) {
      s.write(parts[0]!);
    } else {
      s.cork();
      for (const p of parts) s.write(p);
      s.uncork();
    }
    this.bytesOut += this.pending;
    this.sizeHint = Math.min(MAX_CHUNK, Math.max(MIN_CHUNK, this.pending));
    this.pending = 0;
    // The used part of the chunk now belongs to the socket; the rest is released too, so an idle
    // connection holds no buffer.
    this.chunk = null;
    if (this.waitingDrain) this.drained();
  }

  private mark(): void {
    if (this.queued) return;
    this.queued = true;
    dirty.push(this);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flushAll);
    }
  }

  /** Room for n bytes in the current chunk; returns the offset to write at. */
  private reserve(n: number): number {
    let chunk = this.chunk;
    if (chunk === null || chunk.length - this.off < n) {
      this.cut();
      const size = Math.max(n, this.sizeHint);
      chunk = this.chunk = Buffer.allocUnsafe(size);
      this.off = 0;
      this.sizeHint = Math.min(MAX_CHUNK, size * 2);
    }
    const at = this.off;
    this.off += n;
    return at;
  }

  /** Close the current chunk: its used part becomes a part to write. */
  private cut(): void {
    const chunk = this.chunk;
    if (chunk !== null && this.off > 0) {
      (this.parts ??= []).push(chunk.subarray(0, this.off));
      this.chunk = chunk.subarray(this.off);
      this.off = 0;
      if (this.chunk.length < 64) this.chunk = null;
    }
  }
}
