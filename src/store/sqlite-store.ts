// The SQLite store (embedded default): durable, one file in dataDir.
//
// Writes are recorded in a batch in memory and applied by commit() in one
// transaction (group commit). The batch is the only place where queued
// entries or payloads live in the heap: everything committed is read back
// from the file by readQueue, page by page. What stays in memory is one small
// record per session (its integer key and queue sequence numbers).
//
// Schema (version 2, see migrations.ts): a message referred to by exactly one
// queue entry of a batch is written inline in that queue row; one referred to
// more than once (fan-out, retained) is written once to `messages` with a
// reference count, and its queue rows point to it (`shared`).
//
// Within a batch:
//  - an enqueue() followed by a dequeue() of the same entry cancel out (nothing
//    is written for them, the entry's message is not stored if nothing else
//    refers to it);
//  - markReleased() of an entry enqueued in the same batch changes the pending
//    insert instead of adding an update;
//  - markSent() and the queue counters of every session touched become one
//    UPDATE ... FROM (VALUES ...) per 32 sessions;
//  - each message is written once: inline if the batch refers to it once,
//    else to `messages` with the number of references the batch adds.
//
// Batch bookkeeping allocates as little as it can per operation (GC is a large
// part of a busy broker's time): enqueues are kept in parallel arrays (the
// caller's QueueEntry itself, its session, its state), the entries pending
// per session as a list of indexes searched by seq, and the messages referred
// to more than once are detected without a map lookup in the usual case
// (message ids increase, the enqueues of one message come one after another).
//
// Reference counting of shared messages: commit() first adds, for every shared
// message of the batch, the number of references the batch creates (upsert);
// then it applies the operations in order. Before it deletes queue rows (a
// dequeue, deleteSession), it subtracts their references from the messages
// they point to and deletes the messages left with none; the trigger of the
// retained table does the same for retained rows. Because the increments
// come first, a message's count never reaches zero while a later operation of
// the same batch will still refer to it.
//
// Queue statistics: count and bytes change by what the batch inserts (known)
// and by what its dequeues delete, which a SELECT on the index queue_order
// counts (rows, bytes, shared rows) before the DELETE (no trigger: a row
// trigger costs as much as the delete itself, even with a WHEN that is false).
// Dequeues of consecutive seqs of a session (the usual case: acknowledgements
// in order) become one range each; the other seqs, of all sessions together,
// go by (sid, seq) IN (VALUES ...) lists of 32.
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
  type ExpiredStats,
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

/** eState value of an enqueue cancelled by a later dequeue or deleteSession of the batch. */
const CANCELLED = -1;

/** Per-session state kept in memory: O(1) per session, no entries. */
interface SessInfo {
  readonly sid: number;
  lastSeq: number;
  sentSeq: number;
  /** Deleted (deleteSession) since it was created; its rows are gone or going. */
  deleted: boolean;
  /** In the batch's `touched` list: its stats row is rewritten at commit. */
  touched: boolean;
  /** Enqueues of the current batch for this session (indexes into the batch arrays), in the order made. */
  pend: number[] | null;
  /** seq -> index, once the seqs of `pend` stopped increasing (rare); until then `pend` is searched by seq. */
  pendMap: Map<number, number> | null;
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
  Release: 6,
  AddInbound: 7,
  RemoveInbound: 8,
  Retain: 9,
} as const;

interface PutSessionOp { kind: typeof K.PutSession; s: SessInfo; clientId: string; record: SessionRecord }
interface DeleteSessionOp { kind: typeof K.DeleteSession; s: SessInfo }
interface PutSubOp { kind: typeof K.PutSub; s: SessInfo; sub: SubscriptionRecord }
interface DeleteSubOp { kind: typeof K.DeleteSub; s: SessInfo; filter: string }
interface SeqOp { kind: typeof K.Release; s: SessInfo; seq: number }
interface InboundOp { kind: typeof K.AddInbound | typeof K.RemoveInbound; s: SessInfo; packetId: number }
interface RetainOp { kind: typeof K.Retain; topic: string; message: StoredMessage | null }
/** Operations other than enqueues (those are in the batch arrays). */
type Op = PutSessionOp | DeleteSessionOp | PutSubOp | DeleteSubOp | SeqOp | InboundOp | RetainOp;

interface SharedMessage {
  message: StoredMessage;
  /** References the batch adds (enqueues not cancelled, retained sets). */
  refs: number;
  /** Set as retained in the batch: written to `messages` even with one reference. */
  retained: boolean;
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
/**
 * [seq, flags, subscription_ids, message_id,
 *  inline: topic, received_at, expires_at, properties, payload,
 *  shared: ...MessageCols of the messages row (all null for an inline row)]
 */
type QueueCols = [
  number, number, string | null, number,
  string | null, number | null, number | null, string | null, Buffer | null,
  number | null, string | null, number | null, number | null, number | null, number | null, string | null, Buffer | null,
];
/** QueueCols and queue.size. */
type QueuePageCols = [...QueueCols, number];
/** Offset of the messages row's columns in QueueCols. */
const QUEUE_SHARED_COLS = 9;
/** Column of queue.size in the rows of readQueuePage (after QueueCols). */
const QUEUE_SIZE_COL = 17;
/** count(*), sum(size), sum(shared) of the rows a dequeue statement will delete. */
type DequeueStats = [number, number | null, number | null];
/** The same per session: sid, count(*), sum(size), sum(shared). */
type PairStats = [number, number, number | null, number | null];

const MESSAGE_COLS = 'm.id, m.topic, m.qos, m.retain, m.received_at, m.expires_at, m.properties, m.payload';

// queue.flags (see migrations.ts, version 2).
const F_RETAIN = 1 << 2;
const F_STATE_SHIFT = 3;
const F_STATE_MASK = 3 << F_STATE_SHIFT;
const F_MSG_QOS_SHIFT = 5;
const F_MSG_RETAIN = 1 << 7;
const RELEASED_FLAGS = QueueState.Released << F_STATE_SHIFT;

function messageFrom(r: MessageCols | QueueCols | QueuePageCols, o: number): StoredMessage {
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

/** The message of a queue row; null if the row is shared and its message is missing (a damaged file). */
function queueMessageFrom(r: QueueCols | QueuePageCols): StoredMessage | null {
  const flags = r[1];
  if (r[4] !== null) {
    const m: StoredMessage = {
      id: r[3],
      topic: r[4],
      payload: r[8] ?? Buffer.alloc(0),
      qos: ((flags >> F_MSG_QOS_SHIFT) & 3) as QoS,
      retain: (flags & F_MSG_RETAIN) !== 0,
      receivedAt: r[5] as number,
    };
    if (r[6] !== null) m.expiresAt = r[6];
    if (r[7] !== null) m.properties = decodeProperties(r[7]);
    return m;
  }
  // Shared: the messages row (missing if the file is damaged).
  return r[QUEUE_SHARED_COLS] === null ? null : messageFrom(r, QUEUE_SHARED_COLS);
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
  /** meta.max_message_id as committed. */
  private maxIdWritten = 0;

  // The batch.
  private ops: Op[] = [];
  // Enqueues, in the order made: the caller's entry, its session, its state (or CANCELLED).
  private eEntry: QueueEntry[] = [];
  private eSess: SessInfo[] = [];
  private eState: number[] = [];
  /** Highest message id enqueued in the batch (the previous enqueue of the same id is then in the batch). */
  private eMaxId = -Infinity;
  /** Highest message id of the batch's enqueues and retained sets (for meta.max_message_id). */
  private batchMaxId = 0;
  /** Ids of the batch's messages that may be referred to more than once (enqueued twice, or set as retained). */
  private multi: Set<number> | null = null;
  /** Message ids enqueued in the batch; made only when an id lower than eMaxId comes (not in order). */
  private seen: Set<number> | null = null;
  private touched: SessInfo[] = [];
  /** Dequeues that are not part of a run of consecutive seqs, gathered over the sessions: session, seq. */
  private readonly pairSess: SessInfo[] = [];
  private readonly pairSeq: number[] = [];

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
      // Statement journals (multi-row statements) in memory, not spilled to
      // temporary files past 64 KiB.
      db.pragma('temp_store = MEMORY');
      db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
      db.pragma(`journal_size_limit = ${JOURNAL_SIZE_LIMIT}`);
      migrate(db);
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
    this.maxIdWritten = st.maxIdWritten.get() ?? 0;
    const maxId = Math.max(this.maxIdWritten, st.maxMessageId.get() ?? 0);
    return { sessions, retained, nextMessageId: maxId + 1 };
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
    const pend = s.pend;
    if (pend !== null) {
      for (let i = 0; i < pend.length; i++) this.eState[pend[i]!] = CANCELLED;
      s.pend = null;
      s.pendMap = null;
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
    const idx = this.eEntry.length;
    this.eEntry.push(entry);
    this.eSess.push(s);
    this.eState.push(entry.state);
    const pend = s.pend;
    if (pend === null) s.pend = [idx];
    else {
      // Searchable by seq while the seqs increase (the broker's order); else by a map.
      if (s.pendMap === null && seq <= this.eEntry[pend[pend.length - 1]!]!.seq) s.pendMap = this.pendMapOf(pend);
      pend.push(idx);
    }
    if (s.pendMap !== null) s.pendMap.set(seq, idx);
    this.noteEnqueued(entry.message.id, idx);
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
    const i = this.pendingIndex(s, seq);
    if (i >= 0) this.eState[i] = QueueState.Released;
    else this.ops.push({ kind: K.Release, s, seq });
  }

  dequeue(clientId: string, seq: number): void {
    this.openDb();
    const s = this.sessions.get(clientId);
    if (s === undefined) return;
    const i = this.pendingIndex(s, seq);
    if (i >= 0) {
      this.eState[i] = CANCELLED;
      s.pendMap?.delete(seq);
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
    if (message !== null) {
      (this.multi ??= new Set()).add(message.id);
      if (message.id > this.batchMaxId) this.batchMaxId = message.id;
    }
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

  async readQueue(clientId: string, fromSeq: number, limit: number, maxBytes?: number): Promise<QueueEntry[]> {
    this.openDb();
    this.flush();
    const s = this.sessions.get(clientId);
    if (s === undefined || !(limit > 0)) return [];
    const n = Math.min(Math.floor(limit), 0x7fffffff);
    let rows: (QueueCols | QueuePageCols)[];
    if (maxBytes === undefined) rows = this.st!.readQueue.all(s.sid, fromSeq, n);
    else {
      // Row by row, stopping at the first entry that would go past maxBytes
      // (its payload is read and dropped: one row at most).
      rows = [];
      let bytes = 0;
      for (const r of this.st!.readQueuePage.iterate(s.sid, fromSeq, n)) {
        const size = (r[1] & F_STATE_MASK) === RELEASED_FLAGS ? 0 : r[QUEUE_SIZE_COL];
        if (rows.length > 0 && bytes + size > maxBytes) break;
        bytes += size;
        rows.push(r);
      }
    }
    const out: QueueEntry[] = [];
    // Entries of one page that refer to the same stored message share one object.
    let byId: Map<number, StoredMessage> | null = null;
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]!;
      let message: StoredMessage | undefined;
      if (r[4] === null) message = (byId ??= new Map()).get(r[3]);
      if (message === undefined) {
        const m = queueMessageFrom(r);
        if (m === null) continue; // shared row without its message: a damaged file (as v1's inner join did, skip it)
        if (r[4] === null) byId!.set(m.id, m);
        message = m;
      }
      const flags = r[1];
      const entry: QueueEntry = {
        seq: r[0],
        message,
        qos: (flags & 3) as QoS,
        retain: (flags & F_RETAIN) !== 0,
        state: ((flags & F_STATE_MASK) >> F_STATE_SHIFT) as QueueState,
      };
      if (r[2] !== null) entry.subscriptionIds = decodeIds(r[2]);
      out.push(entry);
    }
    return out;
  }

  async expireQueue(clientId: string, now: number, limit: number): Promise<ExpiredStats> {
    this.openDb();
    this.flush();
    const s = this.sessions.get(clientId);
    let count = 0;
    let bytes = 0;
    if (s === undefined || !(limit > 0)) return { count, bytes };
    const rows = this.st!.expiredEntries.all(s.sid, now, s.sentSeq, Math.min(Math.floor(limit), 0x7fffffff));
    for (let i = 0; i < rows.length; i++) {
      const [seq, size] = rows[i]!;
      this.dequeue(clientId, seq);
      count++;
      bytes += size;
    }
    return { count, bytes };
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

  /** Index of the live (not cancelled) enqueue of `seq` in this batch for `s`, or -1. */
  private pendingIndex(s: SessInfo, seq: number): number {
    const pend = s.pend;
    if (pend === null) return -1;
    if (s.pendMap !== null) return s.pendMap.get(seq) ?? -1;
    // The seqs of pend increase: binary search.
    const entries = this.eEntry;
    let lo = 0;
    let hi = pend.length - 1;
    if (seq < entries[pend[0]!]!.seq || seq > entries[pend[hi]!]!.seq) return -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const idx = pend[mid]!;
      const x = entries[idx]!.seq;
      if (x === seq) return this.eState[idx] === CANCELLED ? -1 : idx;
      if (x < seq) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  private pendMapOf(pend: number[]): Map<number, number> {
    const map = new Map<number, number>();
    for (let i = 0; i < pend.length; i++) {
      const idx = pend[i]!;
      if (this.eState[idx] !== CANCELLED) map.set(this.eEntry[idx]!.seq, idx);
    }
    return map;
  }

  /** Notes the message id of the enqueue at `idx`: a second reference in the batch makes it `multi`. */
  private noteEnqueued(id: number, idx: number): void {
    if (id > this.batchMaxId) this.batchMaxId = id;
    if (this.multi !== null && this.multi.has(id)) return;
    if (id > this.eMaxId) {
      // A new id (the usual case: ids increase).
      this.eMaxId = id;
      this.seen?.add(id);
    } else if (id === this.eMaxId) {
      // The same message as an earlier enqueue of this batch (fan-out).
      (this.multi ??= new Set()).add(id);
    } else {
      // Out of order: look it up among every id enqueued so far.
      let seen = this.seen;
      if (seen === null) {
        seen = new Set();
        for (let i = 0; i < idx; i++) seen.add(this.eEntry[i]!.message.id);
        this.seen = seen;
      }
      if (seen.has(id)) (this.multi ??= new Set()).add(id);
      else seen.add(id);
    }
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
    if (this.batchMaxId > this.maxIdWritten) this.maxIdWritten = this.batchMaxId;
    for (let i = 0; i < touched.length; i++) {
      const s = touched[i]!;
      s.touched = false;
      s.pend = null;
      s.pendMap = null;
      s.dequeues = null;
    }
    this.ops = [];
    this.touched = [];
    this.eEntry = [];
    this.eSess = [];
    this.eState = [];
    this.eMaxId = -Infinity;
    this.batchMaxId = 0;
    this.multi = null;
    this.seen = null;
  }

  /**
   * The messages of the batch written to `messages` (id -> references added):
   * those set as retained, and those enqueued more than once (not cancelled).
   * Null when there are none.
   */
  private sharedMessages(): Map<number, SharedMessage> | null {
    const multi = this.multi;
    if (multi === null) return null;
    const found = new Map<number, SharedMessage>();
    const entries = this.eEntry;
    const state = this.eState;
    for (let i = 0; i < entries.length; i++) {
      if (state[i] === CANCELLED) continue;
      const m = entries[i]!.message;
      if (!multi.has(m.id)) continue;
      const sm = found.get(m.id);
      if (sm !== undefined) sm.refs++;
      else found.set(m.id, { message: m, refs: 1, retained: false });
    }
    const ops = this.ops;
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      if (op.kind !== K.Retain || op.message === null) continue;
      const sm = found.get(op.message.id);
      if (sm !== undefined) {
        sm.refs++;
        sm.retained = true;
      } else found.set(op.message.id, { message: op.message, refs: 1, retained: true });
    }
    let shared: Map<number, SharedMessage> | null = null;
    for (const [id, sm] of found) {
      // One reference from one enqueue: inline.
      if (sm.refs > 1 || sm.retained) (shared ??= new Map()).set(id, sm);
    }
    return shared;
  }

  /**
   * The body of the commit transaction:
   *  1. the shared messages of the batch with the references it adds (multi-row upserts);
   *  2. the other operations, in order;
   *  3. the dequeues: runs of consecutive seqs of a session as one range each,
   *     the other seqs of all sessions as lists of 32. A dequeue commutes with every
   *     operation of steps 1-2: with markReleased of the same entry (the entry
   *     is gone either way), deleteSession (same), setRetained and the message
   *     upserts (the references of step 1 keep every message the batch still
   *     refers to);
   *  4. the queue rows of the enqueues that were not cancelled (multi-row inserts).
   *     They can go last: a later operation of the same batch on the same entry
   *     (dequeue, markReleased, deleteSession, a second enqueue of the seq) was
   *     already folded into the pending entry or cancelled it, and a dequeue of a
   *     committed entry whose seq is enqueued again (step 3) must run first;
   *  5. the stats of the sessions touched (one statement per 32), and meta.max_message_id.
   */
  private apply(): void {
    const st = this.st!;
    st.sharedWriter.reset();
    st.inlineWriter.reset();
    st.plainWriter.reset();
    st.messageWriter.reset();
    const shared = this.sharedMessages();
    if (shared !== null) {
      const mw = st.messageWriter;
      for (const sm of shared.values()) {
        const m = sm.message;
        mw.add(m.id);
        mw.add(sm.refs);
        mw.add(m.topic);
        mw.add(m.qos);
        mw.add(b(m.retain));
        mw.add(m.receivedAt);
        mw.add(m.expiresAt ?? null);
        mw.add(encodeProperties(m.properties));
        mw.add(m.payload);
        mw.endRow();
      }
      mw.flush();
    }
    const ops = this.ops;
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      switch (op.kind) {
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
          st.unrefSession.run(sid);
          st.dropUnrefSession.run(sid);
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
    this.pairSess.length = 0;
    this.pairSeq.length = 0;
    for (let i = 0; i < touched.length; i++) {
      const s = touched[i]!;
      if (s.dequeues !== null && !s.deleted) this.applyDequeues(s, s.dequeues);
    }
    const pairs = this.pairSeq.length;
    for (let k = 0; k < pairs; k += DELETES_PER_STATEMENT) this.dequeuePairs(k, Math.min(DELETES_PER_STATEMENT, pairs - k));
    this.pairSess.length = 0;
    this.pairSeq.length = 0;
    const entries = this.eEntry;
    const sess = this.eSess;
    const state = this.eState;
    for (let i = 0; i < entries.length; i++) {
      const st8 = state[i]!;
      if (st8 === CANCELLED) continue;
      const e = entries[i]!;
      const s = sess[i]!;
      const m = e.message;
      const size = m.payload.length;
      const flags = e.qos | (e.retain ? F_RETAIN : 0) | (st8 << F_STATE_SHIFT) | (m.qos << F_MSG_QOS_SHIFT) | (m.retain ? F_MSG_RETAIN : 0);
      if (shared !== null && shared.has(m.id)) {
        const w = st.sharedWriter;
        w.add(s.sid);
        w.add(e.seq);
        w.add(m.id);
        w.add(size);
        w.add(flags);
        w.add(encodeIds(e.subscriptionIds));
        w.add(m.expiresAt ?? null);
        w.endRow();
      } else if (m.expiresAt === undefined && m.properties == null && e.subscriptionIds === undefined) {
        const w = st.plainWriter;
        w.add(s.sid);
        w.add(e.seq);
        w.add(m.id);
        w.add(size);
        w.add(flags);
        w.add(m.topic);
        w.add(m.receivedAt);
        w.add(m.payload);
        w.endRow();
      } else {
        const w = st.inlineWriter;
        w.add(s.sid);
        w.add(e.seq);
        w.add(m.id);
        w.add(size);
        w.add(flags);
        w.add(encodeIds(e.subscriptionIds));
        w.add(m.topic);
        w.add(m.receivedAt);
        w.add(m.expiresAt ?? null);
        w.add(encodeProperties(m.properties));
        w.add(m.payload);
        w.endRow();
      }
      s.countDelta++;
      s.bytesDelta += size;
    }
    st.sharedWriter.flush();
    st.plainWriter.flush();
    st.inlineWriter.flush();
    const sw = st.statsWriter;
    sw.reset();
    for (let i = 0; i < touched.length; i++) {
      const s = touched[i]!;
      if (s.deleted) continue;
      sw.add(s.sid);
      sw.add(s.lastSeq);
      sw.add(s.sentSeq);
      sw.add(s.countDelta);
      sw.add(s.bytesDelta);
      sw.endRow();
    }
    sw.flush();
    if (this.batchMaxId > this.maxIdWritten) st.setMaxId.run(this.batchMaxId);
  }

  /**
   * Deletes the entries `seqs` of a session: each run of consecutive seqs by a
   * range, the other seqs are gathered with those of the other sessions (dequeuePairs).
   */
  private applyDequeues(s: SessInfo, seqs: number[]): void {
    let sorted = true;
    for (let i = 1; i < seqs.length; i++) {
      if (seqs[i]! < seqs[i - 1]!) {
        sorted = false;
        break;
      }
    }
    if (!sorted) seqs.sort((x, y) => x - y);
    for (let i = 0; i < seqs.length; ) {
      const first = seqs[i]!;
      let last = first;
      let j = i + 1;
      // (a seq dequeued twice is in the run once)
      while (j < seqs.length && (seqs[j] === last || seqs[j] === last + 1)) last = seqs[j++]!;
      if (last > first) this.dequeueRange(s, first, last);
      else {
        this.pairSess.push(s);
        this.pairSeq.push(first);
      }
      i = j;
    }
  }

  private dequeueRange(s: SessInfo, first: number, last: number): void {
    const st = this.st!;
    const sid = s.sid;
    const r = st.rangeStats.get(sid, first, last)!;
    const count = r[0];
    if (count === 0) return;
    if (r[2]! > 0) {
      st.unrefRange.run(sid, first, last);
      st.dropUnrefRange.run(sid, first, last);
    }
    st.deleteRange.run(sid, first, last);
    s.countDelta -= count;
    s.bytesDelta -= r[1]!;
  }

  /** Deletes the gathered (session, seq) pairs from..from+n-1 in one statement (with the statistics per session). */
  private dequeuePairs(from: number, n: number): void {
    const st = this.st!;
    const args = st.pairArgs(n);
    const sess = this.pairSess;
    const seqs = this.pairSeq;
    for (let i = 0; i < n; i++) {
      args[2 * i] = sess[from + i]!.sid;
      args[2 * i + 1] = seqs[from + i];
    }
    const rows = st.pairStats(n).all(...args);
    if (rows.length === 0) return;
    let shared = 0;
    for (let r = 0; r < rows.length; r++) {
      const [sid, count, bytes, sh] = rows[r]!;
      shared += sh!;
      // The session of this sid among the pairs (rows come by sid; n is small).
      for (let i = from; i < from + n; i++) {
        const s = sess[i]!;
        if (s.sid === sid) {
          s.countDelta -= count;
          s.bytesDelta -= bytes!;
          break;
        }
      }
    }
    if (shared > 0) {
      st.unrefPairs(n).run(...args);
      st.dropUnrefPairs(n).run(...args);
    }
    st.deletePairs(n).run(...args);
  }
}

function newSessInfo(sid: number, lastSeq: number, sentSeq: number): SessInfo {
  return { sid, lastSeq, sentSeq, deleted: false, touched: false, pend: null, pendMap: null, dequeues: null, countDelta: 0, bytesDelta: 0 };
}

/** Rows per multi-row INSERT. */
const ROWS_PER_INSERT = 32;
/** (session, seq) pairs per dequeue statement. */
const DELETES_PER_STATEMENT = 32;

/** A value per count, made on first use. */
function cachedByCount<T>(make: (n: number) => T): (n: number) => T {
  const cache: (T | undefined)[] = [];
  return (n) => (cache[n] ??= make(n));
}

/**
 * A multi-row INSERT: add() a row's values, then endRow(); rows are written
 * ROWS_PER_INSERT at a time (one statement call instead of one per row), the
 * rest by flush(). One prepared statement per row count, made on first use.
 * The values go to preallocated arrays (no garbage per row), cleared after
 * each statement so that no payload is kept.
 */
class RowWriter {
  private readonly v: unknown[];
  private n = 0;
  private rows = 0;
  private readonly stmts: (Stmt<unknown[]> | undefined)[] = [];
  /** Exactly sized value arrays for the statements of fewer rows. */
  private readonly partial: (unknown[] | undefined)[] = [];

  /** `row`: the VALUES tuple of one row, with `width` parameters (it may hold literals). */
  constructor(
    private readonly db: Db,
    private readonly head: string,
    private readonly row: string,
    private readonly width: number,
    private readonly tail: string,
  ) {
    this.v = new Array<unknown>(width * ROWS_PER_INSERT).fill(null);
  }

  reset(): void {
    this.v.fill(null, 0, this.n);
    this.n = 0;
    this.rows = 0;
  }

  add(value: unknown): void {
    this.v[this.n++] = value;
  }

  endRow(): void {
    if (++this.rows === ROWS_PER_INSERT) this.flush();
  }

  flush(): void {
    const rows = this.rows;
    if (rows === 0) return;
    let stmt = this.stmts[rows];
    if (stmt === undefined) {
      stmt = this.db.prepare<unknown[]>(`${this.head} ${new Array<string>(rows).fill(this.row).join(', ')} ${this.tail}`);
      this.stmts[rows] = stmt;
    }
    // Spread, not the array: better-sqlite3 reads an array argument element by
    // element through the V8 API, positional arguments directly.
    if (rows === ROWS_PER_INSERT) stmt.run(...this.v);
    else {
      const n = this.n;
      const args = (this.partial[rows] ??= new Array<unknown>(n));
      for (let i = 0; i < n; i++) args[i] = this.v[i];
      try {
        stmt.run(...args);
      } finally {
        args.fill(null);
      }
    }
    this.reset();
  }
}

interface Statements {
  messageWriter: RowWriter;
  /** Queue rows of shared messages. */
  sharedWriter: RowWriter;
  /** Queue rows with their message inline, without expiry, properties or subscription ids (the usual case: fewer parameters). */
  plainWriter: RowWriter;
  /** Queue rows with their message inline. */
  inlineWriter: RowWriter;
  rangeStats: Stmt<[number, number, number], DequeueStats>;
  unrefRange: Stmt<[number, number, number]>;
  dropUnrefRange: Stmt<[number, number, number]>;
  deleteRange: Stmt<[number, number, number]>;
  /** Parameter array [sid, seq] x n for the statements of n (session, seq) pairs. */
  pairArgs: (n: number) => unknown[];
  pairStats: (n: number) => Stmt<unknown[], PairStats>;
  unrefPairs: (n: number) => Stmt<unknown[]>;
  dropUnrefPairs: (n: number) => Stmt<unknown[]>;
  deletePairs: (n: number) => Stmt<unknown[]>;
  releaseQueue: Stmt<[number, number]>;
  putSession: Stmt<[number, string, number, number, number | null, string | null, number | null, number | null, number | null, string | null, Buffer | null]>;
  unrefSession: Stmt<[number]>;
  dropUnrefSession: Stmt<[number]>;
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
  /** Stats of the sessions touched: (sid, last_seq, sent_seq, count delta, bytes delta) rows. */
  statsWriter: RowWriter;
  setMaxId: Stmt<[number]>;
  readQueue: Stmt<[number, number, number], QueueCols>;
  /** The same without the payloads of Released entries, row by row (readQueue with maxBytes). */
  readQueuePage: Stmt<[number, number, number], QueuePageCols>;
  /** seq, size of a session's entries after a seq that expired at a time, oldest expiry first. */
  expiredEntries: Stmt<[number, number, number, number], [number, number]>;
  loadSessions: Stmt<[], SessionRow>;
  loadSubscriptions: Stmt<[], SubscriptionRow>;
  loadInbound: Stmt<[], [number, number]>;
  loadRetained: Stmt<[], MessageCols>;
  maxMessageId: Stmt<[], number | null>;
  maxIdWritten: Stmt<[], number | null>;
}

// Statements that write several rows say OR FAIL: with the default (ABORT) a
// NOT NULL check makes SQLite keep a statement journal (a copy of every page the
// statement changes, to undo that statement alone). Here any failure rolls back
// the whole commit transaction anyway, so FAIL (stop, keep the statement's
// changes until that rollback) is as safe and needs no statement journal.
function prepare(db: Db): Statements {
  const pairList = (n: number): string => `(sid, seq) IN (VALUES ${new Array<string>(n).fill('(?, ?)').join(', ')})`;
  const range = 'sid = ? AND seq BETWEEN ? AND ?';
  // Reference counting of the shared rows among those a dequeue deletes: subtract
  // their references (a message may be in the set more than once), then delete
  // the messages left without any. Run only when the set has shared rows.
  const unref = (where: string): string =>
    `UPDATE OR FAIL messages SET refs = refs - c.n FROM (SELECT message_id AS id, count(*) AS n FROM queue WHERE ${where} AND shared = 1 GROUP BY message_id) AS c ` +
    'WHERE messages.id = c.id';
  const dropUnref = (where: string): string => `DELETE FROM messages WHERE refs <= 0 AND id IN (SELECT message_id FROM queue WHERE ${where} AND shared = 1)`;
  // Counted on the index queue_order alone.
  const stats = (where: string): string => `SELECT count(*), sum(size), sum(shared) FROM queue WHERE ${where}`;
  return {
    messageWriter: new RowWriter(
      db,
      'INSERT OR FAIL INTO messages (id, refs, topic, qos, retain, received_at, expires_at, properties, payload) VALUES',
      '(?, ?, ?, ?, ?, ?, ?, ?, ?)',
      9,
      'ON CONFLICT (id) DO UPDATE SET refs = refs + excluded.refs',
    ),
    // expires_at: a copy of the message's, for the index queue_expiry.
    sharedWriter: new RowWriter(db, 'INSERT OR FAIL INTO queue (sid, seq, message_id, shared, size, flags, subscription_ids, expires_at) VALUES', '(?, ?, ?, 1, ?, ?, ?, ?)', 7, ''),
    plainWriter: new RowWriter(db, 'INSERT OR FAIL INTO queue (sid, seq, message_id, shared, size, flags, topic, received_at, payload) VALUES', '(?, ?, ?, 0, ?, ?, ?, ?, ?)', 8, ''),
    inlineWriter: new RowWriter(
      db,
      'INSERT OR FAIL INTO queue (sid, seq, message_id, shared, size, flags, subscription_ids, topic, received_at, expires_at, properties, payload) VALUES',
      '(?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?)',
      11,
      '',
    ),
    rangeStats: db.prepare<[number, number, number], DequeueStats>(stats(range)).raw(),
    unrefRange: db.prepare(unref(range)),
    dropUnrefRange: db.prepare(dropUnref(range)),
    deleteRange: db.prepare(`DELETE FROM queue WHERE ${range}`),
    pairArgs: cachedByCount((n) => new Array<unknown>(2 * n)),
    pairStats: cachedByCount((n) =>
      db.prepare<unknown[], PairStats>(`SELECT sid, count(*), sum(size), sum(shared) FROM queue WHERE ${pairList(n)} GROUP BY sid`).raw(),
    ),
    unrefPairs: cachedByCount((n) => db.prepare<unknown[]>(unref(pairList(n)))),
    dropUnrefPairs: cachedByCount((n) => db.prepare<unknown[]>(dropUnref(pairList(n)))),
    deletePairs: cachedByCount((n) => db.prepare<unknown[]>(`DELETE FROM queue WHERE ${pairList(n)}`)),
    releaseQueue: db.prepare(`UPDATE queue SET flags = (flags & ${~F_STATE_MASK}) | ${QueueState.Released << F_STATE_SHIFT} WHERE sid = ? AND seq = ?`),
    putSession: db.prepare(
      'INSERT INTO sessions (sid, client_id, protocol_version, expiry_interval, disconnected_at, will_topic, will_qos, will_retain, will_delay, will_properties, will_payload) ' +
        'VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sid) DO UPDATE SET ' +
        'protocol_version = excluded.protocol_version, expiry_interval = excluded.expiry_interval, disconnected_at = excluded.disconnected_at, ' +
        'will_topic = excluded.will_topic, will_qos = excluded.will_qos, will_retain = excluded.will_retain, will_delay = excluded.will_delay, ' +
        'will_properties = excluded.will_properties, will_payload = excluded.will_payload',
    ),
    unrefSession: db.prepare(unref('sid = ?')),
    dropUnrefSession: db.prepare(dropUnref('sid = ?')),
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
    statsWriter: new RowWriter(
      db,
      'UPDATE OR FAIL sessions SET last_seq = v.column2, sent_seq = v.column3, queue_count = queue_count + v.column4, queue_bytes = queue_bytes + v.column5 FROM (VALUES',
      '(?, ?, ?, ?, ?)',
      5,
      ') AS v WHERE sessions.sid = v.column1',
    ),
    setMaxId: db.prepare("UPDATE meta SET value = max(value, ?) WHERE key = 'max_message_id'"),
    readQueue: db
      .prepare<[number, number, number], QueueCols>(
        `SELECT q.seq, q.flags, q.subscription_ids, q.message_id, q.topic, q.received_at, q.expires_at, q.properties, q.payload, ${MESSAGE_COLS} ` +
          'FROM queue q LEFT JOIN messages m ON q.shared = 1 AND m.id = q.message_id ' +
          'WHERE q.sid = ? AND q.seq >= ? ORDER BY q.seq LIMIT ?',
      )
      .raw(),
    readQueuePage: db
      .prepare<[number, number, number], QueuePageCols>(
        'SELECT q.seq, q.flags, q.subscription_ids, q.message_id, q.topic, q.received_at, q.expires_at, q.properties, ' +
          `CASE WHEN q.flags & ${F_STATE_MASK} = ${RELEASED_FLAGS} THEN NULL ELSE q.payload END, ` +
          'm.id, m.topic, m.qos, m.retain, m.received_at, m.expires_at, m.properties, ' +
          `CASE WHEN q.flags & ${F_STATE_MASK} = ${RELEASED_FLAGS} THEN NULL ELSE m.payload END, q.size ` +
          'FROM queue q LEFT JOIN messages m ON q.shared = 1 AND m.id = q.message_id ' +
          'WHERE q.sid = ? AND q.seq >= ? ORDER BY q.seq LIMIT ?',
      )
      .raw(),
    // On the partial index queue_expiry alone (expires_at <= ? implies its IS NOT NULL).
    expiredEntries: db
      .prepare<[number, number, number, number], [number, number]>(
        'SELECT seq, size FROM queue INDEXED BY queue_expiry WHERE sid = ? AND expires_at <= ? AND seq > ? ORDER BY expires_at, seq LIMIT ?',
      )
      .raw(),
    loadSessions: db.prepare<[], SessionRow>('SELECT * FROM sessions ORDER BY sid'),
    loadSubscriptions: db.prepare<[], SubscriptionRow>('SELECT * FROM subscriptions ORDER BY sid, filter'),
    loadInbound: db.prepare<[], [number, number]>('SELECT sid, packet_id FROM inbound_qos2 ORDER BY sid, packet_id').raw(),
    loadRetained: db
      .prepare<[], MessageCols>(`SELECT ${MESSAGE_COLS} FROM retained r JOIN messages m ON m.id = r.message_id ORDER BY r.topic`)
      .raw(),
    maxMessageId: db.prepare<[], number | null>('SELECT max(id) FROM messages').pluck(),
    maxIdWritten: db.prepare<[], number | null>("SELECT value FROM meta WHERE key = 'max_message_id'").pluck(),
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
