// Compiling and running the C load generator (bench/loadgen.c).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTracked } from './proc.mjs';

export const BENCH_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO_DIR = path.resolve(BENCH_DIR, '..');
export const WORK_DIR = path.join(BENCH_DIR, '.work');
const SRC = path.join(BENCH_DIR, 'loadgen.c');
export const LOADGEN = path.join(WORK_DIR, 'loadgen');

/** Compile bench/loadgen.c into bench/.work/loadgen with gcc -O2 (only when stale). */
export function ensureLoadgen({ force = false, quiet = false } = {}) {
  fs.mkdirSync(WORK_DIR, { recursive: true });
  const srcStat = fs.statSync(SRC);
  if (!force && fs.existsSync(LOADGEN) && fs.statSync(LOADGEN).mtimeMs >= srcStat.mtimeMs) return LOADGEN;
  const tmp = `${LOADGEN}.${process.pid}.tmp`;
  const r = spawnSync('gcc', ['-O2', '-Wall', '-o', tmp, SRC], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    try {
      fs.unlinkSync(tmp);
    } catch {}
    const why = r.error ? r.error.message : r.stderr;
    throw new Error(`cannot compile bench/loadgen.c with gcc (is gcc installed? apt-get install gcc):\n${why}`);
  }
  fs.renameSync(tmp, LOADGEN); // atomic: concurrent callers never see a half-written binary
  if (!quiet) process.stderr.write('bench: compiled bench/loadgen.c -> bench/.work/loadgen (gcc -O2)\n');
  return LOADGEN;
}

const FLAG = {
  pubs: '--pubs',
  subs: '--subs',
  pubTopic: '--pub-topic',
  subFilter: '--sub-filter',
  qos: '--qos',
  subQos: '--sub-qos',
  payload: '--payload',
  window: '--window',
  refill: '--refill',
  qos0Window: '--qos0-window',
  rate: '--rate',
  warmup: '--warmup',
  duration: '--duration',
  drain: '--drain',
  setupTimeout: '--setup-timeout',
  cleanSub: '--clean-sub',
  cleanPub: '--clean-pub',
  conns: '--conns',
  concurrency: '--concurrency',
  settle: '--settle',
  idleWait: '--idle-wait',
  keepalive: '--keepalive',
  sndbuf: '--sndbuf',
  maxMsgs: '--max-msgs',
  brokerPid: '--broker-pid',
  subPort: '--sub-port',
  subAlt: '--sub-alt',
  cpuPids: '--cpu-pids',
  mode: '--mode',
  host: '--host',
  port: '--port',
};

export function loadgenArgs(opts) {
  const args = [];
  for (const [k, v] of Object.entries(opts)) {
    if (v === undefined || v === null) continue;
    const flag = FLAG[k];
    if (!flag) throw new Error(`unknown loadgen option ${k}`);
    args.push(flag, typeof v === 'boolean' ? (v ? '1' : '0') : String(v));
  }
  return args;
}

/**
 * Run the load generator; resolves to its parsed JSON result (plus `exitCode`)
 * or to { error } when it crashed or timed out.
 */
export async function runLoadgen(opts, { cpu = null, logFile = null } = {}) {
  const bin = ensureLoadgen({ quiet: true });
  const mode = opts.mode ?? 'throughput';
  const budget =
    mode === 'idle'
      ? (opts.setupTimeout ?? 60) + (opts.settle ?? 2) + (opts.idleWait ?? 0) + 15
      : (opts.setupTimeout ?? 60) + (opts.warmup ?? 1) + (opts.duration ?? 5) + (opts.drain ?? 5) + 15;
  const r = await runTracked('loadgen', [bin, ...loadgenArgs(opts)], { cpu, timeoutMs: budget * 1000, logFile });
  const line = r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (!line) {
    return { error: r.timedOut ? `loadgen timed out after ${budget}s` : `loadgen exited ${r.code ?? r.signal} without a result`, exitCode: r.code };
  }
  try {
    const res = JSON.parse(line);
    res.exitCode = r.code;
    if (r.timedOut) res.error = res.error ?? 'loadgen timed out';
    return res;
  } catch (e) {
    return { error: `unparseable loadgen output: ${line.slice(0, 200)}`, exitCode: r.code };
  }
}
