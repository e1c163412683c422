// Petrel's JSON log lines (src/broker/logger.ts, pino's format) as records, for tests that read a broker's stderr.

export interface LogRecord {
  level: number;
  time: number;
  msg: string;
  event?: string;
  [field: string]: unknown;
}

/** One line as a record, or null if it is not a JSON log record. */
export function parseLogLine(line: string): LogRecord | null {
  if (!line.startsWith('{')) return null;
  try {
    const r = JSON.parse(line) as LogRecord;
    return typeof r === 'object' && r !== null && typeof r.level === 'number' ? r : null;
  } catch {
    return null;
  }
}

/** Every JSON log record of a stderr text (other lines, and a last line not yet complete, left out). */
export function logRecords(text: string): LogRecord[] {
  const out: LogRecord[] = [];
  for (const line of text.split('\n')) {
    const r = parseLogLine(line);
    if (r !== null) out.push(r);
  }
  return out;
}

/** The first record with this event (and matching `pred`), or undefined. */
export function findEvent(text: string, event: string, pred: (r: LogRecord) => boolean = () => true): LogRecord | undefined {
  return logRecords(text).find((r) => r.event === event && pred(r));
}

/** The port a `listener.listening` record gives for a transport (tcp, tls, ws, wss, http), or undefined. */
export function listeningPort(text: string, transport = 'tcp'): number | undefined {
  return findEvent(text, 'listener.listening', (r) => r.transport === transport)?.port as number | undefined;
}
