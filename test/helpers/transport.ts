// The transports the integration suites run over: PETREL_TEST_TRANSPORT = tcp (default), tls, ws, wss or proxy
// (a PROXY-protocol listener behind a small front proxy, as a load balancer would stand in front of it). The
// helpers (startBroker, connectMqtt, RawClient, the clients' command lines) read it, so a suite written for
// TCP runs unchanged over each. test/run.mjs --transports reruns the matrix suites per transport.

import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { createWebSocketStream, WebSocket } from 'ws';
import type { ListenerOptions } from '../../src/index.js';
import { proxyV1, proxyV2 } from '../../src/transport/proxy.js';
import { testCerts } from './certs.js';

export type TestTransport = 'tcp' | 'tls' | 'ws' | 'wss' | 'proxy';
export const TEST_TRANSPORTS: readonly TestTransport[] = ['tcp', 'tls', 'ws', 'wss', 'proxy'];

function fromEnv(): TestTransport {
  const t = process.env.PETREL_TEST_TRANSPORT ?? 'tcp';
  if (!(TEST_TRANSPORTS as readonly string[]).includes(t)) throw new Error(`PETREL_TEST_TRANSPORT=${t}: must be one of ${TEST_TRANSPORTS.join(', ')}`);
  return t as TestTransport;
}

/** The transport of this test process. */
export const TEST_TRANSPORT: TestTransport = fromEnv();

/** The broker listener for a test transport (port 0 on 127.0.0.1). */
export function listenerFor(t: TestTransport = TEST_TRANSPORT): ListenerOptions {
  const base = { port: 0, host: '127.0.0.1' };
  switch (t) {
    case 'tcp':
      return base;
    case 'proxy':
      return { ...base, proxyProtocol: true, trustedProxies: ['127.0.0.1/32'] };
    case 'ws':
      return { ...base, transport: 'ws' };
    case 'tls':
    case 'wss': {
      const c = testCerts();
      return { ...base, transport: t, cert: c.serverCert, key: c.serverKey };
    }
  }
}

/** URL scheme and path for MQTT.js. */
export function urlFor(t: TestTransport, port: number, host = '127.0.0.1'): string {
  switch (t) {
    case 'tcp':
    case 'proxy':
      return `mqtt://${host}:${port}`;
    case 'tls':
      return `mqtts://${host}:${port}`;
    case 'ws':
      return `ws://${host}:${port}/mqtt`;
    case 'wss':
      return `wss://${host}:${port}/mqtt`;
  }
}

/** The test CA's PEM (what TLS clients trust). */
export function testCa(): Buffer {
  return readFileSync(testCerts().ca);
}

/**
 * Open a byte stream to a broker over a transport: a TCP socket, a TLS socket (trusting the test CA), or a
 * WebSocket (subprotocol mqtt) as a Duplex. Resolves once it can carry MQTT.
 */
export function openStream(t: TestTransport, port: number, host = '127.0.0.1', ms = 3000): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    let stream: Duplex;
    const timer = setTimeout(() => {
      stream?.destroy();
      reject(new Error(`timed out after ${ms} ms connecting over ${t} to ${host}:${port}`));
    }, ms);
    const ok = (s: Duplex): void => {
      clearTimeout(timer);
      s.off('error', bad);
      resolve(s);
    };
    const bad = (err: Error): void => {
      clearTimeout(timer);
      reject(err);
    };
    if (t === 'tcp' || t === 'proxy') {
      const s = net.connect({ port, host, noDelay: true });
      stream = s;
      s.once('connect', () => ok(s));
      s.once('error', bad);
    } else if (t === 'tls') {
      const s = tls.connect({ port, host, ca: testCa(), servername: 'localhost' });
      stream = s;
      s.once('secureConnect', () => ok(s));
      s.once('error', bad);
    } else {
      const ws = new WebSocket(urlFor(t, port, host), ['mqtt'], t === 'wss' ? { ca: testCa() } : {});
      const s = createWebSocketStream(ws);
      stream = s;
      ws.once('open', () => ok(s));
      s.once('error', bad);
    }
  });
}

/** A front for a transport the client cannot speak itself: it accepts TCP and relays to the broker. */
export interface Front {
  port: number;
  close(): Promise<void>;
}

/**
 * A TCP front on 127.0.0.1: each connection is relayed to the broker, preceded by a PROXY header carrying the
 * client's address (t 'proxy': v1 and v2 in turn, as a load balancer sends them), or over a WebSocket (t 'ws'/
 * 'wss', for clients without WebSocket support such as mosquitto_pub 2.0), or over TLS ('tls').
 */
export async function startFront(t: TestTransport, brokerPort: number): Promise<Front> {
  let n = 0;
  const open = new Set<Duplex>();
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
    open.add(client);
    client.once('close', () => open.delete(client));
    client.on('error', () => client.destroy());
    client.pause();
    const relay = (up: Duplex): void => {
      open.add(up);
      up.once('close', () => open.delete(up));
      up.on('error', () => up.destroy());
      client.on('error', () => up.destroy());
      up.on('close', () => client.destroy());
      client.on('close', () => up.destroy());
      client.pipe(up);
      up.pipe(client);
      client.resume();
    };
    if (t === 'proxy') {
      const up = net.connect({ port: brokerPort, host: '127.0.0.1', noDelay: true, allowHalfOpen: true }, () => {
        const src = { ip: client.remoteAddress!.replace(/^::ffff:/, ''), port: client.remotePort! };
        const dst = { ip: '127.0.0.1', port: brokerPort };
        up.write(n++ % 2 === 0 ? proxyV2(src, dst) : proxyV1(src.ip, dst.ip, src.port, dst.port));
        relay(up);
      });
      up.on('error', () => client.destroy());
    } else {
      openStream(t, brokerPort).then(relay, () => client.destroy());
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Where a command-line client (mosquitto_pub/sub) connects for the test transport, and its TLS flags. */
export interface ClientTarget {
  /** -h, -p and, for TLS, --cafile. */
  args: string[];
  close(): Promise<void>;
}

/**
 * mosquitto_pub/sub 2.0 speak TCP and TLS but not WebSocket: over ws/wss they connect to a TCP front that relays
 * their bytes over a WebSocket (the broker sees a WebSocket client); over tls they use --cafile.
 */
export async function clientTarget(tb: { port: number; transport: TestTransport }): Promise<ClientTarget> {
  if (tb.transport === 'ws' || tb.transport === 'wss') {
    const front = await startFront(tb.transport, tb.port);
    return { args: ['-h', '127.0.0.1', '-p', String(front.port)], close: () => front.close() };
  }
  const args = ['-h', '127.0.0.1', '-p', String(tb.port)];
  if (tb.transport === 'tls') args.push('--cafile', testCerts().ca);
  return { args, close: async () => {} };
}
