// Child processes for interoperability tests (mosquitto_pub/sub, Python
// scripts): line-oriented output with bounded waits, and a kill on cleanup.

import { spawn, type ChildProcess } from 'node:child_process';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A running child process whose output is collected line by line. */
export class LineProcess {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  readonly errLines: string[] = [];
  stdout = '';
  stderr = '';
  exitCode: number | null = null;
  exitSignal: NodeJS.Signals | null = null;
  exited = false;
  private readonly exitPromise: Promise<void>;
  private waiters: (() => void)[] = [];
  private outTail = '';
  private errTail = '';

  constructor(
    readonly command: string,
    readonly args: readonly string[],
    options: { env?: NodeJS.ProcessEnv; stdin?: string } = {},
  ) {
    this.child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], env: options.env ?? process.env });
    this.child.stdout!.setEncoding('utf8');
    this.child.stderr!.setEncoding('utf8');
    this.child.stdout!.on('data', (d: string) => {
      this.stdout += d;
      this.outTail = this.split(this.outTail + d, this.lines);
      this.wake();
    });
    this.child.stderr!.on('data', (d: string) => {
      this.stderr += d;
      this.errTail = this.split(this.errTail + d, this.errLines);
      this.wake();
    });
    this.exitPromise = new Promise<void>((resolve) => {
      this.child.on('close', (code, signal) => {
        if (this.outTail) this.lines.push(this.outTail);
        if (this.errTail) this.errLines.push(this.errTail);
        this.outTail = this.errTail = '';
        this.exitCode = code;
        this.exitSignal = signal;
        this.exited = true;
        this.wake();
        resolve();
      });
      this.child.on('error', (err) => {
        this.stderr += String(err);
        this.exited = true;
        this.wake();
        resolve();
      });
    });
    if (options.stdin !== undefined) this.child.stdin!.end(options.stdin);
    else this.child.stdin!.end();
  }

  private split(text: string, into: string[]): string {
    const parts = text.split('\n');
    const tail = parts.pop()!;
    for (const p of parts) into.push(p.replace(/\r$/, ''));
    return tail;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private changed(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /** Wait until some stdout (or stderr, with `stderr`) line satisfies the predicate; returns it. */
  async waitForLine(pred: (line: string) => boolean, ms: number, what: string, stderr = false): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = (stderr ? this.errLines : this.lines).find(pred);
      if (found !== undefined) return found;
      if (this.exited) throw new Error(`${this.command} exited (code ${this.exitCode}) before ${what}\n${this.describe()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for ${what}\n${this.describe()}`);
      await this.changed(left);
    }
  }

  /** Wait until the predicate over all stdout lines holds. */
  async waitUntil(pred: (lines: string[]) => boolean, ms: number, what: string): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred(this.lines)) {
      if (this.exited) throw new Error(`${this.command} exited (code ${this.exitCode}) before ${what}\n${this.describe()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for ${what}\n${this.describe()}`);
      await this.changed(left);
    }
  }

  /** Wait for the process to exit (killing it after ms); returns its exit code. */
  async exit(ms: number): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      this.exitPromise.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), ms);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      this.kill();
      await this.exitPromise;
      throw new Error(`${this.command} did not exit within ${ms} ms\n${this.describe()}`);
    }
    return this.exitCode;
  }

  /** Kill this process (only this one, by its own handle). */
  kill(): void {
    if (!this.exited) this.child.kill('SIGKILL');
  }

  describe(): string {
    return `$ ${this.command} ${this.args.join(' ')}\n--- stdout\n${this.stdout.slice(-3000)}\n--- stderr\n${this.stderr.slice(-3000)}`;
  }
}

/** Run a command to completion within ms (killed after it); never throws for a non-zero exit. */
export async function run(command: string, args: readonly string[], ms: number, options: { env?: NodeJS.ProcessEnv; stdin?: string } = {}): Promise<RunResult & { describe: string }> {
  const p = new LineProcess(command, args, options);
  await p.exit(ms);
  return { code: p.exitCode, signal: p.exitSignal, stdout: p.stdout, stderr: p.stderr, describe: p.describe() };
}

/** Every process started through track() is killed by killAll(). */
export class ProcessTracker {
  private readonly procs: LineProcess[] = [];
  track(p: LineProcess): LineProcess {
    this.procs.push(p);
    return p;
  }
  async killAll(): Promise<void> {
    const ps = this.procs.splice(0);
    for (const p of ps) p.kill();
    await Promise.all(ps.map((p) => p.exit(2000).catch(() => null)));
  }
}
