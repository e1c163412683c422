// Child process of the crash-safety test (sqlite-store.test.ts): writes
// batches to a SqliteStore forever and prints each batch number to stdout once
// its commit() resolved, until the parent kills it with SIGKILL.
//
// Each batch b (1-based) of K messages: seq (b-1)*K+1 .. b*K, message id = seq,
// each message enqueued for sessions 'a' and 'b' (one shared stored message);
// then the odd-indexed entries of batch b-1 are dequeued from 'a'; markSent(b*K)
// for both. On start it continues after the last batch in the store.
//
// Usage: node crash-child.js <dataDir> <K>

import { writeSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { QueueState, type StoredMessage } from '../../src/store/types.js';

export function crashPayload(seq: number): Buffer {
  const p = Buffer.alloc(40 + (seq % 50), seq & 0xff);
  p.writeUInt32BE(seq, 0);
  return p;
}

/**
 * Mode 'purge' (node crash-child.js <dataDir> <N> purge): N entries for 'a'
 * (every tenth shared with 'b'), commit; then delete 'a', create it again with
 * one entry, commit, print "deleted" and wait to be killed (while the purge
 * runs).
 */
async function purge(dir: string, n: number): Promise<void> {
  const store = new SqliteStore({ dataDir: dir });
  await store.open();
  for (const c of ['a', 'b']) store.putSession({ clientId: c, protocolVersion: 5, expiryInterval: 3600, disconnectedAt: null, will: null });
  for (let seq = 1; seq <= n; seq++) {
    const message: StoredMessage = { id: seq, topic: `t/${seq}`, payload: Buffer.alloc(32, seq & 0xff), qos: 1, retain: false, receivedAt: seq };
    store.enqueue('a', { seq, message, qos: 1, retain: false, state: QueueState.Pending });
    if (seq % 10 === 0) store.enqueue('b', { seq: seq / 10, message, qos: 1, retain: false, state: QueueState.Pending });
  }
  await store.commit();
  store.deleteSession('a');
  store.putSession({ clientId: 'a', protocolVersion: 5, expiryInterval: 3600, disconnectedAt: null, will: null });
  const message: StoredMessage = { id: n + 1, topic: 'new', payload: Buffer.from('new'), qos: 1, retain: false, receivedAt: 0 };
  store.enqueue('a', { seq: 1, message, qos: 1, retain: false, state: QueueState.Pending });
  await store.commit();
  writeSync(1, 'deleted\n');
  setInterval(() => undefined, 1000);
}

async function main(): Promise<void> {
  const [dir, kText, mode] = process.argv.slice(2);
  if (mode === 'purge') return purge(dir!, Number(kText));
  const K = Number(kText);
  const store = new SqliteStore({ dataDir: dir! });
  const state = await store.open();
  const a = state.sessions.find((s) => s.session.clientId === 'a');
  let batch = a === undefined ? 0 : a.queue.lastSeq / K;
  if (a === undefined) {
    for (const c of ['a', 'b']) store.putSession({ clientId: c, protocolVersion: 5, expiryInterval: 0xffffffff, disconnectedAt: null, will: null });
    await store.commit();
  }
  writeSync(1, `ready ${batch}\n`);
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    batch++;
    const first = (batch - 1) * K + 1;
    for (let i = 0; i < K; i++) {
      const seq = first + i;
      const message: StoredMessage = { id: seq, topic: `crash/${seq}`, payload: crashPayload(seq), qos: 1, retain: false, receivedAt: seq };
      store.enqueue('a', { seq, message, qos: 1, retain: false, state: QueueState.Pending });
      store.enqueue('b', { seq, message, qos: 1, retain: false, state: QueueState.Pending });
    }
    if (batch > 1) for (let i = 1; i < K; i += 2) store.dequeue('a', first - K + i);
    store.markSent('a', batch * K);
    store.markSent('b', batch * K);
    await store.commit();
    writeSync(1, `${batch}\n`);
  }
  await store.close();
}

// Run as a script (not imported): compared as paths, so that a checkout under a path with spaces works too.
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await main();
}
