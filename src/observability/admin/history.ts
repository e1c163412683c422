// Per-second history for the admin API (GET /api/v1/history): a ring buffer of 3600 one-second samples (an hour),
// taken by an unref'd timer that runs only while the admin API is on, and stops when the HTTP listener closes.

import type { Broker } from '../../broker/broker.js';

export const HISTORY_SECONDS = 3600;

export interface HistoryPoint {
  t: number;
  connections: number;
  messagesIn: number;
  messagesOut: number;
  bytesIn: number;
  bytesOut: number;
  dropped: number;
}

const FIELDS = ['t', 'connections', 'messagesIn', 'messagesOut', 'bytesIn', 'bytesOut', 'dropped'] as const;

/** Counter totals, read each second; the rates are their differences. */
function totals(broker: Broker): { messagesIn: number; messagesOut: number; bytesIn: number; bytesOut: number; dropped: number } {
  const s = broker.stats;
  let bytesOut = broker.obs.bytesOutClosed;
  for (const c of broker.clients) bytesOut += c.conn.bytesOut;
  return {
    messagesIn: s.messagesIn,
    messagesOut: s.messagesOut,
    bytesIn: s.bytesIn,
    bytesOut,
    dropped: droppedTotal(broker),
  };
}

/** Messages not delivered: QoS 0 to slow or offline clients, full queues, too large for the client, expired. */
export function droppedTotal(broker: Broker): number {
  const s = broker.stats;
  return s.droppedQos0 + s.droppedQueueFull + s.droppedTooLarge + s.expired;
}

export class History {
  /** One column per field, HISTORY_SECONDS rows; `next` is the row written next, `count` the rows held. */
  private readonly columns = FIELDS.map(() => new Float64Array(HISTORY_SECONDS));
  private next = 0;
  private count = 0;
  private last: ReturnType<typeof totals>;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly broker: Broker,
    private readonly intervalMs = 1000,
  ) {
    this.last = totals(broker);
  }

  start(): void {
    if (this.timer !== null) return;
    this.last = totals(this.broker);
    this.timer = setInterval(() => this.sample(Date.now()), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** One sample: the counters' increase since the previous one, per second. */
  sample(now: number): void {
    const cur = totals(this.broker);
    const per = 1000 / this.intervalMs;
    const row = [
      now,
      this.broker.connectedCount,
      (cur.messagesIn - this.last.messagesIn) * per,
      (cur.messagesOut - this.last.messagesOut) * per,
      (cur.bytesIn - this.last.bytesIn) * per,
      (cur.bytesOut - this.last.bytesOut) * per,
      (cur.dropped - this.last.dropped) * per,
    ];
    this.last = cur;
    for (let i = 0; i < FIELDS.length; i++) this.columns[i]![this.next] = Math.max(0, row[i]!);
    this.next = (this.next + 1) % HISTORY_SECONDS;
    if (this.count < HISTORY_SECONDS) this.count++;
  }

  /** The samples of the last `seconds` seconds, oldest first. */
  points(seconds: number, now = Date.now()): HistoryPoint[] {
    const out: HistoryPoint[] = [];
    const since = now - seconds * 1000;
    const n = this.count;
    for (let k = n; k > 0; k--) {
      const i = (this.next - k + HISTORY_SECONDS) % HISTORY_SECONDS;
      const t = this.columns[0]![i]!;
      if (t <= since) continue;
      const p = {} as Record<(typeof FIELDS)[number], number>;
      for (let f = 0; f < FIELDS.length; f++) p[FIELDS[f]!] = Math.round(this.columns[f]![i]!);
      out.push(p);
    }
    return out;
  }

  get size(): number {
    return this.count;
  }
}
