// Hostile input at the transport level, each test named for what it proves; after each, healthy clients on the
// same broker (TCP and WebSocket) still exchange messages. The broker has connectTimeout 1 s and
// maxPacketSize 64 KiB, so the WebSocket maxPayload is 64 KiB + 4 KiB.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { WebSocket } from 'ws';
import { createBroker, type BoundAddress, type PetrelBroker } from '../../src/index.js';
import { encodePacket } from '../../src/protocol/encoder.js';
import { proxyV1 } from '../../src/transport/proxy.js';
import { testCerts } from '../helpers/certs.js';
import { connectMqtt, endAll, uniqueId, type Connected } from '../helpers/mqttjs.js';
import { sleep, waitFor } from '../helpers/wait.js';

const T = { timeout: 30_000 };
const H = '127.0.0.1';
const MiB = 1024 * 1024;
const CONNECT = (id: string): Buffer => encodePacket({ type: 1, protocolName: 'MQTT', protocolVersion: 4, clean: true, keepAlive: 30, clientId: id }, 4);
const PUBLISH = (topic: string, payload: Buffer): Buffer => encodePacket({ type: 3, qos: 0, dup: false, retain: false, topic, packetId: 0, payload }, 4);

/** A client frame (masked, as RFC 6455 requires of clients). */
function frame(opcode: number, payload: Buffer, fin = true, declaredLength?: number): Buffer {
  const len = declaredLength ?? payload.length;
  const head: number[] = [(fin ? 0x80 : 0) | opcode];
  if (len < 126) head.push(0x80 | len);
  else if (len < 65536) head.push(0x80 | 126, len >> 8, len & 0xff);
  else {
    head.push(0x80 | 127);
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(len));
    head.push(...b);
  }
  const mask = crypto.randomBytes(4);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i]! ^= mask[i & 3]!;
  return Buffer.concat([Buffer.from(head), mask, body]);
}

/** A raw socket after a successful WebSocket upgrade (subprotocol mqtt); resolves with the bytes after the 101 head. */
function rawUpgrade(port: number): Promise<{ socket: net.Socket; closed: Promise<void>; received: Buffer[] }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, H);
    const received: Buffer[] = [];
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    let head = Buffer.alloc(0);
    let upgraded = false;
    socket.on('error', () => {});
    socket.on('connect', () =>
      socket.write(`GET /mqtt HTTP/1.1\r\nHost: ${H}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n`),
    );
    socket.on('data', (d: Buffer) => {
      if (upgraded) {
        received.push(d);
        return;
      }
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      if (!head.toString('latin1', 0, 12).includes('101')) {
        reject(new Error(`upgrade refused: ${head.toString('latin1', 0, end)}`));
        return;
      }
      upgraded = true;
      if (head.length > end + 4) received.push(head.subarray(end + 4));
      resolve({ socket, closed, received });
    });
  });
}

/** Status line of the response to an upgrade (or 101). */
function upgradeStatus(url: string, protocols: string[], headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { headers });
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.on('open', () => {
      resolve(101);
      ws.close();
    });
    ws.on('error', (err) => {
      if (!/Unexpected server response/.test(err.message)) reject(err);
    });
  });
}

describe('hostile input at the transports', T, () => {
  let broker: PetrelBroker;
  let a: Record<string, BoundAddress>;
  let tcpHealthy: Connected;
  let wsHealthy: Connected;
  before(async () => {
    const c = testCerts();
    broker = await createBroker({
      store: { type: 'memory' }, logLevel: 'silent', closeTimeout: 1,
      limits: { connectTimeout: 1, maxPacketSize: 64 * 1024 },
      listeners: [
        { port: 0, host: H, name: 'tcp' },
        { transport: 'ws', port: 0, host: H, name: 'ws', allowedOrigins: ['https://good.example'] },
        { transport: 'ws', port: 0, host: H, name: 'deflate', perMessageDeflate: true },
        { transport: 'tls', port: 0, host: H, name: 'tls', cert: c.serverCert, key: c.serverKey },
        { port: 0, host: H, name: 'proxy', proxyProtocol: true, trustedProxies: ['10.0.0.0/8'] },
      ],
    });
    const list = await broker.listen();
    a = Object.fromEntries(list.map((x) => [x.name, x]));
    tcpHealthy = await connectMqtt(`mqtt://${H}:${a.tcp!.port}`, { clientId: 'healthy-tcp' });
    wsHealthy = await connectMqtt(`ws://${H}:${a.ws!.port}/mqtt`, { clientId: 'healthy-ws' });
    await tcpHealthy.client.subscribeAsync('healthy/#', { qos: 1 });
    await wsHealthy.client.subscribeAsync('healthy/#', { qos: 1 });
  });
  after(async () => {
    await endAll(tcpHealthy?.client, wsHealthy?.client);
    await broker.close();
  });

  let round = 0;
  /** The healthy clients still exchange messages both ways. */
  async function healthy(): Promise<void> {
    const n = ++round;
    await tcpHealthy.client.publishAsync(`healthy/tcp/${n}`, 'from tcp', { qos: 1 });
    await wsHealthy.client.publishAsync(`healthy/ws/${n}`, 'from ws', { qos: 1 });
    await wsHealthy.messages.count(`healthy/tcp/${n}`, 1);
    await tcpHealthy.messages.count(`healthy/ws/${n}`, 1);
  }

  it('a WebSocket frame announcing 100 MiB is refused by maxPayload: the connection closes and memory does not grow by 100 MiB', T, async () => {
    const { socket, closed } = await rawUpgrade(a.ws!.port);
    const rss = process.memoryUsage().rss;
    socket.write(frame(2, Buffer.alloc(0), true, 100 * MiB));
    const chunk = Buffer.alloc(MiB);
    let sent = 0;
    let isClosed = false;
    void closed.then(() => (isClosed = true));
    while (!isClosed && sent < 100 * MiB) {
      const ok = await new Promise<boolean>((r) => socket.write(chunk, (err) => r(!err)));
      if (!ok) break;
      sent += MiB;
    }
    await Promise.race([closed, sleep(5000)]);
    assert.equal(isClosed || socket.destroyed, true, 'closed');
    assert.ok(sent < 100 * MiB, `closed before the 100 MiB were sent (sent ${sent / MiB} MiB)`);
    assert.ok(process.memoryUsage().rss - rss < 50 * MiB, `RSS grew by ${((process.memoryUsage().rss - rss) / MiB).toFixed(1)} MiB`);
    await healthy();
  });

  it('a text frame closes the connection (1003) before its CONNECT is handled [MQTT-6.0.0-1]', T, async () => {
    const connects = broker.stats.connects;
    const ws = new WebSocket(`ws://${H}:${a.ws!.port}/mqtt`, ['mqtt']);
    const code = await new Promise<number>((resolve, reject) => {
      ws.on('open', () => ws.send(CONNECT('text-frame').toString('latin1')));
      ws.on('close', (c) => resolve(c));
      ws.on('error', reject);
    });
    assert.equal(code, 1003);
    assert.equal(broker.stats.connects, connects);
    await healthy();
  });

  it('one PUBLISH split over 1,000 frames (continuation frames of one message) is delivered [MQTT-6.0.0-2]', T, async () => {
    const { socket } = await rawUpgrade(a.ws!.port);
    socket.write(frame(2, CONNECT(uniqueId('split'))));
    const payload = crypto.randomBytes(5000);
    const pkt = PUBLISH('healthy/split', payload);
    const step = Math.ceil(pkt.length / 1000);
    const parts: Buffer[] = [];
    for (let i = 0; i < 1000; i++) parts.push(pkt.subarray(Math.min(i * step, pkt.length), Math.min((i + 1) * step, pkt.length)));
    parts.forEach((p, i) => socket.write(frame(i === 0 ? 2 : 0, p, i === 999)));
    const got = await tcpHealthy.messages.count('healthy/split', 1);
    assert.deepEqual(got[0]!.payload, payload);
    socket.destroy();
    await healthy();
  });

  it('one PUBLISH split over 1,000 WebSocket messages, and several packets in one message, are delivered [MQTT-6.0.0-2]', T, async () => {
    const ws = new WebSocket(`ws://${H}:${a.ws!.port}/mqtt`, ['mqtt']);
    await new Promise<void>((r, j) => (ws.on('open', () => r()), ws.on('error', j)));
    const payload = crypto.randomBytes(3000);
    const pkt = PUBLISH('healthy/messages', payload);
    ws.send(Buffer.concat([CONNECT(uniqueId('msgs')), pkt.subarray(0, 1)]));
    const rest = pkt.subarray(1);
    const step = Math.ceil(rest.length / 999);
    for (let i = 0; i < 999; i++) ws.send(rest.subarray(i * step, Math.min((i + 1) * step, rest.length)));
    ws.send(Buffer.concat([PUBLISH('healthy/messages', Buffer.from('two')), PUBLISH('healthy/messages', Buffer.from('three'))]));
    const got = await tcpHealthy.messages.count('healthy/messages', 3);
    assert.deepEqual(got[0]!.payload, payload);
    assert.deepEqual(got.slice(1).map((m) => m.payload.toString()), ['two', 'three']);
    ws.close();
    await healthy();
  });

  it('a permessage-deflate bomb (10 MiB of zeros, a few KiB compressed) is refused with 1009; a normal deflated client works', T, async () => {
    const rss = process.memoryUsage().rss;
    const bomb = new WebSocket(`ws://${H}:${a.deflate!.port}/mqtt`, ['mqtt'], { perMessageDeflate: true });
    const code = await new Promise<number>((resolve, reject) => {
      bomb.on('open', () => {
        assert.match(String(bomb.extensions), /permessage-deflate/);
        bomb.send(Buffer.alloc(10 * MiB), { compress: true });
      });
      bomb.on('close', (c) => resolve(c));
      bomb.on('error', (e) => (/Unexpected/.test(e.message) ? reject(e) : undefined));
    });
    assert.equal(code, 1009, 'Message Too Big');
    assert.ok(process.memoryUsage().rss - rss < 60 * MiB, 'the inflated bytes were not kept');
    const ok = await connectMqtt(`ws://${H}:${a.deflate!.port}/mqtt`, { wsOptions: { perMessageDeflate: true } });
    await ok.client.publishAsync('healthy/deflated', Buffer.alloc(20_000, 1), { qos: 1 });
    assert.equal((await tcpHealthy.messages.count('healthy/deflated', 1))[0]!.payload.length, 20_000);
    await endAll(ok.client);
    await healthy();
  });

  it('a PROXY header from an untrusted source (127.0.0.1 not in trustedProxies) is closed without reaching the broker', T, async () => {
    const opened = broker.stats.connectionsOpened;
    const refused = broker.stats.proxyHeadersRefused;
    const s = net.connect(a.proxy!.port, H);
    s.on('error', () => {});
    s.on('connect', () => s.write(Buffer.concat([proxyV1('10.1.2.3', '10.0.0.1', 1111, 1883), CONNECT('spoofed')])));
    await new Promise<void>((r) => s.once('close', () => r()));
    assert.equal(broker.stats.proxyHeadersRefused, refused + 1);
    assert.equal(broker.stats.connectionsOpened, opened);
    await healthy();
  });

  it('a TLS renegotiation attempt closes the connection and is counted', T, async () => {
    const c = testCerts();
    const s = tls.connect({ port: a.tls!.port, host: H, ca: readFileSync(c.ca), servername: 'localhost', maxVersion: 'TLSv1.2' });
    s.on('error', () => {});
    await new Promise<void>((r) => s.once('secureConnect', () => r()));
    s.write(CONNECT(uniqueId('reneg')));
    await new Promise<void>((r) => s.once('data', () => r()));
    const before = broker.stats.tlsRenegotiationsRefused;
    const closed = new Promise<void>((r) => s.once('close', () => r()));
    s.renegotiate({}, () => {});
    await Promise.race([closed, sleep(5000)]);
    assert.equal(s.destroyed, true, 'closed');
    await waitFor(() => broker.stats.tlsRenegotiationsRefused === before + 1, 2000, 'the attempt counted');
    await healthy();
  });

  it('a plaintext CONNECT to the TLS port gets no CONNACK: the handshake fails and the socket closes', T, async () => {
    const connects = broker.stats.connects;
    const failed = broker.stats.tlsHandshakesFailed;
    const s = net.connect(a.tls!.port, H);
    const data: Buffer[] = [];
    s.on('error', () => {});
    s.on('data', (d) => data.push(d));
    s.on('connect', () => s.write(CONNECT('plaintext')));
    await new Promise<void>((r) => s.once('close', () => r()));
    assert.equal(data.some((d) => d[0] === 0x20), false, 'no CONNACK');
    assert.equal(broker.stats.connects, connects);
    await waitFor(() => broker.stats.tlsHandshakesFailed > failed, 2000, 'counted');
    await healthy();
  });

  it('a slowloris on the WebSocket upgrade (headers one byte per 150 ms) is closed after connectTimeout (1 s)', T, async () => {
    const refused = broker.stats.wsUpgradesRefused;
    const s = net.connect(a.ws!.port, H);
    s.on('error', () => {});
    await new Promise<void>((r) => s.once('connect', () => r()));
    const start = Date.now();
    let closedAt = 0;
    s.once('close', () => (closedAt = Date.now()));
    const req = `GET /mqtt HTTP/1.1\r\nHost: ${H}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: mqtt\r\n`;
    for (let i = 0; i < req.length && closedAt === 0 && Date.now() - start < 5000; i++) {
      s.write(req[i]!);
      await sleep(150);
    }
    assert.notEqual(closedAt, 0, 'closed before the headers were done');
    assert.ok(closedAt - start >= 900 && closedAt - start < 3000, `closed after ${closedAt - start} ms`);
    assert.equal(broker.stats.wsUpgradesRefused, refused + 1);
    await healthy();
  });

  it('a wrong subprotocol (and none) is refused at the upgrade with 400; mqtt and mqttv3.1 are accepted [MQTT-6.0.0-3]', T, async () => {
    const url = `ws://${H}:${a.ws!.port}/mqtt`;
    assert.equal(await upgradeStatus(url, ['wamp']), 400);
    assert.equal(await upgradeStatus(url, []), 400);
    assert.equal(await upgradeStatus(url, ['mqtt']), 101);
    assert.equal(await upgradeStatus(url, ['mqttv3.1']), 101);
    await healthy();
  });

  it('a wrong path gets 404', T, async () => {
    assert.equal(await upgradeStatus(`ws://${H}:${a.ws!.port}/other`, ['mqtt']), 404);
    assert.equal(await upgradeStatus(`ws://${H}:${a.ws!.port}/mqtt/x`, ['mqtt']), 404);
    await healthy();
  });

  it('an Origin not in allowedOrigins gets 403; the allowed one upgrades', T, async () => {
    const url = `ws://${H}:${a.ws!.port}/mqtt`;
    assert.equal(await upgradeStatus(url, ['mqtt'], { Origin: 'https://evil.example' }), 403);
    assert.equal(await upgradeStatus(url, ['mqtt'], { Origin: 'https://good.example' }), 101);
    await healthy();
  });
});
