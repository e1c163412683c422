// Jazzer.js fuzz target: the wire decoder (src/protocol/decoder.ts), every protocol version and both sides.
//
// The first input byte picks the decoder: its protocol version (0 = not yet known, the broker's case before
// CONNECT; 3 = 3.1; 4 = 3.1.1; 5 = 5.0), its side (what a broker reads, or what a client reads), a small
// maximum packet size or none, and how the rest is cut into chunks (whole, byte by byte, or at points the
// second byte seeds). The rest is pushed as received bytes.
//
// What must hold, whatever the bytes:
//   - push() never throws; the only errors are ProtocolError values reported through onError, with a reason
//     code the decoder documents (0x81, 0x82, 0x84, 0x95 and friends, below) — anything else is a finding;
//   - after an error the decoder is failed and reports nothing more;
//   - cutting the same bytes into different chunks decodes the same packets and the same error;
//   - a decoded packet, encoded again (src/protocol/encoder.ts) in the same version and decoded by a fresh
//     decoder, is the same packet.
// Run by test/fuzz/jazzer/run.mjs (bounded, in npm test through jazzer.test.ts) and long.mjs.

import assert from 'node:assert/strict';
import { Decoder } from '../../../src/protocol/decoder.js';
import { encodePacket } from '../../../src/protocol/encoder.js';
import { ProtocolError } from '../../../src/protocol/errors.js';
import type { Packet, ProtocolVersion } from '../../../src/protocol/packets.js';

/** Reason codes a ProtocolError from the decoder may carry. */
const DOCUMENTED = new Set([
  0x81, // Malformed Packet
  0x82, // Protocol Error
  0x84, // Unsupported Protocol Version
  0x94, // Topic Alias Invalid (Topic Alias 0, [MQTT-3.3.2-8]; src/protocol/properties.ts)
  0x95, // Packet Too Large
]);
const VERSIONS = [0, 3, 4, 5] as const;

interface Outcome {
  packets: Packet[];
  error: ProtocolError | null;
  version: 0 | 3 | 4 | 5;
}

function run(bytes: Buffer, cuts: number[], version: 0 | 3 | 4 | 5, side: 'server' | 'client', maxPacketSize: number | undefined): Outcome {
  const d = new Decoder({ protocolVersion: version, side, ...(maxPacketSize !== undefined ? { maxPacketSize } : {}) });
  const out: Outcome = { packets: [], error: null, version };
  d.onPacket = (p) => {
    if (out.error !== null) throw new Error('a packet was reported after an error');
    out.packets.push(p);
  };
  d.onError = (e) => {
    if (out.error !== null) throw new Error(`a second error was reported: ${String(e)}`);
    if (!(e instanceof ProtocolError)) throw new Error(`onError got a non-ProtocolError: ${String(e)}`);
    if (!DOCUMENTED.has(e.reasonCode)) throw new Error(`undocumented reason code 0x${e.reasonCode.toString(16)}: ${String(e)}`);
    out.error = e;
  };
  let at = 0;
  for (const cut of [...cuts, bytes.length]) {
    if (cut <= at) continue;
    d.push(bytes.subarray(at, cut)); // a throw here is a finding
    at = cut;
  }
  if (out.error !== null && !d.failed) throw new Error('the decoder reported an error but is not failed');
  out.version = d.protocolVersion;
  return out;
}

function sameOutcome(a: Outcome, b: Outcome, what: string): void {
  assert.deepStrictEqual(b.packets, a.packets, `${what}: different packets`);
  assert.equal(b.error?.reasonCode, a.error?.reasonCode, `${what}: different error (${String(a.error)} / ${String(b.error)})`);
}

export function fuzz(data: Buffer): void {
  if (data.length < 2) return;
  const mode = data[0]!;
  const version = VERSIONS[mode & 3]!;
  const side = (mode & 4) !== 0 ? 'client' : 'server';
  if (side === 'client' && version === 0) return; // a client always knows its version
  const maxPacketSize = (mode & 8) !== 0 ? 16 + data[1]! : undefined;
  const bytes = data.subarray(2);

  const whole = run(bytes, [], version, side, maxPacketSize);

  // The same bytes in other chunks.
  const chunking = (mode >> 4) & 3;
  if (chunking === 1 && bytes.length <= 512) {
    sameOutcome(whole, run(bytes, Array.from({ length: bytes.length }, (_, i) => i + 1), version, side, maxPacketSize), 'byte by byte');
  } else if (chunking >= 2) {
    const cuts: number[] = [];
    let x = data[1]! | 1;
    for (let i = 0; i < 8; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      cuts.push(x % (bytes.length + 1));
    }
    cuts.sort((a, b) => a - b);
    sameOutcome(whole, run(bytes, cuts, version, side, maxPacketSize), 'in chunks');
  }

  // Each decoded packet survives encode → decode unchanged.
  // The decoder takes its version from the first CONNECT when it had none; a CONNECT is encoded in its own.
  let v: 0 | ProtocolVersion = version;
  for (const p of whole.packets) {
    if (p.type === 1 && v === 0) v = p.protocolVersion;
    const ev = p.type === 1 ? p.protocolVersion : v;
    if (ev === 0) continue;
    const encoded = encodePacket(p, ev);
    const again = run(encoded, [], p.type === 1 && side === 'server' ? 0 : ev, side, undefined);
    assert.equal(again.error, null, `re-encoded ${p.type} does not decode: ${String(again.error)} (${encoded.toString('hex')})`);
    assert.equal(again.packets.length, 1, 're-encoded packet decodes to one packet');
    assert.deepStrictEqual(again.packets[0], p, 're-encoded packet decodes to the same packet');
  }
}
