// Configuration of the `petrel` command: flags, then a JSON config file, then
// PETREL_* environment variables, in that order of precedence. Every bad value
// is reported with the key it came from and why (ConfigError), never as a
// stack trace.

import { readFileSync } from 'node:fs';
import { DEFAULT_LIMITS, type BrokerOptions, type Limits } from '../broker/options.js';
import { LOG_LEVELS, type LogLevel } from '../broker/logger.js';

export class ConfigError extends Error {
  constructor(
    readonly key: string,
    reason: string,
  ) {
    super(`${key}: ${reason}`);
    this.name = 'ConfigError';
  }
}

export interface CliConfig {
  port: number;
  host: string | undefined;
  /** Extra listeners from the config file. */
  listeners: { port: number; host?: string }[] | undefined;
  memory: boolean;
  dataDir: string;
  durability: 'process' | 'power';
  logLevel: LogLevel;
  limits: Partial<Limits>;
  responseInformation: string | undefined;
  closeTimeout: number;
  configFile: string | undefined;
  help: boolean;
  version: boolean;
}

/** The limits, as flags (--max-packet-size) and env vars (PETREL_MAX_PACKET_SIZE). */
const LIMIT_KEYS = Object.keys(DEFAULT_LIMITS) as (keyof Limits)[];
const kebab = (k: string): string => k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
const envName = (k: string): string => 'PETREL_' + kebab(k).replace(/-/g, '_').toUpperCase();

interface Setting {
  key: string; // name in the config file (camelCase)
  flag: string;
  env: string;
  kind: 'int' | 'bool' | 'string' | 'level' | 'durability' | 'number';
  describe: string;
}

const SETTINGS: Setting[] = [
  { key: 'port', flag: '--port', env: 'PETREL_PORT', kind: 'int', describe: 'TCP port to listen on (default 1883; 0 picks a free port)' },
  { key: 'host', flag: '--host', env: 'PETREL_HOST', kind: 'string', describe: "address to bind (default: all, IPv6 and IPv4)" },
  { key: 'dataDir', flag: '--data-dir', env: 'PETREL_DATA_DIR', kind: 'string', describe: 'directory of the SQLite store (default ./data)' },
  { key: 'memory', flag: '--memory', env: 'PETREL_MEMORY', kind: 'bool', describe: 'keep everything in memory (nothing survives a restart)' },
  { key: 'durability', flag: '--durability', env: 'PETREL_DURABILITY', kind: 'durability', describe: "'process' (survive a crash, default) or 'power' (fsync every commit)" },
  { key: 'logLevel', flag: '--log-level', env: 'PETREL_LOG_LEVEL', kind: 'level', describe: `one of ${LOG_LEVELS.join(', ')} (default info)` },
  { key: 'responseInformation', flag: '--response-information', env: 'PETREL_RESPONSE_INFORMATION', kind: 'string', describe: 'Response Information for v5 clients that request it' },
  { key: 'closeTimeout', flag: '--close-timeout', env: 'PETREL_CLOSE_TIMEOUT', kind: 'number', describe: 'seconds to wait for connections on shutdown (default 5)' },
  ...LIMIT_KEYS.map<Setting>((k) => ({
    key: `limits.${k}`,
    flag: '--' + kebab(k),
    env: envName(k),
    kind: typeof DEFAULT_LIMITS[k] === 'boolean' ? 'bool' : 'int',
    describe: `limit ${k} (default ${String(DEFAULT_LIMITS[k])})`,
  })),
];

function parseValue(s: Setting, raw: unknown, where: string): unknown {
  const fail = (why: string): never => {
    throw new ConfigError(where, `${why}, got ${JSON.stringify(raw)}`);
  };
  switch (s.kind) {
    case 'int': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^-?\d+$/.test(raw.trim()) ? Number(raw) : NaN;
      if (!Number.isSafeInteger(n)) fail('must be an integer');
      if (s.key === 'port' && (n < 0 || n > 65535)) fail('must be an integer from 0 to 65535');
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
    case 'level':
      if (typeof raw !== 'string' || !(LOG_LEVELS as readonly string[]).includes(raw)) fail(`must be one of ${LOG_LEVELS.join(', ')}`);
      return raw;
    case 'durability':
      if (raw !== 'process' && raw !== 'power') fail("must be 'process' or 'power'");
      return raw;
  }
}

type Values = Map<string, unknown>;

function fromEnv(env: NodeJS.ProcessEnv): Values {
  const v: Values = new Map();
  for (const s of SETTINGS) {
    const raw = env[s.env];
    if (raw !== undefined && raw !== '') v.set(s.key, parseValue(s, raw, s.env));
  }
  return v;
}

function fromFile(path: string): { values: Values; listeners: CliConfig['listeners'] } {
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
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(path, 'must be a JSON object');
  const values: Values = new Map();
  let listeners: CliConfig['listeners'];
  const byKey = new Map(SETTINGS.map((s) => [s.key, s]));
  for (const [k, raw] of Object.entries(doc)) {
    if (k === 'limits') {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(`${path}: limits`, 'must be an object');
      for (const [lk, lv] of Object.entries(raw as Record<string, unknown>)) {
        const s = byKey.get(`limits.${lk}`);
        if (!s) throw new ConfigError(`${path}: limits.${lk}`, `unknown limit; known limits are ${LIMIT_KEYS.join(', ')}`);
        values.set(s.key, parseValue(s, lv, `${path}: limits.${lk}`));
      }
      continue;
    }
    if (k === 'listeners') {
      if (!Array.isArray(raw)) throw new ConfigError(`${path}: listeners`, 'must be an array of { "port": N, "host": "..." }');
      listeners = raw.map((l: unknown, i) => {
        const where = `${path}: listeners[${i}]`;
        if (l === null || typeof l !== 'object') throw new ConfigError(where, 'must be an object');
        const o = l as Record<string, unknown>;
        for (const lk of Object.keys(o)) if (lk !== 'port' && lk !== 'host') throw new ConfigError(`${where}.${lk}`, 'unknown key; use port and host');
        const port = parseValue(SETTINGS[0]!, o.port, `${where}.port`) as number;
        const out: { port: number; host?: string } = { port };
        if (o.host !== undefined) out.host = parseValue(SETTINGS[1]!, o.host, `${where}.host`) as string;
        return out;
      });
      continue;
    }
    const s = byKey.get(k);
    if (!s || k.startsWith('limits.')) {
      throw new ConfigError(`${path}: ${k}`, `unknown key; known keys are ${SETTINGS.filter((x) => !x.key.startsWith('limits.')).map((x) => x.key).join(', ')}, listeners, limits`);
    }
    values.set(s.key, parseValue(s, raw, `${path}: ${k}`));
  }
  return { values, listeners };
}

function fromArgs(argv: readonly string[]): { values: Values; config: string | undefined; help: boolean; version: boolean } {
  const values: Values = new Map();
  let config: string | undefined;
  let help = false;
  let version = false;
  const byFlag = new Map(SETTINGS.map((s) => [s.flag, s]));
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
    const s = byFlag.get(arg);
    if (!s) throw new ConfigError(arg, 'unknown option (see petrel --help)');
    if (s.kind === 'bool' && inline === undefined) {
      values.set(s.key, true);
      continue;
    }
    values.set(s.key, parseValue(s, take(), arg));
  }
  return { values, config, help, version };
}

/** Resolve the configuration from argv, the config file it names (or PETREL_CONFIG) and the environment. */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): CliConfig {
  const args = fromArgs(argv);
  const configFile = args.config ?? (env.PETREL_CONFIG || undefined);
  const file = configFile !== undefined ? fromFile(configFile) : { values: new Map() as Values, listeners: undefined };
  const envValues = fromEnv(env);
  // Precedence: flags, then the file, then the environment.
  const merged: Values = new Map([...envValues, ...file.values, ...args.values]);
  const get = <T>(key: string, dflt: T): T => (merged.has(key) ? (merged.get(key) as T) : dflt);
  const limits: Partial<Limits> = {};
  for (const k of LIMIT_KEYS) {
    if (merged.has(`limits.${k}`)) (limits as Record<string, unknown>)[k] = merged.get(`limits.${k}`);
  }
  return {
    port: get('port', 1883),
    host: get<string | undefined>('host', undefined),
    listeners: file.listeners,
    memory: get('memory', false),
    dataDir: get('dataDir', './data'),
    durability: get<'process' | 'power'>('durability', 'process'),
    logLevel: get<LogLevel>('logLevel', 'info'),
    limits,
    responseInformation: get<string | undefined>('responseInformation', undefined),
    closeTimeout: get('closeTimeout', 5),
    configFile,
    help: args.help,
    version: args.version,
  };
}

/** Broker options for a CLI configuration. */
export function toBrokerOptions(c: CliConfig): BrokerOptions {
  const listeners: { port: number; host?: string }[] = [];
  const main: { port: number; host?: string } = { port: c.port };
  if (c.host !== undefined) main.host = c.host;
  // Listeners from the file come in addition to --port/--host unless the file gives the only ones and no port was set.
  if (c.listeners && c.listeners.length > 0) listeners.push(...c.listeners);
  else listeners.push(main);
  const opts: BrokerOptions = {
    listeners,
    store: c.memory ? { type: 'memory' } : { type: 'sqlite', dataDir: c.dataDir, durability: c.durability },
    limits: c.limits,
    logLevel: c.logLevel,
    closeTimeout: c.closeTimeout,
  };
  if (c.responseInformation !== undefined) opts.responseInformation = c.responseInformation;
  return opts;
}

export function helpText(): string {
  const rows = SETTINGS.map((s) => {
    const flag = s.kind === 'bool' ? s.flag : `${s.flag} ${s.kind === 'string' ? 'VALUE' : s.kind === 'level' ? 'LEVEL' : s.kind === 'durability' ? 'MODE' : 'N'}`;
    return `  ${flag.padEnd(34)} ${s.describe}\n  ${''.padEnd(34)} env ${s.env}`;
  });
  return [
    'Usage: petrel [options]',
    '',
    'Petrel, an MQTT 3.1, 3.1.1 and 5.0 broker. Durable by default: sessions, queues and retained',
    'messages are kept in SQLite under --data-dir (./data).',
    '',
    'Options (flags override the config file, which overrides PETREL_* environment variables):',
    '  --config FILE                      JSON config file (env PETREL_CONFIG); keys as in README.md',
    ...rows,
    '  --help                             show this help',
    '  --version                          print the version',
    '',
  ].join('\n');
}
