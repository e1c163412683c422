// MQTT control packet types, shared by the decoder, the encoder and the broker.
// One shape per packet for all protocol versions: fields that exist only in
// MQTT 5.0 (reason codes on acks, properties) are optional and ignored when a
// 3.1/3.1.1 packet is encoded.

/** Protocol level in CONNECT: 3 = MQTT 3.1 ("MQIsdp"), 4 = 3.1.1, 5 = 5.0. */
export type ProtocolVersion = 3 | 4 | 5;
export type QoS = 0 | 1 | 2;

export const PacketType = {
  CONNECT: 1,
  CONNACK: 2,
  PUBLISH: 3,
  PUBACK: 4,
  PUBREC: 5,
  PUBREL: 6,
  PUBCOMP: 7,
  SUBSCRIBE: 8,
  SUBACK: 9,
  UNSUBSCRIBE: 10,
  UNSUBACK: 11,
  PINGREQ: 12,
  PINGRESP: 13,
  DISCONNECT: 14,
  AUTH: 15,
} as const;
export type PacketTypeCode = (typeof PacketType)[keyof typeof PacketType];

export const PACKET_NAMES: Readonly<Record<number, string>> = {
  1: 'CONNECT', 2: 'CONNACK', 3: 'PUBLISH', 4: 'PUBACK', 5: 'PUBREC', 6: 'PUBREL',
  7: 'PUBCOMP', 8: 'SUBSCRIBE', 9: 'SUBACK', 10: 'UNSUBSCRIBE', 11: 'UNSUBACK',
  12: 'PINGREQ', 13: 'PINGRESP', 14: 'DISCONNECT', 15: 'AUTH',
};

export type UserProperty = [name: string, value: string];

/**
 * MQTT 5.0 properties (section 2.2.2.2). Which property may appear in which
 * packet is enforced by the decoder (src/protocol/properties.ts). User
 * properties keep their order and may repeat [MQTT-3.3.2-18];
 * subscriptionIdentifiers may repeat only in PUBLISH (server to client).
 */
export interface Properties {
  payloadFormatIndicator?: number; // 0x01 byte
  messageExpiryInterval?: number; // 0x02 four byte integer
  contentType?: string; // 0x03 UTF-8
  responseTopic?: string; // 0x08 UTF-8
  correlationData?: Buffer; // 0x09 binary
  subscriptionIdentifiers?: number[]; // 0x0B variable byte integer
  sessionExpiryInterval?: number; // 0x11 four byte
  assignedClientIdentifier?: string; // 0x12 UTF-8
  serverKeepAlive?: number; // 0x13 two byte
  authenticationMethod?: string; // 0x15 UTF-8
  authenticationData?: Buffer; // 0x16 binary
  requestProblemInformation?: number; // 0x17 byte
  willDelayInterval?: number; // 0x18 four byte
  requestResponseInformation?: number; // 0x19 byte
  responseInformation?: string; // 0x1A UTF-8
  serverReference?: string; // 0x1C UTF-8
  reasonString?: string; // 0x1F UTF-8
  receiveMaximum?: number; // 0x21 two byte
  topicAliasMaximum?: number; // 0x22 two byte
  topicAlias?: number; // 0x23 two byte
  maximumQoS?: number; // 0x24 byte
  retainAvailable?: number; // 0x25 byte
  userProperties?: UserProperty[]; // 0x26 UTF-8 string pair
  maximumPacketSize?: number; // 0x27 four byte
  wildcardSubscriptionAvailable?: number; // 0x28 byte
  subscriptionIdentifiersAvailable?: number; // 0x29 byte
  sharedSubscriptionAvailable?: number; // 0x2A byte
}

export interface WillMessage {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  /** Will properties (v5 only): willDelayInterval, payloadFormatIndicator, messageExpiryInterval, contentType, responseTopic, correlationData, userProperties. */
  properties?: Properties;
}

export interface ConnectPacket {
  type: 1;
  /** "MQTT" for 3.1.1/5.0, "MQIsdp" for 3.1. */
  protocolName: string;
  protocolVersion: ProtocolVersion;
  /** Clean Session (3.1/3.1.1) or Clean Start (5.0). */
  clean: boolean;
  keepAlive: number;
  clientId: string;
  username?: string;
  password?: Buffer;
  will?: WillMessage;
  properties?: Properties;
}

export interface ConnackPacket {
  type: 2;
  sessionPresent: boolean;
  /** v5 reason code, or the 3.1.1 return code (0..5). */
  reasonCode: number;
  properties?: Properties;
}

export interface PublishPacket {
  type: 3;
  qos: QoS;
  dup: boolean;
  retain: boolean;
  /** May be '' in v5 when a topic alias is used. */
  topic: string;
  /** 0 for QoS 0. */
  packetId: number;
  /** On decode: a subarray of the input chunk (no copy). Copy before keeping it past the current turn. */
  payload: Buffer;
  properties?: Properties;
}

/** PUBACK, PUBREC, PUBREL, PUBCOMP: same layout. */
export interface AckPacket<T extends 4 | 5 | 6 | 7 = 4 | 5 | 6 | 7> {
  type: T;
  packetId: number;
  /** v5 only on the wire; 0 (Success) when absent. */
  reasonCode: number;
  properties?: Properties;
}
export type PubackPacket = AckPacket<4>;
export type PubrecPacket = AckPacket<5>;
export type PubrelPacket = AckPacket<6>;
export type PubcompPacket = AckPacket<7>;

export interface SubscriptionRequest {
  filter: string;
  qos: QoS;
  /** v5 subscription options; false/0 on 3.1.1. */
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: 0 | 1 | 2;
}

export interface SubscribePacket {
  type: 8;
  packetId: number;
  subscriptions: SubscriptionRequest[];
  properties?: Properties;
}

export interface SubackPacket {
  type: 9;
  packetId: number;
  /** Granted QoS (0,1,2) or a failure code (0x80 in 3.1.1; any v5 reason code >= 0x80). */
  reasonCodes: number[];
  properties?: Properties;
}

export interface UnsubscribePacket {
  type: 10;
  packetId: number;
  filters: string[];
  properties?: Properties;
}

export interface UnsubackPacket {
  type: 11;
  packetId: number;
  /** v5 only on the wire; empty on 3.1.1. */
  reasonCodes: number[];
  properties?: Properties;
}

export interface PingreqPacket { type: 12 }
export interface PingrespPacket { type: 13 }

export interface DisconnectPacket {
  type: 14;
  /** v5 only on the wire; 0 when absent. */
  reasonCode: number;
  properties?: Properties;
}

export interface AuthPacket {
  type: 15;
  reasonCode: number;
  properties?: Properties;
}

export type Packet =
  | ConnectPacket
  | ConnackPacket
  | PublishPacket
  | PubackPacket
  | PubrecPacket
  | PubrelPacket
  | PubcompPacket
  | SubscribePacket
  | SubackPacket
  | UnsubscribePacket
  | UnsubackPacket
  | PingreqPacket
  | PingrespPacket
  | DisconnectPacket
  | AuthPacket;
