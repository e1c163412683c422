// `petrel --mosquitto-config FILE`: reads a mosquitto.conf (Mosquitto 2.0's format, mosquitto.conf(5) and
// src/conf.c) into Petrel's options. Every directive is either mapped or reported by name and line: an error, or
// with --lenient a warning. Nothing is ignored in silence.
//
// The format, as Mosquitto reads it: one directive per line, its value after a space; a line starting with # is a
// comment. Numbers and booleans are one word (booleans: true, false, 1, 0); paths and other strings are the rest of
// the line, trimmed. Listener settings (cafile, certfile, protocol, ...) apply to the `listener` line they follow;
// before the first `listener` line of a file (each included file starts there again) they apply to the default
// listener, which `port` and `bind_address` also set and which exists only when one of them was given. Without any
// listener Mosquitto listens on localhost:1883 only and allows anonymous clients ("local only mode"); with
// listeners allow_anonymous defaults to false. `include_dir` (main file only) reads the directory's *.conf files
// sorted case-insensitively, upper case first on a tie (00.conf, A.conf, a.conf, B.conf).
//
// Where Petrel differs (each is documented in the report of the mapping, docs and --help):
// - relative paths (password_file, certfile, include_dir, persistence_location, ...) resolve against the
//   directory of the file that names them, not the working directory;
// - a tab separates words like a space, and `# text` after a one-word value is a comment; any other extra word
//   is an error (Mosquitto would read `max_keepalive 60 s` as 60);
// - a value Mosquitto would accept but Petrel cannot honour (tls_version tlsv1.1, different authentication per
//   listener, a Unix socket listener, cafile without certfile) is an error naming its line.

// The mapping (Petrel option <- directive):
//   listeners[]                       <- listener PORT [ADDRESS] (one each; port 0 / Unix sockets refused), and the
//                                        default listener of port / bind_address (placed last, as Mosquitto does)
//   listeners[].transport             <- tcp; tls with certfile + keyfile; ws with protocol websockets; wss with both
//   listeners[].host                  <- the listener's ADDRESS, bind_address; socket_domain ipv4/ipv6 without an
//                                        address binds 0.0.0.0 / :: (:: may accept IPv4 too where the OS is dual stack)
//   listeners[].cert / key / ca       <- certfile / keyfile / cafile
//   listeners[].requireCertificate    <- require_certificate (needs cafile)
//   listeners[].identityAsUsername    <- 'cn' for use_identity_as_username, 'subject' for use_subject_as_username
//   listeners[].minVersion            <- tls_version tlsv1.2 / tlsv1.3 (tlsv1.1 refused)
//   listeners[].ciphers               <- ciphers
//   listeners[].maxConnections        <- max_connections (-1 and 0: no limit)
//   auth.passwordFile / aclFile       <- password_file / acl_file
//   auth.allowAnonymous               <- allow_anonymous; unset: false with listeners, true in local only mode
//   (per_listener_settings true)      <- accepted when every listener has the same password_file, acl_file and
//                                        allow_anonymous; otherwise an error (Petrel's authentication is global)
//   limits.maxKeepAlive               <- max_keepalive (10..65535)
//   limits.maxPacketSize              <- max_packet_size (20..268435460); message_size_limit N > 0 gives at most
//                                        N + 1024 (Petrel limits packets, not payloads: a warning says so)
//   limits.maxInflight                <- max_inflight_messages (0 = no maximum = 65535)
//   limits.maxQueuedMessages / Bytes  <- max_queued_messages / max_queued_bytes (0 = no maximum); Petrel counts the
//                                        in-flight messages in the queue too
//   limits.retainAvailable            <- retain_available
//   limits.maxQoS                     <- max_qos when the same on every listener (else an error)
//   store                             <- persistence false: memory; true: SQLite; unset: Petrel's default (SQLite)
//   store.dataDir                     <- persistence_location (petrel.db is kept there)
//   logLevel                          <- log_type, the most verbose type given: all, debug, subscribe, unsubscribe,
//                                        websockets, internal -> debug; information, notice -> info; warning ->
//                                        warn; error -> error; none -> silent; unset: Petrel's default (info)
//   (files of a directory)            <- include_dir

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { isIP } from 'node:net';
import type { AuthOptions, Limits, ListenerOptions } from '../broker/options.js';
import type { LogLevel } from '../broker/logger.js';
import { ConfigError } from './config-error.js';

export interface MosquittoConfig {
  /** The listeners, in file order, the default listener (port/bind_address) last as in Mosquitto. */
  listeners: ListenerOptions[];
  /** Where each listener was defined (`file:line: listener`), parallel to listeners. */
  listenerSources: string[];
  auth: AuthOptions;
  limits: Partial<Limits>;
  /** From log_type. */
  logLevel?: LogLevel;
  /** From persistence: false = the memory store, true = SQLite. */
  memory?: boolean;
  /** From persistence_location. */
  dataDir?: string;
  /** Where each setting came from (`file:line: directive`), by Petrel key (limits.maxQoS, auth.passwordFile, ...). */
  sources: Map<string, string>;
  /** Unsupported directives skipped with --lenient, and notes on approximate mappings: print them. */
  warnings: string[];
}

/** Directives of Mosquitto 2.0 (src/conf.c) that Petrel does not read: named so in the message. */
const MOSQUITTO_DIRECTIVES = new Set(
  ('address addresses allow_duplicate_messages allow_zero_length_clientid auth_opt_ auth_plugin auth_plugin_deny_special_chars ' +
    'auto_id_prefix autosave_interval autosave_on_changes bind_interface bridge_alpn bridge_attempt_unsubscribe ' +
    'bridge_bind_address bridge_cafile bridge_capath bridge_certfile bridge_identity bridge_insecure bridge_keyfile ' +
    'bridge_max_packet_size bridge_outgoing_retain bridge_protocol_version bridge_psk bridge_require_ocsp bridge_tls_version ' +
    'capath check_retain_source ciphers_tls1.3 cleansession clientid clientid_prefixes connection connection_messages crlfile ' +
    'dhparamfile http_dir idle_timeout keepalive_interval local_cleansession local_clientid local_password local_username ' +
    'log_dest log_facility log_timestamp log_timestamp_format max_inflight_bytes max_topic_alias memory_limit mount_point ' +
    'notification_topic notifications notifications_local_only password persistence_file persistent_client_expiration ' +
    'pid_file plugin plugin_opt_ psk_file psk_hint queue_qos0_messages remote_clientid remote_password remote_username ' +
    'restart_timeout retain_expiry_interval round_robin set_tcp_nodelay start_type sys_interval threshold tls_engine ' +
    'tls_engine_kpass_sha1 tls_keyform topic try_private upgrade_outgoing_qos use_username_as_clientid user username ' +
    'websockets_headers_size websockets_log_level').split(' '),
);

/** message_size_limit limits payloads; Petrel limits packets: this much room is left for the topic and properties. */
export const MESSAGE_SIZE_HEADROOM = 1024;

interface At {
  file: string;
  line: number;
  directive: string;
}
const where = (at: At): string => `${at.file}:${at.line}: ${at.directive}`;
const fail = (at: At, reason: string): never => {
  throw new ConfigError(where(at), reason);
};

interface Setting<T> {
  value: T;
  at: At;
}

interface Security {
  passwordFile?: Setting<string>;
  aclFile?: Setting<string>;
  allowAnonymous?: Setting<boolean>;
}

interface MListener {
  /** The `listener` line, or undefined for the default listener. */
  at: At | undefined;
  port?: Setting<number>;
  host?: Setting<string>;
  used: boolean;
  protocol?: Setting<'mqtt' | 'websockets'>;
  cafile?: Setting<string>;
  certfile?: Setting<string>;
  keyfile?: Setting<string>;
  requireCertificate?: Setting<boolean>;
  identity?: Setting<boolean>;
  subject?: Setting<boolean>;
  tlsVersion?: Setting<'TLSv1.2' | 'TLSv1.3'>;
  ciphers?: Setting<string>;
  maxConnections?: Setting<number>;
  socketDomain?: Setting<'ipv4' | 'ipv6'>;
  maxQos?: Setting<number>;
  security: Security;
}

const newListener = (at: At | undefined): MListener => ({ at, used: at !== undefined, security: {} });

interface State {
  lenient: boolean;
  warnings: string[];
  listeners: MListener[];
  def: MListener;
  cur: MListener;
  perListener: Setting<boolean> | undefined;
  /** A security directive was seen (per_listener_settings must come before, as in Mosquitto). */
  securitySeen: At | undefined;
  global: Security;
  limits: Map<keyof Limits, Setting<number | boolean>>;
  messageSizeLimit?: Setting<number>;
  persistence?: Setting<boolean>;
  persistenceLocation?: Setting<string>;
  logTypes?: { types: Set<string>; at: At };
  /** Files read so far (an include_dir must not read the main file again). */
  mainFile: string;
}

/** The words of a line: split on spaces and tabs. */
function words(s: string): string[] {
  return s.split(/[ \t]+/).filter((w) => w !== '');
}

/** A one-word value; `# comment` may follow it. */
function oneWord(at: At, rest: string): string {
  const w = words(rest);
  if (w.length === 0) fail(at, 'needs a value');
  if (w.length > 1 && !w[1]!.startsWith('#')) fail(at, `takes one value, got ${JSON.stringify(rest.trim())}`);
  return w[0]!;
}

function int(at: At, rest: string): number {
  const w = oneWord(at, rest);
  if (!/^-?\d+$/.test(w) || !Number.isSafeInteger(Number(w))) fail(at, `must be an integer, got ${JSON.stringify(w)}`);
  return Number(w);
}

function bool(at: At, rest: string): boolean {
  const w = oneWord(at, rest);
  // Mosquitto's conf__parse_bool: exactly these four words.
  if (w === 'true' || w === '1') return true;
  if (w === 'false' || w === '0') return false;
  return fail(at, `must be true or false, got ${JSON.stringify(w)}`);
}

/** A string value: the rest of the line, trimmed (Mosquitto's conf__parse_string); given twice in one scope is an error. */
function str(at: At, rest: string, previous: Setting<string> | undefined): string {
  const v = rest.trim();
  if (v === '') fail(at, 'needs a value');
  if (previous) fail(at, `given twice (first at ${previous.at.file}:${previous.at.line})`);
  return v;
}

function path(at: At, rest: string, previous: Setting<string> | undefined): string {
  const v = str(at, rest, previous);
  return isAbsolute(v) ? v : resolve(dirname(at.file), v);
}

function unsupported(st: State, at: At, reason: string): void {
  const message = `${where(at)}: ${reason}`;
  if (!st.lenient) throw new ConfigError(where(at), reason + ' (petrel --lenient skips it with a warning)');
  st.warnings.push(`${message}; skipped (--lenient)`);
}

function securityScope(st: State, at: At): Security {
  st.securitySeen ??= at;
  if (st.perListener?.value) {
    // As in conf.c, a password_file makes the default listener exist; acl_file and allow_anonymous do not.
    if (at.directive === 'password_file') st.cur.used = true;
    return st.cur.security;
  }
  return st.global;
}

/** Mosquitto's include_dir order: case-insensitive, and on a tie upper case before lower case (scmp_p). */
export function compareIncludeNames(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    const ux = String.fromCharCode(x).toUpperCase().charCodeAt(0);
    const uy = String.fromCharCode(y).toUpperCase().charCodeAt(0);
    if (ux !== uy) return ux - uy;
    if (x !== y) return x - y;
  }
  return a.length - b.length;
}

function readFile(file: string, at: At | undefined): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const why = `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`;
    if (at) fail(at, why);
    throw new ConfigError('--mosquitto-config', why);
  }
}

function readOne(st: State, file: string, level: number): void {
  const text = readFile(file, undefined);
  const lines = text.split(/\r?\n/);
  // Each file starts with the default listener as the current one (conf.c: config__read_file_core).
  st.cur = st.def;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.replace(/\r$/, '');
    const trimmed = raw.replace(/^[ \t]+/, '');
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const m = /^(\S+)(?:[ \t]+(.*))?$/.exec(trimmed)!;
    const directive = m[1]!;
    const rest = m[2] ?? '';
    const at: At = { file, line: i + 1, directive };
    directiveOf(st, at, rest, level);
  }
}

function listenerDirective(st: State, _at: At): MListener {
  st.cur.used = true;
  return st.cur;
}

function setLimit(st: State, at: At, key: keyof Limits, value: number | boolean): void {
  st.limits.set(key, { value, at });
}

function directiveOf(st: State, at: At, rest: string, level: number): void {
  const d = at.directive;
  switch (d) {
    case 'listener': {
      const all = words(rest);
      const hash = all.findIndex((x) => x.startsWith('#'));
      const w = hash < 0 ? all : all.slice(0, hash);
      if (w.length === 0) fail(at, 'needs a port');
      const port = w[0]!;
      if (!/^\d+$/.test(port) || Number(port) > 65535) fail(at, `port must be an integer from 1 to 65535, got ${JSON.stringify(port)}`);
      let host = w[1];
      if (Number(port) === 0) fail(at, 'port 0 is a Unix socket listener in Mosquitto; Petrel has none');
      if (w.length > 2) fail(at, `takes a port and a bind address, got ${JSON.stringify(rest.trim())}`);
      for (const l of st.listeners) {
        if (l.port!.value === Number(port) && l.host?.value === host) fail(at, `port ${port}${host ? ' on ' + host : ''} is already a listener (line ${l.at!.line})`);
      }
      const l = newListener(at);
      l.port = { value: Number(port), at };
      if (host !== undefined) {
        if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
        l.host = { value: host, at };
      }
      st.listeners.push(l);
      st.cur = l;
      return;
    }
    case 'port': {
      const n = int(at, rest);
      if (n < 1 || n > 65535) fail(at, `must be an integer from 1 to 65535, got ${n}`);
      if (st.def.port) st.warnings.push(`${where(at)}: the default listener's port is given again (line ${st.def.port.at.line}); the last one is used, as in Mosquitto`);
      st.def.port = { value: n, at };
      st.def.used = true;
      return;
    }
    case 'bind_address': {
      st.def.host = { value: str(at, rest, st.def.host), at };
      st.def.used = true;
      return;
    }
    case 'protocol': {
      const v = oneWord(at, rest);
      if (v !== 'mqtt' && v !== 'websockets') fail(at, `must be mqtt or websockets, got ${JSON.stringify(v)}`);
      listenerDirective(st, at).protocol = { value: v as 'mqtt' | 'websockets', at };
      return;
    }
    case 'socket_domain': {
      const v = oneWord(at, rest);
      if (v !== 'ipv4' && v !== 'ipv6') fail(at, `must be ipv4 or ipv6, got ${JSON.stringify(v)}`);
      listenerDirective(st, at).socketDomain = { value: v as 'ipv4' | 'ipv6', at };
      return;
    }
    case 'cafile':
    case 'certfile':
    case 'keyfile': {
      const l = listenerDirective(st, at);
      const key = d === 'cafile' ? 'cafile' : d === 'certfile' ? 'certfile' : 'keyfile';
      l[key] = { value: path(at, rest, l[key]), at };
      return;
    }
    case 'ciphers': {
      const l = listenerDirective(st, at);
      l.ciphers = { value: str(at, rest, l.ciphers), at };
      return;
    }
    case 'tls_version': {
      const l = listenerDirective(st, at);
      const v = str(at, rest, l.tlsVersion as Setting<string> | undefined);
      if (v === 'tlsv1.2') l.tlsVersion = { value: 'TLSv1.2', at };
      else if (v === 'tlsv1.3') l.tlsVersion = { value: 'TLSv1.3', at };
      else if (v === 'tlsv1.1') fail(at, 'tlsv1.1 is not supported: Petrel accepts TLS 1.2 and 1.3 only (use tlsv1.2)');
      else fail(at, `must be tlsv1.2 or tlsv1.3, got ${JSON.stringify(v)}`);
      return;
    }
    case 'require_certificate':
      listenerDirective(st, at).requireCertificate = { value: bool(at, rest), at };
      return;
    case 'use_identity_as_username':
      listenerDirective(st, at).identity = { value: bool(at, rest), at };
      return;
    case 'use_subject_as_username':
      listenerDirective(st, at).subject = { value: bool(at, rest), at };
      return;
    case 'max_connections': {
      const n = int(at, rest);
      // Mosquitto: -1 (any negative) and 0 mean no limit (net.c counts only when max_connections > 0).
      listenerDirective(st, at).maxConnections = { value: n > 0 ? n : 0, at };
      return;
    }
    case 'max_qos': {
      const n = int(at, rest);
      if (n < 0 || n > 2) fail(at, `must be 0, 1 or 2, got ${n}`);
      listenerDirective(st, at).maxQos = { value: n, at };
      return;
    }
    case 'per_listener_settings': {
      const v = bool(at, rest);
      if (v && st.securitySeen) fail(at, `must come before any security setting (${where(st.securitySeen)}), as in Mosquitto`);
      st.perListener = { value: v, at };
      return;
    }
    case 'password_file': {
      const s = securityScope(st, at);
      s.passwordFile = { value: path(at, rest, s.passwordFile), at };
      return;
    }
    case 'acl_file': {
      const s = securityScope(st, at);
      s.aclFile = { value: path(at, rest, s.aclFile), at };
      return;
    }
    case 'allow_anonymous': {
      const s = securityScope(st, at);
      s.allowAnonymous = { value: bool(at, rest), at };
      return;
    }
    case 'max_keepalive': {
      const n = int(at, rest);
      if (n < 10 || n > 65535) fail(at, `must be an integer from 10 to 65535, got ${n}`);
      setLimit(st, at, 'maxKeepAlive', n);
      return;
    }
    case 'max_packet_size': {
      const n = int(at, rest);
      if (n < 20 || n > 268_435_460) fail(at, `must be an integer from 20 to 268435460, got ${n}`);
      setLimit(st, at, 'maxPacketSize', n);
      return;
    }
    case 'message_size_limit': {
      const n = int(at, rest);
      if (n < 0 || n > 268_435_455) fail(at, `must be an integer from 0 to 268435455, got ${n}`);
      st.messageSizeLimit = { value: n, at };
      return;
    }
    case 'max_inflight_messages': {
      const n = int(at, rest);
      if (n > 65535) fail(at, `must be at most 65535, got ${n}`);
      // Mosquitto: 0 (and negative, and 65535) mean no maximum; Petrel's largest is 65535.
      setLimit(st, at, 'maxInflight', n <= 0 ? 65535 : n);
      return;
    }
    case 'max_queued_messages': {
      const n = int(at, rest);
      setLimit(st, at, 'maxQueuedMessages', n <= 0 ? Number.MAX_SAFE_INTEGER : n);
      return;
    }
    case 'max_queued_bytes': {
      const n = int(at, rest);
      setLimit(st, at, 'maxQueuedBytes', n <= 0 ? Number.MAX_SAFE_INTEGER : n);
      return;
    }
    case 'retain_available':
      setLimit(st, at, 'retainAvailable', bool(at, rest));
      return;
    case 'persistence':
      st.persistence = { value: bool(at, rest), at };
      return;
    case 'persistence_location': {
      const v = path(at, rest, st.persistenceLocation).replace(/(.)\/+$/, '$1');
      st.persistenceLocation = { value: v, at };
      return;
    }
    case 'log_type': {
      const v = oneWord(at, rest);
      const known = ['none', 'information', 'notice', 'warning', 'error', 'debug', 'subscribe', 'unsubscribe', 'websockets', 'internal', 'all'];
      if (!known.includes(v)) fail(at, `must be one of ${known.join(', ')}, got ${JSON.stringify(v)}`);
      // Mosquitto: `none` and `all` replace the set, the others add to it; the lines accumulate.
      const types = v === 'none' || v === 'all' ? new Set<string>() : (st.logTypes?.types ?? new Set<string>());
      types.add(v);
      st.logTypes = { types, at };
      return;
    }
    case 'include_dir': {
      if (level > 0) {
        unsupported(st, at, 'include_dir is read only in the main configuration file, as in Mosquitto');
        return;
      }
      const v = rest.trim();
      if (v === '') fail(at, 'needs a directory');
      const dir = isAbsolute(v) ? v : resolve(dirname(at.file), v);
      let names: string[];
      try {
        names = readdirSync(dir);
      } catch (err) {
        return fail(at, `cannot read the directory ${dir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
      }
      const files = names
        .filter((n) => n.length > 5 && n.endsWith('.conf'))
        .sort(compareIncludeNames)
        .map((n) => join(dir, n))
        .filter((f) => {
          try {
            return statSync(f).isFile();
          } catch {
            return false;
          }
        });
      const cur = st.cur;
      for (const f of files) {
        if (resolve(f) === resolve(st.mainFile)) fail(at, `${dir} holds the main configuration file; Mosquitto forbids it`);
        readOne(st, f, level + 1);
      }
      // The rest of the main file continues with the listener it had (Mosquitto keeps its own cur_listener).
      st.cur = cur;
      return;
    }
    default:
      if (MOSQUITTO_DIRECTIVES.has(d) || d.startsWith('auth_opt_') || d.startsWith('plugin_opt_')) {
        unsupported(st, at, 'a Mosquitto directive that Petrel does not support');
      } else {
        unsupported(st, at, 'unknown directive');
      }
  }
}

/** The log level for a set of Mosquitto log types: the most verbose one wins. */
export function logLevelOf(types: Set<string>): LogLevel {
  if (types.has('all') || types.has('debug') || types.has('subscribe') || types.has('unsubscribe') || types.has('websockets') || types.has('internal')) {
    return 'debug';
  }
  if (types.has('information') || types.has('notice')) return 'info';
  if (types.has('warning')) return 'warn';
  if (types.has('error')) return 'error';
  return 'silent';
}

function toListener(l: MListener): ListenerOptions {
  const label = l.at ? `the listener of line ${l.at.line}` : 'the default listener';
  const tls = l.certfile !== undefined && l.keyfile !== undefined;
  if (l.certfile && !l.keyfile) fail(l.certfile.at, `${label} has certfile but no keyfile; TLS needs both`);
  if (l.keyfile && !l.certfile) fail(l.keyfile.at, `${label} has keyfile but no certfile; TLS needs both`);
  if (!tls) {
    for (const s of [l.cafile, l.requireCertificate, l.tlsVersion, l.ciphers, l.identity, l.subject]) {
      if (s) fail(s.at, `${label} has no TLS (certfile and keyfile): this setting would have no effect`);
    }
  }
  const ws = l.protocol?.value === 'websockets';
  const out: ListenerOptions = {
    transport: tls ? (ws ? 'wss' : 'tls') : ws ? 'ws' : 'tcp',
    port: l.port?.value ?? 1883,
  };
  let host = l.host?.value;
  if (l.socketDomain) {
    const family = l.socketDomain.value === 'ipv4' ? 4 : 6;
    if (host === undefined) host = family === 4 ? '0.0.0.0' : '::';
    else if (isIP(host) !== 0 && isIP(host) !== family) fail(l.socketDomain.at, `${label} binds ${host}, not an ${l.socketDomain.value} address`);
  }
  if (host !== undefined) out.host = host;
  if (tls) {
    out.cert = l.certfile!.value;
    out.key = l.keyfile!.value;
    if (l.cafile) out.ca = l.cafile.value;
    if (l.requireCertificate?.value) {
      if (!l.cafile) fail(l.requireCertificate.at, `${label} requires client certificates but has no cafile to check them against`);
      out.requireCertificate = true;
    }
    if (l.tlsVersion) out.minVersion = l.tlsVersion.value;
    if (l.ciphers) out.ciphers = l.ciphers.value;
    // use_identity_as_username takes priority over use_subject_as_username (mosquitto.conf(5)).
    const id = l.identity?.value ? l.identity : l.subject?.value ? l.subject : undefined;
    if (id) {
      if (!out.requireCertificate) fail(id.at, `${label} needs require_certificate true for the certificate to give the username`);
      out.identityAsUsername = id === l.identity ? 'cn' : 'subject';
    }
  }
  if (l.maxConnections && l.maxConnections.value > 0) out.maxConnections = l.maxConnections.value;
  return out;
}

/** Read a mosquitto.conf (and its include_dir files). Throws ConfigError naming `file:line: directive`. */
export function readMosquittoConfig(file: string, options: { lenient?: boolean } = {}): MosquittoConfig {
  const mainFile = resolve(file);
  const def = newListener(undefined);
  def.used = false;
  const st: State = {
    lenient: options.lenient === true,
    warnings: [],
    listeners: [],
    def,
    cur: def,
    perListener: undefined,
    securitySeen: undefined,
    global: {},
    limits: new Map(),
    mainFile,
  };
  readOne(st, mainFile, 0);

  const all = [...st.listeners, ...(st.def.used ? [st.def] : [])];
  if (!st.def.used) {
    // per_listener_settings: acl_file or allow_anonymous before any listener belong to a default listener that
    // does not exist; Mosquitto drops them without a word.
    for (const s of [st.def.security.aclFile, st.def.security.allowAnonymous]) {
      if (s) unsupported(st, s.at, 'with per_listener_settings true this applies to the default listener, which is not created (no port, bind_address or password_file before the first listener); move it after a listener line');
    }
  }
  const sources = new Map<string, string>();
  const limits: Partial<Limits> = {};
  for (const [k, s] of st.limits) {
    (limits as Record<string, unknown>)[k] = s.value;
    sources.set(`limits.${k}`, where(s.at));
  }
  if (st.messageSizeLimit && st.messageSizeLimit.value > 0) {
    const n = st.messageSizeLimit.value + MESSAGE_SIZE_HEADROOM;
    if (limits.maxPacketSize === undefined || n < limits.maxPacketSize) {
      limits.maxPacketSize = Math.min(n, 268_435_460);
      sources.set('limits.maxPacketSize', where(st.messageSizeLimit.at));
    }
    st.warnings.push(
      `${where(st.messageSizeLimit.at)}: Petrel limits whole packets, not payloads: maximum packet size ${limits.maxPacketSize} bytes ` +
        `(the limit plus ${MESSAGE_SIZE_HEADROOM} for topic and properties); a larger PUBLISH closes the connection instead of being dropped`,
    );
  }

  const localOnly = all.length === 0;
  const listeners = localOnly ? [{ transport: 'tcp' as const, port: 1883, host: '127.0.0.1' }] : all.map(toListener);
  if (localOnly) {
    st.warnings.push(`${mainFile}: no listener: local only mode as in Mosquitto (127.0.0.1 port 1883, anonymous clients allowed)`);
  }

  // max_qos is per listener in Mosquitto, global in Petrel.
  const qos = all.map((l) => l.maxQos);
  const firstQos = qos.find((q) => q !== undefined);
  if (firstQos) {
    const differing = qos.find((q) => (q?.value ?? 2) !== firstQos.value);
    if (differing !== undefined || qos.some((q) => q === undefined)) {
      fail(differing?.at ?? firstQos.at, 'differs between listeners; Petrel has one maximum QoS for all listeners');
    }
    limits.maxQoS = firstQos.value as 0 | 1 | 2;
    sources.set('limits.maxQoS', where(firstQos.at));
  }

  // Authentication: global in Petrel. With per_listener_settings the listeners must agree.
  const auth: AuthOptions = {};
  const anonymousDefault = localOnly;
  const security = (s: Security): { passwordFile?: string; aclFile?: string; allowAnonymous: boolean } => {
    const o: { passwordFile?: string; aclFile?: string; allowAnonymous: boolean } = { allowAnonymous: s.allowAnonymous?.value ?? anonymousDefault };
    if (s.passwordFile) o.passwordFile = s.passwordFile.value;
    if (s.aclFile) o.aclFile = s.aclFile.value;
    return o;
  };
  let chosen: Security = st.global;
  if (st.perListener?.value && all.length > 0) {
    const first = security(all[0]!.security);
    for (const l of all.slice(1)) {
      const o = security(l.security);
      for (const k of ['passwordFile', 'aclFile', 'allowAnonymous'] as const) {
        if (o[k] !== first[k]) {
          const s = l.security[k] ?? all[0]!.security[k];
          const directive = k === 'passwordFile' ? 'password_file' : k === 'aclFile' ? 'acl_file' : 'allow_anonymous';
          fail(
            s?.at ?? l.at ?? st.perListener.at,
            `per_listener_settings true with a different ${directive} per listener: Petrel's authentication is the same for all listeners`,
          );
        }
      }
    }
    chosen = all[0]!.security;
  }
  const eff = security(chosen);
  if (eff.passwordFile !== undefined) auth.passwordFile = eff.passwordFile;
  if (eff.aclFile !== undefined) auth.aclFile = eff.aclFile;
  auth.allowAnonymous = eff.allowAnonymous;
  if (chosen.passwordFile) sources.set('auth.passwordFile', where(chosen.passwordFile.at));
  if (chosen.aclFile) sources.set('auth.aclFile', where(chosen.aclFile.at));
  sources.set('auth.allowAnonymous', chosen.allowAnonymous ? where(chosen.allowAnonymous.at) : `${mainFile} (Mosquitto's default)`);

  const listenerSources = localOnly
    ? [`${mainFile}: no listener (local only mode)`]
    : all.map((l) => (l.at ? where(l.at) : `${mainFile}: the default listener (port, bind_address or settings before the first listener line)`));
  const result: MosquittoConfig = { listeners, listenerSources, auth, limits, sources, warnings: st.warnings };
  if (st.logTypes) {
    result.logLevel = logLevelOf(st.logTypes.types);
    sources.set('logLevel', where(st.logTypes.at));
  }
  if (st.persistence) {
    result.memory = !st.persistence.value;
    sources.set('memory', where(st.persistence.at));
  }
  if (st.persistenceLocation) {
    result.dataDir = st.persistenceLocation.value;
    sources.set('dataDir', where(st.persistenceLocation.at));
  }
  return result;
}
