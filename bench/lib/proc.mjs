// Process bookkeeping for the bench runner: every child is started in its own
// process group, remembered, and killed on exit, Ctrl-C or SIGTERM.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';

const live = new Map(); // pid -> { name, child }
let handlersInstalled = false;

function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

export function killAll(signal = 'SIGKILL') {
  for (const pid of live.keys()) killGroup(pid, signal);
}

function installHandlers() {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', () => killAll('SIGKILL'));
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      process.stderr.write(`\nbench: ${sig}, stopping ${live.size} child process(es)\n`);
      const waits = [...live.values()].map(({ child }) => new Promise((r) => child.once('exit', r)));
      killAll('SIGKILL');
      // reap them (no zombies left behind), but never wait more than 2 s
      Promise.race([Promise.all(waits), sleep(2000)]).then(() => process.exit(sig === 'SIGINT' ? 130 : 143));
    });
  }
}

/** True when the `taskset` binary is usable and the machine has >= 2 CPUs. */
let tasksetOk;
export function canPin() {
  if (tasksetOk === undefined) {
    const r = spawnSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' });
    tasksetOk = r.status === 0 && (cpuCount() >= 2);
  }
  return tasksetOk;
}
function cpuCount() {
  try {
    return fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n').filter((l) => l.startsWith('processor')).length;
  } catch {
    return 1;
  }
}

/**
 * Start a command in its own process group, with the fd limit raised and
 * (if possible) pinned to `cpu`. Returns { child, pid, exited: Promise<{code, signal}> }.
 * The pid is the pid of the final program (bash and taskset exec into it).
 */
export function startTracked(name, argv, { cpu = null, logFile = null, stdout = 'ignore', env = process.env, cwd } = {}) {
  installHandlers();
  const pin = cpu !== null && canPin() ? `exec taskset -c ${cpu} "$@"` : 'exec "$@"';
  const script = `ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; ${pin}`;
  let out = stdout;
  let err = 'ignore';
  let fd = null;
  if (logFile) {
    fd = fs.openSync(logFile, 'a');
    err = fd;
    if (stdout === 'ignore') out = fd;
  }
  const child = spawn('bash', ['-c', script, 'bash', ...argv], {
    detached: true,
    stdio: ['ignore', out, err],
    env,
    cwd,
  });
  if (fd !== null) fs.closeSync(fd);
  live.set(child.pid, { name, child });
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      live.delete(child.pid);
      resolve({ code, signal });
    });
    child.on('error', (e) => {
      live.delete(child.pid);
      resolve({ code: -1, signal: null, error: e });
    });
  });
  return { child, pid: child.pid, exited, name };
}

/** SIGTERM the group, then SIGKILL after `graceMs`. */
export async function stopTracked(proc, graceMs = 3000) {
  if (!live.has(proc.pid)) return proc.exited;
  killGroup(proc.pid, 'SIGTERM');
  const timer = new Promise((r) => setTimeout(() => r('timeout'), graceMs));
  const res = await Promise.race([proc.exited, timer]);
  if (res === 'timeout') {
    killGroup(proc.pid, 'SIGKILL');
    return proc.exited;
  }
  // make sure nothing of the group lingers (e.g. a worker)
  killGroup(proc.pid, 'SIGKILL');
  return res;
}

/**
 * Run a command to completion with a hard timeout; collects stdout.
 * Returns { code, signal, stdout, timedOut }.
 */
export async function runTracked(name, argv, { cpu = null, timeoutMs, logFile = null, env, cwd } = {}) {
  const p = startTracked(name, argv, { cpu, logFile, stdout: 'pipe', env, cwd });
  let stdout = '';
  p.child.stdout.setEncoding('utf8');
  p.child.stdout.on('data', (d) => (stdout += d));
  let timedOut = false;
  const t = setTimeout(() => {
    timedOut = true;
    killGroup(p.pid, 'SIGTERM');
    setTimeout(() => killGroup(p.pid, 'SIGKILL'), 2000).unref();
  }, timeoutMs);
  const r = await p.exited;
  clearTimeout(t);
  return { ...r, stdout, timedOut };
}

/** A free TCP port on 127.0.0.1 (never 1883). */
export async function freePort() {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const s = net.createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const p = s.address().port;
        s.close(() => resolve(p));
      });
    });
    if (port !== 1883 && port !== 8883) return port;
  }
}

/** Wait until something accepts TCP connections on host:port. */
export async function waitForPort(host, port, timeoutMs, isAlive = () => true) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isAlive()) return false;
    const ok = await new Promise((resolve) => {
      const s = net.connect({ host, port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
      s.setTimeout(500, () => {
        s.destroy();
        resolve(false);
      });
    });
    if (ok) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Busy % of all CPUs together over `ms` (from /proc/stat): load that is not ours when nothing of ours runs. */
export async function systemBusyPct(ms = 300) {
  const read = () => {
    try {
      const l = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
      const total = l.slice(0, 8).reduce((a, b) => a + b, 0);
      return { total, idle: l[3] + l[4] };
    } catch {
      return null;
    }
  };
  const a = read();
  await sleep(ms);
  const b = read();
  if (!a || !b || b.total === a.total) return null;
  return Math.round((1000 * (b.total - a.total - (b.idle - a.idle))) / (b.total - a.total)) / 10;
}
