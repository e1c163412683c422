#!/usr/bin/env node
// Micro-benchmark of the store layer alone (no sockets, no broker).
//
// Usage: node bench/store-micro.mjs [--messages N] [--batches 100,1000] [--stores memory,sqlite-process,sqlite-power]
//        [--patterns cycle,pipelined,fanout10] [--reps 3] [--json]
//   (build first: npx tsc -p tsconfig.json, or -p tsconfig.test.json)
//
// Pattern per message, as the broker does for an online persistent subscriber
// with QoS 1: enqueue() in one batch, commit, then markSent() + dequeue()
// (after PUBACK) in a later batch, commit. Payload 64 bytes, one session.
//
// - "cycle":     enqueue B, commit, markSent+dequeue B, commit (2 commits per B messages)
// - "pipelined": each commit holds the enqueues of batch k and the dequeues of
//                batch k-1 (steady state of a busy broker: 1 commit per B messages)
// - "fanout10":  cycle with each message enqueued for 10 sessions (ops/s counts
//                queue entries, i.e. messages x 10)
// - "offline":   enqueue all N (commit per B), then page through the queue with
//                readQueue(limit B), markSent + dequeue each page, commit (an
//                offline session that comes back)
// - "broker100": what the broker does in the benchmark "persistent sessions, QoS 1,
//                100 pairs": 100 sessions, each commit enqueues B messages spread
//                round-robin over the sessions (markSent each) and dequeues the
//                entries enqueued by the previous commit (PUBACKs of the last turn).
//                Each session's rows interleave with the others' in the file.
//
// Reports queue entries per second (one entry = one enqueue + one dequeue), wall
// clock and per CPU second of this process, best of --reps runs (default 3).

import { mkdtempSync, rmSync, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..');
// The newer of dist/ (tsc -p tsconfig.json) and build/ (tsc -p tsconfig.test.json).
const candidates = [join(root, 'dist/store'), join(root, 'build/src/store')]
  .filter((d) => existsSync(join(d, 'sqlite-store.js')))
  .sort((a, b) => statSync(join(b, 'sqlite-store.js')).mtimeMs - statSync(join(a, 'sqlite-store.js')).mtimeMs);
const modPath = candidates.length > 0 ? join(candidates[0], 'index.js') : undefined;
if (!modPath) {
  console.error('build first: npx tsc -p tsconfig.json');
  process.exit(1);
}
const { MemoryStore, SqliteStore, QueueState } = await import(modPath);

function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
}
const totalMessages = Number(arg('messages', '200000'));
const batchSizes = arg('batches', '100,1000').split(',').map(Number);
const storeNames = arg('stores', 'memory,sqlite-process,sqlite-power').split(',');
const patterns = arg('patterns', 'cycle,pipelined,fanout10,offline,broker100').split(',');
const reps = Number(arg('reps', '3'));

const payload = Buffer.alloc(64, 0x61);

function makeStore(name) {
  if (name === 'memory') return { store: new MemoryStore(), cleanup() {} };
  const dir = mkdtempSync(join(tmpdir(), 'petrel-bench-'));
  const durability = name === 'sqlite-power' ? 'power' : 'process';
  return { store: new SqliteStore({ dataDir: dir, durability }), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

async function run(name, pattern, B, n) {
  const { store, cleanup } = makeStore(name);
  await store.open();
  const sessions = pattern === 'fanout10' ? 10 : pattern === 'broker100' ? 100 : 1;
  const ids = [];
  for (let i = 0; i < sessions; i++) {
    ids.push(`client-${i}`);
    store.putSession({ clientId: `client-${i}`, protocolVersion: 5, expiryInterval: 3600, disconnectedAt: null, will: null });
  }
  await store.commit();
  let nextId = 1;
  let seq = 0;
  const messagesPerRun = pattern === 'fanout10' ? Math.max(B, Math.floor(n / 10)) : n;
  const rounds = Math.max(1, Math.floor(messagesPerRun / B));
  const enqueueBatch = () => {
    const first = seq + 1;
    for (let i = 0; i < B; i++) {
      const message = { id: nextId++, topic: 'bench/topic', payload, qos: 1, retain: false, receivedAt: Date.now() };
      seq++;
      for (const c of ids) store.enqueue(c, { seq, message, qos: 1, retain: false, state: QueueState.Pending });
    }
    return first;
  };
  const dequeueBatch = (first) => {
    for (const c of ids) store.markSent(c, first + B - 1);
    for (let s = first; s < first + B; s++) for (const c of ids) store.dequeue(c, s);
  };
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  if (pattern === 'broker100') {
    // Entries spread over the sessions; per session, seqs continue from its own counter.
    const seqs = new Array(sessions).fill(0);
    let prev = [];
    for (let r = 0; r <= rounds; r++) {
      const cur = [];
      if (r < rounds) {
        for (let i = 0; i < B; i++) {
          const k = i % sessions;
          const message = { id: nextId++, topic: `bench/ps/${k}`, payload, qos: 1, retain: false, receivedAt: Date.now() };
          const s = ++seqs[k];
          store.enqueue(ids[k], { seq: s, message, qos: 1, retain: false, state: QueueState.Pending });
          store.markSent(ids[k], s);
          cur.push(k, s);
        }
      }
      for (let i = 0; i < prev.length; i += 2) store.dequeue(ids[prev[i]], prev[i + 1]);
      await store.commit();
      prev = cur;
    }
  } else if (pattern === 'offline') {
    for (let r = 0; r < rounds; r++) {
      enqueueBatch();
      await store.commit();
    }
    let from = 0;
    for (;;) {
      const page = await store.readQueue(ids[0], from, B);
      if (page.length === 0) break;
      store.markSent(ids[0], page[page.length - 1].seq);
      for (const e of page) store.dequeue(ids[0], e.seq);
      await store.commit();
      from = page[page.length - 1].seq + 1;
    }
  } else if (pattern === 'pipelined') {
    let prev = -1;
    for (let r = 0; r < rounds; r++) {
      const first = enqueueBatch();
      if (prev >= 0) dequeueBatch(prev);
      await store.commit();
      prev = first;
    }
    dequeueBatch(prev);
    await store.commit();
  } else {
    for (let r = 0; r < rounds; r++) {
      const first = enqueueBatch();
      await store.commit();
      dequeueBatch(first);
      await store.commit();
    }
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(c0);
  const cpuSecs = (cpu.user + cpu.system) / 1e6;
  const entries = rounds * B * (pattern === 'broker100' ? 1 : sessions);
  await store.close();
  cleanup();
  return { entries, secs, rate: entries / secs, cpuRate: entries / cpuSecs };
}

console.log(`node ${process.version}, ${totalMessages} messages per run, payload ${payload.length} B, store from ${modPath}`);
const results = [];
for (const pattern of patterns) {
  for (const B of batchSizes) {
    for (const name of storeNames) {
      // 'power' fsyncs every commit: fewer messages so the run stays short.
      const n = name === 'sqlite-power' && B < 1000 ? Math.min(totalMessages, 50000) : totalMessages;
      await run(name, pattern, B, Math.min(n, 20000)); // warm-up
      // Best of `reps` runs (the machine may be shared).
      let r;
      for (let i = 0; i < reps; i++) {
        const x = await run(name, pattern, B, n);
        if (r === undefined || x.rate > r.rate) r = x;
      }
      results.push({ pattern, batch: B, store: name, entries: r.entries, seconds: +r.secs.toFixed(3), 'entries/s': Math.round(r.rate), 'entries/cpu-s': Math.round(r.cpuRate) });
      console.log(
        `${pattern.padEnd(10)} batch ${String(B).padStart(5)}  ${name.padEnd(15)} ${Math.round(r.rate).toLocaleString('en-US').padStart(12)} entries/s` +
          `  ${Math.round(r.cpuRate).toLocaleString('en-US').padStart(12)} entries/cpu-s  (${r.entries} in ${r.secs.toFixed(2)} s)`,
      );
    }
  }
}
if (process.argv.includes('--json')) console.log(JSON.stringify(results, null, 2));
