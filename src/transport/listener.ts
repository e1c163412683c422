// One listener: a TCP server and the stages a new socket goes through before
// the broker sees it: the listener's limits (maxConnections, connectionRate),
// the PROXY header (from trusted sources only), the TLS handshake, the
// WebSocket upgrade. Each stage must be done within connectTimeout; what fails
// a stage is closed and counted, and never reaches CONNECT handling.

import type net from 'node:net';
import http from 'node:http';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import type { ResolvedListener, Transport } from './listener-options.js';
import type { ConnectionMeta } from './connection.js';
import { CidrMatcher } from './cidr.js';
import { TokenBucket } from './token-bucket.js';
import { readProxyHeader, type ProxyResult } from './proxy.js';
import { listenTcp, type BoundAddress, type TcpListener } from './tcp.js';
import { certificateIdentity, createTlsServer } from './tls.js';
import { createWsUpgrade, WS_PAYLOAD_SLACK, type WebSocketDuplex } from './ws.js';

export const DEFAULT_TRUSTED_PROXIES = ['127.0.0.1/8', '::1/128'];
export const DEFAULT_WS_PATH = '/mqtt';
export const DEFAULT_PORTS: Record<Transport, number> = { tcp: 1883, tls: 8883, ws: 8080, wss: 8081 };

/** Counters a listener keeps (the broker's stats object has them). */
export interface ListenerStats {
  connectionsRefusedMaxConnections: number;
  connectionsRefusedRate: number;
  proxyHeadersRefused: number;
  tlsHandshakesFailed: number;
  tlsRenegotiationsRefused: number;
  wsUpgradesRefused: number;
}

export interface ListenerHost {
  readonly limits: { readonly connectTimeout: number; readonly maxPacketSize: number; readonly tcpKeepAlive: number };
  readonly stats: ListenerStats;
  readonly logger: { debug(msg: string, fields?: Record<string, unknown>): void; info(msg: string, fields?: Record<string, unknown>): void };
  readonly closing: boolean;
  /** Hand a connection that passed every stage to the broker. */
  accept(stream: Duplex, meta: ConnectionMeta, remoteAddress: string): void;
}

export interface Listener {
  readonly address: BoundAddress;
  /** Connections open on this listener (from accept, whatever stage they are in). */
  readonly openConnections: number;
  /** Re-read the certificate files (tls, wss). Throws, keeping the old ones, if they cannot be read. */
  reload(): void;
  /** Stop accepting; resolves once every connection accepted here has closed. */
  close(): Promise<void>;
}

/** 'a.b.c.d:port' or '[v6]:port', without the IPv4-mapped prefix. */
export function formatAddress(ip: string, port: number | undefined): string {
  const a = plainIp(ip);
  if (a === '') return 'unknown';
  return a.includes(':') ? `[${a}]:${port ?? 0}` : `${a}:${port ?? 0}`;
}

function plainIp(ip: string | undefined): string {
  if (ip === undefined) return '';
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}


/** What is known of a connection between accept and the broker. */
interface Pending {
  raw: net.Socket;
  timer: NodeJS.Timeout | null;
  stage: 'proxy' | 'tls' | 'ws';
  ip: string;
  port: number | undefined;
  /** Handed to the broker, or refused and counted. */
  settled: boolean;
  certificateUsername?: string;
}

export async function openListener(l: ResolvedListener, host: ListenerHost): Promise<Listener> {
  const transport = l.transport;
  const secure = transport === 'tls' || transport === 'wss';
  const web = transport === 'ws' || transport === 'wss';
  const timeoutMs = host.limits.connectTimeout * 1000;
  const maxConnections = l.maxConnections ?? 0;
  const bucket = l.connectionRate ? new TokenBucket(l.connectionRate, l.connectionRate, Date.now()) : null;
  const trusted = l.proxyProtocol ? new CidrMatcher(l.trustedProxies ?? DEFAULT_TRUSTED_PROXIES) : null;
  const identity = l.identityAsUsername && l.identityAsUsername !== 'none' ? l.identityAsUsername : null;
  let name = l.name ?? '';
  let open = 0;
  /** Connections still in a stage (PROXY, TLS, upgrade): closed with the listener, not left to their timer. */
  const staging = new Set<Pending>();

  const fail = (p: Pending, counter: keyof ListenerStats, why: string): void => {
    if (p.timer) clearTimeout(p.timer);
    p.timer = null;
    if (!p.settled) host.stats[counter]++;
    p.settled = true;
    host.logger.debug('connection refused by the listener', { event: 'listener.refused', listener: name, remoteAddress: formatAddress(p.ip, p.port), reason: why });
    p.raw.destroy();
  };

  const handOver = (p: Pending, stream: Duplex): void => {
    if (p.timer) clearTimeout(p.timer);
    p.timer = null;
    p.settled = true;
    staging.delete(p);
    if (host.closing) {
      stream.destroy();
      return;
    }
    const meta: ConnectionMeta = { listener: name, transport, remoteIp: p.ip };
    if (p.certificateUsername !== undefined) meta.certificateUsername = p.certificateUsername;
    host.accept(stream, meta, formatAddress(p.ip, p.port));
  };

  // ---- TLS (tls, wss) ----
  let tlsServer: tls.Server | null = null;
  let tlsReload: (() => void) | null = null;
  // The TLS sockets the server makes are found again by their peer address (unique among open connections).
  const tlsPending = new Map<string, Pending>();
  const peerKey = (s: net.Socket): string => `${s.remoteAddress}|${s.remotePort}`;
  if (secure) {
    const t = createTlsServer(l, timeoutMs);
    tlsServer = t.server;
    tlsReload = t.reload;
    tlsServer.on('tlsClientError', (err: Error & { code?: string }, socket: tls.TLSSocket) => {
      const p = tlsPending.get(peerKey(socket));
      if (p) fail(p, 'tlsHandshakesFailed', `TLS handshake: ${err.code ?? err.message}`);
      socket.destroy();
    });
    tlsServer.on('secureConnection', (ts: tls.TLSSocket) => {
      const p = tlsPending.get(peerKey(ts));
      if (p === undefined) {
        ts.destroy();
        return;
      }
      // No renegotiation: an attempt is an error that closes the connection.
      ts.disableRenegotiation();
      ts.on('error', (err: Error & { code?: string }) => {
        // Node reports the attempt and would go on: the connection is closed.
        if (err.code === 'ERR_TLS_RENEGOTIATION_DISABLED') {
          host.stats.tlsRenegotiationsRefused++;
          host.logger.info('TLS renegotiation refused; closing', { event: 'listener.tls_renegotiation_refused', listener: name, remoteAddress: formatAddress(p.ip, p.port) });
          ts.destroy();
        }
      });
      if (identity !== null) {
        const u = certificateIdentity(ts, identity);
        if (u === null) {
          fail(p, 'tlsHandshakesFailed', `the client certificate has no ${identity === 'cn' ? 'Common Name' : 'subject'}`);
          ts.destroy();
          return;
        }
        p.certificateUsername = u;
      }
      if (web) toHttp(p, ts);
      else handOver(p, ts);
    });
  }

  // ---- WebSocket (ws, wss) ----
  let httpServer: http.Server | null = null;
  const httpPending = new WeakMap<Duplex, Pending>();
  if (web) {
    const upgrade = createWsUpgrade({
      path: l.path ?? DEFAULT_WS_PATH,
      allowedOrigins: l.allowedOrigins,
      perMessageDeflate: l.perMessageDeflate === true,
      maxPayload: host.limits.maxPacketSize + WS_PAYLOAD_SLACK,
    });
    httpServer = http.createServer({ maxHeaderSize: 8192 });
    // Node's own HTTP timeouts are checked at long intervals; the listener's timer (connectTimeout) bounds the upgrade.
    httpServer.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      const p = httpPending.get(socket);
      if (p === undefined) {
        socket.destroy();
        return;
      }
      upgrade(req, socket, head, (stream: WebSocketDuplex) => handOver(p, stream), (why) => {
        if (p.timer) clearTimeout(p.timer);
        p.timer = null;
        if (!p.settled) host.stats.wsUpgradesRefused++;
        p.settled = true;
        host.logger.debug('WebSocket upgrade refused', { event: 'listener.refused', listener: name, remoteAddress: formatAddress(p.ip, p.port), reason: why });
      });
    });
    httpServer.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      const p = httpPending.get(req.socket);
      if (p) {
        if (p.timer) clearTimeout(p.timer);
        p.timer = null;
        if (!p.settled) host.stats.wsUpgradesRefused++;
        p.settled = true;
      }
      const path = (req.url ?? '').split('?')[0];
      res.writeHead(path === (l.path ?? DEFAULT_WS_PATH) ? 426 : 404, { Connection: 'close', 'Content-Type': 'text/plain' });
      res.end(path === (l.path ?? DEFAULT_WS_PATH) ? 'WebSocket upgrade required' : 'Not Found');
      req.socket.destroySoon?.();
    });
    httpServer.on('clientError', (_err: Error, socket: Duplex) => {
      const p = httpPending.get(socket);
      if (p) fail(p, 'wsUpgradesRefused', 'bad HTTP request');
      else socket.destroy();
    });
  }
  const toHttp = (p: Pending, stream: Duplex): void => {
    p.stage = 'ws';
    httpPending.set(stream, p);
    httpServer!.emit('connection', stream);
  };

  /** After the PROXY header (if any): the transport's own stage. */
  const next = (p: Pending): void => {
    if (secure) {
      p.stage = 'tls';
      const key = peerKey(p.raw);
      tlsPending.set(key, p);
      p.raw.once('close', () => tlsPending.delete(key));
      tlsServer!.emit('connection', p.raw);
    } else if (web) {
      toHttp(p, p.raw);
      p.raw.resume();
    } else {
      handOver(p, p.raw);
      p.raw.resume();
    }
  };

  const onSocket = (raw: net.Socket): void => {
    if (host.closing) {
      raw.destroy();
      return;
    }
    if (maxConnections > 0 && open >= maxConnections) {
      host.stats.connectionsRefusedMaxConnections++;
      raw.destroy();
      return;
    }
    if (bucket !== null && !bucket.tryTake(Date.now())) {
      host.stats.connectionsRefusedRate++;
      raw.destroy();
      return;
    }
    open++;
    const p: Pending = { raw, timer: null, stage: 'proxy', ip: plainIp(raw.remoteAddress), port: raw.remotePort, settled: false };
    raw.once('close', () => {
      open--;
      staging.delete(p);
      if (p.timer) clearTimeout(p.timer);
      p.timer = null;
      // A TLS socket closed before it was handed over failed its handshake: with TLS 1.3 a client certificate that
      // does not verify (another CA, revoked) is refused after the handshake messages, without a tlsClientError.
      if (!p.settled && p.stage === 'tls') host.stats.tlsHandshakesFailed++;
      p.settled = true;
    });
    if (trusted === null && !secure && !web) {
      handOver(p, raw);
      return;
    }
    staging.add(p);
    p.timer = setTimeout(() => {
      p.timer = null;
      const counter = p.stage === 'proxy' ? 'proxyHeadersRefused' : p.stage === 'tls' ? 'tlsHandshakesFailed' : 'wsUpgradesRefused';
      fail(p, counter, `no ${p.stage === 'proxy' ? 'PROXY header' : p.stage === 'tls' ? 'TLS handshake' : 'WebSocket upgrade'} within connectTimeout`);
    }, timeoutMs);
    p.timer.unref();
    if (trusted !== null) {
      if (!trusted.matches(raw.remoteAddress)) {
        fail(p, 'proxyHeadersRefused', 'PROXY header from an untrusted source');
        return;
      }
      readProxyHeader(raw, (err: string | null, result?: ProxyResult) => {
        if (err !== null) {
          fail(p, 'proxyHeadersRefused', err);
          return;
        }
        if (result!.source !== null) {
          p.ip = plainIp(result!.source.ip);
          p.port = result!.source.port;
        }
        next(p);
      });
      return;
    }
    next(p);
  };

  const tcp: TcpListener = await listenTcp(l.host, l.port, onSocket, host.limits.tcpKeepAlive * 1000, transport, l.name);
  if (name === '') name = `${transport}:${tcp.address.port}`;
  (tcp.address as { name: string }).name = name;

  return {
    address: tcp.address,
    get openConnections() {
      return open;
    },
    reload: () => tlsReload?.(),
    close: () => {
      const closed = tcp.close();
      for (const p of [...staging]) p.raw.destroy();
      return closed;
    },
  };
}
