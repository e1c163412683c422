// Crash points: a node killed (SIGKILL, by itself: PETREL_CRASH_AT=step:k, src/cluster/crash-points.ts) right
// after the k-th Redis command of a protocol step, before it acts on the reply. For each step and each k the
// test checks the promise: nothing acknowledged is lost, QoS 2 is delivered exactly once, a session survives.
// Real node processes on a private redis-server; the victim is a node of its own, started for one case.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connectMqtt, connectRetry, endAll, KeptStore, uniqueId } from '../helpers/mqttjs.js';
import { sleep, withTimeout } from '../helpers/wait.js';
import { startCluster, type Node, type TestCluster } from './nodes.js';

const LEASE = 1000;
const v5 = { protocolVersion: 5 as const };
const persistent = (clientId: string) => ({ ...v5, clientId, clean: false, properties: { sessionExpiryInterval: 600 } });

/** The victim killed itself at the armed point (not by a timeout, not at another point). */
async function crashed(node: Node, spec: string, ms = 15_000): Promise<void> {
  const r = await withTimeout(node.proc.exited, ms, `the crash at ${spec}`);
  assert.equal(r.signal, 'SIGKILL', `node ${node.id} ended by SIGKILL`);
  assert.match(node.proc.log(), new RegExp(`crash point ${spec}: killing this process`));
}

/** How many times each payload arrived. */
function counts(seen: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const s of seen) m.set(s, (m.get(s) ?? 0) + 1);
  return m;
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

let caseNo = 0;

/**
 * publish:k: the publisher's node dies once the batch that forwards its message (and records its QoS 2 state) was
 * sent (k = 0: before) and answered (k = 1), before PUBACK/PUBREC. The publisher resumes its session on a live
 * node and MQTT.js sends the unacknowledged PUBLISH again (same packet id, DUP).
 */
async function publishCase(c: TestCluster, k: number, qos: 1 | 2): Promise<{ delivered: number }> {
  const spec = `publish:${k}`;
  const victim = await c.start(`v${++caseNo}`, { PETREL_CRASH_AT: spec });
  const topic = `crash/pub/${uniqueId('t')}`;
  const sub = await connectMqtt(c.nodes[0]!.url, persistent(uniqueId('s')));
  await sub.client.subscribeAsync(topic, { qos });
  await sleep(200);
  const pubId = uniqueId('p');
  const outgoingStore = new KeptStore();
  const pub = await connectMqtt(victim.url, { ...persistent(pubId), outgoingStore });
  pub.client.publish(topic, 'm', { qos });
  await crashed(victim, spec);
  await endAll(pub.client);
  // Resumed elsewhere, MQTT.js resends what it had not seen acknowledged.
  const again = await connectRetry(c.nodes[1]!.url, { ...persistent(pubId), outgoingStore });
  assert.equal(again.connack.sessionPresent, true, 'the publisher resumed its session');
  await waitFor(() => sub.messages.on(topic).length >= 1, 15_000, 'the message');
  // Completed on the new connection: PUBACK, or PUBREC/PUBREL/PUBCOMP.
  await waitFor(() => (outgoingStore as unknown as { _inflights: Map<unknown, unknown> })._inflights.size === 0, 10_000, 'the resent PUBLISH to complete');
  await sleep(500);
  const delivered = sub.messages.on(topic).length;
  await endAll(sub.client, again.client);
  return { delivered };
}

/**
 * deliver:k: the subscriber's node dies after reading its inbox (k = 1) or after the batch that queues the message
 * for the session and acknowledges the entry (k = 2). The subscriber resumes on a live node.
 */
async function deliverCase(c: TestCluster, k: number, qos: 1 | 2): Promise<{ delivered: number }> {
  const spec = `deliver:${k}`;
  const victim = await c.start(`v${++caseNo}`, { PETREL_CRASH_AT: spec });
  const topic = `crash/deliver/${uniqueId('t')}`;
  const subId = uniqueId('s');
  const incomingStore = new KeptStore();
  const seen: string[] = [];
  const sub = await connectMqtt(victim.url, { ...persistent(subId), incomingStore });
  sub.client.on('message', (_t, p) => seen.push(p.toString()));
  await sub.client.subscribeAsync(topic, { qos });
  await sleep(300);
  const pub = await connectMqtt(c.nodes[0]!.url, v5);
  await withTimeout(pub.client.publishAsync(topic, 'm', { qos }), 5000, 'the acknowledgement');
  await crashed(victim, spec);
  await endAll(sub.client);
  const back = await connectRetry(c.nodes[1]!.url, { ...persistent(subId), incomingStore });
  assert.equal(back.connack.sessionPresent, true, 'the subscriber resumed its session');
  back.client.on('message', (_t, p) => seen.push(p.toString()));
  for (const m of back.messages.messages) seen.push(m.payload.toString());
  await waitFor(() => seen.length >= 1, 15_000, 'the message');
  await sleep(1000);
  await endAll(pub.client, back.client);
  return { delivered: counts(seen).get('m') ?? 0 };
}

/**
 * claim:k: a CONNECT taking over a stored session with queued messages; the claiming node dies after CLAIM (1),
 * after asking the old owner to let go (2), after loading the session (3), after loading its seen ids (4).
 * The client then connects to a third node: its session is whole.
 */
async function claimCase(c: TestCluster, k: number): Promise<void> {
  const spec = `claim:${k}`;
  const victim = await c.start(`v${++caseNo}`, { PETREL_CRASH_AT: spec });
  const topic = `crash/claim/${uniqueId('t')}`;
  const subId = uniqueId('s');
  const first = await connectMqtt(c.nodes[0]!.url, persistent(subId));
  await first.client.subscribeAsync(topic, { qos: 1 });
  await endAll(first.client);
  const pub = await connectMqtt(c.nodes[0]!.url, v5);
  for (const p of ['q1', 'q2', 'q3']) await pub.client.publishAsync(topic, p, { qos: 1 });
  const attempt = connectMqtt(victim.url, persistent(subId), 8000).then(
    (x) => x,
    () => null,
  );
  await crashed(victim, spec);
  const lost = await attempt;
  if (lost !== null) await endAll(lost.client);
  const back = await connectRetry(c.nodes[1]!.url, persistent(subId));
  assert.equal(back.connack.sessionPresent, true, `session present after a crash at ${spec}`);
  await back.messages.count(topic, 3, 15_000);
  await pub.client.publishAsync(topic, 'after', { qos: 1 });
  await back.messages.count(topic, 4, 10_000);
  const got = new Set(back.messages.on(topic).map((m) => m.payload.toString()));
  for (const p of ['q1', 'q2', 'q3', 'after']) assert.ok(got.has(p), `${p} delivered after a crash at ${spec}`);
  await endAll(pub.client, back.client);
}

describe('cluster crash points: a node killed after the k-th Redis command of a step', { timeout: 600_000 }, () => {
  it('publish: the publisher resumes elsewhere and resends; QoS 1 delivered, QoS 2 exactly once', async () => {
    const c = await startCluster(['a', 'b'], { leaseMs: LEASE });
    try {
      for (const k of [0, 1]) {
        const r1 = await publishCase(c, k, 1);
        console.log(`# crash at publish:${k}, QoS 1: delivered ${r1.delivered} time(s)`);
        assert.ok(r1.delivered >= 1);
        const r2 = await publishCase(c, k, 2);
        console.log(`# crash at publish:${k}, QoS 2: delivered ${r2.delivered} time(s)`);
        assert.equal(r2.delivered, 1, `QoS 2 exactly once after a crash at publish:${k}`);
      }
    } finally {
      await c.stop();
    }
  });

  it("deliver: the subscriber's node dies reading its inbox; the acknowledged message reaches the resumed session (QoS 2 once)", async () => {
    const c = await startCluster(['a', 'b'], { leaseMs: LEASE });
    try {
      for (const k of [1, 2]) {
        const r1 = await deliverCase(c, k, 1);
        console.log(`# crash at deliver:${k}, QoS 1: delivered ${r1.delivered} time(s)`);
        assert.ok(r1.delivered >= 1);
        const r2 = await deliverCase(c, k, 2);
        console.log(`# crash at deliver:${k}, QoS 2: delivered ${r2.delivered} time(s)`);
        assert.equal(r2.delivered, 1, `QoS 2 exactly once after a crash at deliver:${k}`);
      }
    } finally {
      await c.stop();
    }
  });

  it('claim: a CONNECT whose node dies half-way through the takeover leaves the session whole for the next', async () => {
    const c = await startCluster(['a', 'b'], { leaseMs: LEASE });
    try {
      for (const k of [1, 2, 3, 4]) await claimCase(c, k);
    } finally {
      await c.stop();
    }
  });

  it("adopt: an adopter that dies half-way through a dead node's adoption leaves it to the next; nothing acknowledged lost", async () => {
    // Per k: node d (the dead one) holds a persistent session that is offline with queued messages; v (armed) is the
    // only live node when d is killed, and acknowledges 5 more messages routed to d's inbox before it adopts d.
    // v dies at the crash point; a fresh node n adopts both; the client resumes on n with all 10 messages.
    for (const k of [1, 2, 3, 4, 5, 6, 8, 10, 12, 14, 16, 18, 20, 22]) {
      const spec = `adopt:${k}`;
      const c = await startCluster(['d'], { leaseMs: LEASE });
      try {
        const victim = await c.start('v', { PETREL_CRASH_AT: spec });
        const topic = `crash/adopt/${uniqueId('t')}`;
        const subId = uniqueId('s');
        const s = await connectMqtt(c.nodes[0]!.url, persistent(subId));
        await s.client.subscribeAsync(topic, { qos: 1 });
        await endAll(s.client);
        await sleep(300);
        const pub = await connectMqtt(victim.url, v5);
        for (let i = 0; i < 5; i++) await pub.client.publishAsync(topic, `before${i}`, { qos: 1 });
        await c.kill9(c.nodes[0]!);
        // Acknowledged by v while d's routes still stand: these land in d's inbox.
        for (let i = 0; i < 5; i++) await withTimeout(pub.client.publishAsync(topic, `after${i}`, { qos: 1 }), 5000, 'ack');
        await crashed(victim, spec, 20_000);
        await endAll(pub.client);
        const n = await c.start('n');
        const back = await connectRetry(n.url, persistent(subId), 30_000);
        assert.equal(back.connack.sessionPresent, true, `session present after a crash at ${spec}`);
        await back.messages.count(topic, 10, 20_000).catch(() => {});
        const got = new Set(back.messages.on(topic).map((m) => m.payload.toString()));
        const missing = [0, 1, 2, 3, 4].flatMap((i) => [`before${i}`, `after${i}`]).filter((p) => !got.has(p));
        console.log(`# crash at ${spec}: ${got.size} of 10 acknowledged messages delivered`);
        assert.deepEqual(missing, [], `acknowledged messages lost after a crash at ${spec}`);
        await endAll(back.client);
      } finally {
        await c.stop();
      }
    }
  });
});
