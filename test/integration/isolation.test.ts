// Subscriber isolation: no subscriber, however slow, stuck or backlogged,
// delays another client's acknowledgements or deliveries. A session that falls
// behind waits in its own queue and, past its own limits, loses messages
// itself, counted (ARCHITECTURE.md, "Isolation").

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker } from '../helpers/broker.js';
import { Peer } from '../helpers/peer.js';
import { until } from '../helpers/wait.js';

/** Publish `total` QoS 1 messages with a window; resolves when every PUBACK arrived. */
function publishAll(pub: Peer, topic: string, total: number, window = 200, pad = 0): { acked: () => number; done: Promise<void> } {
  const padding = Buffer.alloc(pad, 0x2e);
  let next = 0;
  let acked = 0;
  let resolve!: () => void;
  const done = new Promise<void>((r) => (resolve = r));
  const pump = (): void => {
    while (next < total && pub.inflight < window) pub.publish(topic, Buffer.concat([Buffer.from(String(next++)), padding]), 1);
  };
  pub.onCompleted = () => {
    acked++;
    if (acked === total) resolve();
    pump();
  };
  pump();
  return { acked: () => acked, done };
}

/** Acknowledge what `p` received, one message every `ms`; returns how many so far, and a stop. */
function ackSlowly(p: Peer, ms: number): { acks: () => number; stop: () => void } {
  let acks = 0;
  const ticker = setInterval(() => {
    const r = p.received[acks];
    if (r !== undefined) {
      p.ack(r.packet);
      acks++;
    }
  }, ms);
  return { acks: () => acks, stop: () => clearInterval(ticker) };
}

function distinctInOrder(p: Peer): number[] {
  const seqs = p.received.map((r) => parseInt(r.packet.payload.toString(), 10));
  for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i]! > seqs[i - 1]!, `in order [MQTT-4.6.0-6]: ${seqs[i - 1]} then ${seqs[i]}`);
  return seqs;
}

describe('subscriber isolation', () => {
  it('a subscriber that reads but acknowledges slowly holds back neither the publisher nor a healthy subscriber of the same topic', async () => {
    // Default limits: 6000 messages of 1 KiB are more than the slow session's own heap budget (4 MiB).
    const tb = await startBroker({ limits: { maxInflight: 100 } });
    try {
      const healthy = new Peer();
      await healthy.connect(tb.port, { clientId: 'healthy', clean: true });
      await healthy.subscribe('iso/#', 1);
      const slow = new Peer();
      slow.autoAck = false;
      await slow.connect(tb.port, { clientId: 'slow', clean: true });
      await slow.subscribe('iso/#', 1);
      // The slow one acknowledges one message every 50 ms: it makes progress, so nothing can call it stuck.
      const slowAcker = ackSlowly(slow, 50);
      try {
        const pub = new Peer();
        await pub.connect(tb.port, { clientId: 'pub', clean: true });
        const total = 6000;
        const run = publishAll(pub, 'iso/x', total, 200, 1024);
        await Promise.race([run.done, until(() => false, 60_000).then(() => assert.fail(`publisher acked ${run.acked()} of ${total}`))]);
        // Every PUBACK arrived while the slow subscriber had acknowledged only a handful.
        const slowAcks = slowAcker.acks();
        assert.ok(slowAcks < 1000, `the publisher finished while the slow subscriber had acknowledged ${slowAcks}`);
        await until(() => healthy.received.length >= total, 30_000);
        const seqs = distinctInOrder(healthy);
        assert.equal(new Set(seqs).size, total, 'the healthy subscriber got every message');
        // The slow one holds its window and its own bounded queue; the rest was dropped for it alone, counted.
        const stats = tb.broker.stats;
        assert.ok(stats.droppedQueueFull > 0, 'the slow session lost messages past its own limit');
        const acksNow = slowAcker.acks();
        assert.ok(slow.received.length <= 100 + acksNow, `only its window was sent to the slow subscriber (${slow.received.length}, ${acksNow} acknowledged)`);
        pub.disconnect();
      } finally {
        slowAcker.stop();
      }
      healthy.disconnect();
      slow.disconnect();
    } finally {
      await tb.close();
    }
  });

  it('a subscriber that stops reading its socket holds back no publisher, and its memory stays within maxSessionHeapBytes', async () => {
    const heap = 256 * 1024;
    const tb = await startBroker({ limits: { maxInflight: 1000, maxSessionHeapBytes: heap, maxWriteBuffer: 64 * 1024 } });
    try {
      const stuck = new Peer();
      stuck.autoAck = false;
      await stuck.connect(tb.port, { clientId: 'stuck', clean: true });
      await stuck.subscribe('big/#', 1);
      stuck.pauseReading();
      const pub = new Peer();
      await pub.connect(tb.port, { clientId: 'pub', clean: true });
      const total = 3000;
      let next = 0;
      let acked = 0;
      const payload = Buffer.alloc(4096, 7);
      const pump = (): void => {
        while (next < total && pub.inflight < 100) pub.publish('big/x', Buffer.concat([Buffer.from(`${next++}:`), payload]), 1);
      };
      pub.onCompleted = () => {
        acked++;
        pump();
      };
      pump();
      await until(() => acked === total, 60_000);
      assert.equal(acked, total, 'every publish acknowledged although the subscriber reads nothing');
      const session = tb.broker.session('stuck')!;
      assert.ok(session.heapBytes <= heap + 4200 + 200, `heap bytes ${session.heapBytes} within the budget`);
      assert.ok(tb.broker.stats.droppedQueueFull > 0, 'beyond its budget the stuck session loses messages, counted');
      pub.disconnect();
      stuck.destroy();
    } finally {
      await tb.close();
    }
  });

  it('a persistent subscriber catching up on a large offline backlog holds back no publisher of any topic', async () => {
    const tb = await startBroker({ limits: { maxInflight: 50 } });
    try {
      const sub = new Peer();
      await sub.connect(tb.port, { clientId: 'backlog', clean: false });
      await sub.subscribe('backlog/#', 1);
      sub.disconnect();
      await until(() => tb.broker.session('backlog')?.online === false, 5000);
      const pub = new Peer();
      await pub.connect(tb.port, { clientId: 'pub', clean: true });
      await publishAll(pub, 'backlog/x', 5000).done;
      // It comes back and acknowledges slowly.
      const back = new Peer();
      back.autoAck = false;
      await back.connect(tb.port, { clientId: 'backlog', clean: false });
      const acker = ackSlowly(back, 20);
      try {
        const other = new Peer();
        await other.connect(tb.port, { clientId: 'other', clean: true });
        await other.subscribe('backlog/#', 1);
        const run = publishAll(pub, 'backlog/y', 3000);
        await run.done;
        assert.ok(acker.acks() < 2000, `publisher done while the backlog was being worked off (${acker.acks()} acknowledged)`);
        await until(() => other.received.length >= 3000, 30_000);
        assert.equal(new Set(distinctInOrder(other)).size, 3000);
        assert.equal(tb.broker.stats.droppedQueueFull, 0, 'the persistent queue had room for all of it');
        other.disconnect();
      } finally {
        acker.stop();
      }
      pub.disconnect();
      back.disconnect();
    } finally {
      await tb.close();
    }
  });

  it('two clients that publish to each other and acknowledge only after their own publish completed do not deadlock', async () => {
    // With publisher hold, each one's PUBACK waited for the other's progress: a cycle. Nothing here breaks a
    // cycle by a timer, so a deadlock would leave this test waiting until it fails.
    const tb = await startBroker({ limits: { maxInflight: 20 } });
    try {
      const a = new Peer();
      const b = new Peer();
      a.autoAck = false;
      b.autoAck = false;
      await a.connect(tb.port, { clientId: 'a', clean: true });
      await b.connect(tb.port, { clientId: 'b', clean: true });
      await a.subscribe('to/a', 1);
      await b.subscribe('to/b', 1);
      const total = 3000;
      // Each answers every message it gets with a publish of its own, and acknowledges the message only once
      // its answer is acknowledged (a request/response service or a bridge).
      const wire = (me: Peer, to: string): { sent: () => number } => {
        let sent = 0;
        const waiting = new Map<number, () => void>();
        me.onCompleted = (pid) => {
          waiting.get(pid)?.();
          waiting.delete(pid);
        };
        me.onMessage = (r) => {
          if (sent >= total) return me.ack(r.packet);
          const pid = me.publish(to, Buffer.from(String(sent++)), 1);
          waiting.set(pid, () => me.ack(r.packet));
        };
        return { sent: () => sent };
      };
      const sa = wire(a, 'to/b');
      const sb = wire(b, 'to/a');
      for (let i = 0; i < 20; i++) a.publish('to/b', Buffer.from(`seed${i}`), 1);
      await until(() => sa.sent() >= total && sb.sent() >= total, 60_000);
      assert.ok(sa.sent() >= total && sb.sent() >= total, `both finished (${sa.sent()}, ${sb.sent()})`);
      assert.equal(tb.broker.stats.droppedQueueFull, 0);
      a.disconnect();
      b.disconnect();
    } finally {
      await tb.close();
    }
  });
});
