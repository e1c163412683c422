// Every catalogue entry through the decoder: valid entries decode to their
// packet, malformed ones fail with their reason code and reference — whole,
// byte by byte, and after a valid CONNECT on a live server-side decoder.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Decoder } from '../../src/protocol/decoder.js';
import { ProtocolError } from '../../src/protocol/errors.js';
import type { Packet } from '../../src/protocol/packets.js';
import { connectFor, malformedPackets, validPackets, type CatalogueEntry } from '../fixtures/catalogue.js';

interface Outcome {
  packets: Packet[];
  errors: ProtocolError[];
}

function decoderFor(entry: CatalogueEntry): Decoder {
  const isConnect = entry.bytes[0]! >> 4 === 1 && entry.side === 'server';
  return new Decoder({ side: entry.side, protocolVersion: isConnect ? 0 : entry.version });
}

function run(d: Decoder, chunks: Buffer[]): Outcome {
  const out: Outcome = { packets: [], errors: [] };
  d.onPacket = (p) => out.packets.push(p);
  d.onError = (e) => out.errors.push(e);
  for (const c of chunks) d.push(c);
  return out;
}

function bytewise(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i++) out.push(buf.subarray(i, i + 1));
  return out;
}

describe('catalogue', () => {
  it('has unique names and enough entries', () => {
    const names = new Set<string>();
    for (const e of [...validPackets, ...malformedPackets]) {
      assert.ok(!names.has(e.name), `duplicate name ${e.name}`);
      names.add(e.name);
    }
    assert.ok(malformedPackets.length >= 60, `only ${malformedPackets.length} malformed entries`);
  });

  it('covers every packet type in every version where it exists', () => {
    for (const v of [3, 4, 5] as const) {
      const types = new Set(validPackets.filter((e) => e.version === v).map((e) => e.packet!.type));
      const expected = v === 5 ? 15 : 14;
      assert.equal(types.size, expected, `v${v} covers types ${[...types].sort((a, b) => a - b).join(',')}`);
    }
  });

  it('valid entries have a packet, malformed entries a reason code and (client→server) an expectation', () => {
    for (const e of validPackets) assert.ok(e.packet !== undefined && e.reasonCode === undefined, e.name);
    for (const e of malformedPackets) {
      assert.ok(e.packet === undefined && e.reasonCode !== undefined, e.name);
      if (e.side === 'server') assert.ok(e.expect !== undefined, e.name);
    }
  });
});

describe('catalogue: valid packets decode to their packet', () => {
  for (const e of validPackets) {
    it(e.name, () => {
      const whole = run(decoderFor(e), [e.bytes]);
      assert.deepEqual(whole.errors, []);
      assert.equal(whole.packets.length, 1);
      assert.deepStrictEqual(whole.packets[0], e.packet);

      const split = run(decoderFor(e), bytewise(e.bytes));
      assert.deepEqual(split.errors, []);
      assert.deepStrictEqual(split.packets, [e.packet]);
    });
  }
});

describe('catalogue: malformed packets fail with their reason code', () => {
  for (const e of malformedPackets) {
    it(`${e.name} → 0x${e.reasonCode!.toString(16)} [${e.ref}]`, () => {
      for (const chunks of [[e.bytes], bytewise(e.bytes)]) {
        const d = decoderFor(e);
        const res = run(d, chunks);
        assert.equal(res.packets.length, 0, 'no packet decoded');
        assert.equal(res.errors.length, 1, 'exactly one error');
        const err = res.errors[0]!;
        assert.ok(err instanceof ProtocolError);
        assert.equal(err.name, 'ProtocolError');
        assert.equal(err.reasonCode, e.reasonCode, err.message);
        assert.equal(err.ref, e.ref, err.message);
        assert.ok(d.failed);
      }
    });
  }
});

describe('catalogue: broker expectations are consistent with the error', () => {
  for (const e of malformedPackets.filter((m) => m.side === 'server')) {
    it(e.name, () => {
      const isConnect = e.bytes[0]! >> 4 === 1;
      const res = run(decoderFor(e), [e.bytes]);
      const err = res.errors[0]!;
      const x = e.expect!;
      if (!isConnect) {
        assert.deepEqual(x, e.version === 5 ? { kind: 'disconnect', reasonCode: e.reasonCode } : { kind: 'close' });
        return;
      }
      if (x.kind === 'connack') {
        assert.ok(err.protocolVersion !== undefined, 'protocolVersion known');
        if (err.protocolVersion === 5) assert.equal(x.code, err.reasonCode);
        else assert.deepEqual([x.code, err.reasonCode], [0x01, 0x84]);
      } else {
        assert.equal(x.kind, 'close');
        assert.ok(err.protocolVersion === undefined || err.protocolVersion < 5, 'a v5 CONNECT error is answered with CONNACK');
      }
    });
  }
});

describe('catalogue: after a valid CONNECT on one server-side decoder', () => {
  for (const e of malformedPackets.filter((m) => m.side === 'server' && m.bytes[0]! >> 4 !== 1)) {
    it(e.name, () => {
      const c = connectFor(e.version);
      const d = new Decoder();
      const res = run(d, [Buffer.concat([c.bytes, e.bytes])]);
      assert.deepStrictEqual(res.packets, [c.packet]);
      assert.equal(d.protocolVersion, e.version);
      assert.equal(res.errors.length, 1);
      assert.equal(res.errors[0]!.reasonCode, e.reasonCode);
    });
  }
  for (const e of validPackets.filter((m) => m.side === 'server' && m.packet!.type !== 1)) {
    it(e.name, () => {
      const c = connectFor(e.version);
      const res = run(new Decoder(), [Buffer.concat([c.bytes, e.bytes, e.bytes])]);
      assert.deepEqual(res.errors, []);
      assert.deepStrictEqual(res.packets, [c.packet, e.packet, e.packet]);
    });
  }
});
