// Starting and stopping the brokers under test, one at a time, pinned to CPU 0.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BENCH_DIR, REPO_DIR, WORK_DIR } from './loadgen.mjs';
import { canPin, freePort, startTracked, stopTracked, waitForPort } from './proc.mjs';

export const HOST = '127.0.0.1';
export const BROKER_CPU = 0;
export const LOADGEN_CPU = 1;
export const PETREL_CLI = path.join(REPO_DIR, 'dist', 'cli', 'main.js');
export const PETREL_INDEX = path.join(REPO_DIR, 'dist', 'index.js');

/** The mosquitto.conf settings used for the "mosquitto" target (besides the listener). */
export const MOSQUITTO_SETTINGS = [
  'allow_anonymous true',
  // The load generator bounds what is in flight (window per publisher); these
  // limits are set high so Mosquitto never throttles or drops because of them:
  // max_inflight_messages 20 (default) makes it drop QoS 2 PUBLISHes from 3.1.1
  // publishers with > 20 in flight, and max_queued_messages 1000 (default) makes
  // it drop QoS 0/1 messages when a subscriber's queue is momentarily long.
  'max_inflight_messages 1000',
  'max_queued_messages 1000000',
  'persistence false',
  'log_dest stderr',
  'log_type error',
];
/** "mosquitto-defaults": Debian's defaults (max_inflight_messages 20, max_queued_messages 1000). */
export const MOSQUITTO_DEFAULT_SETTINGS = ['allow_anonymous true', 'persistence false', 'log_dest stderr', 'log_type error'];

export function findMosquitto() {
  // PETREL_BENCH_MOSQUITTO=/path/to/mosquitto overrides the search (and lets one test the "missing" path)
  const cands = process.env.PETREL_BENCH_MOSQUITTO
    ? [process.env.PETREL_BENCH_MOSQUITTO]
    : ['mosquitto', '/usr/sbin/mosquitto', '/usr/local/sbin/mosquitto'];
  for (const cand of cands) {
    const r = spawnSync(cand, ['-h'], { encoding: 'utf8' });
    if (r.error) continue;
    const m = /mosquitto version (\S+)/.exec(`${r.stdout}${r.stderr}`);
    if (m) return { bin: cand, version: m[1] };
  }
  return null;
}

export function aedesVersion() {
  try {
    return JSON.parse(fs.readFileSync(path.join(REPO_DIR, 'node_modules', 'aedes', 'package.json'), 'utf8')).version;
  } catch {
    return null;
  }
}

/** "mosquitto-nodelay": like "mosquitto" plus set_tcp_nodelay true (Nagle off, as Petrel, Aedes and the loadgen do). */
export const MOSQUITTO_NODELAY_SETTINGS = [...MOSQUITTO_SETTINGS, 'set_tcp_nodelay true'];

export const BROKERS = {
  petrel: { label: 'Petrel', kind: 'node' },
  'petrel-sqlite': { label: 'Petrel (SQLite)', kind: 'node' },
  'petrel-sqlite-power': { label: 'Petrel (SQLite, fsync per commit)', kind: 'node' },
  mosquitto: { label: 'Mosquitto', kind: 'c' },
  'mosquitto-defaults': { label: 'Mosquitto (default limits)', kind: 'c' },
  'mosquitto-nodelay': { label: 'Mosquitto (TCP_NODELAY)', kind: 'c' },
  aedes: { label: 'Aedes', kind: 'node' },
  'node-floor': { label: 'Node net.Server floor', kind: 'node' },
  // bench/metrics-broker.mjs: Petrel embedded with /metrics and the latency histograms on, or metrics off.
  'metrics-on': { label: 'Petrel, metrics on', kind: 'node' },
  'metrics-off': { label: 'Petrel, metrics off', kind: 'node' },
  // Two `petrel --cluster` nodes and their redis-server (AOF appendfsync always), all three pinned to CPU 0 as
  // one broker is: publishers connect to node 1, subscribers to node 2 (every message crosses).
  'petrel-cluster': { label: 'Petrel cluster, 2 nodes (1 core)', kind: 'node' },
  // `petrel --workers 2` (two nodes and the embedded redis-server), pinned to CPU 0 like the others.
  'petrel-cluster-everysec': { label: 'Petrel cluster, 2 nodes, Redis AOF everysec (1 core)', kind: 'node' },
  'petrel-workers2': { label: 'Petrel --workers 2 (1 core)', kind: 'node' },
  // The same two nodes and redis-server, not pinned: free to use both cores with the load generator (for the
  // latency scenario, at a rate where the load generator needs little CPU).
  'petrel-cluster-free': { label: 'Petrel cluster, 2 nodes (not pinned)', kind: 'node' },
  'petrel-cluster-everysec-free': { label: 'Petrel cluster, 2 nodes, Redis AOF everysec (not pinned)', kind: 'node' },
};

export function findRedisServer() {
  for (const cand of ['redis-server', '/usr/bin/redis-server']) {
    const r = spawnSync(cand, ['--version'], { encoding: 'utf8' });
    if (!r.error && /Redis server v=/.test(r.stdout)) return cand;
  }
  return null;
}

/** null if available, else a human explanation of why it is skipped. */
export function unavailableReason(name) {
  if ((name.startsWith('petrel-cluster') || name === 'petrel-workers2') && !findRedisServer())
    return 'redis-server is not installed: install it with `sudo apt-get install redis-server` to run the cluster scenarios';
  if (name.startsWith('petrel')) {
    if (!fs.existsSync(PETREL_CLI)) return `Petrel is not built (${path.relative(REPO_DIR, PETREL_CLI)} missing): run \`npm run build\``;
    return null;
  }
  if (name.startsWith('mosquitto')) {
    if (!findMosquitto())
      return 'mosquitto is not installed: install it with `sudo apt-get install mosquitto` (Debian/Ubuntu) to compare against it';
    return null;
  }
  if (name === 'node-floor') return null;
  if (name === 'metrics-on' || name === 'metrics-off') {
    if (!fs.existsSync(PETREL_INDEX)) return `Petrel is not built (${path.relative(REPO_DIR, PETREL_INDEX)} missing): run \`npm run build\``;
    return null;
  }
  if (name === 'aedes') {
    if (!aedesVersion()) return 'aedes is not installed in node_modules: run `npm install`';
    return null;
  }
  return `unknown broker ${name}`;
}

/**
 * Start a broker alone on a fresh loopback port, pinned to CPU 0.
 * Returns { name, pid, port, host, stop() }.
 */
export async function startBroker(name, { logDir = path.join(WORK_DIR, 'logs') } = {}) {
  fs.mkdirSync(logDir, { recursive: true });
  if (name === 'petrel-cluster') return startPetrelCluster(logDir, 'always');
  if (name === 'petrel-cluster-everysec') return startPetrelCluster(logDir, 'everysec');
  if (name === 'petrel-cluster-free') return startPetrelCluster(logDir, 'always', null);
  if (name === 'petrel-cluster-everysec-free') return startPetrelCluster(logDir, 'everysec', null);
  const port = await freePort();
  const logFile = path.join(logDir, `${name}-${port}.log`);
  let argv;
  let cleanupDir = null;
  if (name.startsWith('petrel')) {
    argv = [process.execPath, PETREL_CLI, '--port', String(port), '--host', HOST];
    if (name === 'petrel') argv.push('--memory');
    else if (name === 'petrel-workers2') {
      cleanupDir = fs.mkdtempSync(path.join(WORK_DIR, 'petrel-workers-'));
      argv.push('--workers', '2', '--data-dir', cleanupDir);
    }
    else {
      cleanupDir = fs.mkdtempSync(path.join(WORK_DIR, 'petrel-data-'));
      argv.push('--data-dir', cleanupDir);
      if (name === 'petrel-sqlite-power') argv.push('--durability', 'power');
    }
    argv.push('--log-level', 'error');
  } else if (name.startsWith('mosquitto')) {
    const m = findMosquitto();
    if (!m) throw new Error(unavailableReason('mosquitto'));
    const conf = path.join(WORK_DIR, `mosquitto-${port}.conf`);
    const settings =
      name === 'mosquitto' ? MOSQUITTO_SETTINGS : name === 'mosquitto-nodelay' ? MOSQUITTO_NODELAY_SETTINGS : MOSQUITTO_DEFAULT_SETTINGS;
    fs.writeFileSync(conf, [`listener ${port} ${HOST}`, ...settings, ''].join('\n'));
    argv = [m.bin, '-c', conf];
    cleanupDir = conf;
  } else if (name === 'aedes') {
    argv = [process.execPath, path.join(BENCH_DIR, 'aedes-broker.mjs'), '--port', String(port), '--host', HOST];
  } else if (name === 'metrics-on' || name === 'metrics-off') {
    argv = [process.execPath, path.join(BENCH_DIR, 'metrics-broker.mjs'), '--port', String(port), '--host', HOST, '--metrics', name === 'metrics-on' ? 'on' : 'off',
      ...(canPin() ? ['--scrape-cpu', String(LOADGEN_CPU)] : [])];
  } else if (name === 'node-floor') {
    argv = [process.execPath, path.join(BENCH_DIR, 'node-floor.mjs'), '--port', String(port), '--host', HOST];
  } else {
    throw new Error(`unknown broker ${name}`);
  }
  const proc = startTracked(name, argv, { cpu: BROKER_CPU, logFile, cwd: REPO_DIR });
  let exited = null;
  proc.exited.then((r) => (exited = r));
  const up = await waitForPort(HOST, port, 20000, () => exited === null);
  const cleanup = () => {
    if (!cleanupDir) return;
    try {
      fs.rmSync(cleanupDir, { recursive: true, force: true });
    } catch {}
  };
  if (!up) {
    await stopTracked(proc, 1000);
    cleanup();
    let log = '';
    try {
      log = fs.readFileSync(logFile, 'utf8').slice(-2000);
    } catch {}
    throw new Error(`${name} did not start listening on ${HOST}:${port}${exited ? ` (exited ${exited.code ?? exited.signal})` : ''}\n${log}`);
  }
  return {
    name,
    pid: proc.pid,
    port,
    host: HOST,
    logFile,
    alive: () => exited === null,
    async stop() {
      await stopTracked(proc, 3000);
      cleanup();
    },
  };
}

async function waitForSocket(file, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (fs.existsSync(file)) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return false;
}

/** redis-server (AOF always or everysec, Unix socket) and two Petrel cluster nodes, all on CPU `cpu` (null: not pinned). */
async function startPetrelCluster(logDir, fsync, cpu = BROKER_CPU) {
  const dir = fs.mkdtempSync(path.join(WORK_DIR, 'petrel-cluster-'));
  const sock = path.join(dir, 'redis.sock');
  const redisBin = findRedisServer();
  const redis = startTracked('redis-server', [redisBin, '--port', '0', '--unixsocket', sock, '--unixsocketperm', '700', '--dir', dir,
    '--appendonly', 'yes', '--appendfsync', fsync, '--save', '', '--maxmemory-policy', 'noeviction', '--logfile', path.join(dir, 'redis.log')],
    { cpu, logFile: path.join(logDir, 'petrel-cluster-redis.log'), cwd: REPO_DIR });
  const procs = [redis];
  const stopAll = async () => {
    for (const p of procs.slice(1).reverse()) await stopTracked(p, 3000);
    await stopTracked(redis, 3000);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  if (!(await waitForSocket(sock, 10000))) {
    await stopAll();
    throw new Error('redis-server did not create its socket');
  }
  await new Promise((r) => setTimeout(r, 200));
  const ports = [];
  const logFiles = [];
  for (const id of ['n1', 'n2']) {
    const port = await freePort();
    const logFile = path.join(logDir, `petrel-cluster-${id}-${port}.log`);
    const p = startTracked(`petrel-cluster-${id}`, [process.execPath, PETREL_CLI, '--port', String(port), '--host', HOST, '--cluster', sock,
      '--node-id', id, '--memory', '--log-level', 'error'], { cpu, logFile, cwd: REPO_DIR });
    procs.push(p);
    let exited = null;
    p.exited.then((r) => (exited = r));
    if (!(await waitForPort(HOST, port, 20000, () => exited === null))) {
      await stopAll();
      throw new Error(`cluster node ${id} did not start listening`);
    }
    ports.push(port);
    logFiles.push(logFile);
  }
  const alive = procs.map(() => true);
  procs.forEach((p, i) => p.exited.then(() => (alive[i] = false)));
  return {
    name: `petrel-cluster${fsync === 'always' ? '' : `-${fsync}`}${cpu === null ? '-free' : ''}`,
    pid: procs[1].pid,
    port: ports[0],
    subPort: ports[1],
    // CPU of node 2 and of redis-server, measured by the load generator over the window.
    cpuPids: [procs[2].pid, redis.pid],
    host: HOST,
    logFile: logFiles[0],
    alive: () => alive.every(Boolean),
    stop: stopAll,
  };
}
