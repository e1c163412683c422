// Limits of issue 10 item 4 that are global or per client: maxConnections, connectionRatePerAddress,
// maxPublishRate / maxPublishBytesRate (pause or DISCONNECT 0x96), maxTopicLength. Each is counted when hit,
// and a client held back by its own rate never holds back another.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { DEFAULT_LIMITS } from '../../src/index.js';
import { ReasonCode } from '../../src/protocol/reason-codes.js';
import type { DisconnectPacket, PubackPacket, SubackPacket } from '../../src/protocol/packets.js';
import { startBroker } from '../helpers/broker.js';
import { RawClient } from '../helpers/raw-client.js';
import { connectMqtt, endAll } from '../helpers/mqttjs.js';
import { waitFor } from '../helpers/wait.js';

/** Open a TCP socket and report whether the broker closes it without a word within ms. */
function closedWithoutWord(port: number, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let got = false;
    s.on('data', () => (got = true));
    const t = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, ms);
    s.on('close', () => {
      clearTimeout(t);
      resolve(!got);
    });
    s.on('error', () => {});
  });
}

describe('limits', () => {
  it('documents a default for each new limit (all off but maxTopicLength, the protocol maximum)', () => {
    assert.equal(DEFAULT_LIMITS.maxConnections, 0);
    assert.equal(DEFAULT_LIMITS.connectionRatePerAddress, 0);
    assert.equal(DEFAULT_LIMITS.maxPublishRate, 0);
    assert.equal(DEFAULT_LIMITS.maxPublishBytesRate, 0);
    assert.equal(DEFAULT_LIMITS.rateLimitDisconnect, false);
    assert.equal(DEFAULT_LIMITS.maxTopicLength, 65535);
  });

  it('maxConnections: the socket past the limit is closed at accept and counted; a slot freed is usable again', async () => {
    const tb = await startBroker({ limits: { maxConnections: 2 } });
    try {
      const a = await RawClient.connect(tb.port, 5, { clientId: 'a' });
      const b = await RawClient.connect(tb.port, 5, { clientId: 'b' });
      assert.equal(await closedWithoutWord(tb.port, 2000), true, 'third socket closed');
      assert.equal(tb.broker.stats.connectionsRefusedLimit, 1);
      a.client.destroy();
      await waitFor(() => tb.broker.connectedClients === 1, 2000, 'a gone');
      const c = await RawClient.connect(tb.port, 5, { clientId: 'c' });
      assert.equal(c.connack.reasonCode, 0);
      // b still works
      const sub = await b.client.subscribe(['t']);
      assert.deepEqual(sub.reasonCodes, [0]);
      c.client.destroy();
      b.client.destroy();
    } finally {
      await tb.close();
    }
  });

  it('connectionRatePerAddress: connections past the burst within the second are closed and counted', async () => {
    const tb = await startBroker({ limits: { connectionRatePerAddress: 3 } });
    try {
      const ok = [];
      for (let i = 0; i < 3; i++) ok.push(await RawClient.connect(tb.port, 4, { clientId: `r${i}` }));
      assert.equal(await closedWithoutWord(tb.port, 2000), true, 'fourth connection in the same second closed');
      assert.ok(tb.broker.stats.connectionsRefusedAddressRate >= 1);
      for (const c of ok) c.client.destroy();
      // The bucket refills: after a second a new connection is accepted.
      await new Promise((r) => setTimeout(r, 1100));
      const again = await RawClient.connect(tb.port, 4, { clientId: 'later' });
      assert.equal(again.connack.reasonCode, 0);
      again.client.destroy();
    } finally {
      await tb.close();
    }
  });

  it('maxPublishRate: a client over its rate is paused (every message arrives, paced), and another publisher is not slowed', async () => {
    const rate = 50;
    const tb = await startBroker({ limits: { maxPublishRate: rate } });
    try {
      const sub = await connectMqtt(tb.url, { protocolVersion: 5 });
      await sub.client.subscribeAsync(['fast', 'other'], { qos: 0 });
      const fast = await RawClient.connect(tb.port, 5, { clientId: 'fast' });
      const other = await RawClient.connect(tb.port, 5, { clientId: 'other' });
      const n = 150; // burst of 50, then 100 more at 50/s: about 2 s
      const t0 = Date.now();
      for (let i = 0; i < n; i++) fast.client.publish('fast', String(i));
      // While the fast one is paced, the other publisher's message goes through at once.
      await waitFor(() => tb.broker.stats.publishRatePauses > 0, 2000, 'a pause');
      const t1 = Date.now();
      other.client.publish('other', 'x');
      await sub.messages.count('other', 1, 1000);
      assert.ok(Date.now() - t1 < 1000, 'the other publisher was not held back');
      await sub.messages.count('fast', n, 8000);
      const took = Date.now() - t0;
      assert.ok(took >= 1500, `150 messages at 50/s with a burst of 50 took ${took} ms (expected about 2 s)`);
      assert.deepEqual(sub.messages.payloads('fast'), Array.from({ length: n }, (_, i) => String(i)), 'in order, none lost');
      assert.equal(fast.client.isClosed, false);
      fast.client.destroy();
      other.client.destroy();
      await endAll(sub.client);
    } finally {
      await tb.close();
    }
  });

  it('maxPublishBytesRate: payload bytes are paced like messages', async () => {
    const tb = await startBroker({ limits: { maxPublishBytesRate: 100_000, maxPacketSize: 1024 * 1024 } });
    try {
      const sub = await connectMqtt(tb.url, { protocolVersion: 5 });
      await sub.client.subscribeAsync('big', { qos: 1 });
      const pub = await RawClient.connect(tb.port, 5, { clientId: 'bytes' });
      const t0 = Date.now();
      for (let i = 0; i < 3; i++) pub.client.publish('big', Buffer.alloc(100_000, i), { qos: 1 });
      await sub.messages.count('big', 3, 8000);
      const took = Date.now() - t0;
      // The first 100 kB are the burst; the next 200 kB take 2 s at 100 kB/s (the last is read after 1 s of debt).
      assert.ok(took >= 900, `300 kB at 100 kB/s took ${took} ms`);
      assert.ok(tb.broker.stats.publishRatePauses >= 1);
      pub.client.destroy();
      await endAll(sub.client);
    } finally {
      await tb.close();
    }
  });

  it('rateLimitDisconnect: a v5 client over its rate gets DISCONNECT 0x96 Message rate too high; the PUBLISH past it is not acknowledged', async () => {
    const tb = await startBroker({ limits: { maxPublishRate: 5, rateLimitDisconnect: true } });
    try {
      const { client } = await RawClient.connect(tb.port, 5, { clientId: 'flood' });
      for (let i = 0; i < 20; i++) client.publish('t', 'x', { qos: 1 });
      await client.closed(3000);
      const acks = client.received.filter((p) => p.type === 4) as PubackPacket[];
      const disc = client.received.find((p) => p.type === 14) as DisconnectPacket | undefined;
      assert.equal(disc?.reasonCode, ReasonCode.MessageRateTooHigh);
      assert.equal(acks.length, 5, 'the burst of 5 was acknowledged, nothing after');
      assert.equal(tb.broker.stats.publishRateDisconnects, 1);
    } finally {
      await tb.close();
    }
  });

  it('maxTopicLength: a longer topic is refused (PUBACK 0x90, SUBACK 0x8F, 3.1.1 SUBACK 0x80) and counted; one at the limit works', async () => {
    const tb = await startBroker({ limits: { maxTopicLength: 100 } });
    try {
      const { client } = await RawClient.connect(tb.port, 5, { clientId: 'long' });
      const atLimit = 'a'.repeat(100);
      const over = 'é'.repeat(51); // 51 characters, 102 bytes of UTF-8
      const sub = (await client.subscribe([atLimit, over])) as SubackPacket;
      assert.deepEqual(sub.reasonCodes, [0, ReasonCode.TopicFilterInvalid]);
      client.publish(over, 'x', { qos: 1 });
      const ack = (await client.expect(4)) as PubackPacket;
      assert.equal(ack.reasonCode, ReasonCode.TopicNameInvalid);
      client.publish('b'.repeat(100), 'y', { qos: 1 });
      // Accepted (0x10: no subscriber for it, which is a success code), not refused.
      assert.equal(((await client.expect(4)) as PubackPacket).reasonCode, ReasonCode.NoMatchingSubscribers);
      const v3 = await RawClient.connect(tb.port, 4, { clientId: 'long3' });
      assert.deepEqual(((await v3.client.subscribe([over])) as SubackPacket).reasonCodes, [0x80]);
      assert.equal(tb.broker.stats.topicLengthRefused, 3);
      client.destroy();
      v3.client.destroy();
    } finally {
      await tb.close();
    }
  });
});
