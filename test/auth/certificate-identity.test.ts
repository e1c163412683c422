// mTLS with the certificate as the user name (identityAsUsername, Mosquitto's use_identity_as_username), together
// with a password file and an ACL file, with the real mosquitto_pub / mosquitto_sub: the certificate authenticates
// its holder as its CN (no password asked, a CONNECT user name ignored), the ACL applies to that name, and a
// password client on a plain listener of the same broker is unaffected.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createBroker, type ClientInfo, type PetrelBroker } from '../../src/index.js';
import { testCerts } from '../helpers/certs.js';
import { connectMqtt, endAll } from '../helpers/mqttjs.js';
import { LineProcess, ProcessTracker, run } from '../helpers/processes.js';

const T = { timeout: 30_000 };
const H = '127.0.0.1';
const certs = testCerts();

describe('certificate identity as the user name, with a password file and an ACL', T, () => {
  let broker: PetrelBroker;
  let mtls: number;
  let plain: number;
  let dir: string;
  const seen: ClientInfo[] = [];
  const procs = new ProcessTracker();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'petrel-certid-'));
    const pw = join(dir, 'passwd');
    execFileSync('mosquitto_passwd', ['-c', '-b', pw, 'alice', 'secret']);
    const acl = join(dir, 'acl');
    // device-1 (the client certificate's CN) may write devices/device-1/# and read commands/device-1;
    // alice may read everything under devices/.
    writeFileSync(acl, ['user device-1', 'topic write devices/device-1/#', 'topic read commands/device-1', '', 'user alice', 'topic read devices/#', 'topic write commands/#', ''].join('\n'));
    broker = await createBroker({
      store: { type: 'memory' },
      logLevel: 'silent',
      closeTimeout: 1,
      sysInterval: 0,
      auth: { passwordFile: pw, aclFile: acl },
      listeners: [
        { transport: 'tls', port: 0, host: H, cert: certs.serverCert, key: certs.serverKey, ca: certs.ca, requireCertificate: true, identityAsUsername: 'cn' },
        { transport: 'tcp', port: 0, host: H },
      ],
      hooks: { onConnect: (c) => void seen.push(c) },
    });
    const addrs = await broker.listen();
    mtls = addrs[0]!.port;
    plain = addrs[1]!.port;
  });
  after(async () => {
    await procs.killAll();
    await broker.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('mosquitto_pub with --cert/--key and no password is user device-1; alice (password, plain TCP) receives what the ACL lets device-1 write', T, async () => {
    const alice = await connectMqtt(`mqtt://${H}:${plain}`, { protocolVersion: 5, username: 'alice', password: 'secret' });
    try {
      await alice.client.subscribeAsync('devices/#', { qos: 1 });
      // Claims to be alice in CONNECT: the certificate's identity wins, so this is device-1, who may not write here.
      const denied = await run('mosquitto_pub', ['-h', H, '-p', String(mtls), '--cafile', certs.ca, '--cert', certs.clientCert, '--key', certs.clientKey, '-u', 'alice', '-i', 'dev-denied', '-t', 'devices/other/x', '-m', 'not allowed', '-q', '1', '-V', 'mqttv5'], 10_000);
      assert.equal(denied.code, 0, denied.describe);
      const ok = await run('mosquitto_pub', ['-h', H, '-p', String(mtls), '--cafile', certs.ca, '--cert', certs.clientCert, '--key', certs.clientKey, '-i', 'dev-ok', '-t', 'devices/device-1/temp', '-m', '21.5', '-q', '1'], 10_000);
      assert.equal(ok.code, 0, ok.describe);
      await alice.messages.count('devices/device-1/temp', 1, 5000);
      assert.deepEqual(alice.messages.payloads(), ['21.5'], 'the write outside device-1 rights was not delivered');
      const who = seen.filter((c) => c.clientId === 'dev-ok' || c.clientId === 'dev-denied').map((c) => [c.clientId, c.username, c.transport]);
      assert.deepEqual(who.sort(), [['dev-denied', 'device-1', 'tls'], ['dev-ok', 'device-1', 'tls']]);
    } finally {
      await endAll(alice.client);
    }
  });

  it('mosquitto_sub with the certificate subscribing outside device-1 rights is refused (SUBACK 0x80), inside them receives', T, async () => {
    const refused = await run('mosquitto_sub', ['-h', H, '-p', String(mtls), '--cafile', certs.ca, '--cert', certs.clientCert, '--key', certs.clientKey, '-i', 'dev-sub-bad', '-t', 'devices/#', '-C', '1', '-W', '3', '-d'], 10_000);
    assert.match(refused.stdout + refused.stderr, /received SUBACK[\s\S]*(128|0x80)|Subscription denied/i, refused.describe);
    const sub = procs.track(new LineProcess('stdbuf', ['-oL', 'mosquitto_sub', '-h', H, '-p', String(mtls), '--cafile', certs.ca, '--cert', certs.clientCert, '--key', certs.clientKey, '-i', 'dev-sub', '-t', 'commands/device-1', '-q', '1', '-C', '1', '-W', '10', '-d']));
    await sub.waitForLine((l) => /received SUBACK/.test(l), 10_000, 'SUBACK');
    const alice = await connectMqtt(`mqtt://${H}:${plain}`, { protocolVersion: 4, username: 'alice', password: 'secret' });
    try {
      await alice.client.publishAsync('commands/device-1', 'reboot', { qos: 1 });
      await sub.exit(10_000);
      assert.ok(sub.lines.includes('reboot'), sub.describe());
    } finally {
      await endAll(alice.client);
    }
  });

  it('without a client certificate the mTLS listener refuses the handshake, and a wrong password on plain TCP gets 0x86', T, async () => {
    const r = await run('mosquitto_pub', ['-h', H, '-p', String(mtls), '--cafile', certs.ca, '-t', 'devices/device-1/x', '-m', 'x', '-q', '1'], 10_000);
    assert.notEqual(r.code, 0, r.describe);
    await assert.rejects(connectMqtt(`mqtt://${H}:${plain}`, { protocolVersion: 5, username: 'alice', password: 'wrong' }), /Bad User Name or Password|134|0x86/i);
  });
});
