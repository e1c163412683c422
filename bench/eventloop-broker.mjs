// Broker process of bench/eventloop.mjs: Petrel embedded (createBroker) with
// the SQLite store, and perf_hooks.monitorEventLoopDelay running inside it.
// Talks to the parent over IPC:
//   -> { ready: true, port }                       once listening
//   <- { cmd: 'reset' }   -> { reset: true }       restart the histogram
//   <- { cmd: 'report' }  -> { report: {...} }     p50/p99/max/mean in ms, sample count
//
// usage (started by bench/eventloop.mjs):
//   node bench/eventloop-broker.mjs --dist DIR --data-dir DIR --durability process|power
//        [--prefill none|queue:N|sessions:N|ckpt]
//
// --prefill writes the state of a case into the store before the broker opens
// it (with the store's own API, quicker than through MQTT):
//   queue:N     session "big" (3.1.1, clean=false) subscribed to big/#, offline, N queued entries
//   sessions:N  N sessions "fan-<i>" (3.1.1, clean=false) subscribed to fan/x, offline
//   ckpt        session "ckpt" (3.1.1, clean=false) subscribed to ckpt/#, offline
import { monitorEventLoopDelay } from 'node:perf_hooks';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const dist = path.resolve(opt('--dist', 'dist'));
const dataDir = opt('--data-dir');
const durability = opt('--durability', 'process');
const prefill = opt('--prefill', 'none');

const { createBroker } = await import(pathToFileURL(path.join(dist, 'index.js')).href);
const { SqliteStore } = await import(pathToFileURL(path.join(dist, 'store', 'index.js')).href);

const FOREVER = 0xffffffff;
const offline = (clientId) => ({ clientId, protocolVersion: 4, expiryInterval: FOREVER, disconnectedAt: Date.now(), will: null });
const sub = (filter) => ({ filter, qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 });

if (prefill !== 'none') {
  const store = new SqliteStore({ dataDir });
  const st = await store.open();
  let id = st.nextMessageId;
  const [kind, nText] = prefill.split(':');
  const n = Number(nText);
  if (kind === 'queue') {
    store.putSession(offline('big'));
    store.putSubscription('big', sub('big/#'));
    const payload = Buffer.alloc(64, 7);
    for (let seq = 1; seq <= n; seq++) {
      store.enqueue('big', { seq, message: { id: id++, topic: 'big/x', payload, qos: 1, retain: false, receivedAt: Date.now() }, qos: 1, retain: false, state: 0 });
      if (seq % 10_000 === 0) await store.commit();
    }
  } else if (kind === 'sessions') {
    for (let i = 0; i < n; i++) {
      store.putSession(offline(`fan-${i}`));
      store.putSubscription(`fan-${i}`, sub('fan/x'));
    }
  } else if (kind === 'ckpt') {
    store.putSession(offline('ckpt'));
    store.putSubscription('ckpt', sub('ckpt/#'));
  } else throw new Error(`unknown --prefill ${prefill}`);
  await store.commit();
  await store.close();
}

const broker = await createBroker({
  store: { type: 'sqlite', dataDir, durability },
  listeners: [{ port: 0, host: '127.0.0.1' }],
  logLevel: 'error',
  // The offline queues of the cases stay below these.
  limits: { maxQueuedMessages: 10_000_000, maxQueuedBytes: 64 * 1024 * 1024 * 1024 },
});
const [addr] = await broker.listen();
const h = monitorEventLoopDelay({ resolution: 1 });
h.enable();

process.on('message', (m) => {
  if (m.cmd === 'reset') {
    h.reset();
    process.send({ reset: true });
  } else if (m.cmd === 'report') {
    const ms = (ns) => Math.round(ns / 1e4) / 100;
    process.send({ report: { p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max), mean: ms(h.mean), samples: h.count, sessions: broker.sessionCount } });
  } else if (m.cmd === 'exit') {
    h.disable();
    broker.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  }
});
process.send({ ready: true, port: addr.port });
