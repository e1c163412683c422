// The topic-match cache is bounded in bytes (limits.maxMatchCacheBytes), not
// only in entries: a publisher spraying long random topics cannot grow it past
// the bound. Measured with the cache's own byte count (TopicTree.cacheBytes,
// broker.matchCacheBytes).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_LIMITS } from '../../src/index.js';
import { cacheEntryBytes, Subscription, TopicTree, type Recipient } from '../../src/broker/topic-tree.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { RawClient } from '../helpers/raw-client.js';
import { prng } from '../helpers/random.js';
import { waitFor } from '../helpers/wait.js';

const recipient = (id: string): Recipient => ({ id, online: true, persistent: false, hasRoom: () => true, deliver: () => {} });

function randomTopic(rand: () => number, length: number): string {
  let s = '';
  // About one level per 100 characters: well within limits.maxTopicLevels.
  while (s.length < length) s += Math.floor(rand() * 0x100000000).toString(36) + (rand() < 0.07 ? '/' : '');
  return s.slice(0, length);
}

describe('topic-match cache bounded in bytes', { timeout: 60_000 }, () => {
  it(`defaults to ${DEFAULT_LIMITS.maxMatchCacheBytes} bytes (16 MiB)`, () => {
    assert.equal(DEFAULT_LIMITS.maxMatchCacheBytes, 16 * 1024 * 1024);
  });

  it('TopicTree: 5,000 random 4 KiB topics against a 1 MiB bound never hold more than 1 MiB; recent topics stay cached', () => {
    const bound = 1024 * 1024;
    const tree = new TopicTree(bound);
    const r = recipient('a');
    tree.add(new Subscription(r, '#', '#', null, 0, false, false, 0, undefined));
    const rand = prng(7);
    let max = 0;
    let last = '';
    for (let i = 0; i < 5000; i++) {
      last = randomTopic(rand, 4096);
      assert.equal(tree.match(last).single.length, 1);
      max = Math.max(max, tree.cacheBytes);
    }
    assert.ok(max <= bound, `cache held ${max} bytes, bound ${bound}`);
    const entry = cacheEntryBytes(last, tree.match(last));
    assert.ok(entry > 2 * 4096, 'an entry is counted for at least its topic characters');
    // About bound / entry entries fit; the newest are kept (oldest out first).
    assert.ok(tree.cacheSize >= Math.floor(bound / entry) - 1 && tree.cacheSize <= Math.ceil(bound / entry), `${tree.cacheSize} entries`);
    const before = tree.cacheBytes;
    tree.match(last);
    assert.equal(tree.cacheBytes, before, 'a hit adds nothing');
  });

  it('TopicTree: a topic larger than the bound is matched but not cached; bound 0 disables the cache', () => {
    const small = new TopicTree(1000);
    small.add(new Subscription(recipient('a'), '#', '#', null, 0, false, false, 0, undefined));
    assert.equal(small.match('x'.repeat(1000)).single.length, 1);
    assert.equal(small.cacheBytes, 0);
    const none = new TopicTree(0);
    none.add(new Subscription(recipient('a'), '#', '#', null, 0, false, false, 0, undefined));
    assert.equal(none.match('a/b').single.length, 1);
    assert.equal(none.cacheSize, 0);
  });

  it('TopicTree: the references a result holds are counted (10,000 subscribers of "#" make an entry of > 80 KB)', () => {
    const tree = new TopicTree(1024 * 1024);
    for (let i = 0; i < 10_000; i++) tree.add(new Subscription(recipient(`r${i}`), '#', '#', null, 0, false, false, 0, undefined));
    for (let i = 0; i < 100; i++) tree.match(`t/${i}`);
    assert.ok(tree.cacheBytes <= 1024 * 1024, `${tree.cacheBytes} bytes`);
    assert.ok(tree.cacheSize <= 13, `${tree.cacheSize} entries of 10,000 references each`);
  });

  describe('on a live broker', () => {
    let tb: TestBroker;
    const bound = 256 * 1024;
    before(async () => {
      tb = await startBroker({ limits: { maxMatchCacheBytes: bound } });
    });
    after(async () => {
      await tb?.close();
    });

    it('a publisher spraying 1,000 random 8 KiB topics to a "#" subscriber: the cache stays within limits.maxMatchCacheBytes', async () => {
      const { client: sub } = await RawClient.connect(tb.port, 5, { clientId: 'cache-sub' });
      const { client: pub } = await RawClient.connect(tb.port, 4, { clientId: 'cache-pub' });
      try {
        await sub.subscribe([{ filter: '#', qos: 0 }]);
        const rand = prng(11);
        let max = 0;
        const delivered = (): number => sub.received.filter((p) => p.type === 3).length;
        for (let i = 0; i < 1000; i++) {
          pub.publish(randomTopic(rand, 8192), 'x', { qos: 0 });
          if (i % 50 === 49) {
            await waitFor(() => delivered() >= i + 1, 5000, `${i + 1} messages delivered`);
            max = Math.max(max, tb.broker.matchCacheBytes);
          }
        }
        await waitFor(() => delivered() >= 1000, 5000, 'all messages delivered');
        max = Math.max(max, tb.broker.matchCacheBytes);
        assert.ok(tb.broker.matchCacheBytes > 0, 'the cache is in use');
        assert.ok(max <= bound, `cache held ${max} bytes, bound ${bound}`);
      } finally {
        sub.destroy();
        pub.destroy();
      }
    });
  });
});
