// The SQLite store (embedded default): durable, one file in dataDir.
//
// Writes are recorded in a batch in memory and applied by commit() in one
// transaction (group commit). The batch is the only place where queued
// entries or payloads live in the heap: everything committed is read back
// from the file by readQueue, page by page. What stays in memory is one small
// record per session (its integer key and queue sequence numbers).
//
// Within a batch:
//  - an enqueue() followed by a dequeue() of the same entry cancel out (nothing
//    is written for them, the entry's message is not stored if nothing else
//    refers to it);
//  - markReleased() of an entry enqueued in the same batch changes the pending
//    insert instead of adding an update;
//  - markSent() and the queue counters become one UPDATE per session;
//  - each message is written once, with its reference count (see
//    migrations.ts for the schema and the triggers that release messages).
//
// Reference counting: commit() first adds, for every message of the batch,
// the number of references the batch creates (upsert); then it applies the
// operations in order, and the triggers subtract a reference for every queue
// or retained row deleted, deleting the message when none is left. Because
// the increments come first, a message's count never reaches zero while a
// later operation of the same batch will still refer to it.
//
// Durability: journal_mode=WAL. 'process' (default): synchronous=NORMAL, a
// commit is in the WAL (the OS has it) when commit() returns, which survives
// a crash or kill -9 of the process but not necessarily a power loss.
// 'power': synchronous=FULL, the WAL is fsynced at every commit.
//
// The database is opened with locking_mode=EXCLUSIVE: a second process (for
// example a second broker on the same dataDir) cannot open it meanwhile.

import { closeSync, mkdirSync, openSync, readSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { APPLICATION_ID, migrate, readVersion, SCHEMA_VERSION } from './migrations.js';
import { decodeIds, decodeProperties, encodeIds, encodeProperties } from './serialize.js';
import {
  QueueState,
  StoreError,
  type LoadedSession,
  type LoadedState,
  type QueueEntry,
  type SessionRecord,
  type Store,
  type StoredMessage,
  type StoredWill,
  type SubscriptionRecord,
} from './types.js';
import type { ProtocolVersion, QoS } from '../protocol/packets.js';

type Db = BetterSqlite3.Database;
type Stmt<P extends unknown[], R = unknown> = BetterSqlite3.Statement<P, R>;

export type Durability = 'process' | 'power';

export interface SqliteStoreOptions {
  /** Directory of the database file; created if missing. */
  dataDir: string;
  /** 'process' (default): survive a crash of the process. 'power': survive a power loss (fsync every commit). */
  durability?: Durability;
  /** Default 'petrel.db'. */
  fileName?: string;
}

/** Settings in force, for logs and tests. */
export interface SqliteDiagnostics {
  path: string;
  schemaVersion: number;
  journalMode: string;
  /** 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA. */
  synchronous: number;
  lockingMode: string;
}

const SQLITE_MAGIC = Buffer.from('SQLite format 3\0', 'latin1');
const RESOLVED: Promise<void> = Promise.resolve();
/** Pages of SQLite cache (negative: KiB). Part of the fixed working set. */
const CACHE_SIZE_KIB = 16384;
/** Checkpoint the WAL into the database every this many pages (default 1000). */
const WAL_AUTOCHECKPOINT_PAGES = 4000;
const JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024;

const requireCjs = createRequire(import.meta.url);
let driver: typeof BetterSqlite3 | undefined;
/** better-sqlite3 is loaded on first use, so that a memory-store-only process never needs the native module. */
function loadDriver(): typeof BetterSqlite3 {
  driver ??= requireCjs('better-sqlite3') as typeof BetterSqlite3;
  return driver;
}

// ---- the batch ----

/** Per-session state kept in memory: O(1) per session, no entries. */
interface SessInfo {
  readonly sid: number;
  lastSeq: number;
  sentSeq: number;
  /** Deleted (deleteSession) since it was created; its rows are gone or going. */
  deleted: boolean;
  /** In the batch's `touched` list: its stats row is rewritten at commit. */
  touched: boolean;
  /** Enqueues of the current batch that have not been cancelled, by seq. */
  pending: Map<number, EnqueueOp> | null;
  /** Dequeues of the current batch of entries not enqueued in it. */
  dequeues: number[] | null;
  /** Filled in while a commit runs. */
  countDelta: number;
  bytesDelta: number;
}

const K = {
  PutSession: 0,
  DeleteSession: 1,
  PutSub: 2,
  DeleteSub: 3,
  Enqueue: 4,
  Release: 6,
  AddInbound: 7,
  RemoveInbound: 8,
  Retain: 9,
} as const;

interface PutSessionOp { kind: typeof K.PutSession; s: SessInfo; clientId: string; record: SessionRecord }
interface DeleteSessionOp { kind: typeof K.DeleteSession; s: SessInfo }
interface PutSubOp { kind: typeof K.PutSub; s: SessInfo; sub: SubscriptionRecord }
interface DeleteSubOp { kind: typeof K.DeleteSub; s: SessInfo; filter: string }
interface EnqueueOp {
  kind: typeof K.Enqueue;
  s: SessInfo;
  cancelled: boolean;
  seq: number;
  message: StoredMessage;
  qos: QoS;
  retain: boolean;
  subscriptionIds: number[] | undefined;
  state: QueueState;
}
interface SeqOp { kind: typeof K.Release; s: SessInfo; seq: number }
interface InboundOp { kind: typeof K.AddInbound | typeof K.RemoveInbound; s: SessInfo; packetId: number }
interface RetainOp { kind: typeof K.Retain; topic: string; message: StoredMessage | null }
type Op = PutSessionOp | DeleteSessionOp | PutSubOp | DeleteSubOp | EnqueueOp | SeqOp | InboundOp | RetainOp;

interface BatchMessage {
  message: StoredMessage;
  /** References this batch adds (enqueues and retained sets not cancelled). */
  refs: number;
}

// ---- rows ----

interface SessionRow {
  sid: number;
  client_id: string;
  protocol_version: number;
  expiry_interval: number;
  disconnected_at: number | null;
  will_topic: string | null;
  will_qos: number | null;
  will_retain: number | null;
  will_delay: number | null;
  will_properties: string | null;
  will_payload: Buffer | null;
  last_seq: number;
  sent_seq: number;
  queue_count: number;
  queue_bytes: number;
}

interface SubscriptionRow {
  sid: number;
  filter: string;
  qos: number;
  no_local: number;
  retain_as_published: number;
  retain_handling: number;
  subscription_id: number | null;
}

/** [id, topic, qos, retain, received_at, expires_at, properties, payload] */
type MessageCols = [number, string, number, number, number, number | null, string | null, Buffer | null];
/** [seq, qos, retain, state, subscription_ids, ...MessageCols] */
type QueueCols = [number, number, number, number, string | null, ...MessageCols];

const MESSAGE_COLS = 'm.id, m.topic, m.qos, m.retain, m.received_at, m.expires_at, m.properties, m.payload';

function messageFrom(r: MessageCols | QueueCols, o: number): StoredMessage {
  const m: StoredMessage = {
    id: r[o] as number,
    topic: r[o + 1] as string,
    payload: (r[o + 7] as Buffer | null) ?? Buffer.alloc(0),
    qos: r[o + 2] as QoS,
    retain: r[o + 3] !== 0,
    receivedAt: r[o + 4] as number,
  };
  const expiresAt = r[o + 5] as number | null;
  if (expiresAt !== null) m.expiresAt = expiresAt;
  const props = r[o + 6] as string | null;
  if (props !== null) m.properties = decodeProperties(props);
  return m;
}

function b(v: boolean): number {
  return v ? 1 : 0;
}

export class SqliteStore implements Store {
  readonly kind = 'sqlite';
  readonly durable = true;
  /** Absolute path of the database file. */
  readonly path: string;
  readonly durability: Durability;
  private readonly dataDir: string;

  private db: Db | null = null;
  private closed = false;
  private st: Statements | null = null;
  private txn: (() => void) | null = null;

  private readonly sessions = new Map<string, SessInfo>();
  private nextSid = 1;

  // The batch.
  private ops: Op[] = [];
  private messages = new Map<number, BatchMessage>();
  private touched: SessInfo[] = [];
  /** Rows and payload bytes removed by the last queue DELETE (counted by a temporary trigger). */
  private dqRows = 0;
  private dqBytes = 0;
  private readonly dqArgs: unknown[] = [];

  constructor(options: SqliteStoreOptions) {
    if (typeof options.dataDir !== 'string' || options.dataDir === '') throw new TypeError('SqliteStore: dataDir must be a non-empty path');
    const durability = options.durability ?? 'process';
    if (durability !== 'process' && durability !== 'power') {
      throw new TypeError(`SqliteStore: durability must be 'process' or 'power', got ${JSON.stringify(durability)}`);
    }
    this.durability = durability;
    this.dataDir = resolve(options.dataDir);
    this.path = join(this.dataDir, options.fileName ?? 'petrel.db');
  }

  // ---- open / close ----

  async open(): Promise<LoadedState> {
    if (this.closed) throw closedError();
    if (this.db !== null) throw new Error('SqliteStore: open() called twice');
    const path = this.path;
    try {
      mkdirSync(this.dataDir, { recursive: true });
    } catch (err) {
      throw new StoreError('PETREL_ERR_STORE_IO', `cannot create the data directory ${this.dataDir}: ${(err as Error).message}`, { cause: err });
    }
    checkHeader(path);
    const Driver = loadDriver();
    let db: Db;
    try {
      db = new Driver(path, { timeout: 200 });
    } catch (err) {
      throw mapError(err, path, 'open');
    }
    try {
      // Before the first access: take the file for this process alone (and keep
      // the WAL index in the heap instead of a -shm file).
      db.pragma('locking_mode = EXCLUSIVE');
      // Only reads until the version is known to be ours.
      const version = readVersion(db);
      checkIdentity(path, version, db.pragma('application_id', { simple: true }) as number);
      if (version === 0) {
        const tables = db.prepare('SELECT count(*) FROM sqlite_master').pluck().get() as number;
        if (tables > 0) {
          throw new StoreError('PETREL_ERR_STORE_UNREADABLE', `${path} is an SQLite database without a Petrel schema version (it has ${tables} schema objects). The file was left untouched.`);
        }
      }
      const mode = db.pragma('journal_mode = WAL', { simple: true }) as string;
      if (mode !== 'wal') throw new StoreError('PETREL_ERR_STORE_IO', `${path}: cannot switch to WAL mode (journal_mode is ${mode})`);
      db.pragma(`synchronous = ${this.durability === 'power' ? 'FULL' : 'NORMAL'}`);
      if (this.durability === 'power') {
        // F_FULLFSYNC where the OS has it (macOS); nothing elsewhere.
        db.pragma('fullfsync = ON');
        db.pragma('checkpoint_fullfsync = ON');
      }
      db.pragma(`cache_size = -${CACHE_SIZE_KIB}`);
      // Statement journals (multi-row statements, triggers) in memory, not
      // spilled to temporary files past 64 KiB.
      db.pragma('temp_store = MEMORY');
      db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
      db.pragma(`journal_size_limit = ${JOURNAL_SIZE_LIMIT}`);
      migrate(db);
      // Counts the queue rows a DELETE removes, with their sizes, for the
      // queue statistics (RETURNING would cost an ephemeral table per call).
      // TEMP: exists only in this connection, not in the file.
      db.function('petrel_dequeued', { deterministic: false, directOnly: true }, (size: unknown) => {
        this.dqRows++;
        this.dqBytes += size as number;
        return null;
      });
      db.exec('CREATE TEMP TRIGGER petrel_queue_deleted AFTER DELETE ON main.queue BEGIN SELECT petrel_dequeued(OLD.size); END');
      this.st = prepare(db);
      this.txn = db.transaction(() => this.apply());
      this.db = db;
      return this.load();
    } catch (err) {
      this.st = null;
      this.txn = null;
      this.db = null;
      try {
        db.close();
      } catch {
        // already failing
      }
      throw err instanceof StoreError ? err : mapError(err, path, 'open');
    }
  }

  async close(): Promise<void> {
    if (this.closed) throw closedError();
    this.closed = true;
    const db = this.db;
    if (db === null) return;
    let failure: unknown;
    try {
      this.flush();
    } catch (err) {
      failure = err;
    }
    try {
      if (failure === undefined) db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      // The WAL stays and is replayed at the next open.
    }
    this.db = null;
    this.st = null;
    this.txn = null;
    try {
      db.close();
    } catch (err) {
      failure ??= mapError(err, this.path, 'close');
    }
    if (failure !== undefined) throw failure;
  }

  /** Settings in force (for logs and tests). */
  diagnostics(): SqliteDiagnostics {
    const db = this.openDb();
    return {
      path: this.path,
      schemaVersion: readVersion(db),
      journalMode: db.pragma('journal_mode', { simple: true }) as string,
      synchronous: db.pragma('synchronous', { simple: true }) as number,
      lockingMode: db.pragma('locking_mode', { simple: true }) as string,
    };
  }

  private load(): LoadedState {
    const st = this.st!;
    const bySid = new Map<number, LoadedSession>();
    const sessions: LoadedSession[] = [];
    let maxSid = 0;
    for (const r of st.loadSessions.all()) {
      let will: StoredWill | null = null;
      if (r.will_topic !== null) {
        will = {
          topic: r.will_topic,
          payload: r.will_payload ?? Buffer.alloc(0),
          qos: (r.will_qos ?? 0) as QoS,
          retain: r.will_retain === 1,
          delayInterval: r.will_delay ?? 0,
        };
        if (r.will_properties !== null) will.properties = decodeProperties(r.will_properties);
      }
      const loaded: LoadedSession = {
        session: {
          clientId: r.client_id,
          protocolVersion: r.protocol_version as ProtocolVersion,
          expiryInterval: r.expiry_interval,
          disconnectedAt: r.disconnected_at,
          will,
        },
        subscriptions: [],
        inboundQos2: [],
        queue: { count: r.queue_count, bytes: r.queue_bytes, lastSeq: r.last_seq, sentSeq: r.sent_seq },
      };
      sessions.push(loaded);
      bySid.set(r.sid, loaded);
      this.sessions.set(r.client_id, newSessInfo(r.sid, r.last_seq, r.sent_seq));
      if (r.sid > maxSid) maxSid = r.sid;
    }
    this.nextSid = maxSid + 1;
    for (const r of st.loadSubscriptions.all()) {
      const sub: SubscriptionRecord = {
        filter: r.filter,
        qos: r.qos as QoS,
        noLocal: r.no_local !== 0,
        retainAsPublished: r.retain_as_published !== 0,
        retainHandling: r.retain_handling as 0 | 1 | 2,
      };
      if (r.subscription_id !== null) sub.subscriptionId = r.subscription_id;
      bySid.get(r.sid)?.subscriptions.push(sub);
    }
    for (const [sid, packetId] of st.loadInbound.all()) bySid.get(sid)?.inboundQos2.push(packetId);
    const retained = st.loadRetained.all().map((r) => messageFrom(r, 0));
    const maxId = st.maxMessageId.get() ?? null;
    return { sessions, retained, nextMessageId: (maxId ?? 0) + 1 };
  }

  // ---- writes ----

  putSession(record: SessionRecord): void {
    this.openDb();
    let s = this.sessions.get(record.clientId);
    if (s === undefined) {
      s = newSessInfo(this.nextSid++, 0, 0);
      this.sessions.set(record.clientId, s);
    }
    this.ops.push({ kind: K.PutSession, s, clientId: record.clientId, record: { ...record } });
  }

  deleteSession(clientId: string): void {
    this.openDb();
    const s = this.sessions.get(clientId);
    if (s === undefined) return;
    this.sessions.delete(clientId);
    s.deleted = true;
    if (s.pending !== null) {
      for (const op of s.pending.values()) {
        op.cancelled = true;
        this.ref(op.message, -1);
      }
      s.pending = null;
    }
    this.ops.push({ kind: K.DeleteSession, s });
  }

  putSubscription(clientId: string, subscription: SubscriptionRecord): void {
    this.openDb();
    this.ops.push({ kind: K.PutSub, s: this.session(clientId), sub: { ...subscription } });
  }

  deleteSubscription(clientId: string, filter: string): void {
    this.openDb();
    const s = this.sessions.get(clientId);
    if (s !== undefined) this.ops.push({ kind: K.DeleteSub, s, filter });
  }

  enqueue(clientId: string, entry: QueueEntry): void {
    this.openDb();
    const s = this.session(clientId);
    const seq = entry.seq;
    // A seq already used (not expected): the new entry replaces the old one.
    if (seq <= s.lastSeq) this.dequeue(clientId, seq);
    const op: EnqueueOp = {
      kind: K.Enqueue,
      s,
      cancelled: false,
      seq,
      message: entry.message,
      qos: entry.qos,
      retain: entry.retain,
      subscriptionIds: entry.subscriptionIds,
      state: entry.state,
    };
    this.ops.push(op);
    (s.pending ??= new Map()).set(seq, op);
    this.ref(entry.message, 1);
    if (seq > s.lastSeq) s.lastSeq = seq;
    this.touch(s);
  }

  markSent(clientId: string, seq: number): void {
    this.openDb();
    const s = this.sessions.get(clientId);
    if (s === undefined || seq <= s.sentSeq) return;
    s.sentSeq = seq;
    this.touch(s);
  }

  markReleased(clientId: string, seq: number): void {
    this.openDb();
    const s = this.sessions.get(clientId);
    if (s === undefined) return;
    const pending = s.pending?.get(seq);
    if (pending !== undefined) pending.state = QueueState.Released;
    else this.ops.push({ kind: K.Release, s, seq });
  }

  dequeue(clientId: string, seq: number): void {
    this.openDb();
    const s = this.sessions.get(clientId);
    if (s === undefined) return;
    const pending = s.pending?.get(seq);
    if (pending !== undefined) {
      pending.cancelled = true;
      s.pending!.delete(seq);
      this.ref(pending.message, -1);
      return;
    }
    (s.dequeues ??= []).push(seq);
    this.touch(s);
  }

  addInboundQos2(clientId: string, packetId: number): void {
    this.openDb();
    this.ops.push({ kind: K.AddInbound, s: this.session(clientId), packetId });
  }

  removeInboundQos2(clientId: string, packetId: number): void {
    this.openDb();
    const s = this.sessions.get(clientId);
    if (s !== undefined) this.ops.push({ kind: K.RemoveInbound, s, packetId });
  }

  setRetained(topic: string, message: StoredMessage | null): void {
    this.openDb();
    this.ops.push({ kind: K.Retain, topic, message });
    if (message !== null) this.ref(message, 1);
  }

  commit(): Promise<void> {
    if (this.db === null) return Promise.reject(closedError());
    try {
      this.flush();
    } catch (err) {
      return Promise.reject(err);
    }
    return RESOLVED;
  }

  // ---- reads ----

  async readQueue(clientId: string, fromSeq: number, limit: number): Promise<QueueEntry[]> {
    this.openDb();
    this.flush();
    const s = this.sessions.get(clientId);
    if (s === undefined || !(limit > 0)) return [];
    const rows = this.st!.readQueue.all(s.sid, fromSeq, Math.min(Math.floor(limit), 0x7fffffff));
    const out = new Array<QueueEntry>(rows.length);
    // Entries of one page that refer to the same message share one object.
    const byId = new Map<number, StoredMessage>();
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]!;
      let message = byId.get(r[5]);
      if (message === undefined) {
        message = messageFrom(r, 5);
        byId.set(message.id, message);
      }
      const entry: QueueEntry = { seq: r[0], message, qos: r[1] as QoS, retain: r[2] !== 0, state: r[3] as QueueState };
      if (r[4] !== null) entry.subscriptionIds = decodeIds(r[4]);
      out[i] = entry;
    }
    return out;
  }

  // ---- internals ----

  private openDb(): Db {
    if (this.db === null) {
      throw this.closed ? closedError() : new StoreError('PETREL_ERR_STORE_CLOSED', 'the store is not open (call open() first)');
    }
    return this.db;
  }

  private session(clientId: string): SessInfo {
    const s = this.sessions.get(clientId);
    if (s === undefined) throw new Error(`store: no session ${JSON.stringify(clientId)} (putSession first)`);
    return s;
  }

  private touch(s: SessInfo): void {
    if (!s.touched) {
      s.touched = true;
      this.touched.push(s);
    }
  }

  private ref(message: StoredMessage, delta: number): void {
    const bm = this.messages.get(message.id);
    if (bm !== undefined) bm.refs += delta;
    else this.messages.set(message.id, { message, refs: delta });
  }

  /** Commit the batch now (synchronously). On failure the batch stays, to be retried by the next commit. */
  private flush(): void {
    if (this.ops.length === 0 && this.touched.length === 0) return;
    const touched = this.touched;
    for (let i = 0; i < touched.length; i++) {
      touched[i]!.countDelta = 0;
      touched[i]!.bytesDelta = 0;
    }
    try {
      this.txn!();
    } catch (err) {
      throw err instanceof StoreError ? err : mapError(err, this.path, 'commit');
    }
    for (let i = 0; i < touched.length; i++) {
      const s = touched[i]!;
      s.touched = false;
      s.pending = null;
      s.dequeues = null;
    }
    this.ops = [];
    this.touched = [];
    this.messages = new Map();
  }

  /**
   * The body of the commit transaction:
   *  1. the messages of the batch with the references it adds (multi-row upserts);
   *  2. the other operations, in order;
   *  3. the dequeues, per session (DELETE ... seq IN (up to 32 seqs)). A dequeue
   *     commutes with every operation of steps 1-2: with markReleased of the same
   *     entry (the entry is gone either way), deleteSession (same), setRetained
   *     and the message upserts (the references of step 1 keep every message the
   *     batch still refers to);
   *  4. the queue rows of the enqueues that were not cancelled (multi-row inserts).
   *     They can go last: a later operation of the same batch on the same entry
   *     (dequeue, markReleased, deleteSession, a second enqueue of the seq) was
   *     already folded into the pending entry or cancelled it, and a dequeue of a
   *     committed entry whose seq is enqueued again (step 3) must run first;
   *  5. one stats update per session touched.
   */
  private apply(): void {
    const st = this.st!;
    const mw = st.messageWriter;
    mw.reset();
    for (const bm of this.messages.values()) {
      if (bm.refs <= 0) continue;
      const m = bm.message;
      mw.v.push(m.id, bm.refs, m.topic, m.qos, b(m.retain), m.receivedAt, m.expiresAt ?? null, encodeProperties(m.properties), m.payload);
      mw.endRow();
    }
    mw.flush();
    const ops = this.ops;
    let enqueues = 0;
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      switch (op.kind) {
        case K.Enqueue:
          enqueues++;
          break;
        case K.Release:
          st.releaseQueue.run(op.s.sid, op.seq);
          break;
        case K.PutSession: {
          const r = op.record;
          const w = r.will;
          st.putSession.run(
            op.s.sid,
            op.clientId,
            r.protocolVersion,
            r.expiryInterval,
            r.disconnectedAt,
            w === null ? null : w.topic,
            w === null ? null : w.qos,
            w === null ? null : b(w.retain),
            w === null ? null : w.delayInterval,
            w === null ? null : encodeProperties(w.properties),
            w === null ? null : w.payload,
          );
          break;
        }
        case K.DeleteSession: {
          const sid = op.s.sid;
          st.deleteSessionQueue.run(sid);
          st.deleteSessionSubs.run(sid);
          st.deleteSessionInbound.run(sid);
          st.deleteSession.run(sid);
          break;
        }
        case K.PutSub: {
          const sub = op.sub;
          st.putSub.run(op.s.sid, sub.filter, sub.qos, b(sub.noLocal), b(sub.retainAsPublished), sub.retainHandling, sub.subscriptionId ?? null);
          break;
        }
        case K.DeleteSub:
          st.deleteSub.run(op.s.sid, op.filter);
          break;
        case K.AddInbound:
          st.addInbound.run(op.s.sid, op.packetId);
          break;
        case K.RemoveInbound:
          st.removeInbound.run(op.s.sid, op.packetId);
          break;
        case K.Retain:
          st.deleteRetained.run(op.topic);
          if (op.message !== null) st.insertRetained.run(op.topic, op.message.id);
          break;
      }
    }
    const touched = this.touched;
    for (let i = 0; i < touched.length; i++) {
      const s = touched[i]!;
      const seqs = s.dequeues;
      if (seqs === null || s.deleted) continue;
      // The temporary trigger counts the rows deleted into dqRows/dqBytes.
      this.dqRows = 0;
      this.dqBytes = 0;
      const v = this.dqArgs;
      for (let k = 0; k < seqs.length; k += DELETES_PER_STATEMENT) {
        const n = Math.min(DELETES_PER_STATEMENT, seqs.length - k);
        v.length = 0;
        v.push(s.sid);
        for (let x = 0; x < n; x++) v.push(seqs[k + x]);
        st.deleteQueue(n).run(v);
      }
      s.countDelta -= this.dqRows;
      s.bytesDelta -= this.dqBytes;
    }
    if (enqueues > 0) {
      const qw = st.queueWriter;
      qw.reset();
      for (let i = 0; i < ops.length; i++) {
        const op = ops[i]!;
        if (op.kind !== K.Enqueue || op.cancelled) continue;
        const size = op.message.payload.length;
        qw.v.push(op.s.sid, op.seq, op.message.id, size, op.qos, b(op.retain), op.state, encodeIds(op.subscriptionIds));
        qw.endRow();
        op.s.countDelta++;
        op.s.bytesDelta += size;
      }
      qw.flush();
    }
    for (let i = 0; i < touched.length; i++) {
      const s = touched[i]!;
      if (!s.deleted) st.updateStats.run(s.lastSeq, s.sentSeq, s.countDelta, s.bytesDelta, s.sid);
    }
  }
}

function newSessInfo(sid: number, lastSeq: number, sentSeq: number): SessInfo {
  return { sid, lastSeq, sentSeq, deleted: false, touched: false, pending: null, dequeues: null, countDelta: 0, bytesDelta: 0 };
}

/** Rows per multi-row INSERT. */
const ROWS_PER_INSERT = 32;
/** Seqs per queue DELETE. */
const DELETES_PER_STATEMENT = 32;

/** A statement per count, prepared on first use. */
function cachedByCount<T>(make: (n: number) => T): (n: number) => T {
  const cache: (T | undefined)[] = [];
  return (n) => (cache[n] ??= make(n));
}

/**
 * A multi-row INSERT: push a row's values to `v`, then endRow(); rows are
 * written ROWS_PER_INSERT at a time (one statement call instead of one per
 * row), the rest by flush(). One prepared statement per row count, made on first use.
 */
class RowWriter {
  readonly v: unknown[] = [];
  private rows = 0;
  private readonly stmts: (Stmt<unknown[]> | undefined)[] = [];

  constructor(
    private readonly db: Db,
    private readonly head: string,
    private readonly width: number,
    private readonly tail: string,
  ) {}

  reset(): void {
    this.v.length = 0;
    this.rows = 0;
  }

  endRow(): void {
    if (++this.rows === ROWS_PER_INSERT) this.flush();
  }

  flush(): void {
    const n = this.rows;
    if (n === 0) return;
    let stmt = this.stmts[n];
    if (stmt === undefined) {
      const row = `(${new Array<string>(this.width).fill('?').join(', ')})`;
      stmt = this.db.prepare<unknown[]>(`${this.head} ${new Array<string>(n).fill(row).join(', ')} ${this.tail}`);
      this.stmts[n] = stmt;
    }
    stmt.run(this.v);
    this.reset();
  }
}

interface Statements {
  messageWriter: RowWriter;
  queueWriter: RowWriter;
  /** DELETE of n seqs of one session (n = 1..DELETES_PER_STATEMENT). */
  deleteQueue: (n: number) => Stmt<unknown[]>;
  releaseQueue: Stmt<[number, number]>;
  putSession: Stmt<[number, string, number, number, number | null, string | null, number | null, number | null, number | null, string | null, Buffer | null]>;
  deleteSessionQueue: Stmt<[number]>;
  deleteSessionSubs: Stmt<[number]>;
  deleteSessionInbound: Stmt<[number]>;
  deleteSession: Stmt<[number]>;
  putSub: Stmt<[number, string, number, number, number, number, number | null]>;
  deleteSub: Stmt<[number, string]>;
  addInbound: Stmt<[number, number]>;
  removeInbound: Stmt<[number, number]>;
  deleteRetained: Stmt<[string]>;
  insertRetained: Stmt<[string, number]>;
  updateStats: Stmt<[number, number, number, number, number]>;
  readQueue: Stmt<[number, number, number], QueueCols>;
  loadSessions: Stmt<[], SessionRow>;
  loadSubscriptions: Stmt<[], SubscriptionRow>;
  loadInbound: Stmt<[], [number, number]>;
  loadRetained: Stmt<[], MessageCols>;
  maxMessageId: Stmt<[], number | null>;
}

function prepare(db: Db): Statements {
  return {
    messageWriter: new RowWriter(
      db,
      'INSERT INTO messages (id, refs, topic, qos, retain, received_at, expires_at, properties, payload) VALUES',
      9,
      'ON CONFLICT (id) DO UPDATE SET refs = refs + excluded.refs',
    ),
    queueWriter: new RowWriter(db, 'INSERT INTO queue (sid, seq, message_id, size, qos, retain, state, subscription_ids) VALUES', 8, ''),
    deleteQueue: cachedByCount((n) => db.prepare<unknown[]>(`DELETE FROM queue WHERE sid = ? AND seq IN (${new Array<string>(n).fill('?').join(', ')})`)),
    releaseQueue: db.prepare(`UPDATE queue SET state = ${QueueState.Released} WHERE sid = ? AND seq = ?`),
    putSession: db.prepare(
      'INSERT INTO sessions (sid, client_id, protocol_version, expiry_interval, disconnected_at, will_topic, will_qos, will_retain, will_delay, will_properties, will_payload) ' +
        'VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sid) DO UPDATE SET ' +
        'protocol_version = excluded.protocol_version, expiry_interval = excluded.expiry_interval, disconnected_at = excluded.disconnected_at, ' +
        'will_topic = excluded.will_topic, will_qos = excluded.will_qos, will_retain = excluded.will_retain, will_delay = excluded.will_delay, ' +
        'will_properties = excluded.will_properties, will_payload = excluded.will_payload',
    ),
    deleteSessionQueue: db.prepare('DELETE FROM queue WHERE sid = ?'),
    deleteSessionSubs: db.prepare('DELETE FROM subscriptions WHERE sid = ?'),
    deleteSessionInbound: db.prepare('DELETE FROM inbound_qos2 WHERE sid = ?'),
    deleteSession: db.prepare('DELETE FROM sessions WHERE sid = ?'),
    putSub: db.prepare(
      'INSERT OR REPLACE INTO subscriptions (sid, filter, qos, no_local, retain_as_published, retain_handling, subscription_id) VALUES (?, ?, ?, ?, ?, ?, ?)',
    ),
    deleteSub: db.prepare('DELETE FROM subscriptions WHERE sid = ? AND filter = ?'),
    addInbound: db.prepare('INSERT OR IGNORE INTO inbound_qos2 (sid, packet_id) VALUES (?, ?)'),
    removeInbound: db.prepare('DELETE FROM inbound_qos2 WHERE sid = ? AND packet_id = ?'),
    deleteRetained: db.prepare('DELETE FROM retained WHERE topic = ?'),
    insertRetained: db.prepare('INSERT INTO retained (topic, message_id) VALUES (?, ?)'),
    updateStats: db.prepare('UPDATE sessions SET last_seq = ?, sent_seq = ?, queue_count = queue_count + ?, queue_bytes = queue_bytes + ? WHERE sid = ?'),
    readQueue: db
      .prepare<[number, number, number], QueueCols>(
        `SELECT q.seq, q.qos, q.retain, q.state, q.subscription_ids, ${MESSAGE_COLS} FROM queue q JOIN messages m ON m.id = q.message_id ` +
          'WHERE q.sid = ? AND q.seq >= ? ORDER BY q.seq LIMIT ?',
      )
      .raw(),
    loadSessions: db.prepare<[], SessionRow>('SELECT * FROM sessions ORDER BY sid'),
    loadSubscriptions: db.prepare<[], SubscriptionRow>('SELECT * FROM subscriptions ORDER BY sid, filter'),
    loadInbound: db.prepare<[], [number, number]>('SELECT sid, packet_id FROM inbound_qos2 ORDER BY sid, packet_id').raw(),
    loadRetained: db
      .prepare<[], MessageCols>(`SELECT ${MESSAGE_COLS} FROM retained r JOIN messages m ON m.id = r.message_id ORDER BY r.topic`)
      .raw(),
    maxMessageId: db.prepare<[], number | null>('SELECT max(id) FROM messages').pluck(),
  };
}

/**
 * Read the database header without SQLite and refuse, before SQLite touches
 * the file: a file that is not an SQLite database, one of another application,
 * one of a newer schema version. (The same checks run again through SQLite,
 * which also sees a header that is still in the WAL.)
 */
function checkHeader(path: string): void {
  let size: number;
  try {
    const stat = statSync(path);
    if (!stat.isFile()) throw new StoreError('PETREL_ERR_STORE_UNREADABLE', `${path} is not a regular file`);
    size = stat.size;
  } catch (err) {
    if (err instanceof StoreError) throw err;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // a new database
    throw new StoreError('PETREL_ERR_STORE_IO', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (size === 0) return; // an empty file is an empty database
  const head = Buffer.alloc(100);
  let n = 0;
  try {
    const fd = openSync(path, 'r');
    try {
      n = readSync(fd, head, 0, head.length, 0);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    throw new StoreError('PETREL_ERR_STORE_IO', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (n < head.length || !head.subarray(0, SQLITE_MAGIC.length).equals(SQLITE_MAGIC)) {
    throw new StoreError(
      'PETREL_ERR_STORE_UNREADABLE',
      `${path} is not an SQLite database (it does not start with the SQLite header). Petrel will not touch it: move it away or point dataDir elsewhere.`,
    );
  }
  checkIdentity(path, head.readUInt32BE(60), head.readUInt32BE(68));
}

/** Refuse a database of a newer schema version or of another application. */
function checkIdentity(path: string, version: number, appId: number): void {
  if (appId !== 0 && appId !== APPLICATION_ID) {
    throw new StoreError(
      'PETREL_ERR_STORE_UNREADABLE',
      `${path} is an SQLite database of another application (application_id ${appId}), not Petrel's. The file was left untouched.`,
    );
  }
  if (version > SCHEMA_VERSION) {
    throw new StoreError(
      'PETREL_ERR_STORE_NEWER_VERSION',
      `${path} has schema version ${version}, newer than the version ${SCHEMA_VERSION} this Petrel knows: ` +
        'it was written by a newer Petrel. Run that version, or point dataDir elsewhere. The file was left untouched.',
    );
  }
}

function mapError(err: unknown, path: string, during: string): StoreError {
  const code = (err as { code?: unknown }).code;
  const message = err instanceof Error ? err.message : String(err);
  if (typeof code === 'string') {
    if (code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT')) {
      return new StoreError('PETREL_ERR_STORE_UNREADABLE', `${path} is damaged or not a database (${code}: ${message}). Petrel will not touch it.`, { cause: err });
    }
    if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
      return new StoreError('PETREL_ERR_STORE_IO', `${path} is in use by another process (${code}): is another broker running on this dataDir?`, { cause: err });
    }
  }
  return new StoreError('PETREL_ERR_STORE_IO', `${path}: ${during} failed: ${message}`, { cause: err });
}

function closedError(): StoreError {
  return new StoreError('PETREL_ERR_STORE_CLOSED', 'the store is closed');
}
