// What Redis's persistence setting keeps when redis-server is killed (SIGKILL) and restarted, measured with real
// node processes, and the two ways a node fences itself: Redis came back without its data (the generation key is
// gone), and a lease that could not be renewed in time (Redis paused longer than the lease).

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connectMqtt, endAll, uniqueId } from '../helpers/mqttjs.js';
import { sleep, withTimeout } from '../helpers/wait.js';
import { startCluster, type Node } from './nodes.js';

const v5 = { protocolVersion: 5 as const };
const persistent = (clientId: string) => ({ ...v5, clientId, clean: false, properties: { sessionExpiryInterval: 600 } });

/** A node ended by fencing itself: exit code 1 and the cluster.fenced line with its reason. */
async function fenced(node: Node, reason: RegExp, ms: number): Promise<number> {
  const t0 = Date.now();
  const r = await withTimeout(node.proc.exited, ms, `node ${node.id} to fence itself`);
  assert.equal(r.code, 1, `node ${node.id} exit code`);
  assert.match(node.proc.log(), /cluster node fenced/);
  assert.match(node.proc.log(), reason);
  return Date.now() - t0;
}

/**
 * An offline persistent session on node B gets N acknowledged QoS 1 messages from node A (they wait in its queue
 * in Redis); redis-server is killed and restarted; the session resumes. Returns how many came back.
 */
async function queuedThroughRedisCrash(persistence: 'everysec' | 'rdb', N: number) {
  const c = await startCluster(['a', 'b'], { leaseMs: 3000, persistence });
  const topic = `persist/${persistence}/${uniqueId('t')}`;
  const subId = uniqueId('s');
  try {
    const s = await connectMqtt(c.nodes[1]!.url, persistent(subId));
    await s.client.subscribeAsync(topic, { qos: 1 });
    await endAll(s.client);
    const pub = await connectMqtt(c.nodes[0]!.url, v5);
    for (let i = 0; i < N; i++) await pub.client.publishAsync(topic, String(i), { qos: 1 });
    await endAll(pub.client);
    await sleep(300);
    await c.redis.kill9();
    await sleep(300);
    await c.redis.restart();
    return { c, topic, subId };
  } catch (err) {
    await c.stop();
    throw err;
  }
}

describe('cluster: Redis persistence and fencing', { timeout: 120_000 }, () => {
  it('AOF everysec: redis-server killed (SIGKILL) and restarted: every acknowledged message is still there', async () => {
    const N = 200;
    const { c, topic, subId } = await queuedThroughRedisCrash('everysec', N);
    try {
      const back = await connectMqtt(c.nodes[1]!.url, persistent(subId), 10_000);
      assert.equal(back.connack.sessionPresent, true);
      await back.messages.count(topic, N, 15_000).catch(() => {});
      const got = new Set(back.messages.payloads(topic));
      console.log(`# redis SIGKILL, AOF everysec: ${N} acknowledged, ${got.size} delivered after the restart, ${N - got.size} lost`);
      assert.equal(got.size, N, 'a SIGKILL of redis-server leaves everysec writes in the page cache');
      for (const n of c.nodes) assert.equal(n.proc.child.exitCode, null, `node ${n.id} still running`);
      await endAll(back.client);
    } finally {
      await c.stop();
    }
  });

  it('RDB snapshots only: Redis comes back without what it had since its last snapshot; every node fences itself (generation key gone) instead of serving', async () => {
    const N = 50;
    const { c, topic, subId } = await queuedThroughRedisCrash('rdb', N);
    try {
      const t = await Promise.all(c.nodes.map((n) => fenced(n, /generation changed/, 10_000)));
      console.log(`# redis SIGKILL, RDB only: both nodes fenced themselves ${Math.max(...t)} ms after the restart`);
      // What is lost: the session and its queue (no snapshot was taken since they were written).
      const n = await c.start('fresh');
      const back = await connectMqtt(n.url, persistent(subId));
      await sleep(500);
      const got = back.messages.payloads(topic).length;
      console.log(`# redis SIGKILL, RDB only: ${N} acknowledged, session present ${back.connack.sessionPresent}, ${got} delivered, ${N - got} lost`);
      assert.equal(back.connack.sessionPresent, false, 'the session was lost with the data');
      assert.equal(got, 0);
      await endAll(back.client);
    } finally {
      await c.stop();
    }
  });

  it('a node that cannot renew its lease in time (Redis paused past the lease) stops acknowledging, closes its clients and exits', async () => {
    const c = await startCluster(['a'], { leaseMs: 1000 });
    try {
      const topic = `lease/${uniqueId('t')}`;
      // A persistent subscriber: a message for it must be written to Redis before its PUBACK.
      const sub = await connectMqtt(c.nodes[0]!.url, persistent(uniqueId('s')));
      await sub.client.subscribeAsync(topic, { qos: 1 });
      const pub = await connectMqtt(c.nodes[0]!.url, v5);
      let closedAt = 0;
      pub.client.on('close', () => {
        closedAt ||= Date.now();
      });
      await pub.client.publishAsync(topic, 'before', { qos: 1 });
      const t0 = Date.now();
      await c.redis.command('CLIENT', 'PAUSE', 4000, 'ALL');
      // A successful PUBACK on the wire (MQTT.js also calls back, with no error, for a publish it gives up on at close).
      let acked = false;
      pub.client.on('packetreceive', (p) => {
        if (p.cmd === 'puback' && ((p as { reasonCode?: number }).reasonCode ?? 0) < 0x80) acked = true;
      });
      pub.client.publish(topic, 'during', { qos: 1 });
      await fenced(c.nodes[0]!, /could not renew the lease/, 10_000);
      const ms = closedAt - t0;
      console.log(`# lease 1000 ms, Redis paused 4000 ms: the node closed its client ${ms} ms into the pause`);
      assert.ok(closedAt > 0, "the node closed its clients' connections");
      assert.ok(ms <= 1000 + 500, `clients closed within the lease (+ one renew period), took ${ms} ms`);
      assert.equal(acked, false, 'nothing acknowledged while the lease could not be renewed');
      await endAll(pub.client, sub.client);
    } finally {
      await c.stop();
    }
  });
});
