// kill -9 of a cluster node under QoS 1 and QoS 2 load: nothing acknowledged is lost (QoS 1 may come twice,
// QoS 2 exactly once), and the wills of a killed node's clients are published once, on time. Real processes.
// The subscriber keeps its incoming QoS 2 state across its reconnect, as an exactly-once client must: a message
// PUBREC'd on the old connection is completed by the PUBREL that comes on the new one.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connectMqtt, connectRetry, endAll, KeptStore, uniqueId, type Connected } from '../helpers/mqttjs.js';
import { sleep, withTimeout } from '../helpers/wait.js';
import { startCluster, type TestCluster } from './nodes.js';

const v5 = { protocolVersion: 5 as const };
const persistent = (clientId: string) => ({ ...v5, clientId, clean: false, properties: { sessionExpiryInterval: 600 } });

interface Outcome {
  acked: number;
  delivered: number;
  duplicates: number;
  lost: number;
}

/**
 * A persistent subscriber on node `subAt`, a publisher on node `pubAt`; `victim` is killed after `killAfter`
 * acknowledgements; the subscriber ends up on node `resumeAt`. Returns the counts.
 */
async function run(c: TestCluster, qos: 1 | 2, victim: number, subAt: number, pubAt: number, resumeAt: number, N = 400, killAfter = 120): Promise<Outcome> {
  const topic = `load/${qos}/${uniqueId('t')}`;
  const subId = uniqueId('dsub');
  const subOptions = { ...persistent(subId), incomingStore: new KeptStore() };
  let sub = await connectMqtt(c.nodes[subAt]!.url, subOptions);
  await sub.client.subscribeAsync(topic, { qos });
  await sleep(300);
  const seen: string[] = [];
  const collect = (s: Connected): void => {
    s.client.on('message', (_t, p) => seen.push(p.toString()));
    for (const m of s.messages.messages) seen.push(m.payload.toString());
  };
  collect(sub);
  const acked = new Set<string>();
  let pub = await connectMqtt(c.nodes[pubAt]!.url, { ...v5, clientId: uniqueId('dpub') });
  let killed = false;
  for (let i = 0; i < N; i++) {
    if (!killed && acked.size >= killAfter) {
      killed = true;
      await c.kill9(c.nodes[victim]!);
      if (victim === subAt) {
        await endAll(sub.client);
        // Reconnect the subscriber elsewhere at once (its claim waits for the dead node's lease).
        void connectRetry(c.nodes[resumeAt]!.url, subOptions).then((s) => {
          sub = s;
          collect(s);
        });
      }
    }
    try {
      // A publish in flight when its node dies is never answered (MQTT.js does not fail it): bounded.
      await withTimeout(pub.client.publishAsync(topic, String(i), { qos }), 5000, 'the acknowledgement');
      acked.add(String(i));
    } catch {
      // Not acknowledged (the publisher's node died): the publisher reconnects to a live node and goes on.
      await endAll(pub.client);
      pub = await connectRetry(c.nodes[resumeAt]!.url, { ...v5, clientId: uniqueId('dpub') });
    }
    if (pub.client.disconnected || !pub.client.connected) {
      await endAll(pub.client);
      pub = await connectRetry(c.nodes[resumeAt]!.url, { ...v5, clientId: uniqueId('dpub') });
    }
  }
  // Everything acknowledged arrives within a bound.
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && [...acked].some((a) => !seen.includes(a))) await sleep(100);
  await sleep(500);
  await endAll(pub.client, sub.client);
  const counts = new Map<string, number>();
  for (const s of seen) counts.set(s, (counts.get(s) ?? 0) + 1);
  const lost = [...acked].filter((a) => !counts.has(a)).length;
  const duplicates = [...counts.values()].reduce((n, k) => n + (k - 1), 0);
  return { acked: acked.size, delivered: counts.size, duplicates, lost };
}

describe('cluster: kill -9 of a node', { timeout: 240_000 }, () => {
  it("loses no acknowledged QoS 1 message when the subscriber's node dies (duplicates counted)", async () => {
    const c = await startCluster(['a', 'b', 'c']);
    try {
      const r = await run(c, 1, 1, 1, 0, 2);
      console.log(`# kill -9 subscriber's node, QoS 1: acked ${r.acked}, delivered ${r.delivered}, duplicates ${r.duplicates}, lost ${r.lost}`);
      assert.equal(r.lost, 0);
    } finally {
      await c.stop();
    }
  });

  it("delivers every acknowledged QoS 2 message exactly once when the subscriber's node dies", async () => {
    const c = await startCluster(['a', 'b', 'c']);
    try {
      const r = await run(c, 2, 1, 1, 0, 2);
      console.log(`# kill -9 subscriber's node, QoS 2: acked ${r.acked}, delivered ${r.delivered}, duplicates ${r.duplicates}, lost ${r.lost}`);
      assert.equal(r.lost, 0);
      assert.equal(r.duplicates, 0);
    } finally {
      await c.stop();
    }
  });

  it("loses no acknowledged message when the publisher's node dies (QoS 1 and 2)", async () => {
    const c = await startCluster(['a', 'b', 'c']);
    try {
      const r1 = await run(c, 1, 0, 1, 0, 2);
      console.log(`# kill -9 publisher's node, QoS 1: acked ${r1.acked}, delivered ${r1.delivered}, duplicates ${r1.duplicates}, lost ${r1.lost}`);
      assert.equal(r1.lost, 0);
      const r2 = await run(c, 2, 2, 1, 2, 1, 300);
      console.log(`# kill -9 publisher's node, QoS 2: acked ${r2.acked}, delivered ${r2.delivered}, duplicates ${r2.duplicates}, lost ${r2.lost}`);
      assert.equal(r2.lost, 0);
      assert.equal(r2.duplicates, 0);
    } finally {
      await c.stop();
    }
  });

  it("publishes the wills of a killed node's clients once, within lease + janitor period + will delay; not for a client that resumed in time", async () => {
    const c = await startCluster(['a', 'b', 'c']);
    try {
      const watcher = await connectMqtt(c.nodes[0]!.url, v5);
      await watcher.client.subscribeAsync('will/#', { qos: 1 });
      const will = (topic: string, delay: number) => ({ topic, payload: Buffer.from(topic), qos: 1 as const, retain: false, properties: { willDelayInterval: delay } });
      const w0 = await connectMqtt(c.nodes[2]!.url, { ...v5, clientId: uniqueId('w0'), will: will('will/now', 0) });
      const w2 = await connectMqtt(c.nodes[2]!.url, { ...v5, clientId: uniqueId('w2'), properties: { sessionExpiryInterval: 30 }, will: will('will/delayed', 2) });
      const resumerId = uniqueId('wr');
      const wr = await connectMqtt(c.nodes[2]!.url, { ...persistent(resumerId), will: will('will/resumed', 4) });
      await sleep(300);
      const t0 = Date.now();
      await c.kill9(c.nodes[2]!);
      await endAll(w0.client, w2.client, wr.client);
      // The resumer comes back on node B within its will delay.
      const back = await connectRetry(c.nodes[1]!.url, persistent(resumerId));
      assert.equal(back.connack.sessionPresent, true);
      const first = (topic: string) => watcher.messages.count(topic, 1, 15_000).then(() => Date.now() - t0);
      const [tNow, tDelayed] = await Promise.all([first('will/now'), first('will/delayed')]);
      await sleep(c.leaseMs + 4000);
      console.log(`# wills after kill -9: no delay after ${tNow} ms, 2 s delay after ${tDelayed} ms (lease ${c.leaseMs} ms)`);
      assert.equal(watcher.messages.on('will/now').length, 1, 'once');
      assert.equal(watcher.messages.on('will/delayed').length, 1, 'once');
      assert.equal(watcher.messages.on('will/resumed').length, 0, 'not for a client that resumed within its delay');
      const bound = c.leaseMs + 1000 + 1500;
      assert.ok(tNow <= bound, `no-delay will after ${tNow} ms (bound ${bound})`);
      assert.ok(tDelayed >= 2000 && tDelayed <= bound + 2000, `delayed will after ${tDelayed} ms`);
      await endAll(watcher.client, back.client);
    } finally {
      await c.stop();
    }
  });
});
