// What the broker sends is always well-formed and within what the client
// accepts: reason strings built from client input cannot make a malformed
// DISCONNECT, and the client's Maximum Packet Size [MQTT-3.1.2-24] applies to
// every packet, not only PUBLISH: Reason String and User Properties are left
// out to fit [MQTT-3.1.2-25], and a packet that still does not fit is not sent
// (counted in stats.packetsTooLarge).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { DisconnectPacket } from '../../src/protocol/packets.js';
import { ReasonCode } from '../../src/protocol/reason-codes.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { RawClient } from '../helpers/raw-client.js';

const T = { timeout: 20_000 };

describe('reason strings from client input', { timeout: 60_000 }, () => {
  let tb: TestBroker;
  before(async () => {
    tb = await startBroker();
  });
  after(async () => {
    await tb?.close();
  });

  it('a SUBSCRIBE whose invalid filter is ~65,000 control characters gets a DISCONNECT 0x81 that decodes, with a short Reason String', T, async () => {
    const { client } = await RawClient.connect(tb.port, 5, { clientId: 'ctl-filter' });
    try {
      client.subscribe([{ filter: '\u0001'.repeat(64_990) + '#/a', qos: 0 }]).catch(() => {});
      await client.closed();
      assert.deepEqual(client.decodeErrors.map((e) => e.message), [], 'the DISCONNECT decodes cleanly');
      const d = client.received.find((p) => p.type === 14) as DisconnectPacket | undefined;
      assert.ok(d, 'a DISCONNECT was sent');
      assert.equal(d.reasonCode, ReasonCode.MalformedPacket);
      const reason = d.properties?.reasonString ?? '';
      assert.ok(reason.length > 0 && Buffer.byteLength(reason) < 1000, `reason string of ${Buffer.byteLength(reason)} bytes`);
    } finally {
      client.destroy();
    }
  });
});
