// Jazzer.js fuzz target: the broker's connection state machine, in process, through the real Connection and
// Client over an in-memory Duplex (no sockets, so that each input costs microseconds, not a TCP handshake).
//
// Each input is one connection. Its first byte picks the protocol version (3.1, 3.1.1, 5.0); the second a
// prelude of valid packets that puts the connection in a state (nothing after CONNECT; a subscription; an
// inbound QoS 2 flow left at PUBREC; an outbound QoS 1/2 delivery in flight; v5 topic aliases set up; a
// shared subscription), so that the fuzzer's bytes land mid-flow; the third how the rest is cut into reads.
// The rest is what the client sends next.
//
// What must hold, whatever the bytes:
//   - no exception escapes, no promise is rejected unhandled (checked on the next input), and the broker's
//     stats.internalErrors stays 0 (a throw inside the broker is caught and counted there);
//   - everything the broker writes decodes cleanly as server-to-client packets of the connection's version;
//   - once the connection is gone, the broker forgets it (no client left behind);
//   - every 64 inputs, a healthy client connects, subscribes, publishes QoS 1 to itself and gets its message.

import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { Broker } from '../../../src/broker/broker.js';
import { resolveOptions } from '../../../src/broker/options.js';
import { Decoder } from '../../../src/protocol/decoder.js';
import { encodePacket } from '../../../src/protocol/encoder.js';
import type { Packet, ProtocolVersion } from '../../../src/protocol/packets.js';
import { createStore } from '../../../src/store/index.js';

let broker: Broker | null = null;
let inputs = 0;
let pendingRejection: unknown = null;
process.on('unhandledRejection', (e) => {
  pendingRejection ??= e;
});

async function getBroker(): Promise<Broker> {
  // A fresh broker now and then, so that retained messages and sessions the fuzzer made do not pile up.
  if (broker !== null && inputs % 20_000 === 0) {
    const old = broker;
    broker = null;
    assert.equal(old.stats.internalErrors, 0, 'internal errors');
    await old.close();
  }
  if (broker === null) {
    const options = resolveOptions({
      store: { type: 'memory' },
      listeners: [],
      logLevel: 'silent',
      closeTimeout: 1,
      limits: { maxPacketSize: 64 * 1024, connectTimeout: 5, receiveMaximum: 8, topicAliasMaximum: 4, maxQueuedMessages: 64 },
    });
    const b = new Broker(options, createStore({ type: 'memory' }));
    await b.start();
    broker = b;
  }
  return broker;
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A connection over an in-memory duplex: what the broker writes is decoded as a client would. */
class FakeConnection {
  readonly socket: Duplex;
  readonly received: Packet[] = [];
  decodeError: string | null = null;
  closed = false;
  private readonly decoder: Decoder;

  constructor(b: Broker, version: ProtocolVersion) {
    this.decoder = new Decoder({ side: 'client', protocolVersion: version });
    this.decoder.onPacket = (p) => this.received.push(p);
    this.decoder.onError = (e) => {
      this.decodeError ??= String(e);
    };
    this.socket = new Duplex({
      read() {},
      write: (chunk: Buffer, _enc, cb) => {
        this.decoder.push(chunk);
        cb();
      },
      writev: (chunks: { chunk: Buffer }[], cb) => {
        for (const c of chunks) this.decoder.push(c.chunk);
        cb();
      },
      final(cb) {
        cb();
      },
    });
    this.socket.on('close', () => {
      this.closed = true;
    });
    this.socket.on('error', () => {});
    b.acceptConnection(this.socket, () => 'fuzz');
  }

  send(bytes: Buffer): void {
    if (!this.closed && !this.socket.destroyed) this.socket.push(bytes);
  }

  async settle(turns = 3): Promise<void> {
    for (let i = 0; i < turns; i++) await turn();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

function connect(version: ProtocolVersion, clientId: string): Buffer {
  return encodePacket({ type: 1, protocolName: '', protocolVersion: version, clean: true, keepAlive: 0, clientId }, version);
}

/** Valid packets that bring a fresh connection to a state. */
function prelude(kind: number, version: ProtocolVersion): Packet[] {
  const v5 = version === 5;
  switch (kind % 7) {
    case 0:
      return [];
    case 1:
      return [{ type: 8, packetId: 1, subscriptions: [{ filter: 'f/#', qos: 2, noLocal: false, retainAsPublished: false, retainHandling: 0 }] }];
    case 2: // inbound QoS 2 left after PUBREC
      return [{ type: 3, topic: 'f/q2', payload: Buffer.from('x'), qos: 2, retain: false, dup: false, packetId: 7 }];
    case 3: // subscribed to itself: an outbound QoS 1 and QoS 2 delivery in flight
      return [
        { type: 8, packetId: 2, subscriptions: [{ filter: 'f/+', qos: 2, noLocal: false, retainAsPublished: false, retainHandling: 0 }] },
        { type: 3, topic: 'f/a', payload: Buffer.from('one'), qos: 1, retain: false, dup: false, packetId: 3 },
        { type: 3, topic: 'f/b', payload: Buffer.from('two'), qos: 2, retain: true, dup: false, packetId: 4 },
      ];
    case 4: // v5: topic alias 1 set to f/alias
      return v5 ? [{ type: 3, topic: 'f/alias', payload: Buffer.from('a'), qos: 0, retain: false, dup: false, packetId: 0, properties: { topicAlias: 1 } }] : [];
    case 5: // shared subscription
      return [{ type: 8, packetId: 5, subscriptions: [{ filter: '$share/g/f/#', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }] }];
    default: // v5 user properties and a will-like message with properties
      return v5
        ? [{ type: 3, topic: 'f/p', payload: Buffer.from('p'), qos: 1, retain: false, dup: false, packetId: 9, properties: { userProperties: [['k', 'v']], messageExpiryInterval: 60, contentType: 't' } }]
        : [{ type: 10, packetId: 6, filters: ['f/#'] }];
  }
}

async function healthy(b: Broker): Promise<void> {
  const c = new FakeConnection(b, 5);
  c.send(connect(5, 'healthy'));
  c.send(encodePacket({ type: 8, packetId: 1, subscriptions: [{ filter: 'healthy/t', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }] }, 5));
  await c.settle();
  c.send(encodePacket({ type: 3, topic: 'healthy/t', payload: Buffer.from('ok'), qos: 1, retain: false, dup: false, packetId: 2 }, 5));
  for (let i = 0; i < 50 && !c.received.some((p) => p.type === 3); i++) await turn();
  c.destroy();
  await c.settle();
  assert.equal(c.decodeError, null, `healthy client: broker output does not decode: ${c.decodeError}`);
  const types = c.received.map((p) => p.type);
  assert.equal(c.received[0]?.type === 2 && c.received[0].reasonCode, 0, `healthy client: CONNACK 0 (got ${types.join(',')})`);
  assert.ok(types.includes(9) && types.includes(4) && types.includes(3), `healthy client: SUBACK, PUBACK and its message (got ${types.join(',')})`);
}

export async function fuzz(data: Buffer): Promise<void> {
  if (pendingRejection !== null) {
    const e = pendingRejection;
    pendingRejection = null;
    throw new Error(`unhandled rejection: ${String(e)}`);
  }
  if (data.length < 3) return;
  const b = await getBroker();
  inputs++;
  const version = ([3, 4, 5] as const)[data[0]! % 3]!;
  const c = new FakeConnection(b, version);
  c.send(connect(version, `fz${data[1]! & 7}`));
  for (const p of prelude(data[1]! >> 3, version)) c.send(encodePacket(p, version));
  await c.settle(2);
  const body = data.subarray(3);
  const cuts = data[2]! & 0x0f;
  if (cuts === 0) c.send(body);
  else {
    const step = Math.max(1, Math.ceil(body.length / cuts));
    for (let at = 0; at < body.length; at += step) {
      c.send(body.subarray(at, at + step));
      if ((data[2]! & 0x10) !== 0) await turn();
    }
  }
  await c.settle(4);
  c.destroy();
  await c.settle(3);
  assert.equal(c.decodeError, null, `broker output does not decode: ${c.decodeError}`);
  assert.equal(b.stats.internalErrors, 0, 'stats.internalErrors');
  if (inputs % 64 === 0) {
    await healthy(b);
    assert.equal(b.clients.size, 0, `clients left behind: ${b.clients.size}`);
  }
}
