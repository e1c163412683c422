// Configuration of the `petrel` command: flags, then a JSON config file, then a mosquitto.conf
// (--mosquitto-config), then PETREL_* environment variables, in that order of precedence. Every bad value is
// reported with the key it came from and why (ConfigError), never as a stack trace.
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
import { dirname, isAbsolute, resolve } from 'node:path';
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
  responseInformation: string | undefined;
  closeTimeout: number;
  /** HTTP listener (/metrics, health): port and host, undefined when off. */
  httpPort: number | undefined;
  httpHost: string | undefined;
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
}

/** The limits, as flags (--max-packet-size) and env vars (PETREL_MAX_PACKET_SIZE). */
const LIMIT_KEYS = Object.keys(DEFAULT_LIMITS) as (keyof Limits)[];
const kebab = (k: string): string => k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
const envName = (k: string): string => 'PETREL_' + kebab(k).replace(/-/g, '_').toUpperCase();

type Kind = 'int' | 'port' | 'bool' | 'string' | 'path' | 'wspath' | 'level' | 'logformat' | 'durability' | 'number';

interface Setting {
  key: string; // name in the config file (camelCase; auth.* inside "auth")
  flag: string | undefined; // undefined: config file only
  env: string | undefined;
  kind: Kind;
  describe: string;
}

const s = (key: string, flag: string, env: string, kind: Kind, describe: string): Setting => ({ key, flag, env, kind, describe });

const SETTINGS: Setting[] = [
  s('port', '--port', 'PETREL_PORT', 'port', 'TCP port to listen on (default 1883; 0 picks a free port)'),
  s('host', '--host', 'PETREL_HOST', 'string', 'address to bind (default: all, IPv6 and IPv4)'),
  s('tlsPort', '--tls-port', 'PETREL_TLS_PORT', 'port', 'also listen for MQTT over TLS on this port (needs --cert and --key)'),
  s('cert', '--cert', 'PETREL_CERT', 'path', 'PEM certificate chain of the TLS and WSS listeners'),
  s('key', '--key', 'PETREL_KEY', 'path', 'PEM private key of the TLS and WSS listeners'),
  s('ca', '--ca', 'PETREL_CA', 'path', 'PEM CA bundle that client certificates are checked against'),
  s('requireCertificate', '--require-certificate', 'PETREL_REQUIRE_CERTIFICATE', 'bool', 'refuse TLS clients without a certificate signed by --ca (mTLS)'),
  s('wsPort', '--ws-port', 'PETREL_WS_PORT', 'port', 'also listen for MQTT over WebSocket on this port'),
  s('wssPort', '--wss-port', 'PETREL_WSS_PORT', 'port', 'also listen for MQTT over WebSocket over TLS on this port (needs --cert and --key)'),
  s('wsPath', '--ws-path', 'PETREL_WS_PATH', 'wspath', 'HTTP path of the WebSocket listeners (default /mqtt)'),
  s('proxyProtocol', '--proxy-protocol', 'PETREL_PROXY_PROTOCOL', 'bool', 'expect a PROXY protocol v1/v2 header (from 127.0.0.1 or ::1) on the listeners made from flags'),
  s('auth.passwordFile', '--password-file', 'PETREL_PASSWORD_FILE', 'path', 'Mosquitto password file (mosquitto_passwd or petrel passwd); anonymous clients are then refused'),
  s('auth.aclFile', '--acl-file', 'PETREL_ACL_FILE', 'path', "Mosquitto ACL file: what each user may publish and subscribe to"),
  s('auth.allowAnonymous', '--allow-anonymous', 'PETREL_ALLOW_ANONYMOUS', 'bool', 'accept clients without a user name even with a password file'),
  s('mosquittoConfig', '--mosquitto-config', 'PETREL_MOSQUITTO_CONFIG', 'path', "read a mosquitto.conf (listeners, TLS, password and ACL files, limits); flags and --config win over it"),
  s('lenient', '--lenient', 'PETREL_LENIENT', 'bool', 'with --mosquitto-config: skip unsupported directives with a warning instead of refusing to start'),
  s('dataDir', '--data-dir', 'PETREL_DATA_DIR', 'string', 'directory of the SQLite store (default ./data)'),
  s('memory', '--memory', 'PETREL_MEMORY', 'bool', 'keep everything in memory (nothing survives a restart)'),
  s('durability', '--durability', 'PETREL_DURABILITY', 'durability', "'process' (survive a crash, default) or 'power' (fsync every commit)"),
  s('logLevel', '--log-level', 'PETREL_LOG_LEVEL', 'level', `one of ${LOG_LEVELS.join(', ')} (default info)`),
  s('logFormat', '--log-format', 'PETREL_LOG_FORMAT', 'logformat', 'json (one JSON object a line) or pretty (for people); default pretty on a terminal, else json'),
  s('responseInformation', '--response-information', 'PETREL_RESPONSE_INFORMATION', 'string', 'Response Information for v5 clients that request it'),
  s('closeTimeout', '--close-timeout', 'PETREL_CLOSE_TIMEOUT', 'number', 'seconds to wait for connections on shutdown (default 5)'),
  s('httpPort', '--http-port', 'PETREL_HTTP_PORT', 'port', 'open the HTTP listener on this port: /metrics (Prometheus), /livez, /readyz (default: off)'),
  s('httpHost', '--http-host', 'PETREL_HTTP_HOST', 'string', 'address of the HTTP listener (default 127.0.0.1, loopback only)'),
  s('sysInterval', '--sys-interval', 'PETREL_SYS_INTERVAL', 'int', 'seconds between $SYS updates (default 10; 0 turns $SYS off)'),
  s('cluster.redis', '--cluster', 'PETREL_CLUSTER', 'string', 'run as one node of a cluster sharing this Redis (redis://host:port, rediss://..., or a Unix socket path)'),
  s('cluster.nodeId', '--node-id', 'PETREL_NODE_ID', 'string', 'name of this cluster node (default: host name and process id)'),
  s('workers', '--workers', 'PETREL_WORKERS', 'int', 'run N broker processes behind the same ports (cluster mode on a Redis; default 1)'),
  { key: 'cluster.leaseMs', flag: undefined, env: undefined, kind: 'int', describe: '' },
  { key: 'auth.maxConcurrentHashes', flag: undefined, env: undefined, kind: 'int', describe: '' },
  { key: 'auth.maxPendingHashes', flag: undefined, env: undefined, kind: 'int', describe: '' },
  ...LIMIT_KEYS.map<Setting>((k) => ({
    key: `limits.${k}`,
    flag: '--' + kebab(k),
    env: envName(k),
    kind: typeof DEFAULT_LIMITS[k] === 'boolean' ? 'bool' : 'int',
    describe: `limit ${k} (default ${String(DEFAULT_LIMITS[k])})`,
  })),
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
      if (st.key.startsWith('auth.') && n < 1) fail('must be an integer >= 1');
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
    if (st.env === undefined) continue;
    const raw = env[st.env];
    if (raw !== undefined && raw !== '') v.set(st.key, { v: parseValue(st, raw, st.env), where: st.env, layer: ENV });
  }
  return v;
}

const isObject = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === 'object' && !Array.isArray(x);

const LISTENER_KEYS = [
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
      for (const k of Object.keys(entry)) if (k !== 'cert' && k !== 'key' && k !== 'passphrase') throw new ConfigError(`${w}.${k}`, 'unknown key; use cert, key and passphrase');
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

const AUTH_KEYS = ['passwordFile', 'aclFile', 'allowAnonymous', 'loginGuard', 'maxConcurrentHashes', 'maxPendingHashes'];

function parseLoginGuard(raw: unknown, where: string): AuthOptions['loginGuard'] {
  if (typeof raw === 'boolean') return raw;
  if (!isObject(raw)) {
    throw new ConfigError(where, `must be true, false or { "maxFailures": N, "windowSeconds": S, "banSeconds": S, "maxTracked": N }, got ${JSON.stringify(raw)}`);
  }
  const out: { maxFailures?: number; windowSeconds?: number; banSeconds?: number; maxTracked?: number } = {};
  for (const [k, v] of Object.entries(raw)) {
    if (k !== 'maxFailures' && k !== 'windowSeconds' && k !== 'banSeconds' && k !== 'maxTracked') {
      throw new ConfigError(`${where}.${k}`, 'unknown key; use maxFailures, windowSeconds, banSeconds and maxTracked');
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

function fromFile(path: string): FileLayer {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('--config', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(path, `not valid JSON: ${(err as Error).message}`);
  }
  if (!isObject(doc)) throw new ConfigError(path, 'must be a JSON object');
  const base = dirname(resolve(path));
  const values: Values = new Map();
  const put = (st: Setting, raw: unknown, where: string): void => {
    values.set(st.key, { v: parseValue(st, raw, where, st.kind === 'path' ? base : undefined), where, layer: FILE });
  };
  let listeners: ListenerOptions[] | undefined;
  let loginGuard: AuthOptions['loginGuard'] | undefined;
  for (const [k, raw] of Object.entries(doc)) {
    if (k === 'limits') {
      if (!isObject(raw)) throw new ConfigError(`${path}: limits`, 'must be an object');
      for (const [lk, lv] of Object.entries(raw)) {
        const st = BY_KEY.get(`limits.${lk}`);
        if (!st) throw new ConfigError(`${path}: limits.${lk}`, `unknown limit${didYouMean(lk, LIMIT_KEYS)}; known limits are ${LIMIT_KEYS.join(', ')}`);
        put(st, lv, `${path}: limits.${lk}`);
      }
      continue;
    }
    if (k === 'auth') {
      if (!isObject(raw)) throw new ConfigError(`${path}: auth`, 'must be an object');
      for (const [ak, av] of Object.entries(raw)) {
        if (ak === 'loginGuard') {
          loginGuard = parseLoginGuard(av, `${path}: auth.loginGuard`);
          continue;
        }
        const st = BY_KEY.get(`auth.${ak}`);
        if (!st) throw new ConfigError(`${path}: auth.${ak}`, `unknown key${didYouMean(ak, AUTH_KEYS)}; known keys are ${AUTH_KEYS.join(', ')}`);
        put(st, av, `${path}: auth.${ak}`);
      }
      continue;
    }
    if (k === 'cluster') {
      if (!isObject(raw)) throw new ConfigError(`${path}: cluster`, 'must be an object: { "redis": "redis://host:port", "nodeId": "..." }');
      const keys = ['redis', 'nodeId', 'leaseMs'];
      for (const [ck, cv] of Object.entries(raw)) {
        const st = BY_KEY.get(`cluster.${ck}`);
        if (!st) throw new ConfigError(`${path}: cluster.${ck}`, `unknown key${didYouMean(ck, keys)}; known keys are ${keys.join(', ')}`);
        put(st, cv, `${path}: cluster.${ck}`);
      }
      continue;
    }
    if (k === 'listeners') {
      if (!Array.isArray(raw)) throw new ConfigError(`${path}: listeners`, 'must be an array of { "transport": "tcp", "port": N, "host": "..." }');
      listeners = raw.map((l: unknown, i) => parseListener(l, `${path}: listeners[${i}]`, base));
      continue;
    }
    const st = BY_KEY.get(k);
    if (!st || k.includes('.')) {
      const known = SETTINGS.filter((x) => !x.key.includes('.')).map((x) => x.key);
      throw new ConfigError(`${path}: ${k}`, `unknown key${didYouMean(k, [...known, 'listeners', 'limits', 'auth'])}; known keys are ${known.join(', ')}, listeners, limits, auth`);
    }
    put(st, raw, `${path}: ${k}`);
  }
  return { values, listeners, loginGuard, path };
}

function fromArgs(argv: readonly string[]): { values: Values; config: string | undefined; help: boolean; version: boolean } {
  const values: Values = new Map();
  let config: string | undefined;
  let help = false;
  let version = false;
  const byFlag = new Map(SETTINGS.filter((x) => x.flag !== undefined).map((x) => [x.flag!, x]));
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
    if (!st) throw new ConfigError(arg, `unknown option${didYouMean(arg, [...byFlag.keys()])} (see petrel --help)`);
    if (st.kind === 'bool' && inline === undefined) {
      values.set(st.key, { v: true, where: arg, layer: FLAGS });
      continue;
    }
    values.set(st.key, { v: parseValue(st, take(), arg), where: arg, layer: FLAGS });
  }
  return { values, config, help, version };
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
    if (merged.has(k) && !tls) throw new ConfigError(whereOf(k), 'applies to TLS listeners: give --tls-port or --wss-port too');
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
    responseInformation: get<string | undefined>('responseInformation', undefined),
    closeTimeout: get('closeTimeout', 5),
    httpPort: get<number | undefined>('httpPort', undefined),
    httpHost: get<string | undefined>('httpHost', undefined),
    sysInterval: get<number | undefined>('sysInterval', undefined),
    cluster: clusterOf(get<string | undefined>('cluster.redis', undefined), get<string | undefined>('cluster.nodeId', undefined), get<number | undefined>('cluster.leaseMs', undefined)),
    workers: get('workers', 1),
    configFile,
    mosquittoConfig,
    lenient,
    warnings,
    help: args.help,
    version: args.version,
  };
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
  if (c.sysInterval !== undefined) opts.sysInterval = c.sysInterval;
  if (c.cluster !== undefined) opts.cluster = c.cluster;
  return opts;
}

export function helpText(): string {
  const arg = (kind: Kind): string =>
    kind === 'string' ? 'VALUE' : kind === 'path' ? 'FILE' : kind === 'wspath' ? 'PATH' : kind === 'level' ? 'LEVEL' : kind === 'logformat' ? 'FORMAT' : kind === 'durability' ? 'MODE' : 'N';
  const rows = SETTINGS.filter((x) => x.flag !== undefined).map((x) => {
    const flag = x.kind === 'bool' ? x.flag! : `${x.flag!} ${arg(x.kind)}`;
    return `  ${flag.padEnd(34)} ${x.describe}\n  ${''.padEnd(34)} env ${x.env!}`;
  });
  return [
    'Usage: petrel [options]',
    '',
    'Petrel, an MQTT 3.1, 3.1.1 and 5.0 broker. Durable by default: sessions, queues and retained',
    'messages are kept in SQLite under --data-dir (./data).',
    '',
    'Options (flags override the config file, which overrides --mosquitto-config, which overrides',
    'PETREL_* environment variables; a listener list in a file replaces --port and the other port',
    'settings of the same or lower precedence):',
    '  --config FILE                      JSON config file (env PETREL_CONFIG); keys as in README.md;',
    "                                     relative paths in it are read from the file's directory",
    ...rows,
    '  --help                             show this help',
    '  --version                          print the version',
    '',
    'SIGHUP re-reads the TLS certificates and the password and ACL files; on an error the old ones stay.',
    '',
  ].join('\n');
}
