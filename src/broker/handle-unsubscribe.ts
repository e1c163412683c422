// UNSUBSCRIBE (section 3.10, 3.11 of MQTT 5.0): one reason code per filter;
// messages already in flight or queued for the session are still delivered
// [MQTT-3.10.4-3].

import type { UnsubscribePacket } from '../protocol/packets.js';
import { ReasonCode } from '../protocol/reason-codes.js';
import type { Client } from './client.js';

export function handleUnsubscribe(client: Client, p: UnsubscribePacket): void {
  const broker = client.broker;
  const session = client.session!;
  const codes = p.filters.map((filter) =>
    broker.removeSubscription(session, filter) ? ReasonCode.Success : ReasonCode.NoSubscriptionExisted,
  );
  // UNSUBACK once the removal is stored [MQTT-3.10.4-4].
  broker.committer.send(client, client.encode({ type: 11, packetId: p.packetId, reasonCodes: codes }));
}
