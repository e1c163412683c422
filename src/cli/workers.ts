// `petrel --workers N`: N cluster nodes on one machine behind the same ports, with node:cluster. The primary
// process opens no MQTT listener of its own: it starts the Redis (src/cluster/redis-server.ts, unless --cluster
// names one), forks the workers, restarts those that die (1 s back-off doubling to 30 s, back to 1 s after a
// worker stayed up 60 s), forwards SIGHUP, and on SIGTERM/SIGINT stops the workers (each shuts down as a single
// `petrel` does), then Redis. Each worker is the ordinary broker in cluster mode (`--cluster <redis>
// --node-id <host>-w<i>`); node:cluster hands it the listening sockets, so TCP, TLS and WebSocket clients are
// spread over the workers (round robin) and a client may land on any of them: cluster mode makes that one broker.

import cluster, { type Worker } from 'node:cluster';
import { hostname } from 'node:os';
import { createLogger, type Logger } from '../broker/logger.js';
import { startEmbeddedRedis, type EmbeddedRedis } from '../cluster/redis-server.js';
import { ConfigError, type CliConfig } from './config.js';

export const MAX_WORKERS = 64;
const FIRST_DELAY_MS = 1000;
const MAX_DELAY_MS = 30_000;
const RESET_AFTER_MS = 60_000;

/** What the primary tells each worker (environment of cluster.fork). */
const ENV_INDEX = 'PETREL_WORKER_INDEX';
const ENV_REDIS = 'PETREL_WORKER_CLUSTER';
const ENV_NODE = 'PETREL_WORKER_NODE_ID';

/** Refuse the settings that --workers N > 1 cannot honour (main.ts exits 2). */
export function checkWorkers(c: CliConfig): void {
  const n = c.workers;
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_WORKERS) {
    throw new ConfigError('--workers', `must be an integer from 1 to ${MAX_WORKERS}, got ${JSON.stringify(n)}`);
  }
  if (n === 1) return;
  if (c.httpPort !== undefined) {
    throw new ConfigError(
      '--http-port',
      `cannot be used with --workers ${n}: the metrics and health checks are per node and the workers would share the port, ` +
        'so each scrape would see one worker at random; run single nodes with --cluster, each with its own --http-port',
    );
  }
  if (c.memory && c.cluster === undefined) {
    throw new ConfigError('--memory', `cannot be used with --workers ${n} without --cluster: the Redis that --workers starts keeps the cluster's state in --data-dir; drop --memory or point --cluster at a Redis`);
  }
}

/** Whether this process is a worker forked by runPrimary. */
export function isWorker(): boolean {
  return cluster.isWorker && process.env[ENV_NODE] !== undefined;
}

/** In a worker: the configuration with the cluster settings the primary chose. */
export function workerConfig(c: CliConfig): CliConfig {
  const cl: NonNullable<CliConfig['cluster']> = { redis: process.env[ENV_REDIS]!, nodeId: process.env[ENV_NODE]! };
  if (c.cluster?.leaseMs !== undefined) cl.leaseMs = c.cluster.leaseMs;
  return { ...c, cluster: cl };
}

/** In a worker: tell the primary that its listeners are open. */
export function reportReady(): void {
  process.send?.({ petrel: 'ready' });
}

/** `<host>-w<i>` (or `<--node-id>-w<i>`), within the 64 characters of a node id. */
function nodeIdOf(c: CliConfig, i: number): string {
  const base = (c.cluster?.nodeId ?? hostname()).replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 56) || 'petrel';
  return `${base}-w${i}`;
}

interface Slot {
  index: number;
  nodeId: string;
  worker: Worker | undefined;
  startedAt: number;
  delay: number;
  timer: NodeJS.Timeout | undefined;
  ready: boolean;
}

/** The primary of `petrel --workers N` (N > 1). Resolves with the exit code. */
export async function runPrimary(c: CliConfig, log: Logger = createLogger(c.logLevel, { format: c.logFormat })): Promise<number> {
  const n = c.workers;
  let stopping = false;
  let stopSignal: NodeJS.Signals = 'SIGTERM';
  let wakeStop: () => void = () => {};
  const stopRequested = new Promise<void>((res) => {
    wakeStop = res;
  });
  const slots: Slot[] = [];
  let redis: EmbeddedRedis | undefined;
  let forced = false;

  const killAll = (): void => {
    for (const s of slots) if (s.worker !== undefined) s.worker.process.kill('SIGKILL');
  };
  const onStop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn(`${signal} again, exiting now`, { event: 'process.signal', signal });
      forced = true;
      killAll();
      void (redis?.stop(2000) ?? Promise.resolve()).finally(() => process.exit(1));
      return;
    }
    stopping = true;
    stopSignal = signal;
    log.info(`${signal}, shutting down`, { event: 'process.signal', signal });
    wakeStop();
  };
  process.on('SIGINT', () => onStop('SIGINT'));
  process.on('SIGTERM', () => onStop('SIGTERM'));
  process.on('SIGHUP', () => {
    if (stopping) return;
    // Only to workers that listen: one still starting reads its files anyway, and has no SIGHUP handler yet.
    let k = 0;
    for (const s of slots) {
      if (s.worker !== undefined && s.ready) {
        s.worker.process.kill('SIGHUP');
        k++;
      }
    }
    log.info('SIGHUP forwarded to the workers', { event: 'workers.sighup_forwarded', workers: k });
  });

  let redisUrl: string;
  if (c.cluster !== undefined) {
    redisUrl = c.cluster.redis;
  } else {
    redis = await startEmbeddedRedis({ dir: c.dataDir });
    redisUrl = redis.socket;
    log.info('redis-server started', { event: 'redis.started', pid: redis.pid, socket: redis.socket });
    if (stopping) {
      await redis.stop();
      return 0;
    }
  }
  const shownUrl = redisUrl.replace(/\/\/[^@]*@/, '//***@');

  let started = false;
  let failure: string | undefined;
  const fatal = (why: string): void => {
    if (stopping) return;
    failure = why;
    stopping = true;
    wakeStop();
  };

  // The embedded Redis exiting on its own (killed, out of memory): start it again on the same files; the
  // workers ride it out within their lease, and fence themselves (then restart here) past it.
  const watchRedis = (r: EmbeddedRedis, delay: number): void => {
    const upSince = Date.now();
    void r.exited.then(({ code, signal }) => {
      if (stopping || redis !== r) return;
      const wait = Date.now() - upSince >= RESET_AFTER_MS ? FIRST_DELAY_MS : delay;
      log.error('redis-server exited, starting it again', { event: 'redis.exited', pid: r.pid, code: code ?? undefined, signal: signal ?? undefined, restart_in_ms: wait });
      setTimeout(() => {
        if (stopping) return;
        startEmbeddedRedis({ dir: c.dataDir }).then(
          (again) => {
            redis = again;
            log.info('redis-server started', { event: 'redis.started', pid: again.pid, socket: again.socket });
            if (stopping) void again.stop();
            else watchRedis(again, Math.min(wait * 2, MAX_DELAY_MS));
          },
          (err: unknown) => fatal(`cannot start redis-server again: ${(err as Error).message}`),
        );
      }, wait);
    });
  };
  if (redis !== undefined) watchRedis(redis, FIRST_DELAY_MS);

  let allExited: () => void = () => {};
  const workersGone = new Promise<void>((res) => {
    allExited = res;
  });
  const checkAllExited = (): void => {
    if (stopping && slots.every((s) => s.worker === undefined)) allExited();
  };

  const fork = (s: Slot): void => {
    s.timer = undefined;
    s.ready = false;
    const w = cluster.fork({ [ENV_INDEX]: String(s.index), [ENV_REDIS]: redisUrl, [ENV_NODE]: s.nodeId });
    s.worker = w;
    s.startedAt = Date.now();
    log.info('worker started', { event: 'worker.started', worker: s.index, pid: w.process.pid, node: s.nodeId });
    w.on('message', (m: unknown) => {
      if ((m as { petrel?: string } | null)?.petrel !== 'ready' || s.worker !== w) return;
      s.ready = true;
      log.info('worker listening', { event: 'worker.listening', worker: s.index, pid: w.process.pid });
      if (!started && slots.every((x) => x.ready)) {
        started = true;
        log.info('workers started', { event: 'workers.started', workers: n, redis: shownUrl });
      }
    });
    w.on('error', () => {});
    w.on('exit', (code: number | null, signal: NodeJS.Signals | null) => {
      if (s.worker !== w) return;
      s.worker = undefined;
      if (stopping) {
        log.info('worker exited', { event: 'worker.exited', worker: s.index, pid: w.process.pid, code: code ?? undefined, signal: signal ?? undefined });
        checkAllExited();
        return;
      }
      if (!started && !s.ready) {
        // A worker that cannot start (a port in use, Redis unreachable) would fail again: stop, as one process would.
        log.error('worker exited before it was listening: stopping', { event: 'worker.start_failed', worker: s.index, pid: w.process.pid, code: code ?? undefined, signal: signal ?? undefined });
        fatal(`worker ${s.index} exited (${code ?? signal}) while starting`);
        checkAllExited();
        return;
      }
      if (Date.now() - s.startedAt >= RESET_AFTER_MS) s.delay = FIRST_DELAY_MS;
      const wait = s.delay;
      s.delay = Math.min(s.delay * 2, MAX_DELAY_MS);
      log.warn('worker exited, restarting it', { event: 'worker.restarting', worker: s.index, pid: w.process.pid, code: code ?? undefined, signal: signal ?? undefined, restart_in_ms: wait });
      s.timer = setTimeout(() => fork(s), wait);
    });
  };

  for (let i = 1; i <= n; i++) {
    slots.push({ index: i, nodeId: nodeIdOf(c, i), worker: undefined, startedAt: 0, delay: FIRST_DELAY_MS, timer: undefined, ready: false });
  }
  for (const s of slots) fork(s);

  await stopRequested;
  // Shutdown: no more restarts; each worker closes as a single `petrel` does (its clients, then its store).
  for (const s of slots) {
    if (s.timer !== undefined) clearTimeout(s.timer);
    s.timer = undefined;
    if (s.worker !== undefined) s.worker.process.kill(failure === undefined ? stopSignal : 'SIGTERM');
  }
  checkAllExited();
  const graceMs = c.closeTimeout * 1000 + 15_000;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    workersGone,
    new Promise<void>((res) => {
      timer = setTimeout(() => {
        log.error('workers did not stop in time: killing them', { event: 'workers.stop_timeout', after_ms: graceMs });
        forced = true;
        killAll();
        res();
      }, graceMs);
    }),
  ]);
  clearTimeout(timer);
  await workersGone;
  if (redis !== undefined) {
    await redis.stop();
    log.info('redis-server stopped', { event: 'redis.stopped', pid: redis.pid });
  }
  if (failure !== undefined) {
    process.stderr.write(`petrel: ${failure}\n`);
    return 1;
  }
  return forced ? 1 : 0;
}
