// Every fuzz finding (test/fixtures/catalogue.ts fuzzFindings), replayed against a live broker: after its
// prefix (a valid CONNECT), the bytes get the answer the finding's entry expects, and the broker serves a
// healthy client afterwards.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Decoder } from '../../src/protocol/decoder.js';
import type { ProtocolError } from '../../src/protocol/errors.js';
import { fuzzFindings } from '../fixtures/catalogue.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { RawClient } from '../helpers/raw-client.js';

describe('fuzz findings replayed against a live broker', () => {
  let tb: TestBroker;
  before(async () => {
    tb = await startBroker();
  });
  after(async () => {
    await tb.close();
  });

  for (const f of fuzzFindings) {
    it(`${f.name} [${f.ref}]: ${f.expect?.kind} ${f.expect?.kind === 'disconnect' ? '0x' + f.expect.reasonCode.toString(16) : ''} (${f.found})`, async () => {
      // The decoder's own verdict on the bytes alone.
      const d = new Decoder({ side: f.side, protocolVersion: f.bytes[0]! >> 4 === 1 ? 0 : f.version });
      let err: ProtocolError | null = null;
      d.onError = (e) => (err = e);
      d.push(f.bytes);
      assert.equal((err as ProtocolError | null)?.reasonCode, f.reasonCode, 'decoder reason code');

      const c = await RawClient.open(tb.port, f.version);
      try {
        c.send(f.prefix);
        c.send(f.bytes);
        const first = await c.next();
        if (f.prefix[0]! >> 4 === 1) assert.equal(first.type, 2, 'CONNACK for the prefix');
        const exp = f.expect!;
        if (exp.kind === 'disconnect') {
          const dis = await c.expect(14);
          assert.equal(dis.reasonCode, exp.reasonCode, 'DISCONNECT reason code');
        }
        await c.closed();
      } finally {
        c.destroy();
      }
      const { client, connack } = await RawClient.connect(tb.port, 5);
      assert.equal(connack.reasonCode, 0);
      client.destroy();
      assert.equal(tb.broker.stats.internalErrors, 0, 'internalErrors');
    });
  }
});
