// Identity and limits checked where they apply, connect-time races, and "a throw
// never ends the process": wills authorized at CONNECT, per-packet subscription
// limits, keep alive for every protocol version, DISCONNECT during asynchronous
// authentication, authenticate + enhanced authentication, clean-session
// takeover, DISCONNECT's Session Expiry against the CONNECT's, and the
// isolation of a throw to the client it happened for. Real sockets throughout.

import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ProtocolVersion } from '../../src/index.js';
import type { AckPacket, DisconnectPacket, Packet, SubackPacket } from '../../src/protocol/packets.js';
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
