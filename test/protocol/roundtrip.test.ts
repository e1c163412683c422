// Encoder tests: encode → decode round trips for every packet type and
// version, 3.1/3.1.1 dropping 5.0-only fields, the fan-out header, acks.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Decoder } from '../../src/protocol/decoder.js';
import { encodeAck, encodePacket, encodePublishHeader } from '../../src/protocol/encoder.js';
import type { ProtocolError } from '../../src/protocol/errors.js';
import type { Packet, Properties, ProtocolVersion, PublishPacket, QoS } from '../../src/protocol/packets.js';
import { propertiesLength, PROPERTY_TABLE } from '../../src/protocol/properties.js';
import { validPackets } from '../fixtures/catalogue.js';

const CLIENT_TO_SERVER = new Set([1, 3, 4, 5, 6, 7, 8, 10, 12, 14, 15]);

function decodeOne(bytes: Buffer, version: ProtocolVersion, type: number, side: 'server' | 'client' = CLIENT_TO_SERVER.has(type) ? 'server' : 'client'): Packet {
  const d = new Decoder({ side, protocolVersion: type === 1 ? 0 : version });
  const packets: Packet[] = [];
  let error: ProtocolError | undefined;
  d.onPacket = (p) => packets.push(p);
  d.onError = (e) => (error = e);
  d.push(bytes);
  if (error !== undefined) throw error;
  assert.equal(packets.length, 1);
  return packets[0]!;
}

const b = (s: string): Buffer => Buffer.from(s, 'utf8');

// Packets valid in every version (no 5.0-only content).
function basicPackets(v: ProtocolVersion): Packet[] {
  const name = v === 3 ? 'MQIsdp' : 'MQTT';
  return [
    { type: 1, protocolName: name, protocolVersion: v, clean: true, keepAlive: 0, clientId: '' },
    { type: 1, protocolName: name, protocolVersion: v, clean: false, keepAlive: 65535, clientId: 'ü-client', username: 'u', password: Buffer.alloc(0),
      will: { topic: 'w/t', payload: Buffer.alloc(0), qos: 2, retain: true } },
    { type: 2, sessionPresent: v !== 3, reasonCode: 0 },
    { type: 2, sessionPresent: false, reasonCode: v === 5 ? 0x87 : 5 },
    { type: 3, qos: 0, dup: false, retain: false, topic: 't', packetId: 0, payload: Buffer.alloc(0) },
    { type: 3, qos: 1, dup: true, retain: true, topic: 'a/b/c', packetId: 1, payload: b('payload') },
    { type: 3, qos: 2, dup: false, retain: true, topic: '😀', packetId: 65535, payload: Buffer.alloc(1000, 7) },
    { type: 4, packetId: 1, reasonCode: 0 },
    { type: 5, packetId: 2, reasonCode: 0 },
    { type: 6, packetId: 3, reasonCode: 0 },
    { type: 7, packetId: 65535, reasonCode: 0 },
    { type: 8, packetId: 4, subscriptions: [
      { filter: 'a/#', qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 },
      { filter: '+/+', qos: 2, noLocal: false, retainAsPublished: false, retainHandling: 0 },
    ] },
    { type: 9, packetId: 4, reasonCodes: [0, 2, 0x80] },
    { type: 10, packetId: 5, filters: ['a/#', '$share/g/b'] },
    { type: 11, packetId: 5, reasonCodes: v === 5 ? [0, 0x11] : [] },
    { type: 12 },
    { type: 13 },
    { type: 14, reasonCode: 0 },
  ];
}

const ALL_PROPS_PUBLISH: Properties = {
  payloadFormatIndicator: 0, messageExpiryInterval: 0xffffffff, contentType: 'c/t', responseTopic: 'r/t',
  correlationData: Buffer.from([0, 1, 2]), topicAlias: 65535, userProperties: [['k', 'v'], ['k', ''], ['', 'ü']],
};

function v5Packets(): Packet[] {
  return [
    { type: 1, protocolName: 'MQTT', protocolVersion: 5, clean: true, keepAlive: 5, clientId: 'x',
      properties: { sessionExpiryInterval: 10, receiveMaximum: 1, maximumPacketSize: 1, topicAliasMaximum: 0, requestProblemInformation: 1,
        requestResponseInformation: 0, authenticationMethod: 'm', authenticationData: Buffer.from([9]), userProperties: [['a', 'b']] },
      will: { topic: 'w', payload: b('bye'), qos: 0, retain: false, properties: { willDelayInterval: 5, contentType: 'x', correlationData: b('c') } } },
    { type: 2, sessionPresent: true, reasonCode: 0, properties: { assignedClientIdentifier: 'gen', maximumQoS: 0, retainAvailable: 0, topicAliasMaximum: 65535 } },
    { type: 2, sessionPresent: false, reasonCode: 0x9c, properties: { serverReference: 'elsewhere', reasonString: 'moved' } },
    { type: 3, qos: 1, dup: false, retain: false, topic: 'p', packetId: 9, payload: b('x'), properties: ALL_PROPS_PUBLISH },
    { type: 3, qos: 0, dup: false, retain: false, topic: '', packetId: 0, payload: b('x'), properties: { topicAlias: 1 } },
    { type: 4, packetId: 1, reasonCode: 0x10 },
    { type: 4, packetId: 1, reasonCode: 0, properties: { userProperties: [['a', 'b']] } },
    { type: 5, packetId: 2, reasonCode: 0x91, properties: { reasonString: 'in use' } },
    { type: 6, packetId: 3, reasonCode: 0x92 },
    { type: 7, packetId: 4, reasonCode: 0, properties: { reasonString: 'ok' } },
    { type: 8, packetId: 4, properties: { subscriptionIdentifiers: [268435455] }, subscriptions: [
      { filter: 'a', qos: 1, noLocal: true, retainAsPublished: true, retainHandling: 2 },
      { filter: '$share/g/#', qos: 0, noLocal: false, retainAsPublished: true, retainHandling: 1 },
    ] },
    { type: 9, packetId: 4, reasonCodes: [0x97], properties: { reasonString: 'r', userProperties: [['x', 'y']] } },
    { type: 10, packetId: 5, filters: ['a'], properties: { userProperties: [['x', 'y']] } },
    { type: 11, packetId: 5, reasonCodes: [0x8f], properties: { reasonString: 'bad' } },
    { type: 14, reasonCode: 0x8e },
    { type: 14, reasonCode: 0, properties: { sessionExpiryInterval: 0 } },
    { type: 15, reasonCode: 0 },
    { type: 15, reasonCode: 0x19 },
    { type: 15, reasonCode: 0x18, properties: { authenticationMethod: 'm', authenticationData: b('d'), reasonString: 'more' } },
  ];
}

describe('round trip: encode → decode', () => {
  for (const v of [3, 4, 5] as const) {
    for (const p of basicPackets(v)) {
      it(`v${v} type ${p.type} ${JSON.stringify(p).slice(0, 60)}`, () => {
        assert.deepStrictEqual(decodeOne(encodePacket(p, v), v, p.type), p);
      });
    }
  }
  for (const p of v5Packets()) {
    it(`v5 type ${p.type} ${JSON.stringify(p).slice(0, 60)}`, () => {
      assert.deepStrictEqual(decodeOne(encodePacket(p, 5), 5, p.type), p);
    });
  }
});

describe('encoder reproduces the catalogue bytes', () => {
  // Entries whose bytes use an optional longer form our encoder does not produce.
  const longerForms = new Set(['puback-reason-empty-properties-v5', 'subscribe-dup-v3']);
  for (const e of validPackets) {
    it(e.name, () => {
      const enc = encodePacket(e.packet!, e.version);
      if (!longerForms.has(e.name)) assert.equal(enc.toString('hex'), e.bytes.toString('hex'));
      assert.deepStrictEqual(decodeOne(enc, e.version, e.packet!.type, e.side), e.packet);
    });
  }
});

describe('3.1/3.1.1 encodings drop 5.0-only fields', () => {
  for (const v of [3, 4] as const) {
    it(`v${v} PUBLISH without properties`, () => {
      const p: PublishPacket = { type: 3, qos: 1, dup: false, retain: false, topic: 't', packetId: 1, payload: b('x'), properties: ALL_PROPS_PUBLISH };
      const { properties: _dropped, ...plain } = p;
      assert.deepStrictEqual(decodeOne(encodePacket(p, v), v, 3), plain);
    });
    it(`v${v} acks, UNSUBACK and DISCONNECT without reason codes`, () => {
      assert.deepEqual([...encodePacket({ type: 4, packetId: 1, reasonCode: 0x80, properties: { reasonString: 'x' } }, v)], [0x40, 2, 0, 1]);
      assert.deepEqual([...encodePacket({ type: 6, packetId: 2, reasonCode: 0x92 }, v)], [0x62, 2, 0, 2]);
      assert.deepEqual([...encodePacket({ type: 11, packetId: 1, reasonCodes: [0x11] }, v)], [0xb0, 2, 0, 1]);
      assert.deepEqual([...encodePacket({ type: 14, reasonCode: 0x04, properties: { reasonString: 'x' } }, v)], [0xe0, 0]);
    });
    it(`v${v} SUBACK failure codes become 0x80, CONNACK 5.0 codes become return codes`, () => {
      assert.deepEqual([...encodePacket({ type: 9, packetId: 1, reasonCodes: [1, 0x87, 0x80] }, v)], [0x90, 5, 0, 1, 1, 0x80, 0x80]);
      assert.deepEqual([...encodePacket({ type: 2, sessionPresent: false, reasonCode: 0x86 }, v)], [0x20, 2, 0, 4]);
      assert.deepEqual([...encodePacket({ type: 2, sessionPresent: false, reasonCode: 0x84 }, v)], [0x20, 2, 0, 1]);
      assert.deepEqual([...encodePacket({ type: 2, sessionPresent: true, reasonCode: 0 }, v)], [0x20, 2, v === 4 ? 1 : 0, 0]);
    });
    it(`v${v} SUBSCRIBE writes only the QoS`, () => {
      const enc = encodePacket({ type: 8, packetId: 1, subscriptions: [{ filter: 'a', qos: 1, noLocal: true, retainAsPublished: true, retainHandling: 2 }] }, v);
      assert.equal(enc[enc.length - 1], 1);
    });
    it(`v${v} AUTH cannot be encoded`, () => {
      assert.throws(() => encodePacket({ type: 15, reasonCode: 0 }, v));
    });
  }
});

describe('5.0 short forms', () => {
  it('DISCONNECT and AUTH: Remaining Length 0 for reason 0, 1 for a reason alone', () => {
    assert.deepEqual([...encodePacket({ type: 14, reasonCode: 0 }, 5)], [0xe0, 0]);
    assert.deepEqual([...encodePacket({ type: 14, reasonCode: 0x8b }, 5)], [0xe0, 1, 0x8b]);
    assert.deepEqual([...encodePacket({ type: 14, reasonCode: 0, properties: {} }, 5)], [0xe0, 0]);
    assert.deepEqual([...encodePacket({ type: 15, reasonCode: 0 }, 5)], [0xf0, 0]);
    assert.deepEqual([...encodePacket({ type: 15, reasonCode: 0x19 }, 5)], [0xf0, 1, 0x19]);
  });
  it('encodeAck: 2-byte body for Success without properties, 3 with a reason, full with properties', () => {
    for (const t of [4, 5, 6, 7] as const) {
      const b0 = t === 6 ? 0x62 : t << 4;
      assert.deepEqual([...encodeAck(t, 0x1234, 0, 5)], [b0, 2, 0x12, 0x34]);
      assert.deepEqual([...encodeAck(t, 0x1234, 0, 5, {})], [b0, 2, 0x12, 0x34]);
      assert.deepEqual([...encodeAck(t, 0x1234, 0x80, 5)], [b0, 3, 0x12, 0x34, 0x80]);
      assert.deepEqual([...encodeAck(t, 1, 0, 5, { reasonString: 'r' })], [b0, 8, 0, 1, 0, 4, 0x1f, 0, 1, 0x72]);
      assert.deepEqual([...encodeAck(t, 0x1234, 0x80, 4, { reasonString: 'r' })], [b0, 2, 0x12, 0x34]);
      assert.deepEqual([...encodeAck(t, 7, 0, 3)], [b0, 2, 0, 7]);
    }
  });
});

describe('encodePublishHeader', () => {
  const propsCases: (Properties | undefined)[] = [undefined, {}, { topicAlias: 3 }, ALL_PROPS_PUBLISH, { subscriptionIdentifiers: [1, 2, 300000] }];
  for (const v of [3, 4, 5] as const) {
    for (const qos of [0, 1, 2] as const) {
      for (const [pi, properties] of propsCases.entries()) {
        for (const payloadLen of [0, 1, 200, 20000]) {
          it(`v${v} qos${qos} props#${pi} payload ${payloadLen}`, () => {
            const payload = Buffer.alloc(payloadLen, 0x61);
            const retain = payloadLen % 2 === 0;
            const packetId = qos === 0 ? 0 : 0xbeef;
            const { header, packetIdOffset } = encodePublishHeader('a/topic/ü', qos, false, retain, packetId, properties, payloadLen, v);
            const p: PublishPacket = { type: 3, qos, dup: false, retain, topic: 'a/topic/ü', packetId, payload };
            if (properties !== undefined) p.properties = properties;
            assert.equal(Buffer.concat([header, payload]).toString('hex'), encodePacket(p, v).toString('hex'));
            if (v !== 5) {
              // Fixed header + topic ('a/topic/ü' is 10 bytes) + packet id; nothing of the payload.
              const varLen = 2 + 10 + (qos > 0 ? 2 : 0);
              const rl = varLen + payloadLen;
              assert.equal(header.length, 1 + (rl < 128 ? 1 : rl < 16384 ? 2 : 3) + varLen);
            }
            if (qos === 0) {
              assert.equal(packetIdOffset, -1);
            } else {
              assert.equal(header.readUInt16BE(packetIdOffset), 0xbeef);
              // What the broker does per recipient: copy, write its packet id, set DUP.
              const copy = Buffer.from(header);
              copy.writeUInt16BE(42, packetIdOffset);
              copy[0]! |= 0x08;
              const d = decodeOne(Buffer.concat([copy, payload]), v, 3, 'client') as PublishPacket;
              assert.equal(d.packetId, 42);
              assert.equal(d.dup, true);
              assert.equal(d.qos, qos);
              assert.equal(d.retain, retain);
              assert.ok(d.payload.equals(payload));
            }
          });
        }
      }
    }
  }
  it('reserves the largest Remaining Length without allocating the payload', () => {
    const payloadLen = 268435455 - 2 - 1 - 2; // topic 'x' + packet id
    const { header } = encodePublishHeader('x', 1, false, false, 1, undefined, payloadLen, 4);
    assert.deepEqual([...header.subarray(0, 5)], [0x32, 0xff, 0xff, 0xff, 0x7f]);
    assert.throws(() => encodePublishHeader('x', 1, false, false, 1, undefined, payloadLen + 1, 4), RangeError);
  });
});

describe('properties', () => {
  it('propertiesLength agrees with the encoded size for every property', () => {
    for (const d of PROPERTY_TABLE) {
      const value = d.type === 'pair' ? [['k', 'vv']] : d.type === 'string' ? 'sss' : d.type === 'binary' ? Buffer.from([1, 2])
        : d.type === 'varint' ? [200] : 1;
      const props = { [d.name]: value } as Properties;
      const expected = { byte: 2, u16: 3, u32: 5, varint: 3, string: 6, binary: 5, pair: 8 }[d.type];
      assert.equal(propertiesLength(props), expected, d.name);
    }
  });
  it('rejects strings longer than 65535 bytes', () => {
    assert.throws(() => encodePacket({ type: 3, qos: 0, dup: false, retain: false, topic: 'x'.repeat(65536), packetId: 0, payload: Buffer.alloc(0) }, 4), RangeError);
  });
});

// Random packets: every field combination the types allow, encoded and decoded.
describe('round trip: randomized', () => {
  function rng(seed: number): () => number {
    let s = seed >>> 0;
    return () => {
      s = (s * 1664525 + 1013904223) >>> 0;
      return s / 0x100000000;
    };
  }
  it('1000 random PUBLISH packets per version', () => {
    const r = rng(42);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
    for (const v of [3, 4, 5] as const) {
      for (let i = 0; i < 1000; i++) {
        const qos = pick([0, 1, 2] as const) as QoS;
        const topic = Array.from({ length: 1 + Math.floor(r() * 5) }, () => pick(['a', '', 'ü', 'level', '$SYS', '😀', ' '])).join('/') || 'x';
        const p: PublishPacket = {
          type: 3, qos, dup: qos > 0 && r() < 0.5, retain: r() < 0.5, topic, packetId: qos > 0 ? 1 + Math.floor(r() * 65535) : 0,
          payload: Buffer.alloc(Math.floor(r() * 300), i & 0xff),
        };
        if (v === 5 && r() < 0.5) p.properties = { messageExpiryInterval: Math.floor(r() * 1000), userProperties: [['i', String(i)]] };
        assert.deepStrictEqual(decodeOne(encodePacket(p, v), v, 3), p);
      }
    }
  });
});
