// The in-memory store: not durable, every write applies at once, commit() is
// a no-op. It keeps references to the StoredMessage objects it is given (one
// object shared by every queue entry and the retained map), so callers must
// not change a message after handing it over.
//
// open() may be called more than once: each call returns the current state
// (there is nothing to load), which is what a broker restarting on the same
// MemoryStore object would see.

import {
  QueueState,
  StoreError,
  type ExpiredStats,
  type LoadedSession,
  type LoadedState,
  type QueueEntry,
  type SessionRecord,
  type Store,
  type StoredMessage,
  type SubscriptionRecord,
} from './types.js';

/**
 * A session's queue: entries sorted by seq in parallel arrays, with holes
 * (undefined) where an entry was removed out of order. `head` skips the
 * removed prefix. Enqueue in increasing seq order is O(1); dequeue and the
 * start of a read are O(log n) (binary search); holes are squeezed out when
 * they outnumber the live entries, so the work stays amortized O(1) per entry.
 */
class EntryQueue {
  private seqs: number[] = [];
  private entries: (QueueEntry | undefined)[] = [];
  private head = 0;
  /** Holes between head and the end. */
  private holes = 0;
  count = 0;
  bytes = 0;

  add(entry: QueueEntry): void {
    const seqs = this.seqs;
    const n = seqs.length;
    if (n === this.head || entry.seq > seqs[n - 1]!) {
      seqs.push(entry.seq);
      this.entries.push(entry);
    } else {
      // Out of order (not expected from the broker): insert, or replace the same seq.
      const i = this.lowerBound(entry.seq);
      if (i < n && seqs[i] === entry.seq) {
        const old = this.entries[i];
        if (old !== undefined) {
          this.count--;
          this.bytes -= old.message.payload.length;
        } else {
          this.holes--;
        }
        this.entries[i] = entry;
      } else {
        seqs.splice(i, 0, entry.seq);
        this.entries.splice(i, 0, entry);
      }
    }
    this.count++;
    this.bytes += entry.message.payload.length;
  }

  /** The entry with this seq, or undefined. */
  get(seq: number): QueueEntry | undefined {
    const i = this.lowerBound(seq);
    return i < this.seqs.length && this.seqs[i] === seq ? this.entries[i] : undefined;
  }

  set(seq: number, entry: QueueEntry): void {
    const i = this.lowerBound(seq);
    if (i < this.seqs.length && this.seqs[i] === seq && this.entries[i] !== undefined) this.entries[i] = entry;
  }

  remove(seq: number): void {
    const i = this.lowerBound(seq);
    const seqs = this.seqs;
    if (i >= seqs.length || seqs[i] !== seq) return;
    const old = this.entries[i];
    if (old === undefined) return;
    this.entries[i] = undefined;
    this.count--;
    this.bytes -= old.message.payload.length;
    if (i === this.head) {
      let h = i + 1;
      while (h < seqs.length && this.entries[h] === undefined) {
        h++;
        this.holes--;
      }
      this.head = h;
    } else {
      this.holes++;
    }
    this.maybeCompact();
  }

  /** Up to `limit` entries from fromSeq; stops before the payload bytes would exceed maxBytes (Released entries count 0), at least one. */
  read(fromSeq: number, limit: number, maxBytes: number): QueueEntry[] {
    const out: QueueEntry[] = [];
    if (!(limit > 0)) return out;
    const entries = this.entries;
    let bytes = 0;
    for (let i = this.lowerBound(fromSeq); i < entries.length; i++) {
      const e = entries[i];
      if (e === undefined) continue;
      const size = e.state === QueueState.Released ? 0 : e.message.payload.length;
      if (out.length > 0 && bytes + size > maxBytes) break;
      bytes += size;
      out.push(e);
      if (out.length >= limit) break;
    }
    return out;
  }

  /** Removes up to `limit` entries with seq > afterSeq whose message expired at `now`. */
  expire(afterSeq: number, now: number, limit: number): { count: number; bytes: number } {
    let count = 0;
    let bytes = 0;
    if (!(limit > 0)) return { count, bytes };
    const seqs = this.seqs;
    const entries = this.entries;
    const doomed: number[] = [];
    for (let i = this.lowerBound(afterSeq + 1); i < entries.length && doomed.length < limit; i++) {
      const e = entries[i];
      if (e === undefined) continue;
      const at = e.message.expiresAt;
      if (at !== undefined && at <= now) doomed.push(seqs[i]!);
    }
    for (const seq of doomed) {
      const e = this.get(seq)!;
      count++;
      bytes += e.message.payload.length;
      this.remove(seq);
    }
    return { count, bytes };
  }

  /** First index >= head whose seq is >= seq. */
  private lowerBound(seq: number): number {
    const seqs = this.seqs;
    let lo = this.head;
    let hi = seqs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (seqs[mid]! < seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private maybeCompact(): void {
    const n = this.seqs.length;
    if (this.head === n) {
      // Empty: start over.
      this.seqs = [];
      this.entries = [];
      this.head = 0;
      this.holes = 0;
      return;
    }
    const dead = this.head + this.holes;
    if (dead < 1024 || dead * 2 < n) return;
    const seqs: number[] = [];
    const entries: QueueEntry[] = [];
    for (let i = this.head; i < n; i++) {
      const e = this.entries[i];
      if (e !== undefined) {
        seqs.push(this.seqs[i]!);
        entries.push(e);
      }
    }
    this.seqs = seqs;
    this.entries = entries;
    this.head = 0;
    this.holes = 0;
  }
}

interface MemSession {
  record: SessionRecord;
  subscriptions: Map<string, SubscriptionRecord>;
  inbound: Set<number>;
  queue: EntryQueue;
  lastSeq: number;
  sentSeq: number;
}

export class MemoryStore implements Store {
  readonly kind = 'memory';
  readonly durable = false;

  private readonly sessions = new Map<string, MemSession>();
  private readonly retained = new Map<string, StoredMessage>();
  private maxMessageId = 0;
  private closed = false;

  async open(): Promise<LoadedState> {
    this.check();
    const sessions: LoadedSession[] = [];
    for (const s of this.sessions.values()) {
      sessions.push({
        session: { ...s.record },
        subscriptions: [...s.subscriptions.values()].map((sub) => ({ ...sub })),
        inboundQos2: [...s.inbound],
        queue: { count: s.queue.count, bytes: s.queue.bytes, lastSeq: s.lastSeq, sentSeq: s.sentSeq },
      });
    }
    return { sessions, retained: [...this.retained.values()], nextMessageId: this.maxMessageId + 1 };
  }

  async close(): Promise<void> {
    if (this.closed) throw closedError();
    this.closed = true;
  }

  putSession(record: SessionRecord): void {
    this.check();
    const s = this.sessions.get(record.clientId);
    if (s !== undefined) s.record = { ...record };
    else {
      this.sessions.set(record.clientId, {
        record: { ...record },
        subscriptions: new Map(),
        inbound: new Set(),
        queue: new EntryQueue(),
        lastSeq: 0,
        sentSeq: 0,
      });
    }
  }

  deleteSession(clientId: string): void {
    this.check();
    this.sessions.delete(clientId);
  }

  putSubscription(clientId: string, subscription: SubscriptionRecord): void {
    this.check();
    this.session(clientId).subscriptions.set(subscription.filter, { ...subscription });
  }

  deleteSubscription(clientId: string, filter: string): void {
    this.check();
    this.sessions.get(clientId)?.subscriptions.delete(filter);
  }

  enqueue(clientId: string, entry: QueueEntry): void {
    this.check();
    const s = this.session(clientId);
    s.queue.add({ ...entry });
    if (entry.seq > s.lastSeq) s.lastSeq = entry.seq;
    if (entry.message.id > this.maxMessageId) this.maxMessageId = entry.message.id;
  }

  markSent(clientId: string, seq: number): void {
    this.check();
    const s = this.sessions.get(clientId);
    if (s !== undefined && seq > s.sentSeq) s.sentSeq = seq;
  }

  markReleased(clientId: string, seq: number): void {
    this.check();
    const q = this.sessions.get(clientId)?.queue;
    const e = q?.get(seq);
    if (e !== undefined && e.state !== QueueState.Released) q!.set(seq, { ...e, state: QueueState.Released });
  }

  dequeue(clientId: string, seq: number): void {
    this.check();
    this.sessions.get(clientId)?.queue.remove(seq);
  }

  addInboundQos2(clientId: string, packetId: number): void {
    this.check();
    this.session(clientId).inbound.add(packetId);
  }

  removeInboundQos2(clientId: string, packetId: number): void {
    this.check();
    this.sessions.get(clientId)?.inbound.delete(packetId);
  }

  setRetained(topic: string, message: StoredMessage | null): void {
    this.check();
    if (message === null) this.retained.delete(topic);
    else {
      this.retained.set(topic, message);
      if (message.id > this.maxMessageId) this.maxMessageId = message.id;
    }
  }

  commit(): Promise<void> {
    if (this.closed) return Promise.reject(closedError());
    return Promise.resolve();
  }

  async readQueue(clientId: string, fromSeq: number, limit: number, maxBytes = Infinity): Promise<QueueEntry[]> {
    this.check();
    const s = this.sessions.get(clientId);
    return s === undefined ? [] : s.queue.read(fromSeq, limit, maxBytes);
  }

  async expireQueue(clientId: string, now: number, limit: number): Promise<ExpiredStats> {
    this.check();
    const s = this.sessions.get(clientId);
    return s === undefined ? { count: 0, bytes: 0 } : s.queue.expire(s.sentSeq, now, limit);
  }

  private session(clientId: string): MemSession {
    const s = this.sessions.get(clientId);
    if (s === undefined) throw new Error(`store: no session ${JSON.stringify(clientId)} (putSession first)`);
    return s;
  }

  private check(): void {
    if (this.closed) throw closedError();
  }
}

function closedError(): StoreError {
  return new StoreError('PETREL_ERR_STORE_CLOSED', 'the store is closed');
}
