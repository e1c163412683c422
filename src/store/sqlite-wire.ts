// What the SQLite store's two halves send each other (sqlite-store.ts on the
// broker's thread, sqlite-engine.ts in the worker that owns the database).
//
// Everything is plain data that structured clone copies cheaply: flat arrays
// of numbers and strings, and the payloads of a batch or a page packed into
// one ArrayBuffer that is transferred (not copied) with the message. A
// payload is (offset, length) into that buffer.

/** Operation kinds of a batch (enqueues are not operations: they have arrays of their own). */
export const K = {
  PutSession: 0,
  DeleteSession: 1,
  PutSub: 2,
  DeleteSub: 3,
  Release: 6,
  AddInbound: 7,
  RemoveInbound: 8,
  Retain: 9,
} as const;

export interface WireWill {
  topic: string;
  qos: number;
  retain: number;
  delay: number;
  props: string | null;
  off: number;
  len: number;
}

export type WireOp =
  | { k: typeof K.PutSession; sid: number; clientId: string; pv: number; exp: number; disc: number | null; will: WireWill | null }
  | { k: typeof K.DeleteSession; sid: number }
  | { k: typeof K.PutSub; sid: number; filter: string; qos: number; nl: number; rap: number; rh: number; subId: number | null }
  | { k: typeof K.DeleteSub; sid: number; filter: string }
  | { k: typeof K.Release; sid: number; seq: number }
  | { k: typeof K.AddInbound | typeof K.RemoveInbound; sid: number; pid: number }
  /** msg: index into the batch's messages, or -1 to clear. */
  | { k: typeof K.Retain; topic: string; msg: number };

// A batch: the numbers of its messages, enqueues and sessions in strided
// Float64Arrays (cloned as one memcpy each, or transferred), strings apart.

/** Numbers per message in WireBatch.mNum: id, qos, retain, receivedAt, expiresAt (NaN: none), payload offset, payload length, refs. */
export const M_STRIDE = 8;
/** Numbers per enqueue in WireBatch.eNum: session index (into tNum), seq, message index, queue.flags. */
export const E_STRIDE = 4;
/** Numbers per session in WireBatch.tNum: sid, lastSeq, sentSeq, first and end index of its dequeues in dSeq. */
export const T_STRIDE = 5;

export interface WireBatch {
  ops: WireOp[];
  nM: number;
  /** refs: references the batch adds to the message's `messages` row; 0 = written inline in its one queue row. */
  mNum: Float64Array;
  mTopic: string[];
  /** Properties (encoded) of the messages that have them: message index, text. */
  mPropsIdx: number[];
  mProps: string[];
  /** Enqueues (not cancelled), in the order made. */
  nE: number;
  eNum: Float64Array;
  /** Subscription identifiers (encoded) of the enqueues that have them: enqueue index, text. */
  eSubIdx: number[];
  eSubIds: string[];
  /** Sessions touched (not deleted): their stats are rewritten. */
  nT: number;
  tNum: Float64Array;
  dSeq: Float64Array;
  /** Highest message id of the batch (0 if none). */
  maxId: number;
  payload: ArrayBuffer | null;
}

/** Numbers per entry in WirePage.eNum: seq, queue.flags, message index (entries of one shared message share it). */
export const PE_STRIDE = 3;
/** Numbers per message in WirePage.mNum: id, qos, retain, receivedAt, expiresAt (NaN: none), payload offset, payload length. */
export const PM_STRIDE = 7;

/** A page of a session's queue. */
export interface WirePage {
  nE: number;
  eNum: Float64Array;
  eSubIdx: number[];
  eSubIds: string[];
  nM: number;
  mNum: Float64Array;
  mTopic: string[];
  mPropsIdx: number[];
  mProps: string[];
  payload: ArrayBuffer;
}

export interface WireSession {
  clientId: string;
  sid: number;
  lastSeq: number;
  sentSeq: number;
}

export interface WireError {
  name: string;
  code?: string;
  message: string;
}

/** Requests, in the order they are made; the worker answers each, in the same order. */
export type Request =
  | { t: 'open'; path: string; dataDir: string; durability: 'process' | 'power' }
  | { t: 'commit'; batch: WireBatch | null }
  | { t: 'read'; sid: number; fromSeq: number; limit: number; maxBytes: number }
  | { t: 'expire'; sid: number; now: number; afterSeq: number; limit: number }
  | { t: 'inspect' }
  | { t: 'close' };

/** Row counts, for tests and the bench (inspect(): counting is O(rows)). */
export interface StorageCounts {
  /** Deleted sessions whose queue rows are still being removed. */
  purging: number;
  queueRows: number;
  messageRows: number;
}

export type Reply = { ok: true; value?: unknown } | { ok: false; error: WireError };

// queue.flags (see migrations.ts, version 2): bits 0-1 qos of the delivery,
// bit 2 its retain flag, bits 3-4 state, bits 5-6 qos of the message, bit 7
// retain flag of the message (bits 5-7 are only read for inline rows).
export const F_RETAIN = 1 << 2;
export const F_STATE_SHIFT = 3;
export const F_STATE_MASK = 3 << F_STATE_SHIFT;
export const F_MSG_QOS_SHIFT = 5;
export const F_MSG_RETAIN = 1 << 7;
