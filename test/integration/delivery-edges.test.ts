// The edges of the delivery promise: retained messages and QoS 0 bursts are not
// dropped for a client that reads, a resume with Session Expiry 0 loses nothing
// acknowledged, and expired messages free the queue they sit in.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBroker } from '../helpers/broker.js';
import { Peer } from '../helpers/peer.js';
import { run } from '../helpers/processes.js';
import { until } from '../helpers/wait.js';

describe('delivery edges', () => {
  it('100,000 retained messages all reach mosquitto_sub at QoS 0 (retained delivery waits for the socket instead of dropping)', async () => {
    const tb = await startBroker();
    try {
      const total = 100_000;
      for (let i = 0; i < total; i++) await tb.broker.publish(`x/${i}`, `v${i}`, { retain: true });
      assert.equal(tb.broker.retainedCount, total);
      const r = await run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(tb.port), '-t', 'x/#', '-q', '0', '-C', String(total), '-W', '120'], 130_000);
      const lines = r.stdout.split('\n').filter((l) => l !== '');
      assert.equal(lines.length, total, `received ${lines.length} of ${total} (${r.describe})`);
      assert.equal(new Set(lines).size, total);
      assert.equal(tb.broker.stats.droppedQos0, 0);
    } finally {
      await tb.close();
    }
  });

  it('a client that repeats SUBSCRIBE # without reading is owed one walk of the retained messages, not one list per SUBSCRIBE', async () => {
    const tb = await startBroker();
    try {
      const total = 20_000;
      for (let i = 0; i < total; i++) await tb.broker.publish(`y/${i}`, `v${i}`, { retain: true });
      const sub = new Peer();
      await sub.connect(tb.port, { clientId: 'resub', clean: true });
      sub.pauseReading();
      for (let i = 0; i < 500; i++) {
        sub.sendPacket({ type: 8, packetId: i + 1, subscriptions: [{ filter: 'y/#', qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 }] });
      }
      await until(() => tb.broker.session('resub')?.retainedOwed === 1 && tb.broker.stats.packetsIn >= 501, 10_000);
      assert.equal(tb.broker.session('resub')!.retainedOwed, 1, 'one cursor for the filter, however often it is subscribed');
      sub.resumeReading();
      await until(() => new Set(sub.received.map((r) => r.packet.topic)).size === total, 60_000);
      assert.equal(new Set(sub.received.map((r) => r.packet.topic)).size, total, 'every retained message arrived once the client read');
      sub.disconnect();
    } finally {
      await tb.close();
    }
  });

  it('a burst of 6 MiB of QoS 0 routed in one event-loop turn reaches a subscriber that reads, none dropped', async () => {
    const tb = await startBroker({ limits: { maxWriteBuffer: 1024 * 1024 } });
    try {
      const sub = new Peer();
      await sub.connect(tb.port, { clientId: 'burst-sub', clean: true });
      await sub.subscribe('burst/#', 0);
      const total = 3000;
      const payload = Buffer.alloc(2048, 0x41);
      // All routed synchronously, in one turn: far more than maxWriteBuffer before the socket had a chance.
      const done: Promise<void>[] = [];
      for (let i = 0; i < total; i++) {
        const p = Buffer.from(payload);
        p.writeUInt32BE(i, 0);
        done.push(tb.broker.publish('burst/x', p, { qos: 0 }));
      }
      await Promise.all(done);
      await until(() => sub.received.length >= total, 30_000);
      assert.equal(new Set(sub.received.map((r) => r.packet.payload.readUInt32BE(0))).size, total, 'every message arrived');
      assert.equal(tb.broker.stats.droppedQos0, 0, 'nothing dropped for lack of a per-turn budget');
      sub.disconnect();
    } finally {
      await tb.close();
    }
  });

  it('a v5 session with an offline backlog resuming with Clean Start 0 and Session Expiry 0 gets every acknowledged message, old and new', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'petrel-resume0-'));
    const tb = await startBroker({ store: { type: 'sqlite', dataDir: dir } });
    try {
      const sub = new Peer();
      await sub.connect(tb.port, { clientId: 'r0', clean: true, version: 5, sessionExpiry: 3600 });
      await sub.subscribe('r0/#', 1);
      sub.disconnect();
      await until(() => tb.broker.session('r0')?.online === false, 5000);
      const pub = new Peer();
      await pub.connect(tb.port, { clientId: 'r0-pub', clean: true });
      let acked = 0;
      pub.onCompleted = () => acked++;
      for (let i = 0; i < 3000; i++) pub.publish('r0/x', Buffer.from(String(i)), 1);
      await until(() => acked === 3000, 20_000);
      // Back with Session Expiry 0: the session continues, and ends with this connection.
      const back = new Peer();
      const connack = await back.connect(tb.port, { clientId: 'r0', clean: false, version: 5, sessionExpiry: 0 });
      assert.equal(connack.sessionPresent, true);
      for (let i = 3000; i < 4000; i++) pub.publish('r0/x', Buffer.from(String(i)), 1);
      await until(() => acked === 4000, 20_000);
      await until(() => new Set(back.received.map((r) => r.packet.payload.toString())).size === 4000, 30_000);
      const got = back.received.map((r) => Number(r.packet.payload.toString()));
      assert.equal(new Set(got).size, 4000, 'all 4000 acknowledged messages delivered');
      for (let i = 1; i < got.length; i++) assert.ok(got[i]! > got[i - 1]!, 'in order');
      assert.equal(tb.broker.stats.droppedQueueFull, 0);
      back.disconnect();
      pub.disconnect();
    } finally {
      await tb.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a full offline queue first gives up its expired messages: fresh ones are queued, not dropped', async () => {
    const tb = await startBroker({ limits: { maxQueuedMessages: 50 } });
    try {
      const sub = new Peer();
      await sub.connect(tb.port, { clientId: 'exp', clean: true, version: 5, sessionExpiry: 3600 });
      await sub.subscribe('exp/#', 1);
      sub.disconnect();
      await until(() => tb.broker.session('exp')?.online === false, 5000);
      for (let i = 0; i < 50; i++) await tb.broker.publish('exp/old', `old${i}`, { qos: 1, properties: { messageExpiryInterval: 1 } });
      assert.equal(tb.broker.session('exp')!.queuedMessages, 50);
      await new Promise((r) => setTimeout(r, 1300));
      for (let i = 0; i < 50; i++) await tb.broker.publish('exp/new', `new${i}`, { qos: 1 });
      await until(() => tb.broker.stats.expired >= 50, 5000);
      assert.equal(tb.broker.stats.droppedQueueFull, 0, 'no fresh message refused while expired ones held the room');
      assert.equal(tb.broker.stats.expired, 50);
      const back = new Peer();
      await back.connect(tb.port, { clientId: 'exp', clean: false, version: 5, sessionExpiry: 3600 });
      await until(() => back.received.length >= 50, 10_000);
      assert.deepEqual(back.received.map((r) => r.packet.payload.toString()), Array.from({ length: 50 }, (_, i) => `new${i}`));
      back.disconnect();
    } finally {
      await tb.close();
    }
  });

  it('expired messages leave offline queues and the retained store by the periodic sweep, counted', async () => {
    const tb = await startBroker();
    try {
      const sub = new Peer();
      await sub.connect(tb.port, { clientId: 'sweep', clean: true, version: 5, sessionExpiry: 3600 });
      await sub.subscribe('sweep/#', 1);
      sub.disconnect();
      await until(() => tb.broker.session('sweep')?.online === false, 5000);
      for (let i = 0; i < 10; i++) await tb.broker.publish(`sweep/${i}`, 'gone soon', { qos: 1, retain: true, properties: { messageExpiryInterval: 1 } });
      assert.equal(tb.broker.retainedCount, 10);
      assert.equal(tb.broker.session('sweep')!.queuedMessages, 10);
      // The sweep runs every 10 s.
      await until(() => tb.broker.retainedCount === 0 && tb.broker.session('sweep')!.queuedMessages === 0, 25_000);
      assert.equal(tb.broker.retainedCount, 0, 'expired retained messages removed');
      assert.equal(tb.broker.session('sweep')!.queuedMessages, 0, 'expired queue entries removed');
      assert.equal(tb.broker.stats.expired, 20);
    } finally {
      await tb.close();
    }
  });
});
