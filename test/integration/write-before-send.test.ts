// Write before you send (ARCHITECTURE.md): with a store whose commit stays
// pending until the test releases it, nothing that depends on a write leaves the
// broker before that write is committed — PUBACK, PUBREC, PUBCOMP, SUBACK,
// UNSUBACK, the CONNACK of a persistent session, an outbound QoS 2 PUBLISH to a
// stored session, and the deliveries of an inbound QoS 2 message (which must
// not reach subscribers before its packet id is stored). Deterministic: the
// broker cannot send them however the turns fall, until the commit resolves.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Packet } from '../../src/protocol/packets.js';
import { MemoryStore } from '../../src/store/index.js';
import { startBroker } from '../helpers/broker.js';
import { Peer } from '../helpers/peer.js';
import { sleep, until } from '../helpers/wait.js';

/** A memory store that claims durability and commits only when released (or at once, while not holding). */
class HeldStore extends MemoryStore {
  override readonly durable = true;
  holding = false;
  commits = 0;
  private readonly waiting: (() => void)[] = [];
  override async commit(): Promise<void> {
    await super.commit();
    if (!this.holding) {
      this.commits++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.commits++;
  }
  get pending(): number {
    return this.waiting.length;
  }
  release(): void {
    this.holding = false;
    for (const r of this.waiting.splice(0)) r();
  }
}

const kinds = (ps: Packet[]): number[] => ps.map((p) => p.type);

describe('write before send, with a commit held pending', () => {
  it('no ack, SUBACK, UNSUBACK, persistent CONNACK, outbound QoS 2 PUBLISH or delivery of an inbound QoS 2 message leaves before its commit', async () => {
    const store = new HeldStore();
    const tb = await startBroker({ store });
    try {
      const sub = new Peer(); // stored session, QoS 2 subscription
      await sub.connect(tb.port, { clientId: 'wbs-sub', clean: true, version: 5, sessionExpiry: 3600 });
      await sub.subscribe('w/#', 2);
      const sub0 = new Peer(); // clean session, QoS 0 subscription
      await sub0.connect(tb.port, { clientId: 'wbs-sub0', clean: true, version: 5 });
      await sub0.subscribe('w/#', 0);
      const pub = new Peer(); // stored session, so its inbound QoS 2 ids are stored
      await pub.connect(tb.port, { clientId: 'wbs-pub', clean: true, version: 5, sessionExpiry: 3600 });
      const base = { sub: sub.packets.length, sub0: sub0.packets.length, pub: pub.packets.length };

      store.holding = true;
      pub.publish('w/two', Buffer.from('q2'), 2);
      pub.publish('w/one', Buffer.from('q1'), 1);
      sub.sendPacket({ type: 8, packetId: 900, subscriptions: [{ filter: 'other/#', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }] });
      sub.sendPacket({ type: 10, packetId: 901, filters: ['nothing/here'] });
      const late = new Peer();
      const lateConnack = late.connect(tb.port, { clientId: 'wbs-late', clean: true, version: 5, sessionExpiry: 60 });
      lateConnack.catch(() => {});
      await until(() => store.pending > 0, 5000);
      await sleep(300);
      assert.ok(store.pending > 0, 'the commit is still held');
      assert.deepEqual(kinds(pub.packets.slice(base.pub)), [], 'no PUBREC / PUBACK before the commit');
      assert.deepEqual(kinds(sub.packets.slice(base.sub)), [], 'no QoS 2 PUBLISH, QoS 1 PUBLISH, SUBACK or UNSUBACK to the stored subscriber');
      const early0 = sub0.packets.slice(base.sub0).filter((p) => p.type === 3) as { topic: string }[];
      assert.ok(!early0.some((p) => p.topic === 'w/two'), 'the inbound QoS 2 message reaches no subscriber, not even a QoS 0 one, before its packet id is committed');
      assert.equal(late.packets.length, 0, 'no CONNACK of a persistent session before its commit');

      store.release();
      await lateConnack;
      await until(() => pub.packets.length - base.pub >= 2 && sub.packets.length - base.sub >= 4 && sub0.packets.length - base.sub0 >= 2, 10_000);
      const pubGot = kinds(pub.packets.slice(base.pub));
      assert.ok(pubGot.includes(5) && pubGot.includes(4), `PUBREC and PUBACK after the commit (${pubGot})`);
      const subGot = kinds(sub.packets.slice(base.sub));
      assert.ok(subGot.includes(9) && subGot.includes(11), `SUBACK and UNSUBACK after the commit (${subGot})`);
      assert.equal(sub.received.length, 2, 'both messages delivered to the stored subscriber after the commit');
      assert.equal(sub0.received.length, 2, 'the QoS 2 message reached the QoS 0 subscriber after the commit');

      // PUBREL -> PUBCOMP waits for the removal of the inbound id.
      await until(() => pub.inflight === 0 || pub.packets.some((p) => p.type === 5), 5000);
      const before = pub.packets.length;
      store.holding = true;
      // The peer answered the PUBREC with PUBREL already; hold the next commit and send another QoS 2 round.
      pub.publish('w/again', Buffer.from('q2b'), 2);
      await until(() => store.pending > 0, 5000);
      await sleep(200);
      assert.deepEqual(kinds(pub.packets.slice(before)).filter((t) => t === 5 || t === 7), [], 'no PUBREC or PUBCOMP while held');
      store.release();
      await until(() => pub.inflight === 0, 10_000);
      assert.equal(pub.inflight, 0, 'the QoS 2 exchange completed after the commit');
      for (const p of [sub, sub0, pub, late]) p.disconnect();
    } finally {
      store.release();
      await tb.close();
    }
  });
});
