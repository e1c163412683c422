// The one persistence interface. `broker/` sees only these types; every
// implementation (memory, SQLite, later Redis) passes the same contract suite
// (test/store/contract.ts).
//
// Writes are buffered: each write method records an operation in the current
// batch and returns at once. commit() applies the whole batch atomically (one
// transaction: group commit) and resolves when it is safe according to the
// store's durability setting. The broker sends the acknowledgements that
// depend on a batch only after that batch's commit() resolved (see
// ARCHITECTURE.md, "Durability rule"). Operations apply in the order they were
// made; an implementation may cancel an enqueue() and a later dequeue() of the
// same entry within one batch, as long as the result is the same.
//
// Reads (open, readQueue) see every write made before them, committed or not.
//
// Writes that add to a session (putSubscription, enqueue, addInboundQos2)
// throw if there is no session record for the client id (putSession first: a
// bug in the caller). Updates and deletions of what does not exist (a session,
// subscription, entry or packet id) are ignored. A store may keep the objects
// it is given (messages, entries) until they are written: do not change them.

import type { Properties, ProtocolVersion, QoS } from '../protocol/packets.js';

/** A PUBLISH as stored: one copy shared by every queue entry that refers to it. */
export interface StoredMessage {
  /** Broker-assigned id, unique within the store and increasing. Queue entries of several sessions may share it. */
  id: number;
  topic: string;
  payload: Buffer;
  /** QoS and retain flag as published. */
  qos: QoS;
  retain: boolean;
  /** Forwarded application properties only: payloadFormatIndicator, contentType, responseTopic, correlationData, userProperties (order kept). */
  properties?: Properties;
  /** Absolute expiry, ms since the epoch (from Message Expiry Interval); undefined = never expires. */
  expiresAt?: number;
  /** When the broker received it, ms since the epoch. */
  receivedAt: number;
}

/** Will message of a session, with its delay. */
export interface StoredWill {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  properties?: Properties;
  /** Will Delay Interval, seconds. */
  delayInterval: number;
}

export interface SessionRecord {
  clientId: string;
  protocolVersion: ProtocolVersion;
  /** Session Expiry Interval, seconds (0xFFFFFFFF: never). 3.1.1 clean=false sessions use 0xFFFFFFFF. */
  expiryInterval: number;
  /** ms since the epoch when the client disconnected; null while it is connected. */
  disconnectedAt: number | null;
  /** The will to publish if the client goes away without a normal DISCONNECT (or after its delay); null if none. */
  will: StoredWill | null;
}

export interface SubscriptionRecord {
  /** The filter as subscribed, including any `$share/{group}/` prefix. */
  filter: string;
  qos: QoS;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: 0 | 1 | 2;
  subscriptionId?: number;
}

/** Delivery state of a queue entry. */
export const QueueState = {
  /** Waiting, or sent (the session's sentSeq says which) and awaiting PUBACK/PUBREC. */
  Pending: 0,
  /** QoS 2: PUBREC received, PUBREL sent, awaiting PUBCOMP. The payload is no longer needed. */
  Released: 1,
} as const;
export type QueueState = (typeof QueueState)[keyof typeof QueueState];

/** One message queued (or in flight) for one session. */
export interface QueueEntry {
  /** Per-session sequence number, increasing, assigned by the broker. The packet id is derived from it. */
  seq: number;
  message: StoredMessage;
  /** QoS granted for this delivery (<= message.qos). */
  qos: QoS;
  /** Retain flag to send (after Retain As Published). */
  retain: boolean;
  /** Subscription identifiers to send with it. */
  subscriptionIds?: number[];
  state: QueueState;
}

export interface QueueStats {
  /** Number of entries and payload bytes queued for the session. */
  count: number;
  bytes: number;
  /** Highest seq ever enqueued for this session (0 if none); the broker continues from here. */
  lastSeq: number;
  /** Entries with seq <= sentSeq have been sent at least once (re-sent with DUP on resumption). */
  sentSeq: number;
}

export interface LoadedSession {
  session: SessionRecord;
  subscriptions: SubscriptionRecord[];
  /** Inbound QoS 2 packet ids received (PUBREC sent) and not yet released by PUBREL. */
  inboundQos2: number[];
  queue: QueueStats;
}

export interface LoadedState {
  sessions: LoadedSession[];
  retained: StoredMessage[];
  /** Next StoredMessage.id to assign (greater than every id in the store). */
  nextMessageId: number;
}

export interface Store {
  /** 'memory', 'sqlite', ... for logs and metrics. */
  readonly kind: string;
  /**
   * True when commit() puts the batch on storage that outlives the process.
   * The broker holds acknowledgements back until commit() resolves only when this is true.
   */
  readonly durable: boolean;

  /** Open (create or migrate) the store and load what the broker keeps in memory. Rejects with StoreError on an unreadable or newer-version store, which is left untouched. */
  open(): Promise<LoadedState>;
  /** Commit what is pending, then close. Further calls are errors. */
  close(): Promise<void>;

  // ---- writes: buffered until commit() ----

  /** Create or replace a session's record (not its subscriptions or queue). */
  putSession(record: SessionRecord): void;
  /** Delete a session with its subscriptions, queue and inbound QoS 2 ids. */
  deleteSession(clientId: string): void;
  /** Create or replace the subscription with the same filter. */
  putSubscription(clientId: string, subscription: SubscriptionRecord): void;
  deleteSubscription(clientId: string, filter: string): void;

  /** Queue a message for a session (entry.state is Pending). */
  enqueue(clientId: string, entry: QueueEntry): void;
  /** Record that entries up to and including seq have been sent at least once. sentSeq never decreases (a lower seq is ignored). */
  markSent(clientId: string, seq: number): void;
  /** QoS 2: PUBREC received for this entry. */
  markReleased(clientId: string, seq: number): void;
  /** Remove an entry: acknowledged (PUBACK / PUBCOMP), expired, or dropped. Unknown seq is ignored. */
  dequeue(clientId: string, seq: number): void;

  addInboundQos2(clientId: string, packetId: number): void;
  removeInboundQos2(clientId: string, packetId: number): void;

  /** Set the retained message for a topic, or clear it with null. */
  setRetained(topic: string, message: StoredMessage | null): void;

  /** Apply every write made since the last commit as one transaction. */
  commit(): Promise<void>;

  // ---- reads ----

  /**
   * Up to `limit` entries of a session's queue with seq >= fromSeq, in seq order.
   * With `maxBytes`, the page stops before the payload bytes it returns would
   * exceed maxBytes, but holds at least one entry if there is any. Entries in
   * state Released count as 0 bytes and may come with an empty payload (it is
   * no longer needed).
   */
  readQueue(clientId: string, fromSeq: number, limit: number, maxBytes?: number): Promise<QueueEntry[]>;

  /**
   * Remove up to `limit` entries of a session's queue that were never sent
   * (seq > the session's sentSeq) and whose message has expired
   * (message.expiresAt <= now), as writes of the current batch (committed
   * with the next commit(); reads made after this call see them gone).
   * Resolves with how many entries it removed and their payload bytes.
   * Messages no longer referred to are freed as with dequeue().
   */
  expireQueue(clientId: string, now: number, limit: number): Promise<ExpiredStats>;
}

/** What expireQueue() removed. */
export interface ExpiredStats {
  count: number;
  /** Payload bytes of the entries removed. */
  bytes: number;
}

export class StoreError extends Error {
  constructor(
    readonly code: 'PETREL_ERR_STORE_UNREADABLE' | 'PETREL_ERR_STORE_NEWER_VERSION' | 'PETREL_ERR_STORE_CLOSED' | 'PETREL_ERR_STORE_IO',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StoreError';
  }
}
