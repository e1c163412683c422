// `petrel --help` as a person reads it (issue 11 item 9): a sentence for every option with its default in a
// readable form, its config-file key and variable beside the flag, in sections; flag names that read right in
// kebab case (--max-qos, not --max-qo-s) with the old spellings still accepted but not shown; every boolean can
// be turned off.

import { after, describe, it } from 'node:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { ConfigError, GROUPS, helpRows, helpSentence, helpText, loadConfig, settings, type CliConfig } from '../../src/cli/config.js';
import { CLI } from './cli-process.js';

/** The help with its lines joined: a sentence or a "config X, env Y" wrapped over two lines reads as one. */
const flat = (h: string): string => h.replace(/\n {36}/g, ' ');

describe('petrel --help', () => {
  const h = helpText();

  it('every flag and variable name reads right: lower-case words of two or more characters (no --max-qo-s)', () => {
    for (const st of settings()) {
      if (st.flag !== undefined) {
        assert.match(st.flag, /^--[a-z][a-z0-9]*(-[a-z0-9]+)*$/, st.flag);
        for (const word of st.flag.slice(2).split('-')) assert.ok(word.length >= 2, `${st.flag}: "-${word}" is a camelCase split, not a word`);
      }
      if (st.env !== undefined) {
        assert.match(st.env, /^PETREL_[A-Z0-9]+(_[A-Z0-9]+)*$/, st.env);
        for (const word of st.env.split('_')) assert.ok(word.length >= 2, `${st.env}: "_${word}"`);
      }
    }
    assert.doesNotMatch(h, /-qo-s|_QO_S/);
    assert.match(h, /--max-qos N/);
    assert.match(flat(h), /config limits\.maxQoS, env PETREL_MAX_QOS/);
  });

  it('every option shown has a sentence of its own, not the generated "limit X (default Y)"', () => {
    for (const st of settings()) {
      const sentence = helpSentence(st);
      assert.doesNotMatch(st.describe, /^limit \w+ \(default/i, st.key);
      const name = st.key.split('.').pop()!;
      assert.ok(!st.describe.includes(name) || !/[A-Z]/.test(name), `${st.key}: the sentence names the key (${name}) instead of saying what it is`);
      assert.ok(sentence.split(/\s+/).length >= 5, `${st.key}: "${sentence}" is a sentence`);
      assert.match(sentence, /^[A-Z'v$]/, `${st.key}: begins like a sentence`);
      assert.match(sentence, /\.$/, `${st.key}: ends with a full stop`);
    }
    for (const r of helpRows()) {
      assert.doesNotMatch(r.sentence, /^limit /i);
      assert.ok(r.sentence.length > 20, r.left);
    }
  });

  it('each option is on a line that starts with its flag (or its key, for keys of the config file only), its sentence beside it', () => {
    const lines = h.split('\n');
    for (const st of settings()) {
      const left = st.flag ?? st.key;
      const i = lines.findIndex((l) => l.startsWith(`  ${left} `) || l === `  ${left}`);
      if (st.deprecated) {
        assert.equal(i, -1, `${left} is deprecated: not in --help`);
        continue;
      }
      assert.ok(i >= 0, `${left} has a line`);
      // The sentence starts beside the flag (or, for a flag too long for its column, on the next line).
      const text = (lines[i]!.slice(36).trim() || lines[i + 1]!.trim()).split(/\s+/)[0];
      assert.equal(text, helpSentence(st).split(/\s+/)[0], `${left}: its sentence follows`);
    }
  });

  it('every option names its config-file key and its variable', () => {
    const f = flat(h);
    for (const st of settings()) {
      if (st.deprecated) continue;
      if (st.flag === undefined && st.env === undefined) assert.ok(f.includes(`config file only: ${st.key}`), st.key);
      else assert.ok(f.includes(`config ${st.key}${st.env ? `, env ${st.env}` : ''}`), `${st.flag}: config ${st.key}, env ${st.env}`);
    }
    for (const key of ['listeners', 'auth.loginGuard']) assert.ok(f.includes(`config file only: ${key}`), key);
    assert.match(f, /--config FILE +Read this config file: JSON, YAML \(\.yaml, \.yml\) or TOML \(\.toml\)/);
  });

  it('defaults read as a person says them: bytes in KiB/MiB/GiB, milliseconds as seconds, booleans on and off', () => {
    const f = flat(h);
    const row = (flag: string): string => {
      const m = new RegExp(`\\n  ${flag.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}[ \\n].*`).exec(f);
      assert.ok(m, flag);
      return m[0];
    };
    assert.match(row('--max-packet-size N'), /Default: 1 MiB \(1048576\)\./);
    assert.match(row('--max-queued-bytes N'), /Default: 256 MiB \(268435456\)\./);
    assert.match(row('--max-match-cache-bytes N'), /Default: 16 MiB \(16777216\)\./);
    assert.match(row('cluster.leaseMs N'), /Default: 5 s \(5000 ms\)\./);
    assert.match(row('--connect-timeout N'), /Default: 10 s\./);
    assert.match(row('--retain-available'), /Default: on\./);
    assert.match(row('--queue-qos0'), /Default: off\./);
    assert.match(row('--max-connections N'), /Default: 0 \(no limit\)\./);
    assert.match(row('--memory-limit N'), /Default: half the machine's/);
    assert.doesNotMatch(f, /\(default \d/, 'no "(default N)" left over from the generated texts');
    // A default of a number of bytes is never shown as the bare number.
    for (const st of settings()) {
      if (st.unit === 'bytes' && typeof st.value === 'number' && st.value >= 1024 && st.value % 1024 === 0) {
        assert.match(helpSentence(st), /Default: \d+ [KMG]iB \(\d+\)\./, st.key);
      }
    }
  });

  it('is in sections, in order, and no line is wider than 80 columns', () => {
    const titles = h.split('\n').filter((l) => /^[A-Z]/.test(l) && !l.startsWith('Usage') && !l.startsWith('Petrel') && !l.startsWith('Every') && !l.startsWith('SIGHUP'));
    assert.deepEqual(
      titles.map((t) => t.split(/[ :]/)[0]),
      [...GROUPS],
    );
    for (const l of h.split('\n')) assert.ok(l.length <= 80, `${l.length} columns: ${l}`);
    // A wider terminal gets longer lines, never more than asked.
    for (const l of helpText(120).split('\n')) assert.ok(l.length <= 120, l);
    assert.ok(helpText(120).split('\n').length < h.split('\n').length);
  });

  it('the sections hold what a person looks for there', () => {
    const section = (title: string): string => {
      const all = h.split('\n\n');
      return all.find((p) => p.startsWith(title))!;
    };
    assert.match(section('Listeners'), /--port N[\s\S]*--ws-port N[\s\S]*listeners \[\.\.\.\]/);
    assert.match(section('Security'), /--cert FILE[\s\S]*--password-file FILE[\s\S]*auth\.loginGuard/);
    assert.match(section('Storage'), /--data-dir DIR[\s\S]*--durability MODE/);
    assert.match(section('Limits'), /--max-packet-size N[\s\S]*--max-topic-length N/);
    assert.match(section('Operations'), /--config FILE[\s\S]*--log-level LEVEL[\s\S]*--print-schema/);
    assert.match(section('Cluster'), /--cluster URL[\s\S]*--node-id NAME[\s\S]*cluster\.leaseMs/);
  });

  it('petrel --help prints it (80 columns when piped) and exits 0', () => {
    const r = spawnSync(process.execPath, [CLI, '--help'], { encoding: 'utf8', timeout: 15_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, h);
  });
});

describe('old flag spellings and turning booleans off', () => {
  it('--max-qo-s and PETREL_MAX_QO_S still work; the new names win; "did you mean" offers the new one', () => {
    assert.equal(loadConfig(['--max-qo-s', '1'], {}).limits.maxQoS, 1);
    assert.equal(loadConfig(['--max-qos', '1'], {}).limits.maxQoS, 1);
    assert.equal(loadConfig([], { PETREL_MAX_QO_S: '0' }).limits.maxQoS, 0);
    assert.equal(loadConfig([], { PETREL_MAX_QO_S: '0', PETREL_MAX_QOS: '1' }).limits.maxQoS, 1, 'the current variable wins');
    assert.equal(loadConfig([], { PETREL_MAX_QOS: '1' }).sources['limits.maxQoS'], 'PETREL_MAX_QOS');
    assert.throws(() => loadConfig(['--max-qs', '1'], {}), /--max-qs: unknown option \(did you mean --max-qos\?\)/);
    assert.throws(() => loadConfig(['--print-shema'], {}), /did you mean --print-schema\?/);
    for (const st of settings()) for (const old of st.oldFlags ?? []) assert.ok(!helpText().includes(old), `${old} is not shown`);
  });

  /** The value a boolean setting ends up with in the resolved configuration. */
  const valueOf: Record<string, (c: CliConfig) => unknown> = {
    requireCertificate: (c) => c.listeners.find((l) => l.transport === 'tls')?.requireCertificate ?? false,
    proxyProtocol: (c) => c.listeners[0]!.proxyProtocol ?? false,
    'auth.allowAnonymous': (c) => c.auth?.allowAnonymous,
    lenient: (c) => c.lenient,
    memory: (c) => c.memory,
  };
  const read = (key: string, c: CliConfig): unknown =>
    key.startsWith('limits.') ? (c.limits as Record<string, unknown>)[key.slice(7)] : valueOf[key]!(c);
  /** What a boolean needs beside it to be accepted at all. */
  const mosquittoConf = join(mkdtempSync(join(tmpdir(), 'petrel-help-')), 'mosquitto.conf');
  writeFileSync(mosquittoConf, 'allow_anonymous true\n');
  after(() => rmSync(dirname(mosquittoConf), { recursive: true, force: true }));
  const needs: Record<string, string[]> = {
    requireCertificate: ['--tls-port', '0', '--cert', '/c', '--key', '/k', '--ca', '/ca'],
    lenient: ['--mosquitto-config', mosquittoConf],
  };

  const booleans = settings().filter((st) => st.kind === 'bool');
  it('the test knows how to read every boolean option', () => {
    assert.ok(booleans.length >= 12);
    for (const st of booleans) assert.ok(st.key.startsWith('limits.') || st.key in valueOf, `${st.key}: add it to valueOf`);
  });

  for (const st of booleans) {
    it(`${st.flag} turns ${st.key} on, --no-${st.flag!.slice(2)} and ${st.env}=false turn it off, over a true below`, () => {
      const extra = needs[st.key] ?? [];
      assert.equal(read(st.key, loadConfig([...extra, st.flag!], {})), true, `${st.flag}`);
      assert.equal(read(st.key, loadConfig([...extra, `${st.flag}=true`], {})), true, `${st.flag}=true`);
      const off = loadConfig([...extra, `--no-${st.flag!.slice(2)}`], { [st.env!]: 'true' });
      assert.equal(read(st.key, off), false, `--no-${st.flag!.slice(2)} over ${st.env}=true`);
      assert.equal(off.sources[st.key], `--no-${st.flag!.slice(2)}`);
      assert.equal(read(st.key, loadConfig([...extra, `${st.flag}=false`], {})), false, `${st.flag}=false`);
      assert.equal(read(st.key, loadConfig(extra, { [st.env!]: 'false' })), false, `${st.env}=false`);
    });
  }

  it('--no-require-certificate without a TLS listener asks for nothing and is no error', () => {
    assert.doesNotThrow(() => loadConfig(['--no-require-certificate'], {}));
    assert.throws(() => loadConfig(['--require-certificate'], {}), ConfigError);
  });

  it('--no-<flag> on a flag that is not a boolean is an unknown option', () => {
    assert.throws(() => loadConfig(['--no-max-qos'], {}), /--no-max-qos: unknown option/);
    assert.throws(() => loadConfig(['--no-config'], {}), /unknown option/);
  });
});
