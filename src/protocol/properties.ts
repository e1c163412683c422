// MQTT 5.0 properties (section 2.2.2): the property table, decoding with the
// spec's validity rules, encoding and length computation. Also home of
// WireReader, the bounds-checked cursor the decoder reads every field with.

import { ProtocolError } from './errors.js';
import type { Properties } from './packets.js';
import { validateUtf8, Utf8Status } from './utf8.js';

/** Wire data types of section 1.5. */
export type PropertyType = 'byte' | 'u16' | 'u32' | 'varint' | 'string' | 'binary' | 'pair';

/** Pseudo packet type used for the Will Properties of a CONNECT (type 0 is reserved on the wire). */
export const WILL_PROPERTIES = 0;

export interface PropertyDef {
  readonly id: number;
  readonly name: keyof Properties;
  readonly type: PropertyType;
  /** Bit (1 << packet type) for every packet that may carry it; bit 0 = Will Properties. */
  readonly packets: number;
  /** Inclusive range of a numeric value; outside it the packet is rejected with rangeCode. */
  readonly min: number;
  readonly max: number;
  readonly rangeCode: number;
}

const W = 1 << WILL_PROPERTIES;
const CONNECT = 1 << 1;
const CONNACK = 1 << 2;
const PUBLISH = 1 << 3;
const PUBACK = 1 << 4;
const PUBREC = 1 << 5;
const PUBREL = 1 << 6;
const PUBCOMP = 1 << 7;
const SUBSCRIBE = 1 << 8;
const SUBACK = 1 << 9;
const UNSUBSCRIBE = 1 << 10;
const UNSUBACK = 1 << 11;
const DISCONNECT = 1 << 14;
const AUTH = 1 << 15;
const ACKS = PUBACK | PUBREC | PUBREL | PUBCOMP;

const PROTOCOL_ERROR = 0x82;
const MALFORMED = 0x81;
const U32_MAX = 0xffffffff;
const VARINT_MAX = 268435455;

function def(
  id: number,
  name: keyof Properties,
  type: PropertyType,
  packets: number,
  min = 0,
  max = type === 'byte' ? 0xff : type === 'u16' ? 0xffff : type === 'varint' ? VARINT_MAX : U32_MAX,
  rangeCode = PROTOCOL_ERROR,
): PropertyDef {
  return { id, name, type, packets, min, max, rangeCode };
}

/**
 * Table 2-4 of MQTT 5.0 section 2.2.2.2, with the range rules of the
 * property descriptions in sections 3.1.2.11, 3.2.2.3 and 3.3.2.3.
 */
export const PROPERTY_TABLE: readonly PropertyDef[] = [
  // 3.3.2.3.2: 0 (unspecified bytes) or 1 (UTF-8 character data).
  def(0x01, 'payloadFormatIndicator', 'byte', PUBLISH | W, 0, 1),
  def(0x02, 'messageExpiryInterval', 'u32', PUBLISH | W),
  def(0x03, 'contentType', 'string', PUBLISH | W),
  def(0x08, 'responseTopic', 'string', PUBLISH | W),
  def(0x09, 'correlationData', 'binary', PUBLISH | W),
  // 3.3.2.3.8 / 3.8.2.1.2: "It is a Protocol Error if the Subscription Identifier has a value of 0."
  def(0x0b, 'subscriptionIdentifiers', 'varint', PUBLISH | SUBSCRIBE, 1, VARINT_MAX),
  def(0x11, 'sessionExpiryInterval', 'u32', CONNECT | CONNACK | DISCONNECT),
  def(0x12, 'assignedClientIdentifier', 'string', CONNACK),
  def(0x13, 'serverKeepAlive', 'u16', CONNACK),
  def(0x15, 'authenticationMethod', 'string', CONNECT | CONNACK | AUTH),
  def(0x16, 'authenticationData', 'binary', CONNECT | CONNACK | AUTH),
  // 3.1.2.11.7: "It is a Protocol Error to include ... a value other than 0 or 1."
  def(0x17, 'requestProblemInformation', 'byte', CONNECT, 0, 1),
  def(0x18, 'willDelayInterval', 'u32', W),
  // 3.1.2.11.6: idem.
  def(0x19, 'requestResponseInformation', 'byte', CONNECT, 0, 1),
  def(0x1a, 'responseInformation', 'string', CONNACK),
  def(0x1c, 'serverReference', 'string', CONNACK | DISCONNECT),
  def(0x1f, 'reasonString', 'string', CONNACK | ACKS | SUBACK | UNSUBACK | DISCONNECT | AUTH),
  // 3.1.2.11.3 / 3.2.2.3.3: "It is a Protocol Error to include the Receive Maximum value ... of 0."
  def(0x21, 'receiveMaximum', 'u16', CONNECT | CONNACK, 1),
  def(0x22, 'topicAliasMaximum', 'u16', CONNECT | CONNACK),
  // [MQTT-3.3.2-8] Topic Alias 0 is not permitted; the receiver answers 0x94 (3.3.2.3.4).
  def(0x23, 'topicAlias', 'u16', PUBLISH, 1, 0xffff, 0x94),
  // 3.2.2.3.4: "It is a Protocol Error to include Maximum QoS more than once, or to have a value other than 0 or 1."
  def(0x24, 'maximumQoS', 'byte', CONNACK, 0, 1),
  def(0x25, 'retainAvailable', 'byte', CONNACK, 0, 1),
  def(0x26, 'userProperties', 'pair', CONNECT | CONNACK | PUBLISH | W | ACKS | SUBSCRIBE | SUBACK | UNSUBSCRIBE | UNSUBACK | DISCONNECT | AUTH),
  // 3.1.2.11.4 / 3.2.2.3.6: "It is a Protocol Error ... for the value to be set to zero."
  def(0x27, 'maximumPacketSize', 'u32', CONNECT | CONNACK, 1),
  def(0x28, 'wildcardSubscriptionAvailable', 'byte', CONNACK, 0, 1),
  def(0x29, 'subscriptionIdentifiersAvailable', 'byte', CONNACK, 0, 1),
  def(0x2a, 'sharedSubscriptionAvailable', 'byte', CONNACK, 0, 1),
];

/** Property definitions indexed by identifier (undefined for unassigned ids). */
export const PROPERTY_BY_ID: readonly (PropertyDef | undefined)[] = (() => {
  const byId: (PropertyDef | undefined)[] = new Array<PropertyDef | undefined>(0x2b).fill(undefined);
  for (const d of PROPERTY_TABLE) byId[d.id] = d;
  return byId;
})();

/** Property definitions by their name in {@link Properties}. */
export const PROPERTY_BY_NAME: Readonly<Record<string, PropertyDef>> = (() => {
  const byName: Record<string, PropertyDef> = Object.create(null) as Record<string, PropertyDef>;
  for (const d of PROPERTY_TABLE) byName[d.name] = d;
  return byName;
})();

// --------------------------------------------------------------------------
// Reading

/** Buffer methods Node has but @types/node does not declare (faster than toString/write: no argument juggling). */
interface FastBuffer extends Buffer {
  utf8Slice(start: number, end: number): string;
  utf8Write(s: string, offset: number): number;
}

const EMPTY = Buffer.alloc(0);

/**
 * A bounds-checked cursor over one packet body. Every read past `end` throws
 * a Malformed Packet error (the Remaining Length did not cover the field).
 * One instance is reused by a decoder for every packet.
 */
export class WireReader {
  buf: Buffer = EMPTY;
  pos = 0;
  end = 0;
  /** Packet type being read, for error reports. */
  type = 0;
  /** Protocol version of the packet being read, for the spec reference of UTF-8 errors. */
  version = 5;

  reset(buf: Buffer, pos: number, end: number, type: number, version: number): void {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
    this.type = type;
    this.version = version;
  }

  /** Drop the reference to the last chunk so it can be collected. */
  release(): void {
    this.buf = EMPTY;
    this.pos = 0;
    this.end = 0;
  }

  remaining(): number {
    return this.end - this.pos;
  }

  fail(code: number, message: string, ref?: string): ProtocolError {
    return new ProtocolError(code, message, ref, this.type);
  }

  short(): ProtocolError {
    return new ProtocolError(MALFORMED, 'packet shorter than its fields (Remaining Length too small)', '§2.1.4', this.type);
  }

  u8(): number {
    if (this.pos >= this.end) throw this.short();
    return this.buf[this.pos++]!;
  }

  u16(): number {
    const p = this.pos;
    if (p + 2 > this.end) throw this.short();
    this.pos = p + 2;
    return (this.buf[p]! << 8) | this.buf[p + 1]!;
  }

  u32(): number {
    const p = this.pos;
    if (p + 4 > this.end) throw this.short();
    this.pos = p + 4;
    const b = this.buf;
    return b[p]! * 0x1000000 + ((b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!);
  }

  /** Variable Byte Integer (1.5.5): at most 4 bytes. */
  varint(): number {
    let value = 0;
    let mult = 1;
    for (let n = 0; n < 4; n++) {
      const b = this.u8();
      value += (b & 0x7f) * mult;
      if ((b & 0x80) === 0) return value;
      mult *= 128;
    }
    throw this.fail(MALFORMED, 'Variable Byte Integer longer than 4 bytes', '§1.5.5');
  }

  /** UTF-8 Encoded String (1.5.4), validated [MQTT-1.5.4-1], [MQTT-1.5.4-2]. */
  utf8(): string {
    const len = this.u16();
    const s = this.pos;
    const e = s + len;
    if (e > this.end) throw this.short();
    this.pos = e;
    if (len === 0) return '';
    const st = validateUtf8(this.buf, s, e);
    if (st !== Utf8Status.Ok) throw this.utf8Error(st);
    return (this.buf as FastBuffer).utf8Slice(s, e);
  }

  utf8Error(status: number): ProtocolError {
    const v5 = this.version === 5;
    return status === Utf8Status.Null
      ? this.fail(MALFORMED, 'UTF-8 string contains U+0000', v5 ? 'MQTT-1.5.4-2' : 'MQTT-1.5.3-2')
      : this.fail(MALFORMED, 'string is not well-formed UTF-8', v5 ? 'MQTT-1.5.4-1' : 'MQTT-1.5.3-1');
  }

  /** Binary Data (1.5.6), copied so that it may outlive the chunk it came from. */
  binary(): Buffer {
    const len = this.u16();
    const s = this.pos;
    const e = s + len;
    if (e > this.end) throw this.short();
    this.pos = e;
    const out = Buffer.allocUnsafe(len);
    this.buf.copy(out, 0, s, e);
    return out;
  }
}

// --------------------------------------------------------------------------
// Decoding

/**
 * Read a property length and the properties that follow it. Returns undefined
 * when the property length is 0, so that no empty object is allocated.
 *
 * - unknown identifier, or a property that packet may not carry → 0x81 Malformed (2.2.2.2)
 * - a non-repeatable property twice → 0x82 Protocol Error (each property's "more than once" rule)
 * - a value outside its range → 0x82 (0x94 for Topic Alias 0)
 *
 * User Properties keep their order and may repeat; Subscription Identifier may
 * repeat only in PUBLISH (3.3.2.3.8).
 */
export function decodeProperties(r: WireReader, packetType: number): Properties | undefined {
  // Fast path: property length 0, the common case.
  if (r.pos < r.end && r.buf[r.pos] === 0) {
    r.pos++;
    return undefined;
  }
  const len = r.varint();
  if (len === 0) return undefined;
  const outerEnd = r.end;
  const end = r.pos + len;
  if (end > outerEnd) throw r.short();
  r.end = end; // a property may not run past the property length
  const props: Properties = {};
  const rec = props as Record<string, unknown>;
  const bit = 1 << packetType;
  while (r.pos < end) {
    const id = r.varint();
    const d = id < PROPERTY_BY_ID.length ? PROPERTY_BY_ID[id] : undefined;
    if (d === undefined) throw r.fail(MALFORMED, `unknown property identifier 0x${id.toString(16)}`, '§2.2.2.2');
    if ((d.packets & bit) === 0) {
      const where = packetType === WILL_PROPERTIES ? 'Will Properties' : `this packet`;
      throw r.fail(MALFORMED, `property ${d.name} (0x${id.toString(16)}) is not allowed in ${where}`, '§2.2.2.2');
    }
    switch (d.type) {
      case 'pair': {
        const k = r.utf8();
        const v = r.utf8();
        if (props.userProperties === undefined) props.userProperties = [[k, v]];
        else props.userProperties.push([k, v]);
        continue;
      }
      case 'string':
        if (rec[d.name] !== undefined) throw duplicate(r, d);
        rec[d.name] = r.utf8();
        continue;
      case 'binary':
        if (rec[d.name] !== undefined) throw duplicate(r, d);
        rec[d.name] = r.binary();
        continue;
      default: {
        const value = d.type === 'byte' ? r.u8() : d.type === 'u16' ? r.u16() : d.type === 'u32' ? r.u32() : r.varint();
        if (value < d.min || value > d.max) {
          throw r.fail(d.rangeCode, `property ${d.name} has invalid value ${value}`, d.id === 0x23 ? 'MQTT-3.3.2-8' : '§2.2.2.2');
        }
        if (d.id === 0x0b) {
          const ids = props.subscriptionIdentifiers;
          if (ids === undefined) props.subscriptionIdentifiers = [value];
          else if (packetType === 3) ids.push(value);
          else throw duplicate(r, d);
          continue;
        }
        if (rec[d.name] !== undefined) throw duplicate(r, d);
        rec[d.name] = value;
      }
    }
  }
  r.end = outerEnd;
  return props;
}

function duplicate(r: WireReader, d: PropertyDef): ProtocolError {
  return r.fail(PROTOCOL_ERROR, `property ${d.name} (0x${d.id.toString(16)}) included more than once`, '§2.2.2.2');
}

// --------------------------------------------------------------------------
// Encoding

/** Bytes of a Variable Byte Integer. */
export function varintLength(n: number): number {
  return n < 128 ? 1 : n < 16384 ? 2 : n < 2097152 ? 3 : 4;
}

/** Write a Variable Byte Integer at pos; returns the position after it. */
export function writeVarint(buf: Buffer, pos: number, n: number): number {
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    buf[pos++] = b;
  } while (n > 0);
  return pos;
}

/** Longest UTF-8 string or binary field: its length is a two-byte integer (§1.5.4, §1.5.6). */
export const MAX_FIELD_BYTES = 65535;

/**
 * A Reason String that fits its two-byte length: longer ones are cut at a UTF-8 character boundary
 * (a Reason String is diagnostic text; a malformed packet is worse than a shorter text).
 */
export function fitReasonString(s: string): string {
  // A UTF-16 code unit is at most 3 UTF-8 bytes: short strings need no measuring.
  if (s.length * 3 <= MAX_FIELD_BYTES) return s;
  const b = Buffer.from(s, 'utf8');
  if (b.length <= MAX_FIELD_BYTES) return s;
  let cut = MAX_FIELD_BYTES;
  // Back off over continuation bytes (10xxxxxx): b[cut] then starts a character, so [0, cut) holds whole ones.
  while (cut > 0 && (b[cut]! & 0xc0) === 0x80) cut--;
  return b.toString('utf8', 0, cut);
}

function fieldTooLong(what: string, n: number): RangeError {
  return new RangeError(`${what} of ${n} bytes is longer than ${MAX_FIELD_BYTES} bytes`);
}

/** Write a length-prefixed UTF-8 string; returns the position after it. Throws for a string over 65,535 bytes. */
export function writeUtf8(buf: Buffer, pos: number, s: string): number {
  const len = s.length;
  const n = len === 0 ? 0 : len < 64 ? writeShortString(buf, pos + 2, s) : (buf as FastBuffer).utf8Write(s, pos + 2);
  // Callers size the buffer first (and refuse long strings there); never write a length prefix of n & 0xffff.
  if (n > MAX_FIELD_BYTES) throw fieldTooLong('string', n);
  buf[pos] = n >>> 8;
  buf[pos + 1] = n & 0xff;
  return pos + 2 + n;
}

// Short ASCII strings (most topics) are copied faster by a loop than by a call
// into C++; anything else goes to utf8Write, which rewrites from the start.
function writeShortString(buf: Buffer, pos: number, s: string): number {
  const n = s.length;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) return (buf as FastBuffer).utf8Write(s, pos);
    buf[pos + i] = c;
  }
  return n;
}

/** Write length-prefixed binary data; returns the position after it. */
export function writeBinary(buf: Buffer, pos: number, b: Uint8Array): number {
  const n = b.length;
  if (n > MAX_FIELD_BYTES) throw fieldTooLong('binary data', n);
  buf[pos] = n >>> 8;
  buf[pos + 1] = n & 0xff;
  buf.set(b, pos + 2);
  return pos + 2 + n;
}

/**
 * Length of the property list (without the property-length varint in front of it). Unknown keys and undefined values
 * are skipped. A Reason String is counted as {@link fitReasonString} cuts it; any other string, user property or binary
 * value over 65,535 bytes throws a RangeError.
 */
export function propertiesLength(props: Properties | undefined): number {
  if (props === undefined) return 0;
  let len = 0;
  const rec = props as Record<string, unknown>;
  for (const key in rec) {
    const value = rec[key];
    if (value === undefined) continue;
    const d = PROPERTY_BY_NAME[key];
    if (d === undefined) continue;
    switch (d.type) {
      case 'byte': len += 2; break;
      case 'u16': len += 3; break;
      case 'u32': len += 5; break;
      case 'varint':
        for (const id of value as number[]) len += 1 + varintLength(id);
        break;
      case 'string': len += 3 + (d.id === 0x1f ? Buffer.byteLength(fitReasonString(value as string), 'utf8') : fieldLength(d.name, value as string)); break;
      case 'binary': {
        const n = (value as Uint8Array).length;
        if (n > MAX_FIELD_BYTES) throw fieldTooLong(`property ${d.name}`, n);
        len += 3 + n;
        break;
      }
      case 'pair':
        for (const [k, v] of value as [string, string][]) len += 5 + fieldLength('userProperties', k) + fieldLength('userProperties', v);
        break;
    }
  }
  return len;
}

/** UTF-8 bytes of a property string; `name` (a constant, for the error) is the property's name. */
function fieldLength(name: string, s: string): number {
  const n = Buffer.byteLength(s, 'utf8');
  if (n > MAX_FIELD_BYTES) throw fieldTooLong(`property ${name}`, n);
  return n;
}

/** Total bytes of the property section: length varint plus list. */
export function propertiesSize(props: Properties | undefined): number {
  const len = propertiesLength(props);
  return varintLength(len) + len;
}

/**
 * Write the property length `len` (from {@link propertiesLength}) and the
 * properties, in the object's key order; returns the position after them.
 */
export function writeProperties(buf: Buffer, pos: number, props: Properties | undefined, len: number): number {
  pos = writeVarint(buf, pos, len);
  if (props === undefined || len === 0) return pos;
  const rec = props as Record<string, unknown>;
  for (const key in rec) {
    const value = rec[key];
    if (value === undefined) continue;
    const d = PROPERTY_BY_NAME[key];
    if (d === undefined) continue;
    switch (d.type) {
      case 'byte':
        buf[pos++] = d.id;
        buf[pos++] = value as number;
        break;
      case 'u16':
        buf[pos++] = d.id;
        buf.writeUInt16BE(value as number, pos);
        pos += 2;
        break;
      case 'u32':
        buf[pos++] = d.id;
        buf.writeUInt32BE(value as number, pos);
        pos += 4;
        break;
      case 'varint':
        for (const id of value as number[]) {
          buf[pos++] = d.id;
          pos = writeVarint(buf, pos, id);
        }
        break;
      case 'string':
        buf[pos++] = d.id;
        pos = writeUtf8(buf, pos, d.id === 0x1f ? fitReasonString(value as string) : (value as string));
        break;
      case 'binary':
        buf[pos++] = d.id;
        pos = writeBinary(buf, pos, value as Uint8Array);
        break;
      case 'pair':
        for (const [k, v] of value as [string, string][]) {
          buf[pos++] = d.id;
          pos = writeUtf8(buf, pos, k);
          pos = writeUtf8(buf, pos, v);
        }
        break;
    }
  }
  return pos;
}
