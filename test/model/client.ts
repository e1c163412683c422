// One network connection of a subscriber in the model-based test. It follows the
// QoS 1/2 receiver rules to the letter (PUBACK; PUBREC, and the packet id is held
// until PUBREL [MQTT-4.3.3-9]), so that the harness sees exactly what the broker
// delivered, re-sent or delivered twice. The client-side session state (the QoS 2
// ids awaiting PUBREL) lives in a ClientSessionState that outlives a connection
// and is replaced when the broker answers Session Present 0 [MQTT-3.2.2-5].
// Built on Petrel's codec, like test/helpers/peer.ts; every wait is bounded.

import net from 'node:net';
import { Decoder } from '../../src/protocol/decoder.js';
import { encodePacket } from '../../src/protocol/encoder.js';
import type { ConnackPacket, Packet, Properties, ProtocolVersion, PublishPacket, QoS, WillMessage } from '../../src/protocol/packets.js';

/** What a client keeps for its session across connections. */
export class ClientSessionState {
  /** Inbound QoS 2 packet ids received and not yet released. */
  readonly inboundQos2 = new Set<number>();
}

export interface Arrival {
  packet: PublishPacket;
  /** False for a QoS 2 PUBLISH whose packet id was still held: the same message, not handed to the application again. */
  delivered: boolean;
}

export interface ModelConnectOptions {
  clientId: string;
  version: 4 | 5;
  clean: boolean;
  /** v5 Session Expiry Interval (seconds). */
  expiry: number;
  /** v5 Receive Maximum, if any. */
  receiveMaximum?: number;
  /** Send PUBACK/PUBREC this many ms after the PUBLISH (a slow subscriber), in order. Default 0: at once. */
  ackDelayMs?: number;
  will?: WillMessage;
}

export class ModelConnection {
  readonly socket: net.Socket;
  readonly version: ProtocolVersion;
  closed = false;
  /** Resolves when the socket closed. */
  readonly closedPromise: Promise<void>;
  private waiters: { test: (p: Packet) => boolean; resolve: (p: Packet | null) => void }[] = [];
  private nextId = 1;
  /** PUBLISHes that arrived before a handler was attached (they may come in the same read as CONNACK). */
  private early: Arrival[] | null = [];
  private handler: ((a: Arrival) => void) | null = null;

  private ackDelayMs = 0;

  private constructor(socket: net.Socket, version: ProtocolVersion, public state: ClientSessionState) {
    this.socket = socket;
    this.version = version;
    const d = new Decoder({ side: 'client', protocolVersion: version });
    d.onPacket = (p) => this.onPacket(p);
    d.onError = (e) => socket.destroy(e);
    socket.on('data', (c: Buffer) => d.push(c));
    socket.on('error', () => {});
    this.closedPromise = new Promise((resolve) => {
      socket.on('close', () => {
        this.closed = true;
        const w = this.waiters;
        this.waiters = [];
        for (const x of w) x.resolve(null);
        resolve();
      });
    });
  }

  /** Connect and wait for CONNACK. The state is the client's session state to continue with. */
  static async connect(port: number, o: ModelConnectOptions, state: ClientSessionState, ms = 10_000): Promise<{ conn: ModelConnection; connack: ConnackPacket }> {
    const socket = net.connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    const conn = new ModelConnection(socket, o.version, state);
    conn.ackDelayMs = o.ackDelayMs ?? 0;
    let properties: Properties | undefined;
    if (o.version === 5) {
      properties = { sessionExpiryInterval: o.expiry };
      if (o.receiveMaximum !== undefined) properties.receiveMaximum = o.receiveMaximum;
    }
    const p: Packet = { type: 1, protocolName: 'MQTT', protocolVersion: o.version, clean: o.clean, keepAlive: 60, clientId: o.clientId };
    if (properties) p.properties = properties;
    if (o.will) p.will = o.will;
    const w = conn.expect((x) => x.type === 2, ms, 'CONNACK');
    conn.send(p);
    try {
      return { conn, connack: (await w) as ConnackPacket };
    } catch (err) {
      socket.destroy();
      throw err;
    }
  }

  /** Called for every PUBLISH, in order (after the QoS 2 duplicate check); what arrived before is handed over first. */
  set onArrival(fn: (a: Arrival) => void) {
    this.handler = fn;
    const early = this.early ?? [];
    this.early = null;
    for (const a of early) fn(a);
  }

  private send(p: Packet): void {
    if (!this.socket.destroyed && !this.closed) this.socket.write(encodePacket(p, this.version));
  }

  private allocId(): number {
    const id = this.nextId;
    this.nextId = id === 65535 ? 1 : id + 1;
    return id;
  }

  expect(test: (p: Packet) => boolean, ms: number, what: string): Promise<Packet> {
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(new Error(`connection closed before ${what}`));
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
      }, ms);
      const done = (p: Packet | null): void => {
        clearTimeout(timer);
        if (p === null) reject(new Error(`connection closed before ${what}`));
        else resolve(p);
      };
      this.waiters.push({ test, resolve: done });
    });
  }

  async subscribe(filter: string, qos: QoS, ms = 10_000): Promise<number> {
    const packetId = this.allocId();
    const w = this.expect((p) => p.type === 9 && p.packetId === packetId, ms, `SUBACK for ${filter}`);
    this.send({ type: 8, packetId, subscriptions: [{ filter, qos, noLocal: false, retainAsPublished: false, retainHandling: 0 }] });
    const suback = await w;
    return (suback as { reasonCodes: number[] }).reasonCodes[0]!;
  }

  async unsubscribe(filter: string, ms = 10_000): Promise<void> {
    const packetId = this.allocId();
    const w = this.expect((p) => p.type === 11 && p.packetId === packetId, ms, `UNSUBACK for ${filter}`);
    this.send({ type: 10, packetId, filters: [filter] });
    await w;
  }

  /** A round trip: everything the broker sent before the PINGRESP has been received. */
  async ping(ms = 10_000): Promise<void> {
    const w = this.expect((p) => p.type === 13, ms, 'PINGRESP');
    this.send({ type: 12 });
    await w;
  }

  /** Normal DISCONNECT (v5: reason 0, optionally a new Session Expiry Interval), then wait for the close. */
  async disconnect(expiry?: number, ms = 10_000): Promise<void> {
    const p: Packet = { type: 14, reasonCode: 0 };
    if (expiry !== undefined && this.version === 5) p.properties = { sessionExpiryInterval: expiry };
    this.send(p);
    this.socket.end();
    await this.waitClosed(ms);
  }

  /** Drop the connection without DISCONNECT, as a network failure would. */
  destroy(): void {
    this.socket.destroy();
  }

  async waitClosed(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const ok = await Promise.race([
      this.closedPromise.then(() => true),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms))),
    ]);
    clearTimeout(timer);
    if (!ok) this.socket.destroy();
    return ok;
  }

  private onPacket(p: Packet): void {
    // Session Present 0: the client discards its session state [MQTT-3.2.2-5] (before any PUBLISH that follows).
    if (p.type === 2 && !p.sessionPresent) this.state = new ClientSessionState();
    if (p.type === 3) {
      let delivered = true;
      if (p.qos === 2) {
        if (this.state.inboundQos2.has(p.packetId)) delivered = false;
        else this.state.inboundQos2.add(p.packetId);
      }
      const a = { packet: { ...p, payload: Buffer.from(p.payload) }, delivered };
      if (this.handler) this.handler(a);
      else this.early?.push(a);
      const ack: Packet | null = p.qos === 1 ? { type: 4, packetId: p.packetId, reasonCode: 0 } : p.qos === 2 ? { type: 5, packetId: p.packetId, reasonCode: 0 } : null;
      if (ack !== null) {
        if (this.ackDelayMs > 0) setTimeout(() => this.send(ack), this.ackDelayMs);
        else this.send(ack);
      }
    } else if (p.type === 6) {
      this.state.inboundQos2.delete(p.packetId);
      this.send({ type: 7, packetId: p.packetId, reasonCode: 0 });
    }
    const i = this.waiters.findIndex((w) => w.test(p));
    if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(p);
  }
}
