// Petrel's public embedding API.
//
//   import { createBroker } from 'petrel';
//   const broker = await createBroker({ store: { type: 'memory' }, listeners: [{ port: 0 }] });
//   const [addr] = await broker.listen();
//   for await (const msg of broker.subscribe(['sensors/+/temp'])) { ... }
//   await broker.publish('alerts/fire', 'now', { qos: 1 });
//   await broker.close();

import { Broker as Core, type BrokerStats } from './broker/broker.js';
import type { LocalSubscription, SubscribeOptions } from './broker/local-subscription.js';
import { resolveOptions, type BrokerOptions, type ListenerOptions } from './broker/options.js';
import { createStore } from './store/index.js';
import type { Store } from './store/types.js';
import type { BoundAddress } from './transport/tcp.js';
import type { Properties, QoS } from './protocol/packets.js';
import type { BrokerMessage } from './broker/hooks.js';
import type { HttpAddress } from './observability/index.js';

export type { BrokerOptions, HttpOptions, Limits, ListenerOptions, StoreOption, Transport } from './broker/options.js';
export type { HttpAddress } from './observability/index.js';
export { BUCKETS as METRIC_BUCKETS } from './observability/counters.js';
export { DEFAULT_LIMITS } from './broker/options.js';
export type {
  AuthenticateRequest,
  AuthenticateResult,
  AuthMethod,
  AuthorizePublishResult,
  AuthorizeSubscribeResult,
  AuthStepRequest,
  AuthStepResult,
  BrokerMessage,
  ClientInfo,
  DisconnectInfo,
  Hooks,
  SubscribeRequest,
} from './broker/hooks.js';
export { HOOK_NAMES } from './broker/hooks.js';
export type { BrokerStats } from './broker/broker.js';
export type { SubscribeOptions } from './broker/local-subscription.js';
export type { BoundAddress } from './transport/tcp.js';
export type { LogFormat, Logger, LoggerOptions, LogLevel, PinoLike } from './broker/logger.js';
export { createLogger } from './broker/logger.js';
export { PetrelError, type ErrorCode } from './broker/errors.js';
export type { Packet, Properties, ProtocolVersion, QoS, UserProperty } from './protocol/packets.js';
export { ReasonCode } from './protocol/reason-codes.js';
export type { Store } from './store/types.js';

export interface PublishOptions {
  qos?: QoS;
  retain?: boolean;
  /** payloadFormatIndicator, messageExpiryInterval, contentType, responseTopic, correlationData, userProperties. */
  properties?: Properties;
}

/** An in-process subscription: iterate it with for await; break, an AbortSignal or close() ends it. */
export interface Subscription extends AsyncIterableIterator<BrokerMessage> {
  readonly filters: readonly string[];
  /** Messages dropped because the buffer (highWaterMark) was full. */
  readonly dropped: number;
  /** Messages waiting to be read. */
  readonly size: number;
  close(): void;
}

export interface PetrelBroker {
  /** Open the listeners (default: those of the options). Port 0 binds a free port; the bound addresses are returned. */
  listen(listeners?: ListenerOptions[]): Promise<BoundAddress[]>;
  /**
   * Re-read what can change without a restart (the CLI does it on SIGHUP): TLS certificates, the password and ACL
   * files. A part that fails keeps its old state; its error is in the result (and logged).
   */
  reload(): Promise<{ ok: boolean; errors: { part: string; message: string }[] }>;
  /** Stop accepting, DISCONNECT 0x8B to v5 clients, flush, close the store. */
  close(): Promise<void>;
  /** Publish as the broker, routed like a network PUBLISH; resolves once stored. */
  publish(topic: string, payload: Buffer | Uint8Array | string, options?: PublishOptions): Promise<void>;
  /** Subscribe in-process to one or more filters (`$share/{group}/...` included). */
  subscribe(filters: string | readonly string[], options?: SubscribeOptions): Subscription;
  /** Counters since start. */
  readonly stats: Readonly<BrokerStats>;
  /** Connections that completed CONNECT and are open. */
  readonly connectedClients: number;
  /** Sessions known (connected or not). */
  readonly sessionCount: number;
  /** Retained messages held. */
  readonly retainedCount: number;
  /** Bytes the topic-match cache holds now, as counted against limits.maxMatchCacheBytes. */
  readonly matchCacheBytes: number;
  /** Called if the store fails: the broker has shut down. */
  onFatal(handler: (err: unknown) => void): void;
  /** What the broker holds for one client id, or undefined if it has no session. */
  session(clientId: string): SessionInfo | undefined;
  /** The HTTP listener's address (options.http) once listen() opened it, else null. */
  readonly httpAddress: HttpAddress | null;
}

export interface SessionInfo {
  clientId: string;
  online: boolean;
  /** Session Expiry Interval, seconds. */
  expiryInterval: number;
  subscriptions: number;
  /** QoS 1/2 messages queued or in flight (heap and store), and their payload bytes. */
  queuedMessages: number;
  queuedBytes: number;
  /** Messages in flight (sent, not yet acknowledged). */
  inflight: number;
  /** Bytes of messages this session holds in memory (in flight and queued in the heap); see limits.maxSessionHeapBytes. */
  heapBytes: number;
  /** Its new subscriptions whose retained messages are still being sent. */
  retainedOwed: number;
}

class PublicBroker implements PetrelBroker {
  readonly #core: Core;
  constructor(core: Core) {
    this.#core = core;
  }
  listen(listeners?: ListenerOptions[]): Promise<BoundAddress[]> {
    return listeners === undefined ? this.#core.listen() : this.#core.listen(resolveOptions({ listeners }).listeners);
  }
  close(): Promise<void> {
    return this.#core.close();
  }
  reload(): Promise<{ ok: boolean; errors: { part: string; message: string }[] }> {
    return this.#core.reload();
  }
  async publish(topic: string, payload: Buffer | Uint8Array | string, options?: PublishOptions): Promise<void> {
    await this.#core.publish(topic, payload, options);
  }
  subscribe(filters: string | readonly string[], options?: SubscribeOptions): Subscription {
    return this.#core.subscribe(filters, options) as LocalSubscription & Subscription;
  }
  get stats(): Readonly<BrokerStats> {
    return this.#core.stats;
  }
  get connectedClients(): number {
    return this.#core.connectedCount;
  }
  get sessionCount(): number {
    return this.#core.sessions.size;
  }
  get retainedCount(): number {
    return this.#core.retained.size;
  }
  get matchCacheBytes(): number {
    return this.#core.tree.cacheBytes;
  }
  onFatal(handler: (err: unknown) => void): void {
    this.#core.onFatal(handler);
  }
  get httpAddress(): HttpAddress | null {
    return this.#core.httpAddress;
  }
  session(clientId: string): SessionInfo | undefined {
    const s = this.#core.sessions.get(clientId);
    if (s === undefined) return undefined;
    const out = s.out;
    return {
      clientId,
      online: s.online,
      expiryInterval: s.expiryInterval,
      subscriptions: s.subscriptions.size,
      queuedMessages: out.queuedCount,
      queuedBytes: out.queuedBytes,
      inflight: out.inflightCount,
      heapBytes: out.heapBytes,
      retainedOwed: out.retainedOwed,
    };
  }
}

/**
 * Create a broker and open its store (sessions, subscriptions and retained messages are restored).
 * Call listen() to accept network clients; the in-process API works without it.
 */
export async function createBroker(options: BrokerOptions = {}): Promise<PetrelBroker> {
  const resolved = resolveOptions(options);
  if (resolved.cluster !== undefined) return createClusterNode(resolved);
  const opt = resolved.store;
  const store: Store = 'type' in opt ? createStore(opt) : opt;
  const core = new Core(resolved, store);
  await core.start();
  return new PublicBroker(core);
}

/** Cluster mode: the store is Redis, the node joins once the broker is started (src/cluster/). */
async function createClusterNode(resolved: ReturnType<typeof resolveOptions>): Promise<PetrelBroker> {
  const { Cluster } = await import('./cluster/cluster.js');
  const cluster = new Cluster(resolved.cluster!);
  await cluster.connect();
  const core = new Core(resolved, cluster.store);
  core.cluster = cluster;
  try {
    await core.start();
    await cluster.attach(core);
  } catch (err) {
    await core.close().catch(() => {});
    throw err;
  }
  return new PublicBroker(core);
}

