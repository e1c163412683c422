// Broker options: one struct of limits with documented defaults (the
// capabilities idea from mochi-mqtt), validated at creation with errors that
// name the key and the reason.

import { accessSync, constants as fsConstants } from 'node:fs';
import type { Store } from '../store/types.js';
import { resolveClusterOptions, type ClusterOptions, type ResolvedClusterOptions } from '../cluster/options.js';
import { parseCidr } from '../transport/cidr.js';
import type { AuthMethod, Hooks } from './hooks.js';
import { validateHooks } from './hooks.js';
import { optionError } from './errors.js';
import type { LogFormat, Logger, LogLevel, PinoLike } from './logger.js';
import { adaptLogger, LOG_FORMATS, LOG_LEVELS } from './logger.js';
import { defaultMemoryLimit } from './memory-guard.js';
import { resolveAuthOptions, type ResolvedAuth } from '../auth/auth.js';

export type { ListenerOptions, ResolvedListener, Transport } from '../transport/listener-options.js';
import type { ListenerOptions, ResolvedListener, Transport } from '../transport/listener-options.js';

/** The password and ACL files (Mosquitto's formats) and the failed-login guard. */
export interface AuthOptions {
  /** Mosquitto password file ($6$ and $7$ entries, as mosquitto_passwd writes them). */
  passwordFile?: string;
  /** Mosquitto ACL file. */
  aclFile?: string;
  /** Accept clients without a user name. Default: false when passwordFile is set, else true. */
  allowAnonymous?: boolean;
  /** Password hashes computed at once (off the event loop); more wait in a queue. Default 2. */
  maxConcurrentHashes?: number;
  /** CONNECTs waiting for a hash at most; beyond it CONNACK 0x89 Server busy (3.1.1: 3). Default 1000. */
  maxPendingHashes?: number;
  /**
   * After maxFailures failed logins from one address within windowSeconds (defaults 5 and 60), refuse its
   * CONNECTs for banSeconds (default 300) with CONNACK 0x8A Banned (3.1.1: 5); at most maxTracked addresses
   * (default 100,000) are remembered. false = off. Default: on with a password file, else off.
   */
  loginGuard?: { maxFailures?: number; windowSeconds?: number; banSeconds?: number; maxTracked?: number } | boolean;
}

export type StoreOption =
  | { type: 'memory' }
  | { type: 'sqlite'; dataDir: string; durability?: 'process' | 'power' }
  | Store;

export interface Limits {
  /** Largest packet accepted, in bytes (sent as Maximum Packet Size in v5 CONNACK). Default 1 MiB. */
  maxPacketSize: number;
  /** Receive Maximum announced to v5 clients: inbound QoS 1/2 PUBLISHes unacknowledged at once. Default 1024. */
  receiveMaximum: number;
  /** Upper bound of outbound QoS 1/2 messages in flight per session (v5 clients may lower it with their Receive Maximum). Default 1000. */
  maxInflight: number;
  /** Topic Alias Maximum announced to v5 clients (inbound aliases). 0 disables. Default 64. */
  topicAliasMaximum: number;
  /**
   * Largest keep alive accepted, seconds; 0 = no limit. Default 0. A larger (or zero) request gets Server Keep
   * Alive in v5; a 3.1/3.1.1 client asking for more (or for 0) is refused with return code 2, as in Mosquitto.
   */
  maxKeepAlive: number;
  /** TCP keepalive on accepted sockets: seconds of silence before the first probe; 0 = off. Default 60. */
  tcpKeepAlive: number;
  /** Maximum QoS accepted from and granted to clients. Default 2. */
  maxQoS: 0 | 1 | 2;
  /** Whether retained messages are supported. Default true. */
  retainAvailable: boolean;
  wildcardSubscriptions: boolean;
  subscriptionIdentifiers: boolean;
  sharedSubscriptions: boolean;
  /** Cap on Session Expiry Interval, seconds. Default 0xFFFFFFFF (no cap). */
  maxSessionExpiry: number;
  /** Session expiry for 3.1/3.1.1 clients with clean session 0, seconds. Default 0xFFFFFFFF (never). */
  persistentSessionExpiry: number;
  /** Per session: queued + in-flight QoS 1/2 messages at most; beyond it new messages for the session are dropped and counted. Default 100,000. */
  maxQueuedMessages: number;
  /** Per session: payload bytes queued at most. Default 256 MiB. */
  maxQueuedBytes: number;
  /** Per connection: bytes waiting in the socket before QoS 0 messages are dropped (and counted) and QoS 1/2 wait in the session queue. Default 1 MiB. */
  maxWriteBuffer: number;
  /** Seconds a new connection has to send CONNECT. Default 10. */
  connectTimeout: number;
  /** Longest client identifier accepted. Default 65535. */
  maxClientIdLength: number;
  /** Largest number of subscriptions one session may hold. Default 10,000. */
  maxSubscriptionsPerSession: number;
  /** Whether 3.1.1 clients may connect with an empty client id and clean session 1 (the broker assigns one). Default true. */
  allowZeroLengthClientId: boolean;
  /** Queue QoS 0 messages for offline persistent sessions (as QoS 0). Default false, like Mosquitto. */
  queueQos0: boolean;
  /**
   * Per session: bytes of messages held in memory (in flight and queued in the heap, each entry counted as its
   * payload plus a fixed overhead). For a session the store does not keep (clean session) this bounds its whole
   * queue; a stored session keeps the rest in the store. At least one message always fits. Default 4 MiB.
   */
  maxSessionHeapBytes: number;
  /** @deprecated No effect: publishers are no longer held back by subscribers. Accepted so that old configurations load. */
  maxPublisherHoldMs: number;
  /**
   * Most levels in a topic name or filter ('a/b/c' has 3; a shared filter counts its topic filter part). Deeper ones are
   * refused: PUBACK/PUBREC 0x90, SUBACK 0x8F (3.1.1: 0x80), CONNACK 0x90 for a will topic. Default 200
   * (Mosquitto 2.0.11 accepts 201 levels and answers deeper ones with DISCONNECT 0x82; VerneMQ's default is 10).
   */
  maxTopicLevels: number;
  /** Bytes the topic-match cache may hold (topic strings, result references, a fixed overhead per entry). 0 disables it. Default 16 MiB. */
  maxMatchCacheBytes: number;
  /**
   * Memory watermark, bytes of the process's resident set (RSS); 0 = off. Above it (or above 85% of V8's heap
   * limit) new CONNECTs are refused (CONNACK 0x89 Server busy; 3.1/3.1.1: return code 3) and connections whose
   * session holds nothing in memory are not read, until RSS is below 90% of it (memory-guard.ts). Default: half
   * of the machine's memory (or of the cgroup limit), at most 8 GiB.
   */
  memoryLimit: number;
  /** Connections open at once, all listeners together; 0 = no limit. Beyond it a new socket is closed at once (counted). Default 0. */
  maxConnections: number;
  /** New connections per second from one IP address (a token bucket, burst = the rate); 0 = no limit. Default 0. */
  connectionRatePerAddress: number;
  /** Inbound PUBLISH packets per second per client (a token bucket, burst = one second's worth); 0 = no limit. Default 0. */
  maxPublishRate: number;
  /** Inbound PUBLISH payload bytes per second per client (a token bucket, burst = one second's worth); 0 = no limit. Default 0. */
  maxPublishBytesRate: number;
  /**
   * What a client over maxPublishRate / maxPublishBytesRate gets: false (default) pauses reading its socket until
   * it is within its rate again (TCP pushes back on the sender); true disconnects it (v5: DISCONNECT 0x96 Message
   * rate too high; 3.1/3.1.1: the connection is closed).
   */
  rateLimitDisconnect: boolean;
  /** Longest topic name or filter in bytes (UTF-8); longer ones are refused like too-deep ones (see maxTopicLevels). Default 65535. */
  maxTopicLength: number;
}

export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxPacketSize: 1024 * 1024,
  receiveMaximum: 1024,
  maxInflight: 1000,
  topicAliasMaximum: 64,
  maxKeepAlive: 0,
  tcpKeepAlive: 60,
  maxQoS: 2,
  retainAvailable: true,
  wildcardSubscriptions: true,
  subscriptionIdentifiers: true,
  sharedSubscriptions: true,
  maxSessionExpiry: 0xffffffff,
  persistentSessionExpiry: 0xffffffff,
  maxQueuedMessages: 100_000,
  maxQueuedBytes: 256 * 1024 * 1024,
  maxWriteBuffer: 1024 * 1024,
  connectTimeout: 10,
  maxClientIdLength: 65535,
  maxSubscriptionsPerSession: 10_000,
  allowZeroLengthClientId: true,
  queueQos0: false,
  maxSessionHeapBytes: 4 * 1024 * 1024,
  maxPublisherHoldMs: 2000,
  maxTopicLevels: 200,
  maxMatchCacheBytes: 16 * 1024 * 1024,
  memoryLimit: defaultMemoryLimit(),
  maxConnections: 0,
  connectionRatePerAddress: 0,
  maxPublishRate: 0,
  maxPublishBytesRate: 0,
  rateLimitDisconnect: false,
  maxTopicLength: 65535,
});

export interface BrokerOptions {
  /** TCP listeners opened by listen(). Default [{ port: 1883 }]. */
  listeners?: ListenerOptions[];
  /** Where sessions, queues and retained messages live. Default { type: 'sqlite', dataDir: './data' }. */
  store?: StoreOption;
  limits?: Partial<Limits>;
  hooks?: Hooks;
  /** Enhanced authentication methods by name (MQTT 5.0 section 4.12). */
  authMethods?: Record<string, AuthMethod>;
  /** Password and ACL files, anonymous access, failed-login protection. */
  auth?: AuthOptions;
  /** Response Information sent to v5 clients that ask for it (Request Response Information 1). */
  responseInformation?: string;
  /** Seconds granted to close(): after it, remaining connections are destroyed. Default 5. */
  closeTimeout?: number;
  /**
   * Cluster mode: this broker is one node of several sharing one Redis (sessions, queues and retained messages
   * live there; `store` is not used). See README "Cluster".
   */
  cluster?: ClusterOptions;
  /** silent, error, warn, info (default: connections, listeners, lifecycle) or debug. */
  logLevel?: LogLevel;
  /** 'json' (pino lines) or 'pretty' (human lines); default: pretty when stderr is a terminal, else json. */
  logFormat?: LogFormat;
  /** A logger of your own instead (logLevel and logFormat are then unused); a pino instance works as it is. */
  logger?: Logger | PinoLike;
  /** HTTP listener for /metrics and the health probes (src/observability). Default: none. */
  http?: HttpOptions;
  /** Prometheus metrics and latency histograms on the HTTP listener. Default true (nothing is timed without `http`). */
  metrics?: boolean;
  /** Seconds between $SYS updates (Mosquitto's sys_interval); 0 = no $SYS tree. Default 10. */
  sysInterval?: number;
}

/** The HTTP listener: /metrics (with the auth below), /livez, /readyz, /healthz (always open). */
export interface HttpOptions {
  /** Port; 0 picks a free one. */
  port: number;
  /** Address to bind. Default '127.0.0.1' (loopback). */
  host?: string;
  /** Bearer token /metrics requires (Authorization: Bearer <token>). */
  token?: string;
  /** User name and password /metrics requires (Authorization: Basic). With token too, either is accepted. */
  basicAuth?: { username: string; password: string };
  /**
   * Bearer token of the admin API (/api/v1, README "Admin API"); without one the admin API is off (404).
   * Non-empty, no white space.
   */
  adminToken?: string;
}

/** The range of each integer limit (resolveLimits checks it; the config schema states it). */
export const INT_LIMITS: Record<string, [min: number, max: number]> = {
  maxPacketSize: [16, 268_435_460],
  receiveMaximum: [1, 65535],
  maxInflight: [1, 65535],
  topicAliasMaximum: [0, 65535],
  maxKeepAlive: [0, 65535],
  tcpKeepAlive: [0, 32767],
  maxQoS: [0, 2],
  maxSessionExpiry: [0, 0xffffffff],
  persistentSessionExpiry: [0, 0xffffffff],
  maxQueuedMessages: [0, Number.MAX_SAFE_INTEGER],
  maxQueuedBytes: [0, Number.MAX_SAFE_INTEGER],
  maxWriteBuffer: [1024, Number.MAX_SAFE_INTEGER],
  connectTimeout: [1, 3600],
  maxClientIdLength: [1, 65535],
  maxSubscriptionsPerSession: [1, Number.MAX_SAFE_INTEGER],
  maxSessionHeapBytes: [1024, Number.MAX_SAFE_INTEGER],
  maxPublisherHoldMs: [1, 0x7fffffff],
  // A topic of 65,535 bytes has at most 65,536 levels.
  maxTopicLevels: [1, 65536],
  maxMatchCacheBytes: [0, Number.MAX_SAFE_INTEGER],
  memoryLimit: [0, Number.MAX_SAFE_INTEGER],
  maxConnections: [0, Number.MAX_SAFE_INTEGER],
  connectionRatePerAddress: [0, 1_000_000],
  maxPublishRate: [0, Number.MAX_SAFE_INTEGER],
  maxPublishBytesRate: [0, Number.MAX_SAFE_INTEGER],
  maxTopicLength: [1, 65535],
};
const BOOL_LIMITS = new Set([
  'retainAvailable',
  'wildcardSubscriptions',
  'subscriptionIdentifiers',
  'sharedSubscriptions',
  'allowZeroLengthClientId',
  'queueQos0',
  'rateLimitDisconnect',
]);

export function resolveLimits(partial: unknown): Limits {
  const limits: Limits = { ...DEFAULT_LIMITS };
  if (partial === undefined) return limits;
  if (partial === null || typeof partial !== 'object') throw optionError('limits', 'must be an object');
  for (const [key, value] of Object.entries(partial)) {
    if (value === undefined) continue;
    const range = INT_LIMITS[key];
    if (range) {
      if (typeof value !== 'number' || !Number.isInteger(value) || value < range[0] || value > range[1]) {
        throw optionError(`limits.${key}`, `must be an integer from ${range[0]} to ${range[1]}, got ${JSON.stringify(value)}`);
      }
    } else if (BOOL_LIMITS.has(key)) {
      if (typeof value !== 'boolean') throw optionError(`limits.${key}`, `must be true or false, got ${JSON.stringify(value)}`);
    } else {
      throw optionError(`limits.${key}`, `unknown limit; known limits are ${Object.keys(DEFAULT_LIMITS).join(', ')}`);
    }
    (limits as unknown as Record<string, unknown>)[key] = value;
  }
  return limits;
}

const TRANSPORTS: readonly Transport[] = ['tcp', 'tls', 'ws', 'wss'];
const DEFAULT_PORT: Record<Transport, number> = { tcp: 1883, tls: 8883, ws: 8080, wss: 8081 };
const LISTENER_KEYS: Record<string, 'all' | 'tls' | 'ws'> = {
  transport: 'all', port: 'all', host: 'all', name: 'all',
  cert: 'tls', key: 'tls', passphrase: 'tls', ca: 'tls', minVersion: 'tls', ciphers: 'tls', sni: 'tls',
  requireCertificate: 'tls', crl: 'tls', identityAsUsername: 'tls',
  path: 'ws', allowedOrigins: 'ws', perMessageDeflate: 'ws',
  proxyProtocol: 'all', trustedProxies: 'all', maxConnections: 'all', connectionRate: 'all',
};

function readableFile(key: string, file: unknown): void {
  if (typeof file !== 'string' || file === '') throw optionError(key, 'must be a file path');
  try {
    accessSync(file, fsConstants.R_OK);
  } catch (err) {
    throw optionError(key, `cannot read ${JSON.stringify(file)}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

/** Check one listener's options (each error names listeners[i].key and why) and settle its defaults. */
export function resolveListener(l: ListenerOptions, i: number): ResolvedListener {
  const k = (key: string): string => `listeners[${i}].${key}`;
  if (l === null || typeof l !== 'object' || Array.isArray(l)) throw optionError(`listeners[${i}]`, 'must be an object');
  const transport = l.transport ?? 'tcp';
  if (!TRANSPORTS.includes(transport)) {
    throw optionError(k('transport'), `must be one of ${TRANSPORTS.join(', ')}, got ${JSON.stringify(l.transport)}`);
  }
  const secure = transport === 'tls' || transport === 'wss';
  const web = transport === 'ws' || transport === 'wss';
  for (const [key, value] of Object.entries(l)) {
    if (value === undefined) continue;
    const scope = LISTENER_KEYS[key];
    if (scope === undefined) throw optionError(k(key), `unknown listener option; known options are ${Object.keys(LISTENER_KEYS).join(', ')}`);
    if (scope === 'tls' && !secure) throw optionError(k(key), `is a TLS option: it needs transport 'tls' or 'wss', not '${transport}'`);
    if (scope === 'ws' && !web) throw optionError(k(key), `is a WebSocket option: it needs transport 'ws' or 'wss', not '${transport}'`);
  }
  const port = l.port ?? DEFAULT_PORT[transport];
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw optionError(k('port'), `must be an integer from 0 to 65535, got ${JSON.stringify(l.port)}`);
  }
  if (l.host !== undefined && (typeof l.host !== 'string' || l.host === '')) throw optionError(k('host'), 'must be a non-empty string');
  if (l.name !== undefined && (typeof l.name !== 'string' || l.name === '')) throw optionError(k('name'), 'must be a non-empty string');
  if (secure) {
    if (l.cert === undefined) throw optionError(k('cert'), `is required for transport '${transport}' (a PEM certificate chain file)`);
    if (l.key === undefined) throw optionError(k('key'), `is required for transport '${transport}' (a PEM private key file)`);
    readableFile(k('cert'), l.cert);
    readableFile(k('key'), l.key);
    if (l.ca !== undefined) readableFile(k('ca'), l.ca);
    if (l.crl !== undefined) readableFile(k('crl'), l.crl);
    if (l.passphrase !== undefined && typeof l.passphrase !== 'string') throw optionError(k('passphrase'), 'must be a string');
    if (l.ciphers !== undefined && (typeof l.ciphers !== 'string' || l.ciphers === '')) throw optionError(k('ciphers'), 'must be a non-empty OpenSSL cipher list');
    if (l.minVersion !== undefined && l.minVersion !== 'TLSv1.2' && l.minVersion !== 'TLSv1.3') {
      throw optionError(k('minVersion'), `must be 'TLSv1.2' or 'TLSv1.3', got ${JSON.stringify(l.minVersion)}`);
    }
    if (l.sni !== undefined) {
      if (l.sni === null || typeof l.sni !== 'object' || Array.isArray(l.sni)) throw optionError(k('sni'), 'must be an object of { cert, key } by server name');
      for (const [name, c] of Object.entries(l.sni)) {
        if (c === null || typeof c !== 'object') throw optionError(k(`sni.${name}`), 'must be { cert, key, passphrase? }');
        readableFile(k(`sni.${name}.cert`), c.cert);
        readableFile(k(`sni.${name}.key`), c.key);
        if (c.passphrase !== undefined && typeof c.passphrase !== 'string') throw optionError(k(`sni.${name}.passphrase`), 'must be a string');
      }
    }
    if (l.requireCertificate !== undefined && typeof l.requireCertificate !== 'boolean') throw optionError(k('requireCertificate'), 'must be true or false');
    if (l.requireCertificate === true && l.ca === undefined) {
      throw optionError(k('requireCertificate'), 'needs ca: the CA file client certificates are checked against');
    }
    if (l.crl !== undefined && l.requireCertificate !== true) throw optionError(k('crl'), 'needs requireCertificate: without client certificates there is nothing to revoke');
    const id = l.identityAsUsername;
    if (id !== undefined && id !== 'none' && id !== 'cn' && id !== 'subject') {
      throw optionError(k('identityAsUsername'), `must be 'none', 'cn' or 'subject', got ${JSON.stringify(id)}`);
    }
    if (id !== undefined && id !== 'none' && l.requireCertificate !== true) {
      throw optionError(k('identityAsUsername'), 'needs requireCertificate: the user name comes from a verified client certificate');
    }
  }
  if (web) {
    if (l.path !== undefined && (typeof l.path !== 'string' || !l.path.startsWith('/') || /[?#\s]/.test(l.path))) {
      throw optionError(k('path'), `must start with '/' and hold no '?', '#' or spaces, got ${JSON.stringify(l.path)}`);
    }
    if (l.allowedOrigins !== undefined && (!Array.isArray(l.allowedOrigins) || l.allowedOrigins.some((o) => typeof o !== 'string' || o === ''))) {
      throw optionError(k('allowedOrigins'), "must be an array of Origin values such as 'https://app.example'");
    }
    if (l.perMessageDeflate !== undefined && typeof l.perMessageDeflate !== 'boolean') throw optionError(k('perMessageDeflate'), 'must be true or false');
  }
  if (l.proxyProtocol !== undefined && typeof l.proxyProtocol !== 'boolean') throw optionError(k('proxyProtocol'), 'must be true or false');
  if (l.trustedProxies !== undefined) {
    if (l.proxyProtocol !== true) throw optionError(k('trustedProxies'), 'needs proxyProtocol: true');
    if (!Array.isArray(l.trustedProxies)) throw optionError(k('trustedProxies'), "must be an array of CIDRs such as '10.0.0.0/8'");
    l.trustedProxies.forEach((c, j) => {
      try {
        parseCidr(c);
      } catch (err) {
        throw optionError(k(`trustedProxies[${j}]`), (err as Error).message);
      }
    });
  }
  for (const key of ['maxConnections', 'connectionRate'] as const) {
    const v = l[key];
    const bad = typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (key === 'maxConnections' ? !Number.isInteger(v) : v > 0 && v < 1);
    if (v !== undefined && bad) {
      const what = key === 'maxConnections' ? 'an integer >= 0' : 'a number of connections per second, 0 (no limit) or at least 1';
      throw optionError(k(key), `must be ${what}, got ${JSON.stringify(v)}`);
    }
  }
  return { ...l, transport, port, host: l.host ?? '' };
}


export interface ResolvedOptions {
  listeners: ResolvedListener[];
  /** options.auth with its defaults (src/auth/auth.ts resolveAuthOptions). */
  auth: ResolvedAuth;
  store: StoreOption;
  limits: Limits;
  hooks: Hooks;
  authMethods: Record<string, AuthMethod>;
  responseInformation: string | undefined;
  closeTimeout: number;
  logLevel: LogLevel;
  logFormat: LogFormat | undefined;
  logger: Logger | undefined;
  http: (HttpOptions & { host: string }) | undefined;
  metrics: boolean;
  sysInterval: number;
  cluster: ResolvedClusterOptions | undefined;
}

const OPTION_KEYS = new Set([
  'listeners', 'store', 'limits', 'hooks', 'authMethods', 'auth', 'responseInformation', 'closeTimeout', 'logLevel', 'logFormat', 'logger',
  'http', 'metrics', 'sysInterval', 'cluster',
]);

function resolveCluster(c: ClusterOptions | undefined): ResolvedClusterOptions | undefined {
  if (c === undefined) return undefined;
  try {
    return resolveClusterOptions(c);
  } catch (err) {
    const m = /^(cluster(?:\.\w+)?): (.*)$/s.exec((err as Error).message);
    throw optionError(m ? m[1]! : 'cluster', m ? m[2]! : (err as Error).message);
  }
}

export function resolveOptions(options: BrokerOptions = {}): ResolvedOptions {
  if (options === null || typeof options !== 'object') throw optionError('options', 'must be an object');
  for (const key of Object.keys(options)) {
    if (!OPTION_KEYS.has(key)) throw optionError(key, `unknown option; known options are ${[...OPTION_KEYS].join(', ')}`);
  }
  if (options.listeners !== undefined && !Array.isArray(options.listeners)) throw optionError('listeners', 'must be an array');
  const listeners = (options.listeners ?? [{ port: 1883 }]).map((l, i) => resolveListener(l, i));
  const store = options.store ?? { type: 'sqlite', dataDir: './data' };
  if (typeof store !== 'object' || store === null) throw optionError('store', "must be { type: 'memory' }, { type: 'sqlite', dataDir } or a Store");
  if ('type' in store) {
    if (store.type === 'sqlite') {
      if (typeof store.dataDir !== 'string' || store.dataDir === '') throw optionError('store.dataDir', 'must be a non-empty path');
      if (store.durability !== undefined && store.durability !== 'process' && store.durability !== 'power') {
        throw optionError('store.durability', `must be 'process' or 'power', got ${JSON.stringify(store.durability)}`);
      }
    } else if (store.type !== 'memory') {
      throw optionError('store.type', `must be 'memory' or 'sqlite', got ${JSON.stringify((store as { type: unknown }).type)}`);
    }
  } else if (typeof (store as Store).open !== 'function' || typeof (store as Store).commit !== 'function') {
    throw optionError('store', 'a custom store must implement the Store interface');
  }
  const authMethods = options.authMethods ?? {};
  for (const [name, fn] of Object.entries(authMethods)) {
    if (typeof fn !== 'function') throw optionError(`authMethods.${name}`, 'must be a function');
  }
  const closeTimeout = options.closeTimeout ?? 5;
  if (typeof closeTimeout !== 'number' || !(closeTimeout >= 0)) throw optionError('closeTimeout', 'must be a number of seconds >= 0');
  const logLevel = options.logLevel ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) throw optionError('logLevel', `must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(logLevel)}`);
  if (options.logFormat !== undefined && !LOG_FORMATS.includes(options.logFormat)) {
    throw optionError('logFormat', `must be one of ${LOG_FORMATS.join(', ')}, got ${JSON.stringify(options.logFormat)}`);
  }
  const logger = options.logger;
  if (logger !== undefined && (logger === null || typeof logger !== 'object' || typeof (logger as Logger).info !== 'function')) {
    throw optionError('logger', 'must have error, warn, info and debug methods');
  }
  if (options.responseInformation !== undefined && typeof options.responseInformation !== 'string') {
    throw optionError('responseInformation', 'must be a string');
  }
  if (options.responseInformation !== undefined && Buffer.byteLength(options.responseInformation, 'utf8') > 65535) {
    // It goes into CONNACK as a UTF-8 string: the encoder would refuse it for every client that asks.
    throw optionError('responseInformation', 'must be at most 65535 bytes of UTF-8');
  }
  return {
    listeners,
    store,
    limits: resolveLimits(options.limits),
    hooks: validateHooks(options.hooks),
    authMethods,
    auth: resolveAuthOptions(options.auth),
    responseInformation: options.responseInformation,
    closeTimeout,
    logLevel,
    logFormat: options.logFormat,
    logger: logger === undefined ? undefined : adaptLogger(logger),
    ...resolveObservability(options),
    cluster: resolveCluster(options.cluster),
  };
}

/** The http, metrics and sysInterval options (src/observability). */
function resolveObservability(options: BrokerOptions): Pick<ResolvedOptions, 'http' | 'metrics' | 'sysInterval'> {
  const metrics = options.metrics ?? true;
  if (typeof metrics !== 'boolean') throw optionError('metrics', `must be true or false, got ${JSON.stringify(metrics)}`);
  const sysInterval = options.sysInterval ?? 10;
  if (typeof sysInterval !== 'number' || !Number.isInteger(sysInterval) || sysInterval < 0 || sysInterval > 86400) {
    throw optionError('sysInterval', `must be an integer number of seconds from 0 (off) to 86400, got ${JSON.stringify(sysInterval)}`);
  }
  const h = options.http;
  if (h === undefined) return { http: undefined, metrics, sysInterval };
  if (h === null || typeof h !== 'object') throw optionError('http', 'must be an object { port, host?, token?, basicAuth?, adminToken? }');
  for (const key of Object.keys(h)) {
    if (!['port', 'host', 'token', 'basicAuth', 'adminToken'].includes(key)) throw optionError(`http.${key}`, 'unknown option; known options are port, host, token, basicAuth, adminToken');
  }
  if (!Number.isInteger(h.port) || h.port < 0 || h.port > 65535) {
    throw optionError('http.port', `must be an integer from 0 to 65535, got ${JSON.stringify(h.port)}`);
  }
  if (h.host !== undefined && (typeof h.host !== 'string' || h.host === '')) throw optionError('http.host', 'must be a non-empty string');
  if (h.token !== undefined && (typeof h.token !== 'string' || h.token === '')) throw optionError('http.token', 'must be a non-empty string');
  if (h.adminToken !== undefined && (typeof h.adminToken !== 'string' || h.adminToken === '' || /\s/.test(h.adminToken))) {
    throw optionError('http.adminToken', 'must be a non-empty string without white space');
  }
  const b = h.basicAuth;
  if (b !== undefined) {
    if (b === null || typeof b !== 'object') throw optionError('http.basicAuth', 'must be { username, password }');
    if (typeof b.username !== 'string' || b.username === '' || b.username.includes(':')) {
      throw optionError('http.basicAuth.username', 'must be a non-empty string without ":"');
    }
    if (typeof b.password !== 'string' || b.password === '') throw optionError('http.basicAuth.password', 'must be a non-empty string');
  }
  return { http: { ...h, host: h.host ?? '127.0.0.1' }, metrics, sysInterval };
}
