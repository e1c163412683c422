// The listener and auth flags of issue 10 (--tls-port, --cert, --key, --ca, --require-certificate, --ws-port,
// --wss-port, --ws-path, --proxy-protocol, --password-file, --acl-file, --allow-anonymous), their PETREL_*
// variables and config file keys (listeners with every ListenerOptions key, auth), and SIGHUP. Parsing first;
// then the real petrel process with real clients (mosquitto_pub/mosquitto_sub, MQTT.js over ws://).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { helpText, loadConfig, toBrokerOptions } from '../../src/cli/config.js';
import { testCerts, type TestCerts } from '../helpers/certs.js';
import { run } from '../helpers/processes.js';
import { connectMqtt, uniqueId } from '../helpers/mqttjs.js';
import { CLI, configError, freePorts, messageLines, startCli, stopCli, subscribed } from './cli-process.js';
import { parseLogLine } from '../helpers/log-lines.js';

const tmp = mkdtempSync(join(tmpdir(), 'petrel-cli-flags-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('listener flags', () => {
  it('--port alone: one plain TCP listener (the existing contract)', () => {
    assert.deepEqual(loadConfig(['--port', '1999', '--host', '127.0.0.1'], {}).listeners, [{ transport: 'tcp', port: 1999, host: '127.0.0.1' }]);
    assert.deepEqual(loadConfig([], {}).listeners, [{ transport: 'tcp', port: 1883 }]);
  });

  it('--tls-port adds a tls listener with --cert, --key, --ca and --require-certificate', () => {
    const c = loadConfig(['--port', '1999', '--tls-port', '8883', '--cert', '/c/s.crt', '--key', '/c/s.key', '--ca', '/c/ca.crt', '--require-certificate'], {});
    assert.deepEqual(c.listeners, [
      { transport: 'tcp', port: 1999 },
      { transport: 'tls', port: 8883, cert: '/c/s.crt', key: '/c/s.key', ca: '/c/ca.crt', requireCertificate: true },
    ]);
  });

  it('--ws-port adds a ws listener on /mqtt, or --ws-path; --wss-port a wss listener with the same certificate', () => {
    assert.deepEqual(loadConfig(['--ws-port', '8080'], {}).listeners, [
      { transport: 'tcp', port: 1883 },
      { transport: 'ws', port: 8080 },
    ]);
    const c = loadConfig(['--ws-port', '8080', '--wss-port', '8081', '--ws-path', '/broker', '--cert', '/s.crt', '--key', '/s.key'], {});
    assert.deepEqual(c.listeners, [
      { transport: 'tcp', port: 1883 },
      { transport: 'ws', port: 8080, path: '/broker' },
      { transport: 'wss', port: 8081, cert: '/s.crt', key: '/s.key', path: '/broker' },
    ]);
  });

  it('--host and --proxy-protocol apply to every listener made from flags', () => {
    const c = loadConfig(['--host', '127.0.0.1', '--proxy-protocol', '--ws-port', '8080', '--tls-port', '8883', '--cert', '/a', '--key', '/b'], {});
    assert.deepEqual(c.listeners.map((l) => [l.transport, l.host, l.proxyProtocol]), [
      ['tcp', '127.0.0.1', true],
      ['tls', '127.0.0.1', true],
      ['ws', '127.0.0.1', true],
    ]);
  });

  it('the PETREL_* variables say the same', () => {
    const env = {
      PETREL_PORT: '1999', PETREL_TLS_PORT: '8883', PETREL_CERT: '/a', PETREL_KEY: '/b', PETREL_CA: '/ca', PETREL_REQUIRE_CERTIFICATE: 'true',
      PETREL_WS_PORT: '8080', PETREL_WSS_PORT: '8081', PETREL_WS_PATH: '/ws', PETREL_PROXY_PROTOCOL: '1',
      PETREL_PASSWORD_FILE: '/p', PETREL_ACL_FILE: '/acl', PETREL_ALLOW_ANONYMOUS: 'false',
    };
    const c = loadConfig([], env);
    assert.deepEqual(c.listeners, [
      { transport: 'tcp', port: 1999, proxyProtocol: true },
      { transport: 'tls', port: 8883, proxyProtocol: true, cert: '/a', key: '/b', ca: '/ca', requireCertificate: true },
      { transport: 'ws', port: 8080, proxyProtocol: true, path: '/ws' },
      { transport: 'wss', port: 8081, proxyProtocol: true, cert: '/a', key: '/b', ca: '/ca', requireCertificate: true, path: '/ws' },
    ]);
    assert.deepEqual(c.auth, { passwordFile: '/p', aclFile: '/acl', allowAnonymous: false });
  });

  it('each listener knows where it came from, for error messages (listenerSources)', () => {
    const c = loadConfig(['--ws-port', '8080', '--tls-port', '8883', '--cert', '/a', '--key', '/b'], { PETREL_PORT: '1999' });
    assert.deepEqual(c.listenerSources, ['PETREL_PORT', '--tls-port', '--ws-port']);
    assert.deepEqual(loadConfig([], {}).listenerSources, ['--port (default 1883)']);
  });

  it('--password-file, --acl-file and --allow-anonymous go to auth; nothing set: no auth options', () => {
    const c = loadConfig(['--password-file', 'passwd', '--acl-file', '/etc/acl', '--allow-anonymous'], {});
    assert.deepEqual(c.auth, { passwordFile: 'passwd', aclFile: '/etc/acl', allowAnonymous: true });
    assert.deepEqual(toBrokerOptions(c).auth, c.auth);
    assert.equal(loadConfig([], {}).auth, undefined);
    assert.equal(toBrokerOptions(loadConfig([], {})).auth, undefined);
    assert.equal(loadConfig(['--allow-anonymous=false'], {}).auth?.allowAnonymous, false);
  });

  const bad: [string, string[], NodeJS.ProcessEnv, string][] = [
    ['--tls-port without --cert', ['--tls-port', '8883', '--key', '/k'], {}, '--tls-port: needs --cert and --key (PETREL_CERT and PETREL_KEY, or cert and key in the config file); cert is missing'],
    ['--tls-port without --key', ['--tls-port', '8883', '--cert', '/c'], {}, '--tls-port: needs --cert and --key (PETREL_CERT and PETREL_KEY, or cert and key in the config file); key is missing'],
    ['--wss-port without a certificate', ['--wss-port', '8081'], {}, '--wss-port: needs --cert and --key (PETREL_CERT and PETREL_KEY, or cert and key in the config file); cert is missing'],
    ['PETREL_TLS_PORT without a certificate', [], { PETREL_TLS_PORT: '8883' }, 'PETREL_TLS_PORT: needs --cert and --key (PETREL_CERT and PETREL_KEY, or cert and key in the config file); cert is missing'],
    ['a TLS port out of range', ['--tls-port', '65536'], {}, '--tls-port: must be an integer from 0 to 65535, got "65536"'],
    ['a WebSocket port that is not a number', ['--ws-port', 'x'], {}, '--ws-port: must be an integer, got "x"'],
    ['--cert without a TLS listener', ['--cert', '/c', '--key', '/k'], {}, '--cert: applies to TLS listeners: give --tls-port or --wss-port too'],
    ['--require-certificate without --ca', ['--tls-port', '8883', '--cert', '/c', '--key', '/k', '--require-certificate'], {}, '--require-certificate: needs --ca (the CA that signs client certificates)'],
    ['--ws-path without a WebSocket listener', ['--ws-path', '/x'], {}, '--ws-path: applies to WebSocket listeners: give --ws-port or --wss-port too'],
    ['--ws-path not starting with /', ['--ws-port', '8080', '--ws-path', 'mqtt'], {}, "--ws-path: must be an HTTP path starting with '/' (no spaces, '?' or '#'), got \"mqtt\""],
    ['two flag listeners on one port', ['--port', '1999', '--ws-port', '1999'], {}, '--ws-port: port 1999 is already used by --port'],
    ['a bad boolean', ['--require-certificate=maybe'], {}, '--require-certificate: must be true or false, got "maybe"'],
    ['a bad PETREL_ALLOW_ANONYMOUS', [], { PETREL_ALLOW_ANONYMOUS: 'sometimes' }, 'PETREL_ALLOW_ANONYMOUS: must be true or false, got "sometimes"'],
    ['--password-file without a value', ['--password-file'], {}, '--password-file: needs a value'],
  ];
  for (const [what, args, env, message] of bad) {
    it(`${what}: a ConfigError naming the flag`, () => assert.equal(configError(() => loadConfig(args, env)), message));
  }

  it('--help has a sentence for every new option', () => {
    const h = helpText();
    for (const flag of ['--tls-port N', '--cert FILE', '--key FILE', '--ca FILE', '--require-certificate', '--ws-port N', '--wss-port N', '--ws-path PATH',
      '--proxy-protocol', '--password-file FILE', '--acl-file FILE', '--allow-anonymous', '--mosquitto-config FILE', '--lenient']) {
      const line = h.split('\n').find((l) => l.trimStart().startsWith(flag + ' '));
      assert.ok(line && line.length > flag.length + 40, `${flag} has a line with a description: ${line}`);
    }
    for (const env of ['PETREL_TLS_PORT', 'PETREL_CERT', 'PETREL_WS_PATH', 'PETREL_PASSWORD_FILE', 'PETREL_MOSQUITTO_CONFIG', 'PETREL_LENIENT']) assert.match(h, new RegExp(`env ${env}\\b`));
    assert.match(h, /SIGHUP/);
  });
});

describe('the config file: listeners and auth', () => {
  const write = (name: string, doc: unknown): string => {
    const f = join(tmp, name);
    writeFileSync(f, JSON.stringify(doc));
    return f;
  };

  it('several listeners of each kind with every key; relative paths resolve against the file\'s directory', () => {
    const file = write('all.json', {
      listeners: [
        { transport: 'tcp', port: 1883, host: '0.0.0.0', name: 'plain', maxConnections: 100, connectionRate: 10.5 },
        { transport: 'tcp', port: 1884, proxyProtocol: true, trustedProxies: ['10.0.0.0/8', '::1'] },
        {
          transport: 'tls', port: 8883, cert: 'tls/server.crt', key: '/abs/server.key', passphrase: 'pw', ca: 'tls/ca.crt', requireCertificate: true,
          crl: 'tls/ca.crl', identityAsUsername: 'subject', minVersion: 'TLSv1.3', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256',
          sni: { 'other.example': { cert: 'o.crt', key: 'o.key' } },
        },
        { transport: 'tls', port: 8884, cert: '/s.crt', key: '/s.key' },
        { transport: 'ws', port: 8080, path: '/mqtt', allowedOrigins: ['https://app.example'], perMessageDeflate: true },
        { transport: 'ws', port: 8090 },
        { transport: 'wss', port: 8081, cert: '/s.crt', key: '/s.key', path: '/secure' },
      ],
      auth: { passwordFile: 'passwd', aclFile: 'acl', allowAnonymous: false, loginGuard: { maxFailures: 5, windowSeconds: 60, banSeconds: 300 }, maxConcurrentHashes: 4, maxPendingHashes: 500 },
    });
    const c = loadConfig(['--config', file], {});
    assert.equal(c.listeners.length, 7);
    assert.deepEqual(c.listeners[0], { transport: 'tcp', port: 1883, host: '0.0.0.0', name: 'plain', maxConnections: 100, connectionRate: 10.5 });
    assert.deepEqual(c.listeners[1], { transport: 'tcp', port: 1884, proxyProtocol: true, trustedProxies: ['10.0.0.0/8', '::1'] });
    assert.deepEqual(c.listeners[2], {
      transport: 'tls', port: 8883, cert: join(tmp, 'tls/server.crt'), key: '/abs/server.key', passphrase: 'pw', ca: join(tmp, 'tls/ca.crt'),
      requireCertificate: true, crl: join(tmp, 'tls/ca.crl'), identityAsUsername: 'subject', minVersion: 'TLSv1.3', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256',
      sni: { 'other.example': { cert: join(tmp, 'o.crt'), key: join(tmp, 'o.key') } },
    });
    assert.deepEqual(c.listeners[4], { transport: 'ws', port: 8080, path: '/mqtt', allowedOrigins: ['https://app.example'], perMessageDeflate: true });
    assert.deepEqual(c.auth, {
      passwordFile: join(tmp, 'passwd'), aclFile: join(tmp, 'acl'), allowAnonymous: false, maxConcurrentHashes: 4, maxPendingHashes: 500,
      loginGuard: { maxFailures: 5, windowSeconds: 60, banSeconds: 300 },
    });
  });

  it('the file\'s top-level keys tlsPort, cert, key, wsPort... make the same listeners as the flags, paths from its directory', () => {
    const file = write('flat.json', { port: 1999, tlsPort: 8883, cert: 's.crt', key: 's.key', wsPort: 8080, wsPath: '/m', proxyProtocol: true });
    assert.deepEqual(loadConfig(['--config', file], {}).listeners, [
      { transport: 'tcp', port: 1999, proxyProtocol: true },
      { transport: 'tls', port: 8883, proxyProtocol: true, cert: join(tmp, 's.crt'), key: join(tmp, 's.key') },
      { transport: 'ws', port: 8080, proxyProtocol: true, path: '/m' },
    ]);
  });

  it('a listener list in the file wins over port settings of the environment, and --port on the command line over the list', () => {
    const file = write('list.json', { listeners: [{ port: 1884 }] });
    assert.deepEqual(loadConfig(['--config', file], { PETREL_PORT: '1999', PETREL_TLS_PORT: '8883' }).listeners, [{ transport: 'tcp', port: 1884 }]);
    assert.deepEqual(loadConfig(['--config', file, '--port', '1999'], {}).listeners, [{ transport: 'tcp', port: 1999 }]);
    assert.match(configError(() => loadConfig(['--config', file, '--cert', '/c'], {})), /^--cert: the listeners come from listeners in .*list\.json/);
  });

  const badFile: [string, unknown, RegExp][] = [
    ['an unknown listener key', { listeners: [{ port: 1, prot: 2 }] }, /listeners\[0\]\.prot: unknown key \(did you mean port\?\); known keys are transport, port, host/],
    ['an unknown transport', { listeners: [{ transport: 'quic' }] }, /listeners\[0\]\.transport: must be 'tcp', 'tls', 'ws' or 'wss', got "quic"/],
    ['a tls listener without cert', { listeners: [{ transport: 'tls', key: '/k' }] }, /listeners\[0\]\.cert: a 'tls' listener needs cert/],
    ['a wss listener without key', { listeners: [{ transport: 'wss', cert: '/c' }] }, /listeners\[0\]\.key: a 'wss' listener needs key/],
    ['a TLS key on a tcp listener', { listeners: [{ transport: 'tcp', cert: '/c' }] }, /listeners\[0\]\.cert: only for transport 'tls' or 'wss' \(this listener is 'tcp'\)/],
    ['a WebSocket key on a tls listener', { listeners: [{ transport: 'tls', cert: '/c', key: '/k', path: '/x' }] }, /listeners\[0\]\.path: only for transport 'ws' or 'wss'/],
    ['a bad port', { listeners: [{}, { port: -1 }] }, /listeners\[1\]\.port: must be an integer from 0 to 65535, got -1/],
    ['a bad minVersion', { listeners: [{ transport: 'tls', cert: '/c', key: '/k', minVersion: 'TLSv1.1' }] }, /listeners\[0\]\.minVersion: must be 'TLSv1.2' or 'TLSv1.3', got "TLSv1.1"/],
    ['requireCertificate without ca', { listeners: [{ transport: 'tls', cert: '/c', key: '/k', requireCertificate: true }] }, /listeners\[0\]\.requireCertificate: needs ca/],
    ['identityAsUsername without requireCertificate', { listeners: [{ transport: 'tls', cert: '/c', key: '/k', identityAsUsername: 'cn' }] }, /listeners\[0\]\.identityAsUsername: needs requireCertificate: true/],
    ['a bad identityAsUsername', { listeners: [{ transport: 'tls', cert: '/c', key: '/k', identityAsUsername: 'email' }] }, /identityAsUsername: must be 'none', 'cn' or 'subject', got "email"/],
    ['a bad trusted proxy', { listeners: [{ proxyProtocol: true, trustedProxies: ['10.0.0.0/33'] }] }, /listeners\[0\]\.trustedProxies: must be an array of addresses or CIDRs/],
    ['trustedProxies without proxyProtocol', { listeners: [{ trustedProxies: ['10.0.0.1'] }] }, /listeners\[0\]\.trustedProxies: needs proxyProtocol: true/],
    ['a negative maxConnections', { listeners: [{ maxConnections: -1 }] }, /listeners\[0\]\.maxConnections: must be an integer >= 0, got -1/],
    ['allowedOrigins not strings', { listeners: [{ transport: 'ws', allowedOrigins: [1] }] }, /listeners\[0\]\.allowedOrigins: must be an array of non-empty strings/],
    ['a WebSocket path without /', { listeners: [{ transport: 'ws', path: 'mqtt' }] }, /listeners\[0\]\.path: must be an HTTP path starting with '\/'/],
    ['an sni entry without key', { listeners: [{ transport: 'tls', cert: '/c', key: '/k', sni: { 'a.example': { cert: '/x' } } }] }, /listeners\[0\]\.sni\.a\.example\.key: must be a non-empty path/],
    ['an unknown auth key', { auth: { passwordfile: 'x' } }, /auth\.passwordfile: unknown key \(did you mean passwordFile\?\); known keys are passwordFile, aclFile, allowAnonymous, loginGuard/],
    ['a bad allowAnonymous', { auth: { allowAnonymous: 'no way' } }, /auth\.allowAnonymous: must be true or false, got "no way"/],
    ['a bad loginGuard', { auth: { loginGuard: { maxFailures: 0 } } }, /auth\.loginGuard\.maxFailures: must be an integer >= 1, got 0/],
    ['an unknown loginGuard key', { auth: { loginGuard: { tries: 3 } } }, /auth\.loginGuard\.tries: unknown key/],
    ['a bad maxConcurrentHashes', { auth: { maxConcurrentHashes: 0 } }, /auth\.maxConcurrentHashes: must be an integer >= 1, got 0/],
    ['auth not an object', { auth: [] }, /: auth: must be an object/],
  ];
  for (const [what, doc, message] of badFile) {
    it(`${what}: a ConfigError naming the file and the key`, () => {
      const file = write('bad.json', doc);
      const m = configError(() => loadConfig(['--config', file], {}));
      assert.ok(m.startsWith(file + ': '), m);
      assert.match(m, message);
    });
  }

  it('loginGuard: false, true and maxTracked are accepted', () => {
    assert.deepEqual(loadConfig(['--config', write('lg.json', { auth: { loginGuard: false } })], {}).auth, { loginGuard: false });
    assert.deepEqual(loadConfig(['--config', write('lg.json', { auth: { loginGuard: true } })], {}).auth, { loginGuard: true });
    assert.deepEqual(loadConfig(['--config', write('lg.json', { auth: { loginGuard: { maxTracked: 100 } } })], {}).auth, { loginGuard: { maxTracked: 100 } });
  });
});

describe('petrel process: flags end to end', () => {
  let certs: TestCerts;
  let passwd: string;
  let acl: string;
  before(() => {
    certs = testCerts();
    passwd = join(tmp, 'passwd');
    execFileSync('mosquitto_passwd', ['-c', '-b', passwd, 'alice', 'alice-secret']);
    execFileSync('mosquitto_passwd', ['-b', passwd, 'bob', 'bob-secret']);
    acl = join(tmp, 'acl');
    writeFileSync(acl, 'user alice\ntopic readwrite test/#\n\nuser bob\ntopic read test/#\n');
  });

  it('--tls-port --cert --key --ca: exits 2 naming --tls-port without a certificate, no stack trace', () => {
    const r = spawnSync(process.execPath, [CLI, '--tls-port', '8883', '--memory'], { encoding: 'utf8', timeout: 15_000 });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^petrel: --tls-port: needs --cert and --key/m);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });

  it('a certificate or password file that cannot be read: exit 2 naming the flag and the file', () => {
    const missing = join(tmp, 'missing.pem');
    const r = spawnSync(process.execPath, [CLI, '--tls-port', '8883', '--cert', missing, '--key', certs.serverKey, '--memory'], { encoding: 'utf8', timeout: 15_000 });
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr.trim(), `petrel: --tls-port: cannot read the cert file ${missing}: ENOENT`);
    const r2 = spawnSync(process.execPath, [CLI, '--password-file', missing, '--memory'], { encoding: 'utf8', timeout: 15_000, env: { PATH: process.env.PATH } });
    assert.equal(r2.status, 2, r2.stderr);
    assert.equal(r2.stderr.trim(), `petrel: --password-file: cannot read the password file ${missing}: ENOENT`);
  });

  it('SIGHUP reloads and the broker keeps running; SIGTERM still exits 0', async () => {
    const [port] = await freePorts(1);
    const p = await startCli(['--port', String(port), '--host', '127.0.0.1', '--memory'], [port!]);
    try {
      p.child.kill('SIGHUP');
      await p.waitForLine((l) => parseLogLine(l)?.event === 'config.reloaded', 10_000, 'the reload report', true);
      assert.equal(p.exited, false, 'still running after SIGHUP');
      const r = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-t', 'x', '-m', 'after reload'], 10_000);
      assert.equal(r.code, 0, r.describe);
    } finally {
      assert.equal(await stopCli(p), 0);
    }
  });

  // Needs the transport and auth branches (TLS and WebSocket listeners, password and ACL enforcement).
  it('mosquitto_sub/mosquitto_pub over --tls-port with --cafile and -u/-P, MQTT.js over --ws-port, with --password-file and --acl-file', async () => {
    const [plain, tls, ws] = await freePorts(3);
    const p = await startCli(
      ['--port', String(plain), '--host', '127.0.0.1', '--tls-port', String(tls), '--cert', certs.serverCert, '--key', certs.serverKey,
        '--ws-port', String(ws), '--password-file', passwd, '--acl-file', acl, '--memory'],
      [plain!, tls!, ws!],
    );
    try {
      // mosquitto_sub waits for one message over TLS; mosquitto_pub sends it over TLS too.
      const sub = await subscribed(['-h', 'localhost', '-p', String(tls), '--cafile', certs.ca, '-u', 'alice', '-P', 'alice-secret', '-t', 'test/#', '-C', '1', '-W', '10', '-v']);
      const pub = await run('mosquitto_pub', ['-h', 'localhost', '-p', String(tls), '--cafile', certs.ca, '-u', 'alice', '-P', 'alice-secret', '-t', 'test/tls', '-m', 'over tls'], 10_000);
      assert.equal(pub.code, 0, pub.describe);
      assert.equal(await sub.exit(12_000), 0, sub.describe());
      assert.deepEqual(messageLines(sub), ['test/tls over tls']);

      const bad = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(plain), '-u', 'alice', '-P', 'wrong', '-t', 'test/x', '-m', 'x'], 10_000);
      assert.notEqual(bad.code, 0, 'a wrong password is refused');
      assert.match(bad.stderr, /not authori[sz]ed|bad user name or password/i);

      const c = await connectMqtt(`ws://127.0.0.1:${ws}/mqtt`, { username: 'alice', password: 'alice-secret', clientId: uniqueId('ws') });
      try {
        await c.client.subscribeAsync('test/ws');
        await c.client.publishAsync('test/ws', 'over ws', { qos: 1 });
        await c.messages.count('test/ws', 1);
      } finally {
        await c.client.endAsync();
      }
    } finally {
      await stopCli(p);
    }
  });

  // Needs the auth branch (a password file that registers a 'auth' reloader).
  it('SIGHUP with a broken password file: the error is reported, the old users still log in', async () => {
    const [port] = await freePorts(1);
    const file = join(tmp, 'passwd-reload');
    execFileSync('mosquitto_passwd', ['-c', '-b', file, 'carol', 'carol-secret']);
    const p = await startCli(['--port', String(port), '--host', '127.0.0.1', '--password-file', file, '--memory'], [port!]);
    try {
      writeFileSync(file, 'carol:$7$this is not a hash\n');
      p.child.kill('SIGHUP');
      const failed = await p.waitForLine((l) => parseLogLine(l)?.event === 'config.reload_failed', 10_000, 'the reload error', true);
      assert.equal(parseLogLine(failed)!.part, 'auth', failed);
      assert.match(parseLogLine(failed)!.msg, /the old settings stay/);
      const r = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-u', 'carol', '-P', 'carol-secret', '-t', 'x', '-m', 'still in'], 10_000);
      assert.equal(r.code, 0, r.describe);
    } finally {
      assert.equal(await stopCli(p), 0);
    }
  });
});

