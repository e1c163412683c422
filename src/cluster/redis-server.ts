// The Redis of `petrel --workers N` when no --cluster is given: Debian's redis-server, started by the primary
// process on a Unix socket in <data-dir>/redis (never a TCP port), with AOF `appendfsync always` so that an
// acknowledgement that followed a Redis reply survives a crash of Redis as it survives one of SQLite.
//
// Its lifetime is the primary's: it is started in its own process group (a Ctrl-C in the terminal reaches the
// workers, which still need Redis to shut down cleanly, but not Redis), stopped by the primary after the
// workers, and a watchdog (a shell blocked reading a pipe from the primary) sends it SIGTERM when the primary
// dies without stopping it (kill -9): the pipe's write end closes with the primary, the read returns.

import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, lstatSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { delimiter, join, resolve } from 'node:path';

/** Why the embedded Redis cannot start; exitCode is the `petrel` command's (2: fix the setup, 1: it failed). */
export class EmbeddedRedisError extends Error {
  constructor(
    message: string,
    readonly exitCode: 1 | 2,
  ) {
    super(message);
    this.name = 'EmbeddedRedisError';
  }
}

export const REDIS_MISSING = '--workers needs redis-server: install it (apt-get install redis-server) or point --cluster at a Redis';

export interface EmbeddedRedis {
  /** Absolute path of the Unix socket (what the workers get as --cluster). */
  readonly socket: string;
  readonly pid: number;
  /** Resolves when redis-server exits, whatever the reason. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM (SIGKILL after timeoutMs), wait for the exit, remove the socket file. */
  stop(timeoutMs?: number): Promise<void>;
}

export interface EmbeddedRedisOptions {
  /** The data directory: Redis keeps its AOF, log and socket in <dir>/redis. */
  dir: string;
  /** How long to wait for the first PONG (default 10 s). */
  timeoutMs?: number;
  /** Where to look for redis-server (default process.env: PETREL_REDIS_SERVER, then PATH, then /usr/bin). */
  env?: NodeJS.ProcessEnv;
}

const executable = (p: string): boolean => {
  try {
    accessSync(p, constants.X_OK);
    return lstatSync(p).isFile() || lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
};

/** The redis-server binary: $PETREL_REDIS_SERVER if set (and nothing else then), else PATH, else /usr/bin. */
export function findRedisServer(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const forced = env.PETREL_REDIS_SERVER;
  if (forced !== undefined && forced !== '') return executable(forced) ? forced : undefined;
  for (const d of (env.PATH ?? '').split(delimiter)) {
    if (d !== '' && executable(join(d, 'redis-server'))) return join(d, 'redis-server');
  }
  return executable('/usr/bin/redis-server') ? '/usr/bin/redis-server' : undefined;
}

/** One PING on a fresh connection to the socket: the first reply line, or an error (refused, timeout). */
export function ping(socket: string, timeoutMs = 1000): Promise<string> {
  return new Promise((resolvePing, reject) => {
    const s = connect({ path: socket });
    let buf = '';
    const done = (err: Error | null, line?: string): void => {
      clearTimeout(timer);
      s.destroy();
      if (err) reject(err);
      else resolvePing(line!);
    };
    const timer = setTimeout(() => done(new Error(`no answer on ${socket} within ${timeoutMs} ms`)), timeoutMs);
    s.setEncoding('utf8');
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d: string) => {
      buf += d;
      const i = buf.indexOf('\r\n');
      if (i >= 0) done(null, buf.slice(0, i));
    });
    s.on('error', (err) => done(err));
    s.on('close', () => done(new Error(`${socket} closed before answering`)));
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function tail(file: string, n = 5): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-n).join('\n');
  } catch {
    return '';
  }
}

/** Start redis-server for `petrel --workers`; resolves once it answers PING. */
export async function startEmbeddedRedis(options: EmbeddedRedisOptions): Promise<EmbeddedRedis> {
  const bin = findRedisServer(options.env);
  if (bin === undefined) throw new EmbeddedRedisError(REDIS_MISSING, 2);
  const dir = resolve(options.dir, 'redis');
  const socket = join(dir, 'redis.sock');
  // sun_path holds 108 bytes on Linux, the terminating NUL included.
  if (Buffer.byteLength(socket) > 107) {
    throw new EmbeddedRedisError(`--data-dir: the Redis socket ${socket} is longer than a Unix socket path may be (107 bytes): use a shorter --data-dir`, 2);
  }
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new EmbeddedRedisError(`--data-dir: cannot create ${dir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, 1);
  }
  // A socket file left by a crashed run is removed (redis-server would unlink it too); one that answers belongs
  // to a live Redis on the same files, and a second one there would corrupt its AOF.
  let stale = false;
  try {
    stale = lstatSync(socket).isSocket();
    if (!stale) throw new EmbeddedRedisError(`--data-dir: ${socket} exists and is not a socket: remove it`, 2);
  } catch (err) {
    if (err instanceof EmbeddedRedisError) throw err;
  }
  if (stale) {
    const answer = await ping(socket, 1000).catch(() => undefined);
    if (answer !== undefined) {
      throw new EmbeddedRedisError(`a Redis already answers on ${socket}: is another petrel --workers running on this --data-dir?`, 1);
    }
    rmSync(socket, { force: true });
  }
  const logfile = join(dir, 'redis.log');
  const args = [
    '--port', '0',
    '--unixsocket', socket,
    '--unixsocketperm', '700',
    '--dir', dir,
    '--appendonly', 'yes',
    '--appendfsync', 'always',
    '--maxmemory-policy', 'noeviction',
    '--save', '',
    '--daemonize', 'no',
    '--logfile', logfile,
  ];
  let stderr = '';
  const child: ChildProcess = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => {
    stderr = (stderr + d).slice(-2000);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
    child.once('exit', (code, signal) => res({ code, signal }));
  });
  const spawnError = new Promise<Error>((res) => child.once('error', res));
  const pid = await Promise.race([
    new Promise<number>((res) => child.once('spawn', () => res(child.pid!))),
    spawnError.then((err) => {
      throw new EmbeddedRedisError(`cannot start ${bin}: ${err.message}`, 1);
    }),
  ]);
  // The watchdog: `read` returns at end of file, which comes when the primary's end of the pipe closes.
  const watchdog = spawn('/bin/sh', ['-c', 'read _ ; kill -TERM "$1" 2>/dev/null', 'petrel-redis-watchdog', String(pid)], {
    stdio: ['pipe', 'ignore', 'ignore'],
    detached: true,
  });
  watchdog.on('error', () => {});
  watchdog.stdin!.on('error', () => {});
  const watchdogGone = new Promise<void>((res) => watchdog.once('exit', () => res()));
  const killWatchdog = async (): Promise<void> => {
    if (watchdog.exitCode === null && watchdog.signalCode === null && watchdog.pid !== undefined) {
      watchdog.kill('SIGKILL');
      await Promise.race([watchdogGone, sleep(2000)]);
    }
  };
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  const stop = async (timeoutMs = 10_000): Promise<void> => {
    // The watchdog first: it must never signal a pid that was reused after Redis exited.
    await killWatchdog();
    if (!gone) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      await exited;
      clearTimeout(t);
    }
    rmSync(socket, { force: true });
  };
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  for (;;) {
    if (gone) {
      await killWatchdog();
      const why = (tail(logfile) || stderr.trim()).split('\n').pop() ?? '';
      const { code, signal } = await exited;
      throw new EmbeddedRedisError(`redis-server exited (${code ?? signal}) before it answered${why ? `: ${why}` : ''} (log: ${logfile})`, 1);
    }
    const answer = await ping(socket, 500).catch(() => undefined);
    if (answer === '+PONG') break;
    if (Date.now() > deadline) {
      await stop(2000);
      throw new EmbeddedRedisError(`redis-server did not answer on ${socket} within ${options.timeoutMs ?? 10_000} ms (log: ${logfile})`, 1);
    }
    await sleep(25);
  }
  return { socket, pid, exited, stop };
}
