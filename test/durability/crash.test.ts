// Durable by default: nothing acknowledged is ever lost (ARCHITECTURE.md,
// "Durability rule"). Real `petrel` processes on a temporary data dir, killed
// with SIGKILL at random moments (the seed is printed), restarted, and checked
// against what the clients were told.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kill, startPetrel, type PetrelProcess } from './petrel-process.js';
import { prng } from '../helpers/random.js';
import { Peer, type Received } from '../helpers/peer.js';
import { sleep } from '../helpers/wait.js';

const KILL_POINTS = Number(process.env.PETREL_KILL_POINTS ?? 5);
const SEED = Number(process.env.PETREL_SEED ?? Date.now() % 1_000_000);
const rand = prng(SEED);
const dirs: string[] = [];
console.log(`durability seed ${SEED} (PETREL_SEED=${SEED} replays it), ${KILL_POINTS} kill points per scenario`);

function dataDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'petrel-crash-'));
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const seqOf = (r: Received) => Number(r.packet.payload.toString());

/**
 * Wait until cond() holds, or until nothing new arrived for quietMs (then return anyway, and the caller's
 * assertions say what is missing). quietMs is long, so that a stalled process (two test files and their
 * brokers share two cores) is not taken for a lost message.
 */
async function settle(cond: () => boolean, progress: () => number, quietMs = 15_000, maxMs = 60_000): Promise<void> {
  const start = Date.now();
  let last = progress();
  let lastChange = Date.now();
  while (!cond() && Date.now() - start < maxMs) {
    await sleep(20);
    await new Promise((r) => setImmediate(r)); // what arrived during a stall is read before it is counted
    const now = progress();
    if (now !== last) {
      last = now;
      lastChange = Date.now();
    } else if (Date.now() - lastChange > quietMs) return;
  }
}

/**
 * Publish `total` messages (payload = sequence number) with a window of in-flight messages, and SIGKILL the
 * broker as soon as `killAfter` of them were acknowledged (PUBACK, or PUBREC for QoS 2).
 */
async function publishUntilKilled(
  broker: PetrelProcess,
  pub: Peer,
  opts: { total: number; qos: 1 | 2; window: number; killAfter: number; topic: (seq: number) => string; retain?: boolean },
): Promise<{ acked: Set<number>; sent: Map<number, number> }> {
  const acked = new Set<number>();
  const sent = new Map<number, number>(); // seq -> packet id
  const seqByPid = new Map<number, number>();
  let killed = false;
  let next = 0;
  await new Promise<void>((resolve) => {
    const pump = (): void => {
      while (!killed && next < opts.total && pub.inflight < opts.window) {
        const seq = next++;
        const pid = pub.publish(opts.topic(seq), Buffer.from(String(seq)), opts.qos, opts.retain ?? false);
        sent.set(seq, pid);
        seqByPid.set(pid, seq);
      }
      if (next >= opts.total && pub.inflight === 0) resolve();
    };
    pub.onAcked = (pid) => {
      acked.add(seqByPid.get(pid)!);
      if (!killed && acked.size >= opts.killAfter) {
        killed = true;
        broker.child.kill('SIGKILL');
        resolve();
      }
    };
    pub.onCompleted = () => pump();
    pump();
  });
  await broker.exited;
  pub.destroy();
  return { acked, sent };
}

function killPoint(total: number): number {
  // Anywhere from early to the very end of the run.
  return 1 + Math.floor(rand() * total);
}

describe(`SIGKILL never loses an acknowledged message (kill points from seed ${SEED}: PETREL_SEED=${SEED} replays them)`, () => {
  for (let k = 0; k < KILL_POINTS; k++) {
    it(`QoS 1 queued for an offline persistent session: every PUBACKed message arrives after restart (kill point ${k + 1})`, async () => {
      const dir = dataDir();
      let broker = await startPetrel(['--data-dir', dir]);
      const sub = new Peer();
      await sub.connect(broker.port, { clientId: 'sub', clean: false });
      assert.equal((await sub.subscribe('d/#', 1)).reasonCodes[0], 1);
      sub.disconnect();
      await sub.closed;
      const pub = new Peer();
      await pub.connect(broker.port, { clientId: 'pub', clean: true });
      const total = 10_000;
      const killAfter = killPoint(total);
      const { acked } = await publishUntilKilled(broker, pub, { total, qos: 1, window: 200, killAfter, topic: (s) => `d/${s % 16}` });

      broker = await startPetrel(['--data-dir', dir]);
      const connack = await sub.connect(broker.port, { clientId: 'sub', clean: false });
      assert.equal(connack.sessionPresent, true, 'the persistent session survived');
      // Messages may arrive in the same read as CONNACK: look at everything received.
      const got = new Set<number>();
      await settle(() => {
        for (let i = got.size; i < sub.received.length; i++) got.add(seqOf(sub.received[i]!));
        return [...acked].every((s) => got.has(s));
      }, () => sub.received.length);
      for (const r of sub.received) got.add(seqOf(r));
      const duplicates = sub.received.length - got.size;
      const lost = [...acked].filter((s) => !got.has(s));
      console.log(`  kill after ${killAfter} acks: acked ${acked.size}, received ${got.size}, duplicates ${duplicates}, lost ${lost.length}`);
      assert.deepEqual(lost, [], 'acknowledged messages lost');
      sub.disconnect();
      assert.deepEqual(await kill(broker, 'SIGTERM'), { code: 0, signal: null });
    });
  }

  for (let k = 0; k < KILL_POINTS; k++) {
    it(`QoS 2 exactly once across a crash: PUBRECed messages arrive, and no message reaches the application twice (kill point ${k + 1})`, async () => {
      const dir = dataDir();
      let broker = await startPetrel(['--data-dir', dir]);
      const sub = new Peer();
      await sub.connect(broker.port, { clientId: 'sub2', clean: false });
      assert.equal((await sub.subscribe('e/#', 2)).reasonCodes[0], 2);
      sub.disconnect();
      await sub.closed;
      const pub = new Peer();
      await pub.connect(broker.port, { clientId: 'pub2', clean: false });
      const total = 5_000;
      const killAfter = killPoint(total);
      const { acked, sent } = await publishUntilKilled(broker, pub, { total, qos: 2, window: 100, killAfter, topic: (s) => `e/${s % 8}` });

      broker = await startPetrel(['--data-dir', dir]);
      // The publisher resumes its session: PUBREL for what was PUBRECed, PUBLISH with DUP for the rest.
      // The broker must recognise re-sent packet ids it already stored [MQTT-4.3.3-9].
      const pc = await pub.connect(broker.port, { clientId: 'pub2', clean: false });
      assert.equal(pc.sessionPresent, true);
      pub.resume();
      await settle(() => pub.inflight === 0, () => pub.inflight);
      assert.equal(pub.inflight, 0, 'every QoS 2 flow of the publisher completed after restart');
      pub.disconnect();

      const connack = await sub.connect(broker.port, { clientId: 'sub2', clean: false });
      assert.equal(connack.sessionPresent, true);
      const deliveredNow = (): Map<number, number> => {
        const m = new Map<number, number>();
        for (const r of sub.received) if (r.delivered) m.set(seqOf(r), (m.get(seqOf(r)) ?? 0) + 1);
        return m;
      };
      await settle(() => deliveredNow().size >= sent.size, () => sub.received.length);
      const delivered = deliveredNow();
      const lost = [...acked].filter((s) => !delivered.has(s));
      const twice = [...delivered].filter(([, n]) => n > 1).map(([s]) => s);
      const notSent = [...delivered.keys()].filter((s) => !sent.has(s));
      console.log(`  kill after ${killAfter} PUBRECs: sent ${sent.size}, acked ${acked.size}, delivered ${delivered.size}, twice ${twice.length}`);
      assert.deepEqual(lost, [], 'PUBRECed messages lost');
      assert.deepEqual(twice, [], 'messages delivered twice to the application');
      assert.deepEqual(notSent, []);
      assert.equal(delivered.size, sent.size, 'every message the publisher completed is delivered once');
      sub.disconnect();
      assert.deepEqual(await kill(broker, 'SIGTERM'), { code: 0, signal: null });
    });
  }

  for (let k = 0; k < KILL_POINTS; k++) {
    it(`retained messages: the last acknowledged value of every topic survives (kill point ${k + 1})`, async () => {
      const dir = dataDir();
      let broker = await startPetrel(['--data-dir', dir]);
      const pub = new Peer();
      await pub.connect(broker.port, { clientId: 'rpub', clean: true });
      const total = 4_000;
      const topics = 500;
      const killAfter = killPoint(total);
      const { acked, sent } = await publishUntilKilled(broker, pub, {
        total, qos: 1, window: 100, killAfter, retain: true, topic: (s) => `r/${s % topics}`,
      });

      broker = await startPetrel(['--data-dir', dir]);
      const sub = new Peer();
      await sub.connect(broker.port, { clientId: 'rsub', clean: true });
      await sub.subscribe('r/#', 1);
      // Every topic with an acknowledged value first; then whatever else comes until it is quiet for 1 s.
      const missing = new Set([...acked].map((s) => `r/${s % topics}`));
      let seen = 0;
      await settle(() => {
        for (; seen < sub.received.length; seen++) missing.delete(sub.received[seen]!.packet.topic);
        return missing.size === 0;
      }, () => sub.received.length);
      await settle(() => false, () => sub.received.length, 1000, 20_000);
      const value = new Map<string, number>();
      for (const r of sub.received) {
        assert.equal(r.packet.retain, true, 'sent because of the subscription: RETAIN 1 [MQTT-3.3.1-8]');
        value.set(r.packet.topic, seqOf(r));
      }
      let checked = 0;
      for (let t = 0; t < topics; t++) {
        const ackedSeqs = [...acked].filter((s) => s % topics === t);
        if (ackedSeqs.length === 0) continue;
        const lastAcked = Math.max(...ackedSeqs);
        const got = value.get(`r/${t}`);
        assert.ok(got !== undefined, `retained message of r/${t} lost (last acked ${lastAcked})`);
        assert.ok(got >= lastAcked && sent.has(got) && got % topics === t, `r/${t}: retained ${got}, last acked ${lastAcked}`);
        checked++;
      }
      console.log(`  kill after ${killAfter} acks: ${checked} topics checked, ${value.size} retained`);
      sub.disconnect();
      assert.deepEqual(await kill(broker, 'SIGTERM'), { code: 0, signal: null });
    });
  }

  for (let k = 0; k < KILL_POINTS; k++) {
    it(`sessions and subscriptions: every SUBACKed subscription of a persistent session survives (kill point ${k + 1})`, async () => {
      const dir = dataDir();
      let broker = await startPetrel(['--data-dir', dir]);
      const n = 150;
      const killAfter = 1 + Math.floor(rand() * n);
      const subacked: string[] = [];
      const peers: Peer[] = [];
      let killed = false;
      // Clients connect and subscribe concurrently, some in 3.1.1 (clean session 0), some in 5.0 (expiry).
      await Promise.all(
        Array.from({ length: n }, async (_, i) => {
          const p = new Peer();
          peers.push(p);
          const id = `s${i}`;
          try {
            await p.connect(broker.port, { clientId: id, clean: false, version: i % 2 === 0 ? 5 : 4, sessionExpiry: 3600 });
            const suback = await p.subscribe(`s/${id}`, 1);
            if (suback.reasonCodes[0] !== 1) return;
            subacked.push(id);
            if (subacked.length >= killAfter && !killed) {
              killed = true;
              broker.child.kill('SIGKILL');
            }
          } catch {
            // the broker went away under this client
          }
        }),
      );
      if (!killed) broker.child.kill('SIGKILL');
      await broker.exited;
      for (const p of peers) p.destroy();

      broker = await startPetrel(['--data-dir', dir]);
      const pub = new Peer();
      await pub.connect(broker.port, { clientId: 'spub', clean: true });
      for (const id of subacked) pub.publish(`s/${id}`, Buffer.from(id), 1);
      await settle(() => pub.inflight === 0, () => pub.inflight);
      assert.equal(pub.inflight, 0);
      for (const id of subacked) {
        const i = Number(id.slice(1));
        const p = new Peer();
        const connack = await p.connect(broker.port, { clientId: id, clean: false, version: i % 2 === 0 ? 5 : 4, sessionExpiry: 3600 });
        assert.equal(connack.sessionPresent, true, `session ${id} survived`);
        const msg = await p.message(() => true, 5000);
        assert.equal(msg.topic, `s/${id}`, `subscription of ${id} survived`);
        p.disconnect();
      }
      console.log(`  kill after ${killAfter} SUBACKs: ${subacked.length} sessions checked`);
      pub.disconnect();
      assert.deepEqual(await kill(broker, 'SIGTERM'), { code: 0, signal: null });
    });
  }

  for (let k = 0; k < KILL_POINTS; k++) {
    it(`outbound in flight: messages sent but not acknowledged are re-sent with DUP and the same packet id after restart (kill point ${k + 1})`, async () => {
      const dir = dataDir();
      let broker = await startPetrel(['--data-dir', dir]);
      const sub = new Peer();
      sub.autoAck = false; // keep everything in flight at the broker
      await sub.connect(broker.port, { clientId: 'fsub', clean: false });
      await sub.subscribe('f/#', 1);
      const pub = new Peer();
      await pub.connect(broker.port, { clientId: 'fpub', clean: true });
      const total = 3_000;
      const killAfter = killPoint(total);
      const { acked } = await publishUntilKilled(broker, pub, { total, qos: 1, window: 100, killAfter, topic: () => 'f/x' });
      sub.destroy();
      const firstPid = new Map<number, number>();
      for (const r of sub.received) if (!firstPid.has(seqOf(r))) firstPid.set(seqOf(r), r.packet.packetId);

      broker = await startPetrel(['--data-dir', dir]);
      sub.received.length = 0;
      sub.autoAck = true;
      const connack = await sub.connect(broker.port, { clientId: 'fsub', clean: false });
      assert.equal(connack.sessionPresent, true);
      const resentBy = new Map<number, Received>();
      await settle(() => {
        for (const r of sub.received) if (!resentBy.has(seqOf(r))) resentBy.set(seqOf(r), r);
        return [...acked].every((s) => resentBy.has(s));
      }, () => sub.received.length);
      for (const r of sub.received) if (!resentBy.has(seqOf(r))) resentBy.set(seqOf(r), r);
      const lost = [...acked].filter((s) => !resentBy.has(s));
      assert.deepEqual(lost, [], 'acknowledged messages lost');
      // What the subscriber had received before the crash comes again, flagged DUP, with the same id [MQTT-4.3.1-?, 4.4.0-1].
      let resent = 0;
      for (const [seq, pid] of firstPid) {
        const r = resentBy.get(seq);
        if (r === undefined) continue; // sent but never PUBACKed to the publisher and not stored: allowed to be gone
        assert.equal(r.packet.dup, true, `message ${seq} re-sent with DUP`);
        assert.equal(r.packet.packetId, pid, `message ${seq} re-sent with its packet id`);
        resent++;
      }
      // Order is kept: re-sent messages first, in their original order [MQTT-4.6.0-1].
      const order = sub.received.map(seqOf);
      for (let i = 1; i < order.length; i++) assert.ok(order[i]! > order[i - 1]!, `order kept at ${i}: ${order[i - 1]} then ${order[i]}`);
      console.log(`  kill after ${killAfter} acks: in flight before crash ${firstPid.size}, re-sent with DUP ${resent}, received ${resentBy.size}`);
      assert.ok(firstPid.size === 0 || resent > 0, 'something was in flight and re-sent');
      sub.disconnect();
      assert.deepEqual(await kill(broker, 'SIGTERM'), { code: 0, signal: null });
    });
  }

  it('QoS 2 in flight to a live subscriber across a crash: delivered exactly once to the application', async () => {
    const dir = dataDir();
    let broker = await startPetrel(['--data-dir', dir]);
    const sub = new Peer();
    await sub.connect(broker.port, { clientId: 'qsub', clean: false });
    await sub.subscribe('q/#', 2);
    const pub = new Peer();
    await pub.connect(broker.port, { clientId: 'qpub', clean: false });
    const total = 4_000;
    const killAfter = 1000 + Math.floor(rand() * 2000);
    const { acked, sent } = await publishUntilKilled(broker, pub, { total, qos: 2, window: 100, killAfter, topic: () => 'q/x' });
    sub.destroy();
    broker = await startPetrel(['--data-dir', dir]);
    await sub.connect(broker.port, { clientId: 'qsub', clean: false });
    await pub.connect(broker.port, { clientId: 'qpub', clean: false });
    pub.resume();
    const deliveredCount = () => sub.received.filter((r) => r.delivered).length;
    await settle(() => new Set(sub.received.filter((r) => r.delivered).map(seqOf)).size >= sent.size, deliveredCount);
    const counts = new Map<number, number>();
    for (const r of sub.received) if (r.delivered) counts.set(seqOf(r), (counts.get(seqOf(r)) ?? 0) + 1);
    const twice = [...counts].filter(([, c]) => c > 1);
    const lost = [...acked].filter((s) => !counts.has(s));
    console.log(`  kill after ${killAfter}: sent ${sent.size}, delivered ${counts.size}, twice ${twice.length}`);
    assert.deepEqual(lost, []);
    assert.deepEqual(twice, []);
    assert.equal(counts.size, sent.size);
    sub.disconnect();
    pub.disconnect();
    assert.deepEqual(await kill(broker, 'SIGTERM'), { code: 0, signal: null });
  });
});

describe('wills across a crash', () => {
  it('the wills of connected clients, persistent or not, are published after a SIGKILL and restart [MQTT-3.1.2-8]', async () => {
    const dir = dataDir();
    let broker = await startPetrel(['--data-dir', dir]);
    const watcher = new Peer();
    await watcher.connect(broker.port, { clientId: 'watcher', clean: false });
    await watcher.subscribe('will/#', 1);
    watcher.disconnect();
    await watcher.closed;
    const will = (name: string, delay?: number) => ({
      topic: `will/${name}`, payload: Buffer.from(`${name} gone`), qos: 1 as const, retain: false,
      properties: delay === undefined ? undefined : { willDelayInterval: delay },
    });
    const clean311 = new Peer();
    await clean311.connect(broker.port, { clientId: 'w-clean', clean: true, will: will('clean311') });
    const v5noexpiry = new Peer();
    await v5noexpiry.connect(broker.port, { clientId: 'w-v5', clean: true, version: 5, sessionExpiry: 0, will: will('v5', 30) });
    const persistent = new Peer();
    await persistent.connect(broker.port, { clientId: 'w-persist', clean: false, will: will('persistent') });
    const gone = new Peer();
    await gone.connect(broker.port, { clientId: 'w-gone', clean: true, will: will('normal') });
    gone.disconnect(); // a normal DISCONNECT deletes the will [MQTT-3.14.4-3]
    await gone.closed;
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(await kill(broker, 'SIGKILL'), { code: null, signal: 'SIGKILL' });
    for (const p of [clean311, v5noexpiry, persistent]) p.destroy();

    broker = await startPetrel(['--data-dir', dir]);
    await watcher.connect(broker.port, { clientId: 'watcher', clean: false });
    // Session expiry 0 ends the session at once, so the v5 will does not wait for its 30 s delay.
    await settle(() => watcher.received.length >= 3, () => watcher.received.length);
    const topics = watcher.received.map((r) => r.packet.topic).sort();
    assert.deepEqual(topics, ['will/clean311', 'will/persistent', 'will/v5']);
    watcher.disconnect();
    assert.deepEqual(await kill(broker, 'SIGTERM'), { code: 0, signal: null });
  });
});

describe('graceful restart keeps everything', () => {
  it('in-flight, queued and retained state survive SIGTERM + restart, and SIGTERM exits 0 within 5 s', async () => {
    const dir = dataDir();
    let broker = await startPetrel(['--data-dir', dir]);
    const live = new Peer();
    live.autoAck = false;
    await live.connect(broker.port, { clientId: 'glive', clean: false });
    await live.subscribe('g/#', 1);
    const off = new Peer();
    await off.connect(broker.port, { clientId: 'goff', clean: false, version: 5, sessionExpiry: 600 });
    await off.subscribe('g/#', 2);
    off.disconnect();
    await off.closed;
    const pub = new Peer();
    await pub.connect(broker.port, { clientId: 'gpub', clean: true });
    for (let i = 0; i < 500; i++) pub.publish(`g/${i % 5}`, Buffer.from(String(i)), 1, i % 100 === 0);
    await settle(() => pub.inflight === 0 && live.received.length >= 500, () => live.received.length);
    assert.equal(pub.inflight, 0);
    const t0 = Date.now();
    const exit = await kill(broker, 'SIGTERM');
    const took = Date.now() - t0;
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(took < 5000, `shutdown took ${took} ms`);
    live.destroy();

    broker = await startPetrel(['--data-dir', dir]);
    live.received.length = 0;
    live.autoAck = true;
    assert.equal((await live.connect(broker.port, { clientId: 'glive', clean: false })).sessionPresent, true);
    await off.connect(broker.port, { clientId: 'goff', clean: false, version: 5, sessionExpiry: 600 });
    await settle(() => live.received.length >= 500 && off.received.length >= 500, () => live.received.length + off.received.length);
    assert.deepEqual(new Set(live.received.map(seqOf)).size, 500, 'in-flight messages re-sent');
    assert.ok(live.received.every((r) => r.packet.dup), 'all 500 were in flight: all re-sent with DUP');
    assert.deepEqual(new Set(off.received.map(seqOf)).size, 500, 'queued messages delivered');
    const r = new Peer();
    await r.connect(broker.port, { clientId: 'gret', clean: true });
    await r.subscribe('g/#', 0);
    await settle(() => r.received.length >= 1, () => r.received.length);
    await settle(() => false, () => r.received.length, 500, 5000); // anything more would come with it
    assert.deepEqual(r.received.map((x) => x.packet.topic).sort(), ['g/0']);
    assert.equal(seqOf(r.received[0]!), 400, 'the last retained value');
    for (const p of [live, off, r]) p.disconnect();
    assert.deepEqual(await kill(broker, 'SIGTERM'), { code: 0, signal: null });
  });
});
