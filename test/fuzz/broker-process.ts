// The broker of the fuzz tests in a child process (test/fuzz/broker-child.ts), so that its memory (RSS) is
// measured apart from the test's and a crash shows as a dead process. Shared by fuzz.test.ts and campaign.ts.

import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { withTimeout } from '../helpers/wait.js';


export interface ChildStats {
  stats: Record<string, number>;
  unhandledRejections: number;
  connectedClients: number;
  sessionCount: number;
  retainedCount: number;
  memory: NodeJS.MemoryUsage;
}

export class BrokerProcess {
  child!: ChildProcess;
  port = 0;
  exited = false;
  stderr = '';
  private replies: ((m: { type: string }) => void)[] = [];

  /** limits: added to the child's broker limits (broker-child.ts). */
  async start(limits: Record<string, number> = {}): Promise<void> {
    const script = fileURLToPath(new URL('./broker-child.js', import.meta.url));
    this.child = fork(script, [], { execArgv: ['--expose-gc'], env: { ...process.env, PETREL_FUZZ_LIMITS: JSON.stringify(limits) }, stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (d: string) => {
      this.stderr = (this.stderr + d).slice(-8000);
    });
    this.child.on('exit', () => {
      this.exited = true;
    });
    this.child.on('message', (m: { type: string; port?: number }) => {
      if (m.type === 'ready') this.port = m.port!;
      const w = this.replies.shift();
      if (w) w(m);
    });
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        this.replies.push(() => resolve());
        this.child.once('exit', (code) => reject(new Error(`broker child exited with ${code}: ${this.stderr}`)));
      }),
      10_000,
      'the broker child to listen',
    );
  }

  private ask<T>(type: string): Promise<T> {
    if (this.exited) return Promise.reject(new Error(`the broker process died: ${this.stderr}`));
    return withTimeout(
      new Promise<T>((resolve) => {
        this.replies.push((m) => resolve(m as T));
        this.child.send({ type });
      }),
      type === 'snapshot' ? 60_000 : 5000,
      `the broker child to answer ${type}`,
    );
  }

  stats(): Promise<ChildStats> {
    return this.ask<ChildStats>('stats');
  }

  /** Writes a heap snapshot in the child's working directory; resolves with its file name. */
  async snapshot(): Promise<string> {
    return (await this.ask<{ file: string }>('snapshot')).file;
  }

  async gc(): Promise<void> {
    await this.ask('gc');
  }

  /** Resident set size from /proc (kB → bytes). */
  rss(): number {
    const status = readFileSync(`/proc/${this.child.pid}/status`, 'utf8');
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(status);
    assert.ok(m, 'VmRSS in /proc status');
    return Number(m[1]) * 1024;
  }

  async stop(): Promise<void> {
    if (this.exited || !this.child) return;
    const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.send({ type: 'close' });
    await withTimeout(gone, 8000, 'the broker child to exit').catch(() => {
      this.child.kill('SIGKILL'); // our own child, by its handle
    });
  }
}

