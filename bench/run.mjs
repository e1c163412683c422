#!/usr/bin/env node
// Petrel benchmark runner. See bench/README.md.
//
//   node bench/run.mjs [--quick] [--brokers petrel,mosquitto,aedes] [--scenarios a,b]
//                      [--reps 3] [--duration 5] [--warmup 1] [--window 64]
//                      [--publish | --no-publish]
//   node bench/run.mjs --render bench/results/<file>.json   (re-render table + chart)
//
// Starts each broker alone (pinned to CPU 0), drives it with bench/.work/loadgen
// (pinned to CPU 1), and writes bench/results/<date>-<commit>.json, plus (full
// runs) bench/results/latest.svg and the results table in bench/README.md.
import fs from 'node:fs';
import path from 'node:path';
import { BROKERS, HOST, BROKER_CPU, LOADGEN_CPU, MOSQUITTO_SETTINGS, MOSQUITTO_DEFAULT_SETTINGS, startBroker, unavailableReason } from './lib/brokers.mjs';
import { BENCH_DIR, ensureLoadgen, runLoadgen, WORK_DIR } from './lib/loadgen.mjs';
import { canPin, runTracked, sleep, systemBusyPct } from './lib/proc.mjs';
import { machineFacts, markdown, summarise, svgChart, writeReadmeTable } from './lib/report.mjs';
import { getPath, SCENARIOS } from './lib/scenarios.mjs';

function parseArgs(argv) {
  const o = { quick: false, brokers: null, scenarios: null, reps: null, duration: null, warmup: null, window: null, publish: null, drain: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--quick') o.quick = true;
    else if (a === '--brokers') o.brokers = next().split(',').map((s) => s.trim()).filter(Boolean);
    else if (a === '--scenarios') o.scenarios = next().split(',').map((s) => s.trim()).filter(Boolean);
    else if (a === '--reps') o.reps = Number(next());
    else if (a === '--duration') o.duration = Number(next());
    else if (a === '--warmup') o.warmup = Number(next());
    else if (a === '--drain') o.drain = Number(next());
    else if (a === '--window') o.window = Number(next());
    else if (a === '--publish') o.publish = true;
    else if (a === '--no-publish') o.publish = false;
    else if (a === '--help' || a === '-h') {
      console.log(fs.readFileSync(new URL(import.meta.url), 'utf8').split('\n').slice(1, 12).join('\n'));
      process.exit(0);
    } else throw new Error(`unknown option ${a}`);
  }
  o.reps ??= o.quick ? 1 : 3;
  o.duration ??= o.quick ? 1 : 5;
  o.warmup ??= o.quick ? 0.3 : 1;
  o.drain ??= o.quick ? 3 : 5;
  o.window ??= 64;
  o.publish ??= !o.quick;
  o.brokers ??= ['petrel', 'mosquitto', 'aedes'];
  for (const k of ['reps', 'duration', 'warmup', 'window', 'drain'])
    if (!(o[k] > 0) && !(k === 'warmup' && o[k] === 0)) throw new Error(`--${k} must be a positive number`);
  return o;
}

const log = (s) => process.stderr.write(`${s}\n`);

function fmtRate(x) {
  if (x == null) return 'n/a';
  return x >= 1e3 ? `${(x / 1e3).toFixed(1)}k` : x.toFixed(0);
}

function describe(sc, r) {
  if (r.error && !r.mode && r.rate === undefined) return `ERROR ${String(r.error).split('\n')[0]}`;
  if (sc.kind === 'eventloop')
    return ['delete', 'fanout', 'checkpoint', 'power']
      .map((c) => (r[c] ? `${c} p99 ${r[c].without.p99}→${r[c].with.p99} ms max ${r[c].without.max}→${r[c].with.max} ms` : `${c} n/a`))
      .join(' | ');
  if (sc.kind === 'inproc') return r.skipped ? `skipped: ${r.skipped}` : `${fmtRate(r.rate)} msg/s (lost ${r.lost}, cpu ${r.cpu_s?.toFixed(2)} s)${r.error ? ` error: ${r.error.split('\n')[0]}` : ''}`;
  if (sc.kind === 'idle')
    return `${r.connected}/${r.conns} connected, ${fmtRate(r.connect_rate)} conn/s (cold ${fmtRate(r.connect_rate_cold)}), ${(r.rss_per_conn_bytes / 1024).toFixed(2)} KB/conn after 2 s` +
      (r.rss_per_conn_idle_bytes > 0 ? `, ${(r.rss_per_conn_idle_bytes / 1024).toFixed(2)} KB/conn idle` : '') +
      ` (loadgen ${r.loadgen_cpu_s?.toFixed(2)} s CPU, broker ${r.broker_cpu_s?.toFixed(2)} s)${r.error ? ` [${r.error}]` : ''}`;
  const lat = sc.id.includes('latency') ? ` p50 ${(r.latency.p50_us / 1e3).toFixed(2)} ms p99 ${(r.latency.p99_us / 1e3).toFixed(2)} ms` : '';
  const check = [];
  if (r.lost) check.push(`lost ${r.lost}`);
  if (r.duplicates) check.push(`dup ${r.duplicates}`);
  if (r.inflight_unacked) check.push(`unacked ${r.inflight_unacked}`);
  const redis = r.redis_us_per_msg != null ? ` (redis ${r.redis_cpu_pct?.toFixed(0)}%, ${r.redis_us_per_msg.toFixed(1)} µs/msg)` : '';
  return `${fmtRate(r.recv_rate)} msg/s${lat} | loadgen ${r.loadgen_cpu_pct?.toFixed(0)}% broker ${r.broker_cpu_pct?.toFixed(0)}%${redis} cpu | ${
    r.ok ? 'ok' : 'FAIL'
  }${check.length ? ` (${check.join(', ')})` : ''}${r.error ? ` [${r.error}]` : ''}`;
}

async function runOne(sc, broker, opts) {
  if (sc.kind === 'inproc') {
    const r = await runTracked(
      'inproc',
      [process.execPath, path.join(BENCH_DIR, 'inproc.mjs'), '--duration', String(opts.duration), '--warmup', String(opts.warmup)],
      { cpu: BROKER_CPU, timeoutMs: (opts.duration + opts.warmup + 30) * 1000, logFile: path.join(WORK_DIR, 'logs', 'inproc.log') },
    );
    const line = r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
    if (!line) return { error: r.timedOut ? 'inproc timed out' : `inproc exited ${r.code ?? r.signal} without a result (see bench/.work/logs/inproc.log)` };
    return JSON.parse(line);
  }
  if (sc.kind === 'eventloop') {
    // bench/eventloop.mjs starts its own brokers (Petrel embedded) and flows; it pins them itself.
    const out = path.join(WORK_DIR, 'eventloop.json');
    fs.rmSync(out, { force: true });
    const duration = Math.max(opts.duration + 1, 3);
    const r = await runTracked(
      'eventloop',
      [process.execPath, path.join(BENCH_DIR, 'eventloop.mjs'), '--duration', String(duration), '--json', out],
      { timeoutMs: 20 * 60 * 1000, logFile: path.join(WORK_DIR, 'logs', 'eventloop.log') },
    );
    if (!fs.existsSync(out)) return { error: r.timedOut ? 'eventloop timed out' : `eventloop exited ${r.code ?? r.signal} without a result (see bench/.work/logs/eventloop.log)` };
    const res = {};
    for (const c of JSON.parse(fs.readFileSync(out, 'utf8')).results) res[c.case] = { without: c.without, with: c.with };
    return res;
  }
  let b;
  try {
    b = await startBroker(broker);
  } catch (e) {
    return { error: `broker start failed: ${e.message}` };
  }
  try {
    if (broker === 'petrel-workers2') {
      // The workers and their redis-server are the primary's children: their CPU is measured, not the primary's.
      await sleep(2000);
      b.cpuPids = childPids(b.pid);
    }
    const common = { host: HOST, port: b.port, brokerPid: b.pid, subPort: b.subPort, cpuPids: b.cpuPids?.length ? b.cpuPids.join(',') : undefined };
    let res;
    if (sc.kind === 'idle') {
      const load = { ...sc.load, ...(opts.quick ? sc.quickLoad : {}) };
      // Round 1, on the freshly started broker: RSS per connection (from the broker's RSS before any
      // connection) and the cold connect rate. Its connections close when that loadgen exits.
      const cold = await runLoadgen({ mode: 'idle', ...common, ...load, setupTimeout: 60 }, { cpu: LOADGEN_CPU });
      await sleep(1000);
      // Round 2, the same number again on the now warm broker (as the throughput scenarios measure after a
      // warm-up): the connect rate of a broker that has been running.
      const warm = await runLoadgen({ mode: 'idle', ...common, ...load, settle: 0, idleWait: 0, setupTimeout: 60 }, { cpu: LOADGEN_CPU });
      res = {
        ...cold,
        connect_rate_cold: cold.connect_rate,
        connect_seconds_cold: cold.connect_seconds,
        broker_cpu_s_cold: cold.broker_cpu_s,
        loadgen_cpu_s_cold: cold.loadgen_cpu_s,
        connect_rate: warm.connect_rate,
        connect_seconds: warm.connect_seconds,
        connack_latency: warm.connack_latency,
        broker_cpu_s: warm.broker_cpu_s,
        loadgen_cpu_s: warm.loadgen_cpu_s,
        rss_per_conn_idle_bytes: cold.rss_per_conn_idle_bytes >= 0 ? cold.rss_per_conn_idle_bytes : null,
        warm_connected: warm.connected,
        error: cold.error ?? warm.error ?? null,
      };
    } else {
      res = await runLoadgen(
        {
          mode: 'throughput',
          ...common,
          window: opts.window,
          ...sc.load,
          warmup: opts.warmup,
          duration: opts.duration,
          drain: opts.drain,
          setupTimeout: 30,
        },
        { cpu: LOADGEN_CPU },
      );
    }
    if (b.cpuPids?.length && Array.isArray(res.cpu_pids_s)) clusterCpu(broker, b, res);
    if (!b.alive()) {
      let tail = '';
      try {
        tail = fs.readFileSync(b.logFile, 'utf8').trim().split('\n').slice(-5).join(' | ');
      } catch {}
      res.error = `${res.error ? `${res.error}; ` : ''}broker exited during the run${tail ? `: ${tail}` : ''}`;
      res.ok = false;
    }
    return res;
  } finally {
    await b.stop();
  }
}

/** Direct children of a process (Linux). */
function childPids(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * A broker made of several processes: its CPU is their sum over the measured window (broker_cpu_pct), and for
 * the cluster the share of redis-server, per message published (microseconds).
 */
function clusterCpu(broker, b, res) {
  const dur = res.duration_s;
  const parts = res.cpu_pids_s.filter((x) => x >= 0);
  const own = broker === 'petrel-workers2' ? 0 : Math.max(0, res.broker_cpu_s ?? 0);
  const total = own + parts.reduce((a, x) => a + x, 0);
  res.broker_cpu_s_self = res.broker_cpu_s;
  res.broker_cpu_s = total;
  if (dur > 0) res.broker_cpu_pct = (100 * total) / dur;
  if (broker.startsWith('petrel-cluster')) {
    const redis = res.cpu_pids_s[1];
    const published = (res.pub_rate ?? 0) * dur;
    res.redis_cpu_s = redis;
    res.redis_cpu_pct = dur > 0 ? (100 * redis) / dur : null;
    res.redis_us_per_msg = published > 0 && redis >= 0 ? (redis * 1e6) / published : null;
  }
}

async function main() {
  // --render FILE: regenerate README table + SVG from an existing results file
  const ri = process.argv.indexOf('--render');
  if (ri >= 0) {
    const file = process.argv[ri + 1];
    const results = JSON.parse(fs.readFileSync(file, 'utf8'));
    fs.writeFileSync(path.join(BENCH_DIR, 'results', 'latest.svg'), svgChart(results));
    writeReadmeTable(path.join(BENCH_DIR, 'README.md'), markdown(results));
    log(`bench: rendered ${file} into bench/results/latest.svg and bench/README.md`);
    return;
  }
  const opts = parseArgs(process.argv.slice(2));
  // broker logs of this run only (bench/.work/logs/<broker>-<port>.log)
  fs.rmSync(path.join(WORK_DIR, 'logs'), { recursive: true, force: true });
  fs.mkdirSync(path.join(WORK_DIR, 'logs'), { recursive: true });
  if (!canPin()) log('bench: WARNING: taskset unavailable or fewer than 2 CPUs: broker and load generator are NOT pinned');

  // which brokers can run
  const skipped = [];
  const brokers = [];
  for (const b of opts.brokers) {
    if (!BROKERS[b]) throw new Error(`unknown broker ${b} (known: ${Object.keys(BROKERS).join(', ')})`);
    const why = unavailableReason(b);
    if (why) {
      log(`bench: skipping ${b}: ${why}`);
      skipped.push({ broker: b, reason: why });
    } else brokers.push(b);
  }
  if (!brokers.length) {
    log('bench: no broker available to benchmark');
    process.exit(1);
  }

  let scenarios = SCENARIOS;
  if (opts.scenarios) {
    scenarios = SCENARIOS.filter((s) => opts.scenarios.some((p) => s.id === p || s.id.startsWith(p)));
    if (!scenarios.length) throw new Error(`no scenario matches ${opts.scenarios.join(',')} (known: ${SCENARIOS.map((s) => s.id).join(', ')})`);
  }

  ensureLoadgen();
  const machine = machineFacts();
  const date = new Date();
  log(
    `bench: ${machine.cpu_model}, ${machine.cores} cores, Node ${machine.node}; brokers: ${brokers.join(', ')}; ` +
      `${opts.reps} rep(s) x ${opts.duration} s (+${opts.warmup} s warm-up)`,
  );

  const results = {
    format: 1,
    date: date.toISOString(),
    quick: opts.quick,
    file: null,
    config: {
      reps: opts.reps,
      duration: opts.duration,
      warmup: opts.warmup,
      drain: opts.drain,
      window: opts.window,
      payload: 64,
      protocol: 'MQTT 3.1.1',
      broker_cpu: BROKER_CPU,
      loadgen_cpu: LOADGEN_CPU,
      pinned: canPin(),
      mosquitto_conf: MOSQUITTO_SETTINGS,
      mosquitto_defaults_conf: MOSQUITTO_DEFAULT_SETTINGS,
      aedes: 'Aedes.createBroker() defaults, net.createServer(aedes.handle)',
      petrel: 'node dist/cli/main.js --memory|--data-dir DIR --log-level error',
    },
    machine,
    brokers,
    skipped,
    scenarios: [],
  };

  for (const sc of scenarios) {
    let targets = brokers.filter((b) => !sc.only || sc.only.includes(b));
    if (sc.extraBrokers && brokers.includes('petrel'))
      for (const x of sc.extraBrokers) if (!unavailableReason(x)) targets.push(x);
    if (!sc.extraBrokers) targets = targets.filter((b) => !b.startsWith('petrel-sqlite') || opts.brokers.includes(b));
    if (!targets.length) {
      log(`bench: ${sc.id}: no applicable broker, skipped`);
      continue;
    }
    const runs = Object.fromEntries(targets.map((b) => [b, []]));
    for (let rep = 1; rep <= opts.reps; rep++) {
      // ABBA order (reversed every other repetition): a drift of the machine over the run, or whatever the run
      // before leaves behind, falls on every broker alike instead of always on the one that runs second.
      for (const b of rep % 2 === 1 ? targets : [...targets].reverse()) {
        // other processes on the machine distort the figures: measure and record it
        const bg = await systemBusyPct(300);
        if (bg != null && bg > 15) log(`bench: WARNING: ${bg}% CPU busy before this run (other processes): figures will be distorted`);
        const r = await runOne(sc, b, opts);
        r.background_busy_pct = bg;
        runs[b].push(r);
        log(`${sc.id.padEnd(16)} ${String(rep)}/${opts.reps} ${b.padEnd(14)} ${describe(sc, r)}`);
        await sleep(200);
      }
    }
    // an inproc scenario that was skipped (API missing) is dropped
    for (const b of Object.keys(runs)) if (runs[b].every((r) => r.skipped)) delete runs[b];
    if (!Object.keys(runs).length) continue;
    results.scenarios.push({
      id: sc.id,
      title: sc.kind === 'idle' ? `${Number({ ...sc.load, ...(opts.quick ? sc.quickLoad : {}) }.conns).toLocaleString('en-US')} idle connections` : sc.title,
      kind: sc.kind,
      load: sc.load ?? null,
      metrics: sc.metrics,
      runs,
      summary: summarise(sc, runs),
    });
  }

  // write results
  // quick runs (smoke/test usage) go to the git-ignored work dir unless --publish
  const resultsDir = opts.quick && !opts.publish ? path.join(WORK_DIR, 'results') : path.join(BENCH_DIR, 'results');
  fs.mkdirSync(resultsDir, { recursive: true });
  const stamp = date.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
  const file = `${stamp}-${machine.petrel_commit_short}${opts.quick ? '-quick' : ''}.json`;
  results.file = path.relative(path.dirname(BENCH_DIR), path.join(resultsDir, file));
  const bgMax = Math.max(0, ...results.scenarios.flatMap((s) => Object.values(s.runs).flat()).map((r) => r.background_busy_pct ?? 0));
  results.background_busy_max_pct = bgMax;
  fs.writeFileSync(path.join(resultsDir, file), `${JSON.stringify(results, null, 1)}\n`);
  log(`bench: wrote ${results.file}`);
  const md = markdown(results);
  if (opts.publish) {
    fs.writeFileSync(path.join(resultsDir, 'latest.svg'), svgChart(results));
    writeReadmeTable(path.join(BENCH_DIR, 'README.md'), md);
    log('bench: updated bench/results/latest.svg and the results table in bench/README.md');
  }
  process.stdout.write(`${md}\n`);
  // exit status: 0 unless a measurement errored out entirely
  const hardErrors = results.scenarios.flatMap((s) => Object.values(s.runs).flat()).filter((r) => r.error && r.recv_rate === undefined && r.connect_rate === undefined && r.rate === undefined);
  void getPath;
  process.exit(hardErrors.length ? 1 : 0);
}

main().catch((e) => {
  log(`bench: ${e.stack ?? e}`);
  process.exit(1);
});
