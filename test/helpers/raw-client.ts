// A raw TCP MQTT client for tests: it sends exactly the bytes or packets it is
// given (encodePacket from the codec under test, or hand-written bytes), and
// records every packet the server sends, decoded with the client-side decoder.
// Every wait is bounded.

import net from 'node:net';
import { Decoder } from '../../src/protocol/decoder.js';
import { encodePacket } from '../../src/protocol/encoder.js';
import type {
  AuthPacket,
  ConnackPacket,
  ConnectPacket,
  DisconnectPacket,
  Packet,
  Properties,
  ProtocolVersion,
  PublishPacket,
  QoS,
  SubackPacket,
  SubscriptionRequest,
  UnsubackPacket,
  WillMessage,
} from '../../src/protocol/packets.js';
import { PACKET_NAMES } from '../../src/protocol/packets.js';
import type { ProtocolError } from '../../src/protocol/errors.js';
import { openStream, TEST_TRANSPORT, type TestTransport } from './transport.js';

export const DEFAULT_WAIT = 3000;

export interface RawConnectOptions {
  clientId?: string;
  clean?: boolean;
  keepAlive?: number;
  username?: string;
  password?: Buffer;
  will?: WillMessage;
  properties?: Properties;
}

export function packetName(p: Packet | undefined): string {
  return p === undefined ? 'nothing' : (PACKET_NAMES[p.type] ?? `type ${p.type}`);
}

export class RawClient {
  readonly socket: net.Socket;
  readonly version: ProtocolVersion;
  /** Every packet received, in order. */
  readonly received: Packet[] = [];
  /** Decoding errors of what the server sent (a server bug if not empty). */
  readonly decodeErrors: ProtocolError[] = [];
  /** Bytes received in total. */
  bytesIn = 0;
  /** Size in bytes (fixed header included) of every packet received, in order. */
  readonly packetSizes: number[] = [];
  private frame: Buffer = Buffer.alloc(0);
  /** Set when the socket closed; `closedAt` is the time. */
  isClosed = false;
  closedAt = 0;
  /** The server ended its side (FIN) or the socket closed. */
  private readonly decoder: Decoder;
  private readPos = 0;
  private waiters: (() => void)[] = [];
  private packetId = 0;

  private constructor(socket: net.Socket, version: ProtocolVersion) {
    this.socket = socket;
    this.version = version;
    const d = new Decoder({ side: 'client', protocolVersion: version });
    d.onPacket = (p: Packet) => {
      if (p.type === 3) p = { ...p, payload: Buffer.from(p.payload) };
      this.received.push(p);
      this.wake();
    };
    d.onError = (e: ProtocolError) => {
      this.decodeErrors.push(e);
      this.wake();
    };
    this.decoder = d;
    socket.on('data', (chunk: Buffer) => {
      this.bytesIn += chunk.length;
      this.measure(chunk);
      d.push(chunk);
    });
    const onGone = (): void => {
      if (!this.isClosed) {
        this.isClosed = true;
        this.closedAt = Date.now();
      }
      this.wake();
    };
    // 'end' (server FIN) counts as closed: the server will send nothing more.
    socket.on('end', () => {
      onGone();
      socket.end();
    });
    socket.on('close', onGone);
    socket.on('error', () => {
      /* ECONNRESET and the like: 'close' follows */
    });
  }

  /** Split the byte stream on packet boundaries to record packet sizes. */
  private measure(chunk: Buffer): void {
    let buf = this.frame.length > 0 ? Buffer.concat([this.frame, chunk]) : chunk;
    for (;;) {
      if (buf.length < 2) break;
      let rl = 0;
      let mult = 1;
      let i = 1;
      let complete = false;
      while (i < buf.length && i < 5) {
        const b = buf[i++]!;
        rl += (b & 0x7f) * mult;
        mult *= 128;
        if ((b & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete) break;
      const size = i + rl;
      if (buf.length < size) break;
      this.packetSizes.push(size);
      buf = buf.subarray(size);
    }
    this.frame = Buffer.from(buf);
  }

  /**
   * Open a connection (no MQTT yet) over the test transport (PETREL_TEST_TRANSPORT; TCP by default). `version`
   * sets how server packets are decoded.
   */
  static open(port: number, version: ProtocolVersion, host = '127.0.0.1', ms = DEFAULT_WAIT, transport: TestTransport = TEST_TRANSPORT): Promise<RawClient> {
    if (transport !== 'tcp' && transport !== 'proxy') {
      // TLS or WebSocket: a byte stream like the socket (for ws, members only a net.Socket has are undefined).
      return openStream(transport, port, host, ms).then((s) => new RawClient(s as net.Socket, version));
    }
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host, noDelay: true });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`timed out after ${ms} ms connecting to ${host}:${port}`));
      }, ms);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        resolve(new RawClient(socket, version));
      });
      const onError = (err: Error): void => {
        clearTimeout(timer);
        reject(err);
      };
      socket.once('error', onError);
    });
  }

  /** Open, send CONNECT, and wait for CONNACK (which must be a success unless `allowRefusal`). */
  static async connect(port: number, version: ProtocolVersion, opts: RawConnectOptions = {}, allowRefusal = false): Promise<{ client: RawClient; connack: ConnackPacket }> {
    const client = await RawClient.open(port, version);
    try {
      client.sendPacket(client.connectPacket(opts));
      const connack = await client.expect(2);
      if (!allowRefusal && connack.reasonCode !== 0) {
        throw new Error(`CONNACK refused with 0x${connack.reasonCode.toString(16)}`);
      }
      return { client, connack };
    } catch (err) {
      client.destroy();
      throw err;
    }
  }

  connectPacket(opts: RawConnectOptions = {}): ConnectPacket {
    const p: ConnectPacket = {
      type: 1,
      protocolName: this.version === 3 ? 'MQIsdp' : 'MQTT',
      protocolVersion: this.version,
      clean: opts.clean ?? true,
      keepAlive: opts.keepAlive ?? 60,
      clientId: opts.clientId ?? `raw-${process.pid}-${Math.random().toString(36).slice(2, 10)}`,
    };
    if (opts.username !== undefined) p.username = opts.username;
    if (opts.password !== undefined) p.password = opts.password;
    if (opts.will !== undefined) p.will = opts.will;
    if (opts.properties !== undefined) p.properties = opts.properties;
    return p;
  }

  nextPacketId(): number {
    this.packetId = (this.packetId % 65535) + 1;
    return this.packetId;
  }

  // ---- sending ----

  send(bytes: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  sendPacket(p: Packet): void {
    this.send(encodePacket(p, this.version));
  }

  /** Write bytes one at a time, each in its own write (waiting for it to be flushed). */
  async sendBytewise(bytes: Buffer): Promise<void> {
    for (let i = 0; i < bytes.length; i++) {
      await new Promise<void>((resolve, reject) => {
        this.socket.write(bytes.subarray(i, i + 1), (err) => (err ? reject(err) : resolve()));
      });
      await new Promise((r) => setImmediate(r));
    }
  }

  publish(topic: string, payload: string | Buffer, opts: { qos?: QoS; retain?: boolean; dup?: boolean; packetId?: number; properties?: Properties } = {}): number {
    const qos = opts.qos ?? 0;
    const packetId = qos === 0 ? 0 : (opts.packetId ?? this.nextPacketId());
    const p: PublishPacket = {
      type: 3,
      qos,
      dup: opts.dup ?? false,
      retain: opts.retain ?? false,
      topic,
      packetId,
      payload: typeof payload === 'string' ? Buffer.from(payload) : payload,
    };
    if (opts.properties !== undefined) p.properties = opts.properties;
    this.sendPacket(p);
    return packetId;
  }

  puback(packetId: number, reasonCode = 0): void {
    this.sendPacket({ type: 4, packetId, reasonCode });
  }

  async subscribe(filters: (string | Partial<SubscriptionRequest> & { filter: string })[], properties?: Properties, ms = DEFAULT_WAIT): Promise<SubackPacket> {
    const packetId = this.nextPacketId();
    const subscriptions: SubscriptionRequest[] = filters.map((f) =>
      typeof f === 'string'
        ? { filter: f, qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 }
        : { qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0, ...f },
    );
    this.sendPacket(properties === undefined ? { type: 8, packetId, subscriptions } : { type: 8, packetId, subscriptions, properties });
    const suback = await this.expect(9, ms);
    if (suback.packetId !== packetId) throw new Error(`SUBACK for packet id ${suback.packetId}, expected ${packetId}`);
    return suback;
  }

  async unsubscribe(filters: string[], ms = DEFAULT_WAIT): Promise<UnsubackPacket> {
    const packetId = this.nextPacketId();
    this.sendPacket({ type: 10, packetId, filters });
    return this.expect(11, ms);
  }

  disconnect(reasonCode = 0, properties?: Properties): void {
    this.sendPacket(properties === undefined ? { type: 14, reasonCode } : { type: 14, reasonCode, properties });
    this.socket.end();
  }

  /** Drop the connection without DISCONNECT (as a network failure would). */
  destroy(): void {
    this.socket.destroy();
  }

  // ---- receiving ----

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private changed(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((f) => f !== done);
        resolve(false);
      }, ms);
      const done = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      this.waiters.push(done);
    });
  }

  /** Packets received and not yet taken with next()/expect(). */
  get unread(): Packet[] {
    return this.received.slice(this.readPos);
  }

  /** The next packet not yet read, waiting up to ms. Rejects on timeout or if the connection closed first. */
  async next(ms = DEFAULT_WAIT): Promise<Packet> {
    const deadline = Date.now() + ms;
    for (;;) {
      if (this.readPos < this.received.length) return this.received[this.readPos++]!;
      if (this.decodeErrors.length > 0) throw new Error(`server sent an undecodable packet: ${this.decodeErrors[0]!.message}`);
      if (this.isClosed) throw new Error('connection closed before the next packet arrived');
      const left = deadline - Date.now();
      if (left <= 0 || !(await this.changed(left))) {
        if (this.readPos < this.received.length) continue;
        throw new Error(`timed out after ${ms} ms waiting for a packet`);
      }
    }
  }

  /** The next packet, which must be of the given type (PINGRESP is skipped unless asked for). */
  expect(type: 2, ms?: number): Promise<ConnackPacket>;
  expect(type: 3, ms?: number): Promise<PublishPacket>;
  expect(type: 9, ms?: number): Promise<SubackPacket>;
  expect(type: 11, ms?: number): Promise<UnsubackPacket>;
  expect(type: 14, ms?: number): Promise<DisconnectPacket>;
  expect(type: 15, ms?: number): Promise<AuthPacket>;
  expect(type: number, ms?: number): Promise<Packet>;
  async expect(type: number, ms = DEFAULT_WAIT): Promise<Packet> {
    for (;;) {
      const p = await this.next(ms);
      if (p.type === 13 && type !== 13) continue;
      if (p.type !== type) {
        throw new Error(`expected ${PACKET_NAMES[type]}, got ${packetName(p)} ${describe(p)}`);
      }
      return p;
    }
  }

  /** Resolves once the server has closed the connection (within ms), with how long it took. */
  async closed(ms = DEFAULT_WAIT): Promise<number> {
    const start = Date.now();
    const deadline = start + ms;
    while (!this.isClosed) {
      const left = deadline - Date.now();
      if (left <= 0 || !(await this.changed(left))) {
        if (this.isClosed) break;
        throw new Error(`timed out after ${ms} ms waiting for the server to close the connection`);
      }
    }
    return this.closedAt - start;
  }

  /** Wait ms and assert that nothing (no packet) arrived meanwhile; returns what did arrive. */
  async quiet(ms: number): Promise<Packet[]> {
    const before = this.received.length;
    await new Promise((r) => setTimeout(r, ms));
    return this.received.slice(before);
  }
}

/** A short description of a packet for assertion messages. */
export function describe(p: Packet): string {
  switch (p.type) {
    case 2:
    case 14:
    case 15:
      return `(reason 0x${p.reasonCode.toString(16)})`;
    case 3:
      return `(topic ${JSON.stringify(p.topic)}, qos ${p.qos})`;
    default:
      return '';
  }
}
