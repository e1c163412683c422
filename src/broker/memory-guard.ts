// The memory watermark (limits.memoryLimit): global backpressure before the
// process runs out of memory. The resident set size (and the V8 heap, against
// its own limit) is sampled on a timer, never per message. Above the high
// watermark the broker
// - refuses new CONNECTs (CONNACK 0x89 Server busy; 3.1/3.1.1: return code 3,
//   Server unavailable; handle-connect.ts),
// - stops reading connections whose input cannot free memory: a connected
//   client with nothing of its session in the heap (in flight or queued). A
//   client that has messages in flight, or waiting in its heap queue, is still
//   read: its acknowledgements are what frees memory. The check runs again at
//   every sample, so a paused client that is given messages later is read
//   again within one interval, and a pause cannot deadlock on an ack;
// - resumes everything below the low watermark (LOW_WATERMARK of the limit).
// Each episode is logged once at warn (and its end at info) and counted.
// No subscriber is tied to a publisher: the decision is per connection, from
// that connection's own session only.

import os from 'node:os';
import v8 from 'node:v8';

/** How often memory is sampled, ms. */
export const MEMORY_CHECK_MS = 250;
/** Below this share of the limit (RSS), or of the V8 heap limit (HEAP_LOW), the episode ends. */
export const LOW_WATERMARK = 0.9;
/** Share of V8's heap_size_limit at which an episode starts, whatever the RSS. */
const HEAP_HIGH = 0.85;
const HEAP_LOW = 0.75;
/** Upper bound of the default limit. */
const DEFAULT_CAP = 8 * 1024 * 1024 * 1024;

/**
 * The default limits.memoryLimit: half of the memory this process may use (os.totalmem(), or a cgroup's limit
 * where process.constrainedMemory() reports one), at most 8 GiB.
 */
export function defaultMemoryLimit(): number {
  let total = os.totalmem();
  const constrained = (process as { constrainedMemory?: () => number | undefined }).constrainedMemory?.();
  if (constrained !== undefined && constrained > 0 && constrained < total) total = constrained;
  return Math.min(DEFAULT_CAP, Math.floor(total / 2));
}

/** A connection as the guard sees it. */
export interface GuardedConnection {
  /** Reading this connection may free memory (its session has messages in the heap), or it is not connected yet. */
  readonly mayFreeMemory: boolean;
  /** Stop (true) or restart (false) reading it because of memory. */
  memoryPause(paused: boolean): void;
}

export interface MemoryCounters {
  /** Times the broker went above limits.memoryLimit (or the V8 heap watermark). */
  memoryEpisodes: number;
  /** CONNECTs refused because memory was above the watermark (CONNACK 0x89 / return code 3). */
  connectsRefusedMemory: number;
  /** Connections whose reading was paused because memory was above the watermark. */
  readsPausedMemory: number;
}

export interface MemoryGuardHost {
  readonly connections: Iterable<GuardedConnection>;
  readonly stats: MemoryCounters;
  readonly logger: { warn(msg: string, fields?: Record<string, unknown>): void; info(msg: string, fields?: Record<string, unknown>): void };
}

export interface MemorySample {
  rss: number;
  heapUsed: number;
  heapLimit: number;
}

function sampleProcess(): MemorySample {
  const h = v8.getHeapStatistics();
  return { rss: process.memoryUsage.rss(), heapUsed: h.used_heap_size, heapLimit: h.heap_size_limit };
}

export class MemoryGuard {
  /** Above the high watermark: new CONNECTs are refused, idle connections are not read. */
  high = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly paused = new Set<GuardedConnection>();

  constructor(
    private readonly limit: number,
    private readonly host: MemoryGuardHost,
    private readonly sample: () => MemorySample = sampleProcess,
  ) {}

  start(): void {
    if (this.limit === 0 || this.timer !== null) return;
    this.timer = setInterval(() => this.check(), MEMORY_CHECK_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.resumeAll();
    this.high = false;
  }

  /** A connection went away: forget it. */
  forget(c: GuardedConnection): void {
    this.paused.delete(c);
  }

  /** Sample memory, move between the watermarks, and (while high) pause or resume connections. */
  check(): void {
    let s: MemorySample;
    try {
      s = this.sample();
    } catch {
      return;
    }
    if (!this.high) {
      if (s.rss < this.limit && s.heapUsed < s.heapLimit * HEAP_HIGH) return;
      this.high = true;
      this.host.stats.memoryEpisodes++;
      this.host.logger.warn('memory above the watermark: refusing new connections and pausing reads of idle connections', {
        event: 'memory.high',
        rss: s.rss, memoryLimit: this.limit, heapUsed: s.heapUsed, heapLimit: s.heapLimit,
      });
    } else if (s.rss < this.limit * LOW_WATERMARK && s.heapUsed < s.heapLimit * HEAP_LOW) {
      this.high = false;
      const n = this.paused.size;
      this.resumeAll();
      this.host.logger.info('memory below the low watermark: accepting connections and reading again', {
        event: 'memory.normal',
        rss: s.rss, memoryLimit: this.limit, resumed: n,
      });
      return;
    }
    for (const c of this.host.connections) {
      const pause = !c.mayFreeMemory;
      if (pause === this.paused.has(c)) continue;
      if (pause) {
        this.paused.add(c);
        this.host.stats.readsPausedMemory++;
      } else {
        this.paused.delete(c);
      }
      c.memoryPause(pause);
    }
  }

  private resumeAll(): void {
    const list = [...this.paused];
    this.paused.clear();
    for (const c of list) c.memoryPause(false);
  }
}
