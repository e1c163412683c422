// PROXY protocol v1 and v2 with raw sockets: the address a header carries is the one hooks see (TCP4, TCP6,
// v2 LOCAL keeps the socket's own); untrusted sources, malformed, oversized and late headers are closed before
// any MQTT; PROXY before a TLS handshake and before a WebSocket upgrade; the CIDR matcher.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { createBroker, type AuthenticateRequest, type BoundAddress, type ClientInfo, type ListenerOptions, type PetrelBroker } from '../../src/index.js';
import { encodePacket } from '../../src/protocol/encoder.js';
import { CidrMatcher } from '../../src/transport/cidr.js';
import { parseProxyHeader, proxyV1, proxyV2, PROXY_V2_SIGNATURE } from '../../src/transport/proxy.js';
import { testCerts } from '../helpers/certs.js';
import { waitFor } from '../helpers/wait.js';

const T = { timeout: 20_000 };
const H = '127.0.0.1';
const CONNECT = (id: string): Buffer => encodePacket({ type: 1, protocolName: 'MQTT', protocolVersion: 4, clean: true, keepAlive: 30, clientId: id }, 4);

/** Send bytes on a fresh socket and wait for CONNACK (resolves its return code) or the close (resolves 'closed'). */
function exchange(port: number, bytes: Buffer[], ms = 4000, wrap?: (s: net.Socket) => net.Socket): Promise<number | 'closed'> {
  return new Promise((resolve, reject) => {
    const raw = net.connect(port, H);
    let s = raw;
    const timer = setTimeout(() => {
      raw.destroy();
      reject(new Error('neither CONNACK nor close'));
    }, ms);
    const send = (): void => {
      for (const b of bytes) s.write(b);
    };
    raw.on('connect', () => {
      if (wrap) {
        for (const b of bytes.slice(0, 1)) raw.write(b);
        s = wrap(raw);
        s.on('secureConnect', () => {
          for (const b of bytes.slice(1)) s.write(b);
        });
      } else send();
      s.on('data', (d: Buffer) => {
        if (d[0] === 0x20) {
          clearTimeout(timer);
          resolve(d[3]!);
          s.destroy();
        }
      });
      s.on('close', () => {
        clearTimeout(timer);
        resolve('closed');
      });
      s.on('error', () => {});
    });
    raw.on('error', () => {});
  });
}

describe('PROXY protocol on a tcp listener', T, () => {
  let broker: PetrelBroker;
  let addrs: BoundAddress[];
  const auth: AuthenticateRequest[] = [];
  const connected: ClientInfo[] = [];
  before(async () => {
    broker = await createBroker({
      store: { type: 'memory' }, logLevel: 'silent', closeTimeout: 1, limits: { connectTimeout: 1 },
      listeners: [
        { port: 0, host: H, proxyProtocol: true, name: 'behind-lb' },
        // 127.0.0.1 is not trusted here.
        { port: 0, host: H, proxyProtocol: true, trustedProxies: ['10.0.0.0/8', '::1/128'], name: 'untrusting' },
      ],
      hooks: {
        authenticate: (r: AuthenticateRequest) => {
          auth.push(r);
          return true;
        },
        onConnect: (c: ClientInfo) => connected.push(c),
      },
    });
    addrs = await broker.listen();
  });
  after(() => broker.close());

  it('v1 TCP4: the authenticate hook and ClientInfo see the address from the header', T, async () => {
    assert.equal(await exchange(addrs[0]!.port, [proxyV1('203.0.113.7', '198.51.100.1', 40001, 1883), CONNECT('p-v1')]), 0);
    assert.equal(auth.find((r) => r.clientId === 'p-v1')?.remoteAddress, '203.0.113.7:40001');
    const c = connected.find((x) => x.clientId === 'p-v1')!;
    assert.equal(c.remoteAddress, '203.0.113.7:40001');
    assert.equal(c.listener, 'behind-lb');
  });

  it('v1 TCP6 and v2 TCP6: the IPv6 client address is seen, in brackets', T, async () => {
    assert.equal(await exchange(addrs[0]!.port, [proxyV1('2001:db8::5', '2001:db8::1', 50000, 1883), CONNECT('p-v1-6')]), 0);
    assert.equal(auth.find((r) => r.clientId === 'p-v1-6')?.remoteAddress, '[2001:db8::5]:50000');
    assert.equal(await exchange(addrs[0]!.port, [proxyV2({ ip: '2001:db8::77', port: 6000 }, { ip: '2001:db8::1', port: 1883 }), CONNECT('p-v2-6')]), 0);
    assert.equal(auth.find((r) => r.clientId === 'p-v2-6')?.remoteAddress, '[2001:db8::77]:6000');
  });

  it('v2 TCP4 with TLVs (skipped), header and CONNECT in one write', T, async () => {
    const tlv = Buffer.from([0x01, 0x00, 0x02, 0x68, 0x32, 0x04, 0x00, 0x01, 0x00]); // ALPN 'h2', NOOP
    const h = proxyV2({ ip: '192.0.2.44', port: 1234 }, { ip: '192.0.2.1', port: 1883 }, tlv);
    assert.equal(await exchange(addrs[0]!.port, [Buffer.concat([h, CONNECT('p-v2-4')])]), 0);
    assert.equal(auth.find((r) => r.clientId === 'p-v2-4')?.remoteAddress, '192.0.2.44:1234');
  });

  it("v2 LOCAL is accepted and the socket's own address stands", T, async () => {
    assert.equal(await exchange(addrs[0]!.port, [proxyV2(null, null), CONNECT('p-local')]), 0);
    assert.match(auth.find((r) => r.clientId === 'p-local')!.remoteAddress, /^127\.0\.0\.1:\d+$/);
  });

  it('a PROXY header from an untrusted source is closed before any MQTT and counted', T, async () => {
    const before = broker.stats.proxyHeadersRefused;
    const connects = broker.stats.connectionsOpened;
    assert.equal(await exchange(addrs[1]!.port, [proxyV1('203.0.113.9', '198.51.100.1', 1, 2), CONNECT('p-untrusted')]), 'closed');
    assert.equal(broker.stats.proxyHeadersRefused, before + 1);
    assert.equal(broker.stats.connectionsOpened, connects, 'never reached the broker');
  });

  it('no header, a malformed v1, an oversized v1, a bad v2 version, an oversized v2 and a late header are closed', T, async () => {
    const big = Buffer.alloc(16);
    PROXY_V2_SIGNATURE.copy(big);
    big[12] = 0x21;
    big[13] = 0x11;
    big.writeUInt16BE(60000, 14);
    const cases: [string, Buffer[]][] = [
      ['MQTT without a header', [CONNECT('p-none')]],
      ['v1 with a bad address', [Buffer.from('PROXY TCP4 300.1.1.1 10.0.0.1 1 2\r\n'), CONNECT('p-bad1')]],
      ['v1 longer than 107 bytes', [Buffer.from(`PROXY TCP4 ${'1'.repeat(120)}`)]],
      ['v2 version 3', [Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x31, 0x11, 0, 12]), Buffer.alloc(12)])]],
      ['v2 claiming 60000 bytes', [big]],
    ];
    for (const [what, bytes] of cases) {
      const n = broker.stats.proxyHeadersRefused;
      assert.equal(await exchange(addrs[0]!.port, bytes), 'closed', what);
      assert.equal(broker.stats.proxyHeadersRefused, n + 1, what);
    }
    const n = broker.stats.proxyHeadersRefused;
    const start = Date.now();
    assert.equal(await exchange(addrs[0]!.port, [Buffer.from('PROXY TCP4 ')], 4000), 'closed', 'a header that never ends');
    assert.ok(Date.now() - start >= 900, 'closed after connectTimeout (1 s)');
    assert.equal(broker.stats.proxyHeadersRefused, n + 1);
    assert.equal(auth.some((r) => r.clientId.startsWith('p-none') || r.clientId === 'p-bad1'), false);
  });
});

describe('PROXY in front of tls and ws', T, () => {
  it('tls: the PROXY header comes before the TLS handshake; the hook sees the carried address', T, async () => {
    const c = testCerts();
    const auth: AuthenticateRequest[] = [];
    const seen: ClientInfo[] = [];
    const l: ListenerOptions[] = [
      { transport: 'tls', port: 0, host: H, cert: c.serverCert, key: c.serverKey, proxyProtocol: true },
      { transport: 'ws', port: 0, host: H, proxyProtocol: true },
    ];
    const broker = await createBroker({
      store: { type: 'memory' }, logLevel: 'silent', closeTimeout: 1, listeners: l,
      hooks: { authenticate: (r: AuthenticateRequest) => (auth.push(r), true), onConnect: (x: ClientInfo) => seen.push(x) },
    });
    const addrs = await broker.listen();
    try {
      const code = await exchange(addrs[0]!.port, [proxyV2({ ip: '198.51.100.23', port: 4444 }, { ip: '10.0.0.1', port: 8883 }), CONNECT('p-tls')], 4000, (raw) =>
        tls.connect({ socket: raw, ca: readFileSync(c.ca), servername: 'localhost' }),
      );
      assert.equal(code, 0);
      assert.equal(auth.find((r) => r.clientId === 'p-tls')?.remoteAddress, '198.51.100.23:4444');
      assert.equal(seen.find((x) => x.clientId === 'p-tls')?.transport, 'tls');

      // ws: the header, then the HTTP upgrade, in one write; then a binary frame with CONNECT.
      const ws = await import('ws');
      const raw = net.connect(addrs[1]!.port, H);
      await new Promise<void>((r) => raw.once('connect', () => r()));
      raw.write(proxyV1('198.51.100.99', '10.0.0.1', 5555, 8080));
      const sock = new ws.WebSocket(`ws://${H}:${addrs[1]!.port}/mqtt`, ['mqtt'], { createConnection: () => raw });
      await new Promise<void>((resolve, reject) => {
        sock.on('open', () => sock.send(CONNECT('p-ws')));
        sock.on('message', (d: Buffer) => (d[0] === 0x20 ? resolve() : reject(new Error('not CONNACK'))));
        sock.on('error', reject);
      });
      sock.close();
      assert.equal(auth.find((r) => r.clientId === 'p-ws')?.remoteAddress, '198.51.100.99:5555');
    } finally {
      await broker.close();
    }
  });
});

describe('parsers', () => {
  it('CidrMatcher: IPv4, IPv6, IPv4-mapped IPv6 and prefixes', () => {
    const m = new CidrMatcher(['10.0.0.0/8', '192.168.1.7', '2001:db8::/32', '::1/128']);
    assert.equal(m.matches('10.200.3.4'), true);
    assert.equal(m.matches('::ffff:10.1.2.3'), true, 'IPv4-mapped IPv6 matches the IPv4 range');
    assert.equal(m.matches('11.0.0.1'), false);
    assert.equal(m.matches('192.168.1.7'), true);
    assert.equal(m.matches('192.168.1.8'), false);
    assert.equal(m.matches('2001:db8:ffff::1'), true);
    assert.equal(m.matches('2001:db9::1'), false);
    assert.equal(m.matches('::1'), true);
    assert.equal(m.matches('127.0.0.1'), false);
    assert.equal(new CidrMatcher(['127.0.0.1/8']).matches('127.9.9.9'), true);
    assert.equal(new CidrMatcher(['::/0']).matches('8.8.8.8'), true);
    assert.equal(new CidrMatcher(['10.0.0.0/9']).matches('10.128.0.1'), false);
  });

  it('parseProxyHeader: a header in pieces is waited for; a wrong first byte is refused at once', () => {
    const h = proxyV1('1.2.3.4', '5.6.7.8', 1, 2);
    assert.deepEqual(parseProxyHeader(h.subarray(0, 10)), { done: false });
    const r = parseProxyHeader(Buffer.concat([h, Buffer.from([0x10])]));
    assert.ok('done' in r && r.done && r.length === h.length && r.result.source?.ip === '1.2.3.4');
    assert.ok('error' in parseProxyHeader(Buffer.from([0x10])));
    assert.ok('error' in parseProxyHeader(Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n')));
    const u = parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n'));
    assert.ok('done' in u && u.done && u.result.source === null);
  });
});

