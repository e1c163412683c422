// The embedding API over real connections: hooks (authenticate, authorize*,
// notifications), option validation, the in-process publish/subscribe API,
// and enhanced authentication (MQTT 5.0 section 4.12) with a challenge-response
// method written here.

import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  createBroker,
  PetrelError,
  type AuthMethod,
  type AuthenticateRequest,
  type BrokerMessage,
  type ClientInfo,
  type DisconnectInfo,
  type Hooks,
  type ProtocolVersion,
} from '../../src/index.js';
import type { AckPacket, PublishPacket } from '../../src/protocol/packets.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { connectMqtt, endAll, uniqueId, versionOptions, type Connected } from '../helpers/mqttjs.js';
import { RawClient, type RawConnectOptions } from '../helpers/raw-client.js';
import { sleep, waitFor, withTimeout } from '../helpers/wait.js';

const T = { timeout: 20_000 };

class Tracker {
  private readonly clients: Connected['client'][] = [];
  private readonly raws: RawClient[] = [];
  private readonly brokers: TestBroker[] = [];
  mqtt(c: Connected): Connected {
    this.clients.push(c.client);
    return c;
  }
  raw(r: RawClient): RawClient {
    this.raws.push(r);
    return r;
  }
  broker(b: TestBroker): TestBroker {
    this.brokers.push(b);
    return b;
  }
  async closeAll(): Promise<void> {
    for (const r of this.raws.splice(0)) r.destroy();
    await endAll(...this.clients.splice(0));
    await Promise.all(this.brokers.splice(0).map((b) => withTimeout(b.close(), 5000, 'broker.close()')));
  }
}

const track = new Tracker();
afterEach(() => track.closeAll());

async function rawConnect(port: number, version: ProtocolVersion, opts: RawConnectOptions = {}) {
  const r = await RawClient.connect(port, version, opts, true);
  track.raw(r.client);
  return r;
}

function expectOptionError(fn: () => Promise<unknown>, code: string, key: string): Promise<void> {
  return assert.rejects(fn, (err: unknown) => {
    assert.ok(err instanceof PetrelError, `a PetrelError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.ok(err.message.includes(key), `message names ${key}: ${err.message}`);
    return true;
  });
}

// ---------------------------------------------------------------------------

describe('authenticate hook', T, () => {
  let tb: TestBroker;
  const seen: AuthenticateRequest[] = [];
  before(async () => {
    tb = await startBroker({
      hooks: {
        authenticate(req) {
          seen.push(req);
          switch (req.username) {
            case 'sync-ok': return true;
            case 'sync-no': return false;
            case 'async-ok': return sleep(20).then(() => true);
            case 'async-no': return sleep(20).then(() => false);
            case 'code-87': return { reasonCode: 0x87, reasonString: 'go away' };
            case 'code-8a': return Promise.resolve({ reasonCode: 0x8a });
            case 'code-89': return { reasonCode: 0x89 };
            case 'throws': throw new Error('boom');
            case 'rejects': return Promise.reject(new Error('boom'));
            default: return req.password?.toString() === 'letmein';
          }
        },
      },
    });
  });
  after(() => tb.close());

  // [v5 reason code, 3.1/3.1.1 return code] per user name.
  const cases: [string, number, number][] = [
    ['sync-ok', 0x00, 0],
    ['async-ok', 0x00, 0],
    ['sync-no', 0x86, 4],
    ['async-no', 0x86, 4],
    ['code-87', 0x87, 5],
    ['code-8a', 0x8a, 5],
    ['code-89', 0x89, 3],
    ['throws', 0x80, 3],
    ['rejects', 0x80, 3],
  ];
  for (const version of [3, 4, 5] as const) {
    for (const [user, v5code, v3code] of cases) {
      const expected = version === 5 ? v5code : v3code;
      it(`v${version}: user ${user} → CONNACK 0x${expected.toString(16).padStart(2, '0')}${expected !== 0 ? ', Session Present 0, then close' : ''} [MQTT-3.1.4-2] [MQTT-3.2.2-6] [MQTT-3.2.2-7]`, T, async () => {
        const { client, connack } = await rawConnect(tb.port, version, { username: user, password: Buffer.from('pw'), clean: false, clientId: uniqueId(`auth${version}`) });
        assert.equal(connack.reasonCode, expected);
        if (expected === 0) {
          client.sendPacket({ type: 12 });
          await client.expect(13);
        } else {
          assert.equal(connack.sessionPresent, false);
          await client.closed();
        }
      });
    }
  }

  it('the hook sees client id, user name, password, protocol version, remote address and CONNECT user properties', T, async () => {
    const id = uniqueId('who');
    const { connack } = await rawConnect(tb.port, 5, {
      clientId: id,
      username: 'someone',
      password: Buffer.from('letmein'),
      properties: { userProperties: [['k', 'v1'], ['k', 'v2']] },
    });
    assert.equal(connack.reasonCode, 0);
    const req = seen.find((r) => r.clientId === id)!;
    assert.ok(req);
    assert.equal(req.username, 'someone');
    assert.deepEqual(req.password, Buffer.from('letmein'));
    assert.equal(req.protocolVersion, 5);
    assert.match(req.remoteAddress, /^127\.0\.0\.1:\d+$/);
    assert.deepEqual(req.userProperties, [['k', 'v1'], ['k', 'v2']]);
  });

  it('MQTT.js sees a refused connection as an error with the reason code', T, async () => {
    await assert.rejects(connectMqtt(tb.url, { ...versionOptions(5), username: 'sync-no', password: 'x' }), (err: Error & { code?: number }) => {
      assert.equal(err.code, 0x86);
      return true;
    });
  });
});

// ---------------------------------------------------------------------------

describe('authorizePublish hook', T, () => {
  let tb: TestBroker;
  before(async () => {
    tb = await startBroker({
      hooks: {
        authorizePublish(_client, msg) {
          if (msg.topic.startsWith('deny/')) return false;
          if (msg.topic.startsWith('quota/')) return 0x97;
          if (msg.topic.startsWith('later/')) return sleep(10).then(() => msg.topic !== 'later/deny');
          return true;
        },
      },
    });
  });
  after(() => tb.close());

  it('v5: a denied QoS 1 PUBLISH gets PUBACK 0x87 and is not delivered; a hook code >= 0x80 is used as is [MQTT-3.4.2-1]', T, async () => {
    const sub = track.mqtt(await connectMqtt(tb.url, versionOptions(5)));
    await sub.client.subscribeAsync(['deny/#', 'quota/#', 'later/#', 'ok/#'], { qos: 1 });
    const { client } = await rawConnect(tb.port, 5);
    const denied = tb.broker.stats.publishDenied;
    const ack = async (topic: string): Promise<number> => {
      const id = client.publish(topic, 'x', { qos: 1 });
      const a = (await client.expect(4)) as AckPacket;
      assert.equal(a.packetId, id);
      return a.reasonCode;
    };
    assert.equal(await ack('deny/x'), 0x87);
    assert.equal(await ack('quota/x'), 0x97);
    assert.equal(await ack('later/deny'), 0x87, 'asynchronous denial');
    assert.equal(await ack('later/ok'), 0x00, 'asynchronous approval');
    assert.equal(await ack('ok/x'), 0x00);
    await sub.messages.count('ok/x', 1);
    assert.deepEqual(sub.messages.messages.map((m) => m.topic), ['later/ok', 'ok/x'], 'denied messages are not delivered');
    assert.equal(tb.broker.stats.publishDenied - denied, 3);
  });

  it('v5: a denied QoS 2 PUBLISH gets PUBREC 0x87 and the exchange ends [MQTT-4.3.3-9]', T, async () => {
    const { client } = await rawConnect(tb.port, 5);
    client.publish('deny/q2', 'x', { qos: 2, packetId: 9 });
    const rec = (await client.expect(5)) as AckPacket;
    assert.equal(rec.reasonCode, 0x87);
    // The packet id is free again: the same id is a new message.
    client.publish('ok/q2', 'y', { qos: 2, packetId: 9 });
    const rec2 = (await client.expect(5)) as AckPacket;
    assert.ok(rec2.reasonCode < 0x80);
  });

  for (const version of [3, 4] as const) {
    it(`v${version}: a denied PUBLISH is acknowledged normally (PUBACK / PUBREC→PUBCOMP) but not delivered [MQTT-3.3.5-2 (3.1.1)]`, T, async () => {
      const sub = track.mqtt(await connectMqtt(tb.url, versionOptions(version)));
      await sub.client.subscribeAsync(['deny/#', 'ok/#'], { qos: 2 });
      const pub = track.mqtt(await connectMqtt(tb.url, versionOptions(version)));
      await pub.client.publishAsync('deny/a', 'q1', { qos: 1 });
      await pub.client.publishAsync('deny/b', 'q2', { qos: 2 });
      await pub.client.publishAsync('ok/x', 'marker', { qos: 1 });
      await sub.messages.count('ok/x', 1);
      assert.deepEqual(sub.messages.messages.map((m) => m.topic), ['ok/x']);
    });
  }
});

// ---------------------------------------------------------------------------

describe('authorizeSubscribe hook', T, () => {
  let tb: TestBroker;
  const asked: { filter: string; qos: number }[] = [];
  before(async () => {
    tb = await startBroker({
      hooks: {
        authorizeSubscribe(_client, sub) {
          asked.push({ filter: sub.filter, qos: sub.qos });
          if (sub.filter.startsWith('no/')) return false;
          if (sub.filter.startsWith('code80/')) return 0x80;
          if (sub.filter.startsWith('code97/')) return 0x97;
          if (sub.filter.startsWith('q0/')) return 0;
          if (sub.filter.startsWith('q1/')) return 1;
          if (sub.filter.startsWith('async-no/')) return sleep(10).then(() => false);
          if (sub.filter.startsWith('async-q0/')) return Promise.resolve(0);
          return true;
        },
      },
    });
  });
  after(() => tb.close());

  it('v5: one reason code per filter, in order: false → 0x87, 0x80 → 0x80, 0x97 → 0x97, a QoS number caps the grant, asynchronous results too [MQTT-3.8.4-6] [MQTT-3.9.3-1]', T, async () => {
    const { client } = await rawConnect(tb.port, 5);
    const suback = await client.subscribe([
      { filter: 'no/x', qos: 1 },
      { filter: 'code80/x', qos: 1 },
      { filter: 'code97/x', qos: 1 },
      { filter: 'q0/x', qos: 2 },
      { filter: 'q1/x', qos: 2 },
      { filter: 'q1/y', qos: 0 },
      { filter: 'async-no/x', qos: 1 },
      { filter: 'async-q0/x', qos: 2 },
      { filter: 'yes/x', qos: 2 },
    ]);
    assert.deepEqual(suback.reasonCodes, [0x87, 0x80, 0x97, 0, 1, 0, 0x87, 0, 2]);
  });

  it('3.1/3.1.1: every refusal is 0x80 [MQTT-3.9.3-2 (3.1.1)]', T, async () => {
    for (const version of [3, 4] as const) {
      const { client } = await rawConnect(tb.port, version);
      const suback = await client.subscribe([
        { filter: 'no/x', qos: 1 },
        { filter: 'code97/x', qos: 1 },
        { filter: 'q0/x', qos: 2 },
        { filter: 'yes/x', qos: 1 },
      ]);
      assert.deepEqual(suback.reasonCodes, [0x80, 0x80, 0, 1], `version ${version}`);
    }
  });

  it('a subscription downgraded to QoS 0 receives QoS 2 messages at QoS 0; a refused one receives nothing [MQTT-3.8.4-8]', T, async () => {
    const sub = track.mqtt(await connectMqtt(tb.url, versionOptions(5)));
    const granted = await sub.client.subscribeAsync(['q0/d', 'yes/d'], { qos: 2 });
    assert.deepEqual(granted.map((g) => g.qos), [0, 2]);
    await assert.rejects(sub.client.subscribeAsync('no/d', { qos: 2 }), /Not authorized/);
    const pub = track.mqtt(await connectMqtt(tb.url, versionOptions(5)));
    await pub.client.publishAsync('q0/d', 'down', { qos: 2 });
    await pub.client.publishAsync('no/d', 'refused', { qos: 2 });
    await pub.client.publishAsync('yes/d', 'marker', { qos: 2 });
    await sub.messages.count('yes/d', 1);
    assert.deepEqual(sub.messages.messages.map((m) => [m.topic, m.packet.qos]), [['q0/d', 0], ['yes/d', 2]]);
  });

  it('shared subscription filters reach the hook as written', T, async () => {
    const { client } = await rawConnect(tb.port, 5);
    await client.subscribe([{ filter: '$share/grp/yes/shared', qos: 1 }]);
    assert.ok(asked.some((a) => a.filter === '$share/grp/yes/shared' && a.qos === 1));
  });
});

// ---------------------------------------------------------------------------

describe('notification hooks: onConnect, onPublish, onDisconnect', T, () => {
  let tb: TestBroker;
  const connects: ClientInfo[] = [];
  const publishes: { client: ClientInfo | null; message: BrokerMessage }[] = [];
  const disconnects: { client: ClientInfo; info: DisconnectInfo }[] = [];
  before(async () => {
    tb = await startBroker({
      hooks: {
        onConnect: (c) => connects.push(c),
        onPublish: (client, message) => publishes.push({ client, message }),
        onDisconnect: (client, info) => disconnects.push({ client, info }),
      },
    });
  });
  after(() => tb.close());

  it('onConnect after CONNACK, onPublish for network and broker messages, onDisconnect with who ended the connection', T, async () => {
    const id = uniqueId('notify');
    const c = track.mqtt(await connectMqtt(tb.url, { ...versionOptions(5), clientId: id, username: 'ann' }));
    await waitFor(() => connects.some((x) => x.clientId === id), 2000, 'onConnect');
    const info = connects.find((x) => x.clientId === id)!;
    assert.equal(info.username, 'ann');
    assert.equal(info.protocolVersion, 5);
    assert.match(info.remoteAddress, /^127\.0\.0\.1:\d+$/);

    await c.client.publishAsync('notify/x', 'from-net', { qos: 1, properties: { contentType: 'text/plain' } });
    await tb.broker.publish('notify/y', 'from-broker', { qos: 1 });
    await waitFor(() => publishes.length >= 2, 2000, 'onPublish twice');
    const net = publishes.find((p) => p.message.topic === 'notify/x')!;
    assert.equal(net.client?.clientId, id);
    assert.equal(net.message.payload.toString(), 'from-net');
    assert.equal(net.message.qos, 1);
    assert.equal(net.message.properties?.contentType, 'text/plain');
    const own = publishes.find((p) => p.message.topic === 'notify/y')!;
    assert.equal(own.client, null, 'broker.publish() has no client');

    await c.client.endAsync();
    await waitFor(() => disconnects.some((d) => d.client.clientId === id), 2000, 'onDisconnect');
    const d = disconnects.find((x) => x.client.clientId === id)!;
    assert.equal(d.info.byClient, true);
    assert.equal(d.info.reasonCode, 0);

    const id2 = uniqueId('notify-drop');
    const c2 = track.mqtt(await connectMqtt(tb.url, { ...versionOptions(4), clientId: id2 }));
    c2.client.stream.destroy();
    await waitFor(() => disconnects.some((x) => x.client.clientId === id2), 2000, 'onDisconnect after a drop');
    const d2 = disconnects.find((x) => x.client.clientId === id2)!;
    assert.equal(d2.info.byClient, false);
    assert.notEqual(d2.info.reasonCode, 0);
  });

  it('a refused connection does not call onConnect or onDisconnect', T, async () => {
    const b = track.broker(
      await startBroker({
        hooks: { authenticate: () => false, onConnect: (c) => connects.push(c), onDisconnect: (client, info) => disconnects.push({ client, info }) },
      }),
    );
    const id = uniqueId('refused');
    const { client, connack } = await rawConnect(b.port, 5, { clientId: id });
    assert.equal(connack.reasonCode, 0x86);
    await client.closed();
    await sleep(50);
    assert.equal(connects.filter((c) => c.clientId === id).length, 0);
    assert.equal(disconnects.filter((d) => d.client.clientId === id).length, 0);
  });
});

// ---------------------------------------------------------------------------

describe('option validation at createBroker', T, () => {
  it('an unknown hook name is rejected with PETREL_ERR_UNKNOWN_HOOK naming it', T, async () => {
    await expectOptionError(
      () => createBroker({ store: { type: 'memory' }, logLevel: 'silent', hooks: { onPublsh: () => {} } as unknown as Hooks }),
      'PETREL_ERR_UNKNOWN_HOOK',
      'onPublsh',
    );
  });

  it('a hook that is not a function is rejected with PETREL_ERR_OPTION', T, async () => {
    await expectOptionError(
      () => createBroker({ store: { type: 'memory' }, logLevel: 'silent', hooks: { onPublish: 42 } as unknown as Hooks }),
      'PETREL_ERR_OPTION',
      'hooks.onPublish',
    );
  });

  const badLimits: [string, Record<string, unknown>][] = [
    ['limits.maxPacketSize', { maxPacketSize: 5 }],
    ['limits.receiveMaximum', { receiveMaximum: 0 }],
    ['limits.maxQoS', { maxQoS: 3 }],
    ['limits.connectTimeout', { connectTimeout: 1.5 }],
    ['limits.retainAvailable', { retainAvailable: 'yes' }],
    ['limits.maxKeepAlive', { maxKeepAlive: -1 }],
    ['limits.noSuchLimit', { noSuchLimit: 1 }],
  ];
  for (const [key, limits] of badLimits) {
    it(`bad limit ${JSON.stringify(limits)} is rejected with PETREL_ERR_OPTION naming ${key}`, T, async () => {
      await expectOptionError(() => createBroker({ store: { type: 'memory' }, logLevel: 'silent', limits: limits as never }), 'PETREL_ERR_OPTION', key);
      try {
        await createBroker({ store: { type: 'memory' }, logLevel: 'silent', limits: limits as never });
      } catch (err) {
        assert.equal((err as PetrelError).key, key);
      }
    });
  }

  it('an unknown option is rejected with PETREL_ERR_OPTION naming it', T, async () => {
    await expectOptionError(
      () => createBroker({ store: { type: 'memory' }, logLevel: 'silent', limit: {} } as never),
      'PETREL_ERR_OPTION',
      'limit',
    );
  });
});

// ---------------------------------------------------------------------------

describe('in-process API: broker.publish and broker.subscribe', T, () => {
  let tb: TestBroker;
  before(async () => {
    tb = await startBroker();
  });
  after(() => tb.close());

  /** Does anyone (network or in-process) subscribe to this topic? Answered by a v5 PUBACK (0x10 = no). */
  async function hasSubscribers(topic: string): Promise<boolean> {
    const { client } = await rawConnect(tb.port, 5);
    client.publish(topic, 'probe', { qos: 1 });
    const ack = (await client.expect(4)) as AckPacket;
    client.disconnect();
    return ack.reasonCode === 0;
  }

  it('for await receives matching network and broker.publish messages; break unsubscribes', T, async () => {
    const sub = tb.broker.subscribe(['sensors/+/temp', 'alerts/#']);
    assert.deepEqual(sub.filters, ['sensors/+/temp', 'alerts/#']);
    const pub = track.mqtt(await connectMqtt(tb.url, versionOptions(5)));
    await pub.client.publishAsync('sensors/k1/temp', '21.5', { qos: 1, properties: { userProperties: { unit: 'C' } } });
    await pub.client.publishAsync('sensors/k1/humidity', '40', { qos: 1 });
    await tb.broker.publish('alerts/fire', 'now', { qos: 1 });
    await tb.broker.publish('alerts', 'parent', { qos: 0 });
    const got: BrokerMessage[] = [];
    await withTimeout(
      (async () => {
        for await (const m of sub) {
          got.push(m);
          if (got.length === 3) break;
        }
      })(),
      3000,
      'three in-process messages',
    );
    assert.deepEqual(got.map((m) => [m.topic, m.payload.toString()]), [['sensors/k1/temp', '21.5'], ['alerts/fire', 'now'], ['alerts', 'parent']]);
    assert.equal(got[0]!.qos, 1);
    assert.deepEqual(got[0]!.properties?.userProperties, [['unit', 'C']]);
    assert.equal(await hasSubscribers('alerts/x'), false, 'break unsubscribed');
  });

  it('an AbortSignal ends the iteration and unsubscribes', T, async () => {
    const ac = new AbortController();
    const sub = tb.broker.subscribe('abort/#', { signal: ac.signal });
    assert.equal(await hasSubscribers('abort/x'), true);
    const loop = (async () => {
      let n = 0;
      for await (const _ of sub) n++;
      return n;
    })();
    await tb.broker.publish('abort/x', '1');
    await waitFor(() => sub.size === 0, 1000, 'the message to be read');
    ac.abort();
    assert.equal(await withTimeout(loop, 2000, 'the loop to end after abort'), 2, 'the probe and the message were read, then it ended');
    assert.equal(await hasSubscribers('abort/x'), false);
  });

  it('an already aborted signal gives an iteration that ends at once', T, async () => {
    const ac = new AbortController();
    ac.abort();
    const sub = tb.broker.subscribe('aborted/#', { signal: ac.signal });
    const r = await withTimeout(sub.next(), 1000, 'next()');
    assert.equal(r.done, true);
  });

  it('broker.close() ends a pending iteration', T, async () => {
    const b = await startBroker();
    try {
      const sub = b.broker.subscribe('closing/#');
      const pending = sub.next();
      await withTimeout(b.close(), 5000, 'broker.close()');
      const r = await withTimeout(pending, 1000, 'the pending next() to settle');
      assert.equal(r.done, true);
    } finally {
      await b.close();
    }
  });

  it('highWaterMark: a full buffer drops new messages and counts them (sub.dropped, stats.localDropped)', T, async () => {
    const sub = tb.broker.subscribe('hwm/#', { highWaterMark: 3 });
    const before = tb.broker.stats.localDropped;
    for (let i = 0; i < 10; i++) await tb.broker.publish('hwm/x', `m${i}`, { qos: 1 });
    assert.equal(sub.size, 3);
    assert.equal(sub.dropped, 7);
    assert.equal(tb.broker.stats.localDropped - before, 7);
    const got: string[] = [];
    for (let i = 0; i < 3; i++) got.push((await withTimeout(sub.next(), 1000, 'a buffered message')).value!.payload.toString());
    assert.deepEqual(got, ['m0', 'm1', 'm2'], 'the oldest are kept');
    sub.close();
    assert.equal((await sub.next()).done, true);
  });

  it('qos option caps the QoS of in-process deliveries', T, async () => {
    const sub = tb.broker.subscribe('capq/#', { qos: 0 });
    await tb.broker.publish('capq/x', 'x', { qos: 2 });
    const r = await withTimeout(sub.next(), 1000, 'a message');
    assert.equal(r.value!.qos, 0);
    sub.close();
  });

  it('$share/ group mixing an in-process member and a network member: each message to exactly one of them', T, async () => {
    const local = tb.broker.subscribe('$share/mix/jobs/#');
    const net = track.mqtt(await connectMqtt(tb.url, versionOptions(5)));
    await net.client.subscribeAsync('$share/mix/jobs/#', { qos: 1 });
    const localGot: string[] = [];
    const loop = (async () => {
      for await (const m of local) localGot.push(m.payload.toString());
    })();
    const n = 20;
    for (let i = 0; i < n; i++) await tb.broker.publish(`jobs/${i}`, `j${i}`, { qos: 1 });
    await waitFor(() => localGot.length + net.messages.messages.length >= n, 3000, 'all jobs handed out');
    await sleep(100); // nothing more may come: a duplicate would show up here
    local.close();
    await withTimeout(loop, 1000, 'the in-process loop to end');
    const all = [...localGot, ...net.messages.payloads()].sort();
    assert.deepEqual(all, Array.from({ length: n }, (_, i) => `j${i}`).sort(), 'each message exactly once');
    assert.ok(localGot.length > 0 && net.messages.messages.length > 0, `both members got work: ${localGot.length}/${net.messages.messages.length}`);
  });

  it('broker.publish QoS 1 with retain reaches network subscribers and is kept as the retained message', T, async () => {
    const live = track.mqtt(await connectMqtt(tb.url, versionOptions(4)));
    await live.client.subscribeAsync('api/retained', { qos: 1 });
    await tb.broker.publish('api/retained', Buffer.from('kept'), { qos: 1, retain: true });
    const [m] = await live.messages.count('api/retained', 1);
    assert.equal(m!.packet.qos, 1);
    assert.equal(m!.packet.retain, false, 'live delivery to an existing subscription: RETAIN 0');
    const later = track.mqtt(await connectMqtt(tb.url, versionOptions(5)));
    await later.client.subscribeAsync('api/retained', { qos: 1 });
    const [r] = await later.messages.count('api/retained', 1);
    assert.equal(r!.payload.toString(), 'kept');
    assert.equal(r!.packet.retain, true);
    assert.equal(r!.packet.qos, 1);
    await tb.broker.publish('api/retained', '', { retain: true });
  });

  it('broker.publish forwards v5 properties to network subscribers', T, async () => {
    const sub = track.mqtt(await connectMqtt(tb.url, versionOptions(5)));
    await sub.client.subscribeAsync('api/props', { qos: 1 });
    await tb.broker.publish('api/props', '{}', {
      qos: 1,
      properties: { contentType: 'application/json', userProperties: [['a', '1'], ['b', '2']], responseTopic: 'api/reply', correlationData: Buffer.from('c1') },
    });
    const [m] = await sub.messages.count('api/props', 1);
    const p = m!.packet.properties!;
    assert.equal(p.contentType, 'application/json');
    assert.deepEqual({ ...p.userProperties }, { a: '1', b: '2' });
    assert.equal(p.responseTopic, 'api/reply');
    assert.deepEqual(Buffer.from(p.correlationData!), Buffer.from('c1'));
  });

  it('invalid topics and filters are rejected with PETREL_ERR_TOPIC', T, async () => {
    await assert.rejects(tb.broker.publish('a/+', 'x'), (e: PetrelError) => e.code === 'PETREL_ERR_TOPIC');
    await assert.rejects(tb.broker.publish('', 'x'), (e: PetrelError) => e.code === 'PETREL_ERR_TOPIC');
    assert.throws(() => tb.broker.subscribe('a/#/b'), (e: PetrelError) => e.code === 'PETREL_ERR_TOPIC');
    assert.throws(() => tb.broker.subscribe([]), (e: PetrelError) => e.code === 'PETREL_ERR_TOPIC');
  });
});

// ---------------------------------------------------------------------------
// Enhanced authentication: a challenge-response method. The server sends a
// random nonce (AUTH 0x18); the client answers HMAC-SHA256(secret, nonce).

const SECRETS: Record<string, string> = { alice: 's3cret-alice', bob: 's3cret-bob' };
const METHOD = 'PETREL-HMAC-SHA256';

const hmacMethod: AuthMethod = (req) => {
  const st = req.state as { nonce: Buffer } | undefined;
  if (st === undefined) {
    if (req.username === undefined || !(req.username in SECRETS)) return { result: 'fail', reasonCode: 0x86, reasonString: 'unknown user' };
    const nonce = randomBytes(16);
    return { result: 'continue', data: nonce, state: { nonce } };
  }
  const expected = createHmac('sha256', SECRETS[req.username!]!).update(st.nonce).digest();
  const got = req.data ?? Buffer.alloc(0);
  if (got.length === expected.length && timingSafeEqual(got, expected)) return { result: 'success', data: Buffer.from('welcome') };
  return { result: 'fail', reasonCode: 0x87, reasonString: 'wrong answer' };
};

function answer(user: string, nonce: Buffer | undefined): Buffer {
  return createHmac('sha256', SECRETS[user] ?? 'nope').update(nonce ?? Buffer.alloc(0)).digest();
}

describe('enhanced authentication (MQTT 5.0 §4.12)', T, () => {
  let tb: TestBroker;
  const steps: { reauthenticate: boolean; hasData: boolean }[] = [];
  before(async () => {
    tb = await startBroker({
      authMethods: {
        [METHOD]: (req) => {
          steps.push({ reauthenticate: req.reauthenticate, hasData: req.data !== undefined });
          return hmacMethod(req);
        },
        'ASYNC-OK': async () => {
          await sleep(10);
          return { result: 'success' };
        },
      },
    });
  });
  after(() => tb.close());

  /** CONNECT with the method, expect AUTH 0x18 with a nonce; returns the client and the nonce. */
  async function challenge(user: string, clientId = uniqueId('ea')): Promise<{ client: RawClient; nonce: Buffer }> {
    const client = track.raw(await RawClient.open(tb.port, 5));
    client.sendPacket(client.connectPacket({ clientId, username: user, properties: { authenticationMethod: METHOD } }));
    const auth = await client.expect(15);
    assert.equal(auth.reasonCode, 0x18, 'AUTH Continue authentication [MQTT-4.12.0-2]');
    assert.equal(auth.properties?.authenticationMethod, METHOD, 'same Authentication Method [MQTT-4.12.0-5]');
    const nonce = auth.properties?.authenticationData;
    assert.ok(nonce !== undefined && nonce.length === 16, 'the nonce');
    return { client, nonce };
  }

  it('challenge-response success: AUTH 0x18 with a nonce, the right HMAC → CONNACK 0x00 with the Authentication Method [MQTT-4.12.0-2] [MQTT-4.12.0-3] [MQTT-4.12.0-5]', T, async () => {
    const { client, nonce } = await challenge('alice');
    client.sendPacket({ type: 15, reasonCode: 0x18, properties: { authenticationMethod: METHOD, authenticationData: answer('alice', nonce) } });
    const connack = await client.expect(2);
    assert.equal(connack.reasonCode, 0);
    assert.equal(connack.properties?.authenticationMethod, METHOD);
    assert.deepEqual(connack.properties?.authenticationData, Buffer.from('welcome'));
    // The connection works.
    await client.subscribe([{ filter: 'ea/x', qos: 1 }]);
    client.publish('ea/x', 'hi', { qos: 1 });
    const got: PublishPacket[] = [];
    while (got.length === 0) {
      const p = await client.next();
      if (p.type === 3) got.push(p);
    }
    assert.equal(got[0]!.payload.toString(), 'hi');
  });

  it('challenge-response failure: a wrong HMAC → CONNACK 0x87 and close; an unknown user → CONNACK 0x86 [MQTT-4.12.0-4]', T, async () => {
    const { client, nonce } = await challenge('alice');
    client.sendPacket({ type: 15, reasonCode: 0x18, properties: { authenticationMethod: METHOD, authenticationData: answer('bob', nonce) } });
    const connack = await client.expect(2);
    assert.equal(connack.reasonCode, 0x87);
    assert.equal(connack.sessionPresent, false);
    await client.closed();
    const { client: c2, connack: k2 } = await rawConnect(tb.port, 5, { username: 'mallory', properties: { authenticationMethod: METHOD } });
    assert.equal(k2.reasonCode, 0x86);
    await c2.closed();
  });

  it('an asynchronous method that succeeds at once → CONNACK 0x00 with the method and no AUTH exchange', T, async () => {
    const { client, connack } = await rawConnect(tb.port, 5, { properties: { authenticationMethod: 'ASYNC-OK' } });
    assert.equal(connack.reasonCode, 0);
    assert.equal(connack.properties?.authenticationMethod, 'ASYNC-OK');
    assert.equal(client.received.filter((p) => p.type === 15).length, 0);
  });

  it('an unknown Authentication Method → CONNACK 0x8C (Bad authentication method) and close [MQTT-4.12.0-1]', T, async () => {
    const { client, connack } = await rawConnect(tb.port, 5, { properties: { authenticationMethod: 'NO-SUCH-METHOD' } });
    assert.equal(connack.reasonCode, 0x8c);
    await client.closed();
  });

  it('without an Authentication Method in CONNECT the CONNACK carries none, and an AUTH from the client is a Protocol Error [MQTT-4.12.0-6] [MQTT-4.12.0-7]', T, async () => {
    const { client, connack } = await rawConnect(tb.port, 5);
    assert.equal(connack.reasonCode, 0);
    assert.equal(connack.properties?.authenticationMethod, undefined);
    client.sendPacket({ type: 15, reasonCode: 0x19, properties: { authenticationMethod: METHOD } });
    assert.equal((await client.expect(14)).reasonCode, 0x82);
    await client.closed();
  });

  it('a packet other than AUTH or DISCONNECT during the exchange is a Protocol Error [MQTT-3.1.2-30]', T, async () => {
    const { client } = await challenge('bob');
    client.sendPacket({ type: 12 });
    const connack = await client.expect(2);
    assert.equal(connack.reasonCode, 0x82);
    await client.closed();
  });

  it('an AUTH with a different method during the exchange is a Protocol Error [MQTT-4.12.0-5]', T, async () => {
    const { client, nonce } = await challenge('bob');
    client.sendPacket({ type: 15, reasonCode: 0x18, properties: { authenticationMethod: 'OTHER', authenticationData: answer('bob', nonce) } });
    const connack = await client.expect(2);
    assert.equal(connack.reasonCode, 0x82);
    await client.closed();
  });

  async function authenticated(user: string): Promise<RawClient> {
    const { client, nonce } = await challenge(user);
    client.sendPacket({ type: 15, reasonCode: 0x18, properties: { authenticationMethod: METHOD, authenticationData: answer(user, nonce) } });
    assert.equal((await client.expect(2)).reasonCode, 0);
    return client;
  }

  it('re-authentication: AUTH 0x19 → AUTH 0x18 challenge → right answer → AUTH 0x00; the connection goes on [MQTT-4.12.1-1]', T, async () => {
    const client = await authenticated('bob');
    const before = steps.length;
    client.sendPacket({ type: 15, reasonCode: 0x19, properties: { authenticationMethod: METHOD } });
    const ch = await client.expect(15);
    assert.equal(ch.reasonCode, 0x18);
    assert.equal(ch.properties?.authenticationMethod, METHOD);
    const nonce = ch.properties?.authenticationData;
    assert.ok(nonce && nonce.length === 16);
    client.sendPacket({ type: 15, reasonCode: 0x18, properties: { authenticationMethod: METHOD, authenticationData: answer('bob', nonce) } });
    const ok = await client.expect(15);
    assert.equal(ok.reasonCode, 0x00, 'AUTH Success');
    assert.equal(ok.properties?.authenticationMethod, METHOD);
    assert.equal(steps[before]!.reauthenticate, true, 'the method is told it is a re-authentication');
    client.sendPacket({ type: 12 });
    await client.expect(13);
  });

  it('re-authentication failure → DISCONNECT with the reason code, then close [MQTT-4.12.1-2]', T, async () => {
    const client = await authenticated('alice');
    client.sendPacket({ type: 15, reasonCode: 0x19, properties: { authenticationMethod: METHOD } });
    const ch = await client.expect(15);
    client.sendPacket({ type: 15, reasonCode: 0x18, properties: { authenticationMethod: METHOD, authenticationData: Buffer.from(ch.properties!.authenticationData!).reverse() } });
    const d = await client.expect(14);
    assert.equal(d.reasonCode, 0x87);
    await client.closed();
  });

  it('re-authentication with a different method → DISCONNECT 0x82 [MQTT-4.12.1-1]', T, async () => {
    const client = await authenticated('alice');
    client.sendPacket({ type: 15, reasonCode: 0x19, properties: { authenticationMethod: 'ASYNC-OK' } });
    assert.equal((await client.expect(14)).reasonCode, 0x82);
    await client.closed();
  });
});
