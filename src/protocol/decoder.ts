// Incremental MQTT decoder: bytes in, packets out.
//
// A chunk is walked by offset. A packet that lies wholly inside the chunk is
// decoded in place (a PUBLISH payload is a subarray of the chunk: no copy);
// only an incomplete tail is copied: into a buffer sized from the Remaining
// Length (up to 64 KiB), or chunk by chunk for larger packets so that memory
// follows the bytes actually received. The size limit is checked as soon as
// the Remaining Length is known, before anything of the body is buffered.
//
// The decoder never keeps a reference to a chunk after push() returns (a
// caller may reuse its read buffer); the only references into a chunk are the
// payloads of the PUBLISH packets handed to onPacket during that push().
//
// Errors: every rule violation becomes a ProtocolError carrying the v5 reason
// code and the spec reference; onError is called once and the decoder then
// ignores its input until reset(). Exceptions thrown by onPacket propagate.

import { ProtocolError } from './errors.js';
import type {
  AckPacket,
  AuthPacket,
  ConnackPacket,
  ConnectPacket,
  DisconnectPacket,
  Packet,
  Properties,
  PublishPacket,
  QoS,
  SubackPacket,
  SubscribePacket,
  SubscriptionRequest,
  UnsubackPacket,
  UnsubscribePacket,
  WillMessage,
} from './packets.js';
import { decodeProperties, WILL_PROPERTIES, WireReader } from './properties.js';

const SHARED_READER = new WireReader();
import { validateTopicFilter, validateTopicName } from './topic.js';
import { validateUtf8, Utf8Status } from './utf8.js';

export interface DecoderOptions {
  /** Largest packet accepted, fixed header included. Default 268435460 (the protocol maximum). */
  maxPacketSize?: number;
  /** 0 = unknown until a CONNECT is decoded (server side). */
  protocolVersion?: 0 | 3 | 4 | 5;
  /** 'server' decodes what clients send (default); 'client' decodes what servers send. */
  side?: 'server' | 'client';
}

/** 5 bytes of fixed header + the largest Remaining Length (1.5.5). */
export const MAX_PACKET_SIZE = 268435460;

/** Partial bodies up to this size are copied into a buffer allocated at once; larger ones are collected chunk by chunk. */
const PREALLOCATE_LIMIT = 65536;

const MALFORMED = 0x81;
const PROTOCOL_ERROR = 0x82;
const UNSUPPORTED_VERSION = 0x84;
const PACKET_TOO_LARGE = 0x95;

// Reason codes each packet may carry (MQTT 5.0 sections 3.2.2.2, 3.4.2.1,
// 3.5.2.1, 3.6.2.1, 3.7.2.1, 3.9.3, 3.11.3, 3.14.2.1, 3.15.2.1): bit (1 << type).
const REASONS_ALLOWED: Uint16Array = (() => {
  const t = new Uint16Array(256);
  const allow = (type: number, codes: number[]): void => {
    for (const c of codes) t[c]! |= 1 << type;
  };
  allow(2, [0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8c, 0x90, 0x95, 0x97, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9f]);
  const pubAck = [0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
  allow(4, pubAck);
  allow(5, pubAck);
  allow(6, [0x00, 0x92]);
  allow(7, [0x00, 0x92]);
  allow(9, [0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8f, 0x91, 0x97, 0x9e, 0xa1, 0xa2]);
  allow(11, [0x00, 0x11, 0x80, 0x83, 0x87, 0x8f, 0x91]);
  allow(14, [0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8b, 0x8d, 0x8e, 0x8f, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f, 0xa0, 0xa1, 0xa2]);
  allow(15, [0x00, 0x18, 0x19]);
  return t;
})();

const REASON_REFS: Readonly<Record<number, string>> = {
  2: 'MQTT-3.2.2-8', 4: 'MQTT-3.4.2-1', 5: 'MQTT-3.5.2-1', 6: 'MQTT-3.6.2-1', 7: 'MQTT-3.7.2-1',
  9: 'MQTT-3.9.3-2', 11: 'MQTT-3.11.3-2', 14: 'MQTT-3.14.2-1', 15: 'MQTT-3.15.2-1',
};

/** Packet types a client sends (decoded by side 'server'); the others are sent by servers. */
const FROM_CLIENT = (1 << 1) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 12) | (1 << 14) | (1 << 15);
const FROM_SERVER = (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 9) | (1 << 11) | (1 << 13) | (1 << 14) | (1 << 15);

/** Buffer methods Node has but @types/node does not declare. */
interface FastBuffer extends Buffer {
  utf8Slice(start: number, end: number): string;
  latin1Slice(start: number, end: number): string;
}

function noop(): void {}

function copyOf(chunk: Buffer, start: number, end: number): Buffer {
  const out = Buffer.allocUnsafe(end - start);
  chunk.copy(out, 0, start, end);
  return out;
}

/** The spec reference at the end of a topic validation message ('... [MQTT-4.7.1-1]'). */
function refOf(reason: string): string | undefined {
  const i = reason.lastIndexOf('[');
  return i >= 0 && reason.endsWith(']') ? reason.slice(i + 1, -1) : undefined;
}

export class Decoder {
  /** Protocol of the connection; set from the first CONNECT decoded when 0. */
  protocolVersion: 0 | 3 | 4 | 5;
  /** Largest packet accepted (fixed header + Remaining Length); larger → 0x95 before buffering. */
  maxPacketSize: number;
  onPacket: (packet: Packet) => void = noop;
  onError: (error: ProtocolError) => void = noop;

  private readonly client: boolean;
  // One reader for every decoder: a packet is read to its end before onPacket runs, so nothing nests.
  private isFailed = false;
  // Partial fixed header: head[0] is the first byte, then the Remaining Length bytes so far.
  // Allocated on first use: most connections never see a fixed header split across reads.
  private head: Buffer | null = null;
  private headLen = 0;
  // Partial body. Up to PREALLOCATE_LIMIT bytes it is copied into a buffer of
  // its final size; a larger one is kept as the chunks that carry it and joined
  // once complete, so that memory follows the bytes received, not the bytes
  // announced by a Remaining Length.
  private body: Buffer | null = null;
  private parts: Buffer[] | null = null;
  private bodySize = 0;
  private bodyFilled = 0;
  private bodyFirstByte = 0;
  /** Protocol level of the CONNECT being decoded, once read (-1 otherwise). */
  private connectLevel = -1;

  constructor(options: DecoderOptions = {}) {
    this.maxPacketSize = options.maxPacketSize ?? MAX_PACKET_SIZE;
    this.protocolVersion = options.protocolVersion ?? 0;
    this.client = options.side === 'client';
  }

  get failed(): boolean {
    return this.isFailed;
  }

  /** True while part of a packet is buffered. */
  get hasPartial(): boolean {
    return this.headLen > 0 || this.bodySize > 0;
  }

  /** Bytes received and held for an incomplete packet. */
  get bufferedBytes(): number {
    return this.headLen + this.bodyFilled;
  }

  /** Drop any buffered partial packet and the failed state. */
  reset(): void {
    this.dropPartial();
    this.isFailed = false;
  }

  private dropPartial(): void {
    this.headLen = 0;
    this.body = null;
    this.parts = null;
    this.bodySize = 0;
    this.bodyFilled = 0;
    SHARED_READER.release();
  }

  push(chunk: Buffer): void {
    if (this.isFailed) return;
    const len = chunk.length;
    let off = 0;
    if (this.headLen > 0 || this.bodySize > 0) {
      off = this.resume(chunk);
      if (off < 0) return;
    }
    while (off < len) {
      if (this.isFailed) return;
      const b0 = chunk[off]!;
      if (!this.checkFirstByte(b0)) return;
      // Remaining Length: Variable Byte Integer of at most 4 bytes (1.5.5).
      let i = off + 1;
      let rl = 0;
      let mult = 1;
      let done = false;
      const limit = off + 5;
      while (i < len && i < limit) {
        const b = chunk[i++]!;
        rl += (b & 0x7f) * mult;
        if ((b & 0x80) === 0) {
          done = true;
          break;
        }
        mult *= 128;
      }
      if (!done) {
        if (i === limit) {
          this.fail(new ProtocolError(MALFORMED, 'Remaining Length longer than 4 bytes', '§1.5.5', b0 >> 4));
          return;
        }
        // Fixed header split across chunks: keep its bytes (at most 4).
        chunk.copy((this.head ??= Buffer.alloc(5)), 0, off, len);
        this.headLen = len - off;
        return;
      }
      if (i - off + rl > this.maxPacketSize) {
        this.tooLarge(b0, i - off + rl);
        return;
      }
      const end = i + rl;
      if (end > len) {
        this.startBody(b0, rl, chunk, i);
        return;
      }
      off = end;
      const packet = this.decodeBody(chunk, b0, i, end);
      if (packet === null) return;
      this.onPacket(packet);
    }
  }

  /** Continue a buffered partial packet; returns the offset in chunk after it, or -1 when the chunk is used up (or the decoder failed). */
  private resume(chunk: Buffer): number {
    const len = chunk.length;
    let off = 0;
    if (this.bodySize === 0) {
      // Completing the fixed header.
      const head = this.head!;
      for (;;) {
        if (off >= len) return -1;
        const b = chunk[off++]!;
        head[this.headLen++] = b;
        if ((b & 0x80) === 0) break;
        if (this.headLen === 5) {
          this.headLen = 0;
          this.fail(new ProtocolError(MALFORMED, 'Remaining Length longer than 4 bytes', '§1.5.5', head[0]! >> 4));
          return -1;
        }
      }
      let rl = 0;
      let mult = 1;
      for (let k = 1; k < this.headLen; k++) {
        rl += (head[k]! & 0x7f) * mult;
        mult *= 128;
      }
      const b0 = head[0]!;
      const headerSize = this.headLen;
      this.headLen = 0;
      if (headerSize + rl > this.maxPacketSize) {
        this.tooLarge(b0, headerSize + rl);
        return -1;
      }
      if (len - off < rl) {
        this.startBody(b0, rl, chunk, off);
        return -1;
      }
      const packet = this.decodeBody(chunk, b0, off, off + rl);
      if (packet === null) return -1;
      this.onPacket(packet);
      return off + rl;
    }
    // Completing the body.
    const size = this.bodySize;
    const need = size - this.bodyFilled;
    const take = len < need ? len : need;
    const body = this.body;
    if (body !== null) chunk.copy(body, this.bodyFilled, 0, take);
    else this.parts!.push(copyOf(chunk, 0, take));
    this.bodyFilled += take;
    if (take < need) return -1;
    const full = body !== null ? body : Buffer.concat(this.parts!, size);
    this.body = null;
    this.parts = null;
    this.bodySize = 0;
    this.bodyFilled = 0;
    const packet = this.decodeBody(full, this.bodyFirstByte, 0, size);
    if (packet === null) return -1;
    this.onPacket(packet);
    return need;
  }

  private startBody(b0: number, rl: number, chunk: Buffer, from: number): void {
    if (rl <= PREALLOCATE_LIMIT) {
      const body = Buffer.allocUnsafe(rl);
      chunk.copy(body, 0, from, chunk.length);
      this.body = body;
    } else {
      this.parts = from < chunk.length ? [copyOf(chunk, from, chunk.length)] : [];
    }
    this.bodySize = rl;
    this.bodyFilled = chunk.length - from;
    this.bodyFirstByte = b0;
  }

  private tooLarge(b0: number, size: number): void {
    const ref = this.client ? 'MQTT-3.1.2-24' : 'MQTT-3.2.2-15';
    this.fail(new ProtocolError(PACKET_TOO_LARGE, `packet of ${size} bytes exceeds the maximum packet size ${this.maxPacketSize}`, ref, b0 >> 4));
  }

  private fail(e: ProtocolError): void {
    this.isFailed = true;
    this.dropPartial();
    this.onError(e);
  }

  /**
   * Fixed header byte 1 (2.1.2, 2.1.3): packet type valid for this protocol
   * version and direction, reserved flags as listed [MQTT-2.1.3-1].
   */
  private checkFirstByte(b0: number): boolean {
    const type = b0 >> 4;
    const flags = b0 & 0x0f;
    const v = this.protocolVersion;
    if (type === 0 || (type === 15 && v !== 5 && v !== 0)) {
      this.fail(new ProtocolError(MALFORMED, `reserved packet type ${type}`, '§2.1.2', type));
      return false;
    }
    if (v === 0 && type !== 1) {
      const msg = this.client ? 'protocol version unknown: set Decoder.protocolVersion on the client side' : 'the first packet from a client must be CONNECT';
      this.fail(new ProtocolError(PROTOCOL_ERROR, msg, 'MQTT-3.1.0-1', type));
      return false;
    }
    if (((this.client ? FROM_SERVER : FROM_CLIENT) & (1 << type)) === 0) {
      const who = this.client ? 'a server' : 'a client';
      this.fail(new ProtocolError(PROTOCOL_ERROR, `packet type ${type} is not sent by ${who}`, '§2.1.2', type));
      return false;
    }
    if (type === 3) {
      const qos = (flags >> 1) & 3;
      if (qos === 3) {
        this.fail(new ProtocolError(MALFORMED, 'PUBLISH with QoS 3', 'MQTT-3.3.1-4', 3));
        return false;
      }
      if (qos === 0 && (flags & 0x08) !== 0) {
        this.fail(new ProtocolError(MALFORMED, 'PUBLISH with QoS 0 and DUP set', 'MQTT-3.3.1-2', 3));
        return false;
      }
      return true;
    }
    // PUBREL, SUBSCRIBE, UNSUBSCRIBE: 0010; every other type: 0000.
    const expected = type === 6 || type === 8 || type === 10 ? 2 : 0;
    if (flags === expected) return true;
    // MQTT 3.1 let DUP be set on a retransmitted PUBREL/SUBSCRIBE/UNSUBSCRIBE.
    if (v === 3 && expected === 2 && flags === 0x0a) return true;
    this.fail(new ProtocolError(MALFORMED, `invalid fixed header flags 0x${flags.toString(16)} for packet type ${type}`, v === 3 || v === 4 ? 'MQTT-2.2.2-2' : 'MQTT-2.1.3-1', type));
    return false;
  }

  /** Decode one complete packet body [start, end); null after reporting an error. */
  private decodeBody(buf: Buffer, b0: number, start: number, end: number): Packet | null {
    const type = b0 >> 4;
    const r = SHARED_READER;
    r.reset(buf, start, end, type, this.protocolVersion);
    this.connectLevel = -1;
    let packet: Packet;
    try {
      packet = this.decode(r, b0, type);
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      if (type === 1 && this.connectLevel >= 0) e.protocolVersion = this.connectLevel;
      this.fail(e);
      return null;
    }
    r.release();
    return packet;
  }

  private decode(r: WireReader, b0: number, type: number): Packet {
    switch (type) {
      case 3: return this.decodePublish(r, b0);
      case 4: case 5: case 6: case 7: return this.decodeAck(r, type);
      case 1: return this.decodeConnect(r);
      case 2: return decodeConnack(r, this.protocolVersion);
      case 8: return decodeSubscribe(r, this.protocolVersion);
      case 9: return decodeSuback(r, this.protocolVersion);
      case 10: return decodeUnsubscribe(r, this.protocolVersion);
      case 11: return decodeUnsuback(r, this.protocolVersion);
      case 12: case 13:
        if (r.remaining() !== 0) {
          throw r.fail(MALFORMED, `${type === 12 ? 'PINGREQ' : 'PINGRESP'} with a non-zero Remaining Length`, type === 12 ? '§3.12.1' : '§3.13.1');
        }
        return type === 12 ? { type: 12 } : { type: 13 };
      case 14: return decodeDisconnect(r, this.protocolVersion);
      default: return decodeAuth(r);
    }
  }

  // 3.3 PUBLISH — the hot path.
  private decodePublish(r: WireReader, b0: number): PublishPacket {
    const v = this.protocolVersion;
    const buf = r.buf;
    const qos = ((b0 >> 1) & 3) as QoS;
    const tlen = r.u16();
    const ts = r.pos;
    const te = ts + tlen;
    if (te > r.end) throw r.short();
    r.pos = te;
    let topic = '';
    if (tlen > 0) {
      let nonAscii = false;
      for (let i = ts; i < te; i++) {
        const c = buf[i]!;
        if (c <= 0x2b) {
          if (c === 0x2b || c === 0x23) throw r.fail(PROTOCOL_ERROR, 'topic name contains a wildcard', 'MQTT-3.3.2-2');
          if (c === 0) throw r.utf8Error(Utf8Status.Null);
        } else if (c >= 0x80) {
          nonAscii = true;
        }
      }
      if (nonAscii) {
        const st = validateUtf8(buf, ts, te);
        if (st !== Utf8Status.Ok) throw r.utf8Error(st);
      }
      // Pure ASCII reads as latin1 (same characters, cheaper to decode).
      topic = nonAscii ? (buf as FastBuffer).utf8Slice(ts, te) : (buf as FastBuffer).latin1Slice(ts, te);
    }
    let packetId = 0;
    if (qos > 0) {
      packetId = r.u16();
      if (packetId === 0) throw r.fail(PROTOCOL_ERROR, 'PUBLISH with QoS > 0 and Packet Identifier 0', v === 5 ? 'MQTT-2.2.1-3' : 'MQTT-2.3.1-1');
    }
    let props: Properties | undefined;
    if (v === 5) {
      props = decodeProperties(r, 3);
      if (props !== undefined) checkPublishProperties(r, props, this.client);
      if (tlen === 0 && (props === undefined || props.topicAlias === undefined)) {
        throw r.fail(PROTOCOL_ERROR, 'PUBLISH with an empty topic name and no Topic Alias', '§3.3.2.3.4');
      }
    } else if (tlen === 0) {
      throw r.fail(MALFORMED, 'PUBLISH with an empty topic name', 'MQTT-4.7.3-1');
    }
    const packet: PublishPacket = {
      type: 3,
      qos,
      dup: (b0 & 0x08) !== 0,
      retain: (b0 & 0x01) !== 0,
      topic,
      packetId,
      payload: buf.subarray(r.pos, r.end),
    };
    if (props !== undefined) packet.properties = props;
    return packet;
  }

  // 3.4 - 3.7 PUBACK, PUBREC, PUBREL, PUBCOMP.
  private decodeAck(r: WireReader, type: 4 | 5 | 6 | 7): AckPacket {
    const packetId = r.u16();
    if (packetId === 0) throw r.fail(PROTOCOL_ERROR, 'Packet Identifier 0', '§2.2.1');
    let reasonCode = 0;
    let props: Properties | undefined;
    if (this.protocolVersion === 5 && r.pos < r.end) {
      // Remaining Length 2: Success, no properties; 3: reason code only (3.4.2.1).
      reasonCode = readReason(r, type);
      if (r.pos < r.end) props = decodeProperties(r, type);
    }
    expectEnd(r);
    const packet: AckPacket = { type, packetId, reasonCode };
    if (props !== undefined) packet.properties = props;
    return packet;
  }

  // 3.1 CONNECT.
  private decodeConnect(r: WireReader): ConnectPacket {
    const protocolName = r.utf8();
    const level = r.u8();
    if (protocolName !== 'MQTT' && protocolName !== 'MQIsdp') {
      // Not an MQTT client we can talk to: close without CONNACK [MQTT-3.1.2-1].
      throw r.fail(MALFORMED, `unknown protocol name ${quote(protocolName)}`, 'MQTT-3.1.2-1');
    }
    this.connectLevel = level;
    r.version = level;
    if (protocolName === 'MQTT' ? level !== 4 && level !== 5 : level !== 3) {
      // Unsupported level, or a name that does not go with it ("MQTT" is 3.1.1/5.0, "MQIsdp" is 3.1).
      throw r.fail(UNSUPPORTED_VERSION, `unsupported protocol ${quote(protocolName)} level ${level}`, 'MQTT-3.1.2-2');
    }
    const v5 = level === 5;
    const flags = r.u8();
    if ((flags & 0x01) !== 0) throw r.fail(MALFORMED, 'CONNECT reserved flag is set', 'MQTT-3.1.2-3');
    const willFlag = (flags & 0x04) !== 0;
    const willQos = (flags >> 3) & 3;
    const willRetain = (flags & 0x20) !== 0;
    const passwordFlag = (flags & 0x40) !== 0;
    const usernameFlag = (flags & 0x80) !== 0;
    if (willQos === 3) throw r.fail(MALFORMED, 'Will QoS 3', v5 ? 'MQTT-3.1.2-12' : 'MQTT-3.1.2-14');
    if (!willFlag) {
      if (willQos !== 0) throw r.fail(MALFORMED, 'Will QoS set without the Will Flag', v5 ? 'MQTT-3.1.2-11' : 'MQTT-3.1.2-13');
      if (willRetain) throw r.fail(MALFORMED, 'Will Retain set without the Will Flag', v5 ? 'MQTT-3.1.2-13' : 'MQTT-3.1.2-15');
    }
    // 3.1/3.1.1 only; MQTT 5.0 allows a password without a user name (3.1.2.9).
    if (!v5 && passwordFlag && !usernameFlag) throw r.fail(MALFORMED, 'Password Flag set without the User Name Flag', 'MQTT-3.1.2-22');
    const keepAlive = r.u16();
    const props = v5 ? decodeProperties(r, 1) : undefined;
    const clientId = r.utf8();
    let will: WillMessage | undefined;
    if (willFlag) {
      const wprops = v5 ? decodeProperties(r, WILL_PROPERTIES) : undefined;
      const topic = r.utf8();
      if (topic.length === 0) throw r.fail(v5 ? PROTOCOL_ERROR : MALFORMED, 'empty Will Topic', 'MQTT-4.7.3-1');
      const bad = validateTopicName(topic);
      if (bad !== null) throw r.fail(PROTOCOL_ERROR, `invalid Will Topic: ${bad}`, refOf(bad));
      if (wprops?.responseTopic !== undefined) checkResponseTopic(r, wprops.responseTopic);
      const payload = r.binary();
      will = { topic, payload, qos: willQos as QoS, retain: willRetain };
      if (wprops !== undefined) will.properties = wprops;
    }
    const username = usernameFlag ? r.utf8() : undefined;
    const password = passwordFlag ? r.binary() : undefined;
    expectEnd(r);
    if (props !== undefined) checkAuthProperties(r, props);
    const packet: ConnectPacket = {
      type: 1,
      protocolName,
      protocolVersion: level as 3 | 4 | 5,
      clean: (flags & 0x02) !== 0,
      keepAlive,
      clientId,
    };
    if (username !== undefined) packet.username = username;
    if (password !== undefined) packet.password = password;
    if (will !== undefined) packet.will = will;
    if (props !== undefined) packet.properties = props;
    if (this.protocolVersion === 0) this.protocolVersion = level as 3 | 4 | 5;
    return packet;
  }
}

function expectEnd(r: WireReader): void {
  if (r.pos !== r.end) throw r.fail(MALFORMED, `${r.end - r.pos} unexpected byte(s) after the end of the packet`, '§2.1.4');
}

function readReason(r: WireReader, type: number): number {
  const code = r.u8();
  if ((REASONS_ALLOWED[code]! & (1 << type)) === 0) {
    throw r.fail(MALFORMED, `reason code 0x${code.toString(16)} is not allowed in this packet`, REASON_REFS[type]);
  }
  return code;
}

function checkResponseTopic(r: WireReader, topic: string): void {
  const bad = validateTopicName(topic);
  if (bad !== null) throw r.fail(PROTOCOL_ERROR, `invalid Response Topic: ${bad}`, 'MQTT-3.3.2-14');
}

function checkPublishProperties(r: WireReader, props: Properties, client: boolean): void {
  if (!client && props.subscriptionIdentifiers !== undefined) {
    throw r.fail(PROTOCOL_ERROR, 'PUBLISH from a client carries a Subscription Identifier', 'MQTT-3.3.4-6');
  }
  if (props.responseTopic !== undefined) checkResponseTopic(r, props.responseTopic);
}

/** "It is a Protocol Error to include Authentication Data if there is no Authentication Method" (3.1.2.11.10, 3.2.2.3.18, 3.15.2.2.3). */
function checkAuthProperties(r: WireReader, props: Properties): void {
  if (props.authenticationData !== undefined && props.authenticationMethod === undefined) {
    throw r.fail(PROTOCOL_ERROR, 'Authentication Data without Authentication Method', '§3.1.2.11.10');
  }
}

// 3.2 CONNACK (client side).
function decodeConnack(r: WireReader, v: number): ConnackPacket {
  const flags = r.u8();
  // In 3.1 the first byte is unused; 3.1.1 and 5.0 reserve bits 7-1 [MQTT-3.2.2-1].
  if (v !== 3 && (flags & 0xfe) !== 0) throw r.fail(MALFORMED, 'CONNACK reserved flags set', 'MQTT-3.2.2-1');
  let reasonCode: number;
  let props: Properties | undefined;
  if (v === 5) {
    reasonCode = readReason(r, 2);
    props = decodeProperties(r, 2);
    if (props !== undefined) checkAuthProperties(r, props);
  } else {
    reasonCode = r.u8();
    if (reasonCode > 5) throw r.fail(MALFORMED, `CONNACK return code ${reasonCode} is reserved`, '§3.2.2.3');
  }
  expectEnd(r);
  const packet: ConnackPacket = { type: 2, sessionPresent: v !== 3 && (flags & 1) !== 0, reasonCode };
  if (props !== undefined) packet.properties = props;
  return packet;
}

function readPacketId(r: WireReader, v: number): number {
  const id = r.u16();
  if (id === 0) throw r.fail(PROTOCOL_ERROR, 'Packet Identifier 0', v === 5 ? 'MQTT-2.2.1-3' : 'MQTT-2.3.1-1');
  return id;
}

// 3.8 SUBSCRIBE.
function decodeSubscribe(r: WireReader, v: number): SubscribePacket {
  const packetId = readPacketId(r, v);
  const props = v === 5 ? decodeProperties(r, 8) : undefined;
  const subscriptions: SubscriptionRequest[] = [];
  while (r.pos < r.end) {
    const filter = r.utf8();
    const bad = validateTopicFilter(filter);
    if (bad !== null) throw r.fail(MALFORMED, `invalid topic filter ${quote(filter)}: ${bad}`, refOf(bad));
    const opts = r.u8();
    const qos = opts & 3;
    if (v === 5) {
      if ((opts & 0xc0) !== 0) throw r.fail(MALFORMED, 'subscription options reserved bits set', 'MQTT-3.8.3-5');
      // 3.8.3.1: "It is a Protocol Error if the Maximum QoS field has the value 3."
      if (qos === 3) throw r.fail(PROTOCOL_ERROR, 'requested QoS 3', '§3.8.3.1');
      const retainHandling = (opts >> 4) & 3;
      // 3.8.3.1: "It is a Protocol Error to send a Retain Handling value of 3."
      if (retainHandling === 3) throw r.fail(PROTOCOL_ERROR, 'Retain Handling 3', '§3.8.3.1');
      const noLocal = (opts & 0x04) !== 0;
      if (noLocal && filter.startsWith('$share/')) throw r.fail(PROTOCOL_ERROR, 'No Local on a shared subscription', 'MQTT-3.8.3-4');
      subscriptions.push({ filter, qos: qos as QoS, noLocal, retainAsPublished: (opts & 0x08) !== 0, retainHandling: retainHandling as 0 | 1 | 2 });
    } else {
      // 3.1.1 [MQTT-3.8.3-4]: reserved bits non-zero or QoS not 0, 1, 2 → malformed.
      if ((opts & 0xfc) !== 0 || qos === 3) throw r.fail(MALFORMED, `invalid requested QoS byte 0x${opts.toString(16)}`, 'MQTT-3.8.3-4');
      subscriptions.push({ filter, qos: qos as QoS, noLocal: false, retainAsPublished: false, retainHandling: 0 });
    }
  }
  if (subscriptions.length === 0) throw r.fail(PROTOCOL_ERROR, 'SUBSCRIBE without topic filters', v === 5 ? 'MQTT-3.8.3-2' : 'MQTT-3.8.3-3');
  const packet: SubscribePacket = { type: 8, packetId, subscriptions };
  if (props !== undefined) packet.properties = props;
  return packet;
}

// 3.9 SUBACK (client side).
function decodeSuback(r: WireReader, v: number): SubackPacket {
  const packetId = readPacketId(r, v);
  const props = v === 5 ? decodeProperties(r, 9) : undefined;
  const reasonCodes: number[] = [];
  while (r.pos < r.end) {
    if (v === 5) {
      reasonCodes.push(readReason(r, 9));
    } else {
      const code = r.u8();
      if (code > 2 && code !== 0x80) throw r.fail(MALFORMED, `SUBACK return code 0x${code.toString(16)} is reserved`, 'MQTT-3.9.3-2');
      reasonCodes.push(code);
    }
  }
  const packet: SubackPacket = { type: 9, packetId, reasonCodes };
  if (props !== undefined) packet.properties = props;
  return packet;
}

// 3.10 UNSUBSCRIBE.
function decodeUnsubscribe(r: WireReader, v: number): UnsubscribePacket {
  const packetId = readPacketId(r, v);
  const props = v === 5 ? decodeProperties(r, 10) : undefined;
  const filters: string[] = [];
  while (r.pos < r.end) {
    const filter = r.utf8();
    const bad = validateTopicFilter(filter);
    if (bad !== null) throw r.fail(MALFORMED, `invalid topic filter ${quote(filter)}: ${bad}`, refOf(bad));
    filters.push(filter);
  }
  if (filters.length === 0) throw r.fail(PROTOCOL_ERROR, 'UNSUBSCRIBE without topic filters', 'MQTT-3.10.3-2');
  const packet: UnsubscribePacket = { type: 10, packetId, filters };
  if (props !== undefined) packet.properties = props;
  return packet;
}

// 3.11 UNSUBACK (client side).
function decodeUnsuback(r: WireReader, v: number): UnsubackPacket {
  const packetId = readPacketId(r, v);
  const reasonCodes: number[] = [];
  let props: Properties | undefined;
  if (v === 5) {
    props = decodeProperties(r, 11);
    while (r.pos < r.end) reasonCodes.push(readReason(r, 11));
  }
  expectEnd(r);
  const packet: UnsubackPacket = { type: 11, packetId, reasonCodes };
  if (props !== undefined) packet.properties = props;
  return packet;
}

// 3.14 DISCONNECT.
function decodeDisconnect(r: WireReader, v: number): DisconnectPacket {
  let reasonCode = 0;
  let props: Properties | undefined;
  if (v === 5 && r.pos < r.end) {
    // Remaining Length 0: Normal disconnection; 1: reason code only (3.14.2.1).
    reasonCode = readReason(r, 14);
    if (r.pos < r.end) props = decodeProperties(r, 14);
  }
  expectEnd(r);
  const packet: DisconnectPacket = { type: 14, reasonCode };
  if (props !== undefined) packet.properties = props;
  return packet;
}

// 3.15 AUTH (5.0 only; type 15 is rejected earlier for 3.1/3.1.1).
function decodeAuth(r: WireReader): AuthPacket {
  let reasonCode = 0;
  let props: Properties | undefined;
  if (r.pos < r.end) {
    // Remaining Length 0: Success; 1: reason code only (3.15.2.1).
    reasonCode = readReason(r, 15);
    if (r.pos < r.end) props = decodeProperties(r, 15);
  }
  expectEnd(r);
  if (props !== undefined) checkAuthProperties(r, props);
  const packet: AuthPacket = { type: 15, reasonCode };
  if (props !== undefined) packet.properties = props;
  return packet;
}

/**
 * Client input quoted in an error message (which becomes a Reason String): at most 100 characters of it, so that
 * the message stays short whatever the input (JSON escapes can make one character six).
 */
function quote(s: string): string {
  return s.length <= 100 ? JSON.stringify(s) : `${JSON.stringify(s.slice(0, 100))}... (${s.length} characters)`;
}
