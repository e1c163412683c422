// Config files in JSON, YAML and TOML (issue 11 item 9): chosen by the extension, the same settings load to the
// same options, a syntax error names the file, line and column, an unknown key at any level names its path and the
// closest known key, a bad value names its key and the reason. The example configs (examples/) load alike.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { configFormat, jsonSyntaxError, loadConfig, toBrokerOptions } from '../../src/cli/config.js';
import { resolveOptions } from '../../src/broker/options.js';
import { configError, freePorts, startCli, stopCli } from './cli-process.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'petrel-formats-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const f = join(tmp, name);
  writeFileSync(f, text);
  return f;
}

const load = (f: string) => loadConfig(['--config', f], {});

describe('config file formats', () => {
  it('the format is chosen by the extension (.yaml, .yml, .toml; anything else is JSON)', () => {
    assert.equal(configFormat('/etc/petrel.yaml'), 'yaml');
    assert.equal(configFormat('petrel.YML'), 'yaml');
    assert.equal(configFormat('petrel.toml'), 'toml');
    assert.equal(configFormat('petrel.json'), 'json');
    assert.equal(configFormat('petrel.conf'), 'json');
    // The same text means different things: "port: 1884" is YAML, not JSON.
    assert.equal(load(file('a.yaml', 'port: 1884\n')).port, 1884);
    assert.match(configError(() => load(file('a.conf', 'port: 1884\n'))), /a\.conf:1:1: not valid JSON \(a file not named \.yaml, \.yml or \.toml is read as JSON\): expected a value/);
  });

  it('YAML, TOML and JSON with the same settings load to the same options', () => {
    const yaml = file(
      'same.yml',
      [
        'port: 1884',
        'logLevel: warn',
        'memory: true',
        'limits:',
        '  maxQoS: 1',
        '  retainAvailable: false',
        '  maxPacketSize: 0x10000',
        'auth:',
        '  allowAnonymous: false',
        '  loginGuard: { maxFailures: 3, banSeconds: 30 }',
        'cluster: { redis: "redis://127.0.0.1:6379", nodeId: n1, leaseMs: 3000 }',
        '',
      ].join('\n'),
    );
    const toml = file(
      'same.toml',
      [
        'port = 1884',
        'logLevel = "warn"',
        'memory = true',
        '[limits]',
        'maxQoS = 1',
        'retainAvailable = false',
        'maxPacketSize = 65_536',
        '[auth]',
        'allowAnonymous = false',
        'loginGuard = { maxFailures = 3, banSeconds = 30 }',
        '[cluster]',
        'redis = "redis://127.0.0.1:6379"',
        'nodeId = "n1"',
        'leaseMs = 3000',
        '',
      ].join('\n'),
    );
    const json = file(
      'same.json',
      JSON.stringify({
        port: 1884,
        logLevel: 'warn',
        memory: true,
        limits: { maxQoS: 1, retainAvailable: false, maxPacketSize: 65536 },
        auth: { allowAnonymous: false, loginGuard: { maxFailures: 3, banSeconds: 30 } },
        cluster: { redis: 'redis://127.0.0.1:6379', nodeId: 'n1', leaseMs: 3000 },
      }),
    );
    const [y, t, j] = [yaml, toml, json].map((f) => toBrokerOptions(load(f)));
    assert.deepEqual(y, j, 'YAML = JSON');
    assert.deepEqual(t, j, 'TOML = JSON');
    assert.equal(j!.limits!.maxQoS, 1);
    assert.equal(j!.limits!.retainAvailable, false);
    assert.deepEqual(j!.listeners, [{ transport: 'tcp', port: 1884 }]);
    assert.deepEqual(j!.cluster, { redis: 'redis://127.0.0.1:6379', nodeId: 'n1', leaseMs: 3000 });
  });

  it('TOML [[listeners]] tables and YAML lists are listeners; relative paths resolve against the file', () => {
    const t = load(
      file('l.toml', '[[listeners]]\nport = 1\n\n[[listeners]]\ntransport = "tls"\nport = 2\ncert = "c.pem"\nkey = "k.pem"\n'),
    );
    assert.deepEqual(t.listeners, [
      { transport: 'tcp', port: 1 },
      { transport: 'tls', port: 2, cert: join(tmp, 'c.pem'), key: join(tmp, 'k.pem') },
    ]);
    const y = load(file('l.yaml', 'listeners:\n  - port: 1\n  - { transport: tls, port: 2, cert: c.pem, key: k.pem }\n'));
    assert.deepEqual(y.listeners, t.listeners);
  });

  it('YAML anchors and <<: merge keys share settings between listeners', () => {
    const y = load(file('anchors.yaml', 'listeners:\n  - &tls { transport: tls, port: 8883, cert: c.pem, key: k.pem }\n  - { <<: *tls, port: 8884 }\n'));
    assert.deepEqual(y.listeners.map((l) => [l.transport, l.port, l.cert]), [
      ['tls', 8883, join(tmp, 'c.pem')],
      ['tls', 8884, join(tmp, 'c.pem')],
    ]);
  });

  it('a __proto__ key is an unknown key, not a way to set anything', () => {
    assert.match(configError(() => load(file('proto.yaml', '__proto__:\n  port: 7\nport: 1884\n'))), /proto\.yaml: __proto__: unknown key/);
    assert.match(configError(() => load(file('proto.json', '{"__proto__": {"port": 7}}'))), /proto\.json: __proto__: unknown key/);
    assert.match(configError(() => load(file('proto.toml', '[__proto__]\nport = 7\n'))), /proto\.toml:1:\d+: not valid TOML/);
  });

  it('a YAML file of comments only is an empty configuration; a YAML list is not a configuration', () => {
    assert.equal(load(file('empty.yaml', '# nothing here yet\n')).port, 1883);
    assert.match(configError(() => load(file('list.yaml', '- port: 1\n'))), /list\.yaml: must hold an object of settings/);
  });

  it('"$schema" (the editor hint of a JSON file) is accepted and ignored', () => {
    assert.equal(load(file('s.json', JSON.stringify({ $schema: '../schema/petrel.schema.json', port: 1885 }))).port, 1885);
  });

  const syntax: [string, string, string, RegExp][] = [
    ['JSON', 'bad.json', '{\n  "port": 1884,\n  host: "x"\n}\n', /bad\.json:3:3: not valid JSON: /],
    ['JSON, cut short', 'short.json', '{\n  "port": 18', /short\.json:2:13: not valid JSON: /],
    ['YAML', 'bad.yaml', 'port: 1884\nlimits:\n  maxQoS: [1, 2\nlogLevel: info\n', /bad\.yaml:\d+:\d+: not valid YAML: /],
    ['YAML, a key twice', 'twice.yaml', 'port: 1884\nhost: a\nport: 1885\n', /twice\.yaml:3:1: not valid YAML: Map keys must be unique/],
    ['YAML, a tab in the indentation', 'tab.yaml', 'limits:\n\tmaxQoS: 1\n', /tab\.yaml:2:1: not valid YAML: /],
    ['TOML', 'bad.toml', 'port = 1884\nhost = = "x"\n', /bad\.toml:2:8: not valid TOML: /],
    ['TOML, a table twice', 'twice.toml', '[limits]\nmaxQoS = 1\n[limits]\nmaxInflight = 2\n', /twice\.toml:3:\d+: not valid TOML: /],
  ];
  for (const [what, name, text, re] of syntax) {
    it(`a syntax error in ${what} names the file, the line and the column`, () => {
      const m = configError(() => load(file(name, text)));
      assert.match(m, re);
      assert.ok(m.startsWith(join(tmp, name) + ':'), m);
      assert.doesNotMatch(m, /\n/, 'one line');
    });
  }

  it('the syntax error positions point at the offending character', () => {
    // Line 3, column 3 of the JSON above is the unquoted key `host`.
    const text = '{\n  "port": 1884,\n  host: "x"\n}\n';
    const m = /:(\d+):(\d+): /.exec(configError(() => load(file('pos.json', text))))!;
    const line = text.split('\n')[Number(m[1]) - 1]!;
    assert.equal(line[Number(m[2]) - 1], 'h');
    const t = 'port = 1884\nhost = = "x"\n';
    const mt = /:(\d+):(\d+): /.exec(configError(() => load(file('pos.toml', t))))!;
    assert.equal(t.split('\n')[Number(mt[1]) - 1]![Number(mt[2]) - 1], '=', 'the second =');
  });

  it('the JSON error locator agrees with JSON.parse (random documents with one character changed, removed or added)', () => {
    const accepts = (t: string): boolean => {
      try {
        JSON.parse(t);
        return true;
      } catch {
        return false;
      }
    };
    const edit = fc.tuple(fc.json(), fc.nat(), fc.constantFrom('', ',', '}', ']', '"', ':', '\\', '{', '[', '1', 'x', ' ', '\n'), fc.boolean());
    fc.assert(
      fc.property(edit, ([doc, n, ch, replace]) => {
        const i = doc.length === 0 ? 0 : n % doc.length;
        const text = doc.slice(0, i) + ch + doc.slice(replace ? i + 1 : i);
        const e = jsonSyntaxError(text);
        if (accepts(text)) assert.equal(e.why, 'not JSON', `${JSON.stringify(text)} is JSON`);
        else {
          assert.notEqual(e.why, 'not JSON', `an error found in ${JSON.stringify(text)}`);
          assert.ok(e.at >= 0 && e.at <= text.length);
          // Everything before the error is a prefix of some JSON text: the text cut there is refused only for ending early.
          assert.match(jsonSyntaxError(text.slice(0, e.at)).why, /got the end of the file|not JSON/);
        }
      }),
      { numRuns: 2000 },
    );
  });

  const unknown: [string, string, string, RegExp][] = [
    ['top level (YAML)', 'u1.yaml', 'dataDri: ./d\n', /u1\.yaml: dataDri: unknown key \(did you mean dataDir\?\); known keys \(top level\) are port, host/],
    ['limits (TOML)', 'u2.toml', '[limits]\nmaxPaketSize = 5\n', /u2\.toml: limits\.maxPaketSize: unknown limit \(did you mean maxPacketSize\?\)/],
    ['auth (YAML)', 'u3.yaml', 'auth:\n  aclFiel: acl\n', /u3\.yaml: auth\.aclFiel: unknown key \(did you mean aclFile\?\)/],
    ['auth.loginGuard (YAML)', 'u4.yaml', 'auth:\n  loginGuard:\n    maxFailure: 3\n', /u4\.yaml: auth\.loginGuard\.maxFailure: unknown key \(did you mean maxFailures\?\)/],
    ['cluster (TOML)', 'u5.toml', '[cluster]\nredis = "redis://h:1"\nnodeID = "x"\nleaseMS = 3000\n', /u5\.toml: cluster\.(nodeID|leaseMS): unknown key \(did you mean (nodeId|leaseMs)\?\)/],
    ['a listener (TOML)', 'u6.toml', '[[listeners]]\nport = 1\n[[listeners]]\nprot = 2\n', /u6\.toml: listeners\[1\]\.prot: unknown key \(did you mean port\?\)/],
    ['an sni entry (YAML)', 'u7.yaml', 'listeners:\n  - transport: tls\n    cert: c\n    key: k\n    sni: { a.example: { cert: c, kye: k } }\n', /u7\.yaml: listeners\[0\]\.sni\.a\.example\.kye: unknown key \(did you mean key\?\)/],
    ['a limit at the top level', 'u8.yaml', 'maxPacketSize: 1000\n', /u8\.yaml: maxPacketSize: unknown key \(did you mean limits\.maxPacketSize\? it goes under limits\)/],
    ['a top-level key under limits', 'u9.toml', '[limits]\nport = 1\n', /u9\.toml: limits\.port: unknown limit \(did you mean port\? it goes at the top level\)/],
    ['a flag spelled as a key', 'u10.yaml', 'data-dir: /var/lib/petrel\n', /u10\.yaml: data-dir: unknown key \(did you mean dataDir\?\)/],
  ];
  for (const [what, name, text, re] of unknown) {
    it(`an unknown key in ${what} names its path and the closest known key`, () => assert.match(configError(() => load(file(name, text))), re));
  }

  const bad: [string, string, string, RegExp][] = [
    ['a port as a word', 'b1.yaml', 'port: eighteen\n', /b1\.yaml: port: must be an integer, got "eighteen"/],
    ['a boolean as a number (TOML)', 'b2.toml', '[limits]\nretainAvailable = 2\n', /b2\.toml: limits\.retainAvailable: must be true or false, got 2/],
    ['a TOML date as a host', 'b3.toml', 'host = 1979-05-27\n', /b3\.toml: host: must be a non-empty string, got "1979-05-27/],
    ['a YAML null', 'b4.yaml', 'logLevel: ~\n', /b4\.yaml: logLevel: must be one of silent, error, warn, info, debug, got null/],
    ['limits as a list', 'b5.yaml', 'limits: [1, 2]\n', /b5\.yaml: limits: must be an object with maxPacketSize, /],
    ['a listener port out of range', 'b6.toml', '[[listeners]]\nport = 70000\n', /b6\.toml: listeners\[0\]\.port: must be an integer from 0 to 65535, got 70000/],
    ['a bad leaseMs', 'b7.yaml', 'cluster: { redis: "redis://h:1", leaseMs: 10 }\n', /b7\.yaml: cluster\.leaseMs: must be an integer >= 1000, got 10/],
    ['a bad loginGuard value', 'b8.toml', '[auth.loginGuard]\nbanSeconds = -1\n', /b8\.toml: auth\.loginGuard\.banSeconds: must be a number of seconds > 0, got -1/],
  ];
  for (const [what, name, text, re] of bad) {
    it(`a bad value (${what}) names the key and the reason`, () => assert.match(configError(() => load(file(name, text))), re));
  }

  it('the example configs (examples/petrel.yaml, .toml, .json) load to the same options, which the broker accepts', () => {
    const loaded = ['petrel.yaml', 'petrel.toml', 'petrel.json'].map((n) => {
      const c = loadConfig(['--config', join(ROOT, 'examples', n)], {});
      assert.deepEqual(c.warnings, []);
      return toBrokerOptions(c);
    });
    assert.deepEqual(loaded[0], loaded[2], 'YAML = JSON');
    assert.deepEqual(loaded[1], loaded[2], 'TOML = JSON');
    const o = loaded[2]!;
    // Not just empty alike: the examples set listeners, limits and the login guard.
    assert.equal(o.listeners!.length, 2);
    assert.equal(o.limits!.maxPacketSize, 262144);
    assert.equal(o.http!.port, 9090);
    assert.deepEqual(o.auth!.loginGuard, { maxFailures: 5, windowSeconds: 60, banSeconds: 300 });
    const r = resolveOptions(o);
    assert.equal(r.limits.maxQueuedBytes, 64 * 1024 * 1024);
  });

  it('petrel --config FILE.yaml starts the broker with the file\'s listeners (the real command)', async () => {
    const [a, b] = await freePorts(2);
    const f = file('run.yaml', `listeners:\n  - { port: ${a}, host: 127.0.0.1 }\n  - { port: ${b}, host: 127.0.0.1, transport: ws }\nmemory: true\nlogLevel: info\n`);
    const p = await startCli(['--config', f], [a!, b!]);
    assert.equal(await stopCli(p), 0);
  });
});
