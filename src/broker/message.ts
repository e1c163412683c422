// A message inside the broker: what was published, once, shared by every
// recipient. It is a StoredMessage (the store keeps it as it is) plus a cache
// of encoded PUBLISH headers, so that a message going to many recipients of
// the same protocol version, QoS and retain flag is encoded once.

import type { Properties, ProtocolVersion, QoS } from '../protocol/packets.js';
import { encodePublishHeader } from '../protocol/encoder.js';
import type { StoredMessage } from '../store/types.js';
import type { BrokerMessage } from './hooks.js';

export interface EncodedHeader {
  header: Buffer;
  packetIdOffset: number;
}

export class Message implements StoredMessage {
  id: number;
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  properties: Properties | undefined;
  expiresAt: number | undefined;
  receivedAt: number;
  /** Client id of the publisher (for No Local); undefined for broker.publish() and restored messages. */
  origin: string | undefined;
  /** Encoded headers without extras, by (version, qos, retain). */
  private headers: (EncodedHeader | undefined)[] | undefined;

  constructor(
    id: number,
    topic: string,
    payload: Buffer,
    qos: QoS,
    retain: boolean,
    properties: Properties | undefined,
    expiresAt: number | undefined,
    receivedAt: number,
    origin: string | undefined,
  ) {
    this.id = id;
    this.topic = topic;
    this.payload = payload;
    this.qos = qos;
    this.retain = retain;
    this.properties = properties;
    this.expiresAt = expiresAt;
    this.receivedAt = receivedAt;
    this.origin = origin;
    this.headers = undefined;
  }

  static fromStored(m: StoredMessage): Message {
    if (m instanceof Message) return m;
    return new Message(m.id, m.topic, m.payload, m.qos, m.retain, m.properties, m.expiresAt, m.receivedAt, undefined);
  }

  /** The payload may be a view into a socket chunk: copy it once before the message outlives this turn. */
  own(): void {
    const p = this.payload;
    if (p.byteOffset !== 0 || p.buffer.byteLength !== p.length) {
      // Not Buffer.from(p): below 4 KiB it copies into Node's shared 8 KiB pool, and a message kept long
      // (retained, queued for an offline session) then pins the whole slab: 8 KiB per small message
      // (fuzz campaign finding: 3,500 retained messages of ~40 bytes held 57 MB).
      const c = Buffer.allocUnsafeSlow(p.length);
      p.copy(c);
      this.payload = c;
    }
  }

  isExpired(now: number): boolean {
    return this.expiresAt !== undefined && this.expiresAt <= now;
  }

  /** Remaining Message Expiry Interval in seconds for forwarding [MQTT-3.3.2-6]. */
  remainingExpiry(now: number): number {
    return Math.max(0, Math.ceil(((this.expiresAt as number) - now) / 1000));
  }

  /** Header for a plain delivery (no subscription ids, no topic alias, no expiry) with packet id 0 and DUP 0. */
  header(version: ProtocolVersion, qos: QoS, retain: boolean): EncodedHeader {
    const slot = (version - 3) * 6 + qos * 2 + (retain ? 1 : 0);
    let cache = this.headers;
    if (cache === undefined) cache = this.headers = [];
    let h = cache[slot];
    if (h === undefined) {
      h = encodePublishHeader(this.topic, qos, false, retain, qos === 0 ? 0 : 1, version === 5 ? this.properties : undefined, this.payload.length, version);
      if (this.retain) {
        // A retained message lives long and so does this cache: an unpooled copy, or the header (allocated
        // from Node's shared 8 KiB pool) pins its whole slab (fuzz campaign finding, see own()).
        const header = Buffer.allocUnsafeSlow(h.header.length);
        h.header.copy(header);
        h = { header, packetIdOffset: h.packetIdOffset };
      }
      cache[slot] = h;
    }
    return h;
  }

  /** Properties to send to a v5 client, with the extras that depend on the recipient. */
  outboundProperties(now: number, subscriptionIds: readonly number[] | undefined, topicAlias: number): Properties | undefined {
    if (this.expiresAt === undefined && subscriptionIds === undefined && topicAlias === 0) return this.properties;
    const p: Properties = { ...this.properties };
    if (this.expiresAt !== undefined) p.messageExpiryInterval = this.remainingExpiry(now);
    if (subscriptionIds !== undefined) p.subscriptionIdentifiers = subscriptionIds as number[];
    if (topicAlias !== 0) p.topicAlias = topicAlias;
    return p;
  }

  toBrokerMessage(now: number): BrokerMessage {
    let properties = this.properties;
    if (this.expiresAt !== undefined) properties = { ...properties, messageExpiryInterval: this.remainingExpiry(now) };
    return { topic: this.topic, payload: this.payload, qos: this.qos, retain: this.retain, properties };
  }
}

/** The application properties a broker forwards unchanged [MQTT-3.3.2-15..20]. */
export function forwardableProperties(p: Properties | undefined): Properties | undefined {
  if (p === undefined) return undefined;
  let out: Properties | undefined;
  if (p.payloadFormatIndicator !== undefined) (out ??= {}).payloadFormatIndicator = p.payloadFormatIndicator;
  if (p.contentType !== undefined) (out ??= {}).contentType = p.contentType;
  if (p.responseTopic !== undefined) (out ??= {}).responseTopic = p.responseTopic;
  if (p.correlationData !== undefined) (out ??= {}).correlationData = Buffer.from(p.correlationData);
  if (p.userProperties !== undefined) (out ??= {}).userProperties = p.userProperties;
  return out;
}
