// `--admin-token-file FILE` and PETREL_ADMIN_TOKEN (issue 11): the admin API's token from the command line or the
// environment; the first line of the file; clear errors naming the flag or variable.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig, toBrokerOptions } from '../../src/cli/config.js';
import { freePorts, startCli, stopCli } from './cli-process.js';

const dir = mkdtempSync(join(tmpdir(), 'petrel-admin-token-'));
function tokenFile(text: string): string {
  const f = join(dir, `t${Math.random().toString(36).slice(2)}`);
  writeFileSync(f, text);
  return f;
}

describe('admin token options', () => {
  it('--admin-token-file reads the first line (trimmed) into http.adminToken', () => {
    const c = loadConfig(['--http-port', '0', '--admin-token-file', tokenFile('  s3cret-token \nsecond line\n')], {});
    assert.equal(c.adminToken, 's3cret-token');
    assert.equal(toBrokerOptions(c).http?.adminToken, 's3cret-token');
  });

  it('PETREL_ADMIN_TOKEN gives the token; the flag wins over it', () => {
    assert.equal(loadConfig(['--http-port', '0'], { PETREL_ADMIN_TOKEN: 'from-env' }).adminToken, 'from-env');
    assert.equal(loadConfig(['--http-port', '0', '--admin-token-file', tokenFile('from-file\n')], { PETREL_ADMIN_TOKEN: 'from-env' }).adminToken, 'from-file');
    assert.equal(loadConfig(['--http-port', '0'], {}).adminToken, undefined);
  });

  it('errors name the flag or variable: no --http-port, unreadable or empty file, white space', () => {
    const err = (fn: () => unknown, re: RegExp): void => {
      assert.throws(fn, (e: Error) => e instanceof ConfigError && re.test(e.message));
    };
    err(() => loadConfig(['--admin-token-file', tokenFile('x\n')], {}), /^--admin-token-file: needs --http-port/);
    err(() => loadConfig([], { PETREL_ADMIN_TOKEN: 'x' }), /^PETREL_ADMIN_TOKEN: needs --http-port/);
    err(() => loadConfig(['--http-port', '0', '--admin-token-file', join(dir, 'missing')], {}), /^--admin-token-file: cannot read the admin token file .*ENOENT/);
    err(() => loadConfig(['--http-port', '0', '--admin-token-file', tokenFile('\nlater\n')], {}), /^--admin-token-file: the first line .* is empty/);
    err(() => loadConfig(['--http-port', '0'], { PETREL_ADMIN_TOKEN: 'a b' }), /^PETREL_ADMIN_TOKEN: the admin token must not contain white space/);
  });

  it('petrel --admin-token-file serves /api/v1 with that token', { timeout: 30_000 }, async () => {
    const [mqttPort, httpPort] = await freePorts(2);
    const p = await startCli(['--memory', '--port', String(mqttPort), '--http-port', String(httpPort), '--admin-token-file', tokenFile('cli-token\n')], [mqttPort!, httpPort!]);
    try {
      const url = `http://127.0.0.1:${httpPort}/api/v1/stats`;
      assert.equal((await fetch(url, { signal: AbortSignal.timeout(5000) })).status, 401);
      const r = await fetch(url, { headers: { authorization: 'Bearer cli-token' }, signal: AbortSignal.timeout(5000) });
      assert.equal(r.status, 200);
      assert.equal(((await r.json()) as { connections: number }).connections, 0);
    } finally {
      assert.equal(await stopCli(p), 0);
    }
  });

  it('petrel without an admin token answers 404 on /api/v1', { timeout: 30_000 }, async () => {
    const [mqttPort, httpPort] = await freePorts(2);
    const p = await startCli(['--memory', '--port', String(mqttPort), '--http-port', String(httpPort)], [mqttPort!, httpPort!]);
    try {
      const r = await fetch(`http://127.0.0.1:${httpPort}/api/v1/stats`, { headers: { authorization: 'Bearer anything' }, signal: AbortSignal.timeout(5000) });
      assert.equal(r.status, 404);
    } finally {
      assert.equal(await stopCli(p), 0);
    }
  });
});
