// Memory bounded in bytes with large payloads, measured on the real `petrel`
// process (SQLite store), RSS sampled from /proc:
// (i)  16 persistent sessions, each with a backlog of 64 MiB (128 distinct
//      512 KiB payloads), reconnect and do not read. The broker holds at most
//      maxSessionHeapBytes (4 MiB) of each session's queue in memory, with one
//      payload buffer per stored message shared by every session that refills
//      it, plus what sits in each socket's write buffer (maxWriteBuffer and one
//      message). On 33213f8 this took the broker to about 1.1 GB.
// (ii) 8 clean-session subscribers stop reading while 200 MiB of 1 MiB QoS 1
//      messages go through; a healthy subscriber gets every one and the
//      publisher every PUBACK, and the broker stays within the stopped ones'
//      heap budgets plus their write buffers.
// Bound: RSS before the load ((i): after publishing the backlog, where the
// store's batches leave the allocator's high-water mark) + the payload bytes
// the limits let the broker hold + SLACK_MB ((ii): + STORE_MB).

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kill, startPetrel, type PetrelProcess } from './petrel-process.js';
import { Peer } from '../helpers/peer.js';
import { sleep, waitFor } from '../helpers/wait.js';

const MiB = 1024 * 1024;
/** Allocator and buffer slack beside the payload bytes the limits allow, MB. */
const SLACK_MB = 64;
const HEAP_MB = 4; // limits.maxSessionHeapBytes (default)
const WRITE_BUFFER_MB = 1; // limits.maxWriteBuffer (default)
/**
 * The SQLite store's share while 200 MiB of payload is written through it: each commit's batch is copied once
 * into a buffer transferred to its worker thread, and the worker's heap and page cache (16 MiB).
 */
const STORE_MB = 64;

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'petrel-bigmem-'));
  dirs.push(d);
  return d;
}

/** Publish n QoS 1 messages from a generator with at most `window` in flight; resolves when all are acknowledged. */
function publishAll(pub: Peer, n: number, window: number, make: (i: number) => [string, Buffer], ms: number): Promise<void> {
  let next = 0;
  let done = 0;
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${done} of ${n} acknowledged in time`)), ms);
    const pump = (): void => {
      while (next < n && pub.inflight < window) {
        const [t, p] = make(next++);
        pub.publish(t, p, 1);
      }
      if (done === n) {
        clearTimeout(timer);
        resolve();
      }
    };
    pub.onCompleted = () => {
      done++;
      pump();
    };
    pump();
  });
}

/** Peak RSS of the broker over ms, sampled every 50 ms. */
async function peakRssMb(broker: PetrelProcess, ms: number): Promise<number> {
  let peak = 0;
  const end = Date.now() + ms;
  while (Date.now() < end) {
    peak = Math.max(peak, broker.rssKb() / 1024);
    await sleep(50);
  }
  return peak;
}

describe('bounded memory with large payloads (petrel process, SQLite)', { timeout: 180_000 }, () => {
  it('16 persistent sessions with 64 MiB backlogs of 512 KiB payloads reconnect and do not read: RSS stays under its level after publishing + 16 x 4 MiB + 16 x 1.5 MiB + 64 MB', async () => {
    const SESSIONS = 16;
    const MESSAGES = 128;
    const SIZE = 512 * 1024;
    const broker = await startPetrel(['--data-dir', tempDir()]);
    const peers: Peer[] = [];
    try {
      for (let i = 0; i < SESSIONS; i++) {
        const s = new Peer();
        await s.connect(broker.port, { clientId: `big${i}`, clean: false });
        await s.subscribe('big/#', 1);
        s.disconnect();
        await s.closed;
      }
      const pub = new Peer();
      await pub.connect(broker.port, { clientId: 'bigpub', clean: true });
      const base = broker.rssKb() / 1024;
      await publishAll(pub, MESSAGES, 8, (i) => {
        const p = Buffer.alloc(SIZE, i & 0xff);
        p.writeUInt32BE(i, 0);
        return ['big/t', p];
      }, 60_000);
      pub.disconnect();
      const afterPublish = broker.rssKb() / 1024;

      // Reconnect all, read the CONNACK, then stop reading.
      for (let i = 0; i < SESSIONS; i++) {
        const s = new Peer();
        s.autoAck = false;
        const c = await s.connect(broker.port, { clientId: `big${i}`, clean: false });
        assert.equal(c.sessionPresent, true);
        s.pauseReading();
        peers.push(s);
      }
      const peak = await peakRssMb(broker, 3000);
      const held = SESSIONS * (HEAP_MB + WRITE_BUFFER_MB + SIZE / MiB);
      // From the RSS after publishing: the store's batches (payloads copied once for its worker thread) leave
      // the allocator's high-water mark there; what the reconnections add is what the broker holds for them.
      const bound = Math.max(base, afterPublish) + held + SLACK_MB;
      console.log(
        `  ${SESSIONS} x ${(MESSAGES * SIZE) / MiB} MiB backlogs; RSS before ${base.toFixed(0)} MB, after publishing ` +
          `${afterPublish.toFixed(0)} MB, peak with all reconnected and not reading ${peak.toFixed(0)} MB (bound ${bound.toFixed(0)} MB)`,
      );
      assert.ok(peak < bound, `peak RSS ${peak.toFixed(0)} MB >= ${bound.toFixed(0)} MB`);

      // Nothing was lost: two of them read their whole backlog, in order.
      for (const s of peers.slice(0, 2)) {
        s.onMessage = (r) => s.ack(r.packet);
        for (const r of s.received) s.ack(r.packet);
        s.resumeReading();
      }
      await waitFor(() => peers.slice(0, 2).every((s) => s.received.length >= MESSAGES), 60_000, 'two backlogs read');
      for (const s of peers.slice(0, 2)) {
        const seq = s.received.map((r) => r.packet.payload.readUInt32BE(0));
        assert.deepEqual(seq.slice(0, MESSAGES), [...Array(MESSAGES).keys()], 'the backlog in order');
        assert.ok(s.received.every((r) => r.packet.payload.length === SIZE));
      }
    } finally {
      for (const s of peers) s.destroy();
      assert.deepEqual(await kill(broker, 'SIGTERM'), { code: 0, signal: null });
    }
  });

  it('8 clean-session subscribers stop reading while 200 MiB of 1 MiB QoS 1 messages pass: every PUBACK, all to a healthy persistent subscriber, RSS under baseline + 9 x (4 + 2) MiB + 8 MiB + 64 MB for the store + 64 MB', async () => {
    const STOPPED = 8;
    const MESSAGES = 200;
    const SIZE = MiB;
    const broker = await startPetrel(['--data-dir', tempDir(), '--max-packet-size', String(2 * MiB)]);
    const stopped: Peer[] = [];
    try {
      for (let i = 0; i < STOPPED; i++) {
        const s = new Peer();
        s.autoAck = false;
        await s.connect(broker.port, { clientId: `stop${i}`, clean: true });
        await s.subscribe('huge/#', 1);
        s.pauseReading();
        stopped.push(s);
      }
      const healthy = new Peer();
      // Persistent, so that its queue may go to the store when the publisher runs ahead of it (a clean session
      // would lose what exceeds its 4 MiB heap budget, by design).
      await healthy.connect(broker.port, { clientId: 'healthy', clean: false });
      await healthy.subscribe('huge/#', 1);
      let got = 0;
      let inOrder = true;
      healthy.onMessage = (r) => {
        if (r.packet.payload.readUInt32BE(0) !== got) inOrder = false;
        got++;
        r.packet.payload = Buffer.alloc(0); // the test keeps no payloads
      };
      const pub = new Peer();
      await pub.connect(broker.port, { clientId: 'hugepub', clean: true });
      const base = broker.rssKb() / 1024;
      let peak = base;
      const sampler = setInterval(() => (peak = Math.max(peak, broker.rssKb() / 1024)), 50);
      const payload = Buffer.alloc(SIZE, 0x62);
      try {
        await publishAll(pub, MESSAGES, 4, (i) => {
          const p = Buffer.from(payload);
          p.writeUInt32BE(i, 0);
          return ['huge/t', p];
        }, 90_000);
        await waitFor(() => got === MESSAGES, 30_000, 'the healthy subscriber gets all').catch((err: Error) => {
          throw new Error(`${err.message}: got ${got} of ${MESSAGES}`);
        });
        peak = Math.max(peak, await peakRssMb(broker, 500));
      } finally {
        clearInterval(sampler);
      }
      assert.ok(inOrder, 'in order');
      // Each subscriber (the stopped ones and the healthy one): its heap budget and its write buffer with one
      // message; the publisher: its 4 messages in flight, read and copied; the store: STORE_MB.
      const bound = base + (STOPPED + 1) * (HEAP_MB + WRITE_BUFFER_MB + SIZE / MiB) + 4 * 2 * (SIZE / MiB) + STORE_MB + SLACK_MB;
      console.log(`  ${MESSAGES} x 1 MiB past ${STOPPED} stopped subscribers; RSS before ${base.toFixed(0)} MB, peak ${peak.toFixed(0)} MB (bound ${bound.toFixed(0)} MB)`);
      assert.ok(peak < bound, `peak RSS ${peak.toFixed(0)} MB >= ${bound.toFixed(0)} MB`);
    } finally {
      for (const s of stopped) s.destroy();
      assert.deepEqual(await kill(broker, 'SIGTERM'), { code: 0, signal: null });
    }
  });
});
