// Three real `petrel --cluster` processes on one private redis-server, driven by MQTT.js: delivery across nodes
// at every QoS, routes, retained and shared subscriptions across nodes, sessions resumed and taken over on
// another node, and 200 racing double CONNECTs.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connectMqtt, endAll, uniqueId, type Connected } from '../helpers/mqttjs.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { startCluster, type TestCluster } from './nodes.js';

const v5 = { protocolVersion: 5 as const };
const persistent = (clientId: string) => ({ ...v5, clientId, clean: false, properties: { sessionExpiryInterval: 300 } });

describe('cluster: three nodes on one Redis', { timeout: 120_000 }, () => {
  let c: TestCluster;
  before(async () => {
    c = await startCluster(['a', 'b', 'c']);
  });
  after(async () => {
    await c?.stop();
  });
  const [A, B, C] = [0, 1, 2];
  const url = (i: number) => c.nodes[i]!.url;

  it('delivers across nodes at QoS 0, 1 and 2 in publish order, and sends nothing to a node without subscribers', async () => {
    const sub = await connectMqtt(url(B), persistent(uniqueId('xsub')));
    const other = await connectMqtt(url(C), v5);
    const pub = await connectMqtt(url(A), v5);
    try {
      await sub.client.subscribeAsync('x/#', { qos: 2 });
      await other.client.subscribeAsync('unrelated/#', { qos: 1 });
      await sleep(300);
      const added = async (i: number) => Number((await c.redis.command('XLEN', `petrel:n:${c.nodes[i]!.member}:in`)) ?? 0);
      const cBefore = await added(C);
      const N = 200;
      for (let i = 0; i < N; i++) await pub.client.publishAsync('x/q1', String(i), { qos: 1 });
      for (let i = 0; i < N; i++) await pub.client.publishAsync('x/q2', String(i), { qos: 2 });
      for (let i = 0; i < 20; i++) await pub.client.publishAsync('x/q0', String(i), { qos: 0 });
      await sub.messages.count('x/q1', N, 10_000);
      await sub.messages.count('x/q2', N, 10_000);
      await sleep(300);
      assert.deepEqual(sub.messages.payloads('x/q1'), Array.from({ length: N }, (_, i) => String(i)), 'QoS 1: each once, in order');
      assert.deepEqual(sub.messages.payloads('x/q2'), Array.from({ length: N }, (_, i) => String(i)), 'QoS 2: each once, in order');
      assert.ok(sub.messages.on('x/q0').length > 0, 'QoS 0 crosses too (at most once)');
      assert.ok(sub.messages.on('x/q2').every((m) => m.packet.qos === 2));
      // Node C subscribes to nothing that matched: no entry went to its inbox (the stream is trimmed as entries
      // are acknowledged, so XINFO's entries-added is what counts).
      const info = (await c.redis.command('XINFO', 'STREAM', `petrel:n:${c.nodes[C]!.member}:in`)) as unknown[];
      const addedTotal = Number(info[info.indexOf('entries-added') + 1]);
      assert.equal(addedTotal, 0, 'node C received no inbox entry');
      assert.equal(await added(C), cBefore);
    } finally {
      await endAll(sub.client, other.client, pub.client);
    }
  });

  it('propagates a new subscription to the other nodes quickly (SUBACK on B, first message from A)', async () => {
    const pub = await connectMqtt(url(A), v5);
    const delays: number[] = [];
    try {
      for (let trial = 0; trial < 15; trial++) {
        const topic = `route/${trial}/${uniqueId('t')}`;
        const sub = await connectMqtt(url(B), v5);
        await sub.client.subscribeAsync(topic, { qos: 1 });
        const t0 = performance.now();
        // Publish every 2 ms until the first arrives: the delay is how long A's route table lagged.
        let stop = false;
        const pumping = (async () => {
          while (!stop && performance.now() - t0 < 3000) {
            pub.client.publish(topic, 'p', { qos: 0 });
            await sleep(2);
          }
        })();
        await sub.messages.count(topic, 1, 3000);
        delays.push(performance.now() - t0);
        stop = true;
        await pumping;
        await endAll(sub.client);
      }
    } finally {
      await endAll(pub.client);
    }
    delays.sort((x, y) => x - y);
    const median = delays[Math.floor(delays.length / 2)]!;
    const max = delays[delays.length - 1]!;
    console.log(`# route propagation (SUBACK on B to first message published on A): median ${median.toFixed(1)} ms, max ${max.toFixed(1)} ms, n=${delays.length}`);
    assert.ok(max < 1000, `route propagation took ${max} ms`);
  });

  it('keeps retained messages cluster-wide, including their clearing', async () => {
    const topic = `ret/${uniqueId('r')}`;
    const a = await connectMqtt(url(A), v5);
    await a.client.publishAsync(topic, 'kept', { qos: 1, retain: true });
    await sleep(200);
    const onC = await connectMqtt(url(C), v5);
    await onC.client.subscribeAsync(topic, { qos: 1 });
    const got = await onC.messages.count(topic, 1, 3000);
    assert.equal(got[0]!.payload.toString(), 'kept');
    assert.equal(got[0]!.packet.retain, true);
    const b = await connectMqtt(url(B), v5);
    await b.client.publishAsync(topic, '', { qos: 1, retain: true });
    await sleep(300);
    const onA = await connectMqtt(url(A), v5);
    await onA.client.subscribeAsync(topic, { qos: 1 });
    await sleep(500);
    assert.equal(onA.messages.on(topic).length, 0, 'cleared on B: gone on A');
    await endAll(a.client, onC.client, b.client, onA.client);
  });

  it('gives each message of a shared subscription to one member across nodes', async () => {
    const members: Connected[] = [];
    for (const i of [A, A, B, B]) {
      const m = await connectMqtt(url(i), v5);
      await m.client.subscribeAsync('$share/g/jobs/#', { qos: 1 });
      members.push(m);
    }
    await sleep(300);
    const pub = await connectMqtt(url(C), v5);
    const N = 200;
    for (let i = 0; i < N; i++) await pub.client.publishAsync('jobs/x', String(i), { qos: 1 });
    await waitFor(() => members.reduce((n, m) => n + m.messages.messages.length, 0) >= N, 10_000, `${N} shared messages`);
    await sleep(500);
    const all = members.flatMap((m) => m.messages.payloads());
    assert.equal(all.length, N, 'no message twice');
    assert.equal(new Set(all).size, N, 'every message once');
    const onA = members[0]!.messages.messages.length + members[1]!.messages.messages.length;
    const onB = members[2]!.messages.messages.length + members[3]!.messages.messages.length;
    assert.ok(onA > 0 && onB > 0, `both nodes' members got messages (A ${onA}, B ${onB})`);
    await endAll(pub.client, ...members.map((m) => m.client));
  });

  it('resumes a session on another node: its offline queue at QoS 1 and 2, session present', async () => {
    const id = uniqueId('mover');
    const first = await connectMqtt(url(A), persistent(id));
    await first.client.subscribeAsync('move/1', { qos: 1 });
    await first.client.subscribeAsync('move/2', { qos: 2 });
    await endAll(first.client);
    await sleep(200);
    const pub = await connectMqtt(url(C), v5);
    for (let i = 0; i < 50; i++) {
      await pub.client.publishAsync('move/1', String(i), { qos: 1 });
      await pub.client.publishAsync('move/2', String(i), { qos: 2 });
    }
    const again = await connectMqtt(url(B), persistent(id));
    assert.equal(again.connack.sessionPresent, true);
    await again.messages.count('move/1', 50, 10_000);
    await again.messages.count('move/2', 50, 10_000);
    await sleep(300);
    assert.deepEqual(again.messages.payloads('move/1'), Array.from({ length: 50 }, (_, i) => String(i)));
    assert.deepEqual(again.messages.payloads('move/2'), Array.from({ length: 50 }, (_, i) => String(i)));
    // And it now receives on B what is published after the move.
    await pub.client.publishAsync('move/1', 'after', { qos: 1 });
    await again.messages.until((m) => m.some((x) => x.payload.toString() === 'after'), 3000, 'a message after the move');
    await endAll(pub.client, again.client);
  });

  it('takes a client id over across nodes: the old connection gets DISCONNECT 0x8E', async () => {
    const id = uniqueId('taken');
    const old = await connectMqtt(url(A), persistent(id));
    const reason = new Promise<number>((resolve) => old.client.on('disconnect', (p) => resolve(p.reasonCode ?? -1)));
    const now = await connectMqtt(url(B), persistent(id));
    assert.equal(await Promise.race([reason, sleep(5000).then(() => -2)]), 0x8e);
    assert.equal(now.connack.sessionPresent, true);
    await sleep(200);
    assert.equal(now.client.connected, true);
    await endAll(old.client, now.client);
  });

  it('ends 200 racing double CONNECTs (same client id on two nodes at once) with exactly one live connection each', async () => {
    const results: { id: string; live: number }[] = [];
    const open: Connected[] = [];
    for (let batch = 0; batch < 4; batch++) {
      const ids = Array.from({ length: 50 }, () => uniqueId('race'));
      const pairs = await Promise.all(
        ids.map(async (id) => {
          const tries = await Promise.allSettled([connectMqtt(url(A), { ...v5, clientId: id }, 10_000), connectMqtt(url(B), { ...v5, clientId: id }, 10_000)]);
          const ok = tries.flatMap((t) => (t.status === 'fulfilled' ? [t.value] : []));
          open.push(...ok);
          return { id, ok };
        }),
      );
      await sleep(1500);
      for (const p of pairs) results.push({ id: p.id, live: p.ok.filter((x) => x.client.connected).length });
    }
    await endAll(...open.map((o) => o.client));
    const wrong = results.filter((r) => r.live !== 1);
    assert.equal(results.length, 200);
    assert.deepEqual(wrong, [], 'every client id ends with exactly one live connection');
  });
});
