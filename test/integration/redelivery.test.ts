// Redelivery rules that depend on what was already sent: shared-subscription
// messages of a member that goes away (§4.8.2), and message expiry of messages
// in flight (§3.3.2.3.3, §4.4).

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker } from '../helpers/broker.js';
import { Peer } from '../helpers/peer.js';
import { sleep, waitFor } from '../helpers/wait.js';

describe('shared subscriptions: a member goes away with a message in flight', () => {
  for (const qos of [1, 2] as const) {
    it(
      qos === 1
        ? 'QoS 1: the unacknowledged message goes to another member of the group (§4.8.2)'
        : 'QoS 2: a message whose delivery started stays with its member and is completed when it reconnects, never sent to another member [MQTT-4.8.2-4] [MQTT-4.8.2-5]',
      async () => {
        const tb = await startBroker();
        try {
          const a = new Peer();
          a.autoAck = false;
          await a.connect(tb.port, { clientId: `a${qos}`, clean: false });
          await a.subscribe(`$share/g/sh${qos}/x`, qos);
          const pub = new Peer();
          await pub.connect(tb.port, { clientId: `p${qos}`, clean: true });
          pub.publish(`sh${qos}/x`, Buffer.from('m0'), qos);
          const first = await a.message(() => true, 5000);
          assert.equal(first.payload.toString(), 'm0');
          const b = new Peer();
          await b.connect(tb.port, { clientId: `b${qos}`, clean: true });
          await b.subscribe(`$share/g/sh${qos}/x`, qos);
          a.destroy();
          if (qos === 1) {
            const m = await b.message(() => true, 5000);
            assert.equal(m.payload.toString(), 'm0', 'another member got it');
          } else {
            await sleep(500);
            assert.equal(b.received.length, 0, 'not sent to another member');
            a.received.length = 0;
            a.autoAck = true;
            const c = await a.connect(tb.port, { clientId: `a${qos}`, clean: false });
            assert.equal(c.sessionPresent, true);
            const again = await a.message(() => true, 5000);
            assert.equal(again.payload.toString(), 'm0');
            assert.equal(again.dup, true);
            assert.equal(again.packetId, first.packetId);
            a.disconnect();
          }
          b.disconnect();
          pub.disconnect();
        } finally {
          await tb.close();
        }
      },
    );
  }
});

describe('message expiry and messages in flight', () => {
  it('a message whose delivery started is re-sent on reconnection even if it expired meanwhile; one never sent expires [MQTT-3.3.2-5]', async () => {
    const tb = await startBroker({ limits: { maxInflight: 1 } });
    try {
      const sub = new Peer();
      sub.autoAck = false;
      await sub.connect(tb.port, { clientId: 'exp', clean: false, version: 5, sessionExpiry: 60, receiveMaximum: 1 });
      await sub.subscribe('exp/x', 1);
      const pub = new Peer();
      await pub.connect(tb.port, { clientId: 'exppub', clean: true, version: 5 });
      pub.publish('exp/x', Buffer.from('sent'), 1, false, { messageExpiryInterval: 1 });
      pub.publish('exp/x', Buffer.from('queued'), 1, false, { messageExpiryInterval: 1 });
      const m = await sub.message(() => true, 5000);
      assert.equal(m.payload.toString(), 'sent');
      sub.destroy();
      await sleep(1500);
      sub.received.length = 0;
      sub.autoAck = true;
      await sub.connect(tb.port, { clientId: 'exp', clean: false, version: 5, sessionExpiry: 60, receiveMaximum: 1 });
      const again = await sub.message(() => true, 5000);
      assert.equal(again.payload.toString(), 'sent');
      assert.equal(again.dup, true);
      // The broker counts the queued one as expired when the PUBACK for 'sent' frees the window.
      await waitFor(() => tb.broker.stats.expired >= 1, 10_000, 'the queued message to expire');
      await sleep(300);
      assert.deepEqual(sub.received.map((r) => r.packet.payload.toString()), ['sent'], 'the queued one expired, never delivered');
      sub.disconnect();
      pub.disconnect();
    } finally {
      await tb.close();
    }
  });
});
