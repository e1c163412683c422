// Public embedding API (filled in with the broker core).
export type { Packet, Properties, ProtocolVersion, QoS } from './protocol/packets.js';
