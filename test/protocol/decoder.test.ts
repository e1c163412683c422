// Decoder framing: partial frames, many packets per chunk, zero-copy payloads,
// the size limit checked before buffering, Remaining Length boundaries, the
// failed state, CONNECT handling, exceptions thrown by the consumer.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Decoder, type DecoderOptions } from '../../src/protocol/decoder.js';
import { encodePacket } from '../../src/protocol/encoder.js';
import { ProtocolError } from '../../src/protocol/errors.js';
import type { Packet, ProtocolVersion, PublishPacket } from '../../src/protocol/packets.js';
import { connectFor, validPackets } from '../fixtures/catalogue.js';

interface Collector {
  d: Decoder;
  packets: Packet[];
  errors: ProtocolError[];
}

function collector(options?: DecoderOptions): Collector {
  const d = new Decoder(options);
  const c: Collector = { d, packets: [], errors: [] };
  d.onPacket = (p) => c.packets.push(p);
  d.onError = (e) => c.errors.push(e);
  return c;
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 0x100000000;
  };
}

function publish(topic: string, payload: Buffer, qos: 0 | 1 | 2 = 0, packetId = 0): PublishPacket {
  return { type: 3, qos, dup: false, retain: false, topic, packetId: qos === 0 ? 0 : packetId, payload };
}

/** A stream: a valid CONNECT, then every valid client→server catalogue packet of the version (but CONNECT). */
function stream(v: ProtocolVersion): { bytes: Buffer; packets: Packet[] } {
  const c = connectFor(v);
  const entries = validPackets.filter((e) => e.version === v && e.side === 'server' && e.packet!.type !== 1);
  return {
    bytes: Buffer.concat([c.bytes, ...entries.map((e) => e.bytes)]),
    packets: [c.packet, ...entries.map((e) => e.packet!)],
  };
}

describe('framing', () => {
  for (const v of [3, 4, 5] as const) {
    const s = stream(v);
    it(`v${v}: whole stream in one chunk`, () => {
      const c = collector();
      c.d.push(s.bytes);
      assert.deepEqual(c.errors, []);
      assert.deepStrictEqual(c.packets, s.packets);
      assert.equal(c.d.hasPartial, false);
    });
    it(`v${v}: one byte at a time`, () => {
      const c = collector();
      for (let i = 0; i < s.bytes.length; i++) c.d.push(s.bytes.subarray(i, i + 1));
      assert.deepEqual(c.errors, []);
      assert.deepStrictEqual(c.packets, s.packets);
    });
    it(`v${v}: random splits (200 seeds), chunks copied and then overwritten`, () => {
      for (let seed = 1; seed <= 200; seed++) {
        const r = rng(seed);
        const c = collector();
        let off = 0;
        const got: Packet[] = [];
        c.d.onPacket = (p) => {
          // Packets must be consumed (payload copied) within the push that delivered them.
          got.push(p.type === 3 ? { ...p, payload: Buffer.from(p.payload) } : p);
        };
        while (off < s.bytes.length) {
          const n = 1 + Math.floor(r() * 12);
          const chunk = Buffer.from(s.bytes.subarray(off, off + n));
          c.d.push(chunk);
          chunk.fill(0xee); // the decoder must not keep references to past chunks
          off += n;
        }
        assert.deepEqual(c.errors, [], `seed ${seed}`);
        assert.deepStrictEqual(got, s.packets, `seed ${seed}`);
      }
    });
  }

  it('many packets in one chunk', () => {
    const packets: PublishPacket[] = [];
    for (let i = 0; i < 5000; i++) packets.push(publish(`t/${i}`, Buffer.from(String(i)), (i % 3) as 0 | 1 | 2, 1 + (i % 65535)));
    const c = collector({ protocolVersion: 5 });
    c.d.push(Buffer.concat(packets.map((p) => encodePacket(p, 5))));
    assert.equal(c.packets.length, 5000);
    assert.deepStrictEqual(c.packets, packets);
  });

  it('a partial fixed header split inside the Remaining Length', () => {
    const p = publish('x', Buffer.alloc(300, 1));
    const bytes = encodePacket(p, 4); // 30 ae 02 ...
    const c = collector({ protocolVersion: 4 });
    c.d.push(bytes.subarray(0, 2));
    assert.equal(c.d.bufferedBytes, 2);
    c.d.push(bytes.subarray(2, 3));
    assert.equal(c.d.hasPartial, true);
    c.d.push(bytes.subarray(3));
    assert.deepStrictEqual(c.packets, [p]);
    assert.equal(c.d.hasPartial, false);
  });

  it('large packets split into many chunks (above the preallocation limit)', () => {
    const payload = Buffer.alloc(1_000_000);
    for (let i = 0; i < payload.length; i++) payload[i] = i & 0xff;
    const p = publish('big', payload, 1, 9);
    const bytes = Buffer.concat([encodePacket(p, 5), encodePacket({ type: 12 }, 5)]);
    const c = collector({ protocolVersion: 5 });
    for (let off = 0; off < bytes.length; off += 65536) {
      const chunk = Buffer.from(bytes.subarray(off, off + 65536));
      c.d.push(chunk);
      chunk.fill(0);
      // Fixed header: 1 byte + 3 bytes of Remaining Length; the body bytes so far are buffered.
      if (off + 65536 < bytes.length - 2) assert.equal(c.d.bufferedBytes, off + 65536 - 4);
    }
    assert.deepEqual(c.errors, []);
    assert.equal(c.packets.length, 2);
    assert.ok((c.packets[0] as PublishPacket).payload.equals(payload));
    assert.deepStrictEqual(c.packets[1], { type: 12 });
  });
});

describe('zero copy', () => {
  it('a PUBLISH payload inside the chunk is a view of the chunk', () => {
    const bytes = Buffer.concat([encodePacket(publish('a', Buffer.from('one')), 4), encodePacket(publish('b', Buffer.from('two')), 4)]);
    const c = collector({ protocolVersion: 4 });
    c.d.push(bytes);
    const [p1, p2] = c.packets as PublishPacket[];
    assert.equal(p1!.payload.buffer, bytes.buffer);
    assert.equal(p2!.payload.buffer, bytes.buffer);
    assert.equal(p2!.payload.byteOffset, bytes.byteOffset + bytes.length - 3);
    bytes[bytes.length - 1] = 0x21;
    assert.equal(p2!.payload.toString(), 'tw!');
  });
  it('no properties object when the property length is 0', () => {
    const c = collector({ protocolVersion: 5 });
    c.d.push(Buffer.from([0x30, 0x05, 0x00, 0x01, 0x61, 0x00, 0x62]));
    assert.equal(c.packets.length, 1);
    assert.ok(!('properties' in c.packets[0]!));
  });
});

describe('maximum packet size', () => {
  it('a fixed header announcing 200 MB fails at once with 0x95 and buffers nothing', () => {
    const c = collector({ protocolVersion: 5, maxPacketSize: 1024 * 1024 });
    const rl = 200 * 1024 * 1024;
    const header = Buffer.from([0x30, (rl & 0x7f) | 0x80, ((rl >> 7) & 0x7f) | 0x80, ((rl >> 14) & 0x7f) | 0x80, rl >> 21]);
    c.d.push(header);
    assert.equal(c.errors.length, 1);
    assert.equal(c.errors[0]!.reasonCode, 0x95);
    assert.equal(c.errors[0]!.ref, 'MQTT-3.2.2-15');
    assert.equal(c.d.failed, true);
    assert.equal(c.d.hasPartial, false);
    assert.equal(c.d.bufferedBytes, 0);
    c.d.push(Buffer.alloc(1000));
    assert.equal(c.errors.length, 1, 'input after the error is ignored');
  });
  it('the same header fed one byte at a time fails on its last byte', () => {
    const c = collector({ protocolVersion: 4, maxPacketSize: 1024 * 1024 });
    const header = [0x30, 0x80, 0x80, 0x80, 0x64];
    for (let i = 0; i < header.length; i++) {
      c.d.push(Buffer.from([header[i]!]));
      assert.equal(c.errors.length, i === header.length - 1 ? 1 : 0);
    }
    assert.equal(c.errors[0]!.reasonCode, 0x95);
    assert.equal(c.d.bufferedBytes, 0);
  });
  it('the limit counts the fixed header: exactly maxPacketSize passes, one more byte fails', () => {
    const ok = encodePacket(publish('t', Buffer.alloc(100)), 4); // 2 + 2 + 1 + 100 = 105 bytes
    assert.equal(ok.length, 105);
    const c1 = collector({ protocolVersion: 4, maxPacketSize: 105 });
    c1.d.push(ok);
    assert.equal(c1.packets.length, 1);
    const c2 = collector({ protocolVersion: 4, maxPacketSize: 104 });
    c2.d.push(ok);
    assert.equal(c2.errors[0]!.reasonCode, 0x95);
  });
  it('maxPacketSize may be changed between packets (e.g. from onPacket)', () => {
    const small = encodePacket(publish('t', Buffer.alloc(10)), 4);
    const c = collector({ protocolVersion: 4 });
    c.d.onPacket = (p) => {
      c.packets.push(p);
      c.d.maxPacketSize = 10;
    };
    c.d.push(Buffer.concat([small, small]));
    assert.equal(c.packets.length, 1);
    assert.equal(c.errors[0]!.reasonCode, 0x95);
  });
  it('side client cites the client-side rule', () => {
    const c = collector({ protocolVersion: 5, side: 'client', maxPacketSize: 10 });
    c.d.push(Buffer.from([0x30, 0x7f]));
    assert.equal(c.errors[0]!.ref, 'MQTT-3.1.2-24');
  });
});

describe('Remaining Length boundaries', () => {
  const cases: [number, number[]][] = [
    [127, [0x7f]],
    [128, [0x80, 0x01]],
    [16383, [0xff, 0x7f]],
    [16384, [0x80, 0x80, 0x01]],
    [2097151, [0xff, 0xff, 0x7f]],
    [2097152, [0x80, 0x80, 0x80, 0x01]],
  ];
  for (const [rl, varint] of cases) {
    it(`${rl}`, () => {
      const p = publish('t', Buffer.alloc(rl - 3, 0x5a)); // topic: 2 + 1 bytes
      const bytes = encodePacket(p, 4);
      assert.deepEqual([...bytes.subarray(1, 1 + varint.length)], varint);
      assert.equal(bytes.length, 1 + varint.length + rl);
      for (const chunkSize of [bytes.length, 1000, 7]) {
        const c = collector({ protocolVersion: 4 });
        for (let off = 0; off < bytes.length; off += chunkSize) c.d.push(bytes.subarray(off, off + chunkSize));
        assert.deepEqual(c.errors, []);
        assert.equal(c.packets.length, 1);
        assert.ok((c.packets[0] as PublishPacket).payload.equals(p.payload));
      }
    });
  }
  it('268435455 is accepted (only the header is fed; nothing is allocated for the body)', () => {
    const c = collector({ protocolVersion: 4 });
    c.d.push(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f, 0x00, 0x01, 0x61]));
    assert.deepEqual(c.errors, []);
    assert.equal(c.d.hasPartial, true);
    assert.equal(c.d.bufferedBytes, 3);
    c.d.reset();
    assert.equal(c.d.hasPartial, false);
  });
  it('268435455 with maxPacketSize 268435459 → 0x95', () => {
    const c = collector({ protocolVersion: 4, maxPacketSize: 268435459 });
    c.d.push(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]));
    assert.equal(c.errors[0]!.reasonCode, 0x95);
  });
  for (const split of [false, true]) {
    it(`a 5-byte Remaining Length is malformed${split ? ' (fed byte by byte)' : ''}`, () => {
      const c = collector({ protocolVersion: 5 });
      const bytes = Buffer.from([0x30, 0x80, 0x80, 0x80, 0x80, 0x01]);
      if (split) for (const x of bytes) c.d.push(Buffer.from([x]));
      else c.d.push(bytes);
      assert.equal(c.errors.length, 1);
      assert.equal(c.errors[0]!.reasonCode, 0x81);
      assert.equal(c.errors[0]!.ref, '§1.5.5');
    });
  }
});

describe('errors and state', () => {
  it('onError is called once; push() then ignores input; reset() recovers', () => {
    const c = collector({ protocolVersion: 4 });
    c.d.push(Buffer.from([0x00, 0x00, 0xc0, 0x00]));
    c.d.push(Buffer.from([0xc0, 0x00]));
    assert.equal(c.errors.length, 1);
    assert.equal(c.packets.length, 0);
    assert.equal(c.d.failed, true);
    c.d.reset();
    assert.equal(c.d.failed, false);
    c.d.push(Buffer.from([0xc0, 0x00]));
    assert.deepStrictEqual(c.packets, [{ type: 12 }]);
  });
  it('packets before the bad one in the same chunk are delivered', () => {
    const c = collector({ protocolVersion: 4 });
    c.d.push(Buffer.from([0xc0, 0x00, 0xe0, 0x00, 0x36, 0x00]));
    assert.deepStrictEqual(c.packets, [{ type: 12 }, { type: 14, reasonCode: 0 }]);
    assert.equal(c.errors[0]!.ref, 'MQTT-3.3.1-4');
  });
  it('an exception thrown by onPacket propagates and is not reported as a ProtocolError', () => {
    const c = collector({ protocolVersion: 4 });
    c.d.onPacket = () => {
      throw new Error('consumer bug');
    };
    assert.throws(() => c.d.push(Buffer.from([0xc0, 0x00])), /consumer bug/);
    assert.equal(c.errors.length, 0);
    assert.equal(c.d.failed, false);
  });
  it('even a ProtocolError thrown by onPacket propagates', () => {
    const c = collector({ protocolVersion: 4 });
    c.d.onPacket = () => {
      throw new ProtocolError(0x82, 'consumer decided');
    };
    assert.throws(() => c.d.push(Buffer.from([0xc0, 0x00])), /consumer decided/);
    assert.equal(c.errors.length, 0);
  });
  it('server side: the first packet must be CONNECT', () => {
    const c = collector();
    c.d.push(Buffer.from([0xc0, 0x00]));
    assert.equal(c.errors[0]!.reasonCode, 0x82);
    assert.equal(c.errors[0]!.ref, 'MQTT-3.1.0-1');
  });
  it('protocolVersion is set by the first CONNECT and used for the rest of the chunk', () => {
    const c = collector();
    const v5Puback = Buffer.from([0x40, 0x03, 0x00, 0x01, 0x10]);
    c.d.push(Buffer.concat([connectFor(5).bytes, v5Puback]));
    assert.equal(c.d.protocolVersion, 5);
    assert.deepStrictEqual(c.packets[1], { type: 4, packetId: 1, reasonCode: 0x10 });
    const c4 = collector();
    c4.d.push(Buffer.concat([connectFor(4).bytes, v5Puback]));
    assert.equal(c4.d.protocolVersion, 4);
    assert.equal(c4.errors[0]!.reasonCode, 0x81, 'a 3-byte PUBACK is malformed in 3.1.1');
  });
  it('a second CONNECT is decoded (the broker rejects it) and does not change protocolVersion', () => {
    const c = collector();
    c.d.push(Buffer.concat([connectFor(5).bytes, connectFor(4).bytes]));
    assert.equal(c.packets.length, 2);
    assert.equal(c.d.protocolVersion, 5);
  });
  it('CONNECT errors carry the protocol level once it is read', () => {
    const cases: [Buffer, number | undefined, number][] = [
      [Buffer.from([0x10, 0x0d, 0, 4, 0x4d, 0x51, 0x54, 0x54, 6, 2, 0, 60, 0, 1, 0x63]), 6, 0x84],
      [Buffer.from([0x10, 0x0e, 0, 4, 0x4d, 0x51, 0x54, 0x54, 5, 3, 0, 60, 0, 0, 1, 0x63]), 5, 0x81],
      [Buffer.from([0x10, 0x0d, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 3, 0, 60, 0, 1, 0x63]), 4, 0x81],
      [Buffer.from([0x10, 0x0d, 0, 4, 0x4d, 0x51, 0x54, 0x58, 4, 2, 0, 60, 0, 1, 0x63]), undefined, 0x81],
      [Buffer.from([0x10, 0x03, 0, 4, 0x4d]), undefined, 0x81],
    ];
    for (const [bytes, level, code] of cases) {
      const c = collector();
      c.d.push(bytes);
      assert.equal(c.errors.length, 1);
      assert.equal(c.errors[0]!.reasonCode, code);
      assert.equal(c.errors[0]!.protocolVersion, level);
      assert.equal(c.errors[0]!.packetType, 1);
      assert.equal(c.d.protocolVersion, 0);
    }
  });
  it('side client needs a protocol version', () => {
    const c = collector({ side: 'client' });
    c.d.push(Buffer.from([0x20, 0x02, 0x00, 0x00]));
    assert.equal(c.errors[0]!.reasonCode, 0x82);
  });
  it('ProtocolError is an Error with a readable toString', () => {
    const e = new ProtocolError(0x81, 'bad', 'MQTT-3.3.1-4', 3);
    assert.ok(e instanceof Error);
    assert.equal(e.name, 'ProtocolError');
    assert.equal(String(e), 'ProtocolError 0x81 in PUBLISH: bad [MQTT-3.3.1-4]');
  });
});

describe('fuzz', () => {
  const CODES = new Set([0x81, 0x82, 0x84, 0x94, 0x95]);
  function feed(bytes: Buffer, options: DecoderOptions, split: number): Collector {
    const c = collector(options);
    for (let off = 0; off < bytes.length; off += split) c.d.push(bytes.subarray(off, off + split));
    return c;
  }
  it('mutated catalogue packets never throw, and fail only with ProtocolError', () => {
    const r = rng(2024);
    for (let n = 0; n < 30000; n++) {
      const e = validPackets[Math.floor(r() * validPackets.length)]!;
      const bytes = Buffer.from(e.bytes);
      const flips = 1 + Math.floor(r() * 3);
      for (let k = 0; k < flips; k++) bytes[Math.floor(r() * bytes.length)] = Math.floor(r() * 256);
      const isConnect = e.packet!.type === 1 && e.side === 'server';
      const c = feed(bytes, { side: e.side, protocolVersion: isConnect ? 0 : e.version, maxPacketSize: 1 << 20 }, 1 + Math.floor(r() * 8));
      assert.ok(c.errors.length <= 1);
      for (const err of c.errors) {
        assert.ok(err instanceof ProtocolError);
        assert.ok(CODES.has(err.reasonCode), `0x${err.reasonCode.toString(16)} ${err.message}`);
      }
    }
  });
  it('random bytes never throw', () => {
    const r = rng(7);
    for (let n = 0; n < 20000; n++) {
      const bytes = Buffer.alloc(1 + Math.floor(r() * 40));
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(r() * 256);
      const v = ([3, 4, 5] as const)[n % 3]!;
      const c = feed(bytes, { side: n % 2 ? 'client' : 'server', protocolVersion: n % 5 === 0 ? 0 : v }, 1 + (n % 5));
      assert.ok(c.errors.length <= 1);
    }
  });
});
