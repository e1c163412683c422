import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryStore } from '../../src/store/memory-store.js';
import { createStore } from '../../src/store/index.js';
import { QueueState } from '../../src/store/types.js';
import { storeContract } from './contract.js';

storeContract('memory', async () => ({ store: new MemoryStore(), cleanup: async () => {} }));

describe('MemoryStore', () => {
  it('is not durable and is created by createStore', () => {
    const s = createStore({ type: 'memory' });
    assert.ok(s instanceof MemoryStore);
    assert.equal(s.kind, 'memory');
    assert.equal(s.durable, false);
  });

  it('handles 1,000,000 entries in one session with head, tail and random dequeues', async () => {
    const store = new MemoryStore();
    await store.open();
    store.putSession({ clientId: 'a', protocolVersion: 5, expiryInterval: 0xffffffff, disconnectedAt: null, will: null });
    const payload = Buffer.alloc(64);
    const N = 1_000_000;
    const t0 = Date.now();
    for (let seq = 1; seq <= N; seq++) {
      store.enqueue('a', { seq, message: { id: seq, topic: 't', payload, qos: 1, retain: false, receivedAt: 0 }, qos: 1, retain: false, state: QueueState.Pending });
    }
    // Out of order: every third entry from the middle, then the head in order, reading pages as the broker does.
    for (let seq = N / 2; seq <= N; seq += 3) store.dequeue('a', seq);
    let from = 1;
    let read = 0;
    for (;;) {
      const page = await store.readQueue('a', from, 1000);
      if (page.length === 0) break;
      read += page.length;
      for (const e of page) store.dequeue('a', e.seq);
      from = page[page.length - 1]!.seq + 1;
    }
    const st = await store.open();
    assert.equal(read, N - Math.floor((N / 2 + 2) / 3));
    assert.deepEqual(st.sessions[0]!.queue, { count: 0, bytes: 0, lastSeq: N, sentSeq: 0 });
    assert.ok(Date.now() - t0 < 20_000, `took ${Date.now() - t0} ms`);
    await store.close();
  });
});
