// Each listener proven with real clients: mosquitto_pub/sub over TLS (--cafile) and mTLS (--cert/--key), refused
// with an unrelated CA's certificate, a revoked one and in plaintext; MQTT.js over ws:// and wss://; a page in
// headless Chromium over ws://; certificates swapped by reload() with connections kept; the certificate's CN
// and RFC 2253 subject as the connection's user name; the listener and transport in ClientInfo; per-listener
// maxConnections and connectionRate; listener options refused with the key and the reason.
// (paho-mqtt with transport="websockets" and with tls_set runs the whole paho suite: test/transport/matrix.)

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { createBroker, type BoundAddress, type ClientInfo, type ListenerOptions, type PetrelBroker } from '../../src/index.js';
import type { ResolvedListener } from '../../src/broker/options.js';
import { createLogger } from '../../src/broker/logger.js';
import type { ConnectionMeta } from '../../src/transport/connection.js';
import { openListener, type ListenerStats } from '../../src/transport/listener.js';
import { commonName, rfc2253Subject } from '../../src/transport/tls.js';
import { extraServerCert, testCerts } from '../helpers/certs.js';
import { connectMqtt, endAll, type Connected } from '../helpers/mqttjs.js';
import { LineProcess, ProcessTracker, run } from '../helpers/processes.js';
import { sleep, waitFor } from '../helpers/wait.js';

const T = { timeout: 30_000 };
const certs = testCerts();
const H = '127.0.0.1';

async function brokerWith(listeners: ListenerOptions[], hooks = {}): Promise<{ broker: PetrelBroker; addrs: BoundAddress[] }> {
  const broker = await createBroker({ store: { type: 'memory' }, logLevel: 'silent', closeTimeout: 1, listeners, hooks });
  return { broker, addrs: await broker.listen() };
}

describe('TLS and mTLS listeners with mosquitto_pub / mosquitto_sub', T, () => {
  let broker: PetrelBroker;
  let tlsPort: number;
  let mtlsPort: number;
  const seen: ClientInfo[] = [];
  const procs = new ProcessTracker();
  before(async () => {
    const b = await brokerWith(
      [
        { transport: 'tls', port: 0, host: H, cert: certs.serverCert, key: certs.serverKey, name: 'tls-plain' },
        { transport: 'tls', port: 0, host: H, cert: certs.serverCert, key: certs.serverKey, ca: certs.ca, crl: certs.crl, requireCertificate: true, name: 'mtls' },
      ],
      { onConnect: (c: ClientInfo) => seen.push(c) },
    );
    broker = b.broker;
    tlsPort = b.addrs[0]!.port;
    mtlsPort = b.addrs[1]!.port;
  });
  after(async () => {
    await procs.killAll();
    await broker.close();
  });

  it('mosquitto_sub --cafile receives what mosquitto_pub --cafile publishes over TLS; ClientInfo names the listener and transport', T, async () => {
    const sub = procs.track(new LineProcess('stdbuf', ['-oL', 'mosquitto_sub', '-h', H, '-p', String(tlsPort), '--cafile', certs.ca, '-t', 'tls/a', '-q', '1', '-C', '1', '-W', '10', '-d', '-i', 'tls-sub']));
    await sub.waitForLine((l) => l.includes('received SUBACK'), 5000, 'SUBACK');
    const r = await run('mosquitto_pub', ['-h', H, '-p', String(tlsPort), '--cafile', certs.ca, '-t', 'tls/a', '-m', 'over tls', '-q', '1'], 10_000);
    assert.equal(r.code, 0, r.describe);
    await sub.waitForLine((l) => l === 'over tls', 5000, 'the message');
    const info = seen.find((c) => c.clientId === 'tls-sub');
    assert.equal(info?.listener, 'tls-plain');
    assert.equal(info?.transport, 'tls');
  });

  it('mTLS: mosquitto_pub with --cert/--key of the CA publishes; one from an unrelated CA, a revoked one (CRL) and none are refused in the handshake', T, async () => {
    const sub = procs.track(new LineProcess('stdbuf', ['-oL', 'mosquitto_sub', '-h', H, '-p', String(mtlsPort), '--cafile', certs.ca, '--cert', certs.clientCert, '--key', certs.clientKey, '-t', 'mtls/a', '-C', '1', '-W', '10', '-d']));
    await sub.waitForLine((l) => l.includes('received SUBACK'), 5000, 'SUBACK');
    const ok = await run('mosquitto_pub', ['-h', H, '-p', String(mtlsPort), '--cafile', certs.ca, '--cert', certs.clientCert, '--key', certs.clientKey, '-t', 'mtls/a', '-m', 'with a certificate'], 10_000);
    assert.equal(ok.code, 0, ok.describe);
    await sub.waitForLine((l) => l === 'with a certificate', 5000, 'the message');

    const connects = broker.stats.connects;
    const failed = broker.stats.tlsHandshakesFailed;
    for (const [what, extra] of [
      ['unrelated CA', ['--cert', certs.otherClientCert, '--key', certs.otherClientKey]],
      ['revoked', ['--cert', certs.revokedCert, '--key', certs.revokedKey]],
      ['no certificate', []],
    ] as const) {
      const r = await run('mosquitto_pub', ['-h', H, '-p', String(mtlsPort), '--cafile', certs.ca, ...extra, '-t', 'mtls/a', '-m', 'intruder'], 10_000);
      assert.notEqual(r.code, 0, `${what}: mosquitto_pub must fail\n${r.describe}`);
    }
    await waitFor(() => broker.stats.tlsHandshakesFailed - failed >= 3, 3000, 'three failed handshakes counted');
    assert.equal(broker.stats.connects, connects, 'none of them reached CONNECT handling');
  });

  it('a plaintext CONNECT to the TLS port is refused: mosquitto_pub without TLS fails and no CONNECT is handled', T, async () => {
    const connects = broker.stats.connects;
    const failed = broker.stats.tlsHandshakesFailed;
    const r = await run('mosquitto_pub', ['-h', H, '-p', String(tlsPort), '-t', 'tls/plain', '-m', 'plaintext'], 10_000);
    assert.notEqual(r.code, 0, r.describe);
    await waitFor(() => broker.stats.tlsHandshakesFailed > failed, 3000, 'the failed handshake counted');
    assert.equal(broker.stats.connects, connects);
  });
});

describe('identity from the client certificate (identityAsUsername)', T, () => {
  it("rfc2253Subject and commonName read the test client certificate as 'CN=device-1,O=Petrel Test,C=DE' and 'device-1'", () => {
    const der = new X509Certificate(readFileSync(certs.clientCert)).raw;
    assert.equal(rfc2253Subject(der), 'CN=device-1,O=Petrel Test,C=DE');
    assert.equal(commonName(der), 'device-1');
  });

  for (const mode of ['cn', 'subject'] as const) {
    it(`identityAsUsername '${mode}': the connection's meta carries the certificate's ${mode === 'cn' ? 'CN' : 'RFC 2253 subject'}`, T, async () => {
      const metas: ConnectionMeta[] = [];
      const stats: ListenerStats = { connectionsRefusedMaxConnections: 0, connectionsRefusedRate: 0, proxyHeadersRefused: 0, tlsHandshakesFailed: 0, tlsRenegotiationsRefused: 0, wsUpgradesRefused: 0 };
      const l: ResolvedListener = { transport: 'tls', port: 0, host: H, cert: certs.serverCert, key: certs.serverKey, ca: certs.ca, requireCertificate: true, identityAsUsername: mode };
      const listener = await openListener(l, {
        limits: { connectTimeout: 5, maxPacketSize: 1 << 20, tcpKeepAlive: 0 },
        stats,
        logger: createLogger('silent'),
        closing: false,
        accept: (stream, meta) => {
          metas.push(meta);
          stream.destroy();
        },
      });
      try {
        const s = tls.connect({ port: listener.address.port, host: H, ca: readFileSync(certs.ca), cert: readFileSync(certs.clientCert), key: readFileSync(certs.clientKey), servername: 'localhost' });
        s.on('error', () => {});
        await waitFor(() => metas.length === 1, 5000, 'the connection handed over');
        s.destroy();
        assert.equal(metas[0]!.certificateUsername, mode === 'cn' ? 'device-1' : 'CN=device-1,O=Petrel Test,C=DE');
        assert.equal(metas[0]!.transport, 'tls');
        assert.equal(metas[0]!.remoteIp, '127.0.0.1');
      } finally {
        await listener.close();
      }
    });
  }
});

describe('reload() swaps the TLS certificate without dropping connections', T, () => {
  it('a connection opened before reload stays open and works; one opened after sees the new certificate', T, async () => {
    const c = testCerts();
    const live = { cert: join(c.dir, 'live.crt'), key: join(c.dir, 'live.key') };
    copyFileSync(c.serverCert, live.cert);
    copyFileSync(c.serverKey, live.key);
    const b = await brokerWith([{ transport: 'tls', port: 0, host: H, cert: live.cert, key: live.key }]);
    const url = `mqtts://${H}:${b.addrs[0]!.port}`;
    const clients: Connected[] = [];
    try {
      const old = await connectMqtt(url);
      clients.push(old);
      const oldSerial = (old.client.stream as tls.TLSSocket).getPeerCertificate().serialNumber;
      const fresh = extraServerCert('server-2', 'localhost-2');
      copyFileSync(fresh.cert, live.cert);
      copyFileSync(fresh.key, live.key);
      const result = await b.broker.reload();
      assert.deepEqual(result, { ok: true, errors: [] });
      const next = await connectMqtt(url);
      clients.push(next);
      const newSerial = (next.client.stream as tls.TLSSocket).getPeerCertificate().serialNumber;
      assert.equal(newSerial, new X509Certificate(readFileSync(fresh.cert)).serialNumber.toUpperCase());
      assert.notEqual(newSerial, oldSerial);
      // The old connection is still there and carries messages both ways.
      await old.client.subscribeAsync('reload/#', { qos: 1 });
      await next.client.publishAsync('reload/x', 'after reload', { qos: 1 });
      await old.messages.count('reload/x', 1);
      assert.equal(old.client.connected, true);
      // A broken file: reload reports it and the current certificate stays.
      copyFileSync(c.ca, live.key);
      const bad = await b.broker.reload();
      assert.equal(bad.ok, false);
      assert.equal(bad.errors[0]!.part, 'tls');
      const third = await connectMqtt(url);
      clients.push(third);
      assert.equal((third.client.stream as tls.TLSSocket).getPeerCertificate().serialNumber, newSerial);
    } finally {
      await endAll(...clients.map((x) => x.client));
      await b.broker.close();
    }
  });
});

describe('WebSocket listeners', T, () => {
  it('MQTT.js over ws:// and wss:// (path /mqtt) exchange messages with a TCP client; ClientInfo tells ws and wss', T, async () => {
    const seen: ClientInfo[] = [];
    const b = await brokerWith(
      [
        { port: 0, host: H },
        { transport: 'ws', port: 0, host: H },
        { transport: 'wss', port: 0, host: H, cert: certs.serverCert, key: certs.serverKey },
      ],
      { onConnect: (c: ClientInfo) => seen.push(c) },
    );
    const clients: Connected[] = [];
    try {
      const tcp = await connectMqtt(`mqtt://${H}:${b.addrs[0]!.port}`);
      const ws = await connectMqtt(`ws://${H}:${b.addrs[1]!.port}/mqtt`, { clientId: 'over-ws' });
      const wss = await connectMqtt(`wss://${H}:${b.addrs[2]!.port}/mqtt`, { clientId: 'over-wss' });
      clients.push(tcp, ws, wss);
      await ws.client.subscribeAsync('web/#', { qos: 1 });
      await wss.client.subscribeAsync('web/#', { qos: 1 });
      await tcp.client.publishAsync('web/big', Buffer.alloc(300_000, 7), { qos: 1 });
      await wss.client.publishAsync('web/small', 'hi', { qos: 1 });
      for (const c of [ws, wss]) {
        const big = await c.messages.count('web/big', 1);
        assert.equal(big[0]!.payload.length, 300_000);
        await c.messages.count('web/small', 1);
      }
      assert.equal(seen.find((c) => c.clientId === 'over-ws')?.transport, 'ws');
      assert.equal(seen.find((c) => c.clientId === 'over-wss')?.transport, 'wss');
    } finally {
      await endAll(...clients.map((x) => x.client));
      await b.broker.close();
    }
  });

  it('a page in headless Chromium connects over ws:// (the mqtt browser bundle), publishes and receives', { timeout: 60_000 }, async () => {
    const { chromium } = await import('playwright-core');
    const b = await brokerWith([{ port: 0, host: H }, { transport: 'ws', port: 0, host: H }]);
    const wsPort = b.addrs[1]!.port;
    const bundle = readFileSync(join(process.cwd(), 'node_modules/mqtt/dist/mqtt.min.js'));
    const page = `<!doctype html><script src="/mqtt.min.js"></script><script>
      window.result = { received: [], error: null };
      const c = mqtt.connect('ws://127.0.0.1:${wsPort}/mqtt', { clientId: 'chromium-page', reconnectPeriod: 0 });
      c.on('error', (e) => { window.result.error = String(e); });
      c.on('message', (t, p) => { window.result.received.push(t + '=' + p.toString()); });
      c.on('connect', () => c.subscribe('browser/#', { qos: 1 }, () => { window.result.subscribed = true; c.publish('browser/from-page', 'hello from chromium', { qos: 1 }); }));
    </script>`;
    const web = http.createServer((req, res) => {
      if (req.url === '/mqtt.min.js') res.end(bundle);
      else res.end(page);
    });
    await new Promise<void>((r) => web.listen(0, H, r));
    const tcp = await connectMqtt(`mqtt://${H}:${b.addrs[0]!.port}`);
    const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
    try {
      await tcp.client.subscribeAsync('browser/from-page', { qos: 1 });
      const p = await browser.newPage();
      await p.goto(`http://${H}:${(web.address() as net.AddressInfo).port}/`);
      await p.waitForFunction(() => (globalThis as unknown as { result: { subscribed?: boolean } }).result.subscribed === true, undefined, { timeout: 10_000 });
      const fromPage = await tcp.messages.count('browser/from-page', 1, 10_000);
      assert.equal(fromPage[0]!.payload.toString(), 'hello from chromium');
      await tcp.client.publishAsync('browser/to-page', 'hello from node', { qos: 1 });
      await p.waitForFunction(() => (globalThis as unknown as { result: { received: string[] } }).result.received.includes('browser/to-page=hello from node'), undefined, { timeout: 10_000 });
      const r = (await p.evaluate(() => (globalThis as unknown as { result: unknown }).result)) as { error: string | null };
      assert.equal(r.error, null);
    } finally {
      await browser.close();
      await endAll(tcp.client);
      web.close();
      await b.broker.close();
    }
  });
});

describe('per-listener limits', T, () => {
  it('maxConnections: the connection above it is closed at accept and counted; others keep working; a freed slot is reused', T, async () => {
    const b = await brokerWith([{ port: 0, host: H, maxConnections: 2 }]);
    const url = `mqtt://${H}:${b.addrs[0]!.port}`;
    const clients: Connected[] = [];
    try {
      clients.push(await connectMqtt(url), await connectMqtt(url));
      await assert.rejects(connectMqtt(url, {}, 1500));
      assert.equal(b.broker.stats.connectionsRefusedMaxConnections, 1);
      await clients[0]!.client.publishAsync('lim/x', 'still here', { qos: 1 });
      await endAll(clients.shift()!.client);
      await sleep(100);
      clients.push(await connectMqtt(url));
    } finally {
      await endAll(...clients.map((x) => x.client));
      await b.broker.close();
    }
  });

  it('connectionRate: a burst above the rate is refused at accept and counted; the bucket refills', T, async () => {
    const b = await brokerWith([{ port: 0, host: H, connectionRate: 3 }]);
    const port = b.addrs[0]!.port;
    try {
      const outcomes = await Promise.all(
        Array.from({ length: 6 }, () =>
          new Promise<boolean>((resolve) => {
            const s = net.connect(port, H);
            s.on('error', () => resolve(false));
            s.on('close', () => resolve(false));
            s.on('connect', () => setTimeout(() => (resolve(!s.destroyed), s.destroy()), 300));
          }),
        ),
      );
      assert.equal(outcomes.filter(Boolean).length, 3, 'a burst of the rate passes');
      assert.equal(b.broker.stats.connectionsRefusedRate, 3);
      await sleep(1100);
      const c = await connectMqtt(`mqtt://${H}:${port}`);
      await endAll(c.client);
    } finally {
      await b.broker.close();
    }
  });
});

describe('listener options are checked at creation', () => {
  const bad: [ListenerOptions, RegExp][] = [
    [{ transport: 'tls', port: 0 }, /listeners\[1\]\.cert.*required/],
    [{ transport: 'tls', port: 0, cert: '/nonexistent.crt', key: certs.serverKey }, /listeners\[1\]\.cert.*cannot read.*ENOENT/],
    [{ transport: 'wss', port: 0, cert: certs.serverCert, key: certs.serverKey, identityAsUsername: 'cn', ca: certs.ca }, /listeners\[1\]\.identityAsUsername.*requireCertificate/],
    [{ transport: 'ws', port: 0, path: 'mqtt' }, /listeners\[1\]\.path.*start with '\/'/],
    [{ port: 0, proxyProtocol: true, trustedProxies: ['10.0.0.0/33'] }, /listeners\[1\]\.trustedProxies\[0\].*prefix/],
    [{ port: 0, proxyProtocol: true, trustedProxies: ['not-an-ip/8'] }, /listeners\[1\]\.trustedProxies\[0\].*not an IPv4 or IPv6/],
    [{ port: 0, cert: certs.serverCert }, /listeners\[1\]\.cert.*TLS option/],
    [{ transport: 'tcp', path: '/mqtt' } as ListenerOptions, /listeners\[1\]\.path.*WebSocket option/],
    [{ transport: 'quic' } as unknown as ListenerOptions, /listeners\[1\]\.transport/],
    [{ port: 0, maxConnections: -1 }, /listeners\[1\]\.maxConnections/],
    [{ port: 0, connectionRate: 0.5 }, /listeners\[1\]\.connectionRate/],
    [{ transport: 'tls', port: 0, cert: certs.serverCert, key: certs.serverKey, requireCertificate: true }, /listeners\[1\]\.requireCertificate.*needs ca/],
  ];
  for (const [l, re] of bad) {
    it(`refuses ${JSON.stringify(l).replaceAll(certs.dir, '…')}`, async () => {
      await assert.rejects(createBroker({ store: { type: 'memory' }, logLevel: 'silent', listeners: [{ port: 0 }, l] }), (err: Error) => {
        assert.match(err.message, re);
        return true;
      });
    });
  }
  it('default ports: tcp 1883, tls 8883, ws 8080, wss 8081 (resolveListener)', async () => {
    const { resolveListener } = await import('../../src/broker/options.js');
    assert.equal(resolveListener({}, 0).port, 1883);
    assert.equal(resolveListener({ transport: 'tls', cert: certs.serverCert, key: certs.serverKey }, 0).port, 8883);
    assert.equal(resolveListener({ transport: 'ws' }, 0).port, 8080);
    assert.equal(resolveListener({ transport: 'wss', cert: certs.serverCert, key: certs.serverKey }, 0).port, 8081);
  });
});
