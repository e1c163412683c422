// The one error type of the wire codec. It carries the MQTT 5.0 reason code a
// broker (or client) should answer with, and the conformance statement that
// was violated, so that the broker can pick its reaction without parsing
// messages: CONNACK with the code, DISCONNECT with the code, or just close.

import { PACKET_NAMES } from './packets.js';

export class ProtocolError extends Error {
  /** v5 reason code: 0x81 Malformed Packet, 0x82 Protocol Error, 0x84, 0x94, 0x95, ... */
  readonly reasonCode: number;
  /** Spec reference, e.g. 'MQTT-3.3.1-4', or a section ('§2.1.4') where the rule has no number. */
  readonly ref: string | undefined;
  /** Packet type being decoded when the error happened (undefined if unknown). */
  readonly packetType: number | undefined;
  /**
   * Set when the error happened while decoding a CONNECT whose protocol level
   * was already read (3, 4, 5 or an unsupported level), so that the broker
   * knows in which format, if any, to answer [MQTT-3.1.2-2] / section 4.13.
   */
  protocolVersion?: number;

  constructor(reasonCode: number, message: string, ref?: string, packetType?: number) {
    super(message);
    this.name = 'ProtocolError';
    this.reasonCode = reasonCode;
    this.ref = ref;
    this.packetType = packetType;
  }

  override toString(): string {
    const where = this.packetType !== undefined ? ` in ${PACKET_NAMES[this.packetType] ?? `type ${this.packetType}`}` : '';
    const ref = this.ref !== undefined ? ` [${this.ref}]` : '';
    return `ProtocolError 0x${this.reasonCode.toString(16)}${where}: ${this.message}${ref}`;
  }
}
