// Group commit: every store write made during one event-loop turn goes into
// one store.commit(); what must wait for those writes (PUBACK, PUBREC,
// PUBCOMP, PUBREL, SUBACK, CONNACK of persistent sessions) waits in the batch
// and goes out, in order, when the commit resolved. This is the durability rule
// of ARCHITECTURE.md: nothing is acknowledged before it is stored.
//
// With a store that is not durable (memory) nothing waits.

import type { Store } from '../store/types.js';
import type { Recorder } from '../observability/counters.js';

/** Something that can take bytes (a client connection). */
export interface AckSink {
  sendRaw(data: Buffer): void;
}

/** What waits for a commit, in order: a sink with its data, or a function (data null). */
interface Batch {
  items: (AckSink | (() => void))[];
  data: (Buffer | null)[];
}

function newBatch(): Batch {
  return { items: [], data: [] };
}

export class Committer {
  private current: Batch = newBatch();
  /** Writes were made to the store since the last commit started. */
  private dirty = false;
  private committing = false;
  private scheduled = false;
  private closed = false;
  /** Commits done (for metrics). */
  commits = 0;
  /** Number of the batch that takes what is sent now (grows by one whenever a commit takes the batch). */
  batch = 0;
  /** Commit durations are recorded here (seconds) when metrics are on. */
  commitRecorder: Recorder | null = null;

  constructor(
    private readonly store: Store,
    private readonly onError: (err: unknown) => void,
    private readonly onItemError: (err: unknown) => void = () => {},
  ) {}

  /** The store outlives the process: what depends on a write waits for its commit. */
  get durable(): boolean {
    return this.store.durable;
  }

  /** True when acknowledgements must wait (durable store with writes pending or being committed). */
  get holding(): boolean {
    return this.dirty || this.committing || this.current.items.length > 0;
  }

  /** Call after store writes: a commit will run at the end of this turn. */
  touch(): void {
    if (!this.store.durable) return;
    this.dirty = true;
    this.schedule();
  }

  /** Send `data` to `sink` once everything written so far is committed (at once if nothing is pending). */
  send(sink: AckSink, data: Buffer): void {
    if (!this.store.durable || !this.holding) {
      sink.sendRaw(data);
      return;
    }
    this.current.items.push(sink);
    this.current.data.push(data);
    this.schedule();
  }

  /** Run fn once everything written so far is committed (at once if nothing is pending). */
  after(fn: () => void): void {
    if (!this.store.durable || !this.holding) {
      fn();
      return;
    }
    this.current.items.push(fn);
    this.current.data.push(null);
    this.schedule();
  }

  /** Commit now and wait (used by close()). */
  async flush(): Promise<void> {
    while (this.committing || this.dirty || this.current.items.length) {
      if (!this.committing) await this.run();
      else await new Promise<void>((r) => setImmediate(r));
    }
  }

  stop(): void {
    this.closed = true;
  }

  private schedule(): void {
    if (this.scheduled || this.committing || this.closed) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.run();
    });
  }

  private async run(): Promise<void> {
    if (this.committing) return;
    const batch = this.current;
    this.current = newBatch();
    this.batch++;
    const mustCommit = this.dirty;
    this.dirty = false;
    this.committing = true;
    try {
      if (mustCommit) {
        const t0 = this.commitRecorder !== null ? performance.now() : 0;
        await this.store.commit();
        this.commits++;
        if (this.commitRecorder !== null) this.commitRecorder.observe((performance.now() - t0) / 1000);
      }
    } catch (err) {
      this.committing = false;
      // Nothing of this batch is acknowledged.
      this.onError(err);
      return;
    }
    this.committing = false;
    const { items, data } = batch;
    for (let i = 0; i < items.length; i++) {
      const d = data[i];
      try {
        if (d === null) (items[i] as () => void)();
        else (items[i] as AckSink).sendRaw(d!);
      } catch (err) {
        // One waiter's failure (a bug in what it runs) must not keep the others from their acknowledgements,
        // nor escape as an unhandled rejection.
        this.onItemError(err);
      }
    }
    if (this.dirty || this.current.items.length) this.schedule();
  }
}
