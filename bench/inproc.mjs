// In-process API benchmark (Petrel only):
//   broker.publish('bench/x', payload, { qos: 0 })  ->  for await (const m of broker.subscribe(['bench/#'], ...))
// Prints one JSON line: { rate, published, received, ... } (rate = messages received per second
// by the subscriber during the measured window).
//
// usage: node bench/inproc.mjs [--duration 5] [--warmup 1] [--yield-every 1000] [--payload 64]
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? Number(args[i + 1]) : dflt;
};
const duration = opt('--duration', 5);
const warmup = opt('--warmup', 1);
const yieldEvery = opt('--yield-every', 1000);
const payloadSize = opt('--payload', 64);

const indexUrl = pathToFileURL(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'index.js')).href;

function out(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

let mod;
try {
  mod = await import(indexUrl);
} catch (e) {
  out({ skipped: `cannot import dist/index.js: ${e.message}` });
  process.exit(0);
}
if (typeof mod.createBroker !== 'function') {
  out({ skipped: 'dist/index.js does not export createBroker yet' });
  process.exit(0);
}

const b = await mod.createBroker({ store: { type: 'memory' } });
let count = 0;
let subError = null;
const consumer = (async () => {
  try {
    for await (const m of b.subscribe(['bench/#'], { qos: 0, highWaterMark: 1024 })) {
      void m;
      count++;
    }
  } catch (e) {
    subError = e;
  }
})();

const payload = Buffer.alloc(payloadSize, 0x61);
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const tMeasure = t0 + warmup * 1000;
const tEnd = tMeasure + duration * 1000;
let published = 0;
let c0 = 0;
let p0 = 0;
let measuring = false;
let cpuM0 = null;
const yieldNow = () => new Promise((r) => setImmediate(r));
let pubError = null;
try {
  for (;;) {
    await b.publish('bench/x', payload, { qos: 0 });
    published++;
    if (published % yieldEvery === 0) {
      await yieldNow();
      const now = performance.now();
      if (!measuring && now >= tMeasure) {
        measuring = true;
        c0 = count;
        p0 = published;
        cpuM0 = process.cpuUsage();
      }
      if (now >= tEnd) break;
      if (subError) break;
    }
  }
} catch (e) {
  pubError = e;
}
const t1 = performance.now();
const c1 = count;
const p1 = published;
const cpu = process.cpuUsage(cpuM0 ?? cpu0);
const secs = measuring ? (t1 - tMeasure) / 1000 : (t1 - t0) / 1000;
// let the consumer drain what is buffered (bounded)
const drainEnd = performance.now() + 2000;
while (count < published && performance.now() < drainEnd) await yieldNow();
out({
  rate: measuring ? (c1 - c0) / secs : null,
  publish_rate: measuring ? (p1 - p0) / secs : null,
  duration_s: secs,
  published,
  received: count,
  lost: published - count,
  cpu_s: (cpu.user + cpu.system) / 1e6,
  rss_kb: Math.round(process.memoryUsage().rss / 1024),
  yield_every: yieldEvery,
  error: pubError ? String(pubError.stack ?? pubError) : subError ? String(subError.stack ?? subError) : null,
});
try {
  if (typeof b.close === 'function') await Promise.race([b.close(), new Promise((r) => setTimeout(r, 2000))]);
} catch {}
void consumer;
process.exit(0);
