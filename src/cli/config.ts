// Configuration of the `petrel` command: flags, then a config file (JSON, YAML or TOML, by its extension), then a
// mosquitto.conf (--mosquitto-config), then PETREL_* environment variables, in that order of precedence. Every bad
// value is reported with the key it came from and why (ConfigError), never as a stack trace. SETTINGS, the options
// table, is the one source of the flags, the variables, the file's keys, --help and the JSON Schema (schema.ts).
//
// Listeners: `--port` makes the plain TCP listener (default 1883); `--tls-port`, `--ws-port` and `--wss-port` add
// a TLS, a WebSocket and a WebSocket-over-TLS listener, all on `--host`, the TLS ones with `--cert`/`--key`
// (`--ca`, `--require-certificate`), the WebSocket ones on `--ws-path`, and `--proxy-protocol` for all of them.
// A list of listeners (`listeners` in the JSON file, `listener` lines of a mosquitto.conf) replaces them unless
// the port settings come from a layer of higher precedence: `petrel --mosquitto-config m.conf --port 1884` listens
// on 1884 only, `--tls-port` included. A setting of the flag listeners (`--host`, `--cert`, ...) given above a
// listener list that wins is an error rather than being dropped.

import { didYouMean } from './suggest.js';
import { accessSync, constants, readFileSync } from 'node:fs';
import { dirname, extname, isAbsolute, resolve } from 'node:path';
import { parseDocument as parseYaml } from 'yaml';
import { parse as parseToml, TomlError } from 'smol-toml';
import { isIP } from 'node:net';
import { DEFAULT_LIMITS, type AuthOptions, type BrokerOptions, type Limits, type ListenerOptions } from '../broker/options.js';
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from '../broker/logger.js';
import { ConfigError } from './config-error.js';
import { readMosquittoConfig } from './mosquitto-config.js';

export { ConfigError };

export interface CliConfig {
  port: number;
  host: string | undefined;
  /** The listeners the broker opens (from the flags, the config file or the mosquitto.conf). */
  listeners: ListenerOptions[];
  /** Where each listener came from (a flag, a config file key, a mosquitto.conf line), parallel to listeners. */
  listenerSources: string[];
  memory: boolean;
  dataDir: string;
  durability: 'process' | 'power';
  logLevel: LogLevel;
  /** undefined: pretty on a terminal, else JSON. */
  logFormat: LogFormat | undefined;
  limits: Partial<Limits>;
  /** Password and ACL files, anonymous access, login guard; undefined when nothing was set. */
  auth: AuthOptions | undefined;
  /** Where auth.passwordFile and auth.aclFile came from (a flag, a variable, a file key or line). */
  authSources: Record<string, string>;
  /** Where each setting given came from, by its config key (limits.maxQoS: --max-qos). */
  sources: Record<string, string>;
  responseInformation: string | undefined;
  closeTimeout: number;
  /** HTTP listener (/metrics, health): port and host, undefined when off. */
  httpPort: number | undefined;
  httpHost: string | undefined;
  /** Bearer token of the admin API (--admin-token-file, PETREL_ADMIN_TOKEN), undefined when off. */
  adminToken: string | undefined;
  sysInterval: number | undefined;
  /** Cluster mode: the Redis URL or socket, the node's name. */
  cluster: { redis: string; nodeId?: string; leaseMs?: number } | undefined;
  /** --workers: broker processes behind the same ports (src/cli/workers.ts); 1 is a single process. */
  workers: number;
  configFile: string | undefined;
  mosquittoConfig: string | undefined;
  lenient: boolean;
  /** Warnings to print on stderr: directives skipped with --lenient, approximate mappings. */
  warnings: string[];
  help: boolean;
  version: boolean;
  /** --print-schema: print the config file's JSON Schema. */
  printSchema: boolean;
}

/** The limits, as flags (--max-packet-size) and env vars (PETREL_MAX_PACKET_SIZE). */
const LIMIT_KEYS = Object.keys(DEFAULT_LIMITS) as (keyof Limits)[];
const kebab = (k: string): string => k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
const envName = (k: string): string => 'PETREL_' + kebab(k).replace(/-/g, '_').toUpperCase();

type Kind = 'int' | 'port' | 'bool' | 'string' | 'path' | 'wspath' | 'level' | 'logformat' | 'durability' | 'number';

/** The sections of `petrel --help`, in order. */
export const GROUPS = ['Listeners', 'Security', 'Storage', 'Limits', 'Operations', 'Cluster'] as const;
export type Group = (typeof GROUPS)[number];

/** How a number's default reads in --help and the schema: 1048576 bytes is "1 MiB (1048576)", 2000 ms is "2 s (2000 ms)". */
type Unit = 'bytes' | 's' | 'ms';

export interface Setting {
  key: string; // name in the config file (camelCase; auth.* inside "auth")
  flag: string | undefined; // undefined: config file only
  env: string | undefined;
  kind: Kind;
  /** The sentence of --help and of the schema's description. */
  describe: string;
  /** Its section of --help; without one: Cluster for cluster.*, Security for auth.*, Limits for limits.*, else Operations. */
  group?: Group;
  /** The default as --help says it ("1883", "all addresses"); undefined: the help names none (or `value` is formatted). */
  dflt?: string;
  /** The default value (the schema's "default"); a number is shown in `unit`. */
  value?: unknown;
  unit?: Unit;
  /** Range of an int or number (checked here, and in the schema; limits are checked by the broker). */
  min?: number;
  max?: number;
  /** Placeholder of the value in --help (N, FILE, URL, ...). */
  arg?: string;
  /** Earlier spellings of the flag and of the variable: still accepted, not shown in --help. */
  oldFlags?: string[];
  oldEnv?: string[];
  /** Kept so that old configurations load; left out of --help, marked deprecated in the schema. */
  deprecated?: boolean;
  /** Where the range is checked instead of here, with its own message (workers.ts for --workers). */
  checkedBy?: string;
}

const s = (key: string, flag: string, env: string, kind: Kind, describe: string, more: Partial<Setting> = {}): Setting => ({ key, flag, env, kind, describe, ...more });
/** A setting of the config file only (no flag, no variable). */
const fileOnly = (key: string, kind: Kind, describe: string, more: Partial<Setting> = {}): Setting => ({ key, flag: undefined, env: undefined, kind, describe, ...more });

interface LimitHelp {
  describe: string;
  unit?: Unit;
  /** The default in words when the number alone says too little (0 = "no limit"). */
  dflt?: string;
  /** The flag and variable when the generated ones read badly (maxQoS: --max-qos, not --max-qo-s). */
  flag?: string;
  env?: string;
  deprecated?: boolean;
}

/** A sentence for every limit (a limit added to options.ts without one does not compile). */
const LIMIT_HELP: Record<keyof Limits, LimitHelp> = {
  maxPacketSize: { unit: 'bytes', describe: 'Largest MQTT packet accepted, checked before it is read into memory; v5 clients are told it (Maximum Packet Size)' },
  receiveMaximum: { describe: 'v5 Receive Maximum: inbound QoS 1 and 2 messages a client may have unacknowledged at once' },
  maxInflight: { describe: 'Outbound QoS 1 and 2 messages in flight per session (a v5 client may ask for fewer)' },
  topicAliasMaximum: { describe: 'Topic aliases a v5 client may set up towards the broker; 0 turns topic aliases off' },
  maxKeepAlive: {
    unit: 's',
    dflt: '0 (no limit)',
    describe: 'Longest keep alive accepted, in seconds; a v5 client asking for more gets Server Keep Alive, a 3.1/3.1.1 client is refused',
  },
  tcpKeepAlive: { unit: 's', describe: 'Seconds a connection may be silent before the first TCP keepalive probe; 0 turns the probes off' },
  maxQoS: { flag: '--max-qos', env: 'PETREL_MAX_QOS', describe: 'Highest QoS accepted from and granted to clients: 0, 1 or 2' },
  retainAvailable: { describe: 'Support retained messages (v5 clients are told whether it is on)' },
  wildcardSubscriptions: { describe: 'Allow subscriptions with the + and # wildcards' },
  subscriptionIdentifiers: { describe: 'Support the Subscription Identifiers of MQTT 5' },
  sharedSubscriptions: { describe: 'Allow shared subscriptions ($share/GROUP/FILTER)' },
  maxSessionExpiry: { unit: 's', dflt: '4294967295 (no cap)', describe: 'Cap on the Session Expiry Interval a v5 client asks for, in seconds' },
  persistentSessionExpiry: {
    unit: 's',
    dflt: '4294967295 (never)',
    describe: 'Seconds a 3.1/3.1.1 session with clean session 0 is kept after its client goes away',
  },
  maxQueuedMessages: { describe: 'QoS 1 and 2 messages queued and in flight per session; past it, new messages for the session are dropped and counted' },
  maxQueuedBytes: { unit: 'bytes', describe: 'Payload bytes queued per session; past it, new messages for the session are dropped and counted' },
  maxWriteBuffer: {
    unit: 'bytes',
    describe: "Bytes waiting unsent in a connection's socket before QoS 0 messages are dropped and QoS 1 and 2 wait in the session's queue",
  },
  connectTimeout: { unit: 's', describe: 'Seconds a new connection has to send its CONNECT' },
  maxClientIdLength: { describe: 'Longest client identifier accepted' },
  maxSubscriptionsPerSession: { describe: 'Subscriptions one session may hold; more are refused (SUBACK 0x97, 3.1.1: 0x80)' },
  allowZeroLengthClientId: { describe: 'Let 3.1.1 clients connect with an empty client id and clean session 1 (the broker assigns one)' },
  queueQos0: { describe: 'Queue QoS 0 messages for persistent sessions whose client is offline' },
  maxSessionHeapBytes: {
    unit: 'bytes',
    describe: 'Bytes of messages one session holds in memory (in flight and queued); a session the store keeps holds the rest there',
  },
  maxPublisherHoldMs: { unit: 'ms', deprecated: true, describe: 'No effect: publishers are no longer held back by subscribers (accepted so that old configurations load)' },
  maxTopicLevels: { describe: "Most levels in a topic name or filter ('a/b/c' has 3); deeper ones are refused" },
  maxMatchCacheBytes: { unit: 'bytes', describe: 'Bytes the topic-match cache may hold; 0 turns the cache off' },
  memoryLimit: {
    unit: 'bytes',
    dflt: "half the machine's (or the cgroup's) memory, at most 8 GiB",
    describe: 'Resident memory of the process above which new connections are refused and idle ones are not read, in bytes; 0 turns it off',
  },
  maxConnections: { dflt: '0 (no limit)', describe: 'Connections open at once on all listeners together; past it a new socket is closed at once' },
  connectionRatePerAddress: { dflt: '0 (no limit)', describe: 'New connections per second from one IP address' },
  maxPublishRate: { dflt: '0 (no limit)', describe: 'Inbound PUBLISH packets per second per client; a client over it is not read until it is within its rate' },
  maxPublishBytesRate: { unit: 'bytes', dflt: '0 (no limit)', describe: 'Inbound payload bytes per second per client; a client over it is not read until it is within its rate' },
  rateLimitDisconnect: { describe: 'Disconnect a client over its publish rate instead of pausing it (v5: DISCONNECT 0x96)' },
  maxTopicLength: { unit: 'bytes', describe: 'Longest topic name or filter, in bytes of UTF-8' },
};

const SETTINGS: Setting[] = [
  s('port', '--port', 'PETREL_PORT', 'port', 'TCP port of the plain MQTT listener; 0 picks a free port', { group: 'Listeners', value: 1883 }),
  s('host', '--host', 'PETREL_HOST', 'string', 'Address the listeners made from flags bind to', { group: 'Listeners', dflt: 'all addresses, IPv6 and IPv4', arg: 'ADDRESS' }),
  s('tlsPort', '--tls-port', 'PETREL_TLS_PORT', 'port', 'Also listen for MQTT over TLS on this port (needs --cert and --key)', { group: 'Listeners', dflt: 'off' }),
  s('cert', '--cert', 'PETREL_CERT', 'path', 'PEM certificate chain of the TLS and WSS listeners made from flags', { group: 'Security' }),
  s('key', '--key', 'PETREL_KEY', 'path', 'PEM private key of the TLS and WSS listeners made from flags', { group: 'Security' }),
  s('ca', '--ca', 'PETREL_CA', 'path', 'PEM CA bundle that client certificates are checked against', { group: 'Security' }),
  s('requireCertificate', '--require-certificate', 'PETREL_REQUIRE_CERTIFICATE', 'bool', 'Refuse TLS clients without a certificate signed by --ca (mutual TLS)', { group: 'Security', value: false }),
  s('wsPort', '--ws-port', 'PETREL_WS_PORT', 'port', 'Also listen for MQTT over WebSocket on this port', { group: 'Listeners', dflt: 'off' }),
  s('wssPort', '--wss-port', 'PETREL_WSS_PORT', 'port', 'Also listen for MQTT over WebSocket over TLS on this port (needs --cert and --key)', { group: 'Listeners', dflt: 'off' }),
  s('wsPath', '--ws-path', 'PETREL_WS_PATH', 'wspath', 'HTTP path of the WebSocket listeners', { group: 'Listeners', value: '/mqtt' }),
  s('proxyProtocol', '--proxy-protocol', 'PETREL_PROXY_PROTOCOL', 'bool', 'Expect a PROXY protocol v1 or v2 header (from 127.0.0.1 or ::1) on the listeners made from flags', {
    group: 'Listeners',
    value: false,
  }),
  s('auth.passwordFile', '--password-file', 'PETREL_PASSWORD_FILE', 'path', 'Mosquitto password file (made with mosquitto_passwd or petrel passwd); anonymous clients are then refused', {
    group: 'Security',
  }),
  s('auth.aclFile', '--acl-file', 'PETREL_ACL_FILE', 'path', 'Mosquitto ACL file: what each user may publish and subscribe to', { group: 'Security' }),
  s('auth.allowAnonymous', '--allow-anonymous', 'PETREL_ALLOW_ANONYMOUS', 'bool', 'Accept clients without a user name, even with a password file', {
    group: 'Security',
    dflt: 'on without a password file, off with one',
  }),
  s('mosquittoConfig', '--mosquitto-config', 'PETREL_MOSQUITTO_CONFIG', 'path', 'Read a mosquitto.conf (listeners, TLS, password and ACL files, limits); flags and --config win over it', {
    group: 'Operations',
  }),
  s('lenient', '--lenient', 'PETREL_LENIENT', 'bool', 'With --mosquitto-config: skip unsupported directives with a warning instead of refusing to start', {
    group: 'Operations',
    value: false,
  }),
  s('dataDir', '--data-dir', 'PETREL_DATA_DIR', 'string', 'Directory of the SQLite store (petrel.db)', { group: 'Storage', value: './data', arg: 'DIR' }),
  s('memory', '--memory', 'PETREL_MEMORY', 'bool', 'Keep everything in memory instead: nothing survives a restart', { group: 'Storage', value: false }),
  s('durability', '--durability', 'PETREL_DURABILITY', 'durability', "'process': an acknowledged message survives a crash of the broker; 'power': fsync every commit, it survives a power loss", {
    group: 'Storage',
    value: 'process',
  }),
  s('logLevel', '--log-level', 'PETREL_LOG_LEVEL', 'level', `How much the broker logs: ${LOG_LEVELS.join(', ')}`, { group: 'Operations', value: 'info' }),
  s('logFormat', '--log-format', 'PETREL_LOG_FORMAT', 'logformat', 'Log format: json (one JSON object a line) or pretty (for people)', {
    group: 'Operations',
    dflt: 'pretty on a terminal, json otherwise',
  }),
  s('responseInformation', '--response-information', 'PETREL_RESPONSE_INFORMATION', 'string', 'Response Information sent to v5 clients that ask for it', { group: 'Operations', arg: 'TEXT' }),
  s('closeTimeout', '--close-timeout', 'PETREL_CLOSE_TIMEOUT', 'number', 'Seconds to wait for connections to close on shutdown', { group: 'Operations', value: 5, unit: 's', min: 0, arg: 'SECONDS' }),
  s('httpPort', '--http-port', 'PETREL_HTTP_PORT', 'port', 'Open the HTTP listener on this port: /metrics (Prometheus), /livez, /readyz', { group: 'Operations', dflt: 'off' }),
  s('httpHost', '--http-host', 'PETREL_HTTP_HOST', 'string', 'Address of the HTTP listener', { group: 'Operations', value: '127.0.0.1', dflt: '127.0.0.1 (loopback only)', arg: 'ADDRESS' }),
  s('adminTokenFile', '--admin-token-file', 'PETREL_ADMIN_TOKEN_FILE', 'path', 'Turn the admin API (/api/v1) on; its bearer token is the first line of FILE (or the variable PETREL_ADMIN_TOKEN)', {
    group: 'Operations',
    dflt: 'off',
  }),
  { key: 'adminToken', flag: undefined, env: 'PETREL_ADMIN_TOKEN', kind: 'string', describe: 'The admin API token itself, from the environment (prefer --admin-token-file: a variable shows in the process table of some systems)', group: 'Operations' },
  s('sysInterval', '--sys-interval', 'PETREL_SYS_INTERVAL', 'int', 'Seconds between $SYS updates; 0 turns the $SYS topics off', { group: 'Operations', value: 10, unit: 's', min: 0, max: 86400, arg: 'SECONDS' }),
  s('cluster.redis', '--cluster', 'PETREL_CLUSTER', 'string', 'Run as one node of a cluster sharing this Redis (redis://host:port, rediss://..., or a Unix socket path)', {
    group: 'Cluster',
    arg: 'URL',
  }),
  s('cluster.nodeId', '--node-id', 'PETREL_NODE_ID', 'string', 'Name of this cluster node', { group: 'Cluster', dflt: 'host name and process id', arg: 'NAME' }),
  s('workers', '--workers', 'PETREL_WORKERS', 'int', 'Broker processes to run behind the same ports: cluster nodes on a Redis that petrel starts in --data-dir (or on --cluster)', {
    group: 'Cluster',
    value: 1,
    min: 1,
    max: 64, // MAX_WORKERS of workers.ts (test/cli/schema.test.ts checks it)
    checkedBy: 'workers.ts',
  }),
  fileOnly('cluster.leaseMs', 'int', "Milliseconds a node may be silent before it is taken for dead and its sessions are adopted", {
    value: 5000,
    unit: 'ms',
    min: 1000,
    max: 600_000,
  }),
  fileOnly('auth.maxConcurrentHashes', 'int', 'Password hashes computed at once, off the event loop; more wait in a queue', { value: 2, min: 1, max: 1024 }),
  fileOnly('auth.maxPendingHashes', 'int', 'CONNECTs that may wait for a password hash; past it they get CONNACK Server busy', { value: 1000, min: 1, max: 10_000_000 }),
  ...LIMIT_KEYS.map<Setting>((k) => {
    const h = LIMIT_HELP[k];
    const more: Partial<Setting> = { group: 'Limits', value: DEFAULT_LIMITS[k] };
    if (h.unit !== undefined) more.unit = h.unit;
    if (h.dflt !== undefined) more.dflt = h.dflt;
    if (h.deprecated) more.deprecated = true;
    if (k === 'memoryLimit') delete more.value; // it depends on the machine
    // The generated spelling stays accepted when a better one is given (--max-qo-s, PETREL_MAX_QO_S).
    if (h.flag !== undefined) more.oldFlags = ['--' + kebab(k)];
    if (h.env !== undefined) more.oldEnv = [envName(k)];
    const kind = typeof DEFAULT_LIMITS[k] === 'boolean' ? 'bool' : 'int';
    return s(`limits.${k}`, h.flag ?? '--' + kebab(k), h.env ?? envName(k), kind, h.describe, more);
  }),
];
const BY_KEY = new Map(SETTINGS.map((x) => [x.key, x]));

/** Precedence layers, lowest first. */
const ENV = 0;
const MOSQUITTO = 1;
const FILE = 2;
const FLAGS = 3;

interface Value {
  v: unknown;
  where: string;
  layer: number;
}
type Values = Map<string, Value>;

/** `base`: the directory relative paths resolve against (the config file's), undefined for flags and env. */
function parseValue(st: Setting, raw: unknown, where: string, base?: string): unknown {
  const fail = (why: string): never => {
    throw new ConfigError(where, `${why}, got ${JSON.stringify(raw)}`);
  };
  switch (st.kind) {
    case 'int':
    case 'port': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^-?\d+$/.test(raw.trim()) ? Number(raw) : NaN;
      if (!Number.isSafeInteger(n)) fail('must be an integer');
      if (st.kind === 'port' && (n < 0 || n > 65535)) fail('must be an integer from 0 to 65535');
      // The upper bounds (and every limit's range) are checked where the options are resolved, naming the key.
      if (st.min !== undefined && st.checkedBy === undefined && n < st.min) fail(`must be an integer >= ${st.min}`);
      return n;
    }
    case 'number': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
      if (!Number.isFinite(n) || n < 0) fail('must be a number >= 0');
      return n;
    }
    case 'bool':
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === '1' || raw === 'yes') return true;
      if (raw === 'false' || raw === '0' || raw === 'no') return false;
      return fail('must be true or false');
    case 'string':
      if (typeof raw !== 'string' || raw === '') fail('must be a non-empty string');
      return raw;
    case 'path':
      if (typeof raw !== 'string' || raw === '') fail('must be a non-empty path');
      return base !== undefined && !isAbsolute(raw as string) ? resolve(base, raw as string) : raw;
    case 'wspath':
      if (typeof raw !== 'string' || !raw.startsWith('/') || /[\s?#]/.test(raw)) fail("must be an HTTP path starting with '/' (no spaces, '?' or '#')");
      return raw;
    case 'level':
      if (typeof raw !== 'string' || !(LOG_LEVELS as readonly string[]).includes(raw)) fail(`must be one of ${LOG_LEVELS.join(', ')}`);
      return raw;
    case 'logformat':
      if (typeof raw !== 'string' || !(LOG_FORMATS as readonly string[]).includes(raw)) fail(`must be one of ${LOG_FORMATS.join(', ')}`);
      return raw;
    case 'durability':
      if (raw !== 'process' && raw !== 'power') fail("must be 'process' or 'power'");
      return raw;
  }
}

function fromEnv(env: NodeJS.ProcessEnv): Values {
  const v: Values = new Map();
  for (const st of SETTINGS) {
    // The current name wins over an earlier spelling (PETREL_MAX_QOS over PETREL_MAX_QO_S).
    for (const name of [...(st.oldEnv ?? []), ...(st.env === undefined ? [] : [st.env])]) {
      const raw = env[name];
      if (raw !== undefined && raw !== '') v.set(st.key, { v: parseValue(st, raw, name), where: name, layer: ENV });
    }
  }
  return v;
}

const isObject = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === 'object' && !Array.isArray(x);

/** The keys of one entry of `listeners` in the config file. */
export const LISTENER_KEYS = [
  'transport', 'port', 'host', 'name', 'cert', 'key', 'passphrase', 'ca', 'requireCertificate', 'crl', 'identityAsUsername',
  'minVersion', 'ciphers', 'sni', 'path', 'allowedOrigins', 'perMessageDeflate', 'proxyProtocol', 'trustedProxies',
  'maxConnections', 'connectionRate',
];

function isCidr(x: string): boolean {
  const [addr, bits, more] = x.split('/');
  if (more !== undefined || addr === undefined) return false;
  const family = isIP(addr);
  if (family === 0) return false;
  if (bits === undefined) return true;
  if (!/^\d+$/.test(bits)) return false;
  return Number(bits) <= (family === 4 ? 32 : 128);
}

/** One entry of `listeners` in the JSON config file, checked key by key. */
function parseListener(raw: unknown, where: string, base: string): ListenerOptions {
  if (!isObject(raw)) throw new ConfigError(where, 'must be an object');
  const o = raw;
  const err = (k: string, why: string): never => {
    throw new ConfigError(`${where}.${k}`, `${why}, got ${JSON.stringify(o[k])}`);
  };
  for (const k of Object.keys(o)) {
    if (!LISTENER_KEYS.includes(k)) throw new ConfigError(`${where}.${k}`, `unknown key${didYouMean(k, LISTENER_KEYS)}; known keys are ${LISTENER_KEYS.join(', ')}`);
  }
  const str = (k: string): string | undefined => {
    if (o[k] === undefined) return undefined;
    if (typeof o[k] !== 'string' || o[k] === '') err(k, 'must be a non-empty string');
    return o[k] as string;
  };
  const file = (k: string): string | undefined => {
    const v = str(k);
    return v === undefined ? undefined : isAbsolute(v) ? v : resolve(base, v);
  };
  const bool = (k: string): boolean | undefined => {
    if (o[k] === undefined) return undefined;
    if (typeof o[k] !== 'boolean') err(k, 'must be true or false');
    return o[k] as boolean;
  };
  const num = (k: string, integer: boolean): number | undefined => {
    if (o[k] === undefined) return undefined;
    const n = o[k];
    if (typeof n !== 'number' || !Number.isFinite(n) || n < 0 || (integer && !Number.isSafeInteger(n))) err(k, integer ? 'must be an integer >= 0' : 'must be a number >= 0');
    return n as number;
  };
  const strings = (k: string, check: (x: string) => boolean, what: string): string[] | undefined => {
    if (o[k] === undefined) return undefined;
    const a = o[k];
    if (!Array.isArray(a) || !a.every((x) => typeof x === 'string' && check(x))) err(k, `must be an array of ${what}`);
    return a as string[];
  };
  const transport = o.transport ?? 'tcp';
  if (transport !== 'tcp' && transport !== 'tls' && transport !== 'ws' && transport !== 'wss') err('transport', "must be 'tcp', 'tls', 'ws' or 'wss'");
  const out: ListenerOptions = { transport: transport as ListenerOptions['transport'] };
  if (o.port !== undefined) out.port = parseValue(BY_KEY.get('port')!, o.port, `${where}.port`) as number;
  const set = <K extends keyof ListenerOptions>(k: K, v: ListenerOptions[K] | undefined): void => {
    if (v !== undefined) out[k] = v;
  };
  set('host', str('host'));
  set('name', str('name'));
  const tls = transport === 'tls' || transport === 'wss';
  const ws = transport === 'ws' || transport === 'wss';
  for (const k of ['cert', 'key', 'passphrase', 'ca', 'requireCertificate', 'crl', 'identityAsUsername', 'minVersion', 'ciphers', 'sni']) {
    if (!tls && o[k] !== undefined) throw new ConfigError(`${where}.${k}`, `only for transport 'tls' or 'wss' (this listener is '${String(transport)}')`);
  }
  for (const k of ['path', 'allowedOrigins', 'perMessageDeflate']) {
    if (!ws && o[k] !== undefined) throw new ConfigError(`${where}.${k}`, `only for transport 'ws' or 'wss' (this listener is '${String(transport)}')`);
  }
  if (tls) {
    if (o.cert === undefined) throw new ConfigError(`${where}.cert`, `a '${String(transport)}' listener needs cert (a PEM certificate file)`);
    if (o.key === undefined) throw new ConfigError(`${where}.key`, `a '${String(transport)}' listener needs key (a PEM private key file)`);
  }
  set('cert', file('cert'));
  set('key', file('key'));
  set('passphrase', str('passphrase'));
  set('ca', file('ca'));
  set('requireCertificate', bool('requireCertificate'));
  set('crl', file('crl'));
  if (out.requireCertificate && out.ca === undefined) throw new ConfigError(`${where}.requireCertificate`, 'needs ca (the CA that signs client certificates)');
  if (o.identityAsUsername !== undefined) {
    const v = o.identityAsUsername;
    if (v !== 'none' && v !== 'cn' && v !== 'subject') err('identityAsUsername', "must be 'none', 'cn' or 'subject'");
    if (v !== 'none' && !out.requireCertificate) throw new ConfigError(`${where}.identityAsUsername`, 'needs requireCertificate: true');
    out.identityAsUsername = v as 'none' | 'cn' | 'subject';
  }
  if (o.minVersion !== undefined) {
    if (o.minVersion !== 'TLSv1.2' && o.minVersion !== 'TLSv1.3') err('minVersion', "must be 'TLSv1.2' or 'TLSv1.3'");
    out.minVersion = o.minVersion as 'TLSv1.2' | 'TLSv1.3';
  }
  set('ciphers', str('ciphers'));
  if (o.sni !== undefined) {
    if (!isObject(o.sni)) err('sni', 'must be an object { "host.example": { "cert": FILE, "key": FILE } }');
    const sni: Record<string, { cert: string; key: string; passphrase?: string }> = {};
    for (const [name, entry] of Object.entries(o.sni as Record<string, unknown>)) {
      const w = `${where}.sni.${name}`;
      if (!isObject(entry)) throw new ConfigError(w, 'must be an object { "cert": FILE, "key": FILE }');
      for (const k of Object.keys(entry)) if (k !== 'cert' && k !== 'key' && k !== 'passphrase') throw new ConfigError(`${w}.${k}`, `unknown key${didYouMean(k, ['cert', 'key', 'passphrase'])}; use cert, key and passphrase`);
      for (const k of ['cert', 'key'] as const) {
        if (typeof entry[k] !== 'string' || entry[k] === '') throw new ConfigError(`${w}.${k}`, `must be a non-empty path, got ${JSON.stringify(entry[k])}`);
      }
      const e: { cert: string; key: string; passphrase?: string } = {
        cert: resolve(base, entry.cert as string),
        key: resolve(base, entry.key as string),
      };
      if (entry.passphrase !== undefined) {
        if (typeof entry.passphrase !== 'string') throw new ConfigError(`${w}.passphrase`, 'must be a string');
        e.passphrase = entry.passphrase;
      }
      sni[name] = e;
    }
    out.sni = sni;
  }
  if (o.path !== undefined) out.path = parseValue(BY_KEY.get('wsPath')!, o.path, `${where}.path`) as string;
  set('allowedOrigins', strings('allowedOrigins', (x) => x !== '', 'non-empty strings'));
  set('perMessageDeflate', bool('perMessageDeflate'));
  set('proxyProtocol', bool('proxyProtocol'));
  set('trustedProxies', strings('trustedProxies', isCidr, "addresses or CIDRs ('10.0.0.0/8', '::1/128')"));
  if (out.trustedProxies !== undefined && !out.proxyProtocol) throw new ConfigError(`${where}.trustedProxies`, 'needs proxyProtocol: true');
  set('maxConnections', num('maxConnections', true));
  set('connectionRate', num('connectionRate', false));
  return out;
}

export const LOGIN_GUARD_KEYS = ['maxFailures', 'windowSeconds', 'banSeconds', 'maxTracked'];
const AUTH_KEYS = ['passwordFile', 'aclFile', 'allowAnonymous', 'loginGuard', 'maxConcurrentHashes', 'maxPendingHashes'];

function parseLoginGuard(raw: unknown, where: string): AuthOptions['loginGuard'] {
  if (typeof raw === 'boolean') return raw;
  if (!isObject(raw)) {
    throw new ConfigError(where, `must be true, false or { "maxFailures": N, "windowSeconds": S, "banSeconds": S, "maxTracked": N }, got ${JSON.stringify(raw)}`);
  }
  const out: { maxFailures?: number; windowSeconds?: number; banSeconds?: number; maxTracked?: number } = {};
  for (const [k, v] of Object.entries(raw)) {
    if (k !== 'maxFailures' && k !== 'windowSeconds' && k !== 'banSeconds' && k !== 'maxTracked') {
      throw new ConfigError(`${where}.${k}`, `unknown key${didYouMean(k, LOGIN_GUARD_KEYS)}; use maxFailures, windowSeconds, banSeconds and maxTracked`);
    }
    const integer = k === 'maxFailures' || k === 'maxTracked';
    if (typeof v !== 'number' || !Number.isFinite(v) || (integer ? !Number.isSafeInteger(v) || v < 1 : v <= 0)) {
      throw new ConfigError(`${where}.${k}`, `must be ${integer ? 'an integer >= 1' : 'a number of seconds > 0'}, got ${JSON.stringify(v)}`);
    }
    out[k] = v;
  }
  return out;
}

interface FileLayer {
  values: Values;
  listeners: ListenerOptions[] | undefined;
  loginGuard: AuthOptions['loginGuard'] | undefined;
  path: string;
}

/** The format of a config file, by its extension: .yaml and .yml are YAML, .toml is TOML, anything else JSON. */
export function configFormat(path: string): 'json' | 'yaml' | 'toml' {
  const ext = extname(path).toLowerCase();
  return ext === '.yaml' || ext === '.yml' ? 'yaml' : ext === '.toml' ? 'toml' : 'json';
}

/** Line and column (from 1) of a character offset. */
function position(text: string, offset: number): string {
  const before = text.slice(0, Math.max(0, Math.min(offset, text.length)));
  const line = before.split('\n').length;
  return `${line}:${before.length - before.lastIndexOf('\n')}`;
}

/** The document of a config file; a syntax error is reported as `FILE:LINE:COLUMN: not valid FORMAT: why`. */
function parseConfigText(path: string, text: string): unknown {
  const format = configFormat(path);
  if (format === 'yaml') {
    // merge: the <<: *anchor keys of YAML 1.1, which configs use to share listener settings.
    const doc = parseYaml(text, { prettyErrors: false, uniqueKeys: true, merge: true });
    const e = doc.errors[0];
    if (e) throw new ConfigError(`${path}:${position(text, e.pos[0])}`, `not valid YAML: ${e.message}`);
    // A file of comments only is an empty configuration.
    return doc.contents === null ? {} : doc.toJS({ maxAliasCount: 100 });
  }
  if (format === 'toml') {
    try {
      return parseToml(text, { unsafeKeyBehaviour: 'throw' });
    } catch (err) {
      if (!(err instanceof TomlError)) throw err;
      const why = err.message.split('\n')[0]!.replace(/^Invalid TOML document: /, '');
      throw new ConfigError(`${path}:${err.line}:${err.column}`, `not valid TOML: ${why}`);
    }
  }
  try {
    return JSON.parse(text);
  } catch {
    // V8's messages differ between versions and some carry no position: the error is located here instead.
    const e = jsonSyntaxError(text);
    const other = extname(path).toLowerCase() === '.json' ? '' : ' (a file not named .yaml, .yml or .toml is read as JSON)';
    throw new ConfigError(`${path}:${position(text, e.at)}`, `not valid JSON${other}: ${e.why}`);
  }
}

/** The first syntax error of a JSON text that JSON.parse refused: its offset and what was expected there. */
export function jsonSyntaxError(text: string): { at: number; why: string } {
  let i = 0;
  class Stop {
    constructor(readonly why: string) {}
  }
  const got = (): string => (i >= text.length ? 'the end of the file' : JSON.stringify(text[i]));
  const fail = (expected: string): never => {
    throw new Stop(`expected ${expected}, got ${got()}`);
  };
  const ws = (): void => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const string = (): void => {
    if (text[i] !== '"') fail('a string in double quotes');
    i++;
    for (;;) {
      if (i >= text.length) fail('the closing "');
      const c = text[i]!;
      if (c === '"') return void i++;
      if (c < ' ') fail('a character of the string (a control character must be escaped)');
      if (c === '\\') {
        i++;
        if (text[i] === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) i += 5;
        else if (i < text.length && '"\\/bfnrt'.includes(text[i]!)) i++;
        else fail('an escape (\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)');
      } else i++;
    }
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') return void i++;
      for (;;) {
        ws();
        string();
        ws();
        if (text[i] !== ':') fail("':' after the key");
        i++;
        value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === '}') return void i++;
        else fail("',' or '}'");
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') return void i++;
      for (;;) {
        value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === ']') return void i++;
        else fail("',' or ']'");
      }
    }
    if (c === '"') return string();
    const m = /^(?:-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i, i + 400));
    if (m && !/^[A-Za-z0-9_$]/.test(text.slice(i + m[0].length, i + m[0].length + 1))) return void (i += m[0].length);
    fail('a value (an object, array, string, number, true, false or null)');
  };
  try {
    value();
    ws();
    if (i < text.length) fail('the end of the file after the value');
  } catch (err) {
    if (err instanceof Stop) return { at: i, why: err.why };
    throw err;
  }
  return { at: 0, why: 'not JSON' };
}

/** The sections of the config file (limits, auth, cluster, ...): the prefixes of the dotted setting keys. */
function sectionKeys(section: string): string[] {
  const keys = SETTINGS.filter((x) => x.key.startsWith(section + '.')).map((x) => x.key.slice(section.length + 1));
  return section === 'auth' ? [...new Set([...AUTH_KEYS, ...keys])] : keys;
}
const SECTIONS = [...new Set(SETTINGS.filter((x) => x.key.includes('.')).map((x) => x.key.split('.')[0]!))];
/** The top-level keys of the config file. */
export const TOP_KEYS = [...SETTINGS.filter((x) => !x.key.includes('.')).map((x) => x.key), 'listeners', ...SECTIONS];

/** "unknown key (did you mean X?)": also a key that belongs in a section (maxPacketSize at the top: limits.maxPacketSize). */
function unknownKey(k: string, known: readonly string[], section: string | undefined): string {
  const full = section ? `${section}.${k}` : k;
  // The name of a setting of another place: maxPacketSize at the top is limits.maxPacketSize, port under limits is port.
  const elsewhere = SETTINGS.find((x) => x.key !== full && (x.key === k || x.key.endsWith('.' + k)));
  const hint = didYouMean(k, known) || (elsewhere ? ` (did you mean ${elsewhere.key}? it goes ${elsewhere.key.includes('.') ? `under ${elsewhere.key.split('.')[0]}` : 'at the top level'})` : '');
  const what = section === 'limits' ? 'limit' : 'key';
  return `unknown ${what}${hint}; known ${what}s${section === undefined ? ' (top level)' : ''} are ${known.join(', ')}`;
}

function fromFile(path: string): FileLayer {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('--config', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  const doc = parseConfigText(path, text);
  if (!isObject(doc)) throw new ConfigError(path, `must hold an object of settings (${configFormat(path) === 'json' ? '{ "port": 1883, ... }' : 'port: 1883, ...'}), got ${JSON.stringify(doc)}`);
  const base = dirname(resolve(path));
  const values: Values = new Map();
  const put = (st: Setting, raw: unknown, where: string): void => {
    values.set(st.key, { v: parseValue(st, raw, where, st.kind === 'path' ? base : undefined), where, layer: FILE });
  };
  let listeners: ListenerOptions[] | undefined;
  let loginGuard: AuthOptions['loginGuard'] | undefined;
  for (const [k, raw] of Object.entries(doc)) {
    // "$schema": the JSON Schema an editor checks the file against (schema/petrel.schema.json).
    if (k === '$schema' && typeof raw === 'string') continue;
    if (k === 'listeners') {
      if (!Array.isArray(raw)) throw new ConfigError(`${path}: listeners`, 'must be an array of { "transport": "tcp", "port": N, "host": "..." }');
      listeners = raw.map((l: unknown, i) => parseListener(l, `${path}: listeners[${i}]`, base));
      continue;
    }
    if (SECTIONS.includes(k)) {
      const keys = sectionKeys(k);
      if (!isObject(raw)) throw new ConfigError(`${path}: ${k}`, `must be an object with ${keys.join(', ')}, got ${JSON.stringify(raw)}`);
      for (const [sk, sv] of Object.entries(raw)) {
        const where = `${path}: ${k}.${sk}`;
        if (k === 'auth' && sk === 'loginGuard') {
          loginGuard = parseLoginGuard(sv, where);
          continue;
        }
        const st = BY_KEY.get(`${k}.${sk}`);
        if (!st) throw new ConfigError(where, unknownKey(sk, keys, k));
        put(st, sv, where);
      }
      continue;
    }
    const st = BY_KEY.get(k);
    if (!st || k.includes('.')) throw new ConfigError(`${path}: ${k}`, unknownKey(k, TOP_KEYS, undefined));
    put(st, raw, `${path}: ${k}`);
  }
  return { values, listeners, loginGuard, path };
}

interface Args {
  values: Values;
  config: string | undefined;
  help: boolean;
  version: boolean;
  printSchema: boolean;
}

function fromArgs(argv: readonly string[]): Args {
  const values: Values = new Map();
  let config: string | undefined;
  let help = false;
  let version = false;
  let printSchema = false;
  const shown = SETTINGS.filter((x) => x.flag !== undefined);
  // Earlier spellings (--max-qo-s) are accepted too; "did you mean" offers the current ones only.
  const byFlag = new Map([...shown.flatMap((x) => (x.oldFlags ?? []).map((f) => [f, x] as const)), ...shown.map((x) => [x.flag!, x] as const)]);
  const known = [...shown.map((x) => x.flag!), '--config', '--help', '--version', '--print-schema'];
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i]!;
    let inline: string | undefined;
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq > 0) {
      inline = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    if (arg === '--help' || arg === '-h') {
      help = true;
      continue;
    }
    if (arg === '--version' || arg === '-v') {
      version = true;
      continue;
    }
    if (arg === '--print-schema') {
      printSchema = true;
      continue;
    }
    const take = (): string => {
      if (inline !== undefined) return inline;
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) throw new ConfigError(arg, 'needs a value');
      i++;
      return next;
    };
    if (arg === '--config' || arg === '-c') {
      config = take();
      continue;
    }
    let st = byFlag.get(arg);
    if (!st && arg.startsWith('--no-') && inline === undefined) {
      // --no-retain-available: a boolean option turned off.
      const positive = byFlag.get('--' + arg.slice(5));
      if (positive?.kind === 'bool') {
        values.set(positive.key, { v: false, where: arg, layer: FLAGS });
        continue;
      }
    }
    if (!st) throw new ConfigError(arg, `unknown option${didYouMean(arg, known)} (see petrel --help)`);
    if (st.kind === 'bool' && inline === undefined) {
      values.set(st.key, { v: true, where: arg, layer: FLAGS });
      continue;
    }
    values.set(st.key, { v: parseValue(st, take(), arg), where: arg, layer: FLAGS });
  }
  return { values, config, help, version, printSchema };
}

/** Sources of the flag listeners' settings. */
const PORT_KEYS = ['port', 'tlsPort', 'wsPort', 'wssPort'];
const FLAG_LISTENER_KEYS = ['host', 'cert', 'key', 'ca', 'requireCertificate', 'wsPath', 'proxyProtocol'];

function flagListeners(merged: Values): ListenerOptions[] {
  const get = (k: string): unknown => merged.get(k)?.v;
  const whereOf = (k: string): string => merged.get(k)!.where;
  const common: ListenerOptions = {};
  if (get('host') !== undefined) common.host = get('host') as string;
  if (get('proxyProtocol') === true) common.proxyProtocol = true;
  const out: ListenerOptions[] = [{ transport: 'tcp', port: (get('port') as number | undefined) ?? 1883, ...common }];
  const tlsSettings = (portKey: string): ListenerOptions => {
    const o: ListenerOptions = {};
    for (const k of ['cert', 'key']) {
      if (get(k) === undefined) {
        throw new ConfigError(whereOf(portKey), `needs --cert and --key (PETREL_CERT and PETREL_KEY, or cert and key in the config file); ${k} is missing`);
      }
    }
    o.cert = get('cert') as string;
    o.key = get('key') as string;
    if (get('ca') !== undefined) o.ca = get('ca') as string;
    if (get('requireCertificate') === true) {
      if (o.ca === undefined) throw new ConfigError(whereOf('requireCertificate'), 'needs --ca (the CA that signs client certificates)');
      o.requireCertificate = true;
    }
    return o;
  };
  const wsPath = get('wsPath') as string | undefined;
  if (get('tlsPort') !== undefined) out.push({ transport: 'tls', port: get('tlsPort') as number, ...common, ...tlsSettings('tlsPort') });
  if (get('wsPort') !== undefined) out.push({ transport: 'ws', port: get('wsPort') as number, ...common, ...(wsPath ? { path: wsPath } : {}) });
  if (get('wssPort') !== undefined) {
    out.push({ transport: 'wss', port: get('wssPort') as number, ...common, ...tlsSettings('wssPort'), ...(wsPath ? { path: wsPath } : {}) });
  }
  const tls = get('tlsPort') !== undefined || get('wssPort') !== undefined;
  for (const k of ['cert', 'key', 'ca', 'requireCertificate']) {
    // --no-require-certificate asks for nothing, with or without TLS.
    if (merged.has(k) && get(k) !== false && !tls) throw new ConfigError(whereOf(k), 'applies to TLS listeners: give --tls-port or --wss-port too');
  }
  if (wsPath !== undefined && get('wsPort') === undefined && get('wssPort') === undefined) {
    throw new ConfigError(whereOf('wsPath'), 'applies to WebSocket listeners: give --ws-port or --wss-port too');
  }
  // Two listeners of the flags on one port cannot both bind it.
  const seen = new Map<number, string>();
  for (const [i, l] of out.entries()) {
    const key = i === 0 ? 'port' : l.transport === 'tls' ? 'tlsPort' : l.transport === 'ws' ? 'wsPort' : 'wssPort';
    const where = merged.get(key)?.where ?? '--port';
    if (l.port !== 0 && seen.has(l.port!)) throw new ConfigError(where, `port ${l.port} is already used by ${seen.get(l.port!)}`);
    seen.set(l.port!, where);
  }
  return out;
}

/** Resolve the configuration from argv, the config file it names (or PETREL_CONFIG) and the environment. */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): CliConfig {
  const args = fromArgs(argv);
  const configFile = args.config ?? (env.PETREL_CONFIG || undefined);
  const file: FileLayer = configFile !== undefined ? fromFile(configFile) : { values: new Map(), listeners: undefined, loginGuard: undefined, path: '' };
  const envValues = fromEnv(env);
  const above = new Map([...envValues, ...file.values, ...args.values]);
  const mosquittoConfig = above.get('mosquittoConfig')?.v as string | undefined;
  const lenient = above.get('lenient')?.v === true;
  const warnings: string[] = [];
  const mosquittoValues: Values = new Map();
  let mosquittoListeners: ListenerOptions[] | undefined;
  let mosquittoSources: string[] = [];
  if (mosquittoConfig !== undefined) {
    const m = readMosquittoConfig(mosquittoConfig, { lenient });
    warnings.push(...m.warnings);
    const put = (key: string, v: unknown): void => {
      mosquittoValues.set(key, { v, where: m.sources.get(key) ?? mosquittoConfig, layer: MOSQUITTO });
    };
    for (const [k, v] of Object.entries(m.limits)) put(`limits.${k}`, v);
    for (const [k, v] of Object.entries(m.auth)) put(`auth.${k}`, v);
    if (m.logLevel !== undefined) put('logLevel', m.logLevel);
    if (m.memory !== undefined) put('memory', m.memory);
    if (m.dataDir !== undefined) put('dataDir', m.dataDir);
    mosquittoListeners = m.listeners;
    mosquittoSources = m.listenerSources;
  } else if (lenient) {
    throw new ConfigError(above.get('lenient')!.where, 'applies to --mosquitto-config only');
  }
  // Precedence: flags, then the JSON file, then the mosquitto.conf, then the environment.
  const merged: Values = new Map([...envValues, ...mosquittoValues, ...file.values, ...args.values]);
  const get = <T>(key: string, dflt: T): T => (merged.has(key) ? (merged.get(key)!.v as T) : dflt);
  const limits: Partial<Limits> = {};
  for (const k of LIMIT_KEYS) {
    if (merged.has(`limits.${k}`)) (limits as Record<string, unknown>)[k] = merged.get(`limits.${k}`)!.v;
  }

  // Listeners: a list (JSON file, else mosquitto.conf) unless port settings come from a higher layer.
  const list =
    file.listeners !== undefined
      ? { listeners: file.listeners, layer: FILE, sources: file.listeners.map((_, i) => `${file.path}: listeners[${i}]`) }
      : mosquittoListeners
        ? { listeners: mosquittoListeners, layer: MOSQUITTO, sources: mosquittoSources }
        : undefined;
  const portLayer = Math.max(-1, ...PORT_KEYS.filter((k) => merged.has(k)).map((k) => merged.get(k)!.layer));
  let listeners: ListenerOptions[];
  let listenerSources: string[];
  if (list && list.layer >= portLayer) {
    for (const k of [...PORT_KEYS, ...FLAG_LISTENER_KEYS]) {
      const v = merged.get(k);
      if (v && v.layer > list.layer) {
        throw new ConfigError(v.where, `the listeners come from ${list.layer === FILE ? `listeners in ${configFile}` : mosquittoConfig}; set it there, or give --port (and --tls-port, ...) to make the listeners from flags`);
      }
    }
    listeners = list.listeners;
    listenerSources = list.sources;
  } else {
    listeners = flagListeners(merged);
    const portWhere: Record<string, string> = { tcp: 'port', tls: 'tlsPort', ws: 'wsPort', wss: 'wssPort' };
    listenerSources = listeners.map((l) => merged.get(portWhere[l.transport!]!)?.where ?? '--port (default 1883)');
  }

  const authValues: Record<string, unknown> = {};
  for (const k of AUTH_KEYS) {
    if (merged.has(`auth.${k}`)) authValues[k] = merged.get(`auth.${k}`)!.v;
  }
  if (file.loginGuard !== undefined) authValues.loginGuard = file.loginGuard;
  const auth = Object.keys(authValues).length > 0 ? (authValues as AuthOptions) : undefined;
  const authSources: Record<string, string> = {};
  for (const k of ['passwordFile', 'aclFile']) if (merged.has(`auth.${k}`)) authSources[k] = merged.get(`auth.${k}`)!.where;

  if (get<string | undefined>('httpHost', undefined) !== undefined && get<number | undefined>('httpPort', undefined) === undefined) {
    throw new ConfigError('--http-host', 'needs --http-port');
  }
  const adminToken = adminTokenOf(merged.get('adminTokenFile'), merged.get('adminToken'), merged.has('httpPort'));
  return {
    port: get('port', 1883),
    host: get<string | undefined>('host', undefined),
    listeners,
    listenerSources,
    memory: get('memory', false),
    dataDir: get('dataDir', './data'),
    durability: get<'process' | 'power'>('durability', 'process'),
    logLevel: get<LogLevel>('logLevel', 'info'),
    logFormat: get<LogFormat | undefined>('logFormat', undefined),
    limits,
    auth,
    authSources,
    sources: Object.fromEntries([...merged].map(([k, v]) => [k, v.where])),
    responseInformation: get<string | undefined>('responseInformation', undefined),
    closeTimeout: get('closeTimeout', 5),
    httpPort: get<number | undefined>('httpPort', undefined),
    httpHost: get<string | undefined>('httpHost', undefined),
    adminToken,
    sysInterval: get<number | undefined>('sysInterval', undefined),
    cluster: clusterOf(get<string | undefined>('cluster.redis', undefined), get<string | undefined>('cluster.nodeId', undefined), get<number | undefined>('cluster.leaseMs', undefined)),
    workers: get('workers', 1),
    configFile,
    mosquittoConfig,
    lenient,
    warnings,
    help: args.help,
    version: args.version,
    printSchema: args.printSchema,
  };
}

/** The admin token: the first line of --admin-token-file, or PETREL_ADMIN_TOKEN / adminToken (the higher layer wins). */
function adminTokenOf(file: Value | undefined, token: Value | undefined, http: boolean): string | undefined {
  const from = file !== undefined && (token === undefined || file.layer >= token.layer) ? file : token;
  if (from === undefined) return undefined;
  if (!http) throw new ConfigError(from.where, 'needs --http-port (the admin API is served by the HTTP listener)');
  let value = from.v as string;
  if (from === file) {
    try {
      value = readFileSync(value, 'utf8').split(/\r?\n/, 1)[0]!.trim();
    } catch (err) {
      throw new ConfigError(from.where, `cannot read the admin token file ${value}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    if (value === '') throw new ConfigError(from.where, `the first line of ${from.v as string} is empty; it must hold the admin token`);
  }
  if (/\s/.test(value)) throw new ConfigError(from.where, 'the admin token must not contain white space');
  return value;
}

function clusterOf(redis: string | undefined, nodeId: string | undefined, leaseMs: number | undefined): CliConfig['cluster'] {
  if (redis === undefined) {
    if (nodeId !== undefined) throw new ConfigError('--node-id', 'needs --cluster');
    return undefined;
  }
  const c: NonNullable<CliConfig['cluster']> = { redis };
  if (nodeId !== undefined) c.nodeId = nodeId;
  if (leaseMs !== undefined) c.leaseMs = leaseMs;
  return c;
}

/**
 * Check that the files the configuration names (certificates, keys, CAs, CRLs, password and ACL files) can be
 * read, so that a typo is reported with the flag, file key or mosquitto.conf line it came from.
 */
export function checkFiles(c: CliConfig): void {
  const readable = (file: string, where: string, what: string): void => {
    try {
      accessSync(file, constants.R_OK);
    } catch (err) {
      throw new ConfigError(where, `cannot read the ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  };
  c.listeners.forEach((l, i) => {
    const where = c.listenerSources[i] ?? `listeners[${i}]`;
    for (const k of ['cert', 'key', 'ca', 'crl'] as const) if (l[k] !== undefined) readable(l[k], where, `${k} file`);
    for (const [name, e] of Object.entries(l.sni ?? {})) {
      readable(e.cert, where, `sni ${name} cert file`);
      readable(e.key, where, `sni ${name} key file`);
    }
  });
  if (c.auth?.passwordFile !== undefined) readable(c.auth.passwordFile, c.authSources.passwordFile ?? 'auth.passwordFile', 'password file');
  if (c.auth?.aclFile !== undefined) readable(c.auth.aclFile, c.authSources.aclFile ?? 'auth.aclFile', 'ACL file');
}

/** Broker options for a CLI configuration. */
export function toBrokerOptions(c: CliConfig): BrokerOptions {
  const opts: BrokerOptions = {
    listeners: c.listeners,
    store: c.memory ? { type: 'memory' } : { type: 'sqlite', dataDir: c.dataDir, durability: c.durability },
    limits: c.limits,
    logLevel: c.logLevel,
    closeTimeout: c.closeTimeout,
  };
  if (c.logFormat !== undefined) opts.logFormat = c.logFormat;
  if (c.auth !== undefined) opts.auth = c.auth;
  if (c.responseInformation !== undefined) opts.responseInformation = c.responseInformation;
  if (c.httpPort !== undefined) opts.http = c.httpHost === undefined ? { port: c.httpPort } : { port: c.httpPort, host: c.httpHost };
  if (c.adminToken !== undefined && opts.http !== undefined) opts.http.adminToken = c.adminToken;
  if (c.sysInterval !== undefined) opts.sysInterval = c.sysInterval;
  if (c.cluster !== undefined) opts.cluster = c.cluster;
  return opts;
}

/** The settings, in the order of the table: for the schema (schema.ts) and the tests. */
export function settings(): readonly Readonly<Setting>[] {
  return SETTINGS;
}

/** The --help section of a setting. */
export function groupOf(st: Setting): Group {
  if (st.group !== undefined) return st.group;
  const section = st.key.split('.')[0];
  return section === 'cluster' ? 'Cluster' : section === 'auth' ? 'Security' : section === 'limits' ? 'Limits' : 'Operations';
}

const KiB = 1024;
function formatBytes(n: number): string {
  for (const [unit, size] of [['GiB', KiB ** 3], ['MiB', KiB ** 2], ['KiB', KiB]] as const) {
    if (n >= size && n % size === 0) return `${n / size} ${unit} (${n})`;
  }
  return `${n} bytes`;
}

/** A default as a person reads it: on/off, 1 MiB (1048576), 2 s (2000 ms), 10 s. */
export function formatDefault(st: Setting): string | undefined {
  if (st.dflt !== undefined) return st.dflt;
  const v = st.value;
  if (v === undefined) return undefined;
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  if (typeof v !== 'number') return String(v);
  if (st.unit === 'bytes') return v === 0 ? '0 (off)' : formatBytes(v);
  if (st.unit === 's') return `${v} s`;
  if (st.unit === 'ms') return v % 1000 === 0 ? `${v / 1000} s (${v} ms)` : `${v} ms`;
  return String(v);
}

/** The help sentence of a setting, with its default: capitalized, ending with a full stop (`glued`: for wrap()). */
export function helpSentence(st: Setting, glued = false): string {
  let d = st.describe.trim();
  if (/^[a-z]+\b/.test(d) && !/^[a-z]+\d/.test(d)) d = d[0]!.toUpperCase() + d.slice(1);
  if (!/[.!?]$/.test(d)) d += '.';
  const dflt = formatDefault(st);
  return dflt === undefined ? d : `${d} Default: ${glued && dflt.length <= 24 ? glue(dflt) : dflt}.`;
}

/** The value placeholder of a flag in --help. */
function argOf(st: Setting): string {
  if (st.arg !== undefined) return st.arg;
  const args: Partial<Record<Kind, string>> = { int: 'N', port: 'N', number: 'N', path: 'FILE', wspath: 'PATH', level: 'LEVEL', logformat: 'FORMAT', durability: 'MODE' };
  return args[st.kind] ?? 'VALUE';
}

/** A space that wrap() does not break at ("1 MiB", "env PETREL_PORT"). */
const NBSP = '\u00a0';
const glue = (s: string): string => s.replace(/ /g, NBSP);

/** Words of `text` in lines of at most `width` characters (a longer word gets its own line). */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/[ \t\n]+/).filter((w) => w !== '')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(line);
  return lines.map((l) => l.replaceAll(NBSP, ' '));
}

interface HelpRow {
  group: Group;
  /** The flag column: "--port N", or a config-file key. */
  left: string;
  sentence: string;
  /** Where else it is set: "config port, env PETREL_PORT". */
  meta: string | undefined;
}

/** The rows of --help: every setting not deprecated, the command's own flags and the config file's structured keys. */
export function helpRows(): HelpRow[] {
  const config: HelpRow = {
      group: 'Operations',
      left: '--config FILE',
      sentence: "Read this config file: JSON, YAML (.yaml, .yml) or TOML (.toml), by its extension; relative paths of the files it names are read from its directory.",
      meta: 'env PETREL_CONFIG; short -c',
    };
  const rows: HelpRow[] = SETTINGS.filter((st) => !st.deprecated).map((st) => {
    const left = st.flag === undefined ? `${st.key} ${argOf(st)}` : st.kind === 'bool' ? st.flag : `${st.flag} ${argOf(st)}`;
    const meta =
      st.flag === undefined && st.env === undefined ? `config file only: ${st.key}` : `${glue(`config ${st.key}`)}${st.env ? `, ${glue(`env ${st.env}`)}` : ''}`;
    return { group: groupOf(st), left, sentence: helpSentence(st, true), meta };
  });
  rows.unshift(config);
  rows.push(
    {
      group: 'Listeners',
      left: 'listeners [...]',
      sentence: 'A list of listeners of any transport (tcp, tls, ws, wss), each with its own port, host, TLS, WebSocket and PROXY settings; it replaces --port and the other port options of the same or lower precedence.',
      meta: 'config file only: listeners',
    },
    {
      group: 'Security',
      left: 'auth.loginGuard',
      sentence: 'After repeated failed logins from one address, refuse its CONNECTs for a while: true, false, or { maxFailures, windowSeconds, banSeconds, maxTracked }. Default: on with a password file.',
      meta: 'config file only: auth.loginGuard',
    },
    { group: 'Operations', left: '--print-schema', sentence: "Print the config file's JSON Schema (schema/petrel.schema.json) and exit.", meta: undefined },
    { group: 'Operations', left: '--help', sentence: 'Show this help and exit.', meta: 'short -h' },
    { group: 'Operations', left: '--version', sentence: 'Print the version and exit.', meta: 'short -v' },
  );
  return rows;
}

const GROUP_TITLES: Record<Group, string> = {
  Listeners: 'Listeners',
  Security: 'Security: TLS certificates, passwords, ACLs',
  Storage: 'Storage',
  Limits: 'Limits and MQTT features (under limits in the config file)',
  Operations: 'Operations',
  Cluster: 'Cluster',
};

export function helpText(width = 80): string {
  const col = 36;
  const out: string[] = [
    'Usage: petrel [options]',
    '       petrel passwd [-c] FILE USER   (the password file tool: petrel passwd)',
    '',
    ...wrap(
      'Petrel, an MQTT 3.1, 3.1.1 and 5.0 broker. Durable by default: sessions, queues and retained messages are kept in SQLite under --data-dir (./data).',
      width,
    ),
    '',
    ...wrap(
      'Every option is a flag, a key of the config file (--config) and a PETREL_* environment variable, as shown under it. ' +
        'Flags win over the config file, which wins over --mosquitto-config, which wins over the variables. ' +
        'A boolean option is turned on by its flag and off by --no-<flag> (--no-retain-available); in the file and the variables it is true or false.',
      width,
    ),
  ];
  const rows = helpRows();
  for (const group of GROUPS) {
    out.push('', GROUP_TITLES[group]);
    for (const r of rows.filter((x) => x.group === group)) {
      const text = wrap(r.sentence, width - col);
      const meta = r.meta === undefined ? [] : wrap(r.meta, width - col);
      const first = `  ${r.left}`;
      // A flag too long for its column puts its sentence on the next line.
      const lines = first.length <= col - 2 ? [first.padEnd(col) + text.shift()!] : [first];
      for (const l of [...text, ...meta]) lines.push(' '.repeat(col) + l);
      out.push(...lines);
    }
  }
  out.push(
    '',
    ...wrap('SIGHUP re-reads the TLS certificates and the password and ACL files; on an error the old ones stay. The config file is described in README.md (Configuration); editors check it with schema/petrel.schema.json.', width),
    '',
  );
  return out.join('\n');
}
