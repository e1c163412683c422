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

export function encodeEnvelope(e: Envelope): Buffer {
  const h = header(e.message) as MessageHeader & { o?: string; to?: Envelope['to']; g?: string };
  if (e.origin !== undefined) h.o = e.origin;
  if (e.to !== undefined) h.to = e.to;
  if (e.group !== undefined) h.g = e.group;
  return frame(h, e.message.payload);
}

export function decodeEnvelope(b: Buffer): Envelope {
  const { h, payload } = unframe<MessageHeader & { o?: string; to?: Envelope['to']; g?: string }>(b);
  const e: Envelope = { message: message(h, payload) };
  if (h.o !== undefined) e.origin = h.o;
  if (h.to !== undefined) e.to = h.to;
  if (h.g !== undefined) e.group = h.g;
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
