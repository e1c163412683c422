// The real `petrel` command (dist/cli/main.js) for the end-to-end CLI tests: free ports found by listening on
// port 0 first, the process started with any arguments and environment, readiness read from its log.

import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseLogLine } from '../helpers/log-lines.js';
import { LineProcess } from '../helpers/processes.js';
import { ConfigError } from '../../src/cli/config.js';

export const CLI = fileURLToPath(new URL('../../../dist/cli/main.js', import.meta.url));

/** n distinct free TCP ports on 127.0.0.1 (each held open until all are known, then released). */
export async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = createServer();
      servers.push(s);
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => resolve());
      });
    }
    return servers.map((s) => (s.address() as { port: number }).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

/** Start petrel and wait until its log says it listens on every one of `ports`. */
export async function startCli(args: string[], ports: number[], env: NodeJS.ProcessEnv = {}, ms = 15_000): Promise<LineProcess> {
  const p = new LineProcess(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH, ...env } });
  const listening = (port: number) => (l: string): boolean => {
    const r = parseLogLine(l);
    return r !== null && r.event === 'listener.listening' && r.port === port;
  };
  const deadline = Date.now() + ms;
  for (const port of ports) {
    await p.waitForLine(listening(port), Math.max(1, deadline - Date.now()), `petrel listening on port ${port}`, true);
  }
  return p;
}

/** Stop petrel with SIGTERM; its exit code. */
export async function stopCli(p: LineProcess): Promise<number | null> {
  if (p.exited) return p.exitCode;
  p.child.kill('SIGTERM');
  return p.exit(10_000);
}

/** mosquitto_sub with -d (line-buffered through stdbuf), once its SUBACK arrived (so a message published now reaches it). */
export async function subscribed(args: string[], ms = 10_000): Promise<LineProcess> {
  const p = new LineProcess('stdbuf', ['-oL', 'mosquitto_sub', '-d', ...args]);
  await p.waitForLine((l) => /received SUBACK/.test(l), ms, 'mosquitto_sub SUBACK');
  return p;
}

/** The message lines of a mosquitto_sub -d -v run (its debug lines left out). */
export function messageLines(p: LineProcess): string[] {
  return p.lines.filter((l) => !/^Client \S+ (sending|received) /.test(l) && !/^Subscribed \(mid/.test(l) && l.trim() !== '');
}

/** The message of the ConfigError that fn throws. */
export function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `a ConfigError, got ${String(err)}`);
    return err.message;
  }
  assert.fail('no error');
}
