// A session's outbound queue, in one place: order, the in-flight window, the
// in-memory part of the queue and its byte budget, spill to and refill from
// the store, socket backpressure, retained messages owed after a SUBSCRIBE,
// expiry, and the drop policy. Nothing here holds anyone else back: a session
// that falls behind waits in its own queue and, past its own limits, loses
// messages itself, counted (ARCHITECTURE.md, "Isolation").
//
// Where an entry lives:
// - A session the store knows (`host.stored`) writes every QoS 1/2 entry to the
//   store before the publisher is acknowledged; the heap holds only a window of
//   it (at most limits.maxSessionHeapBytes, at least one entry), and nothing
//   while the client is offline. The rest is read back, in order, by bytes.
// - A session the store does not know (clean session) keeps its queue in the
//   heap, bounded by limits.maxSessionHeapBytes and maxQueuedMessages.
// - QoS 0 messages for a connected client are written at once when the socket
//   has room and nothing is queued before them; otherwise they wait in the heap
//   queue, within the same byte budget. They are never written to the store
//   (except queueQos0 for offline persistent sessions).
//
// Drop policy when a session's budget is full: a QoS 0 message is dropped
// (droppedQos0); a QoS 1/2 message for a heap-only session first evicts the
// oldest queued QoS 0 messages, and is dropped (droppedQueueFull) only if that
// does not make room. A stored session drops QoS 1/2 only beyond
// maxQueuedMessages / maxQueuedBytes, after expired entries were purged.

import type { AclIdentity } from '../auth/acl.js';
import type { QoS } from '../protocol/packets.js';
import { QueueState } from '../store/types.js';
import type { QueueEntry, StoredMessage, Store } from '../store/types.js';
import type { Message } from './message.js';
import type { Recipient, SharedGroup } from './topic-tree.js';
import type { Obs } from '../observability/counters.js';

/** Bytes charged per entry held in the heap, beside its payload (the entry, its slot, the map entry). */
export const ENTRY_OVERHEAD = 160;
/** Entries read from the store at a time, at most (the byte budget usually stops it first). */
const REFILL_BATCH = 500;
/** Entries an expiry pass removes at most. */
const EXPIRE_BATCH = 10_000;
/** Least time between two expiry passes of one session triggered by a full queue, ms. */
const EXPIRE_RETRY_MS = 1000;
/** Fresh messages a full stored queue takes beyond its limit while an expiry pass runs. */
const EXPIRE_OVERSHOOT = 1000;

/** One delivery to this session: QoS 1/2, or a QoS 0 message waiting for the socket. */
export class OutEntry implements QueueEntry {
  /** Sequence number (packet id source); 0 for a QoS 0 entry that lives in the heap only. */
  seq: number;
  message: Message;
  qos: QoS;
  retain: boolean;
  subscriptionIds: number[] | undefined;
  state: QueueState;
  /** The shared group it came through, if any (heap only: not persisted). */
  group: SharedGroup | null;
  /** Sent at least once (a re-send carries DUP). */
  sent = false;
  /** Bytes charged to the heap budget while in the heap. */
  cost: number;
  /** When last sent, in tenths of a millisecond (Obs.sendStamp), for the ack round-trip histogram (0 when metrics are off). */
  sentAt = 0;
  constructor(seq: number, message: Message, qos: QoS, retain: boolean, subscriptionIds: number[] | undefined, state: QueueState, group: SharedGroup | null) {
    this.seq = seq;
    this.message = message;
    this.qos = qos;
    this.retain = retain;
    this.subscriptionIds = subscriptionIds;
    this.state = state;
    this.group = group;
    this.cost = message.payload.length + ENTRY_OVERHEAD;
  }
}

/** Packet identifiers follow the sequence, so a restarted broker re-sends with the same id (ARCHITECTURE.md). */
export function packetIdOf(seq: number): number {
  return ((seq - 1) % 65535) + 1;
}

/** The connection a queue sends on (a Client). */
export interface Sender {
  /** Outbound window: QoS 1/2 messages in flight at most. */
  readonly window: number;
  /** The socket has room now. */
  canSend(): boolean;
  /** Returns false if the message is larger than the client's Maximum Packet Size (nothing sent). */
  sendPublish(msg: Message, qos: QoS, retain: boolean, subIds: readonly number[] | undefined, packetId: number, dup: boolean): boolean;
  sendPubrel(packetId: number): void;
  /** Keep what was written to the connection so far from the wire until the store committed what was written to it. */
  holdOutputForCommit(): void;
  /** A throw while serving it (a bug): close this connection, log, count. */
  internalError(err: unknown): void;
}

/** The session a queue belongs to (id, persistent: Session Expiry > 0). */
export interface QueueHost extends Recipient {
  /** The store has a record of the session: QoS 1/2 entries are written to it. */
  readonly stored: boolean;
}

export interface QueueCounters {
  droppedQos0: number;
  droppedQueueFull: number;
  expired: number;
  sharedRedelivered: number;
}

/** What a queue needs of the broker. */
export interface QueueEnv {
  readonly store: Store;
  readonly committer: { touch(): void };
  readonly limits: { readonly maxQueuedMessages: number; readonly maxQueuedBytes: number; readonly maxSessionHeapBytes: number; readonly queueQos0: boolean };
  readonly stats: QueueCounters;
  readonly obs: Obs;
  /** One Message per stored message id while any queue holds it: refills of many sessions share a payload. */
  sharedMessage(m: StoredMessage): Message;
  fatal(err: unknown): void;
  /** Whether the ACL lets this identity read the topic (for subscriptions the ACL granted only in part). */
  aclReadable(identity: AclIdentity, topic: string): boolean;
}

/**
 * Retained messages owed to a new subscription, sent as the socket and the window allow: a walk of the retained
 * index (RetainedIndex.iterate), so that what is owed costs a frame per filter level, not a list of messages.
 */
class RetainedCursor {
  /** The next message to send; null when done. */
  head: Message | null = null;
  constructor(
    readonly filter: string,
    private readonly it: Iterator<Message>,
    readonly qos: QoS,
    readonly subIds: readonly number[] | undefined,
    readonly noLocal: boolean,
  ) {
    this.advance();
  }
  advance(): void {
    const r = this.it.next();
    this.head = r.done === true ? null : r.value;
  }
}

/** The empty heap queue, shared by every session that has nothing queued (replaced before anything is added). */
const NO_ENTRIES: OutEntry[] = Object.freeze([]) as unknown as OutEntry[];

export class OutboundQueue {
  /** Last sequence number assigned. */
  nextSeq = 0;
  /** Highest sequence number sent (what the store's sent mark records). */
  sentSeq = 0;
  /** QoS 1/2 (and store-queued QoS 0) entries of the session, heap and store, and their payload bytes. */
  queuedCount = 0;
  queuedBytes = 0;
  /** Bytes of the entries in the heap (in flight and queued), with ENTRY_OVERHEAD each. */
  heapBytes = 0;
  sender: Sender | null = null;
  ended = false;

  private inflight: Map<number, OutEntry> | null = null;
  private queue: OutEntry[] = NO_ENTRIES;
  private qhead = 0;
  /** When > 0, entries with seq >= spillSeq are in the store only. */
  private spillSeq = 0;
  private refilling = false;
  private deliveredWhileRefilling = false;
  private cursors: RetainedCursor[] | null = null;
  /** Some queued entry may carry an expiry (set on enqueue, and for a queue restored from the store). */
  private mayExpire = false;
  private expiring = false;
  private nextExpiryPass = 0;
  /** Entries taken beyond maxQueuedMessages while the current expiry pass runs. */
  private overshoot = 0;

  constructor(
    private readonly env: QueueEnv,
    private readonly host: QueueHost,
  ) {}

  get inflightCount(): number {
    return this.inflight === null ? 0 : this.inflight.size;
  }

  get heapQueueLength(): number {
    return this.queue.length - this.qhead;
  }

  /** Subscriptions whose retained messages are still being sent. */
  get retainedOwed(): number {
    return this.cursors === null ? 0 : this.cursors.length;
  }

  /** Nothing waits before a new message: it may go out at once. */
  private get idle(): boolean {
    return this.qhead === this.queue.length && this.spillSeq === 0 && this.cursors === null;
  }

  /** For shared subscriptions: can take one more message without queueing. */
  hasRoom(): boolean {
    const c = this.sender;
    return c !== null && c.canSend() && this.idle && this.inflightCount < c.window;
  }

  /** The position of a queue loaded from the store. */
  restore(count: number, bytes: number, lastSeq: number, sentSeq: number): void {
    this.queuedCount = count;
    this.queuedBytes = bytes;
    this.nextSeq = lastSeq;
    this.sentSeq = sentSeq;
    if (count > 0) {
      this.spillSeq = 1;
      this.mayExpire = true;
    }
  }

  /** The session became stored while live: write the heap's QoS 1/2 entries to the store, in order. */
  persistAll(): void {
    const store = this.env.store;
    const entries: OutEntry[] = [];
    if (this.inflight !== null) entries.push(...this.inflight.values());
    for (let i = this.qhead; i < this.queue.length; i++) if (this.queue[i]!.seq !== 0) entries.push(this.queue[i]!);
    entries.sort((a, b) => a.seq - b.seq);
    for (const e of entries) {
      store.enqueue(this.host.id, e);
      if (e.state === QueueState.Released) store.markReleased(this.host.id, e.seq);
    }
    if (this.sentSeq > 0) store.markSent(this.host.id, this.sentSeq);
    this.env.committer.touch();
  }

  // ---- delivery ----

  deliver(msg: Message, qos: QoS, retain: boolean, subIds: readonly number[] | undefined, group: SharedGroup | null): void {
    const env = this.env;
    const c = this.sender;
    env.obs.delivered[qos]!++;
    if (qos === 0) {
      if (c !== null) {
        if (this.idle && c.canSend()) {
          c.sendPublish(msg, 0, retain, subIds, 0, false);
          return;
        }
        // Behind other entries, or the socket is backed up: wait in the heap, within the budget.
        const e = new OutEntry(0, msg, 0, retain, subIds as number[] | undefined, QueueState.Pending, group);
        if (!this.fitsHeap(e.cost)) {
          env.stats.droppedQos0++;
          return;
        }
        msg.own();
        this.enqueueHeap(e);
        return;
      }
      if (!this.host.stored || !this.host.persistent || !env.limits.queueQos0) {
        env.stats.droppedQos0++;
        env.obs.droppedQos0Offline++;
        return;
      }
      // Offline persistent session with queueQos0: stored like QoS 1/2 below.
    }
    const entry = this.newEntry(msg, qos, retain, subIds, group);
    if (entry === null) return;
    if (this.host.stored) {
      if (this.spillSeq !== 0) {
        // Older entries wait in the store: keep the order.
        if (this.refilling) this.deliveredWhileRefilling = true;
        return;
      }
      if (c === null || !this.fitsHeap(entry.cost)) {
        // Offline (nothing in the heap), or the heap window is full: the store has it.
        this.spillSeq = entry.seq;
        return;
      }
    }
    if (c !== null && this.idle && this.addAndSend(entry, c)) return;
    this.enqueueHeap(entry);
  }

  /**
   * A numbered entry for a message the session must keep until acknowledged: admitted under the limits (else
   * dropped, counted: null), counted, and written to the store for a stored session.
   */
  private newEntry(msg: Message, qos: QoS, retain: boolean, subIds: readonly number[] | undefined, group: SharedGroup | null): OutEntry | null {
    const env = this.env;
    const len = msg.payload.length;
    const stored = this.host.stored;
    if (!this.admit(len, qos, stored)) {
      env.stats.droppedQueueFull++;
      return null;
    }
    const entry = new OutEntry(++this.nextSeq, msg, qos, retain, subIds as number[] | undefined, QueueState.Pending, group);
    this.queuedCount++;
    this.queuedBytes += len;
    if (msg.expiresAt !== undefined) this.mayExpire = true;
    if (stored) {
      env.store.enqueue(this.host.id, entry);
      env.committer.touch();
    }
    return entry;
  }

  /** Room for one more QoS 1/2 entry of `len` payload bytes under the session's limits (making room if it can). */
  private admit(len: number, qos: QoS, stored: boolean): boolean {
    const limits = this.env.limits;
    if (stored) {
      if (this.queuedCount < limits.maxQueuedMessages && this.queuedBytes + len <= limits.maxQueuedBytes) return true;
      // Full: expired entries go before a fresh message is refused. While a pass that may free room runs, a
      // few fresh messages are taken beyond the limit (at most EXPIRE_OVERSHOOT): they are stored, so nothing
      // acknowledged waits on the pass.
      if (this.sender !== null || !this.mayExpire) return false;
      this.expireNow(Date.now());
      if (!this.expiring || this.overshoot >= EXPIRE_OVERSHOOT) return false;
      this.overshoot++;
      return true;
    }
    if (this.queuedCount >= limits.maxQueuedMessages) return false;
    const cost = len + ENTRY_OVERHEAD;
    if (this.fitsHeap(cost)) return true;
    if (qos === 0) return false;
    // QoS 0 goes first: evict queued QoS 0 entries, oldest first, until this one fits.
    this.evictQos0(cost);
    return this.fitsHeap(cost);
  }

  private fitsHeap(cost: number): boolean {
    // One entry always fits, however large: a message up to the maximum packet size must be deliverable.
    return this.heapBytes === 0 || this.heapBytes + cost <= this.env.limits.maxSessionHeapBytes;
  }

  private evictQos0(cost: number): void {
    const q = this.queue;
    if (q === NO_ENTRIES) return;
    let w = this.qhead;
    for (let r = this.qhead; r < q.length; r++) {
      const e = q[r]!;
      if (e.qos === 0 && e.seq === 0 && !this.fitsHeap(cost)) {
        this.heapBytes -= e.cost;
        this.env.stats.droppedQos0++;
        continue;
      }
      q[w++] = e;
    }
    q.length = w;
  }

  private enqueueHeap(entry: OutEntry): void {
    if (this.queue === NO_ENTRIES) this.queue = [];
    this.queue.push(entry);
    this.heapBytes += entry.cost;
  }

  /** Put a new entry in the heap and send it now; false (nothing changed) if the window or socket does not allow. */
  private addAndSend(entry: OutEntry, c: Sender): boolean {
    this.heapBytes += entry.cost;
    if (this.trySend(entry, c)) return true;
    this.heapBytes -= entry.cost;
    return false;
  }

  /**
   * Retained messages for a new subscription (after its SUBACK): owed to the session and sent as the window
   * and the socket allow, before what is queued, so that a client reading them gets every one at any QoS.
   */
  deliverRetained(filter: string, items: Iterator<Message>, qos: QoS, subIds: readonly number[] | undefined, noLocal: boolean): void {
    if (this.ended) return;
    const cur = new RetainedCursor(filter, items, qos, subIds, noLocal);
    if (cur.head === null && this.cursors === null) return;
    // The same filter again: its retained messages are sent again from the start [MQTT-3.3.1-9], once.
    const list = (this.cursors ??= []);
    const i = list.findIndex((c) => c.filter === filter);
    if (i >= 0) list.splice(i, 1);
    if (cur.head !== null) list.push(cur);
    if (list.length === 0) this.cursors = null;
    if (this.sender !== null) this.pump();
    else this.cursorsToStore();
  }

  /** Send retained messages owed; false when the window or the socket stopped it. */
  private pumpRetained(c: Sender): boolean {
    const list = this.cursors!;
    const now = Date.now();
    while (list.length > 0) {
      const cur = list[0]!;
      for (let msg = cur.head; msg !== null; msg = cur.head) {
        if (msg.isExpired(now) || (cur.noLocal && msg.origin === this.host.id)) {
          cur.advance();
          continue;
        }
        // Sent because of a new subscription: RETAIN 1 [MQTT-3.3.1-8].
        const qos = (msg.qos < cur.qos ? msg.qos : cur.qos) as QoS;
        if (!c.canSend()) return false;
        if (qos === 0) {
          c.sendPublish(msg, 0, true, cur.subIds, 0, false);
          cur.advance();
          continue;
        }
        if (this.inflightCount >= c.window || this.inflight?.has(packetIdOf(this.nextSeq + 1))) return false;
        if (!this.fitsHeap(msg.payload.length + ENTRY_OVERHEAD)) return false;
        cur.advance();
        const entry = this.newEntry(msg, qos, true, cur.subIds, null);
        if (entry !== null && !this.addAndSend(entry, c)) this.enqueueHeap(entry); // cannot happen: checked above
      }
      list.shift();
    }
    this.cursors = null;
    return true;
  }

  /** The client went away with retained QoS 1/2 messages still owed: a stored session keeps them in its queue. */
  private cursorsToStore(): void {
    const list = this.cursors;
    this.cursors = null;
    if (list === null || !this.host.stored) return;
    const env = this.env;
    const now = Date.now();
    for (const cur of list) {
      for (let msg = cur.head; msg !== null; cur.advance(), msg = cur.head) {
        if (msg.isExpired(now) || (cur.noLocal && msg.origin === this.host.id)) continue;
        const qos = (msg.qos < cur.qos ? msg.qos : cur.qos) as QoS;
        if (qos === 0) continue;
        const entry = this.newEntry(msg, qos, true, cur.subIds, null);
        if (entry !== null && this.spillSeq === 0) this.spillSeq = entry.seq;
      }
    }
    env.committer.touch();
  }

  /** Send an entry that is in the heap now if the window and the socket allow it. */
  private trySend(entry: OutEntry, c: Sender): boolean {
    if (!c.canSend()) return false;
    if (entry.qos === 0) {
      // A QoS 0 message that waited for the socket, or one queued while offline (queueQos0): sent once, then gone.
      if (!entry.message.isExpired(Date.now())) c.sendPublish(entry.message, 0, entry.retain, entry.subscriptionIds, 0, false);
      this.heapBytes -= entry.cost;
      if (entry.seq !== 0) this.forget(entry);
      return true;
    }
    const inflight = (this.inflight ??= new Map());
    if (inflight.size >= c.window) return false;
    const pid = packetIdOf(entry.seq);
    // Ids follow the sequence: if the entry 65535 places back is still unacknowledged, wait for it.
    if (inflight.has(pid)) return false;
    if (entry.state === QueueState.Released) {
      // QoS 2 with PUBREC already received: only the PUBREL is re-sent [MQTT-4.4.0-1].
      inflight.set(pid, entry);
      c.sendPubrel(pid);
      return true;
    }
    // A message expired before its delivery started is not delivered [MQTT-3.3.2-5]; one already sent is
    // re-sent like any other (§4.4).
    if (!entry.sent && entry.message.isExpired(Date.now())) {
      this.env.stats.expired++;
      this.heapBytes -= entry.cost;
      this.forget(entry);
      return true;
    }
    inflight.set(pid, entry);
    if (!c.sendPublish(entry.message, entry.qos, entry.retain, entry.subscriptionIds, pid, entry.sent)) {
      // Too large for the client's Maximum Packet Size: discarded as if delivered [MQTT-3.1.2-25].
      inflight.delete(pid);
      this.heapBytes -= entry.cost;
      this.forget(entry);
      return true;
    }
    entry.sentAt = this.env.obs.sendStamp();
    const stored = this.host.stored;
    // Write before you send: a PUBLISH to a stored session must not reach the client before the store knows
    // the entry, the sequence it came from and that it was sent. Else a restart could give its QoS 2 packet id
    // to another message, which the client would discard as a duplicate [MQTT-4.3.3-9], or re-send it without
    // DUP [MQTT-3.3.1-1].
    if (!entry.sent) {
      entry.sent = true;
      if (entry.seq > this.sentSeq) {
        this.sentSeq = entry.seq;
        if (stored) {
          this.env.store.markSent(this.host.id, entry.seq);
          this.env.committer.touch();
        }
      }
    }
    // After the writes above, so that the hold waits for the commit that has them.
    if (stored) c.holdOutputForCommit();
    return true;
  }

  /** Remove a numbered entry for good: acknowledged, expired or discarded (its heap bytes are the caller's). */
  private forget(entry: OutEntry): void {
    this.queuedCount--;
    this.queuedBytes -= entry.message.payload.length;
    if (this.host.stored) {
      this.env.store.dequeue(this.host.id, entry.seq);
      this.env.committer.touch();
    }
  }

  /** Send what the window, the socket and the order allow. */
  pump(): void {
    const c = this.sender;
    if (c === null) return;
    if (this.cursors !== null && !this.pumpRetained(c)) return;
    const q = this.queue;
    while (this.qhead < q.length) {
      if (!this.trySend(q[this.qhead]!, c)) return;
      q[this.qhead++] = undefined as unknown as OutEntry;
    }
    // heap queue empty
    this.queue = NO_ENTRIES;
    this.qhead = 0;
    if (this.spillSeq !== 0) this.refill();
  }

  private refill(): void {
    if (this.refilling || this.expiring || this.sender === null) return;
    const budget = this.env.limits.maxSessionHeapBytes - this.heapBytes;
    // The window holds the budget: acknowledgements will make room (each calls pump()).
    if (budget <= 0 && this.heapBytes > 0) return;
    this.refilling = true;
    this.deliveredWhileRefilling = false;
    const from = this.spillSeq;
    this.env.store.readQueue(this.host.id, from, REFILL_BATCH, Math.max(1, budget)).then(
      (entries) => {
        this.refilling = false;
        // Ended, moved on, or offline again (an offline session keeps nothing in the heap).
        if (this.ended || this.spillSeq !== from || this.sender === null) return;
        const env = this.env;
        for (const e of entries) {
          if (e.seq < this.spillSeq) continue;
          this.spillSeq = e.seq + 1;
          // Sent ahead of older entries (retained messages owed to a new subscription) and still in flight.
          if (this.inflight?.get(packetIdOf(e.seq))?.seq === e.seq) continue;
          const entry = new OutEntry(e.seq, env.sharedMessage(e.message), e.qos, e.retain, e.subscriptionIds, e.state, null);
          entry.sent = e.seq <= this.sentSeq;
          this.enqueueHeap(entry);
        }
        // Caught up with the store: new entries may live in the heap again. A delivery made while an
        // asynchronous read was under way may not be in what it returned: read once more then.
        if (this.spillSeq > this.nextSeq || (entries.length === 0 && !this.deliveredWhileRefilling)) this.spillSeq = 0;
        this.pump();
      },
      (err: unknown) => {
        this.refilling = false;
        this.env.fatal(err);
      },
    ).catch((err: unknown) => this.sender?.internalError(err));
  }

  // ---- expiry ----

  /**
   * Remove expired entries of an offline stored session from the store (periodic sweep, or a full queue).
   * Returns true if a pass started.
   */
  expireNow(now: number): boolean {
    if (!this.mayExpire || this.expiring || this.ended || this.sender !== null || !this.host.stored || this.queuedCount === 0) return false;
    if (now < this.nextExpiryPass) return false;
    this.nextExpiryPass = now + EXPIRE_RETRY_MS;
    this.expiring = true;
    this.env.store.expireQueue(this.host.id, now, EXPIRE_BATCH).then(
      ({ count, bytes }) => {
        this.expiring = false;
        this.overshoot = 0;
        if (this.ended) return;
        this.queuedCount -= count;
        this.queuedBytes -= bytes;
        this.env.stats.expired += count;
        if (this.queuedCount === 0) this.mayExpire = false;
        if (this.sender !== null) this.pump();
      },
      (err: unknown) => {
        this.expiring = false;
        this.env.fatal(err);
      },
    ).catch((err: unknown) => this.sender?.internalError(err));
    return true;
  }

  // ---- acknowledgements from the client ----

  onPuback(pid: number): boolean {
    const e = this.inflight?.get(pid);
    if (e === undefined || e.qos !== 1) return false; // unknown id: nothing to do
    this.env.obs.ackedAt(1, e.sentAt);
    this.inflight!.delete(pid);
    this.heapBytes -= e.cost;
    this.forget(e);
    this.pump();
    return true;
  }

  /** Returns false when the packet id is unknown (v5: PUBREL with 0x92). */
  onPubrec(pid: number, reasonCode: number): boolean {
    const e = this.inflight?.get(pid);
    if (e === undefined || e.qos !== 2) return false;
    if (reasonCode >= 0x80) {
      // The receiver refused it: the flow ends here (§4.3.3).
      this.inflight!.delete(pid);
      this.heapBytes -= e.cost;
      this.forget(e);
      this.pump();
      return true;
    }
    if (e.state !== QueueState.Released) {
      e.state = QueueState.Released;
      if (this.host.stored) {
        this.env.store.markReleased(this.host.id, e.seq);
        this.env.committer.touch();
      }
    }
    return true;
  }

  onPubcomp(pid: number): boolean {
    const e = this.inflight?.get(pid);
    if (e === undefined || e.state !== QueueState.Released) return false;
    this.env.obs.ackedAt(2, e.sentAt);
    this.inflight!.delete(pid);
    this.heapBytes -= e.cost;
    this.forget(e);
    this.pump();
    return true;
  }

  // ---- connection changes ----

  /**
   * A client connected: what was in flight is re-sent first, in order, with DUP (PUBREL for QoS 2 messages
   * already PUBRECed), then the queue [MQTT-4.4.0-1].
   */
  attach(sender: Sender): void {
    this.sender = sender;
    this.pump();
  }

  /**
   * The connection went away. Shared-subscription messages not yet acknowledged go to another member of their
   * group. A stored session then drops its heap copy (the store has every QoS 1/2 entry); QoS 0 messages that
   * waited for the socket are dropped, counted.
   */
  detach(): void {
    this.sender = null;
    const redistribute: OutEntry[] = [];
    const keep: OutEntry[] = [];
    if (this.inflight !== null) {
      for (const e of this.inflight.values()) {
        // QoS 1 in flight may go to another member (§4.8.2); a QoS 2 message whose delivery started stays
        // with this session, to be completed on reconnection [MQTT-4.8.2-4], never sent elsewhere [MQTT-4.8.2-5].
        if (mayRedistribute(e)) redistribute.push(e);
        else keep.push(e);
      }
      this.inflight = null;
    }
    for (let i = this.qhead; i < this.queue.length; i++) {
      const e = this.queue[i]!;
      if (e.seq === 0) {
        this.env.stats.droppedQos0++;
        continue;
      }
      if (mayRedistribute(e)) redistribute.push(e);
      else keep.push(e);
    }
    this.queue = NO_ENTRIES;
    this.qhead = 0;
    this.heapBytes = 0;
    for (const e of redistribute) {
      const other = e.group!.pick(this.host);
      // A member whose subscription the ACL grants only in part gets the message only if it may read it.
      if (other === null || (other.aclIdentity !== null && !this.env.aclReadable(other.aclIdentity, e.message.topic))) {
        keep.push(e);
        continue;
      }
      this.forget(e);
      this.env.stats.sharedRedelivered++;
      other.recipient.deliver(e.message, e.qos < other.qos ? e.qos : other.qos, e.retain, other.subIds, e.group);
    }
    if (this.host.stored) {
      let min = this.spillSeq === 0 ? Infinity : this.spillSeq;
      for (const e of keep) if (e.seq < min) min = e.seq;
      this.spillSeq = min === Infinity ? 0 : min;
      this.cursorsToStore();
    } else {
      this.cursors = null;
      if (keep.length > 0) {
        // Only while a heap-only session waits to be ended (or a takeover continues it): keep the order.
        keep.sort((a, b) => a.seq - b.seq);
        this.queue = keep;
        for (const e of keep) this.heapBytes += e.cost;
      }
    }
  }

  /** The session ends: drop everything. */
  end(): void {
    if (this.sender !== null) this.detach();
    this.ended = true;
    this.inflight = null;
    this.queue = NO_ENTRIES;
    this.qhead = 0;
    this.spillSeq = 0;
    this.cursors = null;
    this.queuedCount = 0;
    this.queuedBytes = 0;
    this.heapBytes = 0;
  }
}

/** A shared-subscription entry that another member may take: QoS 1, or not sent yet. */
function mayRedistribute(e: OutEntry): boolean {
  return e.group !== null && e.state !== QueueState.Released && (e.qos === 1 || !e.sent);
}
