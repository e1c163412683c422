// The broker's HTTP listener (BrokerOptions.http): /metrics (Prometheus text, or OpenMetrics when Accept asks
// for application/openmetrics-text), /livez, /readyz and /healthz (an alias of /readyz). Loopback by default.
// The bearer token or basic auth applies to /metrics; the health probes are always open (a kubelet or a load
// balancer has no credentials, and they say nothing but "up" / "ready").
//
// Routes live in a table (exact paths, and prefixes for whole subtrees): the admin API (/api/v1/..., admin/)
// adds itself with addRoute() / addPrefix() when http.adminToken is set.

import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Broker } from '../broker/broker.js';
import type { HttpOptions } from '../broker/options.js';
import { buildRegistry, startEventLoopSampler, type MetricsRegistry } from './metrics.js';

export interface HttpAddress {
  host: string;
  port: number;
}

/** Who may call a route: anyone, or a caller with the configured token / basic credentials. */
export type RouteAccess = 'open' | 'protected';

export type RouteHandler = (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => void | Promise<void>;

export interface Route {
  methods: readonly string[];
  access: RouteAccess;
  handler: RouteHandler;
}

export interface HttpListener {
  readonly address: HttpAddress;
  /** An exact path. */
  addRoute(path: string, route: Route): void;
  /** Every path under a prefix ('/api/v1/'), tried after the exact paths, longest prefix first. */
  addPrefix(prefix: string, route: Route): void;
  /** Open HTTP connections (the admin API's listener list). */
  readonly connections: number;
  /** Run at close(), before the server closes (the admin API stops its timer). */
  onClose(fn: () => void): void;
  close(): Promise<void>;
}

/** Seconds a client is told to wait (Retry-After) when the broker is not ready. */
const RETRY_AFTER = 5;

/** The broker is ready: its store is open, its MQTT listeners are bound, and it is not shutting down. */
export function readiness(broker: Broker): { ready: boolean; checks: Record<string, boolean> } {
  const checks = { store: broker.startedAt > 0, listeners: broker.boundListeners > 0, not_draining: !broker.closing };
  return { ready: checks.store && checks.listeners && checks.not_draining, checks };
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Compare in constant time (of the digests), so that a wrong token does not leak its length or prefix. */
function same(a: string, b: Buffer): boolean {
  return timingSafeEqual(digest(a), b);
}

export async function startHttp(broker: Broker, options: HttpOptions & { host: string }, metricsOn: boolean): Promise<HttpListener> {
  const exact = new Map<string, Route>();
  const prefixes: [string, Route][] = [];
  const token = options.token !== undefined ? digest(options.token) : null;
  const basic = options.basicAuth !== undefined ? digest(`${options.basicAuth.username}:${options.basicAuth.password}`) : null;

  const authorized = (req: http.IncomingMessage): boolean => {
    if (token === null && basic === null) return true;
    const h = req.headers.authorization ?? '';
    const space = h.indexOf(' ');
    const scheme = space < 0 ? h.toLowerCase() : h.slice(0, space).toLowerCase();
    const value = space < 0 ? '' : h.slice(space + 1).trim();
    if (scheme === 'bearer' && token !== null) return same(value, token);
    if (scheme === 'basic' && basic !== null) return same(Buffer.from(value, 'base64').toString('utf8'), basic);
    return false;
  };

  const send = (res: http.ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void => {
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...headers });
    res.end(body);
  };

  const probe = (verboseName: string): RouteHandler => (_req, res, url) => {
    const r = readiness(broker);
    const verbose = url.searchParams.has('verbose');
    const body = verbose
      ? `${Object.entries(r.checks).map(([k, ok]) => `[${ok ? '+' : '-'}]${k} ${ok ? 'ok' : 'failed'}`).join('\n')}\n${verboseName} check ${r.ready ? 'passed' : 'failed'}\n`
      : r.ready ? 'ok\n' : 'not ready\n';
    if (r.ready) send(res, 200, body);
    else send(res, 503, body, { 'retry-after': String(RETRY_AFTER) });
  };

  exact.set('/livez', {
    methods: ['GET', 'HEAD'],
    access: 'open',
    // Alive while the process answers: a broker that is draining is still alive (it must not be killed early).
    handler: (_req, res, url) => send(res, 200, url.searchParams.has('verbose') ? '[+]ping ok\nlivez check passed\n' : 'ok\n'),
  });
  exact.set('/readyz', { methods: ['GET', 'HEAD'], access: 'open', handler: probe('readyz') });
  exact.set('/healthz', { methods: ['GET', 'HEAD'], access: 'open', handler: probe('healthz') });

  let stopSampler: (() => void) | null = null;
  if (metricsOn) {
    const formats: { text: MetricsRegistry | null; open: MetricsRegistry | null } = { text: null, open: null };
    if (broker.obs.timing) stopSampler = startEventLoopSampler(broker.obs.eventLoop);
    formats.text = buildRegistry(broker, false);
    exact.set('/metrics', {
      methods: ['GET', 'HEAD'],
      access: 'protected',
      handler: async (req, res) => {
        const open = (req.headers.accept ?? '').includes('application/openmetrics-text');
        const m = open ? (formats.open ??= buildRegistry(broker, true)) : formats.text!;
        m.refresh();
        const body = await m.registry.metrics();
        send(res, 200, body, { 'content-type': m.registry.contentType });
      },
    });
  }

  const server = http.createServer((req, res) => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      send(res, 400, 'bad request\n');
      return;
    }
    const route = exact.get(url.pathname) ?? prefixes.find(([p]) => url.pathname.startsWith(p))?.[1];
    if (route === undefined) {
      send(res, 404, 'not found\n');
      return;
    }
    if (!route.methods.includes(req.method ?? 'GET')) {
      send(res, 405, 'method not allowed\n', { allow: route.methods.join(', ') });
      return;
    }
    if (route.access === 'protected' && !authorized(req)) {
      const challenge = basic !== null ? 'Basic realm="petrel", charset="UTF-8"' : 'Bearer realm="petrel"';
      send(res, 401, 'unauthorized\n', { 'www-authenticate': challenge });
      return;
    }
    Promise.resolve()
      .then(() => route.handler(req, res, url))
      .catch((err: unknown) => {
        broker.logger.error('HTTP request failed', { event: 'http.error', path: url.pathname, err });
        if (!res.headersSent) send(res, 500, 'internal error\n');
        else res.destroy();
      });
  });
  server.keepAliveTimeout = 5000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: options.host, port: options.port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => broker.logger.error('HTTP listener error', { event: 'http.error', err }));
  let connections = 0;
  server.on('connection', (socket) => {
    connections++;
    socket.once('close', () => connections--);
  });
  const closing: (() => void)[] = [];
  const a = server.address() as AddressInfo;
  return {
    address: { host: a.address, port: a.port },
    addRoute(path: string, route: Route): void {
      exact.set(path, route);
    },
    addPrefix(prefix: string, route: Route): void {
      prefixes.push([prefix, route]);
      prefixes.sort((x, y) => y[0].length - x[0].length);
    },
    get connections(): number {
      return connections;
    },
    onClose(fn: () => void): void {
      closing.push(fn);
    },
    close(): Promise<void> {
      stopSampler?.();
      for (const fn of closing.splice(0)) fn();
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
