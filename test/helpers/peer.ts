// A minimal MQTT client that follows the QoS 1/2 rules to the letter and keeps
// its session state across reconnections (in this process), so that the
// durability tests can tell exactly what the broker acknowledged, re-sent or
// delivered twice. Built on Petrel's own codec.

import net from 'node:net';
import { Decoder } from '../../src/protocol/decoder.js';
import { encodePacket } from '../../src/protocol/encoder.js';
import type { ConnackPacket, Packet, Properties, ProtocolVersion, PublishPacket, QoS, SubackPacket, WillMessage } from '../../src/protocol/packets.js';

export interface ConnectOptions {
  clientId: string;
  clean: boolean;
  version?: ProtocolVersion;
  sessionExpiry?: number;
  receiveMaximum?: number;
  /** v5: Topic Alias Maximum the client announces. */
  topicAliasMaximum?: number;
  keepAlive?: number;
  will?: WillMessage;
}

interface Outgoing {
  topic: string;
  payload: Buffer;
  qos: 1 | 2;
  retain: boolean;
  /** 'sent': waiting for PUBACK/PUBREC; 'rec': PUBREC received, PUBREL sent, waiting for PUBCOMP. */
  state: 'sent' | 'rec';
}

export interface Received {
  packet: PublishPacket;
  /** False when the peer recognised a QoS 2 re-send and did not hand it to the application again. */
  delivered: boolean;
}

export class Peer {
  version: ProtocolVersion = 4;
  private sock: net.Socket | null = null;
  private decoder: Decoder | null = null;
  private nextId = 1;
  /** Outgoing QoS 1/2 not yet complete, by packet id (session state). */
  readonly outgoing = new Map<number, Outgoing>();
  /** Inbound QoS 2 packet ids received and not yet released (session state) [MQTT-4.3.3-9]. */
  readonly inboundQos2 = new Set<number>();
  /** Everything received, in order. */
  readonly received: Received[] = [];
  /** Every packet received, of any type, in order. */
  readonly packets: Packet[] = [];
  /** Acknowledge inbound PUBLISHes (PUBACK / PUBREC). Off to keep messages in flight at the broker. */
  autoAck = true;
  onAcked: (pid: number, out: Outgoing) => void = () => {};
  onCompleted: (pid: number) => void = () => {};
  onMessage: (r: Received) => void = () => {};
  private waiters: { test: (p: Packet) => boolean; resolve: (p: Packet) => void }[] = [];
  private closedResolve: (() => void) | null = null;
  closed: Promise<void> = Promise.resolve();

  connect(port: number, o: ConnectOptions, timeoutMs = 15_000): Promise<ConnackPacket> {
    this.version = o.version ?? 4;
    const sock = net.connect(port, '127.0.0.1');
    sock.setNoDelay(true);
    this.sock = sock;
    const d = new Decoder({ side: 'client', protocolVersion: this.version });
    this.decoder = d;
    d.onPacket = (p) => this.onPacket(p);
    d.onError = (e) => {
      sock.destroy(e);
    };
    this.closed = new Promise((r) => (this.closedResolve = r));
    sock.on('data', (c) => d.push(c));
    sock.on('error', () => {});
    sock.on('close', () => {
      this.closedResolve?.();
      for (const w of this.waiters) w.resolve({ type: 14, reasonCode: -1 });
      this.waiters = [];
    });
    const props = this.version === 5 ? { sessionExpiryInterval: o.sessionExpiry ?? 0, receiveMaximum: o.receiveMaximum } : undefined;
    if (props && props.receiveMaximum === undefined) delete props.receiveMaximum;
    if (props && o.topicAliasMaximum !== undefined) Object.assign(props, { topicAliasMaximum: o.topicAliasMaximum });
    sock.write(
      encodePacket(
        { type: 1, protocolName: 'MQTT', protocolVersion: this.version, clean: o.clean, keepAlive: o.keepAlive ?? 60, clientId: o.clientId, properties: props, will: o.will },
        this.version,
      ),
    );
    return this.expect((p) => p.type === 2, timeoutMs) as Promise<ConnackPacket>;
  }

  /** Re-send what the session has in flight after a reconnection: PUBREL first state, then PUBLISH with DUP [MQTT-4.4.0-1]. */
  resume(): void {
    for (const [pid, o] of this.outgoing) {
      if (o.state === 'rec') this.send({ type: 6, packetId: pid, reasonCode: 0 });
      else this.send({ type: 3, qos: o.qos, dup: true, retain: o.retain, topic: o.topic, packetId: pid, payload: o.payload });
    }
  }

  subscribe(filter: string, qos: QoS, timeoutMs = 15_000): Promise<SubackPacket> {
    const pid = this.allocId();
    this.send({ type: 8, packetId: pid, subscriptions: [{ filter, qos, noLocal: false, retainAsPublished: false, retainHandling: 0 }] });
    return this.expect((p) => p.type === 9 && p.packetId === pid, timeoutMs) as Promise<SubackPacket>;
  }

  /** Send a QoS 1/2 PUBLISH; returns its packet id. */
  publish(topic: string, payload: Buffer, qos: 1 | 2, retain = false, properties?: Properties): number {
    const pid = this.allocId();
    this.outgoing.set(pid, { topic, payload, qos, retain, state: 'sent' });
    this.send({ type: 3, qos, dup: false, retain, topic, packetId: pid, payload, properties });
    return pid;
  }

  /** Send a QoS 0 PUBLISH. */
  publishQos0(topic: string, payload: Buffer, retain = false): void {
    this.send({ type: 3, qos: 0, dup: false, retain, topic, packetId: 0, payload });
  }

  get inflight(): number {
    return this.outgoing.size;
  }

  ack(p: PublishPacket): void {
    if (p.qos === 1) this.send({ type: 4, packetId: p.packetId, reasonCode: 0 });
    else if (p.qos === 2) this.send({ type: 5, packetId: p.packetId, reasonCode: 0 });
  }

  disconnect(): void {
    if (this.sock && !this.sock.destroyed) {
      this.sock.write(encodePacket({ type: 14, reasonCode: 0 }, this.version));
      this.sock.end();
    }
  }

  destroy(): void {
    this.sock?.destroy();
  }

  /** Stop reading from the socket (the broker's writes back up), and start again. */
  pauseReading(): void {
    this.sock?.pause();
  }

  resumeReading(): void {
    this.sock?.resume();
  }

  expect(test: (p: Packet) => boolean, timeoutMs: number): Promise<Packet> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(new Error('timed out waiting for a packet'));
      }, timeoutMs);
      const done = (p: Packet): void => {
        clearTimeout(timer);
        if (p.type === 14 && p.reasonCode === -1) reject(new Error('connection closed'));
        else resolve(p);
      };
      this.waiters.push({ test, resolve: done });
    });
  }

  /** The first received PUBLISH matching test, already received or still to come. */
  async message(test: (p: PublishPacket) => boolean, timeoutMs: number): Promise<PublishPacket> {
    const have = this.received.find((r) => test(r.packet));
    if (have) return have.packet;
    return (await this.expect((p) => p.type === 3 && test(p), timeoutMs)) as PublishPacket;
  }

  private allocId(): number {
    for (let i = 0; i < 65535; i++) {
      const id = this.nextId;
      this.nextId = id === 65535 ? 1 : id + 1;
      if (!this.outgoing.has(id)) return id;
    }
    throw new Error('no free packet id');
  }

  /** Send bytes as they are (many packets at once). */
  sendRaw(data: Buffer): void {
    if (this.sock && !this.sock.destroyed) this.sock.write(data);
  }

  /** Send any packet as it is. */
  sendPacket(p: Packet): void {
    this.send(p);
  }

  private send(p: Packet): void {
    if (this.sock && !this.sock.destroyed) this.sock.write(encodePacket(p, this.version));
  }

  private onPacket(p: Packet): void {
    this.packets.push(p);
    switch (p.type) {
      case 3: {
        let delivered = true;
        if (p.qos === 2) {
          // Until PUBREL, a PUBLISH with the same id is the same message [MQTT-4.3.3-9].
          if (this.inboundQos2.has(p.packetId)) delivered = false;
          else this.inboundQos2.add(p.packetId);
        }
        const r = { packet: p, delivered };
        this.received.push(r);
        this.onMessage(r);
        if (this.autoAck) this.ack(p);
        break;
      }
      case 4: {
        const o = this.outgoing.get(p.packetId);
        if (o && o.qos === 1) {
          this.outgoing.delete(p.packetId);
          this.onAcked(p.packetId, o);
          this.onCompleted(p.packetId);
        }
        break;
      }
      case 5: {
        const o = this.outgoing.get(p.packetId);
        if (o && o.qos === 2) {
          if (o.state === 'sent') {
            o.state = 'rec';
            this.onAcked(p.packetId, o);
          }
          this.send({ type: 6, packetId: p.packetId, reasonCode: 0 });
        }
        break;
      }
      case 6:
        this.inboundQos2.delete(p.packetId);
        this.send({ type: 7, packetId: p.packetId, reasonCode: 0 });
        break;
      case 7:
        if (this.outgoing.get(p.packetId)?.state === 'rec') {
          this.outgoing.delete(p.packetId);
          this.onCompleted(p.packetId);
        }
        break;
    }
    const w = this.waiters.findIndex((x) => x.test(p));
    if (w >= 0) this.waiters.splice(w, 1)[0]!.resolve(p);
  }
}
