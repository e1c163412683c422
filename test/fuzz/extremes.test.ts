// Structural fuzzing: valid packets at the extremes of what MQTT allows, not
// random bytes. Deep and wide topics and filters, SUBSCRIBEs with thousands of
// filters, packets with thousands of user properties, 65,535-byte client ids,
// topics and user properties, the largest subscription identifier, long
// invalid filters. For every case the broker answers exactly as the spec and
// the limits say (or closes just that connection with the right reason code),
// everything it sends decodes, and a bystander MQTT.js client keeps its QoS 1
// round trips. Two brokers: default limits (deep topics refused), and
// maxTopicLevels 65,536 (deep topics walked).
//
// Seeded: PETREL_FUZZ_SEED=<n> replays a run (the seed is printed);
// PETREL_FUZZ_EXTREMES=<n> sets the number of cases per broker (default 60).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Packet, PublishPacket, QoS, SubscriptionRequest, UserProperty } from '../../src/protocol/packets.js';
import { ReasonCode } from '../../src/protocol/reason-codes.js';
import { DEFAULT_LIMITS, type Limits } from '../../src/index.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { connectMqtt, endAll, versionOptions, type Connected } from '../helpers/mqttjs.js';
import { describe as describePacket, RawClient } from '../helpers/raw-client.js';
import { prng } from '../helpers/random.js';
import { withTimeout } from '../helpers/wait.js';

const CASES = Number(process.env.PETREL_FUZZ_EXTREMES ?? 60);
const SEED = process.env.PETREL_FUZZ_SEED !== undefined ? Number(process.env.PETREL_FUZZ_SEED) >>> 0 : (Date.now() ^ (process.pid << 16)) >>> 0;
const rnd = prng(SEED);
const int = (n: number): number => Math.floor(rnd() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
const WAIT = 5000;
const MAX_SUB_ID = 268_435_455;

/** A level name: empty, short, or a few characters from a mixed alphabet (no wildcards, no '/', no U+0000). */
function levelName(): string {
  const r = rnd();
  if (r < 0.2) return '';
  const alphabet = 'abcxyz019-_ .é€😀\u0001';
  let s = '';
  const n = 1 + int(r < 0.9 ? 4 : 40);
  for (let i = 0; i < n; i++) s += pick([...alphabet]);
  return s;
}

/** A topic name of `levels` levels, within 65,535 bytes. */
function topicOf(levels: number, prefix: string): string {
  const parts = [prefix];
  let bytes = Buffer.byteLength(prefix);
  for (let i = 1; i < levels; i++) {
    const name = bytes + levels - i < 60_000 ? levelName() : '';
    bytes += 1 + Buffer.byteLength(name);
    parts.push(name);
  }
  return parts.join('/');
}

/** A level count around the limit, or anywhere up to 65,000 (a topic of 65,535 bytes has at most 65,536 levels). */
function levelCount(limit: number): number {
  return Math.min(65_000, pick([1, 2, limit - 1, limit, limit + 1, limit + 2, 1 + int(Math.min(limit, 65_000)), 1 + int(65_000), 65_000]));
}

function utf8String(bytes: number): string {
  // ASCII and 3-byte characters, exactly `bytes` bytes.
  let s = '';
  let n = 0;
  while (n + 3 <= bytes && rnd() < 0.5) {
    s += '€';
    n += 3;
  }
  return s + 'q'.repeat(bytes - n);
}

interface Ctx {
  tb: TestBroker;
  limits: Limits;
  id: string;
}

type Case = (c: Ctx) => Promise<string>;

function assertClean(client: RawClient, what: string): void {
  assert.deepEqual(client.decodeErrors.map((e) => e.message), [], `${what}: everything the broker sent decodes`);
}

async function connect(c: Ctx, version: 4 | 5, extra: Parameters<typeof RawClient.connect>[2] = {}): Promise<RawClient> {
  const { client } = await RawClient.connect(c.tb.port, version, { clientId: c.id, ...extra });
  return client;
}

/** The connection is still open and answers PINGREQ. */
async function alive(client: RawClient, what: string): Promise<void> {
  client.sendPacket({ type: 12 });
  await client.expect(13, WAIT).catch((err: unknown) => assert.fail(`${what}: no PINGRESP (${String(err)})`));
}

function sub(filter: string, qos: QoS = 1, extra: Partial<SubscriptionRequest> = {}): SubscriptionRequest {
  return { filter, qos, noLocal: false, retainAsPublished: false, retainHandling: 0, ...extra };
}

const CASES_LIST: [string, Case][] = [
  ['deep PUBLISH', async (c) => {
    const version = pick([4, 5] as const);
    const qos = pick([0, 1, 2] as const);
    const levels = levelCount(c.limits.maxTopicLevels);
    const topic = topicOf(levels, `x${c.id}`);
    const client = await connect(c, version);
    const what = `v${version} QoS ${qos} PUBLISH of ${levels} levels`;
    try {
      await client.subscribe([sub(`x${c.id}/#`, 2)]);
      const refused = levels > c.limits.maxTopicLevels;
      const id = client.publish(topic, 'p', { qos });
      const got: Packet[] = [];
      if (qos > 0) got.push(await client.next(WAIT));
      if (!refused) got.push(await client.next(WAIT));
      if (qos > 0 && !refused && got[0]!.type === 3) got.reverse();
      if (qos > 0) {
        const ack = got[0]!;
        assert.equal(ack.type, qos === 1 ? 4 : 5, `${what}: ack type`);
        assert.equal((ack as { packetId: number }).packetId, id);
        const expected = refused && version === 5 ? ReasonCode.TopicNameInvalid : 0;
        assert.equal((ack as { reasonCode: number }).reasonCode, expected, `${what}: ack reason code`);
        if (qos === 2 && expected === 0) {
          client.sendPacket({ type: 6, packetId: id, reasonCode: 0 });
          assert.equal((await client.expect(7, WAIT)).type, 7);
        }
      }
      if (!refused) {
        const m = got[got.length - 1] as PublishPacket;
        assert.equal(m.type, 3, `${what}: delivered`);
        assert.equal(m.topic, topic, `${what}: delivered on its topic`);
        if (m.qos === 1) client.puback(m.packetId);
        if (m.qos === 2) {
          client.sendPacket({ type: 5, packetId: m.packetId, reasonCode: 0 });
          await client.expect(6, WAIT);
          client.sendPacket({ type: 7, packetId: m.packetId, reasonCode: 0 });
        }
      }
      await alive(client, what);
      assertClean(client, what);
      return what;
    } finally {
      client.destroy();
    }
  }],
  ['deep or wide SUBSCRIBE', async (c) => {
    const version = pick([4, 5] as const);
    const n = pick([1, 2, 10, 100, 1000, 2000 + int(3000)]);
    // Many short filters, and at most two deep ones (a packet stays well under maxPacketSize).
    const deepAt = new Set([int(n), int(n)].filter(() => rnd() < 0.7));
    const filters: string[] = [];
    const expected: number[] = [];
    const seen = new Set<string>();
    for (let i = 0; i < n; i++) {
      const levels = deepAt.has(i) ? levelCount(c.limits.maxTopicLevels) : 1 + int(8);
      const parts = Array.from({ length: levels }, (_, k) => (k === 0 ? `f${c.id}-${i}` : rnd() < 0.3 ? '+' : deepAt.has(i) ? '' : levelName()));
      if (rnd() < 0.3) parts.push('#');
      let f = parts.join('/');
      if (Buffer.byteLength(f) > 65_000) f = `f${c.id}-${i}/` + '+/'.repeat(30_000) + '+';
      if (rnd() < 0.05) f = `$share/g${int(3)}/${f}`;
      filters.push(f);
      const deep = f.startsWith('$share/') ? f.split('/').length - 2 : f.split('/').length;
      const code = deep > c.limits.maxTopicLevels ? (version === 5 ? ReasonCode.TopicFilterInvalid : 0x80) : 1;
      expected.push(code);
      if (code === 1) seen.add(f);
    }
    const client = await connect(c, version);
    const what = `v${version} SUBSCRIBE of ${n} filters (up to ${Math.max(...filters.map((f) => f.split('/').length))} levels)`;
    try {
      const suback = await client.subscribe(filters.map((f) => sub(f)), undefined, WAIT);
      assert.deepEqual(suback.reasonCodes, expected, `${what}: SUBACK codes`);
      if (version === 5) {
        const unsuback = await client.unsubscribe(filters, WAIT);
        const once = new Set<string>();
        assert.deepEqual(
          unsuback.reasonCodes,
          filters.map((f) => (seen.has(f) && !once.has(f) && once.add(f) ? 0 : ReasonCode.NoSubscriptionExisted)),
          `${what}: UNSUBACK codes`,
        );
      } else {
        await client.unsubscribe(filters, WAIT);
      }
      await alive(client, what);
      assertClean(client, what);
      return what;
    } finally {
      client.destroy();
    }
  }],
  ['thousands of user properties', async (c) => {
    const n = pick([1, 100, 1000, 3000 + int(3000)]);
    const props: UserProperty[] = Array.from({ length: n }, (_, i) => [`k${i % 17}`, levelName()]);
    const client = await connect(c, 5, { properties: { userProperties: props.slice(0, Math.min(n, 2000)) } });
    const what = `v5 PUBLISH with ${n} user properties (and a CONNECT with ${Math.min(n, 2000)})`;
    try {
      const topic = `u${c.id}`;
      await client.subscribe([sub(topic, 1)]);
      const id = client.publish(topic, 'u', { qos: 1, properties: { userProperties: props } });
      const got = [await client.next(WAIT), await client.next(WAIT)];
      const m = got.find((p) => p.type === 3) as PublishPacket | undefined;
      const ack = got.find((p) => p.type === 4);
      assert.ok(ack && ack.type === 4 && ack.packetId === id && ack.reasonCode === 0, `${what}: PUBACK`);
      assert.ok(m, `${what}: delivered`);
      // User properties are forwarded unchanged, in order [MQTT-3.3.2-17], [MQTT-3.3.2-18].
      assert.deepEqual(m.properties?.userProperties, props, `${what}: user properties forwarded in order`);
      client.puback(m.packetId);
      await alive(client, what);
      assertClean(client, what);
      return what;
    } finally {
      client.destroy();
    }
  }],
  ['maximum-length strings', async (c) => {
    const version = pick([4, 5] as const);
    const idBytes = pick([65_535, 65_534, 1 + int(65_535)]);
    const clientId = (c.id + utf8String(idBytes)).slice(0, 65_535);
    const fits = Buffer.byteLength(clientId) <= 65_535;
    const cid = fits ? clientId : c.id;
    const what = `v${version} CONNECT with a ${Buffer.byteLength(cid)}-byte client id, 65,535-byte topic${version === 5 ? ' and user property' : ''}`;
    const client = await connect(c, version, { clientId: cid });
    try {
      const topic = `m${c.id}/` + utf8String(65_535 - Buffer.byteLength(`m${c.id}/`));
      assert.equal(Buffer.byteLength(topic), 65_535);
      await client.subscribe([sub(topic, 1)]);
      const props = version === 5 ? { userProperties: [[utf8String(65_535), utf8String(65_535)]] as UserProperty[] } : undefined;
      client.publish(topic, Buffer.alloc(int(65_536), 7), { qos: 1, ...(props ? { properties: props } : {}) });
      const got = [await client.next(WAIT), await client.next(WAIT)];
      const m = got.find((p) => p.type === 3) as PublishPacket | undefined;
      assert.ok(got.some((p) => p.type === 4), `${what}: PUBACK`);
      assert.ok(m && m.topic === topic, `${what}: delivered on the 65,535-byte topic`);
      if (props) assert.deepEqual(m.properties?.userProperties, props.userProperties, `${what}: 65,535-byte user property forwarded`);
      client.puback(m.packetId);
      await alive(client, what);
      assertClean(client, what);
      return what;
    } finally {
      client.destroy();
    }
  }],
  ['largest subscription identifier', async (c) => {
    const subId = pick([MAX_SUB_ID, MAX_SUB_ID - 1, 1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152]);
    const client = await connect(c, 5);
    const what = `SUBSCRIBE with Subscription Identifier ${subId}`;
    try {
      const topic = `s${c.id}/a`;
      const suback = await client.subscribe([sub(`s${c.id}/+`, 0)], { subscriptionIdentifiers: [subId] });
      assert.deepEqual(suback.reasonCodes, [0]);
      client.publish(topic, 's', { qos: 0 });
      const m = await client.expect(3, WAIT);
      // The identifier comes back with the message [MQTT-3.3.4-3].
      assert.deepEqual(m.properties?.subscriptionIdentifiers, [subId], `${what}: identifier delivered`);
      await alive(client, what);
      assertClean(client, what);
      return what;
    } finally {
      client.destroy();
    }
  }],
  ['long invalid filter', async (c) => {
    const version = pick([4, 5] as const);
    const ch = pick(['\u0001', 'é', '"', '\\']);
    const len = pick([100, 1000, Math.floor((64_000 + int(1500)) / Buffer.byteLength(ch))]);
    const filter = ch.repeat(len) + pick(['#/a', 'a+', '#x']);
    const what = `v${version} SUBSCRIBE with an invalid ${Buffer.byteLength(filter)}-byte filter`;
    const client = await connect(c, version);
    try {
      client.sendPacket({ type: 8, packetId: client.nextPacketId(), subscriptions: [sub(filter)] });
      await client.closed(WAIT);
      assertClean(client, what);
      const after = client.received.slice(1);
      if (version === 5) {
        // A malformed filter is a Malformed Packet [MQTT-4.7.1-1], [MQTT-4.7.1-2]: DISCONNECT 0x81 with a short reason.
        assert.equal(after.length, 1, `${what}: one DISCONNECT`);
        const d = after[0]!;
        assert.ok(d.type === 14 && d.reasonCode === ReasonCode.MalformedPacket, `${what}: DISCONNECT 0x81, got ${describePacket(d)}`);
        assert.ok(Buffer.byteLength(d.properties?.reasonString ?? '') < 1000, `${what}: short reason string`);
      } else {
        assert.deepEqual(after, [], `${what}: 3.1.1 closes without a packet`);
      }
      return what;
    } finally {
      client.destroy();
    }
  }],
  ['retained on a deep topic, then SUBSCRIBE "#"-style', async (c) => {
    const levels = levelCount(c.limits.maxTopicLevels);
    const topic = topicOf(levels, `r${c.id}`);
    const refused = levels > c.limits.maxTopicLevels;
    const what = `retained message on ${levels} levels, then SUBSCRIBE r…/#`;
    const pub = await connect(c, 5);
    try {
      pub.publish(topic, 'kept', { qos: 1, retain: true });
      const ack = (await pub.expect(4, WAIT)) as { reasonCode: number };
      assert.equal(ack.reasonCode, refused ? ReasonCode.TopicNameInvalid : ReasonCode.NoMatchingSubscribers, `${what}: PUBACK`);
      pub.sendPacket({ type: 8, packetId: pub.nextPacketId(), subscriptions: [sub(`r${c.id}/#`, 0), sub('+/+/#', 0, { retainHandling: 2 })] });
      const suback = await pub.expect(9, WAIT);
      assert.deepEqual(suback.reasonCodes, [0, 0]);
      if (!refused) {
        const m = await pub.expect(3, WAIT);
        assert.equal(m.topic, topic, `${what}: retained message delivered`);
        // Clear it again (the empty message is routed to r…/# too).
        pub.publish(topic, '', { qos: 0, retain: true });
        const cleared = await pub.expect(3, WAIT);
        assert.equal(cleared.payload.length, 0);
      }
      await alive(pub, what);
      assertClean(pub, what);
      return what;
    } finally {
      pub.destroy();
    }
  }],
];

function suite(name: string, limits: Partial<Limits>): void {
  describe(`structural fuzz (${name}): ${CASES} extreme cases (seed ${SEED})`, { timeout: 240_000 }, () => {
    let tb: TestBroker;
    let bystander: Connected;
    before(async () => {
      tb = await startBroker({ limits: { maxPacketSize: 1024 * 1024, ...limits } });
      bystander = await connectMqtt(tb.url, { ...versionOptions(5), clientId: `bystander-extremes-${SEED}` });
      await bystander.client.subscribeAsync('bystander/#', { qos: 1 });
    });
    after(async () => {
      await endAll(bystander?.client);
      await tb?.close();
    });

    it('every case answered as the spec and limits say, everything decodes, and a bystander keeps its round trips', { timeout: 230_000 }, async (t) => {
      t.diagnostic(`seed ${SEED} (replay with PETREL_FUZZ_SEED=${SEED})`);
      console.log(`# structural fuzz seed ${SEED} (replay with PETREL_FUZZ_SEED=${SEED})`);
      const ctx: Ctx = { tb, limits: { ...DEFAULT_LIMITS, maxPacketSize: 1024 * 1024, ...limits }, id: '' };
      const counts = new Map<string, number>();
      const times = new Map<string, number>();
      for (let i = 0; i < CASES; i++) {
        const [kind, run] = pick(CASES_LIST);
        ctx.id = `e${i}`;
        let what = kind;
        const t0 = Date.now();
        try {
          what = await withTimeout(run(ctx), 30_000, `case ${i} (${kind})`);
        } catch (err) {
          throw new Error(`case ${i} (${kind}) failed with seed ${SEED}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
        }
        counts.set(kind, (counts.get(kind) ?? 0) + 1);
        times.set(kind, (times.get(kind) ?? 0) + Date.now() - t0);
        const topic = `bystander/${i}`;
        await withTimeout(bystander.client.publishAsync(topic, `after ${what}`, { qos: 1 }), WAIT, `the bystander's PUBACK after case ${i} (${what})`);
        await bystander.messages.count(topic, 1, WAIT);
      }
      const line = `cases: ${[...counts].map(([k, v]) => `${k}=${v} (${times.get(k)} ms)`).join(', ')}; topicLevelsRefused ${tb.broker.stats.topicLevelsRefused}`;
      t.diagnostic(line);
      console.log(`# ${line}`);
      assert.equal(tb.broker.connectedClients, 1, 'only the bystander is left connected');
    });
  });
}

suite('default limits', {});
suite('maxTopicLevels 65,536', { maxTopicLevels: 65_536 });
