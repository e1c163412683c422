// A session: what the broker keeps for one client id across connections —
// subscriptions, inbound QoS 2 packet ids, the will, its expiry, and its
// outbound queue (outbound.ts, which owns order, window, spill and refill,
// backpressure and expiry of what goes to the client).

import type { ProtocolVersion, QoS } from '../protocol/packets.js';
import type { StoredWill } from '../store/types.js';
import type { Broker } from './broker.js';
import type { Client } from './client.js';
import type { Message } from './message.js';
import { OutboundQueue } from './outbound.js';
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
  /**
   * The store has a record of this session (it was persistent at some point and has not been deleted). While it
   * has, every QoS 1/2 delivery is written to the store, also after a resume with expiry 0 changed the session
   * to one that ends with its connection: its backlog is in the store, and what comes after it goes there too.
   */
  stored = false;
  /** The store has a record of this non-persistent session only to keep its will across a crash. */
  willStored = false;
  /** What goes to the client. */
  readonly out: OutboundQueue;

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
    this.out = new OutboundQueue(broker, this);
  }

  /** Subscriptions by filter (allocated on first use: an idle connection keeps no map). */
  get subscriptions(): Map<string, Subscription> {
    return (this.subs ??= new Map());
  }

  /** Its subscriptions if it has any, without allocating the map (metrics). */
  get subscriptionsIfAny(): ReadonlyMap<string, Subscription> | null {
    return this.subs;
  }

  get persistent(): boolean {
    return this.expiryInterval > 0;
  }

  get online(): boolean {
    return this.client !== null;
  }

  hasRoom(): boolean {
    return this.out.hasRoom();
  }

  /**
   * The session became persistent while live (a takeover with a longer expiry): write what only the heap
   * had — subscriptions, inbound QoS 2 ids, the queue — so that the store holds all of it from now on.
   */
  persistAll(): void {
    const store = this.broker.store;
    for (const sub of this.subscriptions.values()) store.putSubscription(this.id, subscriptionRecord(sub));
    if (this.inboundQos2 !== null) for (const pid of this.inboundQos2) store.addInboundQos2(this.id, pid);
    this.out.persistAll();
  }

  deliver(msg: Message, qos: QoS, retain: boolean, subIds: readonly number[] | undefined, group: SharedGroup | null): void {
    const cluster = this.broker.cluster;
    if (cluster !== null) {
      // Cluster mode: a session handed to another node passes what still reaches it on; a stored session
      // drops a message id it already queued (it came by two paths while the session moved).
      const to = cluster.forwardingFor(this);
      if (to !== null) return cluster.forwardTo(to, this.id, msg, qos, retain, subIds);
      if (group === null && cluster.alreadyQueued(this, msg.id)) return;
    }
    this.out.deliver(msg, qos, retain, subIds, group);
  }

  pump(): void {
    this.out.pump();
  }

  /** A client connected to this session: in-flight messages are re-sent first, then the queue [MQTT-4.4.0-1]. */
  attach(client: Client): void {
    this.client = client;
    this.disconnectedAt = null;
    this.out.attach(client);
  }

  /** The connection went away (see OutboundQueue.detach). */
  detach(): void {
    this.client = null;
    this.out.detach();
  }

  /** The session ends: drop everything, give shared messages to another member. */
  end(): void {
    if (this.client !== null) this.detach();
    this.ended = true;
    this.out.end();
    if (this.willTimer) clearTimeout(this.willTimer);
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.willTimer = this.expiryTimer = null;
  }
}
