// Publisher flow control: when a connected subscriber falls behind, the broker
// holds the publisher's acknowledgements instead of dropping messages it has
// acknowledged (ARCHITECTURE.md, "Flow control").

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker } from '../helpers/broker.js';
import { Peer } from '../helpers/peer.js';
import { sleep, until } from '../helpers/wait.js';

describe('publisher flow control', () => {
  it('a subscriber that stops acknowledging holds back the publisher: nothing acknowledged is dropped, and all of it arrives once the subscriber reads again', async () => {
    // A queue limit far below what is published: without flow control most messages would be dropped.
    // maxPublisherHoldMs far above the test's length: only the subscriber's acks release the publisher here.
    const tb = await startBroker({ limits: { maxQueuedMessages: 3000, maxInflight: 100, maxPublisherHoldMs: 600_000 } });
    try {
      const sub = new Peer();
      sub.autoAck = false;
      await sub.connect(tb.port, { clientId: 'slow', clean: true });
      await sub.subscribe('flow/#', 1);
      const pub = new Peer();
      await pub.connect(tb.port, { clientId: 'fast', clean: true });
      const total = 20_000;
      const window = 200;
      let next = 0;
      let acked = 0;
      const pump = (): void => {
        while (next < total && pub.inflight < window) pub.publish('flow/x', Buffer.from(String(next++)), 1);
      };
      pub.onCompleted = () => {
        acked++;
        pump();
      };
      pump();
      // The subscriber holds its 100-message window; the publisher gets some acks, then is held.
      await until(() => tb.broker.stats.publisherBlocks > 0, 15_000);
      await sleep(200);
      const ackedWhileStalled = acked;
      assert.ok(ackedWhileStalled < total, `publisher was held back (acked ${ackedWhileStalled} of ${total})`);
      assert.ok(tb.broker.stats.publisherBlocks > 0, 'the broker recorded holding the publisher');
      assert.equal(tb.broker.stats.droppedQueueFull, 0, 'nothing dropped while held');
      // The subscriber reads again: everything flows, in order, nothing lost.
      sub.autoAck = true;
      for (const r of sub.received) sub.ack(r.packet);
      await until(() => acked === total && new Set(sub.received.map((r) => r.packet.payload.toString())).size === total, 30_000);
      assert.equal(acked, total, 'every message acknowledged to the publisher');
      const seqs = sub.received.map((r) => Number(r.packet.payload.toString()));
      assert.equal(new Set(seqs).size, total, 'every message delivered');
      for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i]! > seqs[i - 1]!, 'in order [MQTT-4.6.0-6]');
      assert.equal(tb.broker.stats.droppedQueueFull, 0);
      pub.disconnect();
      sub.disconnect();
    } finally {
      await tb.close();
    }
  });

  it('a subscriber that goes away releases the publisher it was holding back', async () => {
    const tb = await startBroker({ limits: { maxInflight: 50, maxPublisherHoldMs: 600_000 } });
    try {
      const sub = new Peer();
      sub.autoAck = false;
      await sub.connect(tb.port, { clientId: 'gone', clean: true });
      await sub.subscribe('gone/#', 1);
      const pub = new Peer();
      await pub.connect(tb.port, { clientId: 'pub', clean: true });
      let acked = 0;
      pub.onCompleted = () => acked++;
      for (let i = 0; i < 3000; i++) pub.publish('gone/x', Buffer.from(String(i)), 1);
      await until(() => tb.broker.stats.publisherBlocks > 0, 15_000);
      assert.ok(tb.broker.stats.publisherBlocks > 0);
      assert.ok(acked < 3000);
      sub.destroy();
      await until(() => acked === 3000, 10_000);
      assert.equal(acked, 3000, 'held acknowledgements released when the subscriber left');
      pub.disconnect();
    } finally {
      await tb.close();
    }
  });

  it('a subscriber that acknowledges nothing for maxPublisherHoldMs lets its publishers go: its queue takes the rest, and it holds them again once it acknowledges', async () => {
    const tb = await startBroker({ limits: { maxInflight: 50, maxPublisherHoldMs: 300 } });
    try {
      const sub = new Peer();
      sub.autoAck = false;
      await sub.connect(tb.port, { clientId: 'stuck', clean: true });
      await sub.subscribe('stuck/#', 1);
      const pub = new Peer();
      await pub.connect(tb.port, { clientId: 'pub', clean: true });
      let acked = 0;
      pub.onCompleted = () => acked++;
      const total = 3000;
      for (let i = 0; i < total; i++) pub.publish('stuck/x', Buffer.from(String(i)), 1);
      await until(() => tb.broker.stats.publisherBlocks > 0, 5000);
      const heldAt = acked;
      assert.ok(heldAt < total, `publisher held back first (acked ${heldAt} of ${total})`);
      await until(() => acked === total, 10_000);
      assert.equal(acked, total, 'released after the subscriber acknowledged nothing for 300 ms');
      assert.equal(tb.broker.stats.stalledSubscribers, 1);
      assert.equal(tb.broker.stats.droppedQueueFull, 0, 'the queue took the rest');
      // It acknowledges again: everything arrives, in order; the publisher is held again when it runs ahead.
      sub.autoAck = true;
      for (const r of sub.received) sub.ack(r.packet);
      await until(() => new Set(sub.received.map((r) => r.packet.payload.toString())).size === total, 10_000);
      const seqs = sub.received.map((r) => Number(r.packet.payload.toString()));
      assert.equal(new Set(seqs).size, total, 'every message delivered');
      for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i]! > seqs[i - 1]!, 'in order [MQTT-4.6.0-6]');
      sub.autoAck = false;
      const blocksBefore = tb.broker.stats.publisherBlocks;
      for (let i = total; i < 2 * total; i++) pub.publish('stuck/x', Buffer.from(String(i)), 1);
      await until(() => tb.broker.stats.publisherBlocks > blocksBefore, 5000);
      assert.ok(tb.broker.stats.publisherBlocks > blocksBefore, 'held again after it made progress');
      pub.disconnect();
      sub.disconnect();
    } finally {
      await tb.close();
    }
  });

  it('publishers to each other cannot deadlock: two clients that publish to each other and are both slow still finish', async () => {
    const tb = await startBroker({ limits: { maxInflight: 20 } });
    try {
      const a = new Peer();
      const b = new Peer();
      await a.connect(tb.port, { clientId: 'a', clean: true });
      await b.connect(tb.port, { clientId: 'b', clean: true });
      await a.subscribe('to/a', 1);
      await b.subscribe('to/b', 1);
      let aAcked = 0;
      let bAcked = 0;
      a.onCompleted = () => aAcked++;
      b.onCompleted = () => bAcked++;
      for (let i = 0; i < 5000; i++) {
        a.publish('to/b', Buffer.from(String(i)), 1);
        b.publish('to/a', Buffer.from(String(i)), 1);
      }
      await until(() => aAcked === 5000 && bAcked === 5000 && a.received.length >= 5000 && b.received.length >= 5000, 30_000);
      assert.equal(aAcked, 5000);
      assert.equal(bAcked, 5000);
      assert.equal(new Set(a.received.map((r) => r.packet.payload.toString())).size, 5000);
      assert.equal(new Set(b.received.map((r) => r.packet.payload.toString())).size, 5000);
      a.disconnect();
      b.disconnect();
    } finally {
      await tb.close();
    }
  });
});
