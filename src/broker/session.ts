// A session: what the broker keeps for one client id across connections —
// subscriptions, the outbound queue and in-flight window, inbound QoS 2 packet
// ids, the will. A persistent session (expiry > 0) writes every QoS 1/2
// delivery to the store; its heap holds only a bounded window of the queue,
// and nothing at all while the client is offline: the rest is read back from
// the store, in order, when there is room.

import type { ProtocolVersion, QoS } from '../protocol/packets.js';
import { QueueState } from '../store/types.js';
import type { QueueEntry, StoredWill } from '../store/types.js';
import type { Broker } from './broker.js';
import type { Client } from './client.js';
import { Message } from './message.js';
import type { Recipient, SharedGroup, Subscription } from './topic-tree.js';
import type { SubscriptionRecord } from '../store/types.js';

export function subscriptionRecord(sub: Subscription): SubscriptionRecord {
  const r: SubscriptionRecord = {
    filter: sub.filter,
    qos: sub.qos,
    noLocal: sub.noLocal,
    retainAsPublished: sub.retainAsPublished,
    retainHandling: sub.retainHandling,
  };
  if (sub.subscriptionId !== undefined) r.subscriptionId = sub.subscriptionId;
  return r;
}

/** One QoS 1/2 (or queued QoS 0) delivery to this session. */
export class OutEntry implements QueueEntry {
  seq: number;
  message: Message;
  qos: QoS;
  retain: boolean;
  subscriptionIds: number[] | undefined;
  state: QueueState;
  /** The shared group it came through, if any (heap only: not persisted). */
  group: SharedGroup | null;
  constructor(seq: number, message: Message, qos: QoS, retain: boolean, subscriptionIds: number[] | undefined, state: QueueState, group: SharedGroup | null) {
    this.seq = seq;
    this.message = message;
    this.qos = qos;
    this.retain = retain;
    this.subscriptionIds = subscriptionIds;
    this.state = state;
    this.group = group;
  }
}

/** Packet identifiers follow the sequence, so a restarted broker re-sends with the same id (ARCHITECTURE.md). */
export function packetIdOf(seq: number): number {
  return ((seq - 1) % 65535) + 1;
}

/** Entries kept in the heap per session before the rest is left in the store. */
const HEAP_QUEUE = 1000;
/** Publisher flow control: entries waiting beyond the window at which publishers are held back, and released. */
const FLOW_HIGH = 1000;
const FLOW_LOW = 500;
/** Entries read from the store at a time. */
const REFILL_BATCH = 500;

/** A session's publisher flow control (see holdPublisher): allocated on first use, an idle session has none. */
class FlowState {
  /** Publishers held back because the session fell behind (see Client.block); null when none. */
  blocked: Set<Client> | null = null;
  /** Acknowledgements received from the client: the progress the stall watch looks for. */
  acks = 0;
  /** Acknowledged nothing for limits.maxPublisherHoldMs while holding publishers: holds none until it acknowledges. */
  stalled = false;
  timer: NodeJS.Timeout | null = null;
}

/** The empty heap queue, shared by every session that has nothing queued (replaced before anything is added). */
const NO_ENTRIES: OutEntry[] = Object.freeze([]) as unknown as OutEntry[];

export class Session implements Recipient {
  readonly id: string;
  protocolVersion: ProtocolVersion;
  /** Session Expiry Interval, seconds. 0: the session ends with the connection. */
  expiryInterval: number;
  client: Client | null = null;
  private subs: Map<string, Subscription> | null = null;
  /** Will waiting for its delay (or for the session's end) after the connection went away. */
  pendingWill: StoredWill | null = null;
  willTimer: NodeJS.Timeout | null = null;
  expiryTimer: NodeJS.Timeout | null = null;
  /** When the client went away (ms), while offline. */
  disconnectedAt: number | null = null;
  ended = false;
  /** The store has a record of this session (it was persistent at some point and has not been deleted). */
  stored = false;
  /** The store has a record of this non-persistent session only to keep its will across a crash. */
  willStored = false;

  // ---- outbound ----
  /** Last sequence number assigned. */
  nextSeq = 0;
  /** Entries with seq <= sentSeq have been sent at least once. */
  sentSeq = 0;
  private inflight: Map<number, OutEntry> | null = null;
  private queue: OutEntry[] = NO_ENTRIES;
  private qhead = 0;
  /** When > 0, entries with seq >= spillSeq are in the store only (persistent sessions). */
  private spillSeq = 0;
  private refilling = false;
  private deliveredWhileRefilling = false;
  /** All QoS 1/2 entries of this session (heap + store) and their payload bytes, for the limits. */
  queuedCount = 0;
  queuedBytes = 0;

  /** Publisher flow control, from the first time this session holds a publisher back. */
  private flow: FlowState | null = null;

  // ---- inbound ----
  inboundQos2: Set<number> | null = null;

  constructor(
    readonly broker: Broker,
    id: string,
    protocolVersion: ProtocolVersion,
    expiryInterval: number,
  ) {
    this.id = id;
    this.protocolVersion = protocolVersion;
    this.expiryInterval = expiryInterval;
  }

  /** Subscriptions by filter (allocated on first use: an idle connection keeps no map). */
  get subscriptions(): Map<string, Subscription> {
    return (this.subs ??= new Map());
  }

  get persistent(): boolean {
    return this.expiryInterval > 0;
  }

  get online(): boolean {
    return this.client !== null;
  }

  get inflightCount(): number {
    return this.inflight === null ? 0 : this.inflight.size;
  }

  get heapQueueLength(): number {
    return this.queue.length - this.qhead;
  }

  hasRoom(): boolean {
    const c = this.client;
    return c !== null && c.canSend() && this.heapQueueLength === 0 && this.spillSeq === 0 && this.inflightCount < c.window;
  }

  /** Restore the outbound position of a session loaded from the store. */
  restoreQueue(count: number, bytes: number, lastSeq: number, sentSeq: number): void {
    this.queuedCount = count;
    this.queuedBytes = bytes;
    this.nextSeq = lastSeq;
    this.sentSeq = sentSeq;
    if (count > 0) this.spillSeq = 1;
  }

  /**
   * The session became persistent while live (a takeover with a longer expiry): write what only the heap
   * had — subscriptions, inbound QoS 2 ids, the queue — so that the store holds all of it from now on.
   */
  persistAll(): void {
    const store = this.broker.store;
    for (const sub of this.subscriptions.values()) store.putSubscription(this.id, subscriptionRecord(sub));
    if (this.inboundQos2 !== null) for (const pid of this.inboundQos2) store.addInboundQos2(this.id, pid);
    const entries: OutEntry[] = [];
    if (this.inflight !== null) entries.push(...this.inflight.values());
    for (let i = this.qhead; i < this.queue.length; i++) entries.push(this.queue[i]!);
    entries.sort((a, b) => a.seq - b.seq);
    for (const e of entries) {
      store.enqueue(this.id, e);
      if (e.state === QueueState.Released) store.markReleased(this.id, e.seq);
    }
    if (this.sentSeq > 0) store.markSent(this.id, this.sentSeq);
    this.broker.committer.touch();
  }

  // ---- delivery ----

  deliver(msg: Message, qos: QoS, retain: boolean, subIds: readonly number[] | undefined, group: SharedGroup | null): void {
    const broker = this.broker;
    if (qos === 0) {
      const c = this.client;
      if (c !== null) {
        if (c.canSend()) c.sendPublish(msg, 0, retain, subIds, 0, false);
        else broker.stats.droppedQos0++;
        return;
      }
      if (!this.persistent || !broker.limits.queueQos0) {
        broker.stats.droppedQos0++;
        return;
      }
    }
    const limits = broker.limits;
    const len = msg.payload.length;
    if (this.queuedCount >= limits.maxQueuedMessages || this.queuedBytes + len > limits.maxQueuedBytes) {
      broker.stats.droppedQueueFull++;
      return;
    }
    const entry = new OutEntry(++this.nextSeq, msg, qos, retain, subIds as number[] | undefined, QueueState.Pending, group);
    this.queuedCount++;
    this.queuedBytes += len;
    if (this.persistent) {
      broker.store.enqueue(this.id, entry);
      broker.committer.touch();
    }
    if (this.spillSeq !== 0) {
      // Older entries wait in the store: keep the order.
      if (this.refilling) this.deliveredWhileRefilling = true;
      if (this.client !== null) this.holdPublisher();
      return;
    }
    const c = this.client;
    if (c !== null) {
      if (this.heapQueueLength === 0 && this.trySend(entry, c)) return;
      this.holdPublisher();
      if (this.persistent && this.heapQueueLength >= HEAP_QUEUE) {
        this.spillSeq = entry.seq;
        return;
      }
      this.enqueueHeap(entry);
    } else if (this.persistent) {
      // Offline persistent session: the store has it; nothing in the heap.
      this.spillSeq = entry.seq;
    } else {
      // Not attached yet (CONNACK waiting for the store) or about to end: the heap, bounded by the limits.
      this.enqueueHeap(entry);
    }
  }

  private enqueueHeap(entry: OutEntry): void {
    if (this.queue === NO_ENTRIES) this.queue = [];
    this.queue.push(entry);
  }

  /** Send an entry now if the window and the socket allow it. */
  private trySend(entry: OutEntry, c: Client): boolean {
    if (!c.canSend()) return false;
    if (entry.qos === 0) {
      // A QoS 0 message queued while offline (queueQos0): sent once, then gone.
      if (!entry.message.isExpired(Date.now())) c.sendPublish(entry.message, 0, entry.retain, entry.subscriptionIds, 0, false);
      this.forget(entry);
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
    if (entry.seq > this.sentSeq && entry.message.isExpired(Date.now())) {
      this.broker.stats.expired++;
      this.forget(entry);
      return true;
    }
    inflight.set(pid, entry);
    const dup = entry.seq <= this.sentSeq;
    if (!c.sendPublish(entry.message, entry.qos, entry.retain, entry.subscriptionIds, pid, dup)) {
      // Too large for the client's Maximum Packet Size: discarded as if delivered [MQTT-3.1.2-25].
      inflight.delete(pid);
      this.forget(entry);
      return true;
    }
    if (entry.seq > this.sentSeq) {
      this.sentSeq = entry.seq;
      if (this.persistent) {
        this.broker.store.markSent(this.id, entry.seq);
        this.broker.committer.touch();
      }
    }
    return true;
  }

  /** Remove an entry for good: acknowledged, expired or discarded. */
  private forget(entry: OutEntry): void {
    this.queuedCount--;
    this.queuedBytes -= entry.message.payload.length;
    if (this.persistent) {
      this.broker.store.dequeue(this.id, entry.seq);
      this.broker.committer.touch();
    }
  }

  /** A connected session fell behind: hold back the publisher of the message being routed. */
  private holdPublisher(): void {
    const pub = this.broker.publisher;
    if (pub === null || pub === this.client || this.queuedCount - this.inflightCount <= FLOW_HIGH) return;
    const f = (this.flow ??= new FlowState());
    if (f.stalled) return;
    const b = (f.blocked ??= new Set());
    if (b.has(pub)) return;
    b.add(pub);
    pub.block();
    if (f.timer === null) this.watchStall(f);
  }

  /**
   * A subscriber that is slow holds its publishers back; one that acknowledges nothing at all for
   * limits.maxPublisherHoldMs (gone quiet, or not reading) must not stop them for good: it lets them go, and
   * its queue takes the rest up to maxQueuedMessages (then drops, counted). It holds again once it acknowledges.
   */
  private watchStall(f: FlowState): void {
    const seen = f.acks;
    f.timer = setTimeout(() => {
      f.timer = null;
      if (f.blocked === null) return;
      if (f.acks !== seen) return this.watchStall(f);
      f.stalled = true;
      this.broker.stats.stalledSubscribers++;
      this.releasePublishers();
    }, this.broker.limits.maxPublisherHoldMs);
    f.timer.unref();
  }

  private releasePublishers(): void {
    const f = this.flow;
    if (f === null) return;
    if (f.timer !== null) {
      clearTimeout(f.timer);
      f.timer = null;
    }
    const b = f.blocked;
    if (b === null) return;
    f.blocked = null;
    for (const pub of b) pub.unblock();
  }

  /** Holding publishers back, and down to where they may go. */
  private get mayRelease(): boolean {
    return this.flow !== null && this.flow.blocked !== null && this.queuedCount - this.inflightCount <= FLOW_LOW;
  }

  private progress(): void {
    const f = this.flow;
    if (f !== null) {
      f.acks++;
      f.stalled = false;
    }
  }

  /** Send what the window, the socket and the order allow. */
  pump(): void {
    const c = this.client;
    if (c === null) return;
    const q = this.queue;
    while (this.qhead < q.length) {
      if (!this.trySend(q[this.qhead]!, c)) {
        if (this.mayRelease) this.releasePublishers();
        return;
      }
      q[this.qhead++] = undefined as unknown as OutEntry;
    }
    // heap queue empty
    this.queue = NO_ENTRIES;
    this.qhead = 0;
    if (this.spillSeq !== 0) this.refill();
    if (this.mayRelease) this.releasePublishers();
  }

  private refill(): void {
    if (this.refilling || this.client === null) return;
    this.refilling = true;
    this.deliveredWhileRefilling = false;
    const from = this.spillSeq;
    this.broker.store.readQueue(this.id, from, REFILL_BATCH).then(
      (entries) => {
        this.refilling = false;
        if (this.ended || this.spillSeq !== from) return;
        for (const e of entries) {
          if (e.seq < this.spillSeq) continue;
          this.enqueueHeap(new OutEntry(e.seq, Message.fromStored(e.message), e.qos, e.retain, e.subscriptionIds, e.state, null));
          this.spillSeq = e.seq + 1;
        }
        // Caught up with the store: new entries may live in the heap again. A delivery made while an
        // asynchronous read was under way may not be in what it returned: read once more then.
        if (this.spillSeq > this.nextSeq || (entries.length < REFILL_BATCH && !this.deliveredWhileRefilling)) this.spillSeq = 0;
        this.pump();
      },
      (err: unknown) => {
        this.refilling = false;
        this.broker.fatal(err);
      },
    );
  }

  // ---- acknowledgements from the client ----

  onPuback(pid: number): void {
    const e = this.inflight?.get(pid);
    if (e === undefined || e.qos !== 1) return; // unknown id: nothing to do
    this.progress();
    this.inflight!.delete(pid);
    this.forget(e);
    this.pump();
  }

  /** Returns false when the packet id is unknown (v5: PUBREL with 0x92). */
  onPubrec(pid: number, reasonCode: number): boolean {
    const e = this.inflight?.get(pid);
    if (e === undefined || e.qos !== 2) return false;
    this.progress();
    if (reasonCode >= 0x80) {
      // The receiver refused it: the flow ends here (§4.3.3).
      this.inflight!.delete(pid);
      this.forget(e);
      this.pump();
      return true;
    }
    if (e.state !== QueueState.Released) {
      e.state = QueueState.Released;
      if (this.persistent) {
        this.broker.store.markReleased(this.id, e.seq);
        this.broker.committer.touch();
      }
    }
    return true;
  }

  onPubcomp(pid: number): void {
    const e = this.inflight?.get(pid);
    if (e === undefined || e.state !== QueueState.Released) return;
    this.progress();
    this.inflight!.delete(pid);
    this.forget(e);
    this.pump();
  }

  // ---- connection changes ----

  /**
   * A client connected to this session: what was in flight is re-sent first, in order, with DUP (PUBREL for
   * QoS 2 messages already PUBRECed), then the queue [MQTT-4.4.0-1]. detach() left every unacknowledged entry
   * in the queue (non-persistent) or in the store (persistent), both in sequence order.
   */
  attach(client: Client): void {
    this.client = client;
    this.disconnectedAt = null;
    if (this.flow !== null) this.flow.stalled = false;
    this.pump();
  }

  /**
   * The connection went away. Shared-subscription messages not yet acknowledged go to another member
   * of their group. A persistent session then drops its heap copy (the store has everything).
   */
  detach(): void {
    this.client = null;
    this.releasePublishers();
    const redistribute: OutEntry[] = [];
    const keep: OutEntry[] = [];
    if (this.inflight !== null) {
      for (const e of this.inflight.values()) {
        // QoS 1 in flight may go to another member (§4.8.2); a QoS 2 message whose delivery started stays
        // with this session, to be completed on reconnection [MQTT-4.8.2-4], never sent elsewhere [MQTT-4.8.2-5].
        if (this.mayRedistribute(e)) redistribute.push(e);
        else keep.push(e);
      }
      this.inflight = null;
    }
    for (let i = this.qhead; i < this.queue.length; i++) {
      const e = this.queue[i]!;
      if (this.mayRedistribute(e)) redistribute.push(e);
      else keep.push(e);
    }
    this.queue = NO_ENTRIES;
    this.qhead = 0;
    for (const e of redistribute) {
      const other = e.group!.pick(this);
      if (other === null) {
        keep.push(e);
        continue;
      }
      this.forget(e);
      this.broker.stats.sharedRedelivered++;
      other.recipient.deliver(e.message, e.qos < other.qos ? e.qos : other.qos, e.retain, other.subIds, e.group);
    }
    if (this.persistent) {
      let min = this.spillSeq === 0 ? Infinity : this.spillSeq;
      for (const e of keep) if (e.seq < min) min = e.seq;
      this.spillSeq = min === Infinity ? 0 : min;
    } else if (keep.length > 0) {
      // Only possible while a non-persistent session waits to be ended; keep order for the record.
      keep.sort((a, b) => a.seq - b.seq);
      this.queue = keep;
    }
  }

  /** A shared-subscription entry that another member may take: QoS 1, or not sent yet. */
  private mayRedistribute(e: OutEntry): boolean {
    return e.group !== null && e.state !== QueueState.Released && (e.qos === 1 || e.seq > this.sentSeq);
  }

  /** The session ends: drop everything, give shared messages to another member. */
  end(): void {
    if (this.client !== null) this.detach();
    this.releasePublishers();
    this.ended = true;
    this.inflight = null;
    this.queue = NO_ENTRIES;
    this.qhead = 0;
    this.spillSeq = 0;
    this.queuedCount = 0;
    this.queuedBytes = 0;
    if (this.willTimer) clearTimeout(this.willTimer);
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.willTimer = this.expiryTimer = null;
  }
}
