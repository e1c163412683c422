// The Store (store/types.ts) on Redis, for cluster mode: every node reads and writes sessions, queues and
// retained messages in one Redis, so a session can be resumed on any node.
//
// A batch of writes is one Lua script call (scripts.ts, COMMIT): atomic, and durable before its reply with
// `appendfsync always`. Batches are numbered per node; a retry of an applied batch (its reply was lost with the
// connection) is recognised and not applied twice. Every batch is fenced: it fails once this node's lease is gone.
// Reads go down the same connection as the writes, after them, so they see every write made before them
// (a read first sends what is pending: Redis runs commands of one connection in order).
//
// open() loads the retained messages and, in 'all' mode (a plain store, for the contract suite), every session;
// in cluster mode no session is loaded: a node loads a session when it claims or adopts it (loadSession).

import type { Redis } from 'ioredis';
import type { ProtocolVersion } from '../protocol/packets.js';
import { decodeProperties, encodeProperties } from '../store/serialize.js';
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
} from '../store/types.js';
import { decodeEntry, decodeMessage, encodeEntry, encodeMessage, entryBytes } from './codec.js';
import { crashPointsArmed, crashStep } from './crash-points.js';
import { COMMIT, READ_QUEUE } from './scripts.js';

/** Message ids: each node incarnation takes a block of 2^36 from a counter in Redis. */
const ID_BLOCK = 2 ** 36;

type Arg = string | Buffer | number;

export interface RedisStoreOptions {
  redis: Redis;
  prefix: string;
  /** Node member for fencing and batch numbering; '' for a plain store (no fencing). */
  member: string;
  /** 'all': open() loads every session (a plain store); 'none': sessions are loaded one by one (cluster mode). */
  load: 'all' | 'none';
}

interface RedisWithScripts extends Redis {
  petrelCommit(...args: Arg[]): Promise<unknown>;
  petrelReadQueueBuffer(...args: Arg[]): Promise<(Buffer | number)[]>;
}

function define(redis: Redis): RedisWithScripts {
  const r = redis as RedisWithScripts;
  if (typeof r.petrelCommit !== 'function') {
    redis.defineCommand('petrelCommit', { numberOfKeys: 0, lua: COMMIT });
    redis.defineCommand('petrelReadQueue', { numberOfKeys: 0, lua: READ_QUEUE });
  }
  return r;
}

interface RecordJson {
  v: ProtocolVersion;
  x: number;
  d: number | null;
  w: null | { t: string; p: string; q: 0 | 1 | 2; r: boolean; pr: string | null; d: number };
}

export function encodeRecord(r: SessionRecord): string {
  const j: RecordJson = { v: r.protocolVersion, x: r.expiryInterval, d: r.disconnectedAt, w: null };
  if (r.will) {
    const w = r.will;
    j.w = { t: w.topic, p: w.payload.toString('base64'), q: w.qos, r: w.retain, pr: encodeProperties(w.properties), d: w.delayInterval };
  }
  return JSON.stringify(j);
}

export function decodeRecord(clientId: string, s: string): SessionRecord {
  const j = JSON.parse(s) as RecordJson;
  const rec: SessionRecord = { clientId, protocolVersion: j.v, expiryInterval: j.x, disconnectedAt: j.d, will: null };
  if (j.w) {
    rec.will = { topic: j.w.t, payload: Buffer.from(j.w.p, 'base64'), qos: j.w.q, retain: j.w.r, delayInterval: j.w.d };
    if (j.w.pr !== null) rec.will.properties = decodeProperties(j.w.pr);
  }
  return rec;
}

function encodeSub(s: SubscriptionRecord): string {
  return JSON.stringify(s);
}

export class RedisStore implements Store {
  readonly kind = 'redis';
  readonly durable = true;
  private readonly redis: RedisWithScripts;
  private readonly P: string;
  private ops: Arg[] = [];
  private readonly inflight = new Set<Promise<unknown>>();
  private batchSeq = 0;
  private closed = false;
  private opened = false;
  /** Sessions with a record (written here or loaded): writes that add to a session need one. */
  private readonly known = new Set<string>();
  /** Called before a batch is sent: the cluster adds its merged inbox writes (one per target node) then. */
  beforeSend: (() => void) | null = null;

  /** A batch sent early (by a read) failed: the next commit() fails with it (nothing after it is acknowledged). */
  private failure: unknown = null;

  constructor(private readonly options: RedisStoreOptions) {
    this.redis = define(options.redis);
    this.P = options.prefix;
  }

  /** The next batch number is the one after the last this member applied (a restart of the same member). */
  private async initBatchSeq(): Promise<void> {
    if (this.options.member === '') return;
    const last = await this.redis.hget(`${this.P}batch`, this.options.member);
    this.batchSeq = Number(last ?? 0);
  }

  async open(): Promise<LoadedState> {
    if (this.closed) throw new StoreError('PETREL_ERR_STORE_CLOSED', 'the Redis store is closed');
    if (this.opened) {
      // A second open() (the contract suite, without reopen): the current state.
      await this.commit();
    }
    this.opened = true;
    try {
      await this.initBatchSeq();
      const block = await this.redis.incr(`${this.P}ids`);
      const retained: StoredMessage[] = [];
      const all = (await this.redis.hgetallBuffer(`${this.P}ret`)) as Record<string, Buffer>;
      for (const v of Object.values(all)) retained.push(decodeMessage(v));
      const sessions: LoadedSession[] = [];
      if (this.options.load === 'all') {
        const ids = await this.redis.smembers(`${this.P}sess`);
        for (const id of ids.sort()) {
          const s = await this.loadSession(id);
          if (s !== null) sessions.push(s);
        }
      }
      return { sessions, retained, nextMessageId: block * ID_BLOCK + 1 };
    } catch (err) {
      throw new StoreError('PETREL_ERR_STORE_IO', `cannot open the Redis store: ${(err as Error).message}`, { cause: err });
    }
  }

  /** One session with its subscriptions, inbound QoS 2 ids and queue statistics; null if it has no record. */
  async loadSession(clientId: string): Promise<LoadedSession | null> {
    await this.sendPending();
    const P = this.P;
    const c = clientId;
    const [rec, subs, q2, st, count] = (await this.redis
      .multi()
      .get(`${P}s:${c}`)
      .hgetall(`${P}sub:${c}`)
      .smembers(`${P}q2:${c}`)
      .hgetall(`${P}st:${c}`)
      .zcard(`${P}qz:${c}`)
      .exec())!.map(([err, v]) => {
      if (err) throw err;
      return v;
    }) as [string | null, Record<string, string>, string[], Record<string, string>, number];
    if (rec === null) return null;
    this.known.add(c);
    const subscriptions = Object.values(subs).map((s) => JSON.parse(s) as SubscriptionRecord);
    subscriptions.sort((a, b) => (a.filter < b.filter ? -1 : a.filter > b.filter ? 1 : 0));
    return {
      session: decodeRecord(c, rec),
      subscriptions,
      inboundQos2: q2.map(Number).sort((a, b) => a - b),
      queue: { count, bytes: Number(st.bytes ?? 0), lastSeq: Number(st.last ?? 0), sentSeq: Number(st.sent ?? 0) },
    };
  }

  /** Recently delivered message ids of a session (for the node's dedupe of moved sessions). */
  async seenIds(clientId: string, sinceMs: number): Promise<string[]> {
    await this.sendPending();
    return this.redis.zrangebyscore(`${this.P}seen:${clientId}`, sinceMs, '+inf');
  }

  async close(): Promise<void> {
    this.check();
    await this.commit();
    this.closed = true;
  }

  private check(): void {
    if (this.closed) throw new StoreError('PETREL_ERR_STORE_CLOSED', 'the Redis store is closed');
  }

  private needSession(clientId: string): void {
    if (!this.known.has(clientId)) throw new Error(`no session record for ${JSON.stringify(clientId)} (putSession first)`);
  }

  // ---- writes ----

  /** Append raw ops to the current batch (Cluster: routes, forwards, stream acks, ownership). */
  op(...args: Arg[]): void {
    this.check();
    for (const a of args) this.ops.push(a);
  }

  putSession(record: SessionRecord): void {
    this.check();
    this.known.add(record.clientId);
    this.ops.push('ps', record.clientId, encodeRecord(record));
  }

  deleteSession(clientId: string): void {
    this.check();
    this.known.delete(clientId);
    this.ops.push('ds', clientId);
  }

  putSubscription(clientId: string, subscription: SubscriptionRecord): void {
    this.check();
    this.needSession(clientId);
    this.ops.push('sub', clientId, subscription.filter, encodeSub(subscription));
  }

  deleteSubscription(clientId: string, filter: string): void {
    this.check();
    this.ops.push('uns', clientId, filter);
  }

  enqueue(clientId: string, entry: QueueEntry): void {
    this.check();
    this.needSession(clientId);
    this.ops.push('enq', clientId, entry.seq, encodeEntry(entry), entryBytes(entry), entry.message.id);
  }

  markSent(clientId: string, seq: number): void {
    this.check();
    this.ops.push('sent', clientId, seq);
  }

  markReleased(clientId: string, seq: number): void {
    this.check();
    this.ops.push('rel', clientId, seq);
  }

  dequeue(clientId: string, seq: number): void {
    this.check();
    this.ops.push('deq', clientId, seq);
  }

  addInboundQos2(clientId: string, packetId: number): void {
    this.check();
    this.needSession(clientId);
    this.ops.push('q2a', clientId, packetId);
  }

  removeInboundQos2(clientId: string, packetId: number): void {
    this.check();
    this.ops.push('q2r', clientId, packetId);
  }

  setRetained(topic: string, message: StoredMessage | null): void {
    this.check();
    this.ops.push('ret', topic, message === null ? '' : encodeMessage(message));
  }

  /** Send what is pending as one batch (not awaited); resolves with the script's reply. */
  private sendPending(): Promise<unknown> {
    this.beforeSend?.();
    if (this.ops.length === 0) return Promise.resolve();
    const ops = this.ops;
    this.ops = [];
    const seq = this.options.member === '' ? 0 : ++this.batchSeq;
    // A batch that carries messages to other nodes' inboxes is the cross-node step of a publish (tests only).
    const step = crashPointsArmed && ops.includes('fwd') ? crashStep('publish') : null;
    const p = this.redis.petrelCommit(this.P, this.options.member, seq, ...ops);
    if (step !== null) p.then(() => step.tick(), () => {});
    this.inflight.add(p);
    const done = (): void => {
      this.inflight.delete(p);
    };
    p.then(done, (err: unknown) => {
      done();
      this.failure ??= err;
    });
    return p;
  }

  async commit(): Promise<void> {
    this.check();
    const last = this.sendPending();
    const all = [...this.inflight];
    try {
      await last;
      await Promise.all(all);
      if (this.failure !== null) throw this.failure;
    } catch (err) {
      throw new StoreError('PETREL_ERR_STORE_IO', `Redis commit failed: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Like commit(), returning the script's reply (the last route-log id it wrote, or 1). */
  async commitWithReply(): Promise<unknown> {
    const r = this.sendPending();
    await Promise.all([...this.inflight]);
    return r;
  }

  // ---- reads ----

  async readQueue(clientId: string, fromSeq: number, limit: number, maxBytes?: number): Promise<QueueEntry[]> {
    this.check();
    void this.sendPending().catch(() => {});
    if (limit <= 0) return [];
    const flat = await this.redis.petrelReadQueueBuffer(this.P, clientId, fromSeq, limit, maxBytes ?? -1);
    const out: QueueEntry[] = [];
    for (let i = 0; i < flat.length; i += 2) {
      const e = decodeEntry(flat[i] as Buffer);
      if (Number(flat[i + 1]) === 1) e.state = QueueState.Released;
      out.push(e);
    }
    return out;
  }

  async expireQueue(clientId: string, now: number, limit: number): Promise<ExpiredStats> {
    this.check();
    const sent = Number((await this.sentSeqOf(clientId)) ?? 0);
    let from = sent + 1;
    let count = 0;
    let bytes = 0;
    while (count < limit) {
      const page = await this.readQueue(clientId, from, 256);
      if (page.length === 0) break;
      for (const e of page) {
        from = e.seq + 1;
        if (e.message.expiresAt !== undefined && e.message.expiresAt <= now && count < limit) {
          this.ops.push('deq', clientId, e.seq);
          count++;
          bytes += entryBytes(e);
        }
      }
    }
    return { count, bytes };
  }

  private async sentSeqOf(clientId: string): Promise<string | null> {
    void this.sendPending().catch(() => {});
    return this.redis.hget(`${this.P}st:${clientId}`, 'sent');
  }
}
