// The encoder never writes a malformed packet because a string is too long: a
// Reason String over 65,535 bytes is cut at a UTF-8 character boundary, any
// other UTF-8 string or binary field over 65,535 bytes throws a RangeError
// (never a length prefix of n & 0xffff). Reason strings the decoder builds from
// client input quote at most 100 characters of it.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Decoder } from '../../src/protocol/decoder.js';
import { encodePacket } from '../../src/protocol/encoder.js';
import type { ProtocolError } from '../../src/protocol/errors.js';
import type { Packet, Properties } from '../../src/protocol/packets.js';
import { fitReasonString, MAX_FIELD_BYTES } from '../../src/protocol/properties.js';

function decodeOne(bytes: Buffer, side: 'client' | 'server' = 'client'): Packet {
  const d = new Decoder({ side, protocolVersion: 5, maxPacketSize: 1 << 24 });
  const got: Packet[] = [];
  const errors: ProtocolError[] = [];
  d.onPacket = (p) => got.push(p);
  d.onError = (e) => errors.push(e);
  d.push(bytes);
  assert.deepEqual(errors.map((e) => e.message), [], 'decodes without error');
  assert.equal(got.length, 1);
  return got[0]!;
}

describe('UTF-8 field bounds in the encoder', () => {
  for (const [name, ch, bytesPerChar] of [
    ['ASCII', 'a', 1],
    ['2-byte', 'é', 2],
    ['3-byte', '€', 3],
    ['4-byte (surrogate pair)', '😀', 4],
  ] as const) {
    it(`a ${name} Reason String of ~100,000 bytes is cut to at most 65,535 bytes at a character boundary; the DISCONNECT decodes`, () => {
      const long = ch.repeat(Math.ceil(100_000 / bytesPerChar));
      const cut = fitReasonString(long);
      const n = Buffer.byteLength(cut, 'utf8');
      assert.ok(n <= MAX_FIELD_BYTES && n > MAX_FIELD_BYTES - bytesPerChar, `${n} bytes`);
      assert.ok(long.startsWith(cut), 'a prefix of the original');
      assert.equal(cut.length % ch.length, 0, 'whole characters only');
      for (const p of [
        { type: 14, reasonCode: 0x82, properties: { reasonString: long } },
        { type: 4, packetId: 7, reasonCode: 0x80, properties: { reasonString: long } },
        { type: 9, packetId: 8, reasonCodes: [0x80], properties: { reasonString: long } },
        { type: 2, sessionPresent: false, reasonCode: 0x85, properties: { reasonString: long } },
      ] as Packet[]) {
        const back = decodeOne(encodePacket(p, 5)) as { properties?: Properties };
        assert.equal(back.properties?.reasonString, cut, `packet type ${p.type}`);
      }
    });
  }

  it('a short Reason String is untouched', () => {
    const s = 'x'.repeat(21_845);
    assert.equal(fitReasonString(s), s);
    const at = 'é'.repeat(32_767) + 'a';
    assert.equal(Buffer.byteLength(at), MAX_FIELD_BYTES);
    assert.equal(fitReasonString(at), at);
  });

  it('other strings, user properties and binary fields over 65,535 bytes throw a RangeError', () => {
    const big = 'x'.repeat(MAX_FIELD_BYTES + 1);
    const cases: Packet[] = [
      { type: 2, sessionPresent: false, reasonCode: 0, properties: { assignedClientIdentifier: big } },
      { type: 14, reasonCode: 0, properties: { serverReference: big } },
      { type: 14, reasonCode: 0, properties: { userProperties: [['k', big]] } },
      { type: 14, reasonCode: 0, properties: { userProperties: [[big, 'v']] } },
      { type: 15, reasonCode: 0x18, properties: { authenticationMethod: 'm', authenticationData: Buffer.alloc(MAX_FIELD_BYTES + 1) } },
      { type: 3, qos: 0, dup: false, retain: false, topic: big, packetId: 0, payload: Buffer.alloc(0) },
    ];
    for (const p of cases) assert.throws(() => encodePacket(p, 5), RangeError, `packet type ${p.type}`);
    // At the limit: fine.
    const ok = decodeOne(encodePacket({ type: 14, reasonCode: 0, properties: { userProperties: [['k', 'v'.repeat(MAX_FIELD_BYTES)]] } }, 5));
    assert.equal(ok.type, 14);
  });
});

describe('reason strings the decoder builds from client input are short', () => {
  it('an invalid 65,000-character topic filter of control characters is quoted by at most 100 characters', () => {
    const filter = '\u0001'.repeat(64_990) + '#/a';
    const bytes = encodePacket(
      { type: 8, packetId: 1, subscriptions: [{ filter, qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 }] },
      5,
    );
    for (const v of [4, 5] as const) {
      const d = new Decoder({ side: 'server', protocolVersion: v, maxPacketSize: 1 << 20 });
      const errors: ProtocolError[] = [];
      d.onError = (e) => errors.push(e);
      d.onPacket = () => assert.fail('the SUBSCRIBE is refused');
      d.push(v === 5 ? bytes : encodePacket({ type: 8, packetId: 1, subscriptions: [{ filter, qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 }] }, 4));
      assert.equal(errors.length, 1);
      assert.ok(errors[0]!.message.length < 800, `${errors[0]!.message.length} characters`);
      assert.match(errors[0]!.message, /\(64993 characters\)/);
    }
  });
});
