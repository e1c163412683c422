// Structured logs: one record per event, to stderr, filtered by level. JSON lines written by pino (its default
// record: numeric `level`, `time` in ms, `pid`, `hostname`, our fields, `msg`) when stderr is not a terminal,
// or one human line per record ('pretty') on a terminal. Every record at info and above carries a stable
// `event` name (README "Logs"); callers put it first in their fields.
//
// Embedders can pass their own Logger; a pino instance (fields first, message second) is adapted.

import pino from 'pino';

export type LogLevel = 'silent' | 'error' | 'warn' | 'info' | 'debug';
export const LOG_LEVELS: readonly LogLevel[] = ['silent', 'error', 'warn', 'info', 'debug'];

export type LogFormat = 'json' | 'pretty';
export const LOG_FORMATS: readonly LogFormat[] = ['json', 'pretty'];

export interface Logger {
  /** Whether debug lines are written (callers skip building their fields otherwise). Absent means yes. */
  readonly debugEnabled?: boolean;
  /** Whether info lines are written (per-connection events are skipped otherwise). Absent means yes. */
  readonly infoEnabled?: boolean;
  error(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  debug(msg: string, fields?: Record<string, unknown>): void;
}

/** What Petrel uses of a pino logger (fields first, then the message). */
export interface PinoLike {
  isLevelEnabled(level: string): boolean;
  child(bindings: Record<string, unknown>): unknown;
  error(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export interface LoggerOptions {
  /** 'json' (pino lines) or 'pretty' (human lines); default: pretty when stderr is a terminal, else json. */
  format?: LogFormat;
  /** Where lines go (default: file descriptor 2, written synchronously). */
  destination?: { write(line: string): unknown };
  /** ANSI colours in pretty lines (default: when writing to a terminal and NO_COLOR is not set). */
  color?: boolean;
}

const RANK: Record<LogLevel, number> = { silent: 0, error: 1, warn: 2, info: 3, debug: 4 };
type Level = Exclude<LogLevel, 'silent'>;

function isPino(l: Logger | PinoLike): l is PinoLike {
  const x = l as unknown as Record<string, unknown>;
  return typeof x.isLevelEnabled === 'function' && typeof x.child === 'function' && typeof x.levels === 'object';
}

/** An embedder's logger as a Logger: ours as it is, a pino instance adapted to (msg, fields). */
export function adaptLogger(l: Logger | PinoLike): Logger {
  if (!isPino(l)) return l;
  const p = l;
  const at = (lv: Level) => (msg: string, fields?: Record<string, unknown>) => p[lv](fields ?? {}, msg);
  return {
    get debugEnabled() {
      return p.isLevelEnabled('debug');
    },
    get infoEnabled() {
      return p.isLevelEnabled('info');
    },
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
  };
}

/** The default format: pretty for a person at a terminal, JSON for everything else (files, pipes, collectors). */
export function defaultLogFormat(): LogFormat {
  return process.stderr.isTTY === true ? 'pretty' : 'json';
}

const noop = (): void => {};

let stderr: pino.DestinationStream | null = null;
/** One synchronous writer to fd 2 for every logger of the process (a crash loses no line already logged). */
function stderrDestination(): pino.DestinationStream {
  return (stderr ??= pino.destination({ fd: 2, sync: true }));
}

/**
 * A logger at `level`. A level that is off costs a call to a no-op, and `debugEnabled` / `infoEnabled` let hot
 * paths (debug lines, per-connection events) skip building their fields.
 */
export function createLogger(level: LogLevel, options: LoggerOptions = {}): Logger {
  const rank = RANK[level];
  const format = options.format ?? defaultLogFormat();
  let write: (lv: Level, msg: string, fields?: Record<string, unknown>) => void;
  if (rank === 0) {
    write = noop;
  } else if (format === 'json') {
    const p = pino({ level }, (options.destination ?? stderrDestination()) as pino.DestinationStream);
    write = (lv, msg, fields) => (fields === undefined ? p[lv](msg) : p[lv](fields, msg));
  } else {
    const dest = options.destination ?? process.stderr;
    const color = options.color ?? (options.destination === undefined && process.stderr.isTTY === true && !process.env.NO_COLOR);
    write = (lv, msg, fields) => void dest.write(prettyLine(lv, msg, fields, color));
  }
  const at = (lv: Level) => (rank >= RANK[lv] ? (msg: string, fields?: Record<string, unknown>) => write(lv, msg, fields) : noop);
  return {
    error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug'),
    debugEnabled: rank >= RANK.debug, infoEnabled: rank >= RANK.info,
  };
}

const COLOURS: Record<Level, string> = { error: '\x1b[31m', warn: '\x1b[33m', info: '\x1b[32m', debug: '\x1b[90m' };

function show(v: unknown): string {
  const s = v instanceof Error ? v.message : typeof v === 'string' ? v : JSON.stringify(v);
  return s !== undefined && (s === '' || /[\s"=]/.test(s)) ? JSON.stringify(s) : String(s);
}

/** `2026-01-02T03:04:05.678Z INFO  client.connected  client connected clientId=a remoteAddress=...` */
export function prettyLine(level: Level, msg: string, fields: Record<string, unknown> | undefined, color = false): string {
  const name = level.toUpperCase().padEnd(5);
  let line = `${new Date().toISOString()} ${color ? COLOURS[level] + name + '\x1b[0m' : name}`;
  const event = fields?.event;
  if (typeof event === 'string') line += ` ${color ? '\x1b[1m' + event + '\x1b[0m' : event} `;
  line += ` ${msg}`;
  let stack = '';
  if (fields) {
    for (const [k, v] of Object.entries(fields)) {
      if (v === undefined || k === 'event') continue;
      line += ` ${k}=${show(v)}`;
      if (v instanceof Error && v.stack && level === 'error') stack += '\n    ' + v.stack.split('\n').slice(1).map((s) => s.trim()).join('\n    ');
    }
  }
  return line + stack + '\n';
}
