#!/usr/bin/env node
// Event-loop delay of the broker under SQLite work (bench/README.md, "Event-loop delay").
//
//   node bench/eventloop.mjs [--cases base,delete,fanout,checkpoint,power] [--reps 1]
//                            [--duration 6] [--dist dist] [--json FILE]
//
// For each case, a fresh broker process (bench/eventloop-broker.mjs: Petrel
// embedded, SQLite store, monitorEventLoopDelay with 1 ms resolution inside
// it, pinned to CPU 0) carries a steady QoS 1 flow of 5,000 msg/s between two
// other clients (bench/.work/loadgen, 1 publisher -> 1 subscriber with a
// persistent session, pinned to CPU 1), and the broker's event-loop delay
// (p50/p99/max) is read over `--duration` seconds, once with the flow alone
// and once with the case's load started 1.5 s into the window:
//   delete      a session with 100,000 queued entries is deleted (its client reconnects with a clean session)
//   fanout      one QoS 1 message to 10,000 persistent (offline) sessions, once a second
//   checkpoint  200 msg/s of 64 KiB QoS 1 to an offline persistent session (12.5 MiB/s into the WAL:
//               an automatic checkpoint every 16 MiB, more than one a second)
//   power       --durability power (an fsync per commit) against the default 'process'
// `base` is the flow alone (no case). --dist points at another build (e.g. an
// older commit's dist/) to compare.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import mqtt from 'mqtt';
import { BENCH_DIR, REPO_DIR, WORK_DIR, ensureLoadgen, runLoadgen } from './lib/loadgen.mjs';
import { canPin, sleep } from './lib/proc.mjs';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const CASES = (opt('--cases', 'delete,fanout,checkpoint,power')).split(',');
const REPS = Number(opt('--reps', '1'));
const DURATION = Number(opt('--duration', '6'));
const WARMUP = 1;
const LOAD_AT = 1.5;
const DIST = path.resolve(opt('--dist', path.join(REPO_DIR, 'dist')));
const JSON_OUT = opt('--json', null);
const log = (s) => process.stderr.write(`${s}\n`);

const children = new Set();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

/** Start the broker child; resolves with { port, request(cmd), stop() }. */
async function startBroker({ durability = 'process', prefill = 'none' }) {
  const dataDir = fs.mkdtempSync(path.join(WORK_DIR, 'eventloop-data-'));
  const argv = [process.execPath, path.join(BENCH_DIR, 'eventloop-broker.mjs'), '--dist', DIST, '--data-dir', dataDir, '--durability', durability, '--prefill', prefill];
  const cmd = canPin() ? ['taskset', '-c', '0', ...argv] : argv;
  const child = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(child);
  const waiting = [];
  let ready;
  const readyP = new Promise((resolve, reject) => {
    ready = resolve;
    child.once('exit', (code, signal) => reject(new Error(`broker exited (${code ?? signal}) before it was ready`)));
  });
  child.on('message', (m) => {
    if (m.ready) ready(m.port);
    else waiting.shift()?.(m);
  });
  const port = await Promise.race([readyP, sleep(180_000).then(() => Promise.reject(new Error('broker not ready after 180 s')))]);
  return {
    port,
    request: (cmd) =>
      new Promise((resolve) => {
        waiting.push(resolve);
        child.send({ cmd });
      }),
    async stop() {
      child.send({ cmd: 'exit' });
      await Promise.race([new Promise((r) => child.once('exit', r)), sleep(10_000)]);
      child.kill('SIGKILL');
      children.delete(child);
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

function connect(port, options) {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect({ host: '127.0.0.1', port, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 30_000, ...options });
    c.once('connect', () => resolve(c));
    c.once('error', reject);
  });
}

/** The load of a case, started during the window; returns a function that stops it. */
async function startLoad(name, port) {
  if (name === 'delete') {
    // The client of the 100,000-entry session reconnects with a clean session: the broker deletes it.
    const c = await connect(port, { clientId: 'big', clean: true });
    return async () => c.endAsync();
  }
  if (name === 'fanout') {
    const c = await connect(port, { clientId: 'fan-publisher', clean: true });
    let stop = false;
    const loop = (async () => {
      while (!stop) {
        await c.publishAsync('fan/x', Buffer.alloc(64, 1), { qos: 1 });
        await sleep(1000);
      }
    })();
    return async () => {
      stop = true;
      await loop;
      await c.endAsync();
    };
  }
  if (name === 'checkpoint') {
    const c = await connect(port, { clientId: 'ckpt-publisher', clean: true });
    const payload = Buffer.alloc(64 * 1024, 2);
    let stop = false;
    const loop = (async () => {
      // 200 msg/s in steps of 10 ms (2 messages each), without waiting for the PUBACKs in between.
      const t0 = Date.now();
      let sent = 0;
      while (!stop) {
        const due = Math.floor(((Date.now() - t0) / 1000) * 200);
        while (sent < due) {
          c.publish('ckpt/x', payload, { qos: 1 });
          sent++;
        }
        await sleep(10);
      }
    })();
    return async () => {
      stop = true;
      await loop;
      await c.endAsync();
    };
  }
  return async () => {};
}

const PREFILL = { delete: 'queue:100000', fanout: 'sessions:10000', checkpoint: 'ckpt', power: 'none', base: 'none' };

/** One measurement: the flow, with or without the case's load. */
async function measure(name, withLoad) {
  const durability = name === 'power' && withLoad ? 'power' : 'process';
  const b = await startBroker({ durability, prefill: PREFILL[name] ?? 'none' });
  try {
    const flow = runLoadgen(
      {
        mode: 'throughput',
        host: '127.0.0.1',
        port: b.port,
        pubs: 1,
        subs: 1,
        pubTopic: 'flow/%d',
        subFilter: 'flow/%d',
        qos: 1,
        rate: 5000,
        cleanSub: 0,
        window: 64,
        warmup: WARMUP,
        duration: DURATION,
        drain: 5,
        setupTimeout: 30,
      },
      { cpu: 1 },
    );
    // The loadgen connects, then warms up for WARMUP s: the window starts after that.
    await sleep(1500 + WARMUP * 1000);
    await b.request('reset');
    let stopLoad = async () => {};
    if (withLoad && name !== 'power') {
      await sleep(LOAD_AT * 1000);
      stopLoad = await startLoad(name, b.port);
      await sleep((DURATION - LOAD_AT - 0.5) * 1000);
    } else await sleep((DURATION - 0.5) * 1000);
    const { report } = await b.request('report');
    await stopLoad();
    const r = await flow;
    return {
      ...report,
      flow_rate: r.recv_rate,
      flow_lost: r.lost ?? null,
      flow_latency_ms: r.latency ? { p50: r.latency.p50_us / 1e3, p99: r.latency.p99_us / 1e3, max: r.latency.max_us / 1e3 } : null,
      error: r.error ?? null,
    };
  } finally {
    await b.stop();
  }
}

const median = (xs) => {
  const s = xs.filter((x) => typeof x === 'number').sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : null;
};

async function main() {
  fs.mkdirSync(WORK_DIR, { recursive: true });
  ensureLoadgen();
  if (!fs.existsSync(path.join(DIST, 'index.js'))) throw new Error(`${DIST}/index.js missing: run npm run build`);
  log(`eventloop: dist ${path.relative(process.cwd(), DIST) || '.'}, ${DURATION} s windows, ${REPS} rep(s), pinned: ${canPin()}`);
  const results = [];
  for (const name of CASES) {
    const runs = { without: [], with: [] };
    for (let rep = 0; rep < REPS; rep++) {
      for (const withLoad of name === 'base' ? [false] : [false, true]) {
        const r = await measure(name, withLoad);
        runs[withLoad ? 'with' : 'without'].push(r);
        const lat = r.flow_latency_ms ? ` | flow ${Math.round(r.flow_rate)} msg/s, latency p99 ${r.flow_latency_ms.p99.toFixed(1)} ms max ${r.flow_latency_ms.max.toFixed(1)} ms` : '';
        log(`${name.padEnd(10)} ${withLoad ? "with load   " : "without load"} event loop p50 ${r.p50} ms p99 ${r.p99} ms max ${r.max} ms (${r.samples} samples, ${r.sessions} sessions at the end)${lat}${r.error ? ` [${r.error}]` : ""}`);
        await sleep(300);
      }
    }
    const sum = (list) => ({
      p50: median(list.map((r) => r.p50)),
      p99: median(list.map((r) => r.p99)),
      max: median(list.map((r) => r.max)),
      flow_p99_ms: median(list.map((r) => r.flow_latency_ms?.p99)),
      flow_max_ms: median(list.map((r) => r.flow_latency_ms?.max)),
    });
    results.push({ case: name, without: sum(runs.without), with: runs.with.length ? sum(runs.with) : null, runs });
  }
  const f = (x) => (x == null ? 'n/a' : x.toFixed(1));
  const lines = ['| case | without load: p50 / p99 / max (ms) | with load: p50 / p99 / max (ms) | flow latency p99 / max with load (ms) |', '| --- | --- | --- | --- |'];
  for (const r of results) {
    const w = r.with;
    lines.push(`| ${r.case} | ${f(r.without.p50)} / ${f(r.without.p99)} / ${f(r.without.max)} | ${w ? `${f(w.p50)} / ${f(w.p99)} / ${f(w.max)}` : '–'} | ${w ? `${f(w.flow_p99_ms)} / ${f(w.flow_max_ms)}` : '–'} |`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  if (JSON_OUT) fs.writeFileSync(JSON_OUT, `${JSON.stringify({ date: new Date().toISOString(), dist: DIST, duration: DURATION, results }, null, 1)}\n`);
}

main().then(
  () => process.exit(0),
  (e) => {
    log(`eventloop: ${e.stack ?? e}`);
    process.exit(1);
  },
);
