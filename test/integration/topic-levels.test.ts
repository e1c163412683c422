// Deep topics cannot end the process: every walk over topic levels (the
// subscription tree, the retained index) is a loop, and limits.maxTopicLevels
// refuses deeper topic names and filters with the spec's reason codes.
// With a limit high enough to let a 65,000-level topic through, the walks
// themselves are exercised (a recursive walk overflows the stack); with the
// default limit, the same topic is refused.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_LIMITS, PetrelError } from '../../src/index.js';
import type { PubackPacket } from '../../src/protocol/packets.js';
import { ReasonCode } from '../../src/protocol/reason-codes.js';
import { RetainedIndex } from '../../src/broker/retained.js';
import { Subscription, TopicTree, type Recipient } from '../../src/broker/topic-tree.js';
import { Message } from '../../src/broker/message.js';
import { exceedsTopicLevels } from '../../src/protocol/topic.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { connectMqtt, endAll, versionOptions, type Connected } from '../helpers/mqttjs.js';
import { RawClient } from '../helpers/raw-client.js';
import { withTimeout } from '../helpers/wait.js';

const T = { timeout: 30_000 };
/** 65,000 levels, all empty: valid UTF-8, 64,999 bytes. */
const DEEP = '/'.repeat(64_999);
/** 32,001 levels of '+': a filter that walks the '+' branch of the tree once per level. */
const DEEP_PLUS = '+/'.repeat(32_000) + '+';
const DEEP_PLUS_TOPIC = 'x/'.repeat(32_000) + 'x';

function levels(t: string): number {
  return t.split('/').length;
}

/** A bystander: publishes QoS 1 to itself and receives it. */
async function roundTrip(c: Connected, topic: string): Promise<void> {
  await withTimeout(c.client.publishAsync(topic, 'ping', { qos: 1 }), 3000, 'PUBACK for the bystander');
  await c.messages.count(topic, 1, 3000);
}

const recipient = (id: string): Recipient => ({
  id,
  online: true,
  persistent: false,
  hasRoom: () => true,
  deliver: () => {},
});

function message(topic: string): Message {
  return new Message(1, topic, Buffer.from('x'), 0, true, undefined, undefined, Date.now(), undefined);
}

describe('topic walks are iterative (units)', () => {
  it('TopicTree adds, matches and removes a 65,000-level topic and a 32,001-level "+" filter without recursion', () => {
    const tree = new TopicTree();
    const r = recipient('a');
    const exact = new Subscription(r, DEEP, DEEP, null, 1, false, false, 0, undefined);
    const plus = new Subscription(r, DEEP_PLUS, DEEP_PLUS, null, 1, false, false, 0, undefined);
    const shared = new Subscription(recipient('b'), `$share/g/${DEEP}`, DEEP, 'g', 1, false, false, 0, undefined);
    tree.add(exact);
    tree.add(plus);
    tree.add(shared);
    const m = tree.match(DEEP);
    assert.deepEqual(m.single, [exact]);
    assert.equal(m.shared.length, 1);
    assert.deepEqual(tree.match(DEEP_PLUS_TOPIC).single, [plus]);
    assert.equal(tree.remove(r, DEEP, null), exact);
    assert.equal(tree.remove(r, DEEP_PLUS, null), plus);
    assert.ok(tree.remove(shared.recipient, DEEP, 'g'));
    assert.equal(tree.size, 0);
    assert.equal(tree.match(DEEP).single.length, 0);
  });

  it('RetainedIndex sets, gets, matches ("#", "+" levels) and clears a 65,000-level topic without recursion', () => {
    const idx = new RetainedIndex();
    const msg = message(DEEP);
    const plusMsg = message(DEEP_PLUS_TOPIC);
    idx.set(DEEP, msg);
    idx.set(DEEP_PLUS_TOPIC, plusMsg);
    idx.set('a/b', message('a/b'));
    assert.equal(idx.get(DEEP), msg);
    assert.equal(idx.match('#').length, 3);
    assert.deepEqual(idx.match(DEEP), [msg]);
    assert.deepEqual(idx.match(DEEP_PLUS), [plusMsg]);
    assert.deepEqual(idx.match(DEEP + '#'), [msg]);
    assert.equal([...idx.all()].length, 3);
    idx.set(DEEP, null);
    idx.set(DEEP_PLUS_TOPIC, null);
    assert.equal(idx.size, 1);
    assert.deepEqual(idx.match('#').map((m) => m.topic), ['a/b']);
  });

  it('RetainedIndex.match keeps the depth-first insertion order of the recursive walk, and $ topics from leading wildcards', () => {
    const idx = new RetainedIndex();
    for (const t of ['a', 'a/b', 'a/b/c', 'a/d', 'e', '$SYS/x', 'e/f']) idx.set(t, message(t));
    assert.deepEqual(idx.match('#').map((m) => m.topic), ['a', 'a/b', 'a/b/c', 'a/d', 'e', 'e/f']);
    assert.deepEqual(idx.match('+/#').map((m) => m.topic), ['a', 'a/b', 'a/b/c', 'a/d', 'e', 'e/f']);
    assert.deepEqual(idx.match('a/+').map((m) => m.topic), ['a/b', 'a/d']);
    assert.deepEqual(idx.match('$SYS/#').map((m) => m.topic), ['$SYS/x']);
  });

  it('exceedsTopicLevels counts levels (a shared filter by its topic filter)', () => {
    assert.equal(exceedsTopicLevels('a/b/c', 3), false);
    assert.equal(exceedsTopicLevels('a/b/c/', 3), true);
    assert.equal(exceedsTopicLevels('$share/g/a/b/c', 3), false);
    assert.equal(exceedsTopicLevels('$share/g/a/b/c/d', 3), true);
    assert.equal(exceedsTopicLevels(DEEP, 65_000), false);
    assert.equal(exceedsTopicLevels(DEEP, 64_999), true);
  });
});

describe('a 65,000-level topic with maxTopicLevels 65,536: the broker walks it and stays up', { timeout: 60_000 }, () => {
  let tb: TestBroker;
  let bystander: Connected;
  before(async () => {
    tb = await startBroker({ limits: { maxTopicLevels: 65_536 } });
    bystander = await connectMqtt(tb.url, { ...versionOptions(5), clientId: 'bystander-deep' });
    await bystander.client.subscribeAsync('bystander/#', { qos: 1 });
  });
  after(async () => {
    await endAll(bystander?.client);
    await tb?.close();
  });

  it('SUBSCRIBE and PUBLISH of the topic (and a 32,001-level "+" filter): delivered, and another client carries on', T, async () => {
    assert.equal(levels(DEEP), 65_000);
    const { client } = await RawClient.connect(tb.port, 5, { clientId: 'deep-sub' });
    try {
      const suback = await client.subscribe([{ filter: DEEP, qos: 1 }, { filter: DEEP_PLUS, qos: 1 }]);
      assert.deepEqual(suback.reasonCodes, [1, 1]);
      const id = client.publish(DEEP, 'deep', { qos: 1 });
      // The client's own PUBLISH comes back (it is subscribed) and its PUBACK arrives; in either order.
      const got = [await client.next(), await client.next()];
      const pub = got.find((p) => p.type === 3);
      const ack = got.find((p) => p.type === 4);
      assert.ok(pub && pub.type === 3 && pub.topic === DEEP, 'the deep PUBLISH is delivered');
      assert.ok(ack && ack.type === 4 && ack.packetId === id && ack.reasonCode === 0, 'PUBACK success');
      if (pub.qos > 0) client.puback(pub.packetId);
      client.publish(DEEP_PLUS_TOPIC, 'plus', { qos: 0 });
      const plus = await client.expect(3);
      assert.equal(plus.topic, DEEP_PLUS_TOPIC);
      await roundTrip(bystander, 'bystander/1');
    } finally {
      client.destroy();
    }
  });

  it('a retained message on the topic, then SUBSCRIBE "#" and "+/+/#" from another client: delivered, and the broker stays up', T, async () => {
    const pub = await RawClient.connect(tb.port, 4, { clientId: 'deep-retainer' });
    try {
      pub.client.publish(DEEP, 'kept', { qos: 1, retain: true });
      await pub.client.expect(4);
    } finally {
      pub.client.destroy();
    }
    assert.equal(tb.broker.retainedCount, 1);
    const { client } = await RawClient.connect(tb.port, 5, { clientId: 'hash-sub' });
    try {
      await client.subscribe([{ filter: '#', qos: 0 }]);
      const m = await client.expect(3);
      assert.equal(m.topic, DEEP);
      assert.equal(m.retain, true);
      await client.subscribe([{ filter: '+/+/#', qos: 0 }]);
      assert.equal((await client.expect(3)).topic, DEEP);
      await roundTrip(bystander, 'bystander/2');
    } finally {
      client.destroy();
    }
  });

  it('a will on the topic is accepted, published when its connection drops, and the broker stays up', T, async () => {
    const { client: sub } = await RawClient.connect(tb.port, 5, { clientId: 'will-watcher' });
    try {
      const willTopic = '/'.repeat(64_998) + 'w';
      await sub.subscribe([{ filter: willTopic, qos: 0 }]);
      const { client } = await RawClient.connect(tb.port, 5, {
        clientId: 'deep-will',
        will: { topic: willTopic, payload: Buffer.from('gone'), qos: 0, retain: false },
      });
      client.destroy();
      const w = await sub.expect(3);
      assert.equal(w.topic, willTopic);
      assert.equal(w.payload.toString(), 'gone');
      await roundTrip(bystander, 'bystander/3');
    } finally {
      sub.destroy();
    }
  });
});

describe(`limits.maxTopicLevels (default ${DEFAULT_LIMITS.maxTopicLevels}) refuses deeper topics with the right reason codes`, { timeout: 60_000 }, () => {
  const max = DEFAULT_LIMITS.maxTopicLevels;
  /** Exactly at the limit, and one level more. */
  const atLimit = Array.from({ length: max }, (_, i) => `l${i}`).join('/');
  const over = atLimit + '/x';
  let tb: TestBroker;
  let bystander: Connected;
  let watcher: RawClient;
  before(async () => {
    tb = await startBroker();
    bystander = await connectMqtt(tb.url, { ...versionOptions(4), clientId: 'bystander-limit' });
    await bystander.client.subscribeAsync('bystander/#', { qos: 1 });
    // Sees everything routed under l0/ (where the refused topics are).
    watcher = (await RawClient.connect(tb.port, 5, { clientId: 'watcher' })).client;
    await watcher.subscribe([{ filter: 'l0/#', qos: 0 }]);
  });
  after(async () => {
    watcher?.destroy();
    await endAll(bystander?.client);
    await tb?.close();
  });

  it('the default is 200 levels', () => {
    assert.equal(max, 200);
    assert.equal(levels(atLimit), max);
    assert.equal(levels(over), max + 1);
  });

  it('v5 PUBLISH QoS 1 and 2 deeper than the limit: PUBACK / PUBREC 0x90, not routed, counted; at the limit: routed', T, async () => {
    const { client } = await RawClient.connect(tb.port, 5, { clientId: 'deep-pub5' });
    try {
      const before = tb.broker.stats.topicLevelsRefused;
      const id1 = client.publish(over, 'q1', { qos: 1 });
      const ack = (await client.expect(4)) as PubackPacket;
      assert.equal(ack.packetId, id1);
      assert.equal(ack.reasonCode, ReasonCode.TopicNameInvalid);
      const id2 = client.publish(over, 'q2', { qos: 2 });
      const rec = (await client.expect(5)) as PubackPacket;
      assert.equal(rec.packetId, id2);
      assert.equal(rec.reasonCode, ReasonCode.TopicNameInvalid);
      client.publish(over, 'q0', { qos: 0 });
      client.publish(DEEP, 'q0 deep', { qos: 0 });
      client.publish(atLimit, 'fine', { qos: 1 });
      assert.equal(((await client.expect(4)) as PubackPacket).reasonCode, 0);
      const m = await watcher.expect(3);
      assert.equal(m.topic, atLimit, 'only the topic at the limit is routed');
      assert.deepEqual(await watcher.quiet(200), []);
      assert.equal(tb.broker.stats.topicLevelsRefused - before, 4);
      await roundTrip(bystander, 'bystander/p5');
    } finally {
      client.destroy();
    }
  });

  it('3.1.1 PUBLISH deeper than the limit: positive PUBACK as 3.1.1 allows [MQTT-3.3.5-2], not routed, counted', T, async () => {
    const { client } = await RawClient.connect(tb.port, 4, { clientId: 'deep-pub4' });
    try {
      const before = tb.broker.stats.topicLevelsRefused;
      const id = client.publish(over, 'q1', { qos: 1 });
      const ack = (await client.expect(4)) as PubackPacket;
      assert.equal(ack.packetId, id);
      client.publish(DEEP, 'q0', { qos: 0 });
      assert.deepEqual(await watcher.quiet(200), []);
      assert.equal(tb.broker.stats.topicLevelsRefused - before, 2);
      assert.equal(client.isClosed, false, 'the connection stays open');
    } finally {
      client.destroy();
    }
  });

  it('SUBSCRIBE deeper than the limit: SUBACK 0x8F in v5 and 0x80 in 3.1.1; the other filters of the packet are granted', T, async () => {
    const before = tb.broker.stats.topicLevelsRefused;
    const v5 = (await RawClient.connect(tb.port, 5, { clientId: 'deep-sub5' })).client;
    const v4 = (await RawClient.connect(tb.port, 4, { clientId: 'deep-sub4' })).client;
    try {
      const s5 = await v5.subscribe([{ filter: over, qos: 1 }, { filter: DEEP, qos: 1 }, { filter: `$share/g/${over}`, qos: 1 }, { filter: atLimit, qos: 1 }]);
      assert.deepEqual(s5.reasonCodes, [ReasonCode.TopicFilterInvalid, ReasonCode.TopicFilterInvalid, ReasonCode.TopicFilterInvalid, 1]);
      const s4 = await v4.subscribe([{ filter: DEEP_PLUS, qos: 1 }, { filter: 'ok/+', qos: 1 }]);
      assert.deepEqual(s4.reasonCodes, [0x80, 1]);
      assert.equal(tb.broker.stats.topicLevelsRefused - before, 4);
      await roundTrip(bystander, 'bystander/s');
    } finally {
      v5.destroy();
      v4.destroy();
    }
  });

  it('a will topic deeper than the limit: CONNACK 0x90 in v5, return code 5 in 3.1.1, and the connection is closed', T, async () => {
    const will = { topic: over, payload: Buffer.from('w'), qos: 0 as const, retain: false };
    const r5 = await RawClient.connect(tb.port, 5, { clientId: 'deep-will5', will }, true);
    assert.equal(r5.connack.reasonCode, ReasonCode.TopicNameInvalid);
    await r5.client.closed();
    const r4 = await RawClient.connect(tb.port, 4, { clientId: 'deep-will4', will: { ...will, topic: DEEP } }, true);
    assert.equal(r4.connack.reasonCode, 5);
    await r4.client.closed();
    await roundTrip(bystander, 'bystander/w');
  });

  it('broker.publish and broker.subscribe deeper than the limit: PetrelError PETREL_ERR_TOPIC, with a short message', async () => {
    await assert.rejects(tb.broker.publish(over, 'x'), (err: unknown) => err instanceof PetrelError && err.code === 'PETREL_ERR_TOPIC');
    assert.throws(
      () => tb.broker.subscribe(['ok/#', DEEP]),
      (err: unknown) => err instanceof PetrelError && err.code === 'PETREL_ERR_TOPIC' && err.message.length < 400,
    );
    await tb.broker.publish(atLimit, 'fine');
    assert.equal((await watcher.expect(3)).topic, atLimit);
  });
});
