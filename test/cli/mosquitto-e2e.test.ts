// `petrel --mosquitto-config` end to end: one real mosquitto.conf with a plain listener, a TLS listener, a
// WebSocket listener, a password file written by the real mosquitto_passwd and an ACL file. The real Mosquitto
// broker accepts the same file (so it is truly Mosquitto's format), then Petrel starts from it and the same
// clients work against it unchanged: mosquitto_pub/mosquitto_sub with --cafile and -u/-P, MQTT.js over ws://.
// A publish outside a user's ACL is not delivered, a wrong password and an anonymous client are refused.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testCerts, type TestCerts } from '../helpers/certs.js';
import { LineProcess, run } from '../helpers/processes.js';
import { connectMqtt, uniqueId } from '../helpers/mqttjs.js';
import { CLI, freePorts, messageLines, startCli, stopCli, subscribed } from './cli-process.js';
import { findEvent, logRecords } from '../helpers/log-lines.js';

const dir = mkdtempSync(join(tmpdir(), 'petrel-mosq-e2e-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('petrel --mosquitto-config with a real mosquitto.conf', () => {
  let certs: TestCerts;
  let plain: number;
  let tls: number;
  let ws: number;
  let conf: string;
  let petrel: LineProcess | undefined;

  before(async () => {
    certs = testCerts();
    [plain, tls, ws] = (await freePorts(3)) as [number, number, number];
    const passwd = join(dir, 'passwd');
    execFileSync('mosquitto_passwd', ['-c', '-b', passwd, 'alice', 'alice-secret']);
    execFileSync('mosquitto_passwd', ['-b', passwd, 'bob', 'bob-secret']);
    const acl = join(dir, 'acl');
    // alice may read and write test/#; bob may only read it.
    writeFileSync(acl, '# ACL of the end-to-end test\nuser alice\ntopic readwrite test/#\n\nuser bob\ntopic read test/#\n');
    mkdirSync(join(dir, 'conf.d'));
    writeFileSync(join(dir, 'conf.d', 'limits.conf'), '# read through include_dir\nmax_keepalive 300\nmax_inflight_messages 20\n');
    conf = join(dir, 'mosquitto.conf');
    writeFileSync(conf, [
      '# A Mosquitto 2.0 configuration: plain, TLS and WebSocket listeners, password and ACL files.',
      'per_listener_settings false',
      'allow_anonymous false',
      `password_file ${passwd}`,
      `acl_file ${acl}`,
      'persistence false',
      'log_type error',
      'log_type warning',
      'log_type notice',
      'log_type information',
      '',
      `listener ${plain} 127.0.0.1`,
      'protocol mqtt',
      '',
      `listener ${tls} 127.0.0.1`,
      `cafile ${certs.ca}`,
      `certfile ${certs.serverCert}`,
      `keyfile ${certs.serverKey}`,
      'tls_version tlsv1.2',
      'require_certificate false',
      '',
      `listener ${ws} 127.0.0.1`,
      'protocol websockets',
      '',
      `include_dir ${join(dir, 'conf.d')}`,
      '',
    ].join('\n'));
    // Mosquitto, run as root, drops to the mosquitto user: let it read the files.
    for (const d of [dir, certs.dir, join(dir, 'conf.d')]) chmodSync(d, 0o755);
    for (const f of [passwd, acl, conf, ...readdirSync(certs.dir).map((n) => join(certs.dir, n))]) chmodSync(f, 0o644);
  });

  after(async () => {
    if (petrel) await stopCli(petrel);
  });

  it('the real mosquitto broker accepts the file and lets alice in with her password', async () => {
    const m = new LineProcess('mosquitto', ['-c', conf]);
    try {
      await m.waitForLine((l) => /mosquitto version \S+ running/.test(l), 10_000, 'mosquitto running', true);
      assert.doesNotMatch(m.stderr, /Error/);
      assert.match(m.stderr, new RegExp(`Opening ipv4 listen socket on port ${plain}`));
      assert.match(m.stderr, new RegExp(`Opening websockets listen socket on port ${ws}`));
      const ok = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(plain), '-u', 'alice', '-P', 'alice-secret', '-t', 'test/m', '-m', 'hi'], 10_000);
      assert.equal(ok.code, 0, ok.describe);
      const tlsOk = await run('mosquitto_pub', ['-h', 'localhost', '-p', String(tls), '--cafile', certs.ca, '-u', 'alice', '-P', 'alice-secret', '-t', 'test/m', '-m', 'hi'], 10_000);
      assert.equal(tlsOk.code, 0, tlsOk.describe);
    } finally {
      m.child.kill('SIGTERM');
      await m.exit(10_000);
    }
  });

  it('petrel starts from it: one listener per listener line, on the same ports', async () => {
    petrel = await startCli(['--mosquitto-config', conf], [plain, tls, ws]);
    assert.deepEqual(logRecords(petrel.stderr).filter((r) => r.event === 'config.warning'), [], 'every directive of the file is supported');
    assert.equal(findEvent(petrel.stderr, 'store.opened')?.store, 'memory', 'persistence false: the memory store');
  });

  // Needs the auth branch (password file).
  it('mosquitto_pub with -u/-P over the plain listener; a wrong password and an anonymous client are refused', async () => {
    const ok = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(plain), '-u', 'alice', '-P', 'alice-secret', '-t', 'test/plain', '-m', 'x'], 10_000);
    assert.equal(ok.code, 0, ok.describe);
    const wrong = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(plain), '-u', 'alice', '-P', 'not-her-password', '-t', 'test/plain', '-m', 'x'], 10_000);
    assert.notEqual(wrong.code, 0, 'wrong password refused');
    assert.match(wrong.stderr, /not authori[sz]ed|bad user name or password/i);
    const anonymous = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(plain), '-t', 'test/plain', '-m', 'x'], 10_000);
    assert.notEqual(anonymous.code, 0, 'allow_anonymous false: refused');
  });

  // Needs the transport branch (TLS listener) and the auth branch (password and ACL files).
  it('mosquitto_sub over TLS with --cafile gets alice\'s message and not bob\'s, which the ACL refuses', async () => {
    const sub = await subscribed(['-h', 'localhost', '-p', String(tls), '--cafile', certs.ca, '-u', 'alice', '-P', 'alice-secret', '-t', 'test/#', '-C', '1', '-W', '10', '-v']);
    try {
      // bob may only read test/#: his publish must not be delivered. It is sent first: if the ACL let it through,
      // it would be the one message mosquitto_sub prints.
      const fromBob = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(plain), '-u', 'bob', '-P', 'bob-secret', '-q', '1', '-t', 'test/acl', '-m', 'from bob'], 10_000);
      assert.equal(fromBob.code, 0, `MQTT 3.1.1: a refused publish is acknowledged and dropped\n${fromBob.describe}`);
      const fromAlice = await run('mosquitto_pub', ['-h', 'localhost', '-p', String(tls), '--cafile', certs.ca, '-u', 'alice', '-P', 'alice-secret', '-q', '1', '-t', 'test/acl', '-m', 'from alice'], 10_000);
      assert.equal(fromAlice.code, 0, fromAlice.describe);
      assert.equal(await sub.exit(12_000), 0, sub.describe());
      assert.deepEqual(messageLines(sub), ['test/acl from alice']);
    } finally {
      sub.kill();
    }
  });

  // Needs the transport branch (WebSocket listener) and the auth branch.
  it('MQTT.js over ws:// as alice publishes and receives; bob\'s subscription outside his rights is refused', async () => {
    const alice = await connectMqtt(`ws://127.0.0.1:${ws}/mqtt`, { username: 'alice', password: 'alice-secret', clientId: uniqueId('alice') });
    try {
      await alice.client.subscribeAsync('test/ws', { qos: 1 });
      await alice.client.publishAsync('test/ws', 'over websocket', { qos: 1 });
      const got = await alice.messages.count('test/ws', 1);
      assert.equal(got[0]!.payload.toString(), 'over websocket');
    } finally {
      await alice.client.endAsync();
    }
    const bob = await connectMqtt(`ws://127.0.0.1:${ws}/mqtt`, { username: 'bob', password: 'bob-secret', clientId: uniqueId('bob'), protocolVersion: 4 });
    try {
      // MQTT.js rejects a subscription whose SUBACK code is a failure; the packet says which.
      await assert.rejects(bob.client.subscribeAsync('private/#', { qos: 0 }), (err: Error & { packet?: { granted?: number[] } }) => {
        assert.deepEqual(err.packet?.granted, [128], 'MQTT 3.1.1: SUBACK 0x80 for a filter outside the ACL');
        return true;
      });
    } finally {
      await bob.client.endAsync();
    }
  });

  it('the limits of the include_dir file are in force: a v5 client asking for keep alive 0 gets Server Keep Alive 300', async () => {
    // Needs the auth branch for the password; max_keepalive comes from conf.d/limits.conf.
    const c = await connectMqtt(`mqtt://127.0.0.1:${plain}`, { username: 'alice', password: 'alice-secret', protocolVersion: 5, keepalive: 0, clientId: uniqueId('ka') });
    try {
      assert.equal(c.connack.properties?.serverKeepAlive, 300);
    } finally {
      await c.client.endAsync();
    }
  });

  it('an unsupported directive stops petrel with exit 2 naming it and its line; --lenient starts with a warning', async () => {
    const bad = join(dir, 'unsupported.conf');
    const [port] = await freePorts(1);
    writeFileSync(bad, `listener ${port} 127.0.0.1\nallow_anonymous true\nsys_interval 10\n`);
    const r = spawnSync(process.execPath, [CLI, '--mosquitto-config', bad, '--memory'], { encoding: 'utf8', timeout: 15_000 });
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr.trim(), `petrel: ${bad}:3: sys_interval: a Mosquitto directive that Petrel does not support (petrel --lenient skips it with a warning)`);
    const p = await startCli(['--mosquitto-config', bad, '--lenient', '--memory'], [port!]);
    try {
      const warning = findEvent(p.stderr, 'config.warning');
      assert.ok(warning && warning.level === 40, p.stderr);
      assert.match(warning.msg, new RegExp(`^${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3: sys_interval: .*skipped \\(--lenient\\)`));
      const pub = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-t', 'x', '-m', 'y'], 10_000);
      assert.equal(pub.code, 0, pub.describe);
    } finally {
      assert.equal(await stopCli(p), 0);
    }
  });

  it('a certificate file that cannot be read is named with its listener\'s mosquitto.conf line, exit 2', () => {
    const bad = join(dir, 'missing-cert.conf');
    writeFileSync(bad, `listener ${plain} 127.0.0.1\nallow_anonymous true\nlistener ${tls} 127.0.0.1\ncertfile ${join(dir, 'no-such.crt')}\nkeyfile ${certs.serverKey}\n`);
    const r = spawnSync(process.execPath, [CLI, '--mosquitto-config', bad, '--memory'], { encoding: 'utf8', timeout: 15_000 });
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr.trim(), `petrel: ${bad}:3: listener: cannot read the cert file ${join(dir, 'no-such.crt')}: ENOENT`);
  });

  it('flags win: --port replaces the listeners of the file', async () => {
    const [port] = await freePorts(1);
    const p = await startCli(['--mosquitto-config', conf, '--port', String(port), '--host', '127.0.0.1'], [port!]);
    try {
      assert.doesNotMatch(p.stderr, new RegExp(`port=${plain}\\b`), 'the file\'s listeners are not opened');
    } finally {
      await stopCli(p);
    }
  });
});
