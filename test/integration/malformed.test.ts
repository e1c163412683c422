// Every malformed client→server packet of the catalogue, sent to a live
// broker over a raw socket: the broker answers exactly as the catalogue says
// (v5 CONNACK / DISCONNECT with the reason code, or a plain close), closes the
// connection, counts the error, and a healthy client on the same broker is not
// disturbed. Plus the connection-level rules: packet size announced in the
// fixed header, first packet CONNECT, second CONNECT, byte-by-byte input, and
// the CONNECT deadline.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ProtocolVersion } from '../../src/protocol/packets.js';
import { encodePacket } from '../../src/protocol/encoder.js';
import { connectFor, malformedPackets, type CatalogueEntry } from '../fixtures/catalogue.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { connectMqtt, endAll, versionOptions, type Connected } from '../helpers/mqttjs.js';
import { describe as describePacket, packetName, RawClient } from '../helpers/raw-client.js';
import { withTimeout } from '../helpers/wait.js';

const T = { timeout: 20_000 };
/** How long the server may take to answer and close. */
const BOUND = 2000;

const isConnect = (e: CatalogueEntry): boolean => e.bytes[0]! >> 4 === 1;

describe('malformed packets from the catalogue, on a live broker', { timeout: 120_000 }, () => {
  let tb: TestBroker;
  let healthy: Connected;
  let round = 0;

  before(async () => {
    tb = await startBroker({ limits: { maxPacketSize: 64 * 1024 } });
    healthy = await connectMqtt(tb.url, { ...versionOptions(4), clientId: 'healthy-observer' });
    await healthy.client.subscribeAsync('healthy/#', { qos: 1 });
  });
  after(async () => {
    await endAll(healthy?.client);
    await tb.close();
  });

  /** The healthy client publishes a QoS 1 message to itself and receives it. */
  async function healthyRoundTrip(): Promise<void> {
    const topic = `healthy/${++round}`;
    await withTimeout(healthy.client.publishAsync(topic, `ping ${round}`, { qos: 1 }), BOUND, 'PUBACK for the healthy client');
    await healthy.messages.count(topic, 1, BOUND);
  }

  const entries = malformedPackets.filter((e) => e.side === 'server');

  it('the catalogue has client→server malformed entries with an expectation for each', () => {
    assert.ok(entries.length > 100, `${entries.length} entries`);
    for (const e of entries) assert.ok(e.expect !== undefined, `${e.name} has an expectation`);
  });

  for (const entry of entries) {
    const exp = entry.expect!;
    const what =
      exp.kind === 'connack'
        ? `CONNACK 0x${exp.code.toString(16).padStart(2, '0')} then close`
        : exp.kind === 'disconnect'
          ? `DISCONNECT 0x${exp.reasonCode.toString(16)} then close`
          : 'close without a packet';
    it(`${entry.name}: ${what}; the broker counts it and a healthy client is unaffected [${entry.ref}] [MQTT-4.13.1-1]`, T, async () => {
      // A CONNACK 0x01 is the 3.1.1 form (also what a 3.1 client reads); otherwise decode in the entry's version.
      const decodeAs: ProtocolVersion = exp.kind === 'connack' && exp.code === 0x01 ? 4 : entry.version;
      const client = await RawClient.open(tb.port, decodeAs);
      try {
        if (!isConnect(entry)) {
          client.send(connectFor(entry.version).bytes);
          const ok = await client.expect(2, BOUND);
          assert.equal(ok.reasonCode, 0, 'the valid CONNECT is accepted');
        }
        const errors = tb.broker.stats.protocolErrors;
        client.send(entry.bytes);
        if (exp.kind === 'close') {
          await client.closed(BOUND);
          const extra = client.unread;
          assert.equal(extra.length, 0, `nothing is sent before closing, got ${extra.map((p) => `${packetName(p)} ${describePacket(p)}`).join(', ')}`);
        } else {
          const p = await client.next(BOUND);
          if (exp.kind === 'connack') {
            assert.equal(p.type, 2, `expected CONNACK, got ${packetName(p)} ${describePacket(p)}`);
            assert.equal((p as { reasonCode: number }).reasonCode, exp.code);
            assert.equal((p as { sessionPresent: boolean }).sessionPresent, false, '[MQTT-3.2.2-6]');
          } else {
            assert.equal(p.type, 14, `expected DISCONNECT, got ${packetName(p)} ${describePacket(p)}`);
            assert.equal((p as { reasonCode: number }).reasonCode, exp.reasonCode);
          }
          await client.closed(BOUND);
          assert.deepEqual(client.unread.map(packetName), [], 'nothing after it [MQTT-3.14.4-1]');
        }
        assert.deepEqual(client.decodeErrors.map((e) => e.message), [], 'what the broker sent decodes');
        assert.equal(tb.broker.stats.protocolErrors - errors, 1, 'counted once in stats.protocolErrors');
        await healthyRoundTrip();
      } finally {
        client.destroy();
      }
    });
  }

  it('the healthy client stayed connected through all of it', T, async () => {
    assert.equal(healthy.client.connected, true);
    await healthyRoundTrip();
  });
});

describe('connection-level rules', T, () => {
  let tb: TestBroker;
  const clients: RawClient[] = [];
  const open = async (version: ProtocolVersion): Promise<RawClient> => {
    const c = await RawClient.open(tb.port, version);
    clients.push(c);
    return c;
  };
  before(async () => {
    tb = await startBroker({ limits: { maxPacketSize: 1024, connectTimeout: 1 } });
  });
  after(async () => {
    for (const c of clients) c.destroy();
    await tb.close();
  });

  for (const version of [3, 4, 5] as const) {
    it(`v${version}: a Remaining Length above limits.maxPacketSize is refused as soon as the fixed header is read${version === 5 ? ' with DISCONNECT 0x95' : ' by closing'} (§4.13, [MQTT-3.2.2-15])`, T, async () => {
      const c = await open(version);
      c.send(connectFor(version).bytes);
      await c.expect(2);
      const errors = tb.broker.stats.protocolErrors;
      // PUBLISH announcing 100,000 bytes; the body is never sent.
      c.send(Buffer.from([0x30, 0xa0, 0x8d, 0x06]));
      if (version === 5) {
        const d = await c.expect(14, 3000);
        assert.equal(d.reasonCode, 0x95, 'Packet too large');
      }
      await c.closed(3000);
      assert.deepEqual(c.unread.map(packetName), []);
      assert.equal(tb.broker.stats.protocolErrors - errors, 1);
    });
  }

  it('an oversized CONNECT is refused before its body arrives: closed', T, async () => {
    const c = await open(4);
    c.send(Buffer.from([0x10, 0xa0, 0x8d, 0x06]));
    await c.closed(3000);
    assert.equal(c.unread.length, 0);
  });

  for (const [name, bytes] of [
    ['PINGREQ', Buffer.from([0xc0, 0x00])],
    ['PUBLISH', encodePacket({ type: 3, qos: 0, dup: false, retain: false, topic: 'a', packetId: 0, payload: Buffer.from('x') }, 4)],
    ['SUBSCRIBE', encodePacket({ type: 8, packetId: 1, subscriptions: [{ filter: 'a', qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 }] }, 4)],
    ['DISCONNECT', Buffer.from([0xe0, 0x00])],
  ] as const) {
    it(`a first packet that is not CONNECT (${name}) is refused by closing the connection [MQTT-3.1.0-1]`, T, async () => {
      const c = await open(4);
      c.send(bytes);
      await c.closed(BOUND);
      assert.equal(c.unread.length, 0, 'nothing is sent');
    });
  }

  for (const version of [3, 4, 5] as const) {
    it(`v${version}: a second CONNECT is a Protocol Error${version === 5 ? ': DISCONNECT 0x82' : ': close'} [MQTT-3.1.0-2]`, T, async () => {
      const c = await open(version);
      c.send(connectFor(version).bytes);
      await c.expect(2);
      c.send(connectFor(version).bytes);
      if (version === 5) assert.equal((await c.expect(14)).reasonCode, 0x82);
      await c.closed(BOUND);
      assert.deepEqual(c.unread.map(packetName), []);
    });
  }

  for (const version of [4, 5] as const) {
    it(`v${version}: packets written one byte at a time are decoded (CONNECT, SUBSCRIBE, PUBLISH, PINGREQ) (§4.2)`, T, async () => {
      const c = await open(version);
      const connect = c.connectPacket({ clientId: `bytewise-${version}` });
      await c.sendBytewise(encodePacket(connect, version));
      assert.equal((await c.expect(2)).reasonCode, 0);
      await c.sendBytewise(
        encodePacket({ type: 8, packetId: 3, subscriptions: [{ filter: 'bytes/#', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }] }, version),
      );
      const suback = await c.expect(9);
      assert.deepEqual(suback.reasonCodes, [1]);
      const payload = Buffer.from('é'.repeat(150)); // 300 bytes: a two-byte Remaining Length
      await c.sendBytewise(
        encodePacket({ type: 3, qos: 1, dup: false, retain: false, topic: 'bytes/x', packetId: 4, payload, ...(version === 5 ? { properties: { userProperties: [['k', 'v']] } } : {}) }, version),
      );
      const seen = new Set<number>();
      let pub;
      while (seen.size < 2) {
        const p = await c.next();
        seen.add(p.type);
        if (p.type === 3) pub = p;
      }
      assert.deepEqual([...seen].sort(), [3, 4], 'PUBACK and the PUBLISH back');
      assert.deepEqual(pub!.payload, payload);
      await c.sendBytewise(Buffer.from([0xc0, 0x00]));
      await c.expect(13);
    });
  }

  it('a connection that never sends CONNECT is closed after limits.connectTimeout (1 s)', T, async () => {
    const start = Date.now();
    const silent = await open(4);
    const partial = await open(4);
    partial.send(connectFor(4).bytes.subarray(0, 6)); // a CONNECT that never completes
    const t1 = await silent.closed(8000);
    await partial.closed(8000);
    const elapsed = Date.now() - start;
    assert.ok(elapsed >= 900, `not before the deadline (${elapsed} ms)`);
    // Normally within 1-1.05 s (deadline buckets of 10 ms); the bound leaves room for a stalled machine.
    assert.ok(t1 < 6000, `closed ${t1} ms after the wait began (deadline 1 s)`);
    assert.equal(silent.unread.length + partial.unread.length, 0, 'nothing is sent');
  });

  it('a connection that sent CONNECT in time is not closed by the CONNECT deadline', T, async () => {
    const c = await open(5);
    c.send(connectFor(5).bytes);
    await c.expect(2);
    const extra = await c.quiet(1600);
    assert.deepEqual(extra, []);
    assert.equal(c.isClosed, false);
  });
});
