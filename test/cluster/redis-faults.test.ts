// Redis faults under QoS 1 / QoS 2 load, with real processes: redis-server killed with SIGKILL and restarted on
// its AOF (appendfsync always), the nodes' Redis connections killed (CLIENT KILL), and Redis paused for writes
// (CLIENT PAUSE WRITE). Acknowledgements are delayed, never lost, and QoS 2 is never doubled.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connectMqtt, endAll, uniqueId } from '../helpers/mqttjs.js';
import { sleep, withTimeout } from '../helpers/wait.js';
import { startCluster, type TestCluster } from './nodes.js';

const v5 = { protocolVersion: 5 as const };

/** Publish N messages on node A to a persistent subscriber on node B, running `fault` once `at` were acked. */
async function underLoad(c: TestCluster, qos: 1 | 2, fault: () => Promise<void>, N = 300, at = 100): Promise<{ acked: number; lost: number; duplicates: number; slowestAckMs: number }> {
  const topic = `fault/${qos}/${uniqueId('t')}`;
  const sub = await connectMqtt(c.nodes[1]!.url, { ...v5, clientId: uniqueId('fsub'), clean: false, properties: { sessionExpiryInterval: 600 } });
  await sub.client.subscribeAsync(topic, { qos });
  await sleep(300);
  const pub = await connectMqtt(c.nodes[0]!.url, { ...v5, clientId: uniqueId('fpub') });
  const acked: string[] = [];
  let slowest = 0;
  let faulted: Promise<void> | null = null;
  for (let i = 0; i < N; i++) {
    if (faulted === null && acked.length >= at) faulted = fault();
    const t = performance.now();
    await withTimeout(pub.client.publishAsync(topic, String(i), { qos }), 15_000, `the acknowledgement of message ${i}`);
    slowest = Math.max(slowest, performance.now() - t);
    acked.push(String(i));
  }
  await faulted;
  await sub.messages.until((m) => acked.every((a) => m.some((x) => x.payload.toString() === a)), 20_000, 'every acknowledged message');
  await sleep(500);
  const got = sub.messages.payloads(topic);
  await endAll(pub.client, sub.client);
  return { acked: acked.length, lost: acked.filter((a) => !got.includes(a)).length, duplicates: got.length - new Set(got).size, slowestAckMs: Math.round(slowest) };
}

describe('cluster: Redis faults', { timeout: 180_000 }, () => {
  it('redis-server killed with SIGKILL and restarted on its AOF (always): acknowledgements wait, none is lost', async () => {
    const c = await startCluster(['a', 'b'], { leaseMs: 5000 });
    try {
      const r = await underLoad(c, 1, async () => {
        await c.redis.kill9();
        await sleep(500);
        await c.redis.restart();
      });
      console.log(`# redis kill -9 + restart (AOF always), QoS 1: acked ${r.acked}, lost ${r.lost}, duplicates ${r.duplicates}, slowest ack ${r.slowestAckMs} ms`);
      assert.equal(r.lost, 0);
      const r2 = await underLoad(c, 2, async () => {
        await c.redis.kill9();
        await sleep(500);
        await c.redis.restart();
      });
      console.log(`# redis kill -9 + restart (AOF always), QoS 2: acked ${r2.acked}, lost ${r2.lost}, duplicates ${r2.duplicates}, slowest ack ${r2.slowestAckMs} ms`);
      assert.equal(r2.lost, 0);
      assert.equal(r2.duplicates, 0);
    } finally {
      await c.stop();
    }
  });

  it("the nodes' Redis connections killed (CLIENT KILL) and Redis paused for writes (CLIENT PAUSE): acks delayed, none lost, QoS 2 not doubled", async () => {
    const c = await startCluster(['a', 'b'], { leaseMs: 5000 });
    try {
      const killed = await underLoad(c, 2, async () => {
        await c.redis.command('CLIENT', 'KILL', 'TYPE', 'normal');
        await c.redis.command('CLIENT', 'KILL', 'TYPE', 'pubsub');
      });
      console.log(`# CLIENT KILL, QoS 2: acked ${killed.acked}, lost ${killed.lost}, duplicates ${killed.duplicates}, slowest ack ${killed.slowestAckMs} ms`);
      assert.equal(killed.lost, 0);
      assert.equal(killed.duplicates, 0);
      const paused = await underLoad(c, 1, async () => {
        await c.redis.command('CLIENT', 'PAUSE', 2000, 'WRITE');
      });
      console.log(`# CLIENT PAUSE 2000 WRITE, QoS 1: acked ${paused.acked}, lost ${paused.lost}, duplicates ${paused.duplicates}, slowest ack ${paused.slowestAckMs} ms`);
      assert.equal(paused.lost, 0);
      assert.ok(paused.slowestAckMs >= 1000, `an acknowledgement waited for the pause (slowest ${paused.slowestAckMs} ms)`);
      // Both nodes are still up (a pause shorter than the lease does not fence them).
      for (const n of c.nodes) assert.equal(n.proc.child.exitCode, null, `node ${n.id} still running`);
    } finally {
      await c.stop();
    }
  });
});
