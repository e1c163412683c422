// The MQTT wire codec: packet types, reason codes, decoder, encoder, v5
// properties, topic and UTF-8 validation.

export * from './packets.js';
export * from './reason-codes.js';
export { ProtocolError } from './errors.js';
export { Utf8Status, validateUtf8, isValidMqttString } from './utf8.js';
export type { Utf8StatusCode } from './utf8.js';
export { validateTopicName, validateTopicFilter, parseSharedFilter, topicMatches } from './topic.js';
export {
  PROPERTY_TABLE,
  PROPERTY_BY_ID,
  PROPERTY_BY_NAME,
  WILL_PROPERTIES,
  WireReader,
  decodeProperties,
  propertiesLength,
  propertiesSize,
  writeProperties,
  varintLength,
  writeVarint,
} from './properties.js';
export type { PropertyDef, PropertyType } from './properties.js';
export { Decoder, MAX_PACKET_SIZE } from './decoder.js';
export type { DecoderOptions } from './decoder.js';
export { encodePacket, encodePublishHeader, encodeAck } from './encoder.js';
