// The Store contract: every implementation runs this suite.
//
// makeStore() returns a fresh, empty store that is NOT yet opened, and:
//  - reopen (persistent stores): a new, not yet opened Store on the same data;
//    the suite closes the previous store before calling it. With reopen the
//    suite also checks that everything survives close + open, and that close()
//    commits what is pending.
//  - without reopen (memory): the suite reads the state again by calling
//    open() on the same store, which must then return the current state.
//  - cleanup: removes what makeStore created (the suite closes its stores).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Properties } from '../../src/protocol/packets.js';
import {
  QueueState,
  StoreError,
  type LoadedSession,
  type LoadedState,
  type QueueEntry,
  type SessionRecord,
  type Store,
  type StoredMessage,
  type SubscriptionRecord,
} from '../../src/store/types.js';
import { prng } from '../helpers/random.js';

export interface StoreHarness {
  store: Store;
  reopen?: () => Promise<Store>;
  cleanup: () => Promise<void>;
}

interface Ctx {
  readonly store: Store;
  readonly state: LoadedState;
  readonly persistent: boolean;
  /** The state a fresh open() sees: close + reopen when persistent, else open() again. */
  reload(): Promise<LoadedState>;
}

// ---- fixtures ----

function session(clientId: string, over: Partial<SessionRecord> = {}): SessionRecord {
  return { clientId, protocolVersion: 5, expiryInterval: 3600, disconnectedAt: null, will: null, ...over };
}

function message(id: number, over: Partial<StoredMessage> = {}): StoredMessage {
  return { id, topic: `t/${id}`, payload: Buffer.from(`payload-${id}`), qos: 1, retain: false, receivedAt: 1_700_000_000_000 + id, ...over };
}

function entry(seq: number, msg: StoredMessage, over: Partial<QueueEntry> = {}): QueueEntry {
  return { seq, message: msg, qos: msg.qos, retain: false, state: QueueState.Pending, ...over };
}

const FULL_PROPS: Properties = {
  payloadFormatIndicator: 1,
  contentType: 'application/json; charset=utf-8',
  responseTopic: 'reply/to/me',
  correlationData: Buffer.from([0, 1, 2, 0x7f, 0x80, 0xfe, 0xff]),
  userProperties: [
    ['a', '1'],
    ['b', '2'],
    ['a', '3'],
    ['', ''],
    ['ünï cödé', '☃ 𝄞'],
    ['a', '1'],
  ],
};

function byClient(state: LoadedState, clientId: string): LoadedSession {
  const s = state.sessions.find((x) => x.session.clientId === clientId);
  assert.ok(s, `session ${clientId} is in the loaded state`);
  return s;
}

function sortedSubs(subs: SubscriptionRecord[]): SubscriptionRecord[] {
  return [...subs].sort((a, b) => (a.filter < b.filter ? -1 : a.filter > b.filter ? 1 : 0));
}

function sortedRetained(list: StoredMessage[]): StoredMessage[] {
  return [...list].sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : 0));
}

async function readAll(store: Store, clientId: string, page = 1000): Promise<QueueEntry[]> {
  const out: QueueEntry[] = [];
  let from = 0;
  for (;;) {
    const got = await store.readQueue(clientId, from, page);
    out.push(...got);
    if (got.length < page) return out;
    from = got[got.length - 1]!.seq + 1;
  }
}

function seqs(entries: QueueEntry[]): number[] {
  return entries.map((e) => e.seq);
}

export function storeContract(name: string, makeStore: () => Promise<StoreHarness>): void {
  async function withStore(fn: (ctx: Ctx) => Promise<void>): Promise<void> {
    const h = await makeStore();
    let store = h.store;
    let open = true;
    try {
      const state = await store.open();
      const ctx: Ctx = {
        get store() {
          return store;
        },
        state,
        persistent: h.reopen !== undefined,
        async reload() {
          if (h.reopen === undefined) return store.open();
          open = false;
          await store.close();
          store = await h.reopen();
          const s = await store.open();
          open = true;
          return s;
        },
      };
      await fn(ctx);
    } finally {
      if (open) await store.close().catch(() => undefined);
      await h.cleanup();
    }
  }

  describe(`Store contract: ${name}`, () => {
    it('opens empty', () =>
      withStore(async ({ store, state }) => {
        assert.deepEqual(state.sessions, []);
        assert.deepEqual(state.retained, []);
        assert.ok(Number.isInteger(state.nextMessageId) && state.nextMessageId >= 1);
        assert.equal(typeof store.kind, 'string');
        assert.equal(typeof store.durable, 'boolean');
        assert.deepEqual(await store.readQueue('nobody', 0, 10), []);
      }));

    it('puts, replaces and reloads session records (with will)', () =>
      withStore(async (ctx) => {
        const { store } = ctx;
        const will = {
          topic: 'last/will',
          payload: Buffer.from([0, 1, 2, 3, 255]),
          qos: 2 as const,
          retain: true,
          properties: { ...FULL_PROPS, willDelayInterval: 30, messageExpiryInterval: 120 },
          delayInterval: 30,
        };
        store.putSession(session('a', { will, expiryInterval: 0xffffffff, protocolVersion: 4 }));
        store.putSession(session('b', { disconnectedAt: 1_700_000_123_456, protocolVersion: 3, expiryInterval: 0 }));
        store.putSession(session('c'));
        await store.commit();
        let st = await ctx.reload();
        assert.equal(st.sessions.length, 3);
        assert.deepEqual(byClient(st, 'a').session, session('a', { will, expiryInterval: 0xffffffff, protocolVersion: 4 }));
        assert.deepEqual(byClient(st, 'b').session, session('b', { disconnectedAt: 1_700_000_123_456, protocolVersion: 3, expiryInterval: 0 }));
        assert.deepEqual(byClient(st, 'c').session, session('c'));
        for (const s of st.sessions) {
          assert.deepEqual(s.subscriptions, []);
          assert.deepEqual(s.inboundQos2, []);
          assert.deepEqual(s.queue, { count: 0, bytes: 0, lastSeq: 0, sentSeq: 0 });
        }

        // Replace: the record changes, subscriptions, queue and inbound ids stay.
        const s2 = ctx.store;
        const sub: SubscriptionRecord = { filter: 'x/#', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 };
        s2.putSubscription('a', sub);
        s2.enqueue('a', entry(1, message(1)));
        s2.addInboundQos2('a', 9);
        s2.markSent('a', 1);
        await s2.commit();
        s2.putSession(session('a', { disconnectedAt: 5, will: null }));
        await s2.commit();
        st = await ctx.reload();
        const a = byClient(st, 'a');
        assert.deepEqual(a.session, session('a', { disconnectedAt: 5 }));
        assert.deepEqual(a.subscriptions, [sub]);
        assert.deepEqual(a.inboundQos2, [9]);
        assert.deepEqual(a.queue, { count: 1, bytes: message(1).payload.length, lastSeq: 1, sentSeq: 1 });
        assert.deepEqual(seqs(await ctx.store.readQueue('a', 0, 10)), [1]);
      }));

    it('deletes a session with its subscriptions, queue and inbound ids', () =>
      withStore(async (ctx) => {
        const { store } = ctx;
        store.putSession(session('a'));
        store.putSession(session('b'));
        for (const c of ['a', 'b']) {
          store.putSubscription(c, { filter: 'f', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 });
          store.addInboundQos2(c, 1);
        }
        const m = message(1);
        store.enqueue('a', entry(1, m));
        store.enqueue('a', entry(2, message(2)));
        store.enqueue('b', entry(1, m));
        store.markSent('a', 2);
        await store.commit();
        store.deleteSession('a');
        store.deleteSession('never-existed');
        await store.commit();
        assert.deepEqual(await store.readQueue('a', 0, 10), []);
        let st = await ctx.reload();
        assert.deepEqual(
          st.sessions.map((s) => s.session.clientId),
          ['b'],
        );
        assert.deepEqual(await ctx.store.readQueue('a', 0, 10), []);
        // b keeps the shared message.
        assert.deepEqual(await ctx.store.readQueue('b', 0, 10), [entry(1, m)]);
        // Re-created: nothing of the old session comes back.
        ctx.store.putSession(session('a'));
        await ctx.store.commit();
        st = await ctx.reload();
        const a = byClient(st, 'a');
        assert.deepEqual(a.subscriptions, []);
        assert.deepEqual(a.inboundQos2, []);
        assert.deepEqual(a.queue, { count: 0, bytes: 0, lastSeq: 0, sentSeq: 0 });
        assert.deepEqual(await ctx.store.readQueue('a', 0, 10), []);
      }));

    it('stores subscriptions with every option and subscription ids; replaces by filter; deletes', () =>
      withStore(async (ctx) => {
        const { store } = ctx;
        const subs: SubscriptionRecord[] = [
          { filter: 'a/+/c', qos: 2, noLocal: true, retainAsPublished: true, retainHandling: 2, subscriptionId: 268_435_455 },
          { filter: '$share/group/b/#', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 },
          { filter: '#', qos: 0, noLocal: false, retainAsPublished: true, retainHandling: 1, subscriptionId: 1 },
          { filter: 'ü/☃', qos: 1, noLocal: true, retainAsPublished: false, retainHandling: 0, subscriptionId: 77 },
        ];
        store.putSession(session('a'));
        store.putSession(session('b'));
        for (const s of subs) store.putSubscription('a', s);
        store.putSubscription('b', subs[0]!);
        await store.commit();
        let st = await ctx.reload();
        assert.deepEqual(sortedSubs(byClient(st, 'a').subscriptions), sortedSubs(subs));
        assert.deepEqual(byClient(st, 'b').subscriptions, [subs[0]]);

        const replaced: SubscriptionRecord = { filter: 'a/+/c', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 1 };
        ctx.store.putSubscription('a', replaced);
        ctx.store.deleteSubscription('a', '#');
        ctx.store.deleteSubscription('a', 'not/subscribed');
        ctx.store.deleteSubscription('nobody', '#');
        await ctx.store.commit();
        st = await ctx.reload();
        assert.deepEqual(sortedSubs(byClient(st, 'a').subscriptions), sortedSubs([replaced, subs[1]!, subs[3]!]));
        assert.deepEqual(byClient(st, 'b').subscriptions, [subs[0]]);
      }));

    it('readQueue with maxBytes stops before the payload bytes would exceed it, with at least one entry', () =>
      withStore(async ({ store }) => {
        store.putSession(session('a'));
        const sized = (id: number, n: number) => message(id, { payload: Buffer.alloc(n, id) });
        for (let s = 1; s <= 6; s++) store.enqueue('a', entry(s, sized(s, 100)));
        store.enqueue('a', entry(7, sized(7, 1000)));
        store.enqueue('a', entry(8, sized(8, 10)));
        await store.commit();
        assert.deepEqual(seqs(await store.readQueue('a', 0, 100, 250)), [1, 2]);
        assert.deepEqual(seqs(await store.readQueue('a', 0, 100, 300)), [1, 2, 3], 'exactly maxBytes fits');
        assert.deepEqual(seqs(await store.readQueue('a', 0, 2, 1_000_000)), [1, 2], 'limit still applies');
        assert.deepEqual(seqs(await store.readQueue('a', 0, 100, 50)), [1], 'one entry even if larger than maxBytes');
        assert.deepEqual(seqs(await store.readQueue('a', 0, 100, 0)), [1]);
        assert.deepEqual(seqs(await store.readQueue('a', 7, 100, 500)), [7], 'a first entry above maxBytes comes alone');
        assert.deepEqual(seqs(await store.readQueue('a', 5, 100, 1200)), [5, 6, 7]);
        assert.deepEqual(seqs(await store.readQueue('a', 5, 100, 1210)), [5, 6, 7, 8]);
        const page = await store.readQueue('a', 2, 100, 200);
        assert.deepEqual(page, [entry(2, sized(2, 100)), entry(3, sized(3, 100))], 'entries are complete');
        // Uncommitted writes are seen.
        store.enqueue('a', entry(9, sized(9, 10)));
        store.dequeue('a', 8);
        assert.deepEqual(seqs(await store.readQueue('a', 7, 100, 1010)), [7, 9]);
        assert.deepEqual(await store.readQueue('nobody', 0, 10, 10), []);
      }));

    it('readQueue with maxBytes counts Released entries as 0 bytes', () =>
      withStore(async ({ store }) => {
        store.putSession(session('a'));
        const sized = (id: number) => message(id, { payload: Buffer.alloc(100, id), qos: 2 });
        for (let s = 1; s <= 5; s++) store.enqueue('a', entry(s, sized(s)));
        store.markSent('a', 3);
        await store.commit();
        store.markReleased('a', 1);
        store.markReleased('a', 2);
        await store.commit();
        const page = await store.readQueue('a', 0, 100, 250);
        assert.deepEqual(seqs(page), [1, 2, 3, 4], '0 + 0 + 100 + 100 bytes');
        assert.deepEqual(page.map((e) => e.state), [QueueState.Released, QueueState.Released, QueueState.Pending, QueueState.Pending]);
        for (const e of page.slice(0, 2)) {
          assert.equal(e.message.id, e.seq);
          assert.ok(e.message.payload.length === 0 || e.message.payload.equals(sized(e.seq).payload), 'a Released payload is empty or intact');
        }
        assert.deepEqual(page.slice(2), [entry(3, sized(3)), entry(4, sized(4))]);
      }));

    it('expireQueue removes the unsent entries whose message expired, counts them, and keeps the rest', () =>
      withStore(async (ctx) => {
        const { store } = ctx;
        const now = 1_700_000_500_000;
        store.putSession(session('a'));
        store.putSession(session('b'));
        const expired = (id: number, n = 10) => message(id, { payload: Buffer.alloc(n, id), expiresAt: now - 1000 });
        const m1 = expired(1);
        const m2 = expired(2, 20);
        const m3 = message(3);
        const m4 = message(4, { payload: Buffer.alloc(40), expiresAt: now });
        const m5 = message(5, { expiresAt: now + 1 });
        const m6 = expired(6, 60); // shared with b
        store.enqueue('a', entry(1, m1)); // sent: stays
        store.enqueue('a', entry(2, m2));
        store.enqueue('a', entry(3, m3));
        store.enqueue('a', entry(4, m4, { subscriptionIds: [3] }));
        store.enqueue('a', entry(5, m5));
        store.enqueue('a', entry(6, m6));
        store.enqueue('b', entry(1, m6));
        store.markSent('a', 1);
        await store.commit();
        store.enqueue('a', entry(7, expired(7, 70))); // not yet committed: removed too
        assert.deepEqual(await store.expireQueue('a', now, 100), { count: 4, bytes: 20 + 40 + 60 + 70 });
        // Reads see the removal before the commit.
        assert.deepEqual(seqs(await store.readQueue('a', 0, 100)), [1, 3, 5]);
        assert.deepEqual(await store.expireQueue('a', now, 100), { count: 0, bytes: 0 }, 'nothing left to expire');
        await store.commit();
        const st = await ctx.reload();
        assert.deepEqual(byClient(st, 'a').queue, { count: 3, bytes: m1.payload.length + m3.payload.length + m5.payload.length, lastSeq: 7, sentSeq: 1 });
        assert.deepEqual(await ctx.store.readQueue('a', 0, 100), [entry(1, m1), entry(3, m3), entry(5, m5)]);
        assert.deepEqual(await ctx.store.readQueue('b', 0, 100), [entry(1, m6)], "the other session's entry of the same message stays");
        // b's entry is unsent: it goes now, and nothing is left of m6.
        assert.deepEqual(await ctx.store.expireQueue('b', now, 100), { count: 1, bytes: 60 });
        assert.deepEqual(await ctx.store.expireQueue('nobody', now, 100), { count: 0, bytes: 0 });
        await ctx.store.commit();
        const st2 = await ctx.reload();
        assert.deepEqual(byClient(st2, 'b').queue, { count: 0, bytes: 0, lastSeq: 1, sentSeq: 0 });
        assert.deepEqual(await ctx.store.readQueue('b', 0, 100), []);
      }));

    it('expireQueue removes at most limit entries per call', () =>
      withStore(async ({ store }) => {
        const now = 1_700_000_500_000;
        store.putSession(session('a'));
        for (let s = 1; s <= 10; s++) store.enqueue('a', entry(s, message(s, { payload: Buffer.alloc(5), expiresAt: now - s })));
        await store.commit();
        assert.deepEqual(await store.expireQueue('a', now, 3), { count: 3, bytes: 15 });
        assert.equal((await store.readQueue('a', 0, 100)).length, 7);
        assert.deepEqual(await store.expireQueue('a', now, 0), { count: 0, bytes: 0 });
        assert.deepEqual(await store.expireQueue('a', now, 100), { count: 7, bytes: 35 });
        assert.deepEqual(await store.readQueue('a', 0, 100), []);
        await store.commit();
      }));

    it('reads the queue in seq order, with paging by fromSeq and limit', () =>
      withStore(async (ctx) => {
        const { store } = ctx;
        store.putSession(session('a'));
        for (let s = 1; s <= 25; s++) store.enqueue('a', entry(s, message(s)));
        await store.commit();
        assert.deepEqual(seqs(await store.readQueue('a', 0, 10)), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert.deepEqual(seqs(await store.readQueue('a', 11, 10)), [11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
        assert.deepEqual(seqs(await store.readQueue('a', 21, 10)), [21, 22, 23, 24, 25]);
        assert.deepEqual(seqs(await store.readQueue('a', 26, 10)), []);
        assert.deepEqual(seqs(await store.readQueue('a', 5, 0)), []);
        assert.deepEqual(seqs(await store.readQueue('a', 24, 1000)), [24, 25]);
        const all = await store.readQueue('a', 1, 100);
        assert.deepEqual(all, Array.from({ length: 25 }, (_, i) => entry(i + 1, message(i + 1))));
        // Gaps in seq.
        store.enqueue('a', entry(30, message(30)));
        store.enqueue('a', entry(40, message(40)));
        assert.deepEqual(seqs(await store.readQueue('a', 26, 10)), [30, 40]);
        assert.deepEqual(seqs(await store.readQueue('a', 31, 1)), [40]);
        assert.deepEqual(seqs(await store.readQueue('a', 41, 1)), []);
        await store.commit();
        await ctx.reload();
        assert.deepEqual(seqs(await readAll(ctx.store, 'a', 7)), [...Array.from({ length: 25 }, (_, i) => i + 1), 30, 40]);
      }));

    it('dequeues out of order; unknown seqs and other sessions are unaffected', () =>
      withStore(async (ctx) => {
        const { store } = ctx;
        store.putSession(session('a'));
        store.putSession(session('b'));
        for (let s = 1; s <= 20; s++) {
          store.enqueue('a', entry(s, message(s)));
          store.enqueue('b', entry(s, message(100 + s)));
        }
        await store.commit();
        for (const s of [7, 3, 20, 1, 12, 13, 14, 15]) store.dequeue('a', s);
        store.dequeue('a', 999);
        store.dequeue('a', 3); // twice
        store.dequeue('nobody', 1);
        await store.commit();
        const left = [2, 4, 5, 6, 8, 9, 10, 11, 16, 17, 18, 19];
        assert.deepEqual(seqs(await store.readQueue('a', 0, 100)), left);
        assert.deepEqual(seqs(await store.readQueue('a', 1, 3)), [2, 4, 5]);
        assert.deepEqual(seqs(await store.readQueue('a', 11, 2)), [11, 16]);
        assert.equal((await store.readQueue('b', 0, 100)).length, 20);
        const st = await ctx.reload();
        assert.deepEqual(seqs(await ctx.store.readQueue('a', 0, 100)), left);
        const total = left.reduce((n, s) => n + message(s).payload.length, 0);
        assert.deepEqual(byClient(st, 'a').queue, { count: left.length, bytes: total, lastSeq: 20, sentSeq: 0 });
      }));

    it('keeps queue stats (count, bytes, lastSeq, sentSeq) across reloads', () =>
      withStore(async (ctx) => {
        const { store } = ctx;
        store.putSession(session('a'));
        const sizes = [0, 1, 10, 1000, 100_000];
        sizes.forEach((n, i) => store.enqueue('a', entry(i + 1, message(i + 1, { payload: Buffer.alloc(n, i) }))));
        store.markSent('a', 2);
        await store.commit();
        let st = await ctx.reload();
        assert.deepEqual(byClient(st, 'a').queue, { count: 5, bytes: 101_011, lastSeq: 5, sentSeq: 2 });
        ctx.store.dequeue('a', 4);
        ctx.store.markReleased('a', 5);
        ctx.store.markSent('a', 4);
        ctx.store.markSent('a', 3); // sentSeq never goes back
        await ctx.store.commit();
        st = await ctx.reload();
        assert.deepEqual(byClient(st, 'a').queue, { count: 4, bytes: 100_011, lastSeq: 5, sentSeq: 4 });
        for (let s = 1; s <= 5; s++) ctx.store.dequeue('a', s);
        await ctx.store.commit();
        st = await ctx.reload();
        // lastSeq is the highest seq ever enqueued, even when the queue is empty.
        assert.deepEqual(byClient(st, 'a').queue, { count: 0, bytes: 0, lastSeq: 5, sentSeq: 4 });
      }));

    it('cancels an enqueue and a dequeue of the same entry within one batch (lastSeq stays)', () =>
      withStore(async (ctx) => {
        const { store } = ctx;
        store.putSession(session('a'));
        await store.commit();
        const m = message(1);
        store.enqueue('a', entry(1, m));
        store.enqueue('a', entry(2, message(2)));
        store.markSent('a', 2);
        store.dequeue('a', 1);
        await store.commit();
        const st = await ctx.reload();
        assert.deepEqual(byClient(st, 'a').queue, { count: 1, bytes: message(2).payload.length, lastSeq: 2, sentSeq: 2 });
        assert.deepEqual(await ctx.store.readQueue('a', 0, 10), [entry(2, message(2))]);
      }));

    it('marks entries released (committed and pending), and keeps that state', () =>
      withStore(async (ctx) => {
        const { store } = ctx;
        store.putSession(session('a'));
        for (let s = 1; s <= 3; s++) store.enqueue('a', entry(s, message(s, { qos: 2 }), { qos: 2 }));
        await store.commit();
        store.markReleased('a', 2);
        store.enqueue('a', entry(4, message(4, { qos: 2 }), { qos: 2 }));
        store.markReleased('a', 4);
        store.markReleased('a', 99);
        store.markReleased('nobody', 1);
        const expected = [1, 2, 3, 4].map((s) =>
          entry(s, message(s, { qos: 2 }), { qos: 2, state: s === 2 || s === 4 ? QueueState.Released : QueueState.Pending }),
        );
        assert.deepEqual(await store.readQueue('a', 0, 10), expected);
        await store.commit();
        await ctx.reload();
        assert.deepEqual(await ctx.store.readQueue('a', 0, 10), expected);
      }));

    it('keeps inbound QoS 2 packet ids', () =>
      withStore(async (ctx) => {
        const { store } = ctx;
        store.putSession(session('a'));
        store.putSession(session('b'));
        for (const id of [1, 2, 3, 65535, 2]) store.addInboundQos2('a', id);
        store.addInboundQos2('b', 2);
        await store.commit();
        store.removeInboundQos2('a', 2);
        store.removeInboundQos2('a', 999);
        store.removeInboundQos2('nobody', 1);
        await store.commit();
        const st = await ctx.reload();
        assert.deepEqual([...byClient(st, 'a').inboundQos2].sort((x, y) => x - y), [1, 3, 65535]);
        assert.deepEqual(byClient(st, 'b').inboundQos2, [2]);
      }));

    it('sets, replaces and clears retained messages', () =>
      withStore(async (ctx) => {
        const { store } = ctx;
        const m1 = message(1, { topic: 'r/1', retain: true, properties: FULL_PROPS, expiresAt: 1_800_000_000_000 });
        const m2 = message(2, { topic: 'r/2', retain: true, qos: 0 });
        const m3 = message(3, { topic: 'r/1', retain: true, payload: Buffer.alloc(50_000, 7) });
        const m4 = message(4, { topic: 'r/4', retain: true });
        store.setRetained('r/1', m1);
        store.setRetained('r/2', m2);
        await store.commit();
        let st = await ctx.reload();
        assert.deepEqual(sortedRetained(st.retained), [m1, m2]);
        ctx.store.setRetained('r/1', m3);
        ctx.store.setRetained('r/2', null);
        ctx.store.setRetained('r/4', m4);
        ctx.store.setRetained('r/4', null);
        ctx.store.setRetained('r/none', null);
        await ctx.store.commit();
        st = await ctx.reload();
        assert.deepEqual(st.retained, [m3]);
        // The same message set twice for a topic.
        ctx.store.setRetained('r/1', m3);
        await ctx.store.commit();
        st = await ctx.reload();
        assert.deepEqual(st.retained, [m3]);
        ctx.store.setRetained('r/1', null);
        await ctx.store.commit();
        st = await ctx.reload();
        assert.deepEqual(st.retained, []);
      }));

    it('round-trips properties exactly (Buffer correlationData, repeated user properties in order) and expiresAt', () =>
      withStore(async (ctx) => {
        const { store } = ctx;
        store.putSession(session('a'));
        const msgs = [
          message(1, { properties: FULL_PROPS, expiresAt: 1_700_000_060_000 }),
          message(2, { properties: { correlationData: Buffer.alloc(0), userProperties: [] } }),
          message(3, { properties: {} }),
          message(4, { properties: { payloadFormatIndicator: 0, contentType: '' } }),
          message(5, { payload: Buffer.alloc(0), topic: 'empty/payload', qos: 0 }),
          message(6, { payload: Buffer.from(Array.from({ length: 256 }, (_, i) => i)), topic: 'ü/☃/𝄞', retain: true, qos: 2 }),
          message(7, { expiresAt: 0 }),
        ];
        msgs.forEach((m, i) => store.enqueue('a', entry(i + 1, m, i === 0 ? { qos: m.qos, retain: m.retain, subscriptionIds: [1, 268_435_455, 1] } : { qos: m.qos, retain: m.retain })));
        store.enqueue('a', entry(8, message(8), { subscriptionIds: [] }));
        const expected = msgs.map((m, i) => {
          const e = entry(i + 1, m, { qos: m.qos, retain: m.retain });
          if (i === 0) e.subscriptionIds = [1, 268_435_455, 1];
          return e;
        });
        expected.push(entry(8, message(8), { subscriptionIds: [] }));
        assert.deepEqual(await store.readQueue('a', 0, 100), expected);
        await store.commit();
        await ctx.reload();
        const got = await ctx.store.readQueue('a', 0, 100);
        assert.deepEqual(got, expected);
        assert.ok(Buffer.isBuffer(got[0]!.message.properties!.correlationData));
        assert.ok(!('expiresAt' in got[1]!.message) || got[1]!.message.expiresAt === undefined);
      }));

    it('shares one message between sessions: dequeued from one, still whole for the other', () =>
      withStore(async (ctx) => {
        const { store } = ctx;
        store.putSession(session('a'));
        store.putSession(session('b'));
        store.putSession(session('c'));
        const m = message(1, { properties: FULL_PROPS, payload: Buffer.alloc(20_000, 3), expiresAt: 1_900_000_000_000 });
        store.enqueue('a', entry(1, m));
        store.enqueue('b', entry(1, m, { qos: 0 }));
        await store.commit();
        store.dequeue('a', 1);
        await store.commit();
        assert.deepEqual(await store.readQueue('a', 0, 10), []);
        assert.deepEqual(await store.readQueue('b', 0, 10), [entry(1, m, { qos: 0 })]);
        // Dequeued from b and enqueued for c in the same batch: c still has it.
        store.dequeue('b', 1);
        store.enqueue('c', entry(5, m));
        await store.commit();
        await ctx.reload();
        assert.deepEqual(await ctx.store.readQueue('b', 0, 10), []);
        assert.deepEqual(await ctx.store.readQueue('c', 0, 10), [entry(5, m)]);
        // A retained message is a reference too.
        ctx.store.setRetained(m.topic, m);
        ctx.store.dequeue('c', 5);
        await ctx.store.commit();
        const st = await ctx.reload();
        assert.deepEqual(st.retained, [m]);
        // The same message twice in one session's queue.
        ctx.store.enqueue('a', entry(2, m));
        ctx.store.enqueue('a', entry(3, m));
        ctx.store.setRetained(m.topic, null);
        await ctx.store.commit();
        ctx.store.dequeue('a', 2);
        await ctx.store.commit();
        await ctx.reload();
        assert.deepEqual(await ctx.store.readQueue('a', 0, 10), [entry(3, m)]);
      }));

    it('enqueues a message again in a later batch for another session (shared-subscription redistribution)', () =>
      withStore(async (ctx) => {
        const { store } = ctx;
        for (const c of ['a', 'b', 'c', 'd']) store.putSession(session(c));
        const single = message(1, { properties: FULL_PROPS, expiresAt: 1_900_000_000_000 });
        const fanned = message(2, { payload: Buffer.alloc(3000, 2) });
        store.enqueue('a', entry(1, single, { subscriptionIds: [4] }));
        store.enqueue('a', entry(2, fanned));
        store.enqueue('b', entry(1, fanned, { qos: 0 }));
        await store.commit();
        // Batch 2: a's single-reference message goes to b, the fanned-out one to c as well.
        store.dequeue('a', 1);
        store.enqueue('b', entry(2, single));
        store.enqueue('c', entry(1, fanned));
        await store.commit();
        assert.deepEqual(await store.readQueue('a', 0, 10), [entry(2, fanned)]);
        assert.deepEqual(await store.readQueue('b', 0, 10), [entry(1, fanned, { qos: 0 }), entry(2, single)]);
        // Batch 3: every earlier reference to both goes; d gets both once more.
        store.dequeue('a', 2);
        store.dequeue('b', 1);
        store.dequeue('b', 2);
        store.enqueue('d', entry(1, single));
        store.enqueue('d', entry(2, fanned));
        await store.commit();
        let st = await ctx.reload();
        assert.deepEqual(await ctx.store.readQueue('c', 0, 10), [entry(1, fanned)]);
        assert.deepEqual(await ctx.store.readQueue('d', 0, 10), [entry(1, single), entry(2, fanned)]);
        assert.deepEqual(byClient(st, 'c').queue, { count: 1, bytes: 3000, lastSeq: 1, sentSeq: 0 });
        assert.deepEqual(byClient(st, 'd').queue, { count: 2, bytes: single.payload.length + 3000, lastSeq: 2, sentSeq: 0 });
        assert.deepEqual(byClient(st, 'b').queue, { count: 0, bytes: 0, lastSeq: 2, sentSeq: 0 });
        ctx.store.dequeue('c', 1);
        ctx.store.dequeue('d', 2);
        await ctx.store.commit();
        st = await ctx.reload();
        assert.deepEqual(await ctx.store.readQueue('c', 0, 10), []);
        assert.deepEqual(await ctx.store.readQueue('d', 0, 10), [entry(1, single)]);
        assert.ok(st.nextMessageId > 2);
      }));

    it('finds the references of a message enqueued out of id order within a batch', () =>
      withStore(async (ctx) => {
        const { store } = ctx;
        for (const c of ['a', 'b', 'c']) store.putSession(session(c));
        const m = [0, 1, 2, 3, 4, 5].map((i) => message(10 + i));
        // Ids 15, 13, 15, 11, 13, 12 (a second reference to 13 after a higher id), then cancel one of two references.
        store.enqueue('a', entry(1, m[5]!));
        store.enqueue('a', entry(2, m[3]!));
        store.enqueue('b', entry(1, m[5]!));
        store.enqueue('b', entry(2, m[1]!));
        store.enqueue('c', entry(1, m[3]!));
        store.enqueue('c', entry(2, m[2]!));
        store.enqueue('c', entry(3, m[2]!));
        store.dequeue('c', 3);
        store.setRetained('r', m[4]!);
        store.enqueue('a', entry(3, m[4]!));
        await store.commit();
        const st = await ctx.reload();
        assert.deepEqual(await ctx.store.readQueue('a', 0, 10), [entry(1, m[5]!), entry(2, m[3]!), entry(3, m[4]!)]);
        assert.deepEqual(await ctx.store.readQueue('b', 0, 10), [entry(1, m[5]!), entry(2, m[1]!)]);
        assert.deepEqual(await ctx.store.readQueue('c', 0, 10), [entry(1, m[3]!), entry(2, m[2]!)]);
        assert.deepEqual(st.retained, [m[4]]);
        for (const [c, seqs] of [['a', [1, 2, 3]], ['b', [1, 2]], ['c', [1, 2]]] as const) for (const s of seqs) ctx.store.dequeue(c, s);
        await ctx.store.commit();
        await ctx.reload();
        for (const c of ['a', 'b', 'c']) assert.deepEqual(await ctx.store.readQueue(c, 0, 10), []);
      }));

    it('replaces an entry whose seq is enqueued again, within a batch and across batches', () =>
      withStore(async (ctx) => {
        const { store } = ctx;
        store.putSession(session('a'));
        for (let s = 1; s <= 4; s++) store.enqueue('a', entry(s, message(s)));
        await store.commit();
        // Committed 2 replaced; pending 6 replaced twice; released and dequeued on the way.
        store.enqueue('a', entry(5, message(5)));
        store.enqueue('a', entry(6, message(6)));
        store.enqueue('a', entry(2, message(20)));
        store.markReleased('a', 2);
        store.enqueue('a', entry(6, message(60)));
        store.dequeue('a', 5);
        store.enqueue('a', entry(5, message(50)));
        store.enqueue('a', entry(6, message(61), { qos: 0 }));
        store.dequeue('a', 3);
        store.markReleased('a', 5);
        const expected = [
          entry(1, message(1)),
          entry(2, message(20), { state: QueueState.Released }),
          entry(4, message(4)),
          entry(5, message(50), { state: QueueState.Released }),
          entry(6, message(61), { qos: 0 }),
        ];
        assert.deepEqual(await store.readQueue('a', 0, 10), expected);
        await store.commit();
        const st = await ctx.reload();
        assert.deepEqual(await ctx.store.readQueue('a', 0, 10), expected);
        const bytes = expected.reduce((n, e) => n + e.message.payload.length, 0);
        assert.deepEqual(byClient(st, 'a').queue, { count: 5, bytes, lastSeq: 6, sentSeq: 0 });
        assert.ok(st.nextMessageId > 61);
      }));

    it('dequeues runs of consecutive seqs and scattered seqs of many sessions in one batch', () =>
      withStore(async (ctx) => {
        const { store } = ctx;
        const clients = Array.from({ length: 40 }, (_, i) => `c${i}`);
        for (const c of clients) store.putSession(session(c));
        let id = 1;
        const shared = message(id++, { payload: Buffer.alloc(7, 1) });
        for (const c of clients) {
          for (let s = 1; s <= 10; s++) store.enqueue(c, entry(s, s === 5 ? shared : message(id++, { payload: Buffer.alloc(s, s) })));
        }
        await store.commit();
        // Per session: a run (2..4), a single seq (7 or 5), the same seq twice, an unknown seq; out of order.
        for (const [i, c] of clients.entries()) {
          store.dequeue(c, 4);
          store.dequeue(c, 2);
          store.dequeue(c, 3);
          store.dequeue(c, i % 2 === 0 ? 7 : 5);
          store.dequeue(c, 9);
          store.dequeue(c, 9);
          store.dequeue(c, 99);
        }
        await store.commit();
        const st = await ctx.reload();
        for (const [i, c] of clients.entries()) {
          const left = [1, 5, 6, 7, 8, 10].filter((s) => s !== (i % 2 === 0 ? 7 : 5));
          const got = await ctx.store.readQueue(c, 0, 20);
          assert.deepEqual(seqs(got), left, `queue of ${c}`);
          const bytes = left.reduce((n, s) => n + (s === 5 ? 7 : s), 0);
          assert.deepEqual(byClient(st, c).queue, { count: left.length, bytes, lastSeq: 10, sentSeq: 0 }, `stats of ${c}`);
          if (i % 2 === 0) assert.deepEqual(got[1]!.message, shared);
        }
      }));

    it('reads see uncommitted writes', () =>
      withStore(async ({ store }) => {
        store.putSession(session('a'));
        for (let s = 1; s <= 3; s++) store.enqueue('a', entry(s, message(s)));
        assert.deepEqual(seqs(await store.readQueue('a', 0, 10)), [1, 2, 3]);
        store.dequeue('a', 2);
        assert.deepEqual(seqs(await store.readQueue('a', 0, 10)), [1, 3]);
        store.markReleased('a', 3);
        store.enqueue('a', entry(4, message(4)));
        const got = await store.readQueue('a', 0, 10);
        assert.deepEqual(seqs(got), [1, 3, 4]);
        assert.equal(got[1]!.state, QueueState.Released);
        store.deleteSession('a');
        assert.deepEqual(await store.readQueue('a', 0, 10), []);
        await store.commit();
      }));

    it('applies a batch in order: delete then re-create a session in one batch', () =>
      withStore(async (ctx) => {
        const { store } = ctx;
        const oldSub: SubscriptionRecord = { filter: 'old', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 };
        const newSub: SubscriptionRecord = { filter: 'new', qos: 2, noLocal: true, retainAsPublished: true, retainHandling: 2, subscriptionId: 4 };
        // Committed old session...
        store.putSession(session('a', { expiryInterval: 10 }));
        store.putSubscription('a', oldSub);
        store.enqueue('a', entry(1, message(1)));
        store.enqueue('a', entry(2, message(2)));
        store.addInboundQos2('a', 5);
        store.markSent('a', 2);
        await store.commit();
        // ...then, in ONE batch: more writes, delete, re-create, new writes.
        store.enqueue('a', entry(3, message(3)));
        store.dequeue('a', 1);
        store.deleteSession('a');
        store.putSession(session('a', { expiryInterval: 20 }));
        store.putSubscription('a', newSub);
        store.enqueue('a', entry(1, message(10)));
        store.addInboundQos2('a', 6);
        // A session created and deleted within the batch leaves nothing.
        store.putSession(session('z'));
        store.enqueue('z', entry(1, message(20)));
        store.deleteSession('z');
        assert.deepEqual(await store.readQueue('a', 0, 10), [entry(1, message(10))]);
        await store.commit();
        const st = await ctx.reload();
        assert.deepEqual(
          st.sessions.map((s) => s.session.clientId),
          ['a'],
        );
        const a = byClient(st, 'a');
        assert.deepEqual(a.session, session('a', { expiryInterval: 20 }));
        assert.deepEqual(a.subscriptions, [newSub]);
        assert.deepEqual(a.inboundQos2, [6]);
        assert.deepEqual(a.queue, { count: 1, bytes: message(10).payload.length, lastSeq: 1, sentSeq: 0 });
        assert.deepEqual(await ctx.store.readQueue('a', 0, 10), [entry(1, message(10))]);
      }));

    it('nextMessageId is greater than every stored message id', () =>
      withStore(async (ctx) => {
        const { store } = ctx;
        store.putSession(session('a'));
        store.enqueue('a', entry(1, message(17)));
        store.enqueue('a', entry(2, message(5)));
        store.setRetained('r', message(42, { topic: 'r', retain: true }));
        await store.commit();
        let st = await ctx.reload();
        assert.ok(st.nextMessageId > 42, `nextMessageId ${st.nextMessageId}`);
        ctx.store.setRetained('r', null);
        await ctx.store.commit();
        st = await ctx.reload();
        assert.ok(st.nextMessageId > 17, `nextMessageId ${st.nextMessageId}`);
      }));

    it('rejects writes to a session that does not exist', () =>
      withStore(async ({ store }) => {
        assert.throws(() => store.enqueue('nobody', entry(1, message(1))));
        assert.throws(() => store.putSubscription('nobody', { filter: 'f', qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 }));
        assert.throws(() => store.addInboundQos2('nobody', 1));
        // Updates and deletions of what does not exist are ignored.
        store.markSent('nobody', 1);
        store.markReleased('nobody', 1);
        store.dequeue('nobody', 1);
        store.deleteSubscription('nobody', 'f');
        store.removeInboundQos2('nobody', 1);
        store.deleteSession('nobody');
        await store.commit();
      }));

    it('pages through a large queue with random dequeues', () =>
      withStore(async (ctx) => {
        const { store } = ctx;
        const r = prng(42);
        store.putSession(session('a'));
        const live = new Map<number, StoredMessage>();
        let id = 1;
        for (let batch = 0; batch < 5; batch++) {
          for (let i = 0; i < 1000; i++) {
            const seq = batch * 1000 + i + 1;
            const m = message(id++, { payload: Buffer.alloc(Math.floor(r() * 64), seq & 0xff) });
            store.enqueue('a', entry(seq, m));
            live.set(seq, m);
          }
          await store.commit();
        }
        for (const seq of [...live.keys()]) {
          if (r() < 0.5) {
            store.dequeue('a', seq);
            live.delete(seq);
          }
        }
        await store.commit();
        const expected = [...live.entries()].map(([seq, m]) => entry(seq, m));
        assert.deepEqual(await readAll(store, 'a', 1000), expected);
        assert.deepEqual(await readAll(store, 'a', 333), expected);
        const st = await ctx.reload();
        assert.equal(byClient(st, 'a').queue.count, live.size);
        assert.equal(
          byClient(st, 'a').queue.bytes,
          [...live.values()].reduce((n, m) => n + m.payload.length, 0),
        );
        assert.deepEqual(await readAll(ctx.store, 'a', 1000), expected);
      }));

    it('matches a reference model under random operations', () =>
      withStore(async (ctx) => {
        const r = prng(7);
        interface ModelSession {
          record: SessionRecord;
          subs: Map<string, SubscriptionRecord>;
          inbound: Set<number>;
          queue: Map<number, QueueEntry>;
          lastSeq: number;
          sentSeq: number;
        }
        const model = new Map<string, ModelSession>();
        const retained = new Map<string, StoredMessage>();
        const clients = ['c0', 'c1', 'c2', 'c3'];
        const recent: StoredMessage[] = [];
        let nextId = 1;
        const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

        async function check(): Promise<void> {
          for (const c of clients) {
            const m = model.get(c);
            const expected = m === undefined ? [] : [...m.queue.values()].sort((x, y) => x.seq - y.seq);
            assert.deepEqual(await readAll(ctx.store, c, 17), expected, `queue of ${c}`);
          }
        }
        async function checkLoaded(): Promise<void> {
          const st = await ctx.reload();
          assert.deepEqual(st.sessions.map((s) => s.session.clientId).sort(), [...model.keys()].sort());
          for (const [c, m] of model) {
            const s = byClient(st, c);
            assert.deepEqual(s.session, m.record);
            assert.deepEqual(sortedSubs(s.subscriptions), sortedSubs([...m.subs.values()]));
            assert.deepEqual([...s.inboundQos2].sort((x, y) => x - y), [...m.inbound].sort((x, y) => x - y));
            const bytes = [...m.queue.values()].reduce((n, e) => n + e.message.payload.length, 0);
            assert.deepEqual(s.queue, { count: m.queue.size, bytes, lastSeq: m.lastSeq, sentSeq: m.sentSeq }, `stats of ${c}`);
          }
          assert.deepEqual(sortedRetained(st.retained), sortedRetained([...retained.values()]));
          for (const m of [...retained.values()]) assert.ok(st.nextMessageId > m.id);
        }

        for (let step = 0; step < 3000; step++) {
          const store = ctx.store;
          const c = pick(clients);
          const ms = model.get(c);
          const x = r();
          if (ms === undefined || x < 0.03) {
            const record = session(c, { expiryInterval: Math.floor(r() * 1000), disconnectedAt: r() < 0.5 ? null : step });
            store.putSession(record);
            if (ms === undefined) model.set(c, { record, subs: new Map(), inbound: new Set(), queue: new Map(), lastSeq: 0, sentSeq: 0 });
            else ms.record = record;
          } else if (x < 0.05) {
            store.deleteSession(c);
            model.delete(c);
          } else if (x < 0.45) {
            let m: StoredMessage;
            if (recent.length > 0 && r() < 0.3) m = pick(recent);
            else {
              m = message(nextId++, { payload: Buffer.alloc(Math.floor(r() * 40), step & 0xff), properties: r() < 0.2 ? FULL_PROPS : undefined });
              if (m.properties === undefined) delete m.properties;
              recent.push(m);
              if (recent.length > 20) recent.shift();
            }
            const e = entry(ms.lastSeq + 1 + Math.floor(r() * 3), m, r() < 0.2 ? { subscriptionIds: [step] } : {});
            store.enqueue(c, e);
            ms.queue.set(e.seq, e);
            ms.lastSeq = e.seq;
          } else if (x < 0.75) {
            const keys = [...ms.queue.keys()];
            const seq = keys.length > 0 && r() < 0.9 ? pick(keys) : ms.lastSeq + 100;
            store.dequeue(c, seq);
            ms.queue.delete(seq);
          } else if (x < 0.8) {
            const seq = Math.floor(r() * (ms.lastSeq + 1));
            store.markSent(c, seq);
            if (seq > ms.sentSeq) ms.sentSeq = seq;
          } else if (x < 0.85) {
            const keys = [...ms.queue.keys()];
            if (keys.length > 0) {
              const seq = pick(keys);
              store.markReleased(c, seq);
              ms.queue.set(seq, { ...ms.queue.get(seq)!, state: QueueState.Released });
            }
          } else if (x < 0.88) {
            const id = Math.floor(r() * 5);
            if (r() < 0.6) {
              store.addInboundQos2(c, id);
              ms.inbound.add(id);
            } else {
              store.removeInboundQos2(c, id);
              ms.inbound.delete(id);
            }
          } else if (x < 0.91) {
            const f = pick(['a', 'b/#', '$share/g/c']);
            if (r() < 0.7) {
              const sub: SubscriptionRecord = { filter: f, qos: pick([0, 1, 2] as const), noLocal: r() < 0.5, retainAsPublished: r() < 0.5, retainHandling: pick([0, 1, 2] as const) };
              if (r() < 0.5) sub.subscriptionId = step + 1;
              store.putSubscription(c, sub);
              ms.subs.set(f, sub);
            } else {
              store.deleteSubscription(c, f);
              ms.subs.delete(f);
            }
          } else if (x < 0.95) {
            const topic = pick(['r/0', 'r/1', 'r/2']);
            if (r() < 0.6 && recent.length > 0) {
              const m = pick(recent);
              store.setRetained(topic, m);
              retained.set(topic, m);
            } else {
              store.setRetained(topic, null);
              retained.delete(topic);
            }
          } else if (x < 0.99) {
            await store.commit();
          } else {
            await check();
            await checkLoaded();
          }
        }
        await ctx.store.commit();
        await check();
        await checkLoaded();
        await check();
      }));

    it('is an error to use a closed store', () =>
      withStore(async ({ store }) => {
        await store.close();
        const isClosed = (err: unknown): boolean => err instanceof StoreError && err.code === 'PETREL_ERR_STORE_CLOSED';
        assert.throws(() => store.putSession(session('a')), isClosed);
        assert.throws(() => store.dequeue('a', 1), isClosed);
        await assert.rejects(store.commit(), isClosed);
        await assert.rejects(store.readQueue('a', 0, 1), isClosed);
        await assert.rejects(store.close(), isClosed);
      }));

    it('survives close and reopen (persistent stores), and close() commits what is pending', async (t) => {
      const probe = await makeStore();
      const persistent = probe.reopen !== undefined;
      await probe.cleanup();
      if (!persistent) {
        t.skip('not a persistent store');
        return;
      }
      await withStore(async (ctx) => {
        const { store } = ctx;
        const sub: SubscriptionRecord = { filter: 'x/+', qos: 2, noLocal: true, retainAsPublished: true, retainHandling: 1, subscriptionId: 9 };
        const m = message(3, { properties: FULL_PROPS });
        const ret = message(4, { topic: 'keep', retain: true });
        store.putSession(session('a', { will: { topic: 'w', payload: Buffer.from('bye'), qos: 1, retain: false, delayInterval: 0 } }));
        store.putSubscription('a', sub);
        store.enqueue('a', entry(1, m, { subscriptionIds: [9] }));
        store.enqueue('a', entry(2, message(5)));
        store.markSent('a', 1);
        store.addInboundQos2('a', 77);
        store.setRetained('keep', ret);
        await store.commit();
        // Uncommitted writes: close() commits them.
        store.enqueue('a', entry(3, message(6)));
        store.dequeue('a', 2);
        store.markReleased('a', 1);
        store.markSent('a', 3);
        const st = await ctx.reload();
        const a = byClient(st, 'a');
        assert.deepEqual(a.session.will, { topic: 'w', payload: Buffer.from('bye'), qos: 1, retain: false, delayInterval: 0 });
        assert.deepEqual(a.subscriptions, [sub]);
        assert.deepEqual(a.inboundQos2, [77]);
        assert.deepEqual(a.queue, { count: 2, bytes: m.payload.length + message(6).payload.length, lastSeq: 3, sentSeq: 3 });
        assert.deepEqual(st.retained, [ret]);
        assert.deepEqual(await ctx.store.readQueue('a', 0, 10), [
          entry(1, m, { subscriptionIds: [9], state: QueueState.Released }),
          entry(3, message(6)),
        ]);
        assert.ok(st.nextMessageId > 6);
      });
    });
  });
}
