// Memory stays bounded: messages queued for offline persistent sessions live
// in the store, not in the heap. 1,000,000 queued messages (100,000 published,
// each queued for 10 offline sessions) must leave the broker's RSS under a
// fixed bound, and all of them must still be there.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kill, startPetrel } from './petrel-process.js';
import { Peer } from '../helpers/peer.js';

/** RSS of the whole broker process with 1,000,000 messages queued. */
const RSS_BOUND_MB = 200;
const SESSIONS = 10;
const MESSAGES = 100_000;

const dir = mkdtempSync(join(tmpdir(), 'petrel-mem-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('bounded memory with a large offline backlog', () => {
  it(`1,000,000 messages queued for offline sessions keep the broker under ${RSS_BOUND_MB} MB RSS, and are all delivered`, async () => {
    const broker = await startPetrel(['--data-dir', dir]);
    try {
      for (let i = 0; i < SESSIONS; i++) {
        const s = new Peer();
        await s.connect(broker.port, { clientId: `off${i}`, clean: false });
        await s.subscribe('m/#', 1);
        s.disconnect();
        await s.closed;
      }
      const rssBefore = broker.rssKb();
      const pub = new Peer();
      await pub.connect(broker.port, { clientId: 'mpub', clean: true });
      const payload = Buffer.alloc(64, 0x61);
      let next = 0;
      let done = 0;
      let peak = 0;
      const t0 = Date.now();
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`only ${done} of ${MESSAGES} acknowledged in time`)), 240_000);
        const pump = (): void => {
          while (next < MESSAGES && pub.inflight < 500) {
            payload.writeUInt32BE(next++, 0);
            pub.publish(`m/${next % 100}`, payload, 1);
          }
          if (done === MESSAGES) {
            clearTimeout(timer);
            resolve();
          }
        };
        pub.onCompleted = () => {
          done++;
          if (done % 10_000 === 0) peak = Math.max(peak, broker.rssKb());
          pump();
        };
        pump();
      });
      const seconds = (Date.now() - t0) / 1000;
      const rssAfter = broker.rssKb();
      peak = Math.max(peak, rssAfter);
      console.log(
        `  ${MESSAGES * SESSIONS} queued in ${seconds.toFixed(1)} s; RSS before ${(rssBefore / 1024).toFixed(0)} MB, ` +
          `peak ${(peak / 1024).toFixed(0)} MB, after ${(rssAfter / 1024).toFixed(0)} MB (bound ${RSS_BOUND_MB} MB)`,
      );
      assert.ok(peak / 1024 < RSS_BOUND_MB, `peak RSS ${(peak / 1024).toFixed(0)} MB`);
      pub.disconnect();

      // Still all there: one session reads its whole backlog, in order.
      const s0 = new Peer();
      let count = 0;
      let last = -1;
      let inOrder = true;
      s0.onMessage = (r) => {
        const n = r.packet.payload.readUInt32BE(0);
        if (n !== last + 1) inOrder = false;
        last = n;
        count++;
      };
      const c = await s0.connect(broker.port, { clientId: 'off0', clean: false });
      assert.equal(c.sessionPresent, true);
      const end = Date.now() + 120_000;
      while (count < MESSAGES && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      const readRss = broker.rssKb();
      console.log(`  session off0 read its ${count} messages; RSS ${(readRss / 1024).toFixed(0)} MB`);
      assert.equal(count, MESSAGES);
      assert.ok(inOrder, 'backlog delivered in order');
      assert.ok(readRss / 1024 < RSS_BOUND_MB, `RSS while reading back ${(readRss / 1024).toFixed(0)} MB`);
      s0.disconnect();
    } finally {
      assert.deepEqual(await kill(broker, 'SIGTERM'), { code: 0, signal: null });
    }
  });
});
