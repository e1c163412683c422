// Cluster mode: Petrel nodes that share one Redis and behave as one broker (see ARCHITECTURE.md, "Cluster").
//
//  - Store: RedisStore. Sessions, queues, inbound QoS 2 ids and retained messages live in Redis, so any node can
//    resume any session. Acknowledgements follow the Redis write, as they follow the SQLite commit.
//  - Routes: each node keeps a table of which nodes have subscribers for which filters (from `routes`, kept
//    current by tailing the `log` stream). A node adds (filter, itself) when its count of local subscriptions
//    to that filter goes 0 → 1, in the same batch as the SUBSCRIBE's writes, and removes it at 1 → 0.
//  - Messages: QoS 1/2 go to each node with a matching subscriber through its inbox stream (XADD in the
//    publisher's batch, before PUBACK/PUBREC); the receiving node routes them to its local subscribers and
//    acknowledges the entry (XACK) in the batch that stores the deliveries. QoS 0 goes by pub/sub (at most once).
//  - Ownership: a client id belongs to one node at a time, with an epoch (CLAIM). A CONNECT elsewhere asks the
//    owner to let go (takeover: DISCONNECT 0x8E, commit, release) and waits for its answer or its lease to lapse.
//    Messages that still reach the old owner for a moved session are forwarded to the new owner, which drops
//    ids it has already queued (dedupe), so nothing is lost or doubled across the move.
//  - Liveness: a lease per node, renewed every second. A node that cannot renew fences itself (it stops
//    acknowledging and closes its clients); every batch checks the lease in Redis too. A janitor on each node
//    adopts the sessions of nodes whose lease passed: their wills fire once, their inboxes are drained.

import { randomBytes } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import type { QoS } from '../protocol/packets.js';
import { parseSharedFilter } from '../protocol/topic.js';
import type { LoadedSession, SubscriptionRecord } from '../store/types.js';
import type { Broker } from '../broker/broker.js';
import type { Logger } from '../broker/logger.js';
import { Message } from '../broker/message.js';
import type { Session } from '../broker/session.js';
import { crashStep, type CrashStep } from './crash-points.js';
import { decodeEnvelope, decodeMessage, encodeEnvelope, packFrames, unpackFrames, type Envelope } from './codec.js';
import { FilterTrie } from './filter-trie.js';
import { RedisStore } from './redis-store.js';
import { ADOPT, CLAIM, DEAD, RENEW } from './scripts.js';
import { resolveClusterOptions, type ClusterOptions, type ResolvedClusterOptions } from './options.js';

export type { ClusterOptions, ResolvedClusterOptions };

/** ioredis options for a URL or a socket path. */
export function redisConnection(url: string, extra: RedisOptions = {}): Redis {
  const base: RedisOptions = { lazyConnect: true, maxRetriesPerRequest: null, enableAutoPipelining: false, ...extra };
  if (url.startsWith('/')) return new Redis({ ...base, path: url });
  if (url.startsWith('unix://')) return new Redis({ ...base, path: url.slice('unix://'.length) });
  return new Redis(url, base);
}

interface WithScripts extends Redis {
  petrelClaim(...a: (string | number)[]): Promise<[string, number, number, number]>;
  petrelAdopt(...a: (string | number)[]): Promise<number>;
  petrelRenew(...a: (string | number)[]): Promise<[string, number]>;
  petrelDead(...a: (string | number)[]): Promise<string[]>;
}

function withScripts(r: Redis): WithScripts {
  r.defineCommand('petrelClaim', { numberOfKeys: 0, lua: CLAIM });
  r.defineCommand('petrelAdopt', { numberOfKeys: 0, lua: ADOPT });
  r.defineCommand('petrelRenew', { numberOfKeys: 0, lua: RENEW });
  r.defineCommand('petrelDead', { numberOfKeys: 0, lua: DEAD });
  return r as WithScripts;
}

/** Stream ids compare as (ms, seq). */
export function streamIdAtLeast(a: string, b: string): boolean {
  const [am, as] = a.split('-').map(Number) as [number, number];
  const [bm, bs] = b.split('-').map(Number) as [number, number];
  return am > bm || (am === bm && as >= bs);
}

/** Route key of a subscription: its filter, with the `$share/{group}/` prefix for shared ones. */
function routeKey(topicFilter: string, group: string | null): string {
  return group === null ? topicFilter : `$share/${group}/${topicFilter}`;
}

/** How long a node that gave a session away still forwards what reaches it for that session (ms). */
const FORWARD_GRACE_MS = 10_000;
/** Dedupe window for moved sessions (ms): ids delivered in this window are not queued twice. */
const SEEN_WINDOW_MS = 600_000;

interface Takeover {
  c: string;
  epoch: number;
  from: string;
  clean: boolean;
}

export interface ClusterStats {
  forwardedOut: number;
  inboxEntries: number;
  qos0In: number;
  takeoversAsked: number;
  takeoversGiven: number;
  adoptedSessions: number;
  deadNodes: number;
  duplicatesDropped: number;
  routeChanges: number;
}

export class Cluster {
  readonly options: ResolvedClusterOptions;
  /** nodeId#incarnation: the name in routes, leases and inboxes. */
  readonly member: string;
  readonly store: RedisStore;
  readonly stats: ClusterStats = {
    forwardedOut: 0, inboxEntries: 0, qos0In: 0, takeoversAsked: 0, takeoversGiven: 0, adoptedSessions: 0, deadNodes: 0,
    duplicatesDropped: 0, routeChanges: 0,
  };
  private readonly P: string;
  private readonly cmd: WithScripts;
  private readonly blk: Redis;
  private readonly logc: Redis;
  private readonly sub: Redis;
  private broker: Broker | null = null;
  private logger: Logger | null = null;
  private gen = '';
  private lastRenewOk = 0;
  private stopped = false;
  private fenced = false;
  private renewTimer: NodeJS.Timeout | null = null;
  private janitorTimer: NodeJS.Timeout | null = null;
  /** Other nodes' routes: filter → members; shared: filter → "member\0$share/g/f". */
  private readonly routes = new FilterTrie<string>();
  private readonly sharedRoutes = new FilterTrie<string>();
  /** Local subscriptions per route key. */
  private readonly refs = new Map<string, number>();
  private lastLogId = '0-0';
  private appliedReported = '0-0';
  /** This node's epoch of each client id it owns. */
  private readonly epochs = new Map<string, number>();
  private readonly released = new Map<string, () => void>();
  /** Sessions given away, still forwarding: client id → new owner. */
  private readonly forwarding = new Map<string, { session: Session; to: string; timer: NodeJS.Timeout }>();
  /** Per stored session, message ids recently queued (dedupe across moves). */
  private readonly seen = new Map<string, Set<number>>();
  /** Inbox entries being processed (their XACK not yet committed), by stream id: not processed twice. */
  private readonly processing = new Set<string>();
  private sharedNext = 0;
  private readonly inbox: string;
  private readonly q0: string;
  private readonly ctl: string;
  private loops: Promise<void>[] = [];

  constructor(options: ClusterOptions) {
    this.options = resolveClusterOptions(options);
    this.P = this.options.prefix;
    this.member = `${this.options.nodeId}#${randomBytes(4).toString('hex')}`;
    this.cmd = withScripts(redisConnection(this.options.redis, { connectionName: `petrel-cmd-${this.options.nodeId}` }));
    this.blk = redisConnection(this.options.redis, { connectionName: `petrel-inbox-${this.options.nodeId}` });
    this.logc = redisConnection(this.options.redis, { connectionName: `petrel-log-${this.options.nodeId}` });
    this.sub = redisConnection(this.options.redis, { connectionName: `petrel-sub-${this.options.nodeId}` });
    for (const r of [this.cmd, this.blk, this.logc, this.sub]) r.on('error', (err: Error) => this.logger?.debug('redis connection error', { event: 'cluster.redis_error', err: err.message }));
    this.store = new RedisStore({ redis: this.cmd, prefix: this.P, member: this.member, load: 'none' });
    this.store.beforeSend = () => this.flushInbox();
    this.inbox = this.inboxOf(this.member);
    this.q0 = `${this.P}n:${this.member}:q0`;
    this.ctl = `${this.P}n:${this.member}:ctl`;
  }

  private inboxOf(member: string): string {
    return `${this.P}n:${member}:in`;
  }

  /** Connect and take a lease (before the store is opened: every batch is fenced by it). */
  async connect(): Promise<void> {
    try {
      await Promise.all([this.cmd.connect(), this.blk.connect(), this.logc.connect(), this.sub.connect()]);
    } catch (err) {
      await this.disconnect();
      throw new Error(`cluster: cannot connect to Redis at ${this.options.redis}: ${(err as Error).message}`, { cause: err });
    }
    const [gen] = await this.cmd.petrelRenew(this.P, this.member, this.options.leaseMs, randomBytes(8).toString('hex'), '1');
    this.gen = gen;
    this.lastRenewOk = Date.now();
    await this.cmd.xgroup('CREATE', this.inbox, 'g', '$', 'MKSTREAM');
  }

  /** The broker is started: load routes, start the loops. */
  async attach(broker: Broker): Promise<void> {
    this.broker = broker;
    this.logger = broker.logger;
    await this.loadRoutes();
    await this.sub.subscribe(this.q0, this.ctl);
    this.sub.on('messageBuffer', (ch: Buffer, msg: Buffer) => this.onPubSub(ch.toString(), msg));
    this.renewTimer = setInterval(() => void this.renew(), Math.max(200, Math.floor(this.options.leaseMs / 5)));
    this.janitorTimer = setInterval(() => void this.janitor(), 1000);
    this.loops.push(this.tailLog(), this.consumeInbox());
    this.logger.info('cluster node joined', { event: 'cluster.node_joined', node: this.member, redis: this.options.redis.replace(/\/\/[^@]*@/, '//***@') });
  }

  get isFenced(): boolean {
    return this.fenced;
  }

  // ---- lease ----

  private renewing = false;

  private async renew(): Promise<void> {
    if (this.stopped) return;
    // Not renewed in time: another node may adopt this node's sessions any moment now. Checked on this node's
    // clock at every tick, not after a reply: a Redis that stopped answering (paused, partitioned) gives none.
    if (Date.now() - this.lastRenewOk > this.options.leaseMs - Math.min(1000, this.options.leaseMs / 4)) {
      return this.fence('could not renew the lease with Redis in time');
    }
    if (this.renewing) return;
    this.renewing = true;
    try {
      const sent = Date.now();
      await this.cmd.petrelRenew(this.P, this.member, this.options.leaseMs, this.gen, '0');
      // The lease runs from when Redis set it, which is no earlier than when the renewal was sent.
      this.lastRenewOk = Math.max(this.lastRenewOk, sent);
    } catch (err) {
      const msg = (err as Error).message ?? '';
      if (msg.startsWith('FENCED')) return this.fence(msg);
    } finally {
      this.renewing = false;
    }
  }

  /** Stop acknowledging and close every client: another node may own this node's sessions now. */
  fence(why: string): void {
    if (this.fenced || this.stopped) return;
    this.fenced = true;
    this.logger?.error('cluster node fenced: closing its clients', { event: 'cluster.fenced', node: this.member, reason: why });
    // Nothing waits on Redis any more: commits in flight fail (nothing of them is acknowledged), so the clients'
    // connections close at once rather than after the close timeout.
    this.stopped = true;
    void this.disconnect();
    this.broker?.fatal(new Error(`cluster: fenced (${why})`));
  }

  // ---- routes ----

  private applyRoute(kind: string, key: string, member: string): void {
    if (member === this.member) return;
    const shared = parseSharedFilter(key);
    const trie = shared ? this.sharedRoutes : this.routes;
    const filter = shared ? shared.filter : key;
    const value = shared ? `${member}\u0000${key}` : member;
    if (kind === 'radd') trie.add(filter, value);
    else trie.delete(filter, value);
    this.stats.routeChanges++;
  }

  private async loadRoutes(): Promise<void> {
    const last = await this.logc.xrevrange(`${this.P}log`, '+', '-', 'COUNT', 1);
    this.lastLogId = last.length > 0 ? last[0]![0] : '0-0';
    this.routes.clear();
    this.sharedRoutes.clear();
    const all = await this.logc.hkeys(`${this.P}routes`);
    for (const field of all) {
      const i = field.lastIndexOf('\u0000');
      if (i > 0) this.applyRoute('radd', field.slice(0, i), field.slice(i + 1));
    }
  }

  private async tailLog(): Promise<void> {
    while (!this.stopped) {
      try {
        const r = (await this.logc.xread('COUNT', 1000, 'BLOCK', 1000, 'STREAMS', `${this.P}log`, this.lastLogId)) as
          | [string, [string, string[]][]][]
          | null;
        if (r === null || this.stopped) continue;
        const entries = r[0]![1];
        if (entries.length > 0 && !(await this.continuous(entries[0]![0]))) {
          // The log was trimmed past what this node saw: start over from the table.
          await this.loadRoutes();
          continue;
        }
        for (const [id, fields] of entries) {
          this.lastLogId = id;
          const f: Record<string, string> = {};
          for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
          if (f.k === 'radd' || f.k === 'rdel') this.applyRoute(f.k, f.f!, f.m!);
          else if (f.k === 'ret' && f.m !== this.member) await this.retainedChanged(f.f!);
        }
        this.reportApplied();
      } catch (err) {
        if (this.stopped) return;
        this.logger?.debug('route log read failed; retrying', { event: 'cluster.log_retry', err: (err as Error).message });
        await sleep(200);
      }
    }
  }

  /** False if entries between the last id seen and `first` were trimmed away. */
  private async continuous(first: string): Promise<boolean> {
    if (this.lastLogId === '0-0') return true;
    const info = (await this.logc.xinfo('STREAM', `${this.P}log`)) as unknown[];
    const i = info.indexOf('first-entry');
    const fe = i >= 0 ? (info[i + 1] as [string, string[]] | null) : null;
    return fe === null || streamIdAtLeast(this.lastLogId, fe[0]) || fe[0] === first;
  }

  /** Tell the others which log entries this node applied, in its next batch (after what it sent before). */
  private reportApplied(): void {
    if (this.lastLogId === this.appliedReported || this.broker === null || this.fenced) return;
    this.appliedReported = this.lastLogId;
    this.store.op('app', this.lastLogId);
    this.broker.committer.touch();
  }

  private async retainedChanged(topic: string): Promise<void> {
    const b = await this.cmd.hgetBuffer(`${this.P}ret`, topic);
    this.broker?.clusterRetained(topic, b === null ? null : Message.fromStored(decodeMessage(b)));
  }

  /** A local subscription to this route key was added (+1) or removed (-1). */
  ref(topicFilter: string, group: string | null, delta: 1 | -1): void {
    const key = routeKey(topicFilter, group);
    const n = (this.refs.get(key) ?? 0) + delta;
    if (n > 0) this.refs.set(key, n);
    else this.refs.delete(key);
    if (this.broker === null) return;
    if (delta === 1 && n === 1) this.store.op('radd', key);
    else if (delta === -1 && n === 0) this.store.op('rdel', key, this.member);
    else return;
    this.broker.committer.touch();
  }

  // ---- messages out ----

  /**
   * Send a message to the other nodes with a matching subscriber (the local ones are the broker's). QoS 1/2:
   * into their inboxes, in the current batch (so PUBACK/PUBREC follow the write). Returns how many nodes.
   */
  forward(msg: Message): number {
    // $SYS is each node's own tree (its counters): not sent to the others.
    if (this.fenced || msg.topic.startsWith('$SYS/')) return 0;
    const targets = this.routes.match(msg.topic);
    let n = 0;
    if (targets.size > 0) {
      const env: Envelope = { message: msg };
      if (msg.origin !== undefined) env.origin = msg.origin;
      const data = encodeEnvelope(env);
      for (const m of targets) {
        n++;
        this.send(m, msg.qos, data);
      }
    }
    if (this.sharedRoutes.size > 0) {
      const groups = new Map<string, string[]>();
      for (const v of this.sharedRoutes.match(msg.topic)) {
        const i = v.indexOf('\u0000');
        const key = v.slice(i + 1);
        const list = groups.get(key);
        if (list) list.push(v.slice(0, i));
        else groups.set(key, [v.slice(0, i)]);
      }
      for (const [key, members] of groups) {
        // A group with members here too is the broker's to pick for (sharedTarget); else one of the others.
        if (this.refs.has(key)) continue;
        n++;
        this.sendShared(members[this.sharedNext++ % members.length]!, key, msg);
      }
    }
    return n;
  }

  /**
   * A shared group with local members: which node takes this message. null = this one. Round-robin over this
   * node and the other nodes with members, so that each message goes to one member of the whole cluster.
   */
  sharedTarget(key: string, topic: string): string | null {
    if (this.sharedRoutes.size === 0) return null;
    const members: string[] = [];
    for (const v of this.sharedRoutes.match(topic)) {
      const i = v.indexOf('\u0000');
      if (v.slice(i + 1) === key) members.push(v.slice(0, i));
    }
    if (members.length === 0) return null;
    const k = this.sharedNext++ % (members.length + 1);
    return k === members.length ? null : members[k]!;
  }

  sendShared(member: string, key: string, msg: Message): void {
    const env: Envelope = { message: msg, group: key };
    if (msg.origin !== undefined) env.origin = msg.origin;
    this.send(member, msg.qos, encodeEnvelope(env));
  }

  /**
   * Messages for other nodes wait here for the end of the turn: QoS 0 goes as one pub/sub message per node and
   * turn, QoS 1/2 as one inbox entry per node in the store batch the acknowledgements wait for.
   */
  private readonly outQ0 = new Map<string, Buffer[]>();
  private readonly outInbox = new Map<string, Buffer[]>();
  private q0Scheduled = false;

  private send(member: string, qos: QoS, data: Buffer): void {
    this.stats.forwardedOut++;
    const out = qos === 0 ? this.outQ0 : this.outInbox;
    const list = out.get(member);
    if (list !== undefined) list.push(data);
    else out.set(member, [data]);
    if (qos === 0) {
      if (!this.q0Scheduled) {
        this.q0Scheduled = true;
        setImmediate(() => this.flushQ0());
      }
      return;
    }
    this.broker!.committer.touch();
  }

  private flushQ0(): void {
    this.q0Scheduled = false;
    for (const [member, frames] of this.outQ0) void this.cmd.publish(`${this.P}n:${member}:q0`, packFrames(frames)).catch(() => {});
    this.outQ0.clear();
  }

  /** The store is sending a batch: this turn's inbox writes join it, one entry per target node. */
  private flushInbox(): void {
    if (this.outInbox.size === 0) return;
    for (const [member, frames] of this.outInbox) this.store.op('fwd', this.inboxOf(member), packFrames(frames));
    this.outInbox.clear();
  }

  // ---- messages in ----

  private async consumeInbox(): Promise<void> {
    let cursor = '0';
    // After a reconnect, a read whose reply was lost left its entries pending for this consumer: read them again.
    let reread = false;
    this.blk.on('ready', () => {
      reread = true;
    });
    while (!this.stopped) {
      if (reread) {
        reread = false;
        cursor = '0';
      }
      try {
        const r = (await this.blk.xreadgroupBuffer('GROUP', 'g', this.member, 'COUNT', '500', 'BLOCK', '1000', 'STREAMS', this.inbox, cursor)) as unknown as
          | [Buffer, [Buffer, Buffer[] | null][]][]
          | null;
        if (this.stopped) return;
        if (r === null) continue;
        const entries = r[0]![1].map(([id, f]) => [id.toString(), f] as [string, unknown]);
        // Own pending entries first (read, not acknowledged: after a reconnect), then new ones.
        if (cursor === '0' && entries.length === 0) {
          cursor = '>';
          continue;
        }
        if (cursor === '0') cursor = entries[entries.length - 1]![0];
        const step = crashStep('deliver');
        step.tick();
        void this.processEntries(this.inbox, entries, null, step);
        if (cursor !== '>' && entries.length < 500) cursor = '>';
      } catch (err) {
        if (this.stopped) return;
        const m = (err as Error).message ?? '';
        if (m.includes('NOGROUP')) await this.cmd.xgroup('CREATE', this.inbox, 'g', '0', 'MKSTREAM').catch(() => {});
        cursor = '0';
        this.logger?.debug('inbox read failed; retrying', { event: 'cluster.inbox_retry', err: m });
        await sleep(200);
      }
    }
  }

  /**
   * Route inbox entries here; their XACKs go in the batch that stores the deliveries. An entry whose target
   * session had to be looked up in Redis is acknowledged after the lookup put its forward in the batch; the
   * returned promise settles when every such entry is (it never rejects: a failed lookup leaves its entry pending).
   */
  private processEntries(stream: string, entries: [string, unknown][], only: Map<string, SubscriptionRecord[]> | null, step?: CrashStep): Promise<void> {
    const broker = this.broker!;
    const later: Promise<void>[] = [];
    const ack = (pkey: string, id: string): void => {
      this.store.op('ack', stream, id);
      // touch() first: after() runs at once when nothing is pending.
      broker.committer.touch();
      broker.committer.after(() => this.processing.delete(pkey));
    };
    for (const [id, raw] of entries) {
      const pkey = `${stream} ${id}`;
      if (this.processing.has(pkey)) continue;
      this.processing.add(pkey);
      const fields = raw as (Buffer | string)[] | null;
      this.lookups = [];
      if (fields !== null && fields.length >= 2) {
        this.stats.inboxEntries++;
        this.deliverFrames(fields[1] as Buffer, only);
      }
      const lookups = this.lookups;
      this.lookups = null;
      if (lookups.length === 0) ack(pkey, id);
      else
        later.push(
          Promise.all(lookups).then(
            () => ack(pkey, id),
            () => {
              this.processing.delete(pkey);
            },
          ),
        );
    }
    if (step !== undefined) broker.committer.after(() => step.tick());
    return Promise.all(later).then(() => {});
  }

  private onPubSub(channel: string, data: Buffer): void {
    if (this.broker === null || this.stopped) return;
    try {
      if (channel === this.q0) {
        this.stats.qos0In++;
        this.deliverFrames(data, null);
      } else if (channel === this.ctl) {
        const m = JSON.parse(data.toString()) as { t: string } & Takeover;
        if (m.t === 'takeover') this.onTakeover(m);
        else if (m.t === 'released') this.released.get(`${m.c} ${m.epoch}`)?.();
      }
    } catch (err) {
      this.broker.stats.internalErrors++;
      this.logger?.error('cluster message could not be handled', { event: 'cluster.pubsub_error', err });
    }
  }

  /** Deliver each message of an inbox entry or pub/sub message; one that cannot be decoded does not stop the rest. */
  private deliverFrames(data: Buffer, only: Map<string, SubscriptionRecord[]> | null): void {
    let frames: Buffer[];
    try {
      frames = unpackFrames(data);
    } catch (err) {
      this.broker!.stats.internalErrors++;
      this.logger?.error('cluster entry could not be decoded', { event: 'cluster.inbox_error', err });
      return;
    }
    for (const f of frames) {
      try {
        this.deliverEnvelope(decodeEnvelope(f), only);
      } catch (err) {
        this.broker!.stats.internalErrors++;
        this.logger?.error('cluster message could not be delivered', { event: 'cluster.inbox_error', err });
      }
    }
  }

  private deliverEnvelope(env: Envelope, only: Map<string, SubscriptionRecord[]> | null): void {
    const broker = this.broker!;
    // A message comes once per envelope (one per node): no sharing by id needed (nor its weak-ref cost).
    const msg = Message.fromStored(env.message);
    if (env.origin !== undefined && msg.origin === undefined) msg.origin = env.origin;
    if (msg.isExpired(Date.now())) {
      broker.stats.expired++;
      return;
    }
    if (env.to !== undefined) {
      this.deliverTo(env.to.clientId, msg, env.to.qos, env.to.retain, env.to.subscriptionIds);
      return;
    }
    if (env.group !== undefined) {
      if (!broker.deliverShared(env.group, msg)) {
        // No member here any more: another node with members, if any.
        const shared = parseSharedFilter(env.group);
        const other = shared ? this.sharedTarget(env.group, msg.topic) : null;
        if (other !== null) this.sendShared(other, env.group, msg);
      }
      return;
    }
    if (only !== null) {
      this.deliverToSessions(only, msg);
      return;
    }
    broker.routeLocal(msg);
  }

  /** A dead node's inbox: its entries go to the sessions it had (wherever they are now), not to all. */
  private deliverToSessions(sessions: Map<string, SubscriptionRecord[]>, msg: Message): void {
    for (const [clientId, subs] of sessions) {
      let qos = -1;
      let retain = false;
      let ids: number[] | undefined;
      for (const s of subs) {
        if (parseSharedFilter(s.filter)) continue;
        if (s.noLocal && msg.origin === clientId) continue;
        const t = new FilterTrie<number>();
        t.add(s.filter, 1);
        if (t.match(msg.topic).size === 0) continue;
        if (s.qos > qos) qos = s.qos;
        if (s.retainAsPublished) retain = true;
        if (s.subscriptionId !== undefined) (ids ??= []).push(s.subscriptionId);
      }
      if (qos < 0) continue;
      this.deliverTo(clientId, msg, Math.min(qos, msg.qos) as QoS, retain && msg.retain, ids);
    }
  }

  /** Deliver to one session: here if it is here, else forwarded to its owner. */
  deliverTo(clientId: string, msg: Message, qos: QoS, retain: boolean, subIds: number[] | undefined): void {
    const broker = this.broker!;
    const fw = this.forwarding.get(clientId);
    if (fw !== undefined) {
      this.forwardTo(fw.to, clientId, msg, qos, retain, subIds);
      return;
    }
    const s = broker.sessions.get(clientId);
    if (s !== undefined) {
      s.deliver(msg, qos, retain, subIds, null);
      return;
    }
    if (this.waitForClaim(clientId, () => this.deliverTo(clientId, msg, qos, retain, subIds))) return;
    // Not here: ask Redis who owns it now (rare: moves and node deaths). An inbox entry being processed is
    // acknowledged only once the forward is in the store batch (processEntries waits for this).
    const asked = this.cmd.hget(`${this.P}o:${clientId}`, 'owner').then(
      (owner) => {
        if (owner !== null && owner !== this.member) this.forwardTo(owner, clientId, msg, qos, retain, subIds);
        else if (owner === this.member && broker.sessions.has(clientId)) this.deliverTo(clientId, msg, qos, retain, subIds);
        else if (owner === this.member && this.waitForClaim(clientId, () => this.deliverTo(clientId, msg, qos, retain, subIds))) return;
        else broker.stats.internalErrors++;
      },
      () => {
        // Redis unreachable: the entry stays unacknowledged (read again, or adopted with this node).
        throw new Error('owner lookup failed');
      },
    );
    if (this.lookups !== null) this.lookups.push(asked);
    else void asked.catch(() => {});
  }

  /** Owner lookups started while processing inbox entries (null outside processEntries). */
  private lookups: Promise<void>[] | null = null;

  /** Deliveries for a client id this node is claiming (its session not loaded yet) wait for the claim. */
  private readonly afterClaim = new Map<string, (() => void)[]>();

  private waitForClaim(clientId: string, fn: () => void): boolean {
    if (!this.claiming.has(clientId)) return false;
    const list = this.afterClaim.get(clientId);
    if (list) list.push(fn);
    else this.afterClaim.set(clientId, [fn]);
    return true;
  }

  forwardTo(member: string, clientId: string, msg: Message, qos: QoS, retain: boolean, subIds: readonly number[] | undefined): void {
    const env: Envelope = { message: msg, to: { clientId, qos, retain } };
    if (subIds !== undefined) env.to!.subscriptionIds = [...subIds];
    if (msg.origin !== undefined) env.origin = msg.origin;
    this.send(member, qos, encodeEnvelope(env));
  }

  /**
   * Dedupe for stored sessions: true if this message id was already queued for the session (it reached it by
   * two paths while the session moved between nodes). Called by Session.deliver in cluster mode.
   */
  alreadyQueued(session: Session, id: number): boolean {
    if (!session.stored) return false;
    let s = this.seen.get(session.id);
    if (s === undefined) this.seen.set(session.id, (s = new Set()));
    if (s.has(id)) {
      this.stats.duplicatesDropped++;
      return true;
    }
    s.add(id);
    if (s.size > 10_000) {
      // Oldest first (insertion order).
      const it = s.values();
      for (let i = 0; i < 1000; i++) s.delete(it.next().value as number);
    }
    return false;
  }

  /** A session handed to another node forwards what reaches it. */
  forwardingFor(session: Session): string | null {
    const fw = this.forwarding.get(session.id);
    return fw !== undefined && fw.session === session ? fw.to : null;
  }

  // ---- ownership ----

  /**
   * CONNECT for this client id on this node: claim it (epoch + 1). If another live node had it, ask it to let go
   * and wait for its answer (or for its lease to lapse). Then make sure the session is here: loaded from Redis
   * unless it is already in memory. Resolves when the broker may open the session as usual.
   */
  async claim(clientId: string, clean: boolean): Promise<void> {
    this.claiming.add(clientId);
    try {
      await this.claimNow(clientId, clean);
    } finally {
      this.claiming.delete(clientId);
      // What reached this node for the session while it was being claimed (a dead node's inbox, forwards).
      const waiting = this.afterClaim.get(clientId);
      this.afterClaim.delete(clientId);
      if (waiting !== undefined) for (const fn of waiting) fn();
    }
  }

  private readonly claiming = new Set<string>();

  private async claimNow(clientId: string, clean: boolean): Promise<void> {
    const broker = this.broker!;
    const step = crashStep('claim');
    const [prev, epoch, alive, exists] = await this.cmd.petrelClaim(this.P, this.member, clientId);
    step.tick();
    // A later claim's takeover request can arrive (by pub/sub) before this claim's reply: it has already set a
    // higher epoch here, and this CONNECT lost.
    if ((this.epochs.get(clientId) ?? 0) > Number(epoch)) throw new Error('a later CONNECT for this client id took over');
    this.epochs.set(clientId, Number(epoch));
    if (prev !== '' && prev !== this.member) {
      this.stats.takeoversAsked++;
      if (Number(alive) === 1) await this.askRelease(prev, clientId, Number(epoch), clean, step);
      // Its session is no longer in this node's memory, if it was (the other node changed it since).
      this.dropForwarding(clientId);
      const local = broker.sessions.get(clientId);
      if (local !== undefined) broker.forgetSession(local);
    }
    if (this.epochs.get(clientId) !== Number(epoch)) throw new Error('a later CONNECT for this client id took over');
    if (broker.sessions.has(clientId) || Number(exists) === 0) return;
    if (clean) {
      // Clean start: the stored session ends here; its will goes out [MQTT-3.1.2-8] (it did not resume).
      const loaded = await this.store.loadSession(clientId);
      step.tick();
      if (this.epochs.get(clientId) !== Number(epoch)) throw new Error('a later CONNECT for this client id took over');
      if (loaded !== null && !broker.sessions.has(clientId)) {
        const s = broker.adoptSession(loaded, false);
        if (s !== null) broker.endSession(s);
      }
      return;
    }
    const loaded = await this.store.loadSession(clientId);
    step.tick();
    const seen = await this.store.seenIds(clientId, Date.now() - SEEN_WINDOW_MS);
    step.tick();
    if (this.epochs.get(clientId) !== Number(epoch)) throw new Error('a later CONNECT for this client id took over');
    if (loaded === null || broker.sessions.has(clientId)) return;
    this.seen.set(clientId, new Set(seen.map(Number)));
    broker.adoptSession(loaded, false);
  }

  private async askRelease(prev: string, clientId: string, epoch: number, clean: boolean, step: CrashStep): Promise<void> {
    const deadline = Date.now() + this.options.leaseMs + 1000;
    const key = `${clientId} ${epoch}`;
    try {
      while (Date.now() < deadline && !this.stopped) {
        const done = new Promise<boolean>((resolve) => {
          const t = setTimeout(() => resolve(false), 1000);
          this.released.set(key, () => {
            clearTimeout(t);
            resolve(true);
          });
        });
        await this.cmd.publish(`${this.P}n:${prev}:ctl`, JSON.stringify({ t: 'takeover', c: clientId, epoch, from: this.member, clean }));
        step.tick();
        if (await done) return;
        // No answer: is it still alive?
        const lease = await this.cmd.zscore(`${this.P}nodes`, prev);
        step.tick();
        const [, now] = await this.cmd.petrelRenew(this.P, this.member, this.options.leaseMs, this.gen, '0');
        step.tick();
        if (lease === null || Number(lease) < Number(now)) return;
      }
      throw new Error(`node ${prev} did not release ${clientId}`);
    } finally {
      this.released.delete(key);
    }
  }

  /** Another node took a client id this node had: close its connection, commit, hand the session over. */
  private onTakeover(m: Takeover): void {
    const broker = this.broker!;
    const mine = this.epochs.get(m.c) ?? 0;
    if (m.epoch <= mine) return;
    this.epochs.set(m.c, m.epoch);
    this.stats.takeoversGiven++;
    const session = broker.handOff(m.c, m.clean);
    if (session !== null && session.stored && !m.clean) {
      // What still reaches this node for it goes on to the new owner for a while (routes converge meanwhile).
      const timer = setTimeout(() => this.dropForwarding(m.c), FORWARD_GRACE_MS);
      timer.unref();
      this.forwarding.set(m.c, { session, to: m.from, timer });
    }
    this.seen.delete(m.c);
    // No longer this node's: out of its set of client ids (the owner record is the new node's, left alone).
    this.store.op('own', m.c, 0);
    broker.committer.touch();
    // Once what this node wrote for the session is committed.
    const reply = (): void => {
      void this.cmd.publish(`${this.P}n:${m.from}:ctl`, JSON.stringify({ t: 'released', c: m.c, epoch: m.epoch })).catch(() => {});
    };
    if (broker.committer.holding) broker.committer.after(reply);
    else reply();
  }

  private dropForwarding(clientId: string): void {
    const fw = this.forwarding.get(clientId);
    if (fw === undefined) return;
    this.forwarding.delete(clientId);
    clearTimeout(fw.timer);
    this.broker?.dropSubscriptions(fw.session);
  }

  /** A session that ended with its connection (or expired) here: the client id is free. */
  releaseClientId(clientId: string): void {
    if (this.claiming.has(clientId) || this.broker?.isLive(clientId) === true) return;
    const e = this.epochs.get(clientId);
    if (e === undefined) return;
    this.epochs.delete(clientId);
    this.seen.delete(clientId);
    this.store.op('own', clientId, e);
    this.broker?.committer.touch();
  }

  // ---- dead nodes ----

  private janitorBusy = false;

  private async janitor(): Promise<void> {
    if (this.janitorBusy || this.stopped || this.fenced) return;
    this.janitorBusy = true;
    try {
      const dead = await this.cmd.petrelDead(this.P);
      for (const d of dead) {
        if (d === this.member) continue;
        // The lock outlives a dead adopter by a few leases only: it is renewed while the adoption runs.
        const lock = `${this.P}lock:${d}`;
        const lockMs = 3 * this.options.leaseMs;
        const ok = await this.cmd.set(lock, this.member, 'PX', lockMs, 'NX');
        if (ok !== 'OK') continue;
        const keep = setInterval(() => void this.cmd.pexpire(lock, lockMs).catch(() => {}), Math.max(100, Math.floor(this.options.leaseMs / 2)));
        try {
          const step = crashStep('adopt');
          step.tick();
          await this.adopt(d, step);
        } finally {
          clearInterval(keep);
        }
      }
    } catch (err) {
      if (!this.stopped) this.logger?.warn('janitor pass failed', { event: 'cluster.janitor_error', err: (err as Error).message });
    } finally {
      this.janitorBusy = false;
    }
  }

  /** Take over a dead node: its sessions, its routes, its inbox. */
  private async adopt(dead: string, step: CrashStep): Promise<void> {
    const broker = this.broker!;
    const t0 = Date.now();
    this.stats.deadNodes++;
    // The dead node's set lists every client id it ever owned (kept until its adoption completes): an adopter
    // that died half-way has moved some of them; the entries of the inbox still reach those where they are.
    const ids = await this.cmd.smembers(`${this.P}n:${dead}:sess`);
    step.tick();
    const theirs = new Map<string, SubscriptionRecord[]>();
    let adopted = 0;
    for (const c of ids) {
      const loaded = await this.store.loadSession(c);
      step.tick();
      if (loaded !== null) theirs.set(c, loaded.subscriptions);
      const epoch = await this.cmd.petrelAdopt(this.P, this.member, dead, c);
      step.tick();
      if (Number(epoch) === 0) continue;
      if (loaded === null) {
        // A connection without a stored session (nor a will): nothing to adopt, the client id is free.
        this.store.op('own', c, Number(epoch));
        broker.committer.touch();
        continue;
      }
      if (broker.sessions.has(c)) continue;
      this.epochs.set(c, Number(epoch));
      const seen = await this.store.seenIds(c, Date.now() - SEEN_WINDOW_MS);
      step.tick();
      this.seen.set(c, new Set(seen.map(Number)));
      // Its client was connected when the node died: disconnected as of now (its will waits for its delay).
      broker.adoptSession(loaded, true);
      adopted++;
    }
    this.stats.adoptedSessions += adopted;
    // Make before break: this node's routes for the adopted sessions are in before the dead node's go.
    await broker.committer.flush();
    step.tick();
    const inbox = this.inboxOf(dead);
    await this.drain(inbox, theirs, step);
    const fields = await this.cmd.hkeys(`${this.P}routes`);
    step.tick();
    for (const f of fields) {
      const i = f.lastIndexOf('\u0000');
      if (i > 0 && f.slice(i + 1) === dead) this.store.op('rdel', f.slice(0, i), dead);
    }
    broker.committer.touch();
    const v = await this.store.commitWithReply();
    step.tick();
    // Every live node applied the removal (its later batches cannot target the dead inbox), then a last drain.
    if (typeof v === 'string') await this.waitApplied(v);
    step.tick();
    await this.drain(inbox, theirs, step);
    await broker.committer.flush();
    step.tick();
    await this.cmd.del(inbox, `${this.P}n:${dead}:sess`, `${this.P}n:${dead}:ctl`);
    step.tick();
    await this.cmd.hdel(`${this.P}applied`, dead);
    await this.cmd.hdel(`${this.P}batch`, dead);
    step.tick();
    // Last: an adopter that dies half-way leaves the node listed as dead, and its lock expires for another.
    await this.cmd.zrem(`${this.P}nodes`, dead);
    step.tick();
    await this.cmd.del(`${this.P}lock:${dead}`);
    this.logger?.warn('adopted a dead node', { event: 'cluster.node_adopted', dead, sessions: adopted, ms: Date.now() - t0 });
  }

  private async drain(inbox: string, sessions: Map<string, SubscriptionRecord[]>, step: CrashStep): Promise<void> {
    const exists = await this.cmd.exists(inbox);
    step.tick();
    if (exists === 0) return;
    // What the dead node had read and not acknowledged, then what it never read.
    let start = '0-0';
    for (let rounds = 0; rounds < 10_000; rounds++) {
      const r = (await this.cmd.callBuffer('XAUTOCLAIM', inbox, 'g', this.member, '0', start, 'COUNT', '500')) as unknown as [Buffer, [Buffer, Buffer[]][]];
      step.tick();
      const entries = r[1].filter((e) => e !== null).map(([id, f]) => [id.toString(), f] as [string, unknown]);
      if (entries.length > 0) await this.processEntries(inbox, entries, sessions);
      await this.broker!.committer.flush();
      step.tick();
      start = r[0].toString();
      if (start === '0-0') break;
    }
    for (let rounds = 0; rounds < 10_000; rounds++) {
      const r = (await this.cmd.xreadgroupBuffer('GROUP', 'g', this.member, 'COUNT', '500', 'STREAMS', inbox, '>')) as unknown as
        | [Buffer, [Buffer, Buffer[]][]][]
        | null;
      step.tick();
      if (r === null || r[0]![1].length === 0) break;
      await this.processEntries(inbox, r[0]![1].map(([id, f]) => [id.toString(), f] as [string, unknown]), sessions);
      await this.broker!.committer.flush();
      step.tick();
    }
  }

  private async waitApplied(v: string): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && !this.stopped) {
      const [sec, usec] = await this.cmd.time();
      const live = await this.cmd.zrangebyscore(`${this.P}nodes`, Number(sec) * 1000 + Math.floor(Number(usec) / 1000), '+inf');
      const applied = await this.cmd.hgetall(`${this.P}applied`);
      if (live.every((m) => m === this.member || (applied[m] !== undefined && streamIdAtLeast(applied[m]!, v)))) return;
      await sleep(50);
    }
  }

  // ---- shutdown ----

  /** Leave the cluster: the others adopt this node's sessions at once (its lease is dropped). */
  async leave(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.renewTimer) clearInterval(this.renewTimer);
    if (this.janitorTimer) clearInterval(this.janitorTimer);
    for (const fw of this.forwarding.values()) clearTimeout(fw.timer);
    if (!this.fenced) await this.cmd.zadd(`${this.P}nodes`, 0, this.member).catch(() => {});
    await this.disconnect();
    await Promise.allSettled(this.loops);
    this.logger?.info('cluster node left', { event: 'cluster.node_left', node: this.member });
  }

  private async disconnect(): Promise<void> {
    for (const r of [this.blk, this.logc, this.sub, this.cmd]) r.disconnect();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

