// A small structured logger: one line per event, to stderr, filtered by level.
// Embedders can pass their own (pino and friends have the same shape).

export type LogLevel = 'silent' | 'error' | 'warn' | 'info' | 'debug';
export const LOG_LEVELS: readonly LogLevel[] = ['silent', 'error', 'warn', 'info', 'debug'];

export interface Logger {
  /** Whether debug lines are written (callers skip building their fields otherwise). Absent means yes. */
  readonly debugEnabled?: boolean;
  error(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  debug(msg: string, fields?: Record<string, unknown>): void;
}

const RANK: Record<LogLevel, number> = { silent: 0, error: 1, warn: 2, info: 3, debug: 4 };

function format(level: string, msg: string, fields?: Record<string, unknown>): string {
  let line = `${new Date().toISOString()} ${level.padEnd(5)} ${msg}`;
  if (fields) {
    for (const [k, v] of Object.entries(fields)) {
      if (v === undefined) continue;
      const s = v instanceof Error ? v.message : typeof v === 'string' ? v : JSON.stringify(v);
      line += ` ${k}=${s !== undefined && /\s/.test(s) ? JSON.stringify(s) : s}`;
    }
  }
  return line + '\n';
}

export function createLogger(level: LogLevel, write: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  const rank = RANK[level];
  const noop = (): void => {};
  const at = (lv: Exclude<LogLevel, 'silent'>) =>
    rank >= RANK[lv] ? (msg: string, fields?: Record<string, unknown>) => write(format(lv, msg, fields)) : noop;
  return { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug'), debugEnabled: rank >= RANK.debug };
}
