// Identity and limits checked where they apply, connect-time races, and "a throw
// never ends the process": wills authorized at CONNECT, per-packet subscription
// limits, keep alive for every protocol version, DISCONNECT during asynchronous
// authentication, authenticate + enhanced authentication, clean-session
// takeover, DISCONNECT's Session Expiry against the CONNECT's, and the
// isolation of a throw to the client it happened for. Real sockets throughout.

import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { AuthenticateRequest, AuthMethod, ClientInfo, ProtocolVersion } from '../../src/index.js';
import type { AckPacket, DisconnectPacket, Packet, SubackPacket } from '../../src/protocol/packets.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import type { SubscriptionRecord } from '../../src/store/types.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { RawClient, type RawConnectOptions } from '../helpers/raw-client.js';
import { deferred, sleep, waitFor, withTimeout } from '../helpers/wait.js';

const T = { timeout: 30_000 };

const raws: RawClient[] = [];
const brokers: TestBroker[] = [];
afterEach(async () => {
  for (const r of raws.splice(0)) r.destroy();
  await Promise.all(brokers.splice(0).map((b) => withTimeout(b.close(), 5000, 'broker.close()')));
});

async function broker(options: Parameters<typeof startBroker>[0] = {}): Promise<TestBroker> {
  const b = await startBroker(options);
  brokers.push(b);
  return b;
}

let n = 0;
function id(prefix: string): string {
  return `${prefix}-${process.pid}-${++n}`;
}

/** CONNECT and the CONNACK, refused or not. */
async function connect(port: number, version: ProtocolVersion, opts: RawConnectOptions = {}) {
  const r = await RawClient.connect(port, version, opts, true);
  raws.push(r.client);
  return r;
}

async function open(port: number, version: ProtocolVersion): Promise<RawClient> {
  const c = await RawClient.open(port, version);
  raws.push(c);
  return c;
}

// ---------------------------------------------------------------------------

describe('DISCONNECT Session Expiry Interval is judged against the CONNECT (§3.14.2.2.2)', T, () => {
  it('a CONNECT expiry capped to 0 by maxSessionExpiry: repeating it on DISCONNECT is not a Protocol Error', async () => {
    const tb = await broker({ limits: { maxSessionExpiry: 0 } });
    const { client, connack } = await connect(tb.port, 5, { clientId: id('cap'), properties: { sessionExpiryInterval: 100 } });
    assert.equal(connack.reasonCode, 0);
    assert.equal(connack.properties?.sessionExpiryInterval, 0, 'CONNACK tells the client its expiry was capped to 0');
    client.sendPacket({ type: 14, reasonCode: 0, properties: { sessionExpiryInterval: 100 } });
    await client.closed();
    assert.deepEqual(client.received.slice(1).map((p) => p.type), [], 'no DISCONNECT 0x82 from the server');
    assert.equal(tb.broker.sessionCount, 0, 'the session ended (its expiry stays capped at 0)');
  });

  it('a CONNECT expiry of 0: a non-zero expiry on DISCONNECT is still a Protocol Error (0x82)', async () => {
    const tb = await broker({ limits: { maxSessionExpiry: 0 } });
    const { client } = await connect(tb.port, 5, { clientId: id('zero') });
    client.sendPacket({ type: 14, reasonCode: 0, properties: { sessionExpiryInterval: 100 } });
    const d = await client.expect(14);
    assert.equal(d.reasonCode, 0x82);
    await client.closed();
  });
});

describe('maxSubscriptionsPerSession counts the new filters of one SUBSCRIBE as it goes', T, () => {
  for (const version of [4, 5] as const) {
    it(`v${version === 4 ? '3.1.1' : '5'}: 200 filters against a limit of 50 → 50 granted, the rest ${version === 5 ? '0x97' : '0x80'}`, async () => {
      const tb = await broker({ limits: { maxSubscriptionsPerSession: 50 } });
      const { client } = await connect(tb.port, version, { clientId: id('subs') });
      const filters = Array.from({ length: 200 }, (_, i) => ({ filter: `s/${i}`, qos: 1 as const }));
      // A filter repeated within the packet is one subscription, not two.
      filters.splice(10, 0, { filter: 's/3', qos: 1 });
      const suback: SubackPacket = await client.subscribe(filters);
      const refused = version === 5 ? 0x97 : 0x80;
      assert.equal(suback.reasonCodes.length, 201);
      assert.deepEqual(suback.reasonCodes.slice(0, 51), new Array(51).fill(1), 'the first 50 distinct filters (and the repeat) are granted');
      assert.deepEqual(suback.reasonCodes.slice(51), new Array(150).fill(refused), 'the rest: Quota Exceeded');
      const again = await client.subscribe([{ filter: 's/0', qos: 0 }, { filter: 'new/1', qos: 0 }]);
      assert.deepEqual(again.reasonCodes, [0, refused], 'an existing filter may be replaced; a new one is still refused');
    });
  }
});

describe('a clean-session connection taken over by Clean Session 0 ends its session [MQTT-3.1.2-6] [MQTT-3.2.2-3]', T, () => {
  for (const version of [4, 5] as const) {
    it(`v${version === 4 ? '3.1.1' : '5'}: Session Present 0, no old subscription, no old queue`, async () => {
      const tb = await broker();
      const cid = id('takeover');
      // The first connection's session lasts as long as its connection: clean session 1 (v5: Clean Start 1, expiry 0).
      const a = await connect(tb.port, version, { clientId: cid, clean: true });
      assert.equal((await a.client.subscribe([{ filter: 'tk/#', qos: 1 }])).reasonCodes[0], 1);
      const pub = await connect(tb.port, version, { clientId: id('pub') });
      pub.client.publish('tk/1', 'unacked', { qos: 1 });
      const first = await a.client.expect(3);
      assert.equal(first.payload.toString(), 'unacked', 'delivered and deliberately not acknowledged');
      // Taken over by Clean Session 0 (v5: Clean Start 0 with an expiry of its own).
      const b = await connect(tb.port, version, {
        clientId: cid,
        clean: false,
        ...(version === 5 ? { properties: { sessionExpiryInterval: 60 } } : {}),
      });
      assert.equal(b.connack.reasonCode, 0);
      assert.equal(b.connack.sessionPresent, false, 'the old session ended with its connection');
      await a.client.closed();
      pub.client.publish('tk/2', 'after', { qos: 1 });
      await pub.client.expect(4);
      const got = await b.client.quiet(300);
      assert.deepEqual(got.filter((p) => p.type === 3), [], 'neither the unacknowledged message again nor the old subscription');
    });
  }

  it('v5: a session with an expiry is still resumed by a takeover with Clean Start 0 (Session Present 1)', async () => {
    const tb = await broker();
    const cid = id('keep');
    const a = await connect(tb.port, 5, { clientId: cid, properties: { sessionExpiryInterval: 60 } });
    await a.client.subscribe([{ filter: 'kp/#', qos: 1 }]);
    const b = await connect(tb.port, 5, { clientId: cid, clean: false, properties: { sessionExpiryInterval: 60 } });
    assert.equal(b.connack.sessionPresent, true);
    const d = await a.client.expect(14);
    assert.equal(d.reasonCode, 0x8e, 'Session taken over');
    const pub = await connect(tb.port, 5, { clientId: id('pub') });
    pub.client.publish('kp/1', 'x', { qos: 1 });
    assert.equal((await b.client.expect(3)).topic, 'kp/1', 'the subscription came along');
  });
});

describe('wills are authorized at CONNECT with the client\'s identity (review A6)', T, () => {
  for (const version of [4, 5] as const) {
    const refused = version === 5 ? 0x87 : 5;
    it(`v${version === 4 ? '3.1.1' : '5'}: authorizePublish sees the real ClientInfo; a refused will refuses the connection (${version === 5 ? '0x87' : 'return code 5'}); an accepted one fires without a second check`, async () => {
      const calls: { client: ClientInfo; topic: string }[] = [];
      const tb = await broker({
        hooks: {
          // An ACL keyed on the user name: each user may publish under wills/<name>.
          authorizePublish: (client, msg) => {
            calls.push({ client, topic: msg.topic });
            return msg.topic === `wills/${client.username ?? ''}`;
          },
        },
      });
      const watcher = await connect(tb.port, 5, { clientId: id('watch') });
      await watcher.client.subscribe([{ filter: 'wills/#', qos: 1 }]);

      const cid = id('alice');
      const alice = await connect(tb.port, version, { clientId: cid, username: 'alice', will: { topic: 'wills/alice', payload: Buffer.from('gone'), qos: 1, retain: false } });
      assert.equal(alice.connack.reasonCode, 0, 'her own will topic is allowed');
      assert.equal(calls.length, 1, 'the will was authorized at CONNECT');
      assert.equal(calls[0]!.client.clientId, cid);
      assert.equal(calls[0]!.client.username, 'alice');
      assert.equal(calls[0]!.client.protocolVersion, version);
      assert.match(calls[0]!.client.remoteAddress, /^127\.0\.0\.1:\d+$/);

      const bob = await connect(tb.port, version, { clientId: id('bob'), username: 'bob', will: { topic: 'wills/alice', payload: Buffer.from('fake'), qos: 0, retain: false } });
      assert.equal(bob.connack.reasonCode, refused, 'a will the user could not publish refuses the connection');
      await bob.client.closed();

      // The accepted will fires (abrupt drop) and is published without being authorized again.
      alice.client.destroy();
      const will = await watcher.client.expect(3);
      assert.equal(will.topic, 'wills/alice');
      assert.equal(will.payload.toString(), 'gone');
      assert.equal(calls.filter((c) => c.topic === 'wills/alice' && c.client.username === 'alice').length, 1, 'authorized once, at CONNECT');
    });

    it(`v${version === 4 ? '3.1.1' : '5'}: a will topic under $SYS is refused at CONNECT (${version === 5 ? '0x87' : 'return code 5'}), with no hook configured`, async () => {
      const tb = await broker();
      const r = await connect(tb.port, version, { clientId: id('sys'), will: { topic: '$SYS/broker/uptime', payload: Buffer.from('0'), qos: 0, retain: true } });
      assert.equal(r.connack.reasonCode, refused);
      await r.client.closed();
      const ok = await connect(tb.port, version, { clientId: id('sysx'), will: { topic: '$SYSTEM/x', payload: Buffer.from('0'), qos: 0, retain: false } });
      assert.equal(ok.connack.reasonCode, 0, '$SYSTEM is not $SYS');
    });
  }

  it('an asynchronous authorizePublish decides the will at CONNECT (accepted after 50 ms; refused with its own CONNACK code)', async () => {
    const tb = await broker({
      hooks: {
        authorizePublish: async (_client, msg) => {
          await sleep(50);
          return msg.topic === 'w/ok' ? true : msg.topic === 'w/quota' ? 0x97 : false;
        },
      },
    });
    const ok = await connect(tb.port, 5, { clientId: id('aok'), will: { topic: 'w/ok', payload: Buffer.from('1'), qos: 0, retain: false } });
    assert.equal(ok.connack.reasonCode, 0);
    const no = await connect(tb.port, 5, { clientId: id('ano'), will: { topic: 'w/no', payload: Buffer.from('1'), qos: 0, retain: false } });
    assert.equal(no.connack.reasonCode, 0x87);
    const quota = await connect(tb.port, 5, { clientId: id('aq'), will: { topic: 'w/quota', payload: Buffer.from('1'), qos: 0, retain: false } });
    assert.equal(quota.connack.reasonCode, 0x97, 'a reason code CONNACK can carry is passed on');
    const v3 = await connect(tb.port, 4, { clientId: id('a3'), will: { topic: 'w/no', payload: Buffer.from('1'), qos: 0, retain: false } });
    assert.equal(v3.connack.reasonCode, 5);
  });
});

describe('DISCONNECT or close while an asynchronous authenticate is pending (review A10)', T, () => {
  for (const how of ['DISCONNECT (socket left open)', 'socket closed'] as const) {
    it(`${how}: the connect never completes and does not take over the live connection with the same client id`, async () => {
      const hookDone = deferred<void>();
      const tb = await broker({
        hooks: {
          authenticate: async (req) => {
            if (req.username !== 'slow') return true;
            await sleep(300);
            hookDone.resolve();
            return true;
          },
        },
      });
      const cid = id('x');
      const a = await connect(tb.port, 5, { clientId: cid });
      await a.client.subscribe([{ filter: 'race/#', qos: 1 }]);
      const b = await open(tb.port, 5);
      b.sendPacket(b.connectPacket({ clientId: cid, username: 'slow' }));
      if (how === 'socket closed') b.destroy();
      else b.sendPacket({ type: 14, reasonCode: 0 });
      await withTimeout(hookDone.promise, 3000, 'the authenticate hook');
      await sleep(100);
      assert.equal(a.client.isClosed, false, 'A is still connected');
      assert.deepEqual(a.client.unread.filter((p) => p.type === 14), [], 'A got no DISCONNECT (no takeover)');
      assert.deepEqual(b.received.filter((p) => p.type === 2), [], 'B never got a CONNACK');
      if (how !== 'socket closed') await b.closed();
      const pub = await connect(tb.port, 5, { clientId: id('pub') });
      pub.client.publish('race/1', 'still here', { qos: 1 });
      const msg = await a.client.expect(3);
      assert.equal(msg.payload.toString(), 'still here', 'A gets messages');
      assert.equal(tb.broker.connectedClients, 2, 'A and the publisher');
    });
  }
});

describe('DISCONNECT while an asynchronous enhanced-authentication step is pending', T, () => {
  it('the connect never completes and does not take over the live connection with the same client id', async () => {
    const stepDone = deferred<void>();
    const tb = await broker({
      authMethods: {
        SLOW: async () => {
          await sleep(300);
          stepDone.resolve();
          return { result: 'success' };
        },
      },
    });
    const cid = id('xm');
    const a = await connect(tb.port, 5, { clientId: cid });
    await a.client.subscribe([{ filter: 'racem/#', qos: 1 }]);
    const b = await open(tb.port, 5);
    b.sendPacket(b.connectPacket({ clientId: cid, properties: { authenticationMethod: 'SLOW' } }));
    b.sendPacket({ type: 14, reasonCode: 0 });
    await withTimeout(stepDone.promise, 3000, 'the authentication step');
    await sleep(100);
    assert.equal(a.client.isClosed, false, 'A is still connected');
    assert.deepEqual(b.received.filter((p) => p.type === 2), [], 'B never got a CONNACK');
    const pub = await connect(tb.port, 5, { clientId: id('pub') });
    pub.client.publish('racem/1', 'still here', { qos: 1 });
    assert.equal((await a.client.expect(3)).payload.toString(), 'still here');
  });
});

describe('enhanced authentication and the authenticate hook compose: the method first, then the hook; both must accept', T, () => {
  /** A one-step method: accepts Authentication Data "good", asynchronously. */
  const authMethods: Record<string, AuthMethod> = {
    TOKEN: async (req) => {
      await sleep(20);
      return req.data?.toString() === 'good' ? { result: 'success', data: Buffer.from('welcome') } : { result: 'fail', reasonCode: 0x87 };
    },
  };
  async function setup() {
    const seen: AuthenticateRequest[] = [];
    const tb = await broker({
      authMethods,
      hooks: {
        authenticate: async (req) => {
          seen.push(req);
          await sleep(20);
          return req.username !== 'blocked';
        },
      },
    });
    return { tb, seen };
  }

  it('method accepts, hook accepts: CONNACK 0 with the method\'s data; the hook was told the method', async () => {
    const { tb, seen } = await setup();
    const r = await connect(tb.port, 5, { clientId: id('both'), username: 'u', properties: { authenticationMethod: 'TOKEN', authenticationData: Buffer.from('good') } });
    assert.equal(r.connack.reasonCode, 0);
    assert.equal(r.connack.properties?.authenticationMethod, 'TOKEN');
    assert.equal(r.connack.properties?.authenticationData?.toString(), 'welcome');
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.authenticationMethod, 'TOKEN');
    // Packets after CONNACK are handled (nested asynchronous steps released the backlog once both ended).
    assert.equal((await r.client.subscribe(['m/#'])).reasonCodes[0], 0);
  });

  it('method accepts, hook refuses: CONNACK 0x86', async () => {
    const { tb, seen } = await setup();
    const r = await connect(tb.port, 5, { clientId: id('hookno'), username: 'blocked', properties: { authenticationMethod: 'TOKEN', authenticationData: Buffer.from('good') } });
    assert.equal(r.connack.reasonCode, 0x86, 'the hook applies to clients that chose a method too');
    assert.equal(seen.length, 1);
  });

  it('method refuses: its reason code, and the hook is not called', async () => {
    const { tb, seen } = await setup();
    const r = await connect(tb.port, 5, { clientId: id('methno'), username: 'u', properties: { authenticationMethod: 'TOKEN', authenticationData: Buffer.from('bad') } });
    assert.equal(r.connack.reasonCode, 0x87);
    assert.equal(seen.length, 0);
  });

  it('no method: the hook alone, told none', async () => {
    const { tb, seen } = await setup();
    const r = await connect(tb.port, 5, { clientId: id('plain'), username: 'u' });
    assert.equal(r.connack.reasonCode, 0);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.authenticationMethod, undefined);
  });
});

describe('a throw in one client\'s handling closes that client (0x83) and is logged; the process and the others carry on', T, () => {
  /** A memory store whose putSubscription breaks for filters under boom/ (a store bug, a full disk ...). */
  class BrokenStore extends MemoryStore {
    override putSubscription(clientId: string, subscription: SubscriptionRecord): void {
      if (subscription.filter.startsWith('boom/')) throw new Error(`injected store failure for ${subscription.filter}`);
      super.putSubscription(clientId, subscription);
    }
  }

  it('sync and async throws from the store and from hooks: no uncaught exception or unhandled rejection, a bystander keeps working', async () => {
    const escaped: unknown[] = [];
    const onEscape = (err: unknown): void => {
      escaped.push(err);
    };
    process.on('uncaughtException', onEscape);
    process.on('unhandledRejection', onEscape);
    const errors: string[] = [];
    const logger = { debugEnabled: false, error: (msg: string) => errors.push(msg), warn() {}, info() {}, debug() {} };
    try {
      const tb = await broker({
        store: new BrokenStore(),
        logger,
        hooks: {
          // Asynchronous for async/ filters: the store failure then happens in the hook's continuation.
          authorizeSubscribe: (_c, sub) => (sub.filter.includes('/async') ? sleep(10).then(() => true) : true),
          authorizePublish: (_c, msg) => {
            if (msg.topic === 'hook/throw') throw new Error('injected hook throw');
            if (msg.topic === 'hook/reject') return Promise.reject(new Error('injected hook rejection'));
            return true;
          },
          onPublish: (_c, msg) => {
            if (msg.topic === 'hook/onpublish') throw new Error('injected onPublish throw');
          },
        },
      });
      const bystander = await connect(tb.port, 5, { clientId: id('bystander') });
      await bystander.client.subscribe([{ filter: 'ok/#', qos: 1 }]);
      const pub = await connect(tb.port, 5, { clientId: id('pub') });
      let sent = 0;
      const check = async (what: string): Promise<void> => {
        pub.client.publish('ok/t', `${what} ${++sent}`, { qos: 1 });
        const m = await bystander.client.expect(3);
        assert.equal(m.payload.toString(), `${what} ${sent}`, `the bystander still gets messages after ${what}`);
        bystander.client.puback(m.packetId);
      };

      // The store throws synchronously inside SUBSCRIBE handling (persistent sessions write subscriptions).
      for (const version of [5, 4] as const) {
        const v = await connect(tb.port, version, { clientId: id('victim'), clean: false, ...(version === 5 ? { properties: { sessionExpiryInterval: 60 } } : {}) });
        v.client.sendPacket({ type: 8, packetId: 1, subscriptions: [{ filter: 'boom/sync', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }] });
        if (version === 5) {
          const d = (await v.client.expect(14)) as DisconnectPacket;
          assert.equal(d.reasonCode, 0x83, 'v5: DISCONNECT Implementation Specific Error');
        }
        await v.client.closed();
        await check(`a synchronous store throw (v${version})`);
      }

      // The same throw in the continuation of an asynchronous hook (a rejection nobody handled, before).
      const a = await connect(tb.port, 5, { clientId: id('victim-async'), properties: { sessionExpiryInterval: 60 } });
      a.client.sendPacket({ type: 8, packetId: 1, subscriptions: [{ filter: 'boom/async', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }] });
      assert.equal(((await a.client.expect(14)) as DisconnectPacket).reasonCode, 0x83);
      await a.client.closed();
      await check('a throw after an asynchronous hook');

      // Hooks that throw or reject: the PUBLISH is refused (0x80), the connection and the broker stay.
      const h = await connect(tb.port, 5, { clientId: id('hooks') });
      const p1 = h.client.publish('hook/throw', 'x', { qos: 1 });
      const ack1 = (await h.client.expect(4)) as AckPacket;
      assert.deepEqual([ack1.packetId, ack1.reasonCode], [p1, 0x80]);
      const p2 = h.client.publish('hook/reject', 'x', { qos: 1 });
      const ack2 = (await h.client.expect(4)) as AckPacket;
      assert.deepEqual([ack2.packetId, ack2.reasonCode], [p2, 0x80]);
      h.client.publish('hook/onpublish', 'x', { qos: 1 });
      await h.client.expect(4);
      assert.equal(h.client.isClosed, false);
      await check('throwing hooks');

      assert.deepEqual(escaped, [], 'nothing reached the process');
      assert.ok(errors.filter((e) => e.startsWith('internal error')).length >= 3, `each throw was logged: ${JSON.stringify(errors)}`);
      assert.ok(tb.broker.stats.internalErrors >= 3);
    } finally {
      process.off('uncaughtException', onEscape);
      process.off('unhandledRejection', onEscape);
    }
  });
});

describe('keep alive: limits.maxKeepAlive for every version, TCP keepalive, a silent client closed within 1.5x + 100 ms', T, () => {
  // The upper bound is the requirement (1.5x plus at most 100 ms); the lower one is [MQTT-3.1.2-22]: never before.
  for (const version of [4, 5] as const) {
    it(`v${version === 4 ? '3.1.1' : '5'}: keep alive 2 s, silent: closed between 3.0 s and 3.1 s after its CONNECT; one that pinged at 1.5 s, between 3.0 s and 3.1 s after that ping`, async () => {
      const tb = await broker();
      const silent = await open(tb.port, version);
      const pinger = await open(tb.port, version);
      const t0 = Date.now();
      silent.sendPacket(silent.connectPacket({ keepAlive: 2 }));
      pinger.sendPacket(pinger.connectPacket({ keepAlive: 2 }));
      assert.equal((await silent.expect(2)).reasonCode, 0);
      assert.equal((await pinger.expect(2)).reasonCode, 0);
      await sleep(1500 - (Date.now() - t0));
      const tPing = Date.now();
      pinger.sendPacket({ type: 12 });
      const gone = async (c: RawClient): Promise<number> => {
        if (version === 5) {
          const d = (await c.expect(14, 6000)) as DisconnectPacket;
          assert.equal(d.reasonCode, 0x8d, 'Keep Alive Timeout');
          return Date.now();
        }
        await c.closed(6000);
        assert.deepEqual(c.unread.filter((p: Packet) => p.type !== 13), [], 'nothing but PINGRESP before closing');
        return c.closedAt;
      };
      const [a, b] = await Promise.all([gone(silent), gone(pinger)]);
      const silentMs = a - t0;
      const pingerMs = b - tPing;
      assert.ok(silentMs >= 3000 && silentMs <= 3100, `silent client closed after ${silentMs} ms`);
      assert.ok(pingerMs >= 3000 && pingerMs <= 3100, `pinging client closed ${pingerMs} ms after its PINGREQ`);
      assert.equal(tb.broker.stats.keepAliveTimeouts, 2);
    });
  }

  it('3.1/3.1.1: a keep alive above maxKeepAlive, or 0, is refused with return code 2 (as Mosquitto does); v5 gets Server Keep Alive', async () => {
    const tb = await broker({ limits: { maxKeepAlive: 30 } });
    for (const version of [3, 4] as const) {
      const above = await connect(tb.port, version, { clientId: id('ka'), keepAlive: 31 });
      assert.equal(above.connack.reasonCode, 2, `v${version}: 31 > 30`);
      await above.client.closed();
      const zero = await connect(tb.port, version, { clientId: id('ka'), keepAlive: 0 });
      assert.equal(zero.connack.reasonCode, 2, `v${version}: 0 (no keep alive) is above any cap`);
      const within = await connect(tb.port, version, { clientId: id('ka'), keepAlive: 30 });
      assert.equal(within.connack.reasonCode, 0, `v${version}: 30 is within`);
    }
    const v5 = await connect(tb.port, 5, { clientId: id('ka'), keepAlive: 100 });
    assert.equal(v5.connack.reasonCode, 0);
    assert.equal(v5.connack.properties?.serverKeepAlive, 30);
  });

  /** The keepalive timer state of the broker's side of the connection from a client port: /proc/net/tcp 'tr' (2 = keepalive). */
  async function timerOf(brokerPort: number, clientPort: number): Promise<number> {
    const { readFile } = await import('node:fs/promises');
    const hex = (n: number): string => n.toString(16).toUpperCase().padStart(4, '0');
    for (const line of (await readFile('/proc/net/tcp', 'utf8')).split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 6) continue;
      if (f[1]!.endsWith(`:${hex(brokerPort)}`) && f[2]!.endsWith(`:${hex(clientPort)}`) && f[3] === '01') return parseInt(f[5]!.split(':')[0]!, 16);
    }
    throw new Error('broker side of the connection not found in /proc/net/tcp');
  }

  it('TCP keepalive is on for accepted sockets (limits.tcpKeepAlive, default 60 s), off with 0', async () => {
    const on = await broker();
    const a = await connect(on.port, 4, { clientId: id('tcp'), keepAlive: 0 });
    assert.equal(await timerOf(on.port, a.client.socket.localPort!), 2, 'keepalive timer running on the idle connection');
    const off = await broker({ limits: { tcpKeepAlive: 0 } });
    const b = await connect(off.port, 4, { clientId: id('tcp'), keepAlive: 0 });
    assert.equal(await timerOf(off.port, b.client.socket.localPort!), 0, 'no timer without TCP keepalive');
  });
});
