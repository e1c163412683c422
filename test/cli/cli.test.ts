// The `petrel` command's contract: flags, config file and PETREL_* variables
// (in that order of precedence), clear errors with exit 2, graceful signals.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, ConfigError } from '../../src/cli/config.js';
import { kill, startPetrel } from '../durability/petrel-process.js';
import { findEvent } from '../helpers/log-lines.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(ROOT, 'dist/cli/main.js');
const tmp = mkdtempSync(join(tmpdir(), 'petrel-cli-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function run(args: string[], env: NodeJS.ProcessEnv = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8', timeout: 15_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('petrel command line', () => {
  it('--help prints the options and exits 0', () => {
    const r = run(['--help']);
    assert.equal(r.code, 0);
    for (const flag of ['--port', '--host', '--config', '--memory', '--data-dir', '--log-level', '--help', '--version']) {
      assert.match(r.stdout, new RegExp(`${flag}\\b`), flag);
    }
  });

  it('--version prints the package version', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; bin: Record<string, string> };
    assert.equal(pkg.bin.petrel, './dist/cli/main.js');
    const r = run(['--version']);
    assert.equal(r.code, 0);
    assert.equal(r.stdout.trim(), `petrel ${pkg.version}`);
  });

  it('the build leaves bin.petrel executable (an npx cache that already links the checkout does not chmod it)', () => {
    // npm makes a bin executable only when it links it. Once the npx cache holds this checkout, a rebuilt
    // dist/ (tsc writes 0644) is run as it is: "sh: petrel: Permission denied" unless the build sets the mode.
    const mode = statSync(CLI).mode;
    assert.equal(mode & 0o111, 0o111, `dist/cli/main.js mode ${(mode & 0o777).toString(8)}`);
  });

  it('npx petrel --help works in the checkout (bin.petrel)', () => {
    // The first `npx petrel` in a checkout (an npm cache that has not seen it: a fresh CI machine) installs the
    // checkout into the npx cache and so runs its `prepare` script, which rebuilds dist/ while the test files
    // running beside this one start petrel from it: one of them once read a half-written module. Scripts
    // are off here; the bin, and the dist/ that `npm ci` built, are what this test is about.
    const env = { ...process.env, npm_config_ignore_scripts: 'true' };
    const r = spawnSync('npx', ['--no-install', 'petrel', '--help'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, env });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Usage: petrel/);
  });

  const bad: [string, string[], NodeJS.ProcessEnv, RegExp][] = [
    ['a port that is not a number', ['--port', 'abc'], {}, /^petrel: --port: must be an integer, got "abc"$/m],
    ['a port out of range', ['--port', '70000'], {}, /--port: must be an integer from 0 to 65535/],
    ['an unknown flag', ['--prot', '1'], {}, /--prot: unknown option/],
    ['a flag without its value', ['--data-dir'], {}, /--data-dir: needs a value/],
    ['a bad log level', ['--log-level', 'loud'], {}, /--log-level: must be one of silent, error, warn, info, debug/],
    ['a bad limit', ['--max-packet-size', '3'], {}, /limits\.maxPacketSize: must be an integer from 16/],
    ['a bad environment variable', [], { PETREL_PORT: 'x' }, /PETREL_PORT: must be an integer/],
    ['a bad durability', ['--durability', 'maybe'], {}, /--durability: must be 'process' or 'power'/],
  ];
  for (const [what, args, env, message] of bad) {
    it(`${what}: names the key and the reason, exits 2, no stack trace`, () => {
      const r = run(args, env);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    });
  }

  it('a bad config file value names the file and the key, exits 2', () => {
    const file = join(tmp, 'bad.json');
    writeFileSync(file, JSON.stringify({ port: 1884, limits: { receiveMaximum: 0 } }));
    const r = run(['--config', file]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /limits\.receiveMaximum: must be an integer from 1 to 65535, got 0/);
    writeFileSync(file, JSON.stringify({ prot: 1 }));
    const r2 = run(['--config', file]);
    assert.equal(r2.code, 2);
    assert.match(r2.stderr, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: prot: unknown key`));
    writeFileSync(file, '{ not json');
    const r3 = run(['--config', file]);
    assert.equal(r3.code, 2);
    assert.match(r3.stderr, /not valid JSON/);
    assert.doesNotMatch(r3.stderr, /\n\s+at /);
  });

  it('precedence: flags over the config file over PETREL_* variables', () => {
    const file = join(tmp, 'p.json');
    writeFileSync(file, JSON.stringify({ port: 2002, logLevel: 'warn', dataDir: '/from/file', limits: { maxInflight: 7 } }));
    const env = { PETREL_PORT: '2001', PETREL_LOG_LEVEL: 'debug', PETREL_HOST: '::1', PETREL_MAX_INFLIGHT: '9', PETREL_DATA_DIR: '/from/env' };
    const c = loadConfig(['--config', file, '--port', '2003'], env);
    assert.equal(c.port, 2003, 'flag beats file and env');
    assert.equal(c.logLevel, 'warn', 'file beats env');
    assert.equal(c.dataDir, '/from/file');
    assert.equal(c.host, '::1', 'env used when nothing else says');
    assert.equal(c.limits.maxInflight, 7);
    assert.equal(loadConfig([], { PETREL_CONFIG: file }).port, 2002, 'PETREL_CONFIG names the file');
    assert.throws(() => loadConfig(['--port'], {}), ConfigError);
  });

  it('SIGTERM and SIGINT shut down gracefully and exit 0', async () => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      const p = await startPetrel(['--memory']);
      assert.deepEqual(await kill(p, signal), { code: 0, signal: null });
      assert.ok(findEvent(p.log(), 'broker.stopped'), p.log());
    }
  });

  it('with no store flag, petrel is durable: SQLite under --data-dir', async () => {
    const dir = join(tmp, 'default-store');
    const p = await startPetrel(['--data-dir', dir]);
    assert.equal(findEvent(p.log(), 'store.opened')?.store, 'sqlite');
    assert.deepEqual(await kill(p, 'SIGTERM'), { code: 0, signal: null });
    const child = spawn(process.execPath, [CLI, '--port', '0', '--host', '127.0.0.1'], { cwd: tmp, stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr.on('data', (d: Buffer) => (log += d.toString()));
    const end = Date.now() + 10_000;
    while (findEvent(log, 'listener.listening') === undefined && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    assert.equal(findEvent(log, 'store.opened')?.store, 'sqlite', 'no flags: the SQLite store in ./data');
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    assert.ok(readFileSync(join(tmp, 'data', 'petrel.db')).length > 0);
  });

  it('an unreadable database stops the broker with a clear message, exit 1, and is left untouched', () => {
    const dir = join(tmp, 'garbage');
    rmSync(dir, { recursive: true, force: true });
    spawnSync('mkdir', ['-p', dir]);
    const bytes = Buffer.from('this is not a database, but somebody cares about it\n'.repeat(100));
    writeFileSync(join(dir, 'petrel.db'), bytes);
    const r = run(['--port', '0', '--data-dir', dir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot open the store: .*petrel\.db/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    assert.deepEqual(readFileSync(join(dir, 'petrel.db')), bytes, 'the file is not modified');
  });

  it('a port in use is reported, exit 1', async () => {
    const p = await startPetrel(['--memory']);
    try {
      const r = run(['--port', String(p.port), '--host', '127.0.0.1', '--memory']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /EADDRINUSE/);
    } finally {
      await kill(p, 'SIGTERM');
    }
  });
});
