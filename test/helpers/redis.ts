// A private redis-server for a test suite (Debian's /usr/bin/redis-server): its own temp directory, a Unix
// socket in it, never the system service and never a TCP port. Persistence as asked (AOF always by default).

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

export type Persistence = 'always' | 'everysec' | 'rdb' | 'none';

export interface RedisServer {
  readonly socket: string;
  readonly dir: string;
  readonly pid: number;
  /** A new ioredis client on the socket (the caller disconnects it). */
  client(): Redis;
  /** One command on a short-lived connection. */
  command(...args: (string | number)[]): Promise<unknown>;
  /** SIGKILL, and wait until it is gone. */
  kill9(): Promise<void>;
  /** Start again on the same directory, socket and settings. */
  restart(): Promise<void>;
  /** Stop and remove the directory. */
  stop(): Promise<void>;
}

function args(dir: string, socket: string, persistence: Persistence): string[] {
  const a = ['--port', '0', '--unixsocket', socket, '--unixsocketperm', '700', '--dir', dir, '--daemonize', 'no',
    '--maxmemory-policy', 'noeviction', '--enable-debug-command', 'local', '--logfile', join(dir, 'redis.log')];
  if (persistence === 'always' || persistence === 'everysec') a.push('--appendonly', 'yes', '--appendfsync', persistence, '--save', '');
  else if (persistence === 'rdb') a.push('--appendonly', 'no', '--save', '3600 1');
  else a.push('--appendonly', 'no', '--save', '');
  return a;
}

async function waitReady(socket: string, child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`);
    if (existsSync(socket)) {
      const r = new Redis({ path: socket, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      r.on('error', () => {});
      try {
        await r.connect();
        if ((await r.ping()) === 'PONG') return;
      } catch {
        // not yet
      } finally {
        r.disconnect();
      }
    }
    await new Promise((res) => setTimeout(res, 25));
  }
  throw new Error(`redis-server did not answer on ${socket} within ${timeoutMs} ms`);
}

export async function startRedis(options: { persistence?: Persistence } = {}): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'petrel-redis-'));
  const socket = join(dir, 'r.sock');
  const persistence = options.persistence ?? 'always';
  let child: ChildProcess;
  const launch = async (): Promise<void> => {
    child = spawn('redis-server', args(dir, socket, persistence), { stdio: 'ignore' });
    child.on('error', () => {});
    await waitReady(socket, child);
  };
  await launch();
  const gone = (c: ChildProcess): Promise<void> =>
    c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise((res) => c.once('exit', () => res()));
  return {
    socket,
    dir,
    get pid() {
      return child.pid!;
    },
    client: () => {
      const r = new Redis({ path: socket, maxRetriesPerRequest: 3 });
      r.on('error', () => {});
      return r;
    },
    async command(...a: (string | number)[]): Promise<unknown> {
      const r = new Redis({ path: socket, lazyConnect: true, maxRetriesPerRequest: 1 });
      r.on('error', () => {});
      try {
        await r.connect();
        return await r.call(String(a[0]), ...a.slice(1).map(String));
      } finally {
        r.disconnect();
      }
    },
    async kill9(): Promise<void> {
      const c = child;
      c.kill('SIGKILL');
      await gone(c);
    },
    async restart(): Promise<void> {
      await launch();
    },
    async stop(): Promise<void> {
      const c = child;
      c.kill('SIGTERM');
      const t = setTimeout(() => c.kill('SIGKILL'), 5000);
      await gone(c);
      clearTimeout(t);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
