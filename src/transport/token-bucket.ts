// Token buckets for every rate limit: the broker's (maxPublishRate, maxPublishBytesRate,
// connectionRatePerAddress) and the listeners' connectionRate. Here, in transport/, so that
// both layers use the same one (transport/ imports nothing from broker/). A bucket holds up to `burst`
// tokens and gains `rate` per second; taking more than it holds leaves a debt that
// is paid back in time (the caller waits debt / rate seconds). No timers: the bucket
// refills when it is asked.

export class TokenBucket {
  private tokens: number;
  private at: number;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.at = now;
  }

  private refill(now: number): void {
    if (now > this.at) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) * this.rate) / 1000);
      this.at = now;
    }
  }

  /** Take n tokens (the bucket may go into debt); milliseconds until the debt is paid, 0 if none. */
  take(n: number, now: number): number {
    this.refill(now);
    this.tokens -= n;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.rate);
  }

  /** Take one token if there is one; false (nothing taken) otherwise. */
  tryTake(now: number): boolean {
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Full again at `now` (nothing taken since long enough): the entry may be forgotten. */
  isFull(now: number): boolean {
    this.refill(now);
    return this.tokens >= this.burst;
  }
}

/** One bucket per key (a client IP address), at most maxKeys of them: the oldest is forgotten first. */
export class KeyedRateLimiter {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    private readonly maxKeys = 100_000,
  ) {}

  /** Whether one more event for this key fits its rate (it is counted if so). */
  allow(key: string, now: number): boolean {
    let b = this.buckets.get(key);
    if (b === undefined) {
      if (this.buckets.size >= this.maxKeys) this.evict(now);
      b = new TokenBucket(this.rate, this.burst, now);
      this.buckets.set(key, b);
    } else {
      // Most recently used last (Map keeps insertion order): eviction takes the least recent.
      this.buckets.delete(key);
      this.buckets.set(key, b);
    }
    return b.tryTake(now);
  }

  get size(): number {
    return this.buckets.size;
  }

  private evict(now: number): void {
    // Forget full buckets first (they hold no memory of anything); else the least recently used.
    let n = 0;
    for (const [k, b] of this.buckets) {
      if (b.isFull(now)) this.buckets.delete(k);
      if (++n >= 64) break;
    }
    if (this.buckets.size >= this.maxKeys) {
      const oldest = this.buckets.keys().next().value;
      if (oldest !== undefined) this.buckets.delete(oldest);
    }
  }
}
