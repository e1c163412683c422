// What the broker sends is always well-formed and within what the client
// accepts: reason strings built from client input cannot make a malformed
// DISCONNECT, and the client's Maximum Packet Size [MQTT-3.1.2-24] applies to
// every packet, not only PUBLISH: Reason String and User Properties are left
// out to fit [MQTT-3.1.2-25], and a packet that still does not fit is not sent
// (counted in stats.packetsTooLarge).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ConnackPacket, DisconnectPacket, Properties } from '../../src/protocol/packets.js';
import { ReasonCode } from '../../src/protocol/reason-codes.js';
import { createBroker, PetrelError } from '../../src/index.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { connectMqtt, endAll, versionOptions, type Connected } from '../helpers/mqttjs.js';
import { RawClient } from '../helpers/raw-client.js';
import { withTimeout } from '../helpers/wait.js';

const T = { timeout: 20_000 };
const SMALL = 20;

async function roundTrip(c: Connected, topic: string): Promise<void> {
  await withTimeout(c.client.publishAsync(topic, 'ping', { qos: 1 }), 3000, 'PUBACK for the bystander');
  await c.messages.count(topic, 1, 3000);
}

function assertAllWithin(client: RawClient, max: number): void {
  assert.deepEqual(client.decodeErrors.map((e) => e.message), [], 'everything received decodes');
  for (const size of client.packetSizes) assert.ok(size <= max, `a ${size}-byte packet exceeds the client's Maximum Packet Size ${max}`);
}

describe('reason strings from client input', { timeout: 60_000 }, () => {
  let tb: TestBroker;
  before(async () => {
    tb = await startBroker();
  });
  after(async () => {
    await tb?.close();
  });

  it('a SUBSCRIBE whose invalid filter is ~65,000 control characters gets a DISCONNECT 0x81 that decodes, with a short Reason String', T, async () => {
    const { client } = await RawClient.connect(tb.port, 5, { clientId: 'ctl-filter' });
    try {
      client.subscribe([{ filter: '\u0001'.repeat(64_990) + '#/a', qos: 0 }]).catch(() => {});
      await client.closed();
      assert.deepEqual(client.decodeErrors.map((e) => e.message), [], 'the DISCONNECT decodes cleanly');
      const d = client.received.find((p) => p.type === 14) as DisconnectPacket | undefined;
      assert.ok(d, 'a DISCONNECT was sent');
      assert.equal(d.reasonCode, ReasonCode.MalformedPacket);
      const reason = d.properties?.reasonString ?? '';
      assert.ok(reason.length > 0 && Buffer.byteLength(reason) < 1000, `reason string of ${Buffer.byteLength(reason)} bytes`);
    } finally {
      client.destroy();
    }
  });
});

describe('strings over 65,535 bytes from the embedder are refused where they are given', { timeout: 60_000 }, () => {
  it('broker.publish with a 70,000-byte property: PetrelError PETREL_ERR_OPTION, and a v5 subscriber gets only well-formed packets', T, async () => {
    const tb = await startBroker();
    const { client } = await RawClient.connect(tb.port, 5, { clientId: 'embed-sub' });
    try {
      await client.subscribe([{ filter: 'e/#', qos: 1 }]);
      for (const properties of [{ contentType: 'c'.repeat(70_000) }, { userProperties: [['k', 'v'.repeat(70_000)]] as [string, string][] }, { correlationData: Buffer.alloc(70_000) }]) {
        await assert.rejects(
          tb.broker.publish('e/1', 'x', { qos: 1, properties }),
          (err: unknown) => err instanceof PetrelError && err.code === 'PETREL_ERR_OPTION' && err.key === 'properties',
        );
      }
      await tb.broker.publish('e/2', 'fine', { qos: 0, properties: { contentType: 'c'.repeat(65_535) } });
      const m = await client.expect(3);
      assert.equal(m.topic, 'e/2');
      assert.equal(m.properties?.contentType?.length, 65_535);
      assert.deepEqual(client.decodeErrors.map((e) => e.message), []);
    } finally {
      client.destroy();
      await tb.close();
    }
  });

  it('an auth method answering with 70,000 bytes of data: nothing is sent, the error is logged, the broker carries on', T, async () => {
    const errors: string[] = [];
    const logger = { error: (msg: string) => errors.push(msg), warn: () => {}, info: () => {}, debug: () => {} };
    const tb = await startBroker({ logger, authMethods: { HUGE: () => ({ result: 'continue', data: Buffer.alloc(70_000) }) } });
    try {
      const client = await RawClient.open(tb.port, 5);
      client.sendPacket(client.connectPacket({ clientId: 'huge', properties: { authenticationMethod: 'HUGE' } }));
      assert.deepEqual(await client.quiet(300), []);
      client.destroy();
      assert.ok(errors.some((m) => /cannot be encoded/.test(m)), `logged: ${errors.join('; ')}`);
      const ok = await RawClient.connect(tb.port, 5, { clientId: 'after' });
      await ok.client.subscribe(['a']);
      ok.client.destroy();
    } finally {
      await tb.close();
    }
  });

  it('responseInformation over 65,535 bytes is refused at creation (PETREL_ERR_OPTION)', async () => {
    await assert.rejects(
      createBroker({ store: { type: 'memory' }, responseInformation: 'r'.repeat(65_536) }),
      (err: unknown) => err instanceof PetrelError && err.code === 'PETREL_ERR_OPTION' && err.key === 'responseInformation',
    );
  });
});

describe(`every packet within the client's Maximum Packet Size (${SMALL} bytes) [MQTT-3.1.2-24]`, { timeout: 60_000 }, () => {
  let tb: TestBroker;
  let bystander: Connected;
  const props: Properties = { maximumPacketSize: SMALL };
  before(async () => {
    tb = await startBroker({
      limits: { maxClientIdLength: 8 },
      hooks: {
        authenticate: (req) =>
          req.username === 'refuse' ? { reasonCode: ReasonCode.NotAuthorized, reasonString: 'you are not on the list of this broker, sorry' } : true,
      },
    });
    bystander = await connectMqtt(tb.url, { ...versionOptions(4), clientId: 'bystand' });
    await bystander.client.subscribeAsync('bystander/#', { qos: 1 });
  });
  after(async () => {
    await endAll(bystander?.client);
    await tb?.close();
  });

  it('a refused CONNECT (client id too long, checked first) gets its CONNACK 0x85 without the Reason String', T, async () => {
    const { client, connack } = await RawClient.connect(tb.port, 5, { clientId: 'much-too-long-for-8', properties: props }, true);
    try {
      assert.equal(connack.reasonCode, ReasonCode.ClientIdentifierNotValid);
      assert.equal(connack.properties?.reasonString, undefined);
      await client.closed();
      assertAllWithin(client, SMALL);
    } finally {
      client.destroy();
    }
  });

  it('a CONNECT refused by the authenticate hook with a long reason string: CONNACK 0x87 without it', T, async () => {
    const { client, connack } = await RawClient.connect(tb.port, 5, { clientId: 'refused', username: 'refuse', properties: props }, true);
    try {
      assert.equal(connack.reasonCode, ReasonCode.NotAuthorized);
      await client.closed();
      assertAllWithin(client, SMALL);
    } finally {
      client.destroy();
    }
  });

  it('a CONNACK that does not fit even without optional properties (an assigned client id) is not sent; the connection is closed, counted', T, async () => {
    // A broker of its own: maxClientIdLength 8 would refuse the assigned id.
    const other = await startBroker();
    const client = await RawClient.open(other.port, 5);
    try {
      client.sendPacket(client.connectPacket({ clientId: '', properties: props }));
      await client.closed();
      assert.deepEqual(client.received, [], 'nothing was sent');
      assert.equal(other.broker.stats.packetsTooLarge, 1);
      // The same CONNECT with room for the CONNACK is accepted.
      const ok = await RawClient.connect(other.port, 5, { clientId: '', properties: { maximumPacketSize: 100 } });
      assert.equal(ok.connack.reasonCode, 0);
      ok.client.destroy();
    } finally {
      client.destroy();
      await other.close();
    }
  });

  it('SUBACK and UNSUBACK for 30 filters (35 bytes) are not sent but the subscriptions take effect; small ones are sent; counted', T, async () => {
    const { client } = await RawClient.connect(tb.port, 5, { clientId: 'small', properties: props });
    try {
      const before = tb.broker.stats.packetsTooLarge;
      const filters = Array.from({ length: 30 }, (_, i) => `f/${i}`);
      // Sent as packets: client.subscribe() would wait for the SUBACK (and take the next packet).
      client.sendPacket({
        type: 8,
        packetId: client.nextPacketId(),
        subscriptions: filters.map((filter) => ({ filter, qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 })),
      });
      assert.deepEqual(await client.quiet(300), [], 'no SUBACK');
      // The subscriptions exist: a message to one of them arrives (a small PUBLISH).
      await bystander.client.publishAsync('f/7', 'x', { qos: 0 });
      const m = await client.expect(3);
      assert.equal(m.topic, 'f/7');
      client.sendPacket({ type: 10, packetId: client.nextPacketId(), filters });
      assert.deepEqual(await client.quiet(300), [], 'no UNSUBACK');
      assert.equal(tb.broker.stats.packetsTooLarge - before, 2);
      const suback = await client.subscribe([{ filter: 'one', qos: 1 }]);
      assert.deepEqual(suback.reasonCodes, [1]);
      const unsuback = await client.unsubscribe(['one', 'two']);
      assert.deepEqual(unsuback.reasonCodes, [0, ReasonCode.NoSubscriptionExisted]);
      assertAllWithin(client, SMALL);
      await roundTrip(bystander, 'bystander/1');
    } finally {
      client.destroy();
    }
  });

  it('acks with a long Reason String are sent without it (PUBACK 0x90 for a topic over maxTopicLevels)', T, async () => {
    const { client } = await RawClient.connect(tb.port, 5, { clientId: 'smallack', properties: props });
    try {
      const id = client.publish('a/'.repeat(250) + 'b', 'x', { qos: 1 });
      const ack = await client.expect(4);
      assert.equal(ack.type === 4 && ack.packetId, id);
      assert.equal(ack.type === 4 && ack.reasonCode, ReasonCode.TopicNameInvalid);
      assertAllWithin(client, SMALL);
    } finally {
      client.destroy();
    }
  });

  it('a DISCONNECT with a long Reason String (topic alias above the maximum) is sent without it', T, async () => {
    const { client } = await RawClient.connect(tb.port, 5, { clientId: 'small-dc', properties: props });
    try {
      client.publish('t', 'x', { qos: 0, properties: { topicAlias: 1000 } });
      const d = await client.expect(14);
      assert.equal(d.reasonCode, ReasonCode.TopicAliasInvalid);
      assert.equal(d.properties?.reasonString, undefined);
      await client.closed();
      assertAllWithin(client, SMALL);
      await roundTrip(bystander, 'bystander/2');
    } finally {
      client.destroy();
    }
  });

  it('an AUTH (enhanced authentication, 100 bytes of Authentication Data) that does not fit is not sent, counted', T, async () => {
    const other = await startBroker({ authMethods: { BIG: () => ({ result: 'continue', data: Buffer.alloc(100, 1) }) } });
    const client = await RawClient.open(other.port, 5);
    try {
      client.sendPacket(client.connectPacket({ clientId: 'auth', properties: { ...props, authenticationMethod: 'BIG' } }));
      assert.deepEqual(await client.quiet(300), [], 'no AUTH');
      assert.equal(other.broker.stats.packetsTooLarge, 1);
      // With room for it, the same AUTH arrives.
      const ok = await RawClient.open(other.port, 5);
      ok.sendPacket(ok.connectPacket({ clientId: 'auth2', properties: { maximumPacketSize: 200, authenticationMethod: 'BIG' } }));
      assert.equal((await ok.expect(15)).reasonCode, ReasonCode.ContinueAuthentication);
      ok.destroy();
    } finally {
      client.destroy();
      await other.close();
    }
  });

  it('without a Maximum Packet Size the same packets carry their Reason Strings', T, async () => {
    const { client, connack } = await RawClient.connect(tb.port, 5, { clientId: 'too-long-client-id' }, true);
    try {
      assert.match((connack as ConnackPacket).properties?.reasonString ?? '', /client id longer than 8/);
    } finally {
      client.destroy();
    }
  });
});
