// Runs the real `petrel` command in a child process for the durability tests:
// start on port 0, read the bound port from its JSON log (the listener.listening record), kill it with any signal.

import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { listeningPort } from '../helpers/log-lines.js';

const CLI = fileURLToPath(new URL('../../../dist/cli/main.js', import.meta.url));

export interface PetrelProcess {
  child: ChildProcess;
  port: number;
  pid: number;
  /** Everything it wrote to stderr so far. */
  log(): string;
  /** Resolves with the exit code (or signal) once it ended. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  rssKb(): number;
}

export async function startPetrel(args: string[], timeoutMs = 15_000, env?: NodeJS.ProcessEnv): Promise<PetrelProcess> {
  const child = spawn(process.execPath, [CLI, '--port', '0', '--host', '127.0.0.1', '--log-level', 'info', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    ...(env !== undefined ? { env: { ...process.env, ...env } } : {}),
  });
  let stderr = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`petrel did not start within ${timeoutMs} ms:\n${stderr}`)), timeoutMs);
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      const port = listeningPort(stderr, 'tcp');
      if (port !== undefined) {
        clearTimeout(timer);
        resolve(port);
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`petrel exited (${code ?? signal}) before listening:\n${stderr}`));
    });
  });
  return {
    child,
    port,
    pid: child.pid!,
    log: () => stderr,
    exited,
    rssKb: () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]),
  };
}

export async function kill(p: PetrelProcess, signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  p.child.kill(signal);
  return p.exited;
}
