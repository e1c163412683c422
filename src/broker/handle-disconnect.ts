// DISCONNECT from a client (section 3.14 of MQTT 5.0, 3.14 of 3.1.1).

import type { DisconnectPacket } from '../protocol/packets.js';
import { ReasonCode } from '../protocol/reason-codes.js';
import type { Client } from './client.js';

export function handleDisconnect(client: Client, p: DisconnectPacket): void {
  const session = client.session!;
  const expiry = p.properties?.sessionExpiryInterval;
  if (expiry !== undefined) {
    // A session that ends with the connection cannot be given an expiry now (§3.14.2.2.2). The rule is about
    // the value in CONNECT: a client whose non-zero request was capped to 0 by maxSessionExpiry may repeat it.
    if (client.connectExpiry === 0 && expiry !== 0) {
      client.fail(ReasonCode.ProtocolError, 'Session Expiry Interval set on DISCONNECT after being 0 at CONNECT (§3.14.2.2.2)');
      return;
    }
    client.broker.setSessionExpiry(session, Math.min(expiry, client.broker.limits.maxSessionExpiry));
  }
  // Reason 0x04 keeps the will; any other DISCONNECT deletes it [MQTT-3.14.4-3] (3.1.1: [MQTT-3.14.4-3] too).
  client.normalDisconnect = p.reasonCode !== ReasonCode.DisconnectWithWillMessage;
  client.closedByClient = true;
  // After DISCONNECT the server sends nothing more and closes [MQTT-3.14.4-1/2].
  client.closeNow(p.reasonCode, 'client disconnected');
}
