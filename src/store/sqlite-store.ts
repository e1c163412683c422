// The SQLite store (embedded default): durable, one file in dataDir.
//
// Two halves. This one runs on the broker's thread and only keeps the batch:
// writes are recorded in memory and return at once. The database belongs to a
// worker thread (sqlite-worker.ts, sqlite-engine.ts), so that no SQLite work
// (a commit and its fsync, the deletion of a large queue, a WAL checkpoint, a
// read) ever runs on the broker's event loop: commit() sends the batch to the
// worker, which applies it in one transaction (group commit), and resolves
// when the worker answers that it is committed (durable per the durability
// setting). Requests are answered in the order they were made, so a read
// (readQueue, expireQueue) sends the pending batch first and then sees every
// write made before it. The batch is the only place where queued entries or
// payloads live in the broker's heap: everything committed is read back from
// the file by readQueue, page by page. What stays in memory is one small
// record per session (its integer key and queue sequence numbers).
//
// Sending a batch copies its payloads once into one buffer that is
// transferred to the worker (no second copy); a page read comes back the
// same way, its entries' payloads being views of one buffer per page.
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
// A commit that fails keeps its batch in the worker, which applies it again,
// first, with the next commit (or before the next read).

import { resolve as resolvePath, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { decodeIds, decodeProperties, encodeIds, encodeProperties } from './serialize.js';
import type { SqliteDiagnostics, WireLoaded } from './sqlite-engine.js';
import {
  F_MSG_QOS_SHIFT,
  F_MSG_RETAIN,
  F_RETAIN,
  F_STATE_MASK,
  F_STATE_SHIFT,
  K,
  type Reply,
  type Request,
  type StorageCounts,
  E_STRIDE,
  M_STRIDE,
  PE_STRIDE,
  PM_STRIDE,
  T_STRIDE,
  type WireBatch,
  type WireError,
  type WireOp,
  type WirePage,
} from './sqlite-wire.js';
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

export type { SqliteDiagnostics } from './sqlite-engine.js';
export type { StorageCounts } from './sqlite-wire.js';

export type Durability = 'process' | 'power';

export interface SqliteStoreOptions {
  /** Directory of the database file; created if missing. */
  dataDir: string;
  /** 'process' (default): survive a crash of the process. 'power': survive a power loss (fsync every commit). */
  durability?: Durability;
  /** Default 'petrel.db'. */
  fileName?: string;
}

const RESOLVED: Promise<void> = Promise.resolve();
const EMPTY = Buffer.alloc(0);

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
  /** Index among the sessions of the batch being sent. */
  tIdx: number;
}

interface PutSessionOp { kind: typeof K.PutSession; s: SessInfo; clientId: string; record: SessionRecord }
interface DeleteSessionOp { kind: typeof K.DeleteSession; s: SessInfo }
interface PutSubOp { kind: typeof K.PutSub; s: SessInfo; sub: SubscriptionRecord }
interface DeleteSubOp { kind: typeof K.DeleteSub; s: SessInfo; filter: string }
interface SeqOp { kind: typeof K.Release; s: SessInfo; seq: number }
interface InboundOp { kind: typeof K.AddInbound | typeof K.RemoveInbound; s: SessInfo; packetId: number }
interface RetainOp { kind: typeof K.Retain; topic: string; message: StoredMessage | null }
/** Operations other than enqueues (those are in the batch arrays). */
type Op = PutSessionOp | DeleteSessionOp | PutSubOp | DeleteSubOp | SeqOp | InboundOp | RetainOp;

interface Waiter {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

function b(v: boolean): number {
  return v ? 1 : 0;
}

function toBuffer(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

export class SqliteStore implements Store {
  readonly kind = 'sqlite';
  readonly durable = true;
  /** Absolute path of the database file. */
  readonly path: string;
  readonly durability: Durability;
  private readonly dataDir: string;

  private worker: Worker | null = null;
  /** open() succeeded and close() was not called. */
  private ready = false;
  private closed = false;
  /** Set when the worker died: every later request fails with it. */
  private broken: StoreError | null = null;
  private diag: SqliteDiagnostics | null = null;
  /** Requests sent and not answered, oldest first (answers come in order). */
  private waiting: Waiter[] = [];
  private waitHead = 0;
  /** The last commit sent: an empty commit() resolves with it. */
  private lastWrite: Promise<void> = RESOLVED;
  /** The last commit sent failed (its batch waits in the worker to be applied again). */
  private writeFailed = false;

  private readonly sessions = new Map<string, SessInfo>();
  private nextSid = 1;

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

  constructor(options: SqliteStoreOptions) {
    if (typeof options.dataDir !== 'string' || options.dataDir === '') throw new TypeError('SqliteStore: dataDir must be a non-empty path');
    const durability = options.durability ?? 'process';
    if (durability !== 'process' && durability !== 'power') {
      throw new TypeError(`SqliteStore: durability must be 'process' or 'power', got ${JSON.stringify(durability)}`);
    }
    this.durability = durability;
    this.dataDir = resolvePath(options.dataDir);
    this.path = join(this.dataDir, options.fileName ?? 'petrel.db');
  }

  // ---- open / close ----

  async open(): Promise<LoadedState> {
    if (this.closed) throw closedError();
    if (this.worker !== null) throw new Error('SqliteStore: open() called twice');
    const worker = new Worker(new URL('./sqlite-worker.js', import.meta.url), {
      workerData: { path: this.path, dataDir: this.dataDir, durability: this.durability },
      // Not the process's flags (--input-type, --test, ... do not apply to it).
      execArgv: [],
    });
    this.worker = worker;
    worker.on('message', (reply: Reply) => {
      if (this.worker === worker) this.answer(reply);
    });
    worker.on('error', (err) => {
      if (this.worker === worker) this.die(new StoreError('PETREL_ERR_STORE_IO', `${this.path}: the store's worker failed: ${err.message}`, { cause: err }));
    });
    worker.on('exit', (code) => {
      if (this.worker === worker) this.die(new StoreError('PETREL_ERR_STORE_IO', `${this.path}: the store's worker exited (code ${code})`));
    });
    let loaded: WireLoaded;
    try {
      loaded = (await this.request({ t: 'open', path: this.path, dataDir: this.dataDir, durability: this.durability })) as WireLoaded;
    } catch (err) {
      this.worker = null;
      this.broken = null;
      this.waiting = [];
      this.waitHead = 0;
      await worker.terminate();
      throw err;
    }
    this.ready = true;
    this.diag = loaded.diagnostics;
    return this.load(loaded);
  }

  async close(): Promise<void> {
    if (this.closed) throw closedError();
    this.closed = true;
    const worker = this.worker;
    if (worker === null || !this.ready) return;
    this.ready = false;
    if (this.hasBatch()) void this.send();
    let failure: unknown;
    try {
      await this.request({ t: 'close' });
    } catch (err) {
      failure = err;
    }
    this.broken ??= closedError();
    await worker.terminate();
    if (failure !== undefined) throw failure;
  }

  /** Row counts (tests, bench): O(rows). Sees every write made before it. */
  async inspect(): Promise<StorageCounts> {
    this.openDb();
    if (this.hasBatch()) void this.send();
    return (await this.request({ t: 'inspect' })) as StorageCounts;
  }

  /** Settings in force (for logs and tests). */
  diagnostics(): SqliteDiagnostics {
    this.openDb();
    return { ...this.diag! };
  }

  private load(w: WireLoaded): LoadedState {
    const sessions: LoadedSession[] = [];
    for (let i = 0; i < w.sessions.length; i++) {
      const r = w.sessions[i]!;
      const k = w.keys[i]!;
      let will: StoredWill | null = null;
      if (r.will !== null) {
        will = { topic: r.will.topic, payload: toBuffer(r.will.payload), qos: r.will.qos as QoS, retain: r.will.retain, delayInterval: r.will.delay };
        if (r.will.props !== null) will.properties = decodeProperties(r.will.props);
      }
      sessions.push({
        session: {
          clientId: r.clientId,
          protocolVersion: r.protocolVersion as ProtocolVersion,
          expiryInterval: r.expiryInterval,
          disconnectedAt: r.disconnectedAt,
          will,
        },
        subscriptions: r.subs.map((x) => {
          const sub: SubscriptionRecord = { filter: x.filter, qos: x.qos as QoS, noLocal: x.noLocal, retainAsPublished: x.rap, retainHandling: x.rh as 0 | 1 | 2 };
          if (x.subId !== null) sub.subscriptionId = x.subId;
          return sub;
        }),
        inboundQos2: r.inbound,
        queue: { count: r.count, bytes: r.bytes, lastSeq: k.lastSeq, sentSeq: k.sentSeq },
      });
      this.sessions.set(k.clientId, newSessInfo(k.sid, k.lastSeq, k.sentSeq));
    }
    this.nextSid = w.nextSid;
    const retained = w.retained.map((r) => {
      const m: StoredMessage = { id: r.id, topic: r.topic, payload: toBuffer(r.payload), qos: r.qos as QoS, retain: r.retain, receivedAt: r.recv };
      if (r.exp !== null) m.expiresAt = r.exp;
      if (r.props !== null) m.properties = decodeProperties(r.props);
      return m;
    });
    return { sessions, retained, nextMessageId: w.nextMessageId };
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
    if (!this.ready) return Promise.reject(this.closed ? closedError() : notOpenError());
    if (this.hasBatch() || this.writeFailed) return this.send();
    return this.lastWrite;
  }

  // ---- reads ----

  async readQueue(clientId: string, fromSeq: number, limit: number, maxBytes?: number): Promise<QueueEntry[]> {
    this.openDb();
    // Sent first: the read sees it.
    if (this.hasBatch()) void this.send();
    const s = this.sessions.get(clientId);
    if (s === undefined || !(limit > 0)) return [];
    const page = (await this.request({ t: 'read', sid: s.sid, fromSeq, limit, maxBytes: maxBytes ?? Infinity })) as WirePage;
    const ab = page.payload;
    const mNum = page.mNum;
    const nM = page.nM;
    const messages: StoredMessage[] = new Array<StoredMessage>(nM);
    for (let mi = 0; mi < nM; mi++) {
      const o = mi * PM_STRIDE;
      const len = mNum[o + 6]!;
      const m: StoredMessage = {
        id: mNum[o]!,
        topic: page.mTopic[mi]!,
        payload: len === 0 ? Buffer.alloc(0) : Buffer.from(ab, mNum[o + 5]!, len),
        qos: mNum[o + 1]! as QoS,
        retain: mNum[o + 2] !== 0,
        receivedAt: mNum[o + 3]!,
      };
      const exp = mNum[o + 4]!;
      if (!Number.isNaN(exp)) m.expiresAt = exp;
      messages[mi] = m;
    }
    for (let k = 0; k < page.mPropsIdx.length; k++) messages[page.mPropsIdx[k]!]!.properties = decodeProperties(page.mProps[k]!);
    const n = page.nE;
    const eNum = page.eNum;
    const out = new Array<QueueEntry>(n);
    for (let i = 0; i < n; i++) {
      const o = i * PE_STRIDE;
      const flags = eNum[o + 1]!;
      out[i] = {
        seq: eNum[o]!,
        message: messages[eNum[o + 2]!]!,
        qos: (flags & 3) as QoS,
        retain: (flags & F_RETAIN) !== 0,
        state: ((flags & F_STATE_MASK) >> F_STATE_SHIFT) as QueueState,
      };
    }
    for (let k = 0; k < page.eSubIdx.length; k++) out[page.eSubIdx[k]!]!.subscriptionIds = decodeIds(page.eSubIds[k]!);
    return out;
  }

  async expireQueue(clientId: string, now: number, limit: number): Promise<ExpiredStats> {
    this.openDb();
    if (this.hasBatch()) void this.send();
    const s = this.sessions.get(clientId);
    let count = 0;
    let bytes = 0;
    if (s === undefined || !(limit > 0)) return { count, bytes };
    const rows = (await this.request({ t: 'expire', sid: s.sid, now, afterSeq: s.sentSeq, limit })) as [number, number][];
    // Deleted or replaced meanwhile: nothing of it to remove.
    if (this.sessions.get(clientId) !== s) return { count, bytes };
    for (let i = 0; i < rows.length; i++) {
      const [seq, size] = rows[i]!;
      // Sent meanwhile: it stays.
      if (seq <= s.sentSeq) continue;
      this.dequeue(clientId, seq);
      count++;
      bytes += size;
    }
    return { count, bytes };
  }

  // ---- internals ----

  private openDb(): void {
    if (!this.ready) throw this.closed ? closedError() : notOpenError();
  }

  private hasBatch(): boolean {
    return this.ops.length > 0 || this.touched.length > 0;
  }

  /** Send a request to the worker; resolves with its answer. */
  private request(req: Request, transfer?: ArrayBuffer[]): Promise<unknown> {
    if (this.broken !== null) return Promise.reject(this.broken);
    const worker = this.worker!;
    return new Promise((resolve, reject) => {
      // Keep the process alive while an answer is awaited (and not when idle).
      if (this.waiting.length === this.waitHead) worker.ref();
      this.waiting.push({ resolve, reject });
      worker.postMessage(req, transfer);
    });
  }

  private answer(reply: Reply): void {
    const w = this.waiting[this.waitHead++];
    if (this.waitHead === this.waiting.length) {
      this.waiting = [];
      this.waitHead = 0;
      this.worker?.unref();
    }
    if (w === undefined) return;
    if (reply.ok) w.resolve(reply.value);
    else w.reject(errorFrom(reply.error));
  }

  /** The worker is gone: every request waiting and every later one fails. */
  private die(err: StoreError): void {
    this.broken ??= err;
    const waiting = this.waiting.slice(this.waitHead);
    this.waiting = [];
    this.waitHead = 0;
    for (const w of waiting) w.reject(this.broken);
  }

  /** Send the batch to be committed (and start a new one). Resolves when it is committed. */
  private send(): Promise<void> {
    const batch = this.hasBatch() ? this.wireBatch() : null;
    let transfer: ArrayBuffer[] | undefined;
    if (batch !== null) {
      transfer = [batch.mNum.buffer as ArrayBuffer, batch.eNum.buffer as ArrayBuffer, batch.tNum.buffer as ArrayBuffer, batch.dSeq.buffer as ArrayBuffer];
      if (batch.payload !== null) transfer.push(batch.payload);
    }
    const p = this.request({ t: 'commit', batch }, transfer) as Promise<void>;
    this.lastWrite = p;
    // (Handled here, so that a commit sent by a read and awaited by no one is no unhandled rejection.)
    p.then(
      () => {
        if (this.lastWrite === p) this.writeFailed = false;
      },
      () => {
        this.writeFailed = true;
      },
    );
    return p;
  }

  /** The batch as sent to the worker; the store starts a new one. */
  private wireBatch(): WireBatch {
    const touched = this.touched;
    const entries = this.eEntry;
    const ops = this.ops;
    let nDeq = 0;
    for (let i = 0; i < touched.length; i++) {
      const dq = touched[i]!.dequeues;
      if (dq !== null && !touched[i]!.deleted) nDeq += dq.length;
    }
    // Upper bounds: a message per enqueue and per retained set.
    const maxM = entries.length + ops.length;
    const bt: WireBatch = {
      ops: [],
      nM: 0,
      mNum: new Float64Array(maxM * M_STRIDE),
      mTopic: [],
      mPropsIdx: [],
      mProps: [],
      nE: 0,
      eNum: new Float64Array(entries.length * E_STRIDE),
      eSubIdx: [],
      eSubIds: [],
      nT: 0,
      tNum: new Float64Array(touched.length * T_STRIDE),
      dSeq: new Float64Array(nDeq),
      maxId: this.batchMaxId,
      payload: null,
    };
    const mNum = bt.mNum;
    const bufs: Buffer[] = [];
    let total = 0;
    let nM = 0;
    const addMessage = (m: StoredMessage): number => {
      const mi = nM++;
      const o = mi * M_STRIDE;
      const len = m.payload.length;
      mNum[o] = m.id;
      mNum[o + 1] = m.qos;
      mNum[o + 2] = m.retain ? 1 : 0;
      mNum[o + 3] = m.receivedAt;
      mNum[o + 4] = m.expiresAt ?? NaN;
      mNum[o + 5] = total;
      mNum[o + 6] = len;
      // (refs, o + 7, counted by the caller)
      bt.mTopic.push(m.topic);
      const props = encodeProperties(m.properties);
      if (props !== null) {
        bt.mPropsIdx.push(mi);
        bt.mProps.push(props);
      }
      if (len > 0) bufs.push(m.payload);
      total += len;
      return mi;
    };
    const tNum = bt.tNum;
    const dSeq = bt.dSeq;
    let nT = 0;
    let d = 0;
    for (let i = 0; i < touched.length; i++) {
      const s = touched[i]!;
      if (s.deleted) continue;
      s.tIdx = nT;
      const o = nT++ * T_STRIDE;
      tNum[o] = s.sid;
      tNum[o + 1] = s.lastSeq;
      tNum[o + 2] = s.sentSeq;
      tNum[o + 3] = d;
      const dq = s.dequeues;
      if (dq !== null) for (let j = 0; j < dq.length; j++) dSeq[d++] = dq[j]!;
      tNum[o + 4] = d;
    }
    bt.nT = nT;
    const multi = this.multi;
    const byId = multi === null ? null : new Map<number, number>();
    const sess = this.eSess;
    const state = this.eState;
    const eNum = bt.eNum;
    let nE = 0;
    for (let i = 0; i < entries.length; i++) {
      const st8 = state[i]!;
      if (st8 === CANCELLED) continue;
      const e = entries[i]!;
      const m = e.message;
      let mi: number | undefined;
      if (byId !== null && multi!.has(m.id)) {
        mi = byId.get(m.id);
        if (mi === undefined) byId.set(m.id, (mi = addMessage(m)));
      } else mi = addMessage(m);
      mNum[mi * M_STRIDE + 7]!++;
      if (e.subscriptionIds !== undefined) {
        bt.eSubIdx.push(nE);
        bt.eSubIds.push(encodeIds(e.subscriptionIds)!);
      }
      const o = nE++ * E_STRIDE;
      eNum[o] = sess[i]!.tIdx;
      eNum[o + 1] = e.seq;
      eNum[o + 2] = mi;
      eNum[o + 3] = e.qos | (e.retain ? F_RETAIN : 0) | (st8 << F_STATE_SHIFT) | (m.qos << F_MSG_QOS_SHIFT) | (m.retain ? F_MSG_RETAIN : 0);
    }
    bt.nE = nE;
    let retained: Set<number> | null = null;
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      let w: WireOp;
      switch (op.kind) {
        case K.PutSession: {
          const r = op.record;
          const will = r.will;
          let ww = null;
          if (will !== null) {
            ww = { topic: will.topic, qos: will.qos, retain: b(will.retain), delay: will.delayInterval, props: encodeProperties(will.properties), off: total, len: will.payload.length };
            bufs.push(will.payload);
            total += will.payload.length;
          }
          w = { k: K.PutSession, sid: op.s.sid, clientId: op.clientId, pv: r.protocolVersion, exp: r.expiryInterval, disc: r.disconnectedAt, will: ww };
          break;
        }
        case K.DeleteSession:
          w = { k: K.DeleteSession, sid: op.s.sid };
          break;
        case K.PutSub: {
          const sub = op.sub;
          w = { k: K.PutSub, sid: op.s.sid, filter: sub.filter, qos: sub.qos, nl: b(sub.noLocal), rap: b(sub.retainAsPublished), rh: sub.retainHandling, subId: sub.subscriptionId ?? null };
          break;
        }
        case K.DeleteSub:
          w = { k: K.DeleteSub, sid: op.s.sid, filter: op.filter };
          break;
        case K.Release:
          w = { k: K.Release, sid: op.s.sid, seq: op.seq };
          break;
        case K.AddInbound:
        case K.RemoveInbound:
          w = { k: op.kind, sid: op.s.sid, pid: op.packetId };
          break;
        case K.Retain: {
          let mi = -1;
          const m = op.message;
          if (m !== null) {
            // (setRetained put its id in multi)
            mi = byId!.get(m.id) ?? -1;
            if (mi < 0) byId!.set(m.id, (mi = addMessage(m)));
            mNum[mi * M_STRIDE + 7]!++;
            (retained ??= new Set()).add(mi);
          }
          w = { k: K.Retain, topic: op.topic, msg: mi };
          break;
        }
      }
      bt.ops.push(w);
    }
    bt.nM = nM;
    // A message referred to once, by one enqueue, is written inline in its queue row.
    for (let mi = 0; mi < nM; mi++) {
      const o = mi * M_STRIDE + 7;
      if (mNum[o] === 1 && (retained === null || !retained.has(mi))) mNum[o] = 0;
    }
    if (total > 0) {
      const buf = Buffer.allocUnsafeSlow(total);
      let off = 0;
      for (let i = 0; i < bufs.length; i++) {
        const p = bufs[i]!;
        p.copy(buf, off);
        off += p.length;
      }
      bt.payload = buf.buffer as ArrayBuffer;
    }
    // A new batch.
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
    return bt;
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
}

function newSessInfo(sid: number, lastSeq: number, sentSeq: number): SessInfo {
  return { sid, lastSeq, sentSeq, deleted: false, touched: false, pend: null, pendMap: null, dequeues: null, tIdx: -1 };
}

function errorFrom(e: WireError): Error {
  if (e.name === 'StoreError') return new StoreError(e.code as StoreError['code'], e.message);
  const err = new Error(e.message);
  if (e.code !== undefined) (err as Error & { code: string }).code = e.code;
  return err;
}

function closedError(): StoreError {
  return new StoreError('PETREL_ERR_STORE_CLOSED', 'the store is closed');
}

function notOpenError(): StoreError {
  return new StoreError('PETREL_ERR_STORE_CLOSED', 'the store is not open (call open() first)');
}
