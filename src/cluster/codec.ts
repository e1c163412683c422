// Binary forms of what cluster mode keeps in Redis or sends between nodes: a message (with the fields a
// delivery needs), a queue entry, a session record. One layout: a 4-byte big-endian length, a JSON header,
// then the payload bytes (never base64: payloads are binary and may be large).

import type { Properties, QoS } from '../protocol/packets.js';
import { decodeProperties, encodeProperties } from '../store/serialize.js';
import { QueueState, type QueueEntry, type StoredMessage } from '../store/types.js';

interface MessageHeader {
  i: number;
  t: string;
  q: QoS;
  r: 0 | 1;
  a: number;
  p?: string;
  e?: number;
}

/** What travels between nodes besides the message: who sent it, and to whom if targeted. */
export interface Envelope {
  message: StoredMessage;
  /** Publisher's client id (No Local), if any. */
  origin?: string;
  /** A delivery for one session only (its owner moved): QoS, retain, subscription ids as decided. */
  to?: { clientId: string; qos: QoS; retain: boolean; subscriptionIds?: number[] };
  /** A message for one member of this shared group (`$share/{group}/{filter}`). */
  group?: string;
}

function header(m: StoredMessage): MessageHeader {
  const h: MessageHeader = { i: m.id, t: m.topic, q: m.qos, r: m.retain ? 1 : 0, a: m.receivedAt };
  const p = encodeProperties(m.properties);
  if (p !== null) h.p = p;
  if (m.expiresAt !== undefined) h.e = m.expiresAt;
  return h;
}

function message(h: MessageHeader, payload: Buffer): StoredMessage {
  const m: StoredMessage = { id: h.i, topic: h.t, payload, qos: h.q, retain: h.r === 1, receivedAt: h.a };
  if (h.p !== undefined) m.properties = decodeProperties(h.p) as Properties;
  if (h.e !== undefined) m.expiresAt = h.e;
  return m;
}

function frame(h: object, payload: Buffer): Buffer {
  const json = Buffer.from(JSON.stringify(h));
  const out = Buffer.allocUnsafe(4 + json.length + payload.length);
  out.writeUInt32BE(json.length, 0);
  json.copy(out, 4);
  payload.copy(out, 4 + json.length);
  return out;
}

function unframe<H>(b: Buffer): { h: H; payload: Buffer } {
  const n = b.readUInt32BE(0);
  const h = JSON.parse(b.toString('utf8', 4, 4 + n)) as H;
  // A copy: the reply buffer may be large and is not kept.
  return { h, payload: Buffer.from(b.subarray(4 + n)) };
}

// An envelope crosses between nodes on every cross-node delivery: a binary header (no JSON on this path).
//   u8 flags (bit 0 retain, 1 properties, 2 expiry, 3 origin, 4 to, 5 group), u8 QoS,
//   f64 message id, f64 received at, [f64 expires at], str topic, [str properties], [str origin],
//   [str `to` as JSON], [str group], then the payload to the end. str: u32 byte length + UTF-8.
const F_RETAIN = 1;
const F_PROPS = 2;
const F_EXPIRY = 4;
const F_ORIGIN = 8;
const F_TO = 16;
const F_GROUP = 32;

export function encodeEnvelope(e: Envelope): Buffer {
  const m = e.message;
  const props = encodeProperties(m.properties);
  const to = e.to !== undefined ? JSON.stringify(e.to) : undefined;
  let flags = m.retain ? F_RETAIN : 0;
  let n = 2 + 16 + 4 + Buffer.byteLength(m.topic);
  const optional = (flag: number, v: string | null | undefined): void => {
    if (v === null || v === undefined) return;
    flags |= flag;
    n += 4 + Buffer.byteLength(v);
  };
  optional(F_PROPS, props);
  optional(F_ORIGIN, e.origin);
  optional(F_TO, to);
  optional(F_GROUP, e.group);
  if (m.expiresAt !== undefined) {
    flags |= F_EXPIRY;
    n += 8;
  }
  const out = Buffer.allocUnsafe(n + m.payload.length);
  out[0] = flags;
  out[1] = m.qos;
  out.writeDoubleBE(m.id, 2);
  out.writeDoubleBE(m.receivedAt, 10);
  let o = 18;
  if (m.expiresAt !== undefined) o = out.writeDoubleBE(m.expiresAt, o);
  const str = (v: string): void => {
    const len = out.write(v, o + 4, 'utf8');
    out.writeUInt32BE(len, o);
    o += 4 + len;
  };
  str(m.topic);
  if (props !== null) str(props);
  if (e.origin !== undefined) str(e.origin);
  if (to !== undefined) str(to);
  if (e.group !== undefined) str(e.group);
  m.payload.copy(out, o);
  return out;
}

export function decodeEnvelope(b: Buffer): Envelope {
  const flags = b[0]!;
  let o = 18;
  const str = (): string => {
    const len = b.readUInt32BE(o);
    if (o + 4 + len > b.length) throw new Error('truncated envelope');
    const v = b.toString('utf8', o + 4, o + 4 + len);
    o += 4 + len;
    return v;
  };
  const id = b.readDoubleBE(2);
  const receivedAt = b.readDoubleBE(10);
  let expiresAt: number | undefined;
  if (flags & F_EXPIRY) {
    expiresAt = b.readDoubleBE(o);
    o += 8;
  }
  const topic = str();
  const props = flags & F_PROPS ? str() : undefined;
  const origin = flags & F_ORIGIN ? str() : undefined;
  const to = flags & F_TO ? (JSON.parse(str()) as Envelope['to']) : undefined;
  const group = flags & F_GROUP ? str() : undefined;
  // A copy: the frame is part of a larger reply that is not kept.
  const m: StoredMessage = { id, topic, payload: Buffer.from(b.subarray(o)), qos: b[1] as QoS, retain: (flags & F_RETAIN) !== 0, receivedAt };
  if (props !== undefined) m.properties = decodeProperties(props) as Properties;
  if (expiresAt !== undefined) m.expiresAt = expiresAt;
  const e: Envelope = { message: m };
  if (origin !== undefined) e.origin = origin;
  if (to !== undefined) e.to = to;
  if (group !== undefined) e.group = group;
  return e;
}

export function encodeMessage(m: StoredMessage): Buffer {
  return frame(header(m), m.payload);
}

export function decodeMessage(b: Buffer): StoredMessage {
  const { h, payload } = unframe<MessageHeader>(b);
  return message(h, payload);
}

interface EntryHeader extends MessageHeader {
  s: number;
  g: QoS;
  rr: 0 | 1;
  st: QueueState;
  ids?: number[];
}

/** A queue entry; a Released entry is kept without its payload (it is no longer needed). */
export function encodeEntry(e: QueueEntry): Buffer {
  const h = header(e.message) as EntryHeader;
  h.s = e.seq;
  h.g = e.qos;
  h.rr = e.retain ? 1 : 0;
  h.st = e.state;
  if (e.subscriptionIds !== undefined) h.ids = e.subscriptionIds;
  return frame(h, e.state === QueueState.Released ? Buffer.alloc(0) : e.message.payload);
}

export function decodeEntry(b: Buffer): QueueEntry {
  const { h, payload } = unframe<EntryHeader>(b);
  const e: QueueEntry = { seq: h.s, message: message(h, payload), qos: h.g, retain: h.rr === 1, state: h.st };
  if (h.ids !== undefined) e.subscriptionIds = h.ids;
  return e;
}

/** Payload bytes an entry counts for in the queue's byte total (Released entries: 0). */
export function entryBytes(e: QueueEntry): number {
  return e.state === QueueState.Released ? 0 : e.message.payload.length;
}

/**
 * Several frames as one Redis value (one inbox entry, one pub/sub message): each a 4-byte big-endian length and
 * the frame. A node sends one per target node and store batch, so an inbox entry carries what one batch sent.
 */
export function packFrames(frames: readonly Buffer[]): Buffer {
  let n = 0;
  for (const f of frames) n += 4 + f.length;
  const out = Buffer.allocUnsafe(n);
  let o = 0;
  for (const f of frames) {
    out.writeUInt32BE(f.length, o);
    f.copy(out, o + 4);
    o += 4 + f.length;
  }
  return out;
}

export function unpackFrames(b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let o = 0;
  while (o + 4 <= b.length) {
    const n = b.readUInt32BE(o);
    if (o + 4 + n > b.length) throw new Error('truncated frame');
    out.push(b.subarray(o + 4, o + 4 + n));
    o += 4 + n;
  }
  if (o !== b.length) throw new Error('trailing bytes after the last frame');
  return out;
}
