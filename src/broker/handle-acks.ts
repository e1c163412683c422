// PUBACK, PUBREC, PUBREL, PUBCOMP (sections 3.4-3.7, 4.3 of MQTT 5.0).
// Outbound QoS 1: PUBLISH -> PUBACK. Outbound QoS 2: PUBLISH -> PUBREC ->
// (stored) PUBREL -> PUBCOMP. Inbound QoS 2: PUBREL -> (stored) PUBCOMP.

import type { PubackPacket, PubcompPacket, PubrecPacket, PubrelPacket } from '../protocol/packets.js';
import { ReasonCode } from '../protocol/reason-codes.js';
import type { Client } from './client.js';

export function handlePuback(client: Client, p: PubackPacket): void {
  client.session!.out.onPuback(p.packetId);
}

export function handlePubrec(client: Client, p: PubrecPacket): void {
  const known = client.session!.out.onPubrec(p.packetId, p.reasonCode);
  if (p.reasonCode >= 0x80) return;
  // PUBREL once the Released state is stored, so a restart cannot deliver the message twice.
  // For an unknown packet id, v5 answers PUBREL 0x92 (§3.6.2.1).
  client.sendPubrel(p.packetId, known || client.version !== 5 ? ReasonCode.Success : ReasonCode.PacketIdentifierNotFound);
}

export function handlePubrel(client: Client, p: PubrelPacket): void {
  const session = client.session!;
  const set = session.inboundQos2;
  let code: number = ReasonCode.Success;
  let released = false;
  if (set !== null && set.delete(p.packetId)) {
    released = true;
    if (session.stored) {
      client.broker.store.removeInboundQos2(session.id, p.packetId);
      client.broker.committer.touch();
    }
  } else {
    code = ReasonCode.PacketIdentifierNotFound;
  }
  // [MQTT-4.3.3-11]: PUBCOMP with the same packet id, after the release is stored. It gives the client back
  // one unit of its quota — never above the initial value, for a flow begun on an earlier connection (4.9).
  client.sendAckAfterCommit(7, p.packetId, code, undefined, released);
}

export function handlePubcomp(client: Client, p: PubcompPacket): void {
  client.session!.out.onPubcomp(p.packetId);
}
