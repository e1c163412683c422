// MQTT encoder: packets out as bytes, for protocol levels 3 (3.1), 4 (3.1.1)
// and 5 (5.0). Each packet is sized first and written into one exactly-sized
// buffer. 3.1/3.1.1 encodings drop what only 5.0 has (properties, reason codes
// on acks, UNSUBACK and DISCONNECT).

import type { Packet, Properties, ProtocolVersion, QoS } from './packets.js';
import { propertiesLength, varintLength, writeBinary, writeProperties, writeUtf8, writeVarint } from './properties.js';
import { v5ConnackToV3 } from './reason-codes.js';

const MAX_REMAINING_LENGTH = 268435455;

function strLen(s: string): number {
  const n = s.length === 0 ? 0 : Buffer.byteLength(s, 'utf8');
  if (n > 0xffff) throw new RangeError(`string of ${n} bytes is longer than 65535 bytes`);
  return n;
}

function binLen(b: Uint8Array): number {
  if (b.length > 0xffff) throw new RangeError(`binary data of ${b.length} bytes is longer than 65535 bytes`);
  return b.length;
}

/** Buffer with the fixed header (first byte + Remaining Length) written; the body starts at 1 + varintLength(rl). */
function allocPacket(b0: number, rl: number): Buffer {
  if (rl > MAX_REMAINING_LENGTH) throw new RangeError(`Remaining Length ${rl} exceeds ${MAX_REMAINING_LENGTH}`);
  const buf = Buffer.allocUnsafe(1 + varintLength(rl) + rl);
  buf[0] = b0;
  writeVarint(buf, 1, rl);
  return buf;
}

function bodyStart(rl: number): number {
  return 1 + varintLength(rl);
}

function writeU16(buf: Buffer, pos: number, n: number): number {
  buf[pos] = n >>> 8;
  buf[pos + 1] = n & 0xff;
  return pos + 2;
}

function publishFirstByte(qos: QoS, dup: boolean, retain: boolean): number {
  return 0x30 | (dup ? 0x08 : 0) | (qos << 1) | (retain ? 0x01 : 0);
}

/**
 * Everything of a PUBLISH but the payload, for fan-out: the broker copies the
 * header per recipient, writes the packet id at packetIdOffset (-1 for QoS 0),
 * may set DUP (0x08) in byte 0, and sends the shared payload after it.
 */
export function encodePublishHeader(
  topic: string,
  qos: QoS,
  dup: boolean,
  retain: boolean,
  packetId: number,
  properties: Properties | undefined,
  payloadLength: number,
  version: ProtocolVersion,
): { header: Buffer; packetIdOffset: number } {
  const topicLen = strLen(topic);
  const pl = version === 5 ? propertiesLength(properties) : 0;
  const varLen = 2 + topicLen + (qos > 0 ? 2 : 0) + (version === 5 ? varintLength(pl) + pl : 0);
  const rl = varLen + payloadLength;
  if (rl > MAX_REMAINING_LENGTH) throw new RangeError(`Remaining Length ${rl} exceeds ${MAX_REMAINING_LENGTH}`);
  const hl = 1 + varintLength(rl);
  const header = Buffer.allocUnsafe(hl + varLen);
  header[0] = publishFirstByte(qos, dup, retain);
  writeVarint(header, 1, rl);
  let pos = writeUtf8(header, hl, topic);
  let packetIdOffset = -1;
  if (qos > 0) {
    packetIdOffset = pos;
    pos = writeU16(header, pos, packetId);
  }
  if (version === 5) writeProperties(header, pos, properties, pl);
  return { header, packetIdOffset };
}

/**
 * PUBACK (4), PUBREC (5), PUBREL (6), PUBCOMP (7). In 5.0 the reason code and
 * property length are omitted when the reason is 0 and there are no
 * properties (3.4.2.1), and the property length alone when there are none.
 */
export function encodeAck(type: 4 | 5 | 6 | 7, packetId: number, reasonCode: number, version: ProtocolVersion, properties?: Properties): Buffer {
  const b0 = type === 6 ? 0x62 : type << 4;
  const pl = version === 5 && properties !== undefined ? propertiesLength(properties) : 0;
  if (version !== 5 || (reasonCode === 0 && pl === 0)) {
    const buf = Buffer.allocUnsafe(4);
    buf[0] = b0;
    buf[1] = 2;
    buf[2] = packetId >>> 8;
    buf[3] = packetId & 0xff;
    return buf;
  }
  if (pl === 0) {
    const buf = Buffer.allocUnsafe(5);
    buf[0] = b0;
    buf[1] = 3;
    buf[2] = packetId >>> 8;
    buf[3] = packetId & 0xff;
    buf[4] = reasonCode;
    return buf;
  }
  const rl = 3 + varintLength(pl) + pl;
  const buf = allocPacket(b0, rl);
  let pos = writeU16(buf, bodyStart(rl), packetId);
  buf[pos++] = reasonCode;
  writeProperties(buf, pos, properties, pl);
  return buf;
}

/** Encode any packet in the given protocol version. */
export function encodePacket(packet: Packet, version: ProtocolVersion): Buffer {
  const v5 = version === 5;
  switch (packet.type) {
    case 1: {
      const name = packet.protocolName !== '' ? packet.protocolName : version === 3 ? 'MQIsdp' : 'MQTT';
      let rl = 2 + strLen(name) + 4;
      const pl = v5 ? propertiesLength(packet.properties) : 0;
      if (v5) rl += varintLength(pl) + pl;
      rl += 2 + strLen(packet.clientId);
      const will = packet.will;
      let wpl = 0;
      if (will !== undefined) {
        if (v5) {
          wpl = propertiesLength(will.properties);
          rl += varintLength(wpl) + wpl;
        }
        rl += 4 + strLen(will.topic) + binLen(will.payload);
      }
      if (packet.username !== undefined) rl += 2 + strLen(packet.username);
      if (packet.password !== undefined) rl += 2 + binLen(packet.password);
      let flags = packet.clean ? 0x02 : 0;
      if (will !== undefined) flags |= 0x04 | (will.qos << 3) | (will.retain ? 0x20 : 0);
      if (packet.password !== undefined) flags |= 0x40;
      if (packet.username !== undefined) flags |= 0x80;
      const buf = allocPacket(0x10, rl);
      let pos = writeUtf8(buf, bodyStart(rl), name);
      buf[pos++] = version;
      buf[pos++] = flags;
      pos = writeU16(buf, pos, packet.keepAlive);
      if (v5) pos = writeProperties(buf, pos, packet.properties, pl);
      pos = writeUtf8(buf, pos, packet.clientId);
      if (will !== undefined) {
        if (v5) pos = writeProperties(buf, pos, will.properties, wpl);
        pos = writeUtf8(buf, pos, will.topic);
        pos = writeBinary(buf, pos, will.payload);
      }
      if (packet.username !== undefined) pos = writeUtf8(buf, pos, packet.username);
      if (packet.password !== undefined) writeBinary(buf, pos, packet.password);
      return buf;
    }
    case 2: {
      if (!v5) {
        // 3.1/3.1.1 return codes are 0..5; a 5.0 reason code (>= 0x80) is mapped to the closest one.
        const code = packet.reasonCode >= 0x80 ? v5ConnackToV3(packet.reasonCode) : packet.reasonCode;
        const buf = allocPacket(0x20, 2);
        buf[2] = version === 4 && packet.sessionPresent ? 1 : 0;
        buf[3] = code;
        return buf;
      }
      const pl = propertiesLength(packet.properties);
      const rl = 2 + varintLength(pl) + pl;
      const buf = allocPacket(0x20, rl);
      let pos = bodyStart(rl);
      buf[pos++] = packet.sessionPresent ? 1 : 0;
      buf[pos++] = packet.reasonCode;
      writeProperties(buf, pos, packet.properties, pl);
      return buf;
    }
    case 3: {
      const payload = packet.payload;
      const topicLen = strLen(packet.topic);
      const pl = v5 ? propertiesLength(packet.properties) : 0;
      const rl = 2 + topicLen + (packet.qos > 0 ? 2 : 0) + (v5 ? varintLength(pl) + pl : 0) + payload.length;
      const buf = allocPacket(publishFirstByte(packet.qos, packet.dup, packet.retain), rl);
      let pos = writeUtf8(buf, bodyStart(rl), packet.topic);
      if (packet.qos > 0) pos = writeU16(buf, pos, packet.packetId);
      if (v5) pos = writeProperties(buf, pos, packet.properties, pl);
      buf.set(payload, pos);
      return buf;
    }
    case 4: case 5: case 6: case 7:
      return encodeAck(packet.type, packet.packetId, packet.reasonCode, version, packet.properties);
    case 8: {
      const pl = v5 ? propertiesLength(packet.properties) : 0;
      let rl = 2 + (v5 ? varintLength(pl) + pl : 0);
      for (const s of packet.subscriptions) rl += 3 + strLen(s.filter);
      const buf = allocPacket(0x82, rl);
      let pos = writeU16(buf, bodyStart(rl), packet.packetId);
      if (v5) pos = writeProperties(buf, pos, packet.properties, pl);
      for (const s of packet.subscriptions) {
        pos = writeUtf8(buf, pos, s.filter);
        buf[pos++] = v5
          ? s.qos | (s.noLocal ? 0x04 : 0) | (s.retainAsPublished ? 0x08 : 0) | (s.retainHandling << 4)
          : s.qos;
      }
      return buf;
    }
    case 9: {
      const pl = v5 ? propertiesLength(packet.properties) : 0;
      const codes = packet.reasonCodes;
      const rl = 2 + (v5 ? varintLength(pl) + pl : 0) + codes.length;
      const buf = allocPacket(0x90, rl);
      let pos = writeU16(buf, bodyStart(rl), packet.packetId);
      if (v5) pos = writeProperties(buf, pos, packet.properties, pl);
      // 3.1.1 has a single failure code, 0x80 (3.9.3).
      for (const c of codes) buf[pos++] = !v5 && c >= 0x80 ? 0x80 : c;
      return buf;
    }
    case 10: {
      const pl = v5 ? propertiesLength(packet.properties) : 0;
      let rl = 2 + (v5 ? varintLength(pl) + pl : 0);
      for (const f of packet.filters) rl += 2 + strLen(f);
      const buf = allocPacket(0xa2, rl);
      let pos = writeU16(buf, bodyStart(rl), packet.packetId);
      if (v5) pos = writeProperties(buf, pos, packet.properties, pl);
      for (const f of packet.filters) pos = writeUtf8(buf, pos, f);
      return buf;
    }
    case 11: {
      if (!v5) {
        const buf = allocPacket(0xb0, 2);
        writeU16(buf, 2, packet.packetId);
        return buf;
      }
      const pl = propertiesLength(packet.properties);
      const rl = 2 + varintLength(pl) + pl + packet.reasonCodes.length;
      const buf = allocPacket(0xb0, rl);
      let pos = writeU16(buf, bodyStart(rl), packet.packetId);
      pos = writeProperties(buf, pos, packet.properties, pl);
      for (const c of packet.reasonCodes) buf[pos++] = c;
      return buf;
    }
    case 12:
      return allocPacket(0xc0, 0);
    case 13:
      return allocPacket(0xd0, 0);
    case 14:
      if (!v5) return allocPacket(0xe0, 0);
      return encodeReasonOnly(0xe0, packet.reasonCode, packet.properties);
    case 15:
      if (!v5) throw new Error('AUTH exists only in MQTT 5.0');
      return encodeReasonOnly(0xf0, packet.reasonCode, packet.properties);
  }
}

/** DISCONNECT / AUTH in 5.0: Remaining Length 0 for reason 0 without properties, 1 for a reason alone (3.14.2.1, 3.15.2.1). */
function encodeReasonOnly(b0: number, reasonCode: number, properties: Properties | undefined): Buffer {
  const pl = propertiesLength(properties);
  if (pl === 0) {
    if (reasonCode === 0) return allocPacket(b0, 0);
    const buf = allocPacket(b0, 1);
    buf[2] = reasonCode;
    return buf;
  }
  const rl = 1 + varintLength(pl) + pl;
  const buf = allocPacket(b0, rl);
  const pos = bodyStart(rl);
  buf[pos] = reasonCode;
  writeProperties(buf, pos + 1, properties, pl);
  return buf;
}
