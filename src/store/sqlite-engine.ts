// The database half of the SQLite store: it runs in a worker thread
// (sqlite-worker.ts) that owns the database connection, so that no SQLite
// work (commits and their fsyncs, deletions of large queues, WAL checkpoints,
// reads) runs on the broker's event loop. sqlite-store.ts, on the broker's
// thread, builds the batches and sends them here (sqlite-wire.ts).
//
// Schema (version 3, see migrations.ts): a message referred to by exactly one
// queue entry of a batch is written inline in that queue row; one referred to
// more than once (fan-out, retained) is written once to `messages` with a
// reference count, and its queue rows point to it (`shared`).
//
// Reference counting of shared messages: a commit first adds, for every shared
// message of the batch, the number of references the batch creates (upsert);
// then it applies the operations in order. Before it deletes queue rows (a
// dequeue, a session's queue), it subtracts their references from the messages
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
// Deleting a session: its sessions row, subscriptions and inbound ids go in
// the commit, with the first PURGE_CHUNK rows of its queue; if more remain, its
// sid goes to the table `purge` in the same transaction, and the rest of the
// queue is deleted PURGE_CHUNK rows per transaction between the requests that
// come (setImmediate: a commit waits for one chunk at most, never for the whole
// queue). A session created again with the same client id has a new sid, so it
// starts empty; after a crash, open() continues the purge from the table, and
// nothing can load the old rows (no sessions row refers to their sid).
//
// Durability: journal_mode=WAL. 'process' (default): synchronous=NORMAL, a
// commit is in the WAL (the OS has it) when it returns, which survives a
// crash or kill -9 of the process but not necessarily a power loss. 'power':
// synchronous=FULL, the WAL is fsynced at every commit. WAL auto-checkpoints
// run here too, inside a commit of the worker.
//
// The database is opened with locking_mode=EXCLUSIVE: a second process (for
// example a second broker on the same dataDir) cannot open it meanwhile.

import { closeSync, mkdirSync, openSync, readSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';
import { APPLICATION_ID, migrate, readVersion, SCHEMA_VERSION } from './migrations.js';
import { QueueState, StoreError } from './types.js';
import { E_STRIDE, F_MSG_QOS_SHIFT, F_MSG_RETAIN, F_STATE_MASK, F_STATE_SHIFT, K, M_STRIDE, PE_STRIDE, PM_STRIDE, T_STRIDE, type StorageCounts, type WireBatch, type WirePage, type WireSession } from './sqlite-wire.js';

type Db = BetterSqlite3.Database;
type Stmt<P extends unknown[], R = unknown> = BetterSqlite3.Statement<P, R>;

/** Settings in force, for logs and tests. */
export interface SqliteDiagnostics {
  path: string;
  schemaVersion: number;
  journalMode: string;
  /** 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA. */
  synchronous: number;
  lockingMode: string;
}

/** What open() loads, as sent to the broker's thread (payloads and properties are decoded there). */
export interface WireLoaded {
  sessions: {
    clientId: string;
    protocolVersion: number;
    expiryInterval: number;
    disconnectedAt: number | null;
    will: { topic: string; payload: Uint8Array; qos: number; retain: boolean; delay: number; props: string | null } | null;
    subs: { filter: string; qos: number; noLocal: boolean; rap: boolean; rh: number; subId: number | null }[];
    inbound: number[];
    count: number;
    bytes: number;
  }[];
  keys: WireSession[];
  retained: { id: number; topic: string; payload: Uint8Array; qos: number; retain: boolean; recv: number; exp: number | null; props: string | null }[];
  nextMessageId: number;
  nextSid: number;
  diagnostics: SqliteDiagnostics;
}

const SQLITE_MAGIC = Buffer.from('SQLite format 3\0', 'latin1');
/** Pages of SQLite cache (negative: KiB). Part of the fixed working set. */
const CACHE_SIZE_KIB = 16384;
/** Checkpoint the WAL into the database every this many pages (default 1000). */
const WAL_AUTOCHECKPOINT_PAGES = 4000;
const JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024;
/** Queue rows of a deleted session deleted per transaction. */
export const PURGE_CHUNK = 2000;

const requireCjs = createRequire(import.meta.url);
let driver: typeof BetterSqlite3 | undefined;
function loadDriver(): typeof BetterSqlite3 {
  driver ??= requireCjs('better-sqlite3') as typeof BetterSqlite3;
  return driver;
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
const RELEASED_FLAGS = QueueState.Released << F_STATE_SHIFT;

function b(v: boolean): number {
  return v ? 1 : 0;
}
/** Per touched session of the batch being applied: changes of its queue statistics. */
interface Delta {
  count: number;
  bytes: number;
}

export class SqliteEngine {
  private db: Db | null = null;
  private st: Statements | null = null;
  private readonly txn: (batches: WireBatch[]) => void;
  private maxIdWritten = 0;
  /** Deleted sessions whose queue rows are still being removed (also in the table purge). */
  private readonly purging: number[] = [];
  /** Sids the transaction being applied adds to purge. */
  private readonly newPurges: number[] = [];
  /** Batches whose commit failed: applied again, first, by the next commit (they stay in order). */
  private failed: WireBatch[] = [];
  // Per batch being applied.
  private deltas: Delta[] = [];
  private readonly pairT: number[] = [];
  private readonly pairSid: number[] = [];
  private readonly pairSeq: number[] = [];

  constructor(
    readonly path: string,
    private readonly dataDir: string,
    private readonly durability: 'process' | 'power',
  ) {
    this.txn = (batches) => {
      const db = this.db!;
      db.transaction(() => {
        for (const b of batches) this.apply(b);
      })();
    };
  }

  open(): WireLoaded {
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
      this.db = db;
      return this.load();
    } catch (err) {
      this.st = null;
      this.db = null;
      try {
        db.close();
      } catch {
        // already failing
      }
      throw err instanceof StoreError ? err : mapError(err, path, 'open');
    }
  }

  /** Commit the batches that failed before and this one (if any) as one transaction. */
  commit(batch: WireBatch | null): void {
    const db = this.openDb();
    void db;
    const batches = this.failed;
    if (batch !== null) batches.push(batch);
    if (batches.length === 0) return;
    this.newPurges.length = 0;
    try {
      this.txn(batches);
    } catch (err) {
      // Kept, in order, for the next commit; none of it is applied.
      this.newPurges.length = 0;
      this.failed = batches;
      throw err instanceof StoreError ? err : mapError(err, this.path, 'commit');
    }
    this.failed = [];
    for (const b of batches) if (b.maxId > this.maxIdWritten) this.maxIdWritten = b.maxId;
    for (const sid of this.newPurges) if (!this.purging.includes(sid)) this.purging.push(sid);
    this.newPurges.length = 0;
  }

  /** Commit what failed before (a read must see it); throws if that fails again. */
  private retryFailed(): void {
    if (this.failed.length > 0) this.commit(null);
  }

  /** A page of a session's queue (see Store.readQueue); maxBytes Infinity: no byte bound. */
  read(sid: number, fromSeq: number, limit: number, maxBytes: number): WirePage {
    this.openDb();
    this.retryFailed();
    const st = this.st!;
    const lim = Math.min(Math.floor(limit), 0x7fffffff);
    let rows: (QueueCols | QueuePageCols)[];
    if (maxBytes === Infinity) rows = st.readQueue.all(sid, fromSeq, lim);
    else {
      // Row by row, stopping at the first entry that would go past maxBytes
      // (its payload is read and dropped: one row at most).
      rows = [];
      let bytes = 0;
      for (const r of st.readQueuePage.iterate(sid, fromSeq, lim)) {
        const size = (r[1] & F_STATE_MASK) === RELEASED_FLAGS ? 0 : r[QUEUE_SIZE_COL];
        if (rows.length > 0 && bytes + size > maxBytes) break;
        bytes += size;
        rows.push(r);
      }
    }
    const n = rows.length;
    const page: WirePage = {
      nE: 0,
      eNum: new Float64Array(n * PE_STRIDE),
      eSubIdx: [],
      eSubIds: [],
      nM: 0,
      mNum: new Float64Array(n * PM_STRIDE),
      mTopic: [],
      mPropsIdx: [],
      mProps: [],
      payload: EMPTY_AB,
    };
    const eNum = page.eNum;
    const mNum = page.mNum;
    const payloads: (Buffer | null)[] = [];
    let total = 0;
    let nE = 0;
    let nM = 0;
    // Entries of one page that refer to the same stored message share one message.
    let byId: Map<number, number> | null = null;
    for (let i = 0; i < n; i++) {
      const r = rows[i]!;
      const flags = r[1];
      let mi: number | undefined;
      if (r[4] === null) {
        // Shared: the messages row (missing if the file is damaged: skip the entry, as v1's inner join did).
        if (r[QUEUE_SHARED_COLS] === null) continue;
        mi = (byId ??= new Map()).get(r[3]);
        if (mi === undefined) {
          const c = QUEUE_SHARED_COLS;
          mi = nM++;
          byId.set(r[3], mi);
          const o = mi * PM_STRIDE;
          mNum[o] = r[c] as number;
          mNum[o + 1] = r[c + 2] as number;
          mNum[o + 2] = r[c + 3] as number;
          mNum[o + 3] = r[c + 4] as number;
          mNum[o + 4] = (r[c + 5] as number | null) ?? NaN;
          page.mTopic.push(r[c + 1] as string);
          const props = r[c + 6] as string | null;
          if (props !== null) {
            page.mPropsIdx.push(mi);
            page.mProps.push(props);
          }
          const p = r[c + 7] as Buffer | null;
          payloads.push(p);
          total += p === null ? 0 : p.length;
        }
      } else {
        mi = nM++;
        const o = mi * PM_STRIDE;
        mNum[o] = r[3];
        mNum[o + 1] = (flags >> F_MSG_QOS_SHIFT) & 3;
        mNum[o + 2] = (flags & F_MSG_RETAIN) !== 0 ? 1 : 0;
        mNum[o + 3] = r[5] as number;
        mNum[o + 4] = r[6] ?? NaN;
        page.mTopic.push(r[4]);
        if (r[7] !== null) {
          page.mPropsIdx.push(mi);
          page.mProps.push(r[7]);
        }
        payloads.push(r[8]);
        total += r[8] === null ? 0 : r[8].length;
      }
      if (r[2] !== null) {
        page.eSubIdx.push(nE);
        page.eSubIds.push(r[2]);
      }
      const o = nE++ * PE_STRIDE;
      eNum[o] = r[0];
      eNum[o + 1] = flags;
      eNum[o + 2] = mi;
    }
    page.nE = nE;
    page.nM = nM;
    // The payloads, packed into one buffer that goes to the broker's thread without a copy.
    const buf = Buffer.allocUnsafeSlow(total);
    let off = 0;
    for (let mi = 0; mi < nM; mi++) {
      const p = payloads[mi]!;
      const o = mi * PM_STRIDE;
      mNum[o + 5] = off;
      if (p === null) mNum[o + 6] = 0;
      else {
        p.copy(buf, off);
        mNum[o + 6] = p.length;
        off += p.length;
      }
    }
    page.payload = buf.buffer as ArrayBuffer;
    return page;
  }

  /** seq and size of up to `limit` entries of a session after afterSeq whose message expired at `now`. */
  expired(sid: number, now: number, afterSeq: number, limit: number): [number, number][] {
    this.openDb();
    this.retryFailed();
    return this.st!.expiredEntries.all(sid, now, afterSeq, Math.min(Math.floor(limit), 0x7fffffff));
  }

  /** True while deleted sessions still have queue rows to delete (purgeStep() deletes the next chunk). */
  get purgePending(): boolean {
    return this.purging.length > 0 && this.db !== null;
  }

  /** Delete the next PURGE_CHUNK queue rows of a deleted session, in a transaction of its own. */
  purgeStep(): void {
    const db = this.openDb();
    const sid = this.purging[0];
    if (sid === undefined) return;
    try {
      db.transaction(() => {
        if (!this.purgeChunk(sid)) {
          this.st!.purgeDone.run(sid);
          this.purging.shift();
        }
      })();
    } catch (err) {
      throw err instanceof StoreError ? err : mapError(err, this.path, 'commit');
    }
  }

  inspect(): StorageCounts {
    const db = this.openDb();
    const count = (table: string): number => db.prepare(`SELECT count(*) FROM ${table}`).pluck().get() as number;
    return { purging: this.purging.length, queueRows: count('queue'), messageRows: count('messages') };
  }

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

  /** Commit what is pending (the purge continues at the next open), checkpoint and close. */
  close(): void {
    const db = this.db;
    if (db === null) return;
    let failure: unknown;
    try {
      this.retryFailed();
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
    try {
      db.close();
    } catch (err) {
      failure ??= mapError(err, this.path, 'close');
    }
    if (failure !== undefined) throw failure;
  }

  private openDb(): Db {
    if (this.db === null) throw new StoreError('PETREL_ERR_STORE_CLOSED', 'the store is closed');
    return this.db;
  }

  private load(): WireLoaded {
    const st = this.st!;
    const db = this.db!;
    const out: WireLoaded = { sessions: [], keys: [], retained: [], nextMessageId: 1, nextSid: 1, diagnostics: this.diagnostics() };
    const bySid = new Map<number, WireLoaded['sessions'][number]>();
    let maxSid = 0;
    for (const r of st.loadSessions.all()) {
      const loaded: WireLoaded['sessions'][number] = {
        clientId: r.client_id,
        protocolVersion: r.protocol_version,
        expiryInterval: r.expiry_interval,
        disconnectedAt: r.disconnected_at,
        will:
          r.will_topic === null
            ? null
            : {
                topic: r.will_topic,
                payload: r.will_payload ?? Buffer.alloc(0),
                qos: r.will_qos ?? 0,
                retain: r.will_retain === 1,
                delay: r.will_delay ?? 0,
                props: r.will_properties,
              },
        subs: [],
        inbound: [],
        count: r.queue_count,
        bytes: r.queue_bytes,
      };
      out.sessions.push(loaded);
      out.keys.push({ clientId: r.client_id, sid: r.sid, lastSeq: r.last_seq, sentSeq: r.sent_seq });
      bySid.set(r.sid, loaded);
      if (r.sid > maxSid) maxSid = r.sid;
    }
    for (const r of st.loadSubscriptions.all()) {
      bySid.get(r.sid)?.subs.push({
        filter: r.filter,
        qos: r.qos,
        noLocal: r.no_local !== 0,
        rap: r.retain_as_published !== 0,
        rh: r.retain_handling,
        subId: r.subscription_id,
      });
    }
    for (const [sid, packetId] of st.loadInbound.all()) bySid.get(sid)?.inbound.push(packetId);
    for (const r of st.loadRetained.all()) {
      out.retained.push({ id: r[0], topic: r[1], qos: r[2], retain: r[3] !== 0, recv: r[4], exp: r[5], props: r[6], payload: r[7] ?? Buffer.alloc(0) });
    }
    // Deleted sessions whose rows are still there: their sids stay taken until the purge is done.
    for (const sid of db.prepare('SELECT sid FROM purge ORDER BY sid').pluck().all() as number[]) {
      this.purging.push(sid);
      if (sid > maxSid) maxSid = sid;
    }
    out.nextSid = maxSid + 1;
    this.maxIdWritten = st.maxIdWritten.get() ?? 0;
    out.nextMessageId = Math.max(this.maxIdWritten, st.maxMessageId.get() ?? 0) + 1;
    return out;
  }

  /**
   * Deletes up to PURGE_CHUNK queue rows of a (deleted) session, in seq order,
   * with the references they hold. False when none are left.
   */
  private purgeChunk(sid: number): boolean {
    const st = this.st!;
    const last = st.purgeBound.get(sid, PURGE_CHUNK - 1);
    const bound = last ?? Number.MAX_SAFE_INTEGER;
    const r = st.rangeStats.get(sid, 0, bound)!;
    if (r[0] === 0) return false;
    if (r[2]! > 0) {
      st.unrefRange.run(sid, 0, bound);
      st.dropUnrefRange.run(sid, 0, bound);
    }
    st.deleteRange.run(sid, 0, bound);
    return last !== undefined;
  }

  /**
   * The body of the commit transaction for one batch:
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
  private apply(bt: WireBatch): void {
    const st = this.st!;
    st.sharedWriter.reset();
    st.inlineWriter.reset();
    st.plainWriter.reset();
    st.messageWriter.reset();
    const ab = bt.payload;
    const payloadOf = (off: number, len: number): Buffer => (ab === null || len === 0 ? EMPTY : Buffer.from(ab, off, len));
    const nM = bt.nM;
    const mNum = bt.mNum;
    const props: (string | null)[] = new Array<string | null>(nM).fill(null);
    for (let k = 0; k < bt.mPropsIdx.length; k++) props[bt.mPropsIdx[k]!] = bt.mProps[k]!;
    const exp = (mi: number): number | null => {
      const x = mNum[mi * M_STRIDE + 4]!;
      return Number.isNaN(x) ? null : x;
    };
    const mw = st.messageWriter;
    for (let mi = 0; mi < nM; mi++) {
      const o = mi * M_STRIDE;
      const refs = mNum[o + 7]!;
      if (refs === 0) continue;
      mw.add(mNum[o]);
      mw.add(refs);
      mw.add(bt.mTopic[mi]);
      mw.add(mNum[o + 1]);
      mw.add(mNum[o + 2]);
      mw.add(mNum[o + 3]);
      mw.add(exp(mi));
      mw.add(props[mi]);
      mw.add(payloadOf(mNum[o + 5]!, mNum[o + 6]!));
      mw.endRow();
    }
    mw.flush();
    const ops = bt.ops;
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      switch (op.k) {
        case K.Release:
          st.releaseQueue.run(op.sid, op.seq);
          break;
        case K.PutSession: {
          const w = op.will;
          st.putSession.run(
            op.sid,
            op.clientId,
            op.pv,
            op.exp,
            op.disc,
            w === null ? null : w.topic,
            w === null ? null : w.qos,
            w === null ? null : w.retain,
            w === null ? null : w.delay,
            w === null ? null : w.props,
            w === null ? null : payloadOf(w.off, w.len),
          );
          break;
        }
        case K.DeleteSession: {
          const sid = op.sid;
          st.deleteSessionSubs.run(sid);
          st.deleteSessionInbound.run(sid);
          st.deleteSession.run(sid);
          // The queue: a first chunk now, the rest later (see the top of the file).
          if (this.purgeChunk(sid)) {
            st.purgeAdd.run(sid);
            // (purged only once this transaction is committed)
            this.newPurges.push(sid);
          }
          break;
        }
        case K.PutSub:
          st.putSub.run(op.sid, op.filter, op.qos, op.nl, op.rap, op.rh, op.subId);
          break;
        case K.DeleteSub:
          st.deleteSub.run(op.sid, op.filter);
          break;
        case K.AddInbound:
          st.addInbound.run(op.sid, op.pid);
          break;
        case K.RemoveInbound:
          st.removeInbound.run(op.sid, op.pid);
          break;
        case K.Retain:
          st.deleteRetained.run(op.topic);
          if (op.msg >= 0) st.insertRetained.run(op.topic, mNum[op.msg * M_STRIDE]!);
          break;
      }
    }
    const nT = bt.nT;
    const tNum = bt.tNum;
    const deltas = this.deltas;
    for (let i = 0; i < nT; i++) {
      const d = deltas[i];
      if (d === undefined) deltas.push({ count: 0, bytes: 0 });
      else {
        d.count = 0;
        d.bytes = 0;
      }
    }
    this.pairT.length = 0;
    this.pairSid.length = 0;
    this.pairSeq.length = 0;
    for (let i = 0; i < nT; i++) {
      const o = i * T_STRIDE;
      const from = tNum[o + 3]!;
      const to = tNum[o + 4]!;
      if (to > from) this.applyDequeues(i, tNum[o]!, Array.from(bt.dSeq.subarray(from, to)));
    }
    const pairs = this.pairSeq.length;
    for (let k = 0; k < pairs; k += DELETES_PER_STATEMENT) this.dequeuePairs(k, Math.min(DELETES_PER_STATEMENT, pairs - k));
    const nE = bt.nE;
    const eNum = bt.eNum;
    const subIds: (string | null)[] = new Array<string | null>(nE).fill(null);
    for (let k = 0; k < bt.eSubIdx.length; k++) subIds[bt.eSubIdx[k]!] = bt.eSubIds[k]!;
    for (let i = 0; i < nE; i++) {
      const eo = i * E_STRIDE;
      const t = eNum[eo]!;
      const seq = eNum[eo + 1]!;
      const mi = eNum[eo + 2]!;
      const flags = eNum[eo + 3]!;
      const sid = tNum[t * T_STRIDE]!;
      const mo = mi * M_STRIDE;
      const size = mNum[mo + 6]!;
      const ids = subIds[i]!;
      if (mNum[mo + 7]! > 0) {
        const w = st.sharedWriter;
        w.add(sid);
        w.add(seq);
        w.add(mNum[mo]);
        w.add(size);
        w.add(flags);
        w.add(ids);
        w.add(exp(mi));
        w.endRow();
      } else if (Number.isNaN(mNum[mo + 4]!) && props[mi] === null && ids === null) {
        const w = st.plainWriter;
        w.add(sid);
        w.add(seq);
        w.add(mNum[mo]);
        w.add(size);
        w.add(flags);
        w.add(bt.mTopic[mi]);
        w.add(mNum[mo + 3]);
        w.add(payloadOf(mNum[mo + 5]!, size));
        w.endRow();
      } else {
        const w = st.inlineWriter;
        w.add(sid);
        w.add(seq);
        w.add(mNum[mo]);
        w.add(size);
        w.add(flags);
        w.add(ids);
        w.add(bt.mTopic[mi]);
        w.add(mNum[mo + 3]);
        w.add(exp(mi));
        w.add(props[mi]);
        w.add(payloadOf(mNum[mo + 5]!, size));
        w.endRow();
      }
      const d = deltas[t]!;
      d.count++;
      d.bytes += size;
    }
    st.sharedWriter.flush();
    st.plainWriter.flush();
    st.inlineWriter.flush();
    const sw = st.statsWriter;
    sw.reset();
    for (let i = 0; i < nT; i++) {
      const o = i * T_STRIDE;
      sw.add(tNum[o]);
      sw.add(tNum[o + 1]);
      sw.add(tNum[o + 2]);
      sw.add(deltas[i]!.count);
      sw.add(deltas[i]!.bytes);
      sw.endRow();
    }
    sw.flush();
    if (bt.maxId > this.maxIdWritten) st.setMaxId.run(bt.maxId);
  }

  /**
   * Deletes the entries `seqs` of a session: each run of consecutive seqs by a
   * range, the other seqs are gathered with those of the other sessions (dequeuePairs).
   */
  private applyDequeues(t: number, sid: number, seqs: number[]): void {
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
      if (last > first) this.dequeueRange(t, sid, first, last);
      else {
        this.pairT.push(t);
        this.pairSid.push(sid);
        this.pairSeq.push(first);
      }
      i = j;
    }
  }

  private dequeueRange(t: number, sid: number, first: number, last: number): void {
    const st = this.st!;
    const r = st.rangeStats.get(sid, first, last)!;
    const count = r[0];
    if (count === 0) return;
    if (r[2]! > 0) {
      st.unrefRange.run(sid, first, last);
      st.dropUnrefRange.run(sid, first, last);
    }
    st.deleteRange.run(sid, first, last);
    const d = this.deltas[t]!;
    d.count -= count;
    d.bytes -= r[1]!;
  }

  /** Deletes the gathered (session, seq) pairs from..from+n-1 in one statement (with the statistics per session). */
  private dequeuePairs(from: number, n: number): void {
    const st = this.st!;
    const args = st.pairArgs(n);
    for (let i = 0; i < n; i++) {
      args[2 * i] = this.pairSid[from + i];
      args[2 * i + 1] = this.pairSeq[from + i];
    }
    const rows = st.pairStats(n).all(...args);
    if (rows.length === 0) return;
    let shared = 0;
    for (let r = 0; r < rows.length; r++) {
      const [sid, count, bytes, sh] = rows[r]!;
      shared += sh!;
      // The session of this sid among the pairs (rows come by sid; n is small).
      for (let i = from; i < from + n; i++) {
        if (this.pairSid[i] === sid) {
          const d = this.deltas[this.pairT[i]!]!;
          d.count -= count;
          d.bytes -= bytes!;
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

const EMPTY = Buffer.alloc(0);
const EMPTY_AB = new ArrayBuffer(0);

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
  /** The seq of a session's queue row at an offset in seq order (the end of a purge chunk). */
  purgeBound: Stmt<[number, number], number>;
  purgeAdd: Stmt<[number]>;
  purgeDone: Stmt<[number]>;
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
    purgeBound: db.prepare<[number, number], number>('SELECT seq FROM queue WHERE sid = ? ORDER BY seq LIMIT 1 OFFSET ?').pluck(),
    purgeAdd: db.prepare('INSERT OR IGNORE INTO purge (sid) VALUES (?)'),
    purgeDone: db.prepare('DELETE FROM purge WHERE sid = ?'),
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
