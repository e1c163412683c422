// Memory bounded in bytes on paths a client controls, and the global memory
// watermark (limits.memoryLimit):
// - above the watermark a new CONNECT is refused with CONNACK 0x89 Server busy
//   (3.1.1: return code 3), a connection whose session holds nothing in memory
//   is not read, a client with messages in flight still is (its PUBACKs free
//   memory), and below the low watermark everything resumes;
// - packets waiting behind a slow asynchronous hook pause the socket by bytes,
//   not only by count;
// - acknowledgements waiting for a slow commit pause the socket by bytes.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { Logger } from '../../src/index.js';
import { encodePacket } from '../../src/protocol/encoder.js';
import { MemoryStore } from '../../src/store/index.js';
import { startBroker } from '../helpers/broker.js';
import { Peer } from '../helpers/peer.js';
import { gc } from '../helpers/gc.js';
import { sleep, until, waitFor } from '../helpers/wait.js';

const MiB = 1024 * 1024;

function captureLogger(): Logger & { warns: string[] } {
  const warns: string[] = [];
  return { warns, debugEnabled: false, error() {}, warn: (m: string) => void warns.push(m), info() {}, debug() {} };
}

describe('limits.memoryLimit: global backpressure above the watermark', { timeout: 60_000 }, () => {
  it('refuses a new CONNECT with 0x89 (3.1.1: 3) while above it, keeps reading a client with messages in flight, pauses an idle publisher, and resumes below 90%', async () => {
    gc();
    const logger = captureLogger();
    const limit = process.memoryUsage.rss() + 96 * MiB;
    const tb = await startBroker({ limits: { memoryLimit: limit }, logger });
    let ballast: Buffer | null = null;
    try {
      const sub = new Peer();
      sub.autoAck = false;
      await sub.connect(tb.port, { clientId: 'mw-sub', clean: true, version: 5 });
      await sub.subscribe('mw/#', 1);
      const pub = new Peer();
      await pub.connect(tb.port, { clientId: 'mw-pub', clean: true, version: 5 });
      for (let i = 0; i < 2; i++) pub.publish('mw/t', Buffer.from(`m${i}`), 1);
      await waitFor(() => sub.received.length === 2 && pub.inflight === 0, 5000, 'two messages in flight to the subscriber');
      assert.equal(tb.broker.session('mw-sub')!.inflight, 2);

      // Above the watermark: memory the process holds (here a ballast the test touches page by page).
      ballast = Buffer.alloc(160 * MiB, 1);
      await waitFor(() => tb.broker.stats.memoryEpisodes === 1, 5000, 'the memory episode');
      const v5 = new Peer();
      const c5 = await v5.connect(tb.port, { clientId: 'mw-new5', clean: true, version: 5 });
      assert.equal(c5.reasonCode, 0x89, 'v5 CONNECT refused with Server busy');
      const v4 = new Peer();
      const c4 = await v4.connect(tb.port, { clientId: 'mw-new4', clean: true, version: 4 });
      assert.equal(c4.reasonCode, 3, '3.1.1 CONNECT refused with return code 3 (Server unavailable)');
      assert.equal(tb.broker.stats.connectsRefusedMemory, 2);

      // The publisher (nothing of its session in memory) is not read: its PUBLISH waits in the socket.
      await waitFor(() => tb.broker.stats.readsPausedMemory >= 1, 5000, 'an idle connection paused');
      const pausedAt = tb.broker.stats.messagesIn;
      pub.publish('mw/t', Buffer.from('m2'), 1);
      await sleep(600);
      assert.equal(tb.broker.stats.messagesIn, pausedAt, 'the paused publisher was not read');
      assert.equal(pub.inflight, 1, 'no PUBACK while paused');
      // The subscriber with messages in flight is read: its acknowledgements free memory.
      for (const r of sub.received) sub.ack(r.packet);
      await waitFor(() => tb.broker.session('mw-sub')!.inflight === 0, 3000, 'the PUBACKs of the subscriber read while memory is high');

      // Memory freed: below the low watermark everything resumes.
      ballast = null;
      gc();
      await waitFor(() => pub.inflight === 0, 5000, 'the publisher read again and acknowledged');
      await waitFor(() => sub.received.length === 3, 5000, 'the third message delivered');
      const again = new Peer();
      const ca = await again.connect(tb.port, { clientId: 'mw-new5', clean: true, version: 5 });
      assert.equal(ca.reasonCode, 0, 'a new CONNECT is accepted below the watermark');
      assert.equal(logger.warns.filter((m) => m.includes('memory above the watermark')).length, 1, 'one warning per episode');
      for (const p of [sub, pub, again]) p.disconnect();
    } finally {
      ballast = null;
      await tb.close();
    }
  });

  it('is off with memoryLimit 0', async () => {
    const tb = await startBroker({ limits: { memoryLimit: 1024 * 1024 } });
    const off = await startBroker({ limits: { memoryLimit: 0 } });
    try {
      // 1 MiB is far below any process's RSS: refused at once (after the first sample).
      await waitFor(() => tb.broker.stats.memoryEpisodes === 1, 3000, 'the episode');
      const p = new Peer();
      assert.equal((await p.connect(tb.port, { clientId: 'x', clean: true, version: 5 })).reasonCode, 0x89);
      await sleep(300);
      const q = new Peer();
      assert.equal((await q.connect(off.port, { clientId: 'x', clean: true, version: 5 })).reasonCode, 0);
      assert.equal(off.broker.stats.memoryEpisodes, 0);
      q.disconnect();
    } finally {
      await tb.close();
      await off.close();
    }
  });
});

describe('byte bounds on what a client sends', { timeout: 60_000 }, () => {
  it('PUBLISHes waiting behind a slow authorizePublish pause the socket at 1 MiB, not at 1000 packets', async () => {
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const tb = await startBroker({ hooks: { authorizePublish: () => gate.then(() => true as const) } });
    try {
      const pub = new Peer();
      await pub.connect(tb.port, { clientId: 'bl-pub', clean: true, version: 4 });
      const before = tb.broker.stats.bytesIn;
      const payload = Buffer.alloc(64 * 1024, 0x61);
      for (let i = 0; i < 100; i++) pub.publish('bl/t', payload, 1); // 6.4 MiB, 100 packets
      await sleep(800);
      const read = tb.broker.stats.bytesIn - before;
      assert.ok(read < 3 * MiB, `read ${(read / MiB).toFixed(1)} MiB of 6.4 MiB while the hook was pending`);
      open();
      await waitFor(() => pub.inflight === 0, 10_000, 'all 100 acknowledged after the hook');
      pub.disconnect();
    } finally {
      await tb.close();
    }
  });

  it('a client that sends without reading is not read once its output waiting in the broker passes 2 x maxWriteBuffer + maxPacketSize (PINGREQs)', async () => {
    const tb = await startBroker({ limits: { maxWriteBuffer: 64 * 1024, maxPacketSize: 64 * 1024 } });
    const sock = net.connect(tb.port, '127.0.0.1');
    try {
      await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
      let received = 0;
      sock.on('data', (d: Buffer) => (received += d.length));
      sock.write(encodePacket({ type: 1, protocolName: 'MQTT', protocolVersion: 4, clean: true, keepAlive: 0, clientId: 'wb-c' }, 4));
      await waitFor(() => received === 4, 5000, 'CONNACK');
      sock.pause();
      const N = 6_000_000;
      const pings = Buffer.alloc(2 * N);
      for (let i = 0; i < N; i++) pings[2 * i] = 0xc0;
      const before = tb.broker.stats.bytesIn;
      sock.write(pings);
      let last = -1;
      // Until reading stops (or everything was read).
      for (let i = 0; i < 100 && tb.broker.stats.bytesIn - before !== last; i++) {
        last = tb.broker.stats.bytesIn - before;
        await sleep(300);
      }
      const read = tb.broker.stats.bytesIn - before;
      assert.ok(read < pings.length, `read all ${(read / MiB).toFixed(1)} MiB of PINGREQs from a client that reads nothing`);
      // It reads again: everything is answered.
      sock.resume();
      await waitFor(() => received === 4 + 2 * N, 30_000, 'every PINGRESP');
    } finally {
      sock.destroy();
      await tb.close();
    }
  });

  it('outbound topic aliases keep at most 256 Ki characters of topics per connection (Topic Alias Maximum 65535, 40 topics of 16 Ki)', async () => {
    const tb = await startBroker();
    try {
      const c = new Peer();
      await c.connect(tb.port, { clientId: 'al-c', clean: true, version: 5, topicAliasMaximum: 65535 });
      await c.subscribe('al/#', 0);
      const topics = Array.from({ length: 40 }, (_, i) => `al/${String(i).padStart(2, '0')}/${'x'.repeat(16 * 1024 - 7)}`);
      for (const t of topics) await tb.broker.publish(t, 'p');
      for (const t of topics) await tb.broker.publish(t, 'again');
      await waitFor(() => c.received.length === 80, 5000, '80 messages');
      const first = c.received.slice(0, 40).map((r) => r.packet);
      const aliased = first.filter((p) => p.properties?.topicAlias !== undefined);
      assert.equal(aliased.length, 16, '16 x 16 Ki characters fit in 256 Ki');
      assert.ok(first.every((p, i) => p.topic === topics[i]), 'every first message names its topic');
      const again = c.received.slice(40).map((r) => r.packet);
      assert.equal(again.filter((p) => p.topic === '').length, 16, 'the aliased topics go by alias alone');
      assert.ok(again.slice(16).every((p, i) => p.topic === topics[16 + i] && p.properties?.topicAlias === undefined), 'the others in full, without an alias');
      c.disconnect();
    } finally {
      await tb.close();
    }
  });

  it('acknowledgements waiting for a slow commit pause the socket at 1 MiB (200,000 PUBRELs for unknown ids)', async () => {
    const store = new HeldStore();
    const tb = await startBroker({ store });
    try {
      const c = new Peer();
      await c.connect(tb.port, { clientId: 'ha-c', clean: true, version: 5, sessionExpiry: 3600 });
      store.holding = true;
      void c.subscribe('ha/#', 1).catch(() => {}); // a store write: the commit starts and is held
      await until(() => store.pending > 0, 5000);
      assert.ok(store.pending > 0, 'commit held');
      const before = tb.broker.stats.bytesIn;
      const N = 200_000;
      const buf = Buffer.alloc(4 * N);
      for (let i = 0; i < N; i++) {
        buf[4 * i] = 0x62;
        buf[4 * i + 1] = 2;
        buf.writeUInt16BE((i % 65535) + 1, 4 * i + 2);
      }
      c.sendRaw(buf);
      await sleep(800);
      const read = tb.broker.stats.bytesIn - before;
      assert.ok(read < 400 * 1024, `read ${(read / 1024).toFixed(0)} KiB of ${(buf.length / 1024).toFixed(0)} KiB while the commit was held`);
      store.release();
      await waitFor(() => c.packets.filter((p) => p.type === 7).length === N, 20_000, 'every PUBCOMP after the commit');
      c.disconnect();
    } finally {
      store.release();
      await tb.close();
    }
  });
});

describe('in-process subscription buffer bounded in bytes', { timeout: 30_000 }, () => {
  it('holds at most highWaterMarkBytes (default 16 MiB) of 1 MiB messages, drops and counts the rest, and one message always fits', async () => {
    const tb = await startBroker({ limits: { maxPacketSize: 2 * MiB } });
    try {
      const sub = tb.broker.subscribe('lb/#');
      const big = Buffer.alloc(MiB, 0x63);
      for (let i = 0; i < 40; i++) await tb.broker.publish('lb/x', big, { qos: 1 });
      assert.equal(sub.size, 15, '15 x (1 MiB + 160) fit in 16 MiB');
      assert.equal(sub.dropped, 25);
      assert.equal(tb.broker.stats.localDropped, 25);
      for (let i = 0; i < 15; i++) await sub.next();
      assert.equal(sub.size, 0);
      await tb.broker.publish('lb/x', big, { qos: 1 });
      assert.equal(sub.size, 1, 'room again once read');
      sub.close();
      const tiny = tb.broker.subscribe('lb/#', { highWaterMarkBytes: 1 });
      await tb.broker.publish('lb/x', big, { qos: 1 });
      await tb.broker.publish('lb/x', big, { qos: 1 });
      assert.equal(tiny.size, 1, 'one message always fits');
      assert.equal(tiny.dropped, 1);
      tiny.close();
    } finally {
      await tb.close();
    }
  });
});

/** A memory store that claims durability and commits only when released (or at once, while not holding). */
class HeldStore extends MemoryStore {
  override readonly durable = true;
  holding = false;
  private readonly waiting: (() => void)[] = [];
  override async commit(): Promise<void> {
    await super.commit();
    if (this.holding) await new Promise<void>((resolve) => this.waiting.push(resolve));
  }
  get pending(): number {
    return this.waiting.length;
  }
  release(): void {
    this.holding = false;
    for (const r of this.waiting.splice(0)) r();
  }
}
