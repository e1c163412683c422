// Protocol rules checked byte by byte with raw sockets: QoS 2 state across
// reconnections, flow control for QoS 2, expiry while queued, topic aliases
// across connections, session expiry changes on DISCONNECT, will timing and
// properties, server capabilities announced in CONNACK and enforced, and the
// client's Maximum Packet Size applied to the broker's own acknowledgements.

import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { AckPacket, Properties, ProtocolVersion, PublishPacket } from '../../src/protocol/packets.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { connectMqtt, endAll, uniqueId, versionOptions, type Connected } from '../helpers/mqttjs.js';
import { RawClient, type RawConnectOptions } from '../helpers/raw-client.js';
import { sleep, waitFor, withTimeout } from '../helpers/wait.js';

const T = { timeout: 20_000 };

class Tracker {
  private readonly raws: RawClient[] = [];
  private readonly clients: Connected[] = [];
  private readonly brokers: TestBroker[] = [];
  raw(r: RawClient): RawClient {
    this.raws.push(r);
    return r;
  }
  mqtt(c: Connected): Connected {
    this.clients.push(c);
    return c;
  }
  broker(b: TestBroker): TestBroker {
    this.brokers.push(b);
    return b;
  }
  async closeAll(): Promise<void> {
    for (const r of this.raws.splice(0)) r.destroy();
    await endAll(...this.clients.splice(0).map((c) => c.client));
    await Promise.all(this.brokers.splice(0).map((b) => withTimeout(b.close(), 5000, 'broker.close()').catch(() => {})));
  }
}

const track = new Tracker();
afterEach(() => track.closeAll());

let tb: TestBroker;
before(async () => {
  tb = await startBroker({ hooks: { authorizePublish: (_c, m) => !m.topic.startsWith('deny/') } });
});
after(() => tb.close());

async function raw(version: ProtocolVersion, opts: RawConnectOptions = {}, broker: TestBroker = tb) {
  const r = await RawClient.connect(broker.port, version, opts, true);
  track.raw(r.client);
  return r;
}

const persistent = (version: ProtocolVersion, clientId: string): RawConnectOptions =>
  version === 5 ? { clientId, clean: false, properties: { sessionExpiryInterval: 60 } } : { clientId, clean: false };

/** Drop a connection and wait until the broker has seen it go. */
async function drop(client: RawClient, broker: TestBroker = tb): Promise<void> {
  const n = broker.broker.connectedClients;
  client.destroy();
  await waitFor(() => broker.broker.connectedClients === n - 1, 3000, 'the broker to see the connection drop');
}

async function nextPublish(client: RawClient, ms?: number): Promise<PublishPacket> {
  return client.expect(3, ms);
}

// ---------------------------------------------------------------------------

describe('QoS 2 state survives a reconnection', T, () => {
  for (const version of [4, 5] as const) {
    it(`v${version}: outbound — after PUBREC, a resumed session re-sends PUBREL (same packet id), not the PUBLISH [MQTT-4.4.0-1] [MQTT-4.3.3-6]`, T, async () => {
      const id = uniqueId(`q2out${version}`);
      const a = await raw(version, persistent(version, id));
      await a.client.subscribe([{ filter: `q2out${version}/x`, qos: 2 }]);
      const pub = await raw(version);
      pub.client.publish(`q2out${version}/x`, 'once', { qos: 2 });
      await pub.client.expect(5);
      const p = await nextPublish(a.client);
      a.client.sendPacket({ type: 5, packetId: p.packetId, reasonCode: 0 });
      const rel = await a.client.expect(6);
      assert.equal((rel as AckPacket).packetId, p.packetId);
      await drop(a.client);
      const b = await raw(version, persistent(version, id));
      assert.equal(b.connack.sessionPresent, true);
      const again = await b.client.next();
      assert.equal(again.type, 6, `PUBREL re-sent, got type ${again.type}`);
      assert.equal((again as AckPacket).packetId, p.packetId);
      b.client.sendPacket({ type: 7, packetId: p.packetId, reasonCode: 0 });
      assert.deepEqual(await b.client.quiet(200), [], 'no PUBLISH is re-sent after PUBREL');
    });

    it(`v${version}: inbound — a PUBLISH re-sent with DUP after reconnecting, before PUBREL, is not delivered twice [MQTT-4.3.3-10] [MQTT-4.4.0-1]`, T, async () => {
      const sub = track.mqtt(await connectMqtt(tb.url, versionOptions(5)));
      await sub.client.subscribeAsync(`q2in${version}/#`, { qos: 2 });
      const id = uniqueId(`q2in${version}`);
      const a = await raw(version, persistent(version, id));
      a.client.publish(`q2in${version}/x`, 'exactly-once', { qos: 2, packetId: 42 });
      await a.client.expect(5);
      await drop(a.client);
      const b = await raw(version, persistent(version, id));
      b.client.publish(`q2in${version}/x`, 'exactly-once', { qos: 2, packetId: 42, dup: true });
      assert.equal(((await b.client.expect(5)) as AckPacket).packetId, 42);
      b.client.sendPacket({ type: 6, packetId: 42, reasonCode: 0 });
      assert.equal(((await b.client.expect(7)) as AckPacket).reasonCode, 0);
      b.client.publish(`q2in${version}/marker`, 'm', { qos: 1 });
      await b.client.expect(4);
      await sub.messages.count(`q2in${version}/marker`, 1);
      assert.equal(sub.messages.on(`q2in${version}/x`).length, 1);
    });
  }

  it('v5: Receive Maximum is still enforced on a connection that completes a QoS 2 exchange begun on the previous one (§3.3.4, §4.9)', T, async () => {
    const b = track.broker(await startBroker({ limits: { receiveMaximum: 2 } }));
    const id = uniqueId('rmres');
    const first = await raw(5, persistent(5, id), b);
    first.client.publish('rmres/x', 'carried over', { qos: 2, packetId: 1 });
    await first.client.expect(5);
    await drop(first.client, b);
    const second = await raw(5, persistent(5, id), b);
    // Finish the old exchange, then exceed the maximum on this connection: 3 QoS 2 PUBLISHes unanswered by PUBCOMP.
    second.client.sendPacket({ type: 6, packetId: 1, reasonCode: 0 });
    await second.client.expect(7);
    for (const pid of [2, 3]) {
      second.client.publish('rmres/x', `m${pid}`, { qos: 2, packetId: pid });
      await second.client.expect(5);
    }
    second.client.publish('rmres/x', 'm4', { qos: 2, packetId: 4 });
    const answer = await second.client.next();
    assert.equal(answer.type, 14, `a third unacknowledged QoS 2 PUBLISH with Receive Maximum 2 gets DISCONNECT, got type ${answer.type}`);
    assert.equal((answer as { reasonCode: number }).reasonCode, 0x93);
  });

  it('v5: PUBREL for an unknown packet id gets PUBCOMP 0x92 (Packet Identifier not found)', T, async () => {
    const { client } = await raw(5);
    client.sendPacket({ type: 6, packetId: 777, reasonCode: 0 });
    const comp = (await client.expect(7)) as AckPacket;
    assert.equal(comp.packetId, 777);
    assert.equal(comp.reasonCode, 0x92);
  });
});

// ---------------------------------------------------------------------------

describe('outbound flow control with QoS 2', T, () => {
  it('the send quota is released by PUBCOMP, not by PUBREC; PUBREC >= 0x80 ends the flow without PUBREL and releases it [MQTT-4.9.0-2] [MQTT-4.3.3-4] [MQTT-3.3.4-9]', T, async () => {
    const sub = await raw(5, { properties: { receiveMaximum: 1 } });
    await sub.client.subscribe([{ filter: 'fq2/x', qos: 2 }]);
    const pub = track.mqtt(await connectMqtt(tb.url, versionOptions(5)));
    for (let i = 1; i <= 3; i++) await pub.client.publishAsync('fq2/x', `m${i}`, { qos: 2 });
    const p1 = await nextPublish(sub.client);
    assert.equal(p1.payload.toString(), 'm1');
    sub.client.sendPacket({ type: 5, packetId: p1.packetId, reasonCode: 0 });
    await sub.client.expect(6);
    assert.deepEqual(await sub.client.quiet(250), [], 'no new PUBLISH between PUBREC and PUBCOMP');
    sub.client.sendPacket({ type: 7, packetId: p1.packetId, reasonCode: 0 });
    const p2 = await nextPublish(sub.client);
    assert.equal(p2.payload.toString(), 'm2');
    sub.client.sendPacket({ type: 5, packetId: p2.packetId, reasonCode: 0x80 });
    const p3 = await nextPublish(sub.client);
    assert.equal(p3.payload.toString(), 'm3', 'a refusing PUBREC frees the quota; no PUBREL for it');
  });

  it('a message that expires while waiting for the window is not delivered [MQTT-3.3.2-5]', T, async () => {
    const sub = await raw(5, { properties: { receiveMaximum: 1 } });
    await sub.client.subscribe([{ filter: 'fexp/x', qos: 1 }]);
    const pub = track.mqtt(await connectMqtt(tb.url, versionOptions(5)));
    await pub.client.publishAsync('fexp/x', 'first', { qos: 1 });
    await pub.client.publishAsync('fexp/x', 'expires', { qos: 1, properties: { messageExpiryInterval: 1 } });
    await pub.client.publishAsync('fexp/x', 'stays', { qos: 1 });
    const p1 = await nextPublish(sub.client);
    assert.equal(p1.payload.toString(), 'first');
    await sleep(1300); // the second message expires while the window is full
    sub.client.puback(p1.packetId);
    const p2 = await nextPublish(sub.client);
    assert.equal(p2.payload.toString(), 'stays');
  });
});

// ---------------------------------------------------------------------------

describe('expiry and identifiers on retained messages', T, () => {
  it('a retained message is not sent after its expiry; before it, with the remaining interval [MQTT-3.3.2-5] [MQTT-3.3.2-6]', T, async () => {
    const pub = await raw(5);
    pub.client.publish('rexp/short', 'short', { qos: 1, retain: true, properties: { messageExpiryInterval: 1 } });
    pub.client.publish('rexp/long', 'long', { qos: 1, retain: true, properties: { messageExpiryInterval: 100 } });
    await pub.client.expect(4);
    await pub.client.expect(4);
    await sleep(1300);
    const sub = await raw(5);
    await sub.client.subscribe([{ filter: 'rexp/#', qos: 1 }]);
    const p = await nextPublish(sub.client);
    assert.equal(p.payload.toString(), 'long');
    assert.ok(p.properties?.messageExpiryInterval !== undefined && p.properties.messageExpiryInterval <= 99, `remaining ${p.properties?.messageExpiryInterval}`);
    pub.client.publish('rexp/marker', 'm', { qos: 1 });
    const m = await nextPublish(sub.client);
    assert.equal(m.payload.toString(), 'm', 'the expired retained message never came');
    pub.client.publish('rexp/long', '', { qos: 1, retain: true });
    await pub.client.expect(4);
  });

  it('a retained message sent because of a new subscription carries its Subscription Identifier [MQTT-3.3.4-3]', T, async () => {
    const pub = await raw(5);
    pub.client.publish('rsid/x', 'r', { qos: 1, retain: true });
    await pub.client.expect(4);
    const sub = await raw(5);
    await sub.client.subscribe([{ filter: 'rsid/+', qos: 1 }], { subscriptionIdentifiers: [99] });
    const p = await nextPublish(sub.client);
    assert.equal(p.retain, true);
    assert.deepEqual(p.properties?.subscriptionIdentifiers, [99]);
    pub.client.publish('rsid/x', '', { qos: 1, retain: true });
    await pub.client.expect(4);
  });
});

// ---------------------------------------------------------------------------

describe('subscriptions', T, () => {
  it('v5: UNSUBSCRIBE of a filter that is not subscribed → UNSUBACK 0x11; of one that is → 0x00, in order [MQTT-3.11.3-1]', T, async () => {
    const { client } = await raw(5);
    await client.subscribe([{ filter: 'uns/a', qos: 0 }]);
    const ack = await client.unsubscribe(['uns/none', 'uns/a', 'uns/a']);
    assert.deepEqual(ack.reasonCodes, [0x11, 0x00, 0x11]);
  });

  it('a SUBSCRIBE for an existing filter replaces the subscription: new QoS, no duplicate delivery [MQTT-3.8.4-3]', T, async () => {
    const { client } = await raw(4);
    await client.subscribe([{ filter: 'rep/x', qos: 2 }]);
    await client.subscribe([{ filter: 'rep/x', qos: 0 }]);
    const pub = await raw(4);
    pub.client.publish('rep/x', 'once', { qos: 2, packetId: 5 });
    await pub.client.expect(5);
    const p = await nextPublish(client);
    assert.equal(p.qos, 0, 'the replacing subscription QoS 0 applies');
    assert.deepEqual((await client.quiet(200)).filter((x) => x.type === 3), [], 'one delivery');
  });

  it('3.1.1: overlapping subscriptions deliver the message at the maximum granted QoS [MQTT-3.3.5-1 (3.1.1)]', T, async () => {
    const { client } = await raw(4);
    await client.subscribe([{ filter: 'ovl/#', qos: 0 }, { filter: 'ovl/x', qos: 2 }]);
    const pub = await raw(4);
    pub.client.publish('ovl/x', 'm', { qos: 2, packetId: 8 });
    await pub.client.expect(5);
    const copies: PublishPacket[] = [await nextPublish(client)];
    for (const p of await client.quiet(200)) if (p.type === 3) copies.push(p);
    assert.equal(Math.max(...copies.map((c) => c.qos)), 2);
  });
});

// ---------------------------------------------------------------------------

describe('topic aliases are per connection', T, () => {
  it('after a reconnection the broker sends the full topic again before using an alias [MQTT-3.3.2-7]', T, async () => {
    const id = uniqueId('talias');
    const opts: RawConnectOptions = { clientId: id, clean: false, properties: { sessionExpiryInterval: 60, topicAliasMaximum: 5 } };
    const a = await raw(5, opts);
    await a.client.subscribe([{ filter: 'tac/x', qos: 1 }]);
    const pub = await raw(5);
    pub.client.publish('tac/x', '1', { qos: 1 });
    const p1 = await nextPublish(a.client);
    assert.equal(p1.topic, 'tac/x');
    assert.ok(p1.properties?.topicAlias !== undefined);
    a.client.puback(p1.packetId);
    await drop(a.client);
    const b = await raw(5, opts);
    pub.client.publish('tac/x', '2', { qos: 1 });
    const p2 = await nextPublish(b.client);
    assert.equal(p2.topic, 'tac/x', 'the new connection has no alias mapping yet: the topic is sent');
  });
});

// ---------------------------------------------------------------------------

describe('session expiry set on DISCONNECT', T, () => {
  it('a non-zero Session Expiry Interval on DISCONNECT after 0 on CONNECT is a Protocol Error: DISCONNECT 0x82 (§3.14.2.2.2)', T, async () => {
    const { client } = await raw(5);
    client.sendPacket({ type: 14, reasonCode: 0, properties: { sessionExpiryInterval: 30 } });
    assert.equal((await client.expect(14)).reasonCode, 0x82);
    await client.closed();
  });

  it('Session Expiry Interval 0 on DISCONNECT ends a persistent session at once [MQTT-4.1.0-2]', T, async () => {
    const id = uniqueId('sedisc');
    const a = await raw(5, persistent(5, id));
    await a.client.subscribe([{ filter: 'sedisc/x', qos: 1 }]);
    a.client.disconnect(0, { sessionExpiryInterval: 0 });
    await a.client.closed();
    const b = await raw(5, persistent(5, id));
    assert.equal(b.connack.sessionPresent, false);
  });

  it('a longer Session Expiry Interval on DISCONNECT keeps the session [MQTT-3.1.2-23]', T, async () => {
    const id = uniqueId('selong');
    const a = await raw(5, { clientId: id, clean: false, properties: { sessionExpiryInterval: 1 } });
    a.client.disconnect(0, { sessionExpiryInterval: 60 });
    await a.client.closed();
    await sleep(1500);
    const b = await raw(5, persistent(5, id));
    assert.equal(b.connack.sessionPresent, true, 'the session outlived its original 1 s interval');
  });
});

// ---------------------------------------------------------------------------

describe('wills', T, () => {
  it('a will delay longer than the session expiry: the will is published when the session ends [MQTT-3.1.2-8]', T, async () => {
    const watcher = track.mqtt(await connectMqtt(tb.url, versionOptions(5)));
    await watcher.client.subscribeAsync('wsx/#', { qos: 1 });
    const w = await raw(5, {
      clientId: uniqueId('wsx'),
      clean: false,
      properties: { sessionExpiryInterval: 1 },
      will: { topic: 'wsx/x', payload: Buffer.from('bye'), qos: 1, retain: false, properties: { willDelayInterval: 60 } },
    });
    const at = Date.now();
    w.client.destroy();
    await watcher.messages.count('wsx/x', 1, 15_000);
    const elapsed = Date.now() - at;
    assert.ok(elapsed >= 800 && elapsed < 15_000, `published when the session ended (${elapsed} ms), not after 60 s`);
  });

  it('will properties are forwarded, user properties in order [MQTT-3.1.3-10]', T, async () => {
    const sub = await raw(5);
    await sub.client.subscribe([{ filter: 'wprops/#', qos: 1 }]);
    const userProperties: [string, string][] = [['b', '1'], ['a', '2'], ['b', '3']];
    const willProps: Properties = { userProperties, contentType: 'text/plain', responseTopic: 'wprops/reply', correlationData: Buffer.from('cd') };
    const w = await raw(5, { will: { topic: 'wprops/x', payload: Buffer.from('gone'), qos: 1, retain: false, properties: willProps } });
    w.client.destroy();
    const p = await nextPublish(sub.client);
    assert.equal(p.payload.toString(), 'gone');
    assert.deepEqual(p.properties?.userProperties, userProperties);
    assert.equal(p.properties?.contentType, 'text/plain');
    assert.equal(p.properties?.responseTopic, 'wprops/reply');
    assert.deepEqual(p.properties?.correlationData, Buffer.from('cd'));
  });

  for (const version of [4, 5] as const) {
    it(`v${version}: a connection closed by a session takeover publishes its will [MQTT-3.1.2-8] [MQTT-3.1.4-3]`, T, async () => {
      const watcher = track.mqtt(await connectMqtt(tb.url, versionOptions(5)));
      await watcher.client.subscribeAsync(`wto${version}/#`, { qos: 1 });
      const id = uniqueId(`wto${version}`);
      const old = await raw(version, { clientId: id, will: { topic: `wto${version}/x`, payload: Buffer.from('taken'), qos: 1, retain: false } });
      await raw(version, { clientId: id });
      await old.client.closed();
      const [m] = await watcher.messages.count(`wto${version}/x`, 1);
      assert.equal(m!.payload.toString(), 'taken');
    });
  }
});

// ---------------------------------------------------------------------------

describe('capabilities announced in CONNACK and enforced', T, () => {
  it('limits.maxQoS 1: CONNACK Maximum QoS 1; a QoS 2 SUBSCRIBE is accepted and granted 1; a QoS 2 PUBLISH → DISCONNECT 0x9B; a QoS 2 will → CONNACK 0x9B [MQTT-3.2.2-9] [MQTT-3.2.2-10] [MQTT-3.2.2-12]', T, async () => {
    const b = track.broker(await startBroker({ limits: { maxQoS: 1 } }));
    const c = await raw(5, {}, b);
    assert.equal(c.connack.properties?.maximumQoS, 1);
    const suback = await c.client.subscribe([{ filter: 'mq/x', qos: 2 }]);
    assert.deepEqual(suback.reasonCodes, [1]);
    c.client.publish('mq/x', 'x', { qos: 2 });
    assert.equal((await c.client.expect(14)).reasonCode, 0x9b);
    await c.client.closed();
    const w = await raw(5, { will: { topic: 'mq/w', payload: Buffer.from('w'), qos: 2, retain: false } }, b);
    assert.equal(w.connack.reasonCode, 0x9b);
    await w.client.closed();
  });

  it('limits.retainAvailable false: CONNACK Retain Available 0; a retained PUBLISH → DISCONNECT 0x9A; a retained will → CONNACK 0x9A [MQTT-3.2.2-13] [MQTT-3.2.2-14]', T, async () => {
    const b = track.broker(await startBroker({ limits: { retainAvailable: false } }));
    const c = await raw(5, {}, b);
    assert.equal(c.connack.properties?.retainAvailable, 0);
    c.client.publish('ra/x', 'x', { qos: 1, retain: true });
    assert.equal((await c.client.expect(14)).reasonCode, 0x9a);
    await c.client.closed();
    const w = await raw(5, { will: { topic: 'ra/w', payload: Buffer.from('w'), qos: 0, retain: true } }, b);
    assert.equal(w.connack.reasonCode, 0x9a);
  });

  it('wildcard and shared subscriptions switched off: announced in CONNACK; using them is a Protocol Error → DISCONNECT 0xA2 / 0x9E (§3.2.2.3.11, §3.2.2.3.13); 3.1.1 gets SUBACK 0x80', T, async () => {
    const b = track.broker(await startBroker({ limits: { wildcardSubscriptions: false, sharedSubscriptions: false } }));
    const c = await raw(5, {}, b);
    assert.equal(c.connack.properties?.wildcardSubscriptionAvailable, 0);
    assert.equal(c.connack.properties?.sharedSubscriptionAvailable, 0);
    assert.deepEqual((await c.client.subscribe([{ filter: 'wc/x', qos: 1 }])).reasonCodes, [1]);
    c.client.sendPacket({ type: 8, packetId: c.client.nextPacketId(), subscriptions: [{ filter: 'wc/+', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }] });
    assert.equal((await c.client.expect(14)).reasonCode, 0xa2);
    await c.client.closed();
    const d = await raw(5, {}, b);
    d.client.sendPacket({ type: 8, packetId: d.client.nextPacketId(), subscriptions: [{ filter: '$share/g/wc/x', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }] });
    assert.equal((await d.client.expect(14)).reasonCode, 0x9e);
    await d.client.closed();
    const e = await raw(4, {}, b);
    const suback = await e.client.subscribe([
      { filter: 'wc/+', qos: 1 },
      { filter: '$share/g/wc/x', qos: 1 },
      { filter: 'wc/x', qos: 1 },
    ]);
    assert.deepEqual(suback.reasonCodes, [0x80, 0x80, 1]);
  });

  it('subscription identifiers switched off: CONNACK Subscription Identifiers Available 0; a SUBSCRIBE with one → DISCONNECT 0xA1', T, async () => {
    const b = track.broker(await startBroker({ limits: { subscriptionIdentifiers: false } }));
    const c = await raw(5, {}, b);
    assert.equal(c.connack.properties?.subscriptionIdentifiersAvailable, 0);
    const pid = c.client.nextPacketId();
    c.client.sendPacket({ type: 8, packetId: pid, subscriptions: [{ filter: 'si/x', qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 }], properties: { subscriptionIdentifiers: [3] } });
    assert.equal((await c.client.expect(14)).reasonCode, 0xa1);
  });

  it('empty client id: 3.1.1 with clean session 0 → CONNACK 0x02; MQTT 3.1 → CONNACK 0x02; 3.1.1 with clean session 1 is accepted [MQTT-3.1.3-7] [MQTT-3.1.3-8] (3.1.1)', T, async () => {
    const a = await raw(4, { clientId: '', clean: false });
    assert.equal(a.connack.reasonCode, 0x02);
    await a.client.closed();
    const b = await raw(3, { clientId: '' });
    assert.equal(b.connack.reasonCode, 0x02);
    await b.client.closed();
    const c = await raw(4, { clientId: '', clean: true });
    assert.equal(c.connack.reasonCode, 0);
  });
});

// ---------------------------------------------------------------------------

describe("the client's Maximum Packet Size bounds the broker's own packets", T, () => {
  it('a PUBACK refusing a PUBLISH drops its Reason String rather than exceed the client maximum [MQTT-3.4.2-2] [MQTT-3.1.2-24]', T, async () => {
    const { client, connack } = await raw(5, { properties: { maximumPacketSize: 20 } });
    assert.equal(connack.reasonCode, 0);
    client.publish('deny/x', 'x', { qos: 1 });
    const ack = (await client.expect(4)) as AckPacket;
    assert.equal(ack.reasonCode, 0x87);
    const size = client.packetSizes[client.packetSizes.length - 1]!;
    assert.ok(size <= 20, `PUBACK of ${size} bytes sent to a client whose Maximum Packet Size is 20`);
  });

  it('a DISCONNECT drops its Reason String rather than exceed the client maximum [MQTT-3.14.2-3] [MQTT-3.1.2-24]', T, async () => {
    const { client } = await raw(5, { properties: { maximumPacketSize: 20 } });
    client.sendPacket(client.connectPacket({}));
    const d = await client.expect(14);
    assert.equal(d.reasonCode, 0x82);
    const size = client.packetSizes[client.packetSizes.length - 1]!;
    assert.ok(size <= 20, `DISCONNECT of ${size} bytes sent to a client whose Maximum Packet Size is 20`);
  });
});
