// Cross-check against mqtt-packet (the codec of MQTT.js, a dev dependency):
// bytes it generates decode to our packet, our encoding is byte-identical
// (or a documented shorter form), and it parses what we encode.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import mqttPacket from 'mqtt-packet';
import type { Packet as MpPacket } from 'mqtt-packet';
import { Decoder } from '../../src/protocol/decoder.js';
import { encodePacket } from '../../src/protocol/encoder.js';
import type { ProtocolError } from '../../src/protocol/errors.js';
import type { Packet, ProtocolVersion } from '../../src/protocol/packets.js';

const SERVER_TO_CLIENT = new Set([2, 9, 11, 13]);

function decode(bytes: Buffer, v: ProtocolVersion, type: number): Packet {
  const d = new Decoder({ side: SERVER_TO_CLIENT.has(type) ? 'client' : 'server', protocolVersion: type === 1 ? 0 : v });
  const out: Packet[] = [];
  let err: ProtocolError | undefined;
  d.onPacket = (p) => out.push(p);
  d.onError = (e) => (err = e);
  d.push(bytes);
  if (err !== undefined) throw err;
  assert.equal(out.length, 1);
  return out[0]!;
}

function mpParse(bytes: Buffer, v: ProtocolVersion): MpPacket {
  const parser = mqttPacket.parser({ protocolVersion: v });
  const out: MpPacket[] = [];
  parser.on('packet', (p) => out.push(p));
  parser.on('error', (e: unknown) => {
    throw e;
  });
  parser.parse(bytes);
  assert.equal(out.length, 1);
  return out[0]!;
}

const b = (s: string): Buffer => Buffer.from(s);

interface Case {
  name: string;
  v: ProtocolVersion;
  theirs: MpPacket;
  ours: Packet;
  /** mqtt-packet writes a longer (equally valid) form than ours. */
  longerForm?: boolean;
}

const cases: Case[] = [
  { name: 'CONNECT 3.1.1 with will, user, password', v: 4,
    theirs: { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'c1', keepalive: 30, username: 'u', password: b('p'), will: { topic: 'w', payload: b('bye'), qos: 1, retain: true } },
    ours: { type: 1, protocolName: 'MQTT', protocolVersion: 4, clean: true, keepAlive: 30, clientId: 'c1', username: 'u', password: b('p'), will: { topic: 'w', payload: b('bye'), qos: 1, retain: true } } },
  { name: 'CONNECT 3.1', v: 3,
    theirs: { cmd: 'connect', protocolId: 'MQIsdp', protocolVersion: 3, clean: false, clientId: 'c1', keepalive: 30 },
    ours: { type: 1, protocolName: 'MQIsdp', protocolVersion: 3, clean: false, keepAlive: 30, clientId: 'c1' } },
  { name: 'CONNECT 5.0 with properties', v: 5,
    theirs: { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: 'c5', keepalive: 10, properties: { sessionExpiryInterval: 100, receiveMaximum: 20, userProperties: { a: '1' } } },
    ours: { type: 1, protocolName: 'MQTT', protocolVersion: 5, clean: true, keepAlive: 10, clientId: 'c5', properties: { sessionExpiryInterval: 100, receiveMaximum: 20, userProperties: [['a', '1']] } } },
  { name: 'CONNACK 3.1.1', v: 4,
    theirs: { cmd: 'connack', sessionPresent: true, returnCode: 0 },
    ours: { type: 2, sessionPresent: true, reasonCode: 0 } },
  { name: 'CONNACK 5.0 refused with reason string', v: 5,
    theirs: { cmd: 'connack', sessionPresent: false, reasonCode: 0x87, properties: { reasonString: 'no' } },
    ours: { type: 2, sessionPresent: false, reasonCode: 0x87, properties: { reasonString: 'no' } } },
  { name: 'PUBLISH 3.1.1 QoS 1 retain', v: 4,
    theirs: { cmd: 'publish', topic: 'a/b', payload: b('hi'), qos: 1, messageId: 7, dup: false, retain: true },
    ours: { type: 3, topic: 'a/b', payload: b('hi'), qos: 1, packetId: 7, dup: false, retain: true } },
  { name: 'PUBLISH 5.0 QoS 2 with properties', v: 5,
    theirs: { cmd: 'publish', topic: 'a/b', payload: b('hi'), qos: 2, messageId: 7, dup: true, retain: false, properties: { messageExpiryInterval: 5, contentType: 't', topicAlias: 3, userProperties: { k: 'v' } } },
    ours: { type: 3, topic: 'a/b', payload: b('hi'), qos: 2, packetId: 7, dup: true, retain: false, properties: { messageExpiryInterval: 5, contentType: 't', topicAlias: 3, userProperties: [['k', 'v']] } } },
  { name: 'PUBACK 5.0 reason only', v: 5, longerForm: true,
    theirs: { cmd: 'puback', messageId: 5, reasonCode: 0x10 },
    ours: { type: 4, packetId: 5, reasonCode: 0x10 } },
  { name: 'PUBACK 5.0 success', v: 5, longerForm: true,
    theirs: { cmd: 'puback', messageId: 5 },
    ours: { type: 4, packetId: 5, reasonCode: 0 } },
  { name: 'PUBREL 3.1.1', v: 4,
    theirs: { cmd: 'pubrel', messageId: 5 },
    ours: { type: 6, packetId: 5, reasonCode: 0 } },
  { name: 'SUBSCRIBE 5.0 with options and subscription identifier', v: 5,
    theirs: { cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: 'a/#', qos: 1, nl: true, rap: true, rh: 2 }, { topic: 'b', qos: 0, nl: false, rap: false, rh: 0 }], properties: { subscriptionIdentifier: 9 } },
    ours: { type: 8, packetId: 3, properties: { subscriptionIdentifiers: [9] }, subscriptions: [
      { filter: 'a/#', qos: 1, noLocal: true, retainAsPublished: true, retainHandling: 2 },
      { filter: 'b', qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 }] } },
  { name: 'SUBACK 3.1.1', v: 4,
    theirs: { cmd: 'suback', messageId: 3, granted: [0, 1, 0x80] },
    ours: { type: 9, packetId: 3, reasonCodes: [0, 1, 0x80] } },
  { name: 'UNSUBSCRIBE 3.1.1', v: 4,
    theirs: { cmd: 'unsubscribe', messageId: 4, unsubscriptions: ['a', 'b/+'] },
    ours: { type: 10, packetId: 4, filters: ['a', 'b/+'] } },
  { name: 'UNSUBACK 5.0', v: 5,
    theirs: { cmd: 'unsuback', messageId: 4, granted: [0, 17] },
    ours: { type: 11, packetId: 4, reasonCodes: [0, 17] } },
  { name: 'PINGREQ', v: 4, theirs: { cmd: 'pingreq' }, ours: { type: 12 } },
  { name: 'PINGRESP', v: 5, theirs: { cmd: 'pingresp' }, ours: { type: 13 } },
  { name: 'DISCONNECT 5.0 reason only', v: 5, longerForm: true,
    theirs: { cmd: 'disconnect', reasonCode: 0x8e },
    ours: { type: 14, reasonCode: 0x8e } },
  { name: 'DISCONNECT 5.0 with session expiry', v: 5,
    theirs: { cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 0 } },
    ours: { type: 14, reasonCode: 0, properties: { sessionExpiryInterval: 0 } } },
  { name: 'AUTH 5.0', v: 5,
    theirs: { cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'm', authenticationData: b('d') } },
    ours: { type: 15, reasonCode: 0x18, properties: { authenticationMethod: 'm', authenticationData: b('d') } } },
];

describe('cross-check with mqtt-packet', () => {
  for (const c of cases) {
    it(c.name, () => {
      const theirBytes = mqttPacket.generate(c.theirs, { protocolVersion: c.v });
      const ourBytes = encodePacket(c.ours, c.v);
      assert.deepStrictEqual(decode(theirBytes, c.v, c.ours.type), c.ours, 'their bytes decode to our packet');
      if (c.longerForm) assert.ok(ourBytes.length < theirBytes.length, 'ours is the short form');
      else assert.equal(ourBytes.toString('hex'), theirBytes.toString('hex'), 'identical bytes');
      const parsed = mpParse(ourBytes, c.v);
      assert.equal(parsed.cmd, c.theirs.cmd, 'they parse what we encode');
      assert.equal(parsed.messageId, c.theirs.messageId);
      if (c.longerForm) {
        // A short form has no reason code on the wire: it means 0.
        const rc = (parsed as { reasonCode?: number }).reasonCode ?? 0;
        assert.equal(rc, (c.ours as { reasonCode: number }).reasonCode);
      } else {
        assert.equal(mqttPacket.generate(parsed, { protocolVersion: c.v }).toString('hex'), theirBytes.toString('hex'), 'and regenerate the same packet');
      }
    });
  }
});
