// The broker: sessions and connections, the subscription tree, retained
// messages, routing, wills and expiry, and the lifecycle (start from the
// store, listen, close gracefully).

import type { Duplex } from 'node:stream';
import type { Properties, ProtocolVersion, QoS, SubscriptionRequest, WillMessage } from '../protocol/packets.js';
import { ReasonCode } from '../protocol/reason-codes.js';
import { propertiesLength } from '../protocol/properties.js';
import { exceedsTopicLevels, parseSharedFilter, validateTopicFilter, validateTopicName } from '../protocol/topic.js';
import type { Store, StoredMessage, StoredWill } from '../store/types.js';
import { Connection, type ConnectionMeta } from '../transport/connection.js';
import { openListener, type Listener, type ListenerHost, type ListenerStats } from '../transport/listener.js';
import type { BoundAddress } from '../transport/tcp.js';
import { Client } from './client.js';
import { ClientState } from './client-state.js';
import { Committer } from './committer.js';
import { DeadlineWheel } from './keep-alive.js';
import { PetrelError } from './errors.js';
import type { AuthMethod, BrokerMessage, Hooks } from './hooks.js';
import { LOCAL_HWM_BYTES, LocalSubscription, type SubscribeOptions } from './local-subscription.js';
import { MemoryGuard } from './memory-guard.js';
import { createLogger, type Logger } from './logger.js';
import { forwardableProperties, Message } from './message.js';
import type { Limits, ResolvedOptions } from './options.js';
import { RetainedIndex } from './retained.js';
import { Session, subscriptionRecord } from './session.js';
import { Subscription, TopicTree, type Recipient } from './topic-tree.js';
import { KeyedRateLimiter } from '../transport/token-bucket.js';
import { BrokerAuth, UNKNOWN_IDENTITY } from '../auth/auth.js';
import type { Acl, AclIdentity } from '../auth/acl.js';
import { closeReasonLabel, Obs } from '../observability/counters.js';
import { petrelVersionSync } from '../observability/version.js';
import { startObservability, type HttpAddress, type Observability } from '../observability/index.js';
import type { Cluster } from '../cluster/cluster.js';
import type { LoadedSession } from '../store/types.js';

/** The broker's counters; the listeners' own (refused connections by stage) are in ListenerStats. */
export interface BrokerStats extends ListenerStats {
  connectionsOpened: number;
  connects: number;
  connectsRefused: number;
  packetsIn: number;
  bytesIn: number;
  messagesIn: number;
  messagesOut: number;
  /** QoS 0 messages dropped because the client's socket was backed up, or the client offline. */
  droppedQos0: number;
  /** QoS 1/2 messages dropped because a session's queue was full (maxQueuedMessages / maxQueuedBytes). */
  droppedQueueFull: number;
  /** Messages not sent because they exceeded the client's Maximum Packet Size. */
  droppedTooLarge: number;
  /** Messages that expired before they could be delivered. */
  expired: number;
  /** Shared-subscription messages handed to another member when theirs went away. */
  sharedRedelivered: number;
  publishDenied: number;
  subscribeDenied: number;
  protocolErrors: number;
  keepAliveTimeouts: number;
  /** Messages dropped by full in-process subscriptions. */
  localDropped: number;
  willsPublished: number;
  /** Throws caught while handling a client (it was closed, 0x83) or broker-owned work (logged). */
  internalErrors: number;
  /** Topic names and filters refused for having more than limits.maxTopicLevels levels (PUBLISH, SUBSCRIBE, will, in-process API). */
  topicLevelsRefused: number;
  /** Packets other than PUBLISH not sent because they exceeded the client's Maximum Packet Size even without Reason String and User Properties [MQTT-3.1.2-24]. */
  packetsTooLarge: number;
  /** Times memory went above limits.memoryLimit (or the V8 heap watermark): one per episode. */
  memoryEpisodes: number;
  /** CONNECTs refused because memory was above the watermark (CONNACK 0x89; 3.1/3.1.1: return code 3). */
  connectsRefusedMemory: number;
  /** Connections whose reading was paused because memory was above the watermark. */
  readsPausedMemory: number;
  /** Sockets closed at accept because limits.maxConnections were open. */
  connectionsRefusedLimit: number;
  /** Sockets closed at accept because their IP address went over limits.connectionRatePerAddress. */
  connectionsRefusedAddressRate: number;
  /** Times a client's reading was paused for going over limits.maxPublishRate / maxPublishBytesRate. */
  publishRatePauses: number;
  /** Clients disconnected for going over their publish rate (limits.rateLimitDisconnect). */
  publishRateDisconnects: number;
  /** Topic names and filters refused for being longer than limits.maxTopicLength bytes. */
  topicLengthRefused: number;
  // ---- authentication and authorization (options.auth, src/auth/) ----
  /** CONNECTs refused for their credentials: bad password, unknown user, anonymous refused, a hook's refusal. */
  authFailures: number;
  /** Of those: clients without a user name refused (allowAnonymous false). */
  authAnonymousRefused: number;
  /** CONNECTs refused with 0x89 because the password-hash queue was full (auth.maxPendingHashes). */
  authBusy: number;
  /** CONNECTs refused because their address is banned by the login guard (0x8A; 3.1.1: 5). */
  authBanned: number;
  /** Addresses banned by the login guard (auth.loginGuard). */
  authBans: number;
  /** Connected clients disconnected by a reload because their password-file entry was removed or changed. */
  authRevoked: number;
  /** Deliveries (retained messages included) withheld from partially granted subscriptions by the ACL. */
  aclFiltered: number;
  /** Subscriptions removed because the ACL no longer allows them (reload, or a session resumed by another user). */
  aclSubscriptionsRevoked: number;
}

const MAX_TIMER = 0x7fffffff;
const NEVER = 0xffffffff;
/** Interval of the expiry pass over retained messages and offline queues, ms. */
const EXPIRY_SWEEP_MS = 10_000;

/** setTimeout for delays longer than 24.8 days. */
function longTimeout(ms: number, fn: () => void): NodeJS.Timeout {
  if (ms <= MAX_TIMER) return setTimeout(fn, Math.max(0, ms));
  return setTimeout(() => {
    longTimeout(ms - MAX_TIMER, fn);
  }, MAX_TIMER);
}

export class Broker {
  readonly limits: Limits;
  readonly hooks: Hooks;
  readonly authMethods: Record<string, AuthMethod>;
  readonly responseInformation: string | undefined;
  readonly logger: Logger;
  readonly store: Store;
  readonly committer: Committer;
  readonly tree: TopicTree;
  readonly retained = new RetainedIndex();
  /** Sessions by client id (connected or not). */
  readonly sessions = new Map<string, Session>();
  /** Every open connection, connected or not yet. */
  readonly clients = new Set<Client>();
  /** The connection that holds each client id (from CONNECT accepted to release). */
  private readonly live = new Map<string, Client>();
  readonly stats: BrokerStats = {
    connectionsOpened: 0,
    connects: 0,
    connectsRefused: 0,
    packetsIn: 0,
    bytesIn: 0,
    messagesIn: 0,
    messagesOut: 0,
    droppedQos0: 0,
    droppedQueueFull: 0,
    droppedTooLarge: 0,
    expired: 0,
    sharedRedelivered: 0,
    publishDenied: 0,
    subscribeDenied: 0,
    protocolErrors: 0,
    keepAliveTimeouts: 0,
    localDropped: 0,
    willsPublished: 0,
    internalErrors: 0,
    topicLevelsRefused: 0,
    packetsTooLarge: 0,
    memoryEpisodes: 0,
    connectsRefusedMemory: 0,
    readsPausedMemory: 0,
    connectionsRefusedLimit: 0,
    connectionsRefusedAddressRate: 0,
    publishRatePauses: 0,
    publishRateDisconnects: 0,
    topicLengthRefused: 0,
    authFailures: 0,
    authAnonymousRefused: 0,
    authBusy: 0,
    authBanned: 0,
    authBans: 0,
    authRevoked: 0,
    aclFiltered: 0,
    aclSubscriptionsRevoked: 0,
    connectionsRefusedMaxConnections: 0,
    connectionsRefusedRate: 0,
    proxyHeadersRefused: 0,
    tlsHandshakesFailed: 0,
    tlsRenegotiationsRefused: 0,
    wsUpgradesRefused: 0,
  };
  /** Password file, ACL file, anonymous policy, hash queue, login guard (src/auth/auth.ts). */
  readonly auth: BrokerAuth;
  closing = false;
  /**
   * While true (routing an inbound QoS 2 message whose packet id is not committed yet), whatever is written to a
   * recipient's connection stays off the wire until the commit.
   */
  holdDeliveries = false;
  /** Live messages by stored id, so that queues refilled from the store share one payload. */
  private readonly liveMessages = new Map<number, WeakRef<Message>>();
  private readonly liveMessagesGone = new FinalizationRegistry<number>((id) => {
    const r = this.liveMessages.get(id);
    if (r !== undefined && r.deref() === undefined) this.liveMessages.delete(id);
  });
  /** Retained messages that carry an expiry, by topic, for the sweep. */
  private readonly expiringRetained = new Map<string, Message>();
  private expiryTimer: NodeJS.Timeout | null = null;
  private started = false;
  /** broker.started was logged (the first listen()). */
  private announced = false;
  private readonly createdAt = Date.now();
  private closed = false;
  private messageId = 1;
  private localId = 0;
  private readonly locals = new Set<LocalSubscription>();
  private listeners: Listener[] = [];
  private sweepTimer: NodeJS.Timeout | null = null;
  /** Keep alive and CONNECT deadlines of every connection (keep-alive.ts). */
  private readonly deadlines = new DeadlineWheel<Client>();
  /**
   * The deadlines' clock (deadlines.tick, TICK_MS steps). A client records the tick of its last input (a small
   * integer: no Date.now() per read, no boxed number per connection).
   */
  tick = 0;
  private readonly closeTimeout: number;
  private readonly listenerOptions: ResolvedOptions['listeners'];
  private fatalHandler: ((err: unknown) => void) | null = null;
  /** fatal() was called: the store failed or the node fenced itself. */
  private failed = false;
  /** Cluster mode (src/cluster/), set before start(); null for a single node. */
  cluster: Cluster | null = null;

  constructor(options: ResolvedOptions, store: Store) {
    this.limits = options.limits;
    this.tree = new TopicTree(options.limits.maxMatchCacheBytes);
    this.hooks = options.hooks;
    this.authMethods = options.authMethods;
    this.responseInformation = options.responseInformation;
    this.logger = options.logger ?? createLogger(options.logLevel, { format: options.logFormat });
    this.closeTimeout = options.closeTimeout;
    this.listenerOptions = options.listeners;
    this.store = store;
    this.committer = new Committer(store, (err) => this.fatal(err), (err) => {
      this.stats.internalErrors++;
      this.logger.error('work after a commit failed', { event: 'broker.internal_error', err });
    });
    const perAddress = options.limits.connectionRatePerAddress;
    if (perAddress > 0) this.addressRate = new KeyedRateLimiter(perAddress, Math.max(1, perAddress));
    this.memory = new MemoryGuard(options.limits.memoryLimit, { connections: this.clients, stats: this.stats, logger: this.logger });
    this.auth = new BrokerAuth(options.auth);
    if (this.auth.configured) this.reloaders.set('auth', () => this.reloadAuth());
    this.obs = new Obs(options.http !== undefined && options.metrics);
    this.committer.commitRecorder = this.obs.timing ? this.obs.commit : null;
    this.observabilityOptions = options;
    this.reloaders.set('tls', () => this.reloadCertificates());
  }

  /** Re-read the certificates of every tls/wss listener; all are read before any is swapped in. */
  private reloadCertificates(): void {
    const errors: string[] = [];
    for (const l of this.listeners) {
      if (l.address.transport !== 'tls' && l.address.transport !== 'wss') continue;
      try {
        l.reload();
      } catch (err) {
        errors.push(`${l.address.name}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    if (errors.length > 0) throw new Error(`certificates not reloaded: ${errors.join('; ')}`);
  }

  /** Counters and latency recorders (src/observability/counters.ts), read by /metrics and $SYS. */
  readonly obs: Obs;
  private readonly observabilityOptions: ResolvedOptions;
  /** The HTTP listener and the $SYS tree, once started. */
  private observability: Observability | null = null;
  /** When start() opened the store (ms). */
  startedAt = 0;

  /** MQTT listeners bound now (readiness). */
  get boundListeners(): number {
    return this.listeners.length;
  }

  /** The HTTP listener's address, once listen() opened it. */
  get httpAddress(): HttpAddress | null {
    return this.observability?.httpAddress ?? null;
  }

  /** The memory watermark (limits.memoryLimit): global backpressure, see memory-guard.ts. */
  readonly memory: MemoryGuard;

  nextMessageId(): number {
    return this.messageId++;
  }

  onFatal(handler: (err: unknown) => void): void {
    this.fatalHandler = handler;
  }

  /** The store failed: nothing more can be acknowledged safely. Stop. */
  fatal(err: unknown): void {
    this.logger.error('store failure; shutting down', { event: 'store.failed', err });
    // Nothing held for a commit will be sent: the connections close without waiting for their output.
    this.failed = true;
    const h = this.fatalHandler;
    void this.close().finally(() => {
      if (h) h(err);
    });
  }

  // ---- lifecycle ----

  /** Open the store and restore sessions, subscriptions and retained messages. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const state = await this.store.open();
    this.messageId = Math.max(1, state.nextMessageId);
    for (const m of state.retained) this.setRetainedIndex(m.topic, Message.fromStored(m));
    const now = Date.now();
    const endedWills: [string, StoredWill][] = [];
    for (const loaded of state.sessions) {
      const rec = loaded.session;
      if (rec.expiryInterval === 0) {
        // Kept only for its will: the session ended when the broker stopped.
        if (rec.will) endedWills.push([rec.clientId, rec.will]);
        this.store.deleteSession(rec.clientId);
        this.committer.touch();
        continue;
      }
      this.restoreSession(loaded, now);
    }
    // Once every subscription is back in the tree.
    for (const [clientId, will] of endedWills) this.publishWill(clientId, will);
    this.scheduleSweep();
    this.expiryTimer = setInterval(() => this.guarded('expiry pass', () => this.expireAll()), EXPIRY_SWEEP_MS);
    this.expiryTimer.unref();
    this.memory.start();
    this.startedAt = Date.now();
    this.observability = startObservability(this, this.observabilityOptions);
    this.logger.info('store opened', {
      event: 'store.opened',
      store: this.store.kind,
      sessions: state.sessions.length,
      retained: state.retained.length,
    });
  }


  /** A stored session back in memory, offline (at start, or in cluster mode when claimed or adopted). */
  private restoreSession(loaded: LoadedSession, now: number): Session {
    const rec = loaded.session;
    const s = new Session(this, rec.clientId, rec.protocolVersion, rec.expiryInterval);
    s.stored = true;
    s.out.restore(loaded.queue.count, loaded.queue.bytes, loaded.queue.lastSeq, loaded.queue.sentSeq);
    if (loaded.inboundQos2.length > 0) s.inboundQos2 = new Set(loaded.inboundQos2);
    for (const r of loaded.subscriptions) {
      const shared = parseSharedFilter(r.filter);
      const sub = new Subscription(
        s, r.filter, shared ? shared.filter : r.filter, shared ? shared.group : null,
        r.qos, r.noLocal, r.retainAsPublished, r.retainHandling, r.subscriptionId,
      );
      // Whose rights apply is known once its client connects again (recheckSubscriptions): until then no
      // message passes the ACL for it.
      if (this.auth.acl !== null) {
        sub.aclIdentity = UNKNOWN_IDENTITY;
        this.auth.aclGranted.add(sub);
      }
      this.treeAdd(sub);
      s.subscriptions.set(r.filter, sub);
    }
    this.sessions.set(rec.clientId, s);
    // A session whose client was connected when the broker stopped is disconnected as of now.
    s.disconnectedAt = rec.disconnectedAt ?? now;
    if (rec.will) {
      s.pendingWill = rec.will;
      const willAt = s.disconnectedAt + rec.will.delayInterval * 1000;
      s.willTimer = longTimeout(willAt - now, () => this.guarded('will timer', () => this.fireWill(s)));
    }
    if (rec.disconnectedAt === null) this.persistSession(s);
    this.scheduleExpiry(s, now);
    return s;
  }

  /**
   * What reload() re-reads, by part ('tls': listener certificates, 'auth': password and ACL files). Each part
   * registers itself; a part that throws keeps its old state and its error is reported.
   */
  readonly reloaders = new Map<string, () => void | Promise<void>>();

  /** Re-read certificates, password and ACL files (SIGHUP). Parts that fail keep their old state. */
  async reload(): Promise<{ ok: boolean; errors: { part: string; message: string }[] }> {
    const errors: { part: string; message: string }[] = [];
    for (const [part, fn] of this.reloaders) {
      try {
        await fn();
      } catch (err) {
        errors.push({ part, message: err instanceof Error ? err.message : String(err) });
        this.logger.error('reload failed; the old settings stay', { event: 'config.reload_failed', part, err });
      }
    }
    if (errors.length === 0) this.logger.info('reloaded', { event: 'config.reloaded', parts: [...this.reloaders.keys()] });
    return { ok: errors.length === 0, errors };
  }

  /** Open the configured listeners (or the given ones). Returns the bound addresses. */
  async listen(listeners = this.listenerOptions): Promise<BoundAddress[]> {
    if (this.closing) throw new PetrelError('PETREL_ERR_CLOSED', 'the broker is closed');
    await this.start();
    const opened: Listener[] = [];
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const broker = this;
    const host: ListenerHost = {
      limits: this.limits,
      stats: this.stats,
      logger: this.logger,
      get closing() {
        return broker.closing;
      },
      accept: (stream, meta, remote) => {
        if (!this.admit(meta.remoteIp)) {
          stream.destroy();
          return;
        }
        this.acceptConnection(stream, () => remote, meta);
      },
    };
    try {
      for (const l of listeners) opened.push(await openListener(l, host));
      if (this.observability !== null) await this.observability.listen();
    } catch (err) {
      await Promise.all(opened.map((l) => l.close()));
      const e = err as NodeJS.ErrnoException;
      throw new PetrelError('PETREL_ERR_LISTEN', `cannot listen: ${e.message}`, { cause: err });
    }
    this.listeners.push(...opened);
    for (const l of opened) {
      this.logger.info('listening', { event: 'listener.listening', listener: l.address.name, transport: l.address.transport, host: l.address.host, port: l.address.port });
    }
    if (!this.announced) {
      this.announced = true;
      this.logger.info('broker started', {
        event: 'broker.started',
        version: petrelVersionSync(),
        node: this.cluster?.member,
        listeners: this.listeners.length,
        store: this.store.kind,
        startupMs: Date.now() - this.createdAt,
      });
    }
    return opened.map((l) => l.address);
  }

  /**
   * Whether a new socket from this IP address may open a connection under limits.maxConnections and
   * limits.connectionRatePerAddress (counted when not). The caller closes a refused socket.
   */
  admit(ip: string): boolean {
    const max = this.limits.maxConnections;
    if (max > 0 && this.clients.size >= max) {
      this.stats.connectionsRefusedLimit++;
      this.refusalLog('connection refused: limits.maxConnections reached', 'max_connections', ip);
      return false;
    }
    if (this.addressRate !== null && !this.addressRate.allow(ip, Date.now())) {
      this.stats.connectionsRefusedAddressRate++;
      this.refusalLog('connection refused: limits.connectionRatePerAddress exceeded', 'address_rate', ip);
      return false;
    }
    return true;
  }

  private addressRate: KeyedRateLimiter | null = null;
  private lastRefusalLog = 0;

  /** At most one log line per second for refused sockets (a flood must not become a flood of logs). */
  private refusalLog(msg: string, reason: string, ip: string): void {
    const now = Date.now();
    if (now - this.lastRefusalLog < 1000) return;
    this.lastRefusalLog = now;
    this.logger.warn(msg, { event: 'connection.refused', reason, address: ip, refusedLimit: this.stats.connectionsRefusedLimit, refusedRate: this.stats.connectionsRefusedAddressRate });
  }

  /** A connection that passed its listener's stages; meta tells which listener and who (see ConnectionMeta). */
  acceptConnection(socket: Duplex, addressOf: (socket: Duplex) => string, meta?: ConnectionMeta): Client {
    this.stats.connectionsOpened++;
    const conn = new Connection(socket, addressOf, NULL_HANDLER, this.limits.maxWriteBuffer);
    if (meta !== undefined) conn.meta = meta;
    const client = new Client(this, conn);
    this.clients.add(client);
    // CONNECT (and its authentication) must be done by then.
    this.deadlines.place(client, this.deadlines.now() + this.limits.connectTimeout * 1000);
    return client;
  }

  /**
   * Graceful shutdown: stop accepting, DISCONNECT 0x8B to v5 clients (3.1.1: close), commit what is
   * pending, close the store. Connections that do not close within closeTimeout are destroyed.
   */
  async close(): Promise<void> {
    if (this.closing) {
      while (!this.closed) await new Promise((r) => setTimeout(r, 10));
      return;
    }
    this.closing = true;
    this.logger.info('broker stopping', { event: 'broker.stopping', clients: this.clients.size, sessions: this.sessions.size });
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    if (this.expiryTimer) clearInterval(this.expiryTimer);
    this.memory.stop();
    this.observability?.draining();
    // Stop accepting now; net.Server's close callback waits for every connection, so it is awaited last.
    const listenersClosed = Promise.all(this.listeners.map((l) => l.close()));
    this.listeners = [];
    for (const local of [...this.locals]) local.close();
    const conns: Connection[] = [];
    for (const c of [...this.clients]) {
      conns.push(c.conn);
      if (c.state === ClientState.Connected) c.disconnect(ReasonCode.ServerShuttingDown, 'server shutting down');
      else c.closeNow(ReasonCode.ServerShuttingDown, 'server shutting down');
    }
    for (const s of this.sessions.values()) {
      if (s.willTimer) clearTimeout(s.willTimer);
      if (s.expiryTimer) clearTimeout(s.expiryTimer);
    }
    try {
      await this.committer.flush();
    } catch (err) {
      this.logger.error('final commit failed', { event: 'store.commit_failed', err });
    }
    this.committer.stop();
    const deadline = this.failed ? 0 : Date.now() + this.closeTimeout * 1000;
    while (conns.some((c) => !c.isClosed) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    for (const c of conns) c.destroy();
    await listenersClosed;
    if (this.started) {
      try {
        await this.store.close();
      } catch (err) {
        this.logger.error('store close failed', { event: 'store.close_failed', err });
      }
    }
    // The other nodes adopt what this node held (its lease is dropped).
    await this.cluster?.leave();
    await this.observability?.close();
    this.closed = true;
    this.logger.info('broker closed', { event: 'broker.stopped' });
  }

  // ---- connections and sessions ----

  /**
   * CONNECT accepted: take over a live connection with the same client id [MQTT-3.1.4-3], then resume the
   * session (clean start 0 [MQTT-3.1.2-4]) or start a new one [MQTT-3.1.2-5].
   */
  openSession(client: Client, clientId: string, clean: boolean, version: ProtocolVersion, expiry: number): { session: Session; sessionPresent: boolean } {
    const existing = this.sessions.get(clientId);
    const old = this.live.get(clientId);
    if (old !== undefined && old !== client) {
      // A session that lasts as long as its connection (clean session 1; v5 Session Expiry 0) ends with the
      // connection taken over, so Clean Session 0 cannot resume it [MQTT-3.1.2-6], [MQTT-3.2.2-3].
      this.logger.info('session taken over', {
        event: 'session.taken_over',
        clientId,
        remoteAddress: client.conn.remoteAddress,
        previousRemoteAddress: old.conn.remoteAddress,
      });
      this.releaseClient(old, !clean && old.session !== null && old.session.expiryInterval !== 0);
      old.disconnect(ReasonCode.SessionTakenOver, 'another connection took the session over');
    }
    this.live.set(clientId, client);
    let session: Session;
    let sessionPresent = false;
    if (existing && !existing.ended && !clean) {
      session = existing;
      sessionPresent = true;
      // A new connection before the will delay elapsed: the will is not sent [MQTT-3.1.3-9].
      if (session.willTimer) clearTimeout(session.willTimer);
      if (session.expiryTimer) clearTimeout(session.expiryTimer);
      session.willTimer = session.expiryTimer = null;
      session.pendingWill = null;
    } else {
      if (existing) this.endSession(existing);
      session = new Session(this, clientId, version, expiry);
      this.sessions.set(clientId, session);
    }
    session.protocolVersion = version;
    const wasPersistent = session.persistent;
    session.expiryInterval = expiry;
    if (expiry > 0) {
      if (!session.stored) {
        session.stored = true;
        this.persistSession(session, client);
        if (wasPersistent === false && sessionPresent) session.persistAll();
      } else {
        this.persistSession(session, client);
      }
    } else if (session.stored) {
      this.persistSession(session, client);
    } else if (client.will !== undefined || session.willStored) {
      // A session that ends with its connection is not stored, but its will is: a crash of the broker ends
      // the connection too, and the will must still go out after the restart [MQTT-3.1.2-8].
      session.willStored = true;
      this.persistSession(session, client);
    }
    this.obs.sessionOpened(sessionPresent);
    return { session, sessionPresent };
  }

  /** CONNACK is out and the session attached. */
  clientConnected(client: Client, cleanStart: boolean, sessionPresent: boolean): void {
    client.connectedAt = Date.now();
    this.obs.connected(client, this.stats.connects - this.obs.connectedGone);
    if (this.logger.infoEnabled !== false) this.logConnected(client, cleanStart, sessionPresent);
    const hook = this.hooks.onConnect;
    if (hook) safeCall(this.logger, 'onConnect', () => hook(client.info));
  }

  private logConnected(client: Client, cleanStart: boolean, sessionPresent: boolean): void {
    const meta = client.conn.meta;
    this.logger.info('client connected', {
      event: 'client.connected',
      clientId: client.clientId,
      username: client.username,
      remoteAddress: client.conn.remoteAddress,
      listener: meta.listener,
      transport: meta.transport,
      protocolVersion: client.version,
      keepAlive: client.keepAliveMs / 1500,
      cleanStart,
      sessionPresent,
      sessionExpiry: client.session?.expiryInterval,
    });
  }

  /** A connection that never completed CONNECT went away. */
  forgetClient(client: Client): void {
    if (this.clients.delete(client)) this.obs.socketClosed(client, false);
    this.deadlines.remove(client);
    this.memory.forget(client);
  }

  /** A connected client's connection ended (or is ending). */
  clientGone(client: Client): void {
    if (this.clients.delete(client)) {
      this.obs.socketClosed(client, true);
      // The reason is the bounded label of petrel_disconnects_total{reason} (observability/counters.ts).
      if (this.logger.infoEnabled !== false) this.logger.info('client disconnected', {
        event: 'client.disconnected',
        clientId: client.clientId,
        username: client.username,
        remoteAddress: client.conn.remoteAddress,
        reason: closeReasonLabel(client.closeReason, client.closedByClient, true),
        reasonCode: client.closeReason,
      });
    }
    this.deadlines.remove(client);
    this.memory.forget(client);
    if (client.released) return;
    this.releaseClient(client, false);
    const hook = this.hooks.onDisconnect;
    if (hook) {
      const info = { reasonCode: client.closeReason, byClient: client.closedByClient };
      safeCall(this.logger, 'onDisconnect', () => hook(client.info, info));
    }
  }

  /**
   * Detach a connection from its session and apply the will and expiry rules. With sessionContinues (a
   * takeover with clean start 0) the session stays for the new connection.
   */
  private releaseClient(client: Client, sessionContinues: boolean): void {
    if (client.released) return;
    client.released = true;
    if (this.live.get(client.clientId) === client) this.live.delete(client.clientId);
    const session = client.session;
    if (session === null) return;
    if (session.client === client) session.detach();
    const will = client.normalDisconnect ? undefined : client.will;
    const sessionEnds = !sessionContinues && session.expiryInterval === 0;
    if (will !== undefined) {
      const delay = will.properties?.willDelayInterval ?? 0;
      if (delay === 0 || sessionEnds) {
        this.publishWill(session.id, toStoredWill(will, 0));
      } else if (!sessionContinues) {
        // The will waits for its delay or the end of the session, whichever comes first [MQTT-3.1.3-9].
        session.pendingWill = toStoredWill(will, delay);
        session.willTimer = longTimeout(delay * 1000, () => this.guarded('will timer', () => this.fireWill(session)));
      }
    }
    if (sessionContinues) return;
    if (sessionEnds) {
      this.endSession(session);
      return;
    }
    session.disconnectedAt = Date.now();
    if (session.stored) this.persistSession(session);
    this.scheduleExpiry(session, session.disconnectedAt);
  }

  setSessionExpiry(session: Session, expiry: number): void {
    session.expiryInterval = expiry;
    if (session.stored) this.persistSession(session, session.client ?? undefined);
  }

  private scheduleExpiry(session: Session, now: number): void {
    if (session.expiryInterval === NEVER || session.disconnectedAt === null) return;
    const at = session.disconnectedAt + session.expiryInterval * 1000;
    if (session.expiryTimer) clearTimeout(session.expiryTimer);
    session.expiryTimer = longTimeout(at - now, () => {
      session.expiryTimer = null;
      if (session.client === null && !session.ended) {
        this.guarded('session expiry', () => {
          this.obs.sessionsExpired++;
          this.logger.info('session expired', { event: 'session.expired', clientId: session.id, expiryInterval: session.expiryInterval });
          this.endSession(session);
        });
      }
    });
  }

  private fireWill(session: Session): void {
    session.willTimer = null;
    const will = session.pendingWill;
    if (will === null || session.client !== null) return;
    session.pendingWill = null;
    this.publishWill(session.id, will);
    if (session.stored && !session.ended) this.persistSession(session);
  }

  /** Session ends: its pending will goes out [MQTT-3.1.2-8], its subscriptions and queue are discarded. */
  endSession(session: Session): void {
    if (session.ended) return;
    const will = session.pendingWill;
    session.pendingWill = null;
    for (const sub of session.subscriptions.values()) this.treeRemove(session, sub.topicFilter, sub.group);
    session.subscriptions.clear();
    session.end();
    if (this.sessions.get(session.id) === session) this.sessions.delete(session.id);
    if (session.stored || session.willStored) {
      session.stored = session.willStored = false;
      this.store.deleteSession(session.id);
      this.committer.touch();
    }
    this.cluster?.releaseClientId(session.id);
    if (will !== null) this.publishWill(session.id, will);
  }

  private persistSession(session: Session, client?: Client): void {
    const will = client?.will;
    this.store.putSession({
      clientId: session.id,
      protocolVersion: session.protocolVersion,
      expiryInterval: session.expiryInterval,
      disconnectedAt: client !== undefined ? null : session.disconnectedAt,
      will: client !== undefined ? (will ? toStoredWill(will, will.properties?.willDelayInterval ?? 0) : null) : session.pendingWill,
    });
    this.committer.touch();
  }

  /** Publish a will. It was authorized at CONNECT, with its client's identity (handle-connect.ts). */
  private publishWill(clientId: string, will: StoredWill): void {
    if (this.closed) return;
    try {
      const now = Date.now();
      const expiry = will.properties?.messageExpiryInterval;
      const msg = new Message(
        this.nextMessageId(), will.topic, will.payload, will.qos, will.retain,
        forwardableProperties(will.properties), expiry === undefined ? undefined : now + expiry * 1000, now, clientId,
      );
      msg.own();
      this.stats.willsPublished++;
      if (this.logger.infoEnabled !== false) this.logger.info('will published', { event: 'will.published', clientId, topic: will.topic, qos: will.qos, retain: will.retain });
      this.publishMessage(msg);
      this.notifyPublish(null, msg);
    } catch (err) {
      // Broker-owned work (a connection's end, a timer): logged, never thrown into a socket event or timer.
      this.stats.internalErrors++;
      this.logger.error('publishing a will failed', { event: 'will.failed', clientId, err });
    }
  }

  /** Broker-owned work run from a timer: a throw is logged and counted, never left to end the process. */
  private guarded(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.stats.internalErrors++;
      this.logger.error(`${what} failed`, { event: 'broker.internal_error', err });
    }
  }


  // ---- cluster mode (src/cluster/cluster.ts calls these) ----

  private treeAdd(sub: Subscription): Subscription | undefined {
    const previous = this.tree.add(sub);
    if (previous === undefined) this.cluster?.ref(sub.topicFilter, sub.group, 1);
    return previous;
  }

  private treeRemove(recipient: Recipient, topicFilter: string, group: string | null): Subscription | undefined {
    const removed = this.tree.remove(recipient, topicFilter, group);
    if (removed !== undefined) this.cluster?.ref(topicFilter, group, -1);
    return removed;
  }

  /** A message from another node: to the subscribers here only. */
  routeLocal(msg: Message): number {
    return this.route(msg, true);
  }

  /** A message for one member of a shared group (`$share/{group}/{filter}`) here; false if it has none here. */
  deliverShared(key: string, msg: Message): boolean {
    const shared = parseSharedFilter(key);
    if (shared === null) return false;
    const g = this.tree.sharedGroup(shared.filter, shared.group);
    if (g === undefined) return false;
    let s = g.pick();
    if (s !== null && s.aclIdentity !== null && !this.aclReadable(s.aclIdentity, msg.topic)) s = this.readableMember(g.members, msg.topic);
    if (s === null) return false;
    const mq = msg.qos;
    s.recipient.deliver(msg, mq < s.qos ? mq : s.qos, s.retainAsPublished && msg.retain, s.subIds, g);
    return true;
  }

  /** Another node changed a retained message (already in Redis): the index here follows. */
  clusterRetained(topic: string, msg: Message | null): void {
    this.setRetainedIndex(topic, msg);
  }

  isLive(clientId: string): boolean {
    return this.live.has(clientId);
  }

  /** A session is back in memory from the store (cluster: claimed or adopted). Null if it only had a will. */
  adoptSession(loaded: LoadedSession, adoptedFromDeadNode: boolean): Session | null {
    const rec = loaded.session;
    if (rec.expiryInterval === 0) {
      // Kept only for its will: the session ended with its node.
      this.store.deleteSession(rec.clientId);
      this.committer.touch();
      this.cluster?.releaseClientId(rec.clientId);
      if (rec.will && adoptedFromDeadNode) this.publishWill(rec.clientId, rec.will);
      return null;
    }
    return this.restoreSession(loaded, Date.now());
  }

  /** Forget a session held in memory without touching the store (another node changed it since). */
  forgetSession(session: Session): void {
    const c = this.live.get(session.id);
    if (c !== undefined) {
      this.logger.info('session taken over on another node', { event: 'session.taken_over', clientId: session.id, previousRemoteAddress: c.conn.remoteAddress, byNode: true });
      this.releaseClient(c, true);
      c.disconnect(ReasonCode.SessionTakenOver, 'another connection took the session over');
    }
    this.dropSubscriptions(session);
    if (this.sessions.get(session.id) === session) this.sessions.delete(session.id);
  }

  /** Remove a session's subscriptions from the tree and end it in memory only (the store keeps it). */
  dropSubscriptions(session: Session): void {
    for (const sub of session.subscriptions.values()) this.treeRemove(session, sub.topicFilter, sub.group);
    session.subscriptions.clear();
    session.pendingWill = null;
    session.end();
  }

  /**
   * Another node took this client id over: the connection here gets DISCONNECT 0x8E [MQTT-3.1.4-3]. A stored
   * session that continues there leaves this node's session map and is returned (it forwards for a while);
   * otherwise the session ends here as with a local takeover.
   */
  handOff(clientId: string, clean: boolean): Session | null {
    const session = this.sessions.get(clientId) ?? null;
    const continues = !clean && session !== null && session.expiryInterval !== 0 && session.stored;
    const old = this.live.get(clientId);
    if (old !== undefined) {
      this.logger.info('session taken over on another node', { event: 'session.taken_over', clientId, previousRemoteAddress: old.conn.remoteAddress, byNode: true });
      this.releaseClient(old, continues);
      old.disconnect(ReasonCode.SessionTakenOver, 'another connection took the session over');
    }
    if (session === null || session.ended) return null;
    if (!continues) {
      if (!clean || !session.stored) {
        if (session.willTimer) clearTimeout(session.willTimer);
        this.endSession(session);
      } else {
        // Clean start there: the new node deletes the stored session; here it only leaves memory.
        this.dropSubscriptions(session);
        this.sessions.delete(clientId);
      }
      return null;
    }
    if (session.willTimer) clearTimeout(session.willTimer);
    if (session.expiryTimer) clearTimeout(session.expiryTimer);
    session.willTimer = session.expiryTimer = null;
    session.pendingWill = null;
    this.sessions.delete(clientId);
    return session;
  }

  // ---- administration (the admin API, src/observability/admin/) ----

  /**
   * Refuses a CONNECT whose client id, user name or IP address is banned: the reason, or null. Set by the admin
   * API's ban list; null without one.
   */
  banned: ((clientId: string, username: string | undefined, ip: string) => string | null) | null = null;

  /** The connected client holding a client id, if any. */
  liveClient(clientId: string): Client | undefined {
    const c = this.live.get(clientId);
    return c !== undefined && c.state === ClientState.Connected ? c : undefined;
  }

  /** The open MQTT listeners' addresses. */
  get boundAddresses(): BoundAddress[] {
    return this.listeners.map((l) => l.address);
  }

  /**
   * Disconnect a connected client: v5 DISCONNECT 0x98 Administrative action, then close (3.1.1: close). Counted as
   * disconnect reason `kicked`. Its will is published (not a normal disconnect [MQTT-3.1.2-8]). False if the
   * client id is not connected.
   */
  kick(clientId: string, reason = 'administrative action'): boolean {
    const c = this.liveClient(clientId);
    if (c === undefined) return false;
    this.logger.info('client kicked', { event: 'client.kicked', clientId, reason, remoteAddress: c.conn.remoteAddress });
    // Accepted but its CONNACK still waits for the store: nothing may go out before the CONNACK
    // [MQTT-3.2.0-1], so the socket is only closed (the queued CONNACK is not sent to a closed client).
    if (c.connectedAt === 0) c.closeNow(ReasonCode.AdministrativeAction, reason);
    else c.disconnect(ReasonCode.AdministrativeAction, reason);
    return true;
  }

  /**
   * Discard a session: its connection is kicked first, then the session ends (memory and store) in the same turn,
   * so a CONNECT handled after this gets a new session, never the old one. False if there was none.
   */
  discardSession(clientId: string): boolean {
    const kicked = this.kick(clientId, 'session discarded by an administrator');
    const s = this.sessions.get(clientId);
    if (s !== undefined) this.endSession(s);
    return kicked || s !== undefined;
  }

  /** Remove a retained message without routing anything; false if the topic has none. */
  deleteRetained(topic: string): boolean {
    if (this.retained.get(topic) === undefined) return false;
    this.setRetainedIndex(topic, null);
    if (!topic.startsWith('$SYS/')) {
      this.store.setRetained(topic, null);
      this.committer.touch();
    }
    return true;
  }

  // ---- subscriptions ----

  addSubscription(session: Session, req: SubscriptionRequest, qos: QoS, subId: number | undefined): { sub: Subscription; existed: boolean } {
    const shared = parseSharedFilter(req.filter);
    const sub = new Subscription(
      session, req.filter, shared ? shared.filter : req.filter, shared ? shared.group : null,
      qos, req.noLocal, req.retainAsPublished, req.retainHandling, subId,
    );
    // Same filter again: the subscription is replaced [MQTT-3.8.4-3].
    const existed = this.treeAdd(sub) !== undefined;
    session.subscriptions.set(req.filter, sub);
    if (session.stored) {
      this.store.putSubscription(session.id, subscriptionRecord(sub));
      this.committer.touch();
    }
    return { sub, existed };
  }

  removeSubscription(session: Session, filter: string): boolean {
    const sub = session.subscriptions.get(filter);
    if (sub === undefined) return false;
    this.treeRemove(session, sub.topicFilter, sub.group);
    session.subscriptions.delete(filter);
    if (session.stored) {
      this.store.deleteSubscription(session.id, filter);
      this.committer.touch();
    }
    return true;
  }

  // ---- routing ----

  /** Retain (if asked) and route a message. Returns the number of recipients it went to. */
  publishMessage(msg: Message): number {
    if (msg.retain && this.limits.retainAvailable) {
      // An empty retained message clears the topic and is not stored [MQTT-3.3.1-6/7].
      const value = msg.payload.length === 0 ? null : msg;
      this.setRetainedIndex(msg.topic, value);
      // $SYS values are the running broker's (src/observability/sys.ts): not kept across a restart.
      if (!msg.topic.startsWith('$SYS/')) {
        this.store.setRetained(msg.topic, value);
        this.committer.touch();
      }
    }
    return this.route(msg);
  }

  private setRetainedIndex(topic: string, msg: Message | null): void {
    this.retained.set(topic, msg);
    if (msg !== null && msg.expiresAt !== undefined) this.expiringRetained.set(topic, msg);
    else this.expiringRetained.delete(topic);
  }

  /** One Message per stored message id while any queue holds it (see QueueEnv.sharedMessage). */
  sharedMessage(m: StoredMessage): Message {
    if (m instanceof Message) return m;
    const live = this.liveMessages.get(m.id)?.deref();
    // A QoS 2 entry past PUBREC may come without its payload: never share that one.
    if (live !== undefined && live.payload.length === m.payload.length) return live;
    const msg = Message.fromStored(m);
    if (m.payload.length > 0) {
      this.liveMessages.set(m.id, new WeakRef(msg));
      this.liveMessagesGone.register(msg, m.id);
    }
    return msg;
  }

  /** Expired retained messages and expired entries of offline queues are removed (counted in stats.expired). */
  private expireAll(): void {
    const now = Date.now();
    for (const [topic, msg] of this.expiringRetained) {
      if (!msg.isExpired(now)) continue;
      this.expiringRetained.delete(topic);
      if (this.retained.get(topic) !== msg) continue;
      this.retained.set(topic, null);
      this.store.setRetained(topic, null);
      this.committer.touch();
      this.stats.expired++;
    }
    for (const s of this.sessions.values()) if (s.client === null) s.out.expireNow(now);
  }

  private route(msg: Message, local = false): number {
    const m = this.tree.match(msg.topic);
    const origin = msg.origin;
    const mq = msg.qos;
    let n = 0;
    const single = m.single;
    for (let i = 0; i < single.length; i++) {
      const s = single[i]!;
      // No Local: not back to the publishing connection's client id [MQTT-3.8.3-3].
      if (s.noLocal && origin === s.recipient.id) continue;
      // Granted in part by the ACL file: this topic must be readable (never set without an ACL file).
      if (s.aclIdentity !== null && !this.aclReadable(s.aclIdentity, msg.topic)) continue;
      n++;
      // QoS is the minimum of published and granted [MQTT-3.8.4-8]; RETAIN per Retain As Published [MQTT-3.3.1-12/13].
      s.recipient.deliver(msg, mq < s.qos ? mq : s.qos, s.retainAsPublished && msg.retain, s.subIds, null);
    }
    for (const list of m.multi) {
      // Overlapping subscriptions of one client: one message, the highest QoS, every subscription id
      // [MQTT-3.3.4-2/3/4/5] (see ARCHITECTURE.md).
      let qos = -1;
      let retain = false;
      let ids: number[] | undefined;
      for (const s of list) {
        if (s.noLocal && origin === s.recipient.id) continue;
        if (s.aclIdentity !== null && !this.aclReadable(s.aclIdentity, msg.topic)) continue;
        if (s.qos > qos) qos = s.qos;
        if (s.retainAsPublished) retain = true;
        if (s.subscriptionId !== undefined) (ids ??= []).push(s.subscriptionId);
      }
      if (qos < 0) continue;
      n++;
      list[0]!.recipient.deliver(msg, (mq < qos ? mq : qos) as QoS, retain && msg.retain, ids, null);
    }
    const cluster = this.cluster;
    for (const g of m.shared) {
      // One member of each shared group (§4.8.2), in the whole cluster: here, or on another node with members.
      if (cluster !== null && !local) {
        const key = `$share/${g.name}/${g.topicFilter}`;
        const other = cluster.sharedTarget(key, msg.topic);
        if (other !== null) {
          n++;
          cluster.sendShared(other, key, msg);
          continue;
        }
      }
      let s = g.pick();
      if (s === null) continue;
      if (s.aclIdentity !== null && !this.aclReadable(s.aclIdentity, msg.topic)) s = this.readableMember(g.members, msg.topic);
      if (s === null) continue;
      n++;
      s.recipient.deliver(msg, mq < s.qos ? mq : s.qos, s.retainAsPublished && msg.retain, s.subIds, g);
    }
    if (cluster !== null && !local) n += cluster.forward(msg);
    return n;
  }

  /** The ACL file's rules, or null without one. */
  get acl(): Acl | null {
    return this.auth.acl;
  }

  /** Whether a partially granted subscription may receive a topic now (counted in aclFiltered when not). */
  aclReadable(identity: AclIdentity, topic: string): boolean {
    const acl = this.auth.acl;
    if (acl === null) return true;
    if (identity !== UNKNOWN_IDENTITY && acl.canRead(identity, topic)) return true;
    this.stats.aclFiltered++;
    return false;
  }

  /** A shared group's member whose subscription may read the topic (the one picked may not). */
  private readableMember(members: readonly Subscription[], topic: string): Subscription | null {
    const acl = this.auth.acl;
    for (const m of members) {
      if (!m.recipient.online) continue;
      if (m.aclIdentity === null || (acl !== null && m.aclIdentity !== UNKNOWN_IDENTITY && acl.canRead(m.aclIdentity, topic))) return m;
    }
    return null;
  }

  /**
   * The ACL's answer for the subscriptions it granted to a session, for the identity now using it (a client
   * connected to it, or the ACL was reloaded): refused ones are removed, the others granted in full or in part.
   */
  recheckSubscriptions(session: Session, identity: AclIdentity): void {
    const acl = this.auth.acl;
    if (acl === null) return;
    this.auth.sessionIdentity.set(session, identity);
    for (const sub of [...session.subscriptions.values()]) {
      if (!this.auth.aclGranted.has(sub)) continue;
      if (identity === UNKNOWN_IDENTITY) {
        sub.aclIdentity = UNKNOWN_IDENTITY;
        continue;
      }
      const c = acl.classify(identity, sub.topicFilter);
      if (c === 'none') {
        this.stats.aclSubscriptionsRevoked++;
        this.removeSubscription(session, sub.filter);
      } else {
        sub.aclIdentity = c === 'partial' ? identity : null;
      }
    }
  }

  /**
   * reload() for 'auth': both files re-read (a bad one keeps the old ones; the error names file and line). Then
   * at once: clients authenticated by a password entry that is gone or changed are disconnected (v5 DISCONNECT
   * 0x87), and every session's ACL-granted subscriptions are re-checked.
   */
  private reloadAuth(): void {
    const { aclChanged } = this.auth.reread();
    const passwords = this.auth.passwords;
    for (const c of [...this.clients]) {
      if (c.state !== ClientState.Connected) continue;
      const was = this.auth.byPassword.get(c);
      if (was === undefined || passwords === null) continue;
      const now = c.username === undefined ? undefined : passwords.get(c.username);
      if (now === undefined || now.text !== was) {
        this.stats.authRevoked++;
        this.logger.warn('credentials revoked by reload; disconnecting', { event: 'auth.revoked', clientId: c.clientId, username: c.username });
        c.disconnect(ReasonCode.NotAuthorized, 'credentials revoked');
      }
    }
    if (aclChanged) {
      for (const s of this.sessions.values()) {
        if (s.ended) continue;
        const identity = s.client !== null && s.client.state === ClientState.Connected ? s.client.info : (this.auth.sessionIdentity.get(s) ?? UNKNOWN_IDENTITY);
        this.recheckSubscriptions(s, identity);
      }
    }
  }

  notifyPublish(client: Client | null, msg: Message): void {
    const hook = this.hooks.onPublish;
    if (hook) safeCall(this.logger, 'onPublish', () => hook(client ? client.info : null, msg.toBrokerMessage(Date.now())));
  }

  // ---- in-process API ----

  /** Publish as the broker: routed like a network PUBLISH. Resolves once it is stored (durable store), to the number of recipients. */
  async publish(topic: string, payload: Buffer | Uint8Array | string, options: { qos?: QoS; retain?: boolean; properties?: Properties } = {}): Promise<number> {
    if (this.closing) throw new PetrelError('PETREL_ERR_CLOSED', 'the broker is closed');
    const bad = typeof topic === 'string' ? validateTopicName(topic) ?? this.tooDeep(topic) : 'topic must be a string';
    if (bad !== null) throw new PetrelError('PETREL_ERR_TOPIC', `invalid topic ${quoteShort(topic)}: ${bad}`);
    const qos = options.qos ?? 0;
    if (qos !== 0 && qos !== 1 && qos !== 2) throw new PetrelError('PETREL_ERR_OPTION', `qos: must be 0, 1 or 2, got ${JSON.stringify(qos)}`, { key: 'qos' });
    let buf: Buffer;
    if (typeof payload === 'string') buf = Buffer.from(payload, 'utf8');
    else if (Buffer.isBuffer(payload)) buf = payload;
    else if (payload instanceof Uint8Array) buf = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    else throw new PetrelError('PETREL_ERR_PAYLOAD', 'payload must be a Buffer, Uint8Array or string');
    try {
      // A string or binary property over 65,535 bytes cannot be encoded: refuse it here, not while routing.
      propertiesLength(options.properties);
    } catch (err) {
      throw new PetrelError('PETREL_ERR_OPTION', `properties: ${(err as Error).message}`, { key: 'properties' });
    }
    const now = Date.now();
    const expiry = options.properties?.messageExpiryInterval;
    const msg = new Message(
      this.nextMessageId(), topic, Buffer.from(buf), qos, options.retain === true,
      forwardableProperties(options.properties), expiry === undefined ? undefined : now + expiry * 1000, now, undefined,
    );
    const matched = this.publishMessage(msg);
    this.notifyPublish(null, msg);
    if (this.committer.holding) await new Promise<void>((resolve) => this.committer.after(resolve));
    return matched;
  }

  /** In-process subscription: an async iterable of messages. */
  subscribe(filters: string | readonly string[], options: SubscribeOptions = {}): LocalSubscription {
    if (this.closing) throw new PetrelError('PETREL_ERR_CLOSED', 'the broker is closed');
    const list = typeof filters === 'string' ? [filters] : [...filters];
    if (list.length === 0) throw new PetrelError('PETREL_ERR_TOPIC', 'subscribe needs at least one topic filter');
    for (const f of list) {
      const bad = typeof f === 'string' ? validateTopicFilter(f) ?? this.tooDeep(f) : 'filter must be a string';
      if (bad !== null) throw new PetrelError('PETREL_ERR_TOPIC', `invalid topic filter ${quoteShort(f)}: ${bad}`);
    }
    const qos = options.qos ?? 2;
    if (qos !== 0 && qos !== 1 && qos !== 2) throw new PetrelError('PETREL_ERR_OPTION', `qos: must be 0, 1 or 2, got ${JSON.stringify(qos)}`, { key: 'qos' });
    const hwm = options.highWaterMark ?? 1000;
    if (!Number.isInteger(hwm) || hwm < 1) throw new PetrelError('PETREL_ERR_OPTION', 'highWaterMark: must be an integer >= 1', { key: 'highWaterMark' });
    const hwmBytes = options.highWaterMarkBytes ?? LOCAL_HWM_BYTES;
    if (!Number.isInteger(hwmBytes) || hwmBytes < 1) throw new PetrelError('PETREL_ERR_OPTION', 'highWaterMarkBytes: must be an integer >= 1', { key: 'highWaterMarkBytes' });
    const local = new LocalSubscription(this, `$local/${++this.localId}`, list, qos, hwm, options.signal, hwmBytes);
    this.locals.add(local);
    for (const f of list) {
      const shared = parseSharedFilter(f);
      const sub = new Subscription(local, f, shared ? shared.filter : f, shared ? shared.group : null, qos, false, false, 0, undefined);
      this.treeAdd(sub);
      local.entries.push(sub);
    }
    if (options.signal?.aborted) local.close();
    return local;
  }

  /** A reason if the topic name or filter has more than limits.maxTopicLevels levels (counted), else null. */
  tooDeep(topic: string): string | null {
    const maxLength = this.limits.maxTopicLength;
    // A UTF-16 unit is at most 3 bytes of UTF-8: only long strings need counting.
    if (topic.length * 3 > maxLength && Buffer.byteLength(topic, 'utf8') > maxLength) {
      this.stats.topicLengthRefused++;
      return `longer than ${maxLength} bytes (limits.maxTopicLength)`;
    }
    if (!exceedsTopicLevels(topic, this.limits.maxTopicLevels)) return null;
    this.stats.topicLevelsRefused++;
    return `more than ${this.limits.maxTopicLevels} topic levels (limits.maxTopicLevels)`;
  }

  removeLocal(local: LocalSubscription): void {
    if (!this.locals.delete(local)) return;
    for (const sub of local.entries) this.treeRemove(local, sub.topicFilter, sub.group);
  }

  countLocalDrop(): void {
    this.stats.localDropped++;
  }

  // ---- timers ----

  /**
   * CONNECT accepted: from now on the client is held to its keep alive [MQTT-3.1.2-22] (none for 0
   * [MQTT-3.1.2-23]), counted from its last input, instead of the CONNECT deadline.
   */
  keepAliveStarts(client: Client): void {
    if (client.keepAliveMs === 0) this.deadlines.remove(client);
    else this.deadlines.place(client, this.deadlines.arrivedBy(client.lastSeen) + client.keepAliveMs);
  }

  /** One timer for every deadline, at each tick of their clock. */
  private scheduleSweep(): void {
    if (this.closing) return;
    this.sweepTimer = setTimeout(this.sweep, this.deadlines.msToNextTick());
    this.sweepTimer.unref();
  }

  private readonly sweep = (): void => {
    this.deadlines.advance(this.due);
    this.tick = this.deadlines.tick;
    this.scheduleSweep();
  };

  /** A client's deadline came: its keep alive ran out (1.5x, never before), or it did not CONNECT in time. */
  private readonly due = (c: Client, now: number): void => {
    try {
      if (c.state === ClientState.Connected) {
        if (c.keepAliveMs === 0) return;
        if (c.memoryPaused) {
          // Not read because of memory (its PINGREQ may be waiting in the socket): not its fault.
          this.deadlines.place(c, now + c.keepAliveMs);
          return;
        }
        const deadline = this.deadlines.arrivedBy(c.lastSeen) + c.keepAliveMs;
        if (now < deadline) {
          // Input since it was placed: wait for the deadline that input set.
          this.deadlines.place(c, deadline);
          return;
        }
        this.stats.keepAliveTimeouts++;
        c.disconnect(ReasonCode.KeepAliveTimeout, 'keep alive timeout');
      } else if (c.state !== ClientState.Closed) {
        c.closeNow(ReasonCode.MaximumConnectTime, 'no CONNECT in time');
      }
    } catch (err) {
      this.stats.internalErrors++;
      this.logger.error('closing a timed-out connection failed', { event: 'broker.internal_error', clientId: c.clientId || undefined, err });
    }
  };

  /** Connected clients, for metrics and tests. */
  get connectedCount(): number {
    let n = 0;
    for (const c of this.clients) if (c.state === ClientState.Connected) n++;
    return n;
  }

  get messageSnapshot(): { retained: number; sessions: number; subscriptions: number } {
    return { retained: this.retained.size, sessions: this.sessions.size, subscriptions: this.tree.size };
  }
}

const NULL_HANDLER = { onData(): void {}, onDrain(): void {}, onClose(): void {} };

function toStoredWill(w: WillMessage, delayInterval: number): StoredWill {
  const s: StoredWill = { topic: w.topic, payload: w.payload, qos: w.qos, retain: w.retain, delayInterval };
  if (w.properties !== undefined) s.properties = w.properties;
  return s;
}

/** JSON of a value for an error message, at most about 100 characters of it. */
function quoteShort(v: unknown): string {
  if (typeof v === 'string' && v.length > 100) return `${JSON.stringify(v.slice(0, 100))}... (${v.length} characters)`;
  return JSON.stringify(v);
}

function safeCall(logger: Logger, name: string, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    logger.error(`${name} hook threw`, { event: 'hook.failed', hook: name, err });
  }
}

export type { BrokerMessage, SubscribeOptions };
