// The worker thread of the SQLite store: owns the database (SqliteEngine) and
// answers the requests of sqlite-store.ts one by one, in the order they came,
// each before the next is read. Between requests, and only when there is
// nothing else to do this turn, it deletes the queue rows of deleted sessions
// one chunk at a time.

import { parentPort, workerData } from 'node:worker_threads';
import { SqliteEngine } from './sqlite-engine.js';
import type { Reply, Request, WireError } from './sqlite-wire.js';

const port = parentPort!;
const { path, dataDir, durability } = workerData as { path: string; dataDir: string; durability: 'process' | 'power' };
const engine = new SqliteEngine(path, dataDir, durability);
let purgeScheduled = false;
let closed = false;

function errorOf(err: unknown): WireError {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return { name: err.name, message: err.message, ...(typeof code === 'string' ? { code } : {}) };
  }
  return { name: 'Error', message: String(err) };
}

function schedulePurge(): void {
  if (purgeScheduled || closed || !engine.purgePending) return;
  purgeScheduled = true;
  // setImmediate: requests that arrived meanwhile are answered first.
  setImmediate(() => {
    purgeScheduled = false;
    if (closed) return;
    try {
      engine.purgeStep();
    } catch {
      // Tried again later (next request or open); the rows stay unreachable meanwhile.
      return;
    }
    schedulePurge();
  });
}

port.on('message', (req: Request) => {
  let reply: Reply;
  const transfer: ArrayBuffer[] = [];
  try {
    switch (req.t) {
      case 'open':
        reply = { ok: true, value: engine.open() };
        break;
      case 'commit':
        engine.commit(req.batch);
        reply = { ok: true };
        break;
      case 'read': {
        const page = engine.read(req.sid, req.fromSeq, req.limit, req.maxBytes);
        transfer.push(page.payload, page.eNum.buffer as ArrayBuffer, page.mNum.buffer as ArrayBuffer);
        reply = { ok: true, value: page };
        break;
      }
      case 'expire':
        reply = { ok: true, value: engine.expired(req.sid, req.now, req.afterSeq, req.limit) };
        break;
      case 'inspect':
        reply = { ok: true, value: engine.inspect() };
        break;
      case 'close':
        closed = true;
        engine.close();
        reply = { ok: true };
        break;
    }
  } catch (err) {
    reply = { ok: false, error: errorOf(err) };
  }
  port.postMessage(reply, transfer);
  if (req.t === 'close') port.close();
  else schedulePurge();
});
