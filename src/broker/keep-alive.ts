// Deadlines of every connection (keep alive [MQTT-3.1.2-22], the CONNECT deadline) at a small cost per idle
// connection: a coarse clock and buckets of deadlines, examined only when due.
//
// The clock: `tick` counts TICK_MS steps of monotonic time since the wheel was made. One broker-wide timer
// advances it. A connection stamps its input with the current tick (Client.lastSeen = broker.tick): no
// Date.now(), no timer and nothing allocated per packet or per connection.
//
// The buckets: a connection with a deadline sits in the bucket of the tick its deadline falls in. Only due
// buckets are looked at. A connection whose stamp moved since it was placed goes to the bucket of its new
// deadline (at most once per deadline period, not per packet); one whose stamp did not move is due.
//
// Never early, and at most about 2 x TICK_MS late plus the timer's own delay: input stamped v arrived before
// the clock left v, and the time the clock left v is kept (exactly for the last RING ticks; for older stamps,
// v's end plus the largest lateness of the clock seen so far), so a deadline counts from a time at or after
// the input. The cost is one broker-wide timer every TICK_MS, two small integers per connection and its slot
// in a bucket.

import { performance } from 'node:perf_hooks';

/** Clock resolution, ms. */
export const TICK_MS = 10;
/** Ticks whose exact end is remembered (10 ms x 32768 = 5.5 minutes). */
const RING = 32768;

/** What the wheel keeps: the input stamp and its place in a bucket. */
export interface Timed {
  /** Tick of the last input. */
  lastSeen: number;
  /** Tick of the bucket it is in; -1 if none. */
  wheelAt: number;
  /** Index in that bucket. */
  wheelPos: number;
}

export class DeadlineWheel<T extends Timed> {
  /** Current tick. */
  tick = 0;
  private readonly epoch = performance.now();
  private readonly buckets = new Map<number, T[]>();
  /** Highest bucket already handled. */
  private handled = 0;
  /** ms (since epoch) at which the clock left each of the last RING ticks. */
  private readonly left = new Float64Array(RING);
  /** Largest delay seen between a tick's end and the clock leaving it, ms. */
  private maxLate = 0;

  /** ms since the epoch, now. */
  now(): number {
    return performance.now() - this.epoch;
  }

  /** ms from now until the next tick starts (for the broker's timer), plus 1 ms so it lands inside it. */
  msToNextTick(): number {
    return Math.max(1, (this.tick + 1) * TICK_MS - this.now() + 1);
  }

  /** Latest time (ms since epoch) at which input stamped `v` can have arrived. */
  arrivedBy(v: number): number {
    if (v >= this.tick) return this.now();
    if (this.tick - v <= RING) return this.left[v % RING]!;
    return (v + 1) * TICK_MS + this.maxLate;
  }

  /** Put an entry in the bucket of `deadline` (ms since epoch), out of any other. */
  place(e: T, deadline: number): void {
    this.remove(e);
    const at = Math.max(Math.ceil(deadline / TICK_MS), this.handled + 1);
    let b = this.buckets.get(at);
    if (b === undefined) this.buckets.set(at, (b = []));
    e.wheelAt = at;
    e.wheelPos = b.length;
    b.push(e);
  }

  remove(e: T): void {
    const at = e.wheelAt;
    if (at < 0) return;
    e.wheelAt = -1;
    const b = this.buckets.get(at);
    if (b === undefined) return;
    const last = b.pop()!;
    if (last !== e) {
      b[e.wheelPos] = last;
      last.wheelPos = e.wheelPos;
    }
    if (b.length === 0) this.buckets.delete(at);
  }

  /**
   * Advance the clock to the present and hand every entry of the buckets now due to `due` (out of the wheel;
   * `due` may place it again). Returns the time used (ms since epoch).
   */
  advance(due: (e: T, now: number) => void): number {
    const now = this.now();
    const t = Math.floor(now / TICK_MS);
    if (t <= this.tick) return now;
    const v = this.tick;
    this.left[v % RING] = now;
    const late = now - (v + 1) * TICK_MS;
    if (late > this.maxLate) this.maxLate = late;
    this.tick = t;
    // Buckets up to t are handled from here on: an entry placed again goes to a later one.
    const from = this.handled + 1;
    this.handled = t;
    for (let k = from; k <= t; k++) {
      const b = this.buckets.get(k);
      if (b === undefined) continue;
      this.buckets.delete(k);
      for (const e of b) e.wheelAt = -1;
      for (const e of b) due(e, now);
    }
    return now;
  }

  /** Entries in the wheel (for tests and metrics). */
  get size(): number {
    let n = 0;
    for (const b of this.buckets.values()) n += b.length;
    return n;
  }
}
