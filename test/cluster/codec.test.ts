// The binary forms cluster mode sends between nodes: an envelope round-trips every field, frames pack and
// unpack to the same list, and a truncated value is refused rather than misread.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeEnvelope, encodeEnvelope, packFrames, unpackFrames, type Envelope } from '../../src/cluster/codec.js';

const envelope = fc.record(
  {
    message: fc.record(
      {
        id: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
        topic: fc.string({ minLength: 1, maxLength: 60, unit: 'grapheme' }),
        payload: fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
        qos: fc.constantFrom(0, 1, 2),
        retain: fc.boolean(),
        receivedAt: fc.integer({ min: 0, max: 2 ** 45 }),
        expiresAt: fc.integer({ min: 0, max: 2 ** 45 }),
        properties: fc.record({ contentType: fc.string({ minLength: 1, maxLength: 20 }), userProperties: fc.array(fc.tuple(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 })), { minLength: 1, maxLength: 3 }) }, { requiredKeys: ['contentType'] }),
      },
      { requiredKeys: ['id', 'topic', 'payload', 'qos', 'retain', 'receivedAt'] },
    ),
    origin: fc.string({ maxLength: 23, unit: 'grapheme' }),
    to: fc.record({ clientId: fc.string({ maxLength: 23 }), qos: fc.constantFrom(0, 1, 2), retain: fc.boolean(), subscriptionIds: fc.array(fc.integer({ min: 1, max: 268435455 }), { maxLength: 3 }) }, { requiredKeys: ['clientId', 'qos', 'retain'] }),
    group: fc.string({ maxLength: 30, unit: 'grapheme' }),
  },
  { requiredKeys: ['message'] },
) as fc.Arbitrary<Envelope>;

/** An envelope as comparable JSON (the payload as hex). */
function normal(e: Envelope): unknown {
  return JSON.parse(JSON.stringify({ ...e, message: { ...e.message, payload: e.message.payload.toString('hex') } }));
}

describe('cluster codec', () => {
  it('an envelope decodes to what was encoded (every optional field, any payload)', () => {
    fc.assert(
      fc.property(envelope, (e) => {
        const d = decodeEnvelope(encodeEnvelope(e));
        assert.deepEqual(normal(d), normal(e));
        assert.equal(Buffer.compare(d.message.payload, e.message.payload), 0);
      }),
      { numRuns: 500 },
    );
  });

  it('frames pack and unpack to the same list; a truncated pack is refused', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)), { minLength: 1, maxLength: 20 }), fc.nat(), (frames, cut) => {
        const packed = packFrames(frames);
        assert.deepEqual(unpackFrames(packed).map((f) => f.toString('hex')), frames.map((f) => f.toString('hex')));
        const at = cut % packed.length;
        if (at > 0) {
          const short = packed.subarray(0, at);
          // Cut on a frame boundary, it is a shorter list; anywhere else, an error.
          try {
            const got = unpackFrames(short);
            assert.ok(got.length < frames.length);
          } catch (err) {
            assert.match((err as Error).message, /truncated|trailing/);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('a truncated envelope is refused', () => {
    const b = encodeEnvelope({ message: { id: 7, topic: 'a/b', payload: Buffer.from('x'), qos: 1, retain: false, receivedAt: 1 }, origin: 'client-1' });
    assert.throws(() => decodeEnvelope(b.subarray(0, 24)), /truncated|out of range/i);
  });
});
