// The command line as a person meets it (issue 11 item 9, first part): a mistyped flag or config key gets a
// "did you mean" with the closest known name, and boolean options can be turned off with --no-<name>.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/cli/config.js';
import { closest } from '../../src/cli/suggest.js';

function configFile(doc: unknown): { path: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'petrel-suggest-'));
  const path = join(dir, 'petrel.json');
  writeFileSync(path, JSON.stringify(doc));
  return { path, done: () => rmSync(dir, { recursive: true, force: true }) };
}

describe('did you mean, and --no-<flag>', () => {
  it('a mistyped flag names the closest known one', () => {
    assert.throws(() => loadConfig(['--max-packet-sise', '5'], {}), /--max-packet-sise: unknown option \(did you mean --max-packet-size\?\)/);
    assert.throws(() => loadConfig(['--tls-prot', '8883'], {}), /did you mean --tls-port\?/);
  });

  it('a flag far from every known one gets no guess', () => {
    assert.throws(() => loadConfig(['--frobnicate-everything', '1'], {}), (err: Error) => {
      assert.match(err.message, /unknown option \(see petrel --help\)/);
      assert.doesNotMatch(err.message, /did you mean/);
      return true;
    });
  });

  it('mistyped config-file keys name the closest key (top level, limits, auth, listeners)', () => {
    const cases: [unknown, RegExp][] = [
      [{ dataDri: './d' }, /dataDri: unknown key \(did you mean dataDir\?\)/],
      [{ limits: { maxPacketSise: 1 } }, /limits\.maxPacketSise: unknown limit \(did you mean maxPacketSize\?\)/],
      [{ auth: { passwordFiel: 'x' } }, /auth\.passwordFiel: unknown key \(did you mean passwordFile\?\)/],
      [{ listeners: [{ port: 1, trasnport: 'tcp' }] }, /trasnport: unknown key \(did you mean transport\?\)/],
    ];
    for (const [doc, re] of cases) {
      const f = configFile(doc);
      try {
        assert.throws(() => loadConfig(['--config', f.path], {}), re);
      } finally {
        f.done();
      }
    }
  });

  it('--no-<name> turns a boolean option off; on a non-boolean it is unknown', () => {
    assert.equal(loadConfig(['--no-retain-available'], {}).limits.retainAvailable, false);
    assert.equal(loadConfig(['--retain-available'], {}).limits.retainAvailable, true);
    assert.equal(loadConfig(['--no-memory'], { PETREL_MEMORY: 'true' }).memory, false, 'the flag wins over the environment');
    assert.throws(() => loadConfig(['--no-port'], {}), /--no-port: unknown option/);
  });

  it('closest() ignores case and - / _', () => {
    assert.equal(closest('MAX_QOS', ['maxQoS', 'maxInflight']), 'maxQoS');
    assert.equal(closest('zzzzzz', ['port', 'host']), undefined);
  });
});
