// MQTT UTF-8 strings [MQTT-1.5.4-1..3].

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Decoder } from '../../src/protocol/decoder.js';
import type { ProtocolError } from '../../src/protocol/errors.js';
import type { Packet, PublishPacket } from '../../src/protocol/packets.js';
import { isValidMqttString, Utf8Status, validateUtf8 } from '../../src/protocol/utf8.js';

const OK = Utf8Status.Ok;
const BAD = Utf8Status.Malformed;
const NUL = Utf8Status.Null;

const cases: [string, number[], number][] = [
  ['empty', [], OK],
  ['ASCII', [0x61, 0x2f, 0x62], OK],
  ['control characters U+0001, U+001F, U+007F (SHOULD NOT only)', [0x01, 0x1f, 0x7f], OK],
  ['C1 controls U+0080, U+009F', [0xc2, 0x80, 0xc2, 0x9f], OK],
  ['2-byte é', [0xc3, 0xa9], OK],
  ['3-byte €', [0xe2, 0x82, 0xac], OK],
  ['U+D7FF, last before the surrogates', [0xed, 0x9f, 0xbf], OK],
  ['U+E000, first after the surrogates', [0xee, 0x80, 0x80], OK],
  ['BOM U+FEFF is a character like any other [MQTT-1.5.4-3]', [0xef, 0xbb, 0xbf, 0x61], OK],
  ['non-character U+FFFF', [0xef, 0xbf, 0xbf], OK],
  ['4-byte emoji U+1F600', [0xf0, 0x9f, 0x98, 0x80], OK],
  ['U+10FFFF', [0xf4, 0x8f, 0xbf, 0xbf], OK],
  ['U+0000 [MQTT-1.5.4-2]', [0x00], NUL],
  ['U+0000 inside ASCII', [0x61, 0x00, 0x62], NUL],
  ['U+0000 after a multi-byte character', [0xc3, 0xa9, 0x00], NUL],
  ['surrogate U+D800 as ED A0 80 [MQTT-1.5.4-1]', [0xed, 0xa0, 0x80], BAD],
  ['surrogate U+DFFF as ED BF BF', [0xed, 0xbf, 0xbf], BAD],
  ['surrogate pair encoded as two 3-byte sequences (CESU-8)', [0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80], BAD],
  ['overlong U+0000 as C0 80', [0xc0, 0x80], BAD],
  ['overlong C1 BF', [0xc1, 0xbf], BAD],
  ['overlong 3-byte E0 80 80', [0xe0, 0x80, 0x80], BAD],
  ['overlong 3-byte E0 9F BF', [0xe0, 0x9f, 0xbf], BAD],
  ['overlong 4-byte F0 80 80 80', [0xf0, 0x80, 0x80, 0x80], BAD],
  ['overlong 4-byte F0 8F BF BF', [0xf0, 0x8f, 0xbf, 0xbf], BAD],
  ['above U+10FFFF: F4 90 80 80', [0xf4, 0x90, 0x80, 0x80], BAD],
  ['F5 lead byte', [0xf5, 0x80, 0x80, 0x80], BAD],
  ['FF byte', [0x61, 0xff], BAD],
  ['lone continuation byte', [0x80], BAD],
  ['truncated 2-byte', [0xc3], BAD],
  ['truncated 3-byte', [0xe2, 0x82], BAD],
  ['truncated 4-byte', [0xf0, 0x9f, 0x98], BAD],
  ['bad continuation (2-byte)', [0xc3, 0x28], BAD],
  ['bad continuation (3-byte, third byte)', [0xe2, 0x82, 0x28], BAD],
  ['bad continuation (4-byte, second byte)', [0xf0, 0x28, 0x8c, 0xbc], BAD],
  ['bad continuation (4-byte, last byte)', [0xf0, 0x9f, 0x98, 0x28], BAD],
];

describe('validateUtf8', () => {
  for (const [name, bytes, expected] of cases) {
    it(name, () => {
      const buf = Buffer.from(bytes);
      assert.equal(validateUtf8(buf, 0, buf.length), expected);
      // Same result inside a larger buffer (the range is honoured).
      const padded = Buffer.concat([Buffer.from([0xff, 0x00]), buf, Buffer.from([0xc3, 0x00])]);
      assert.equal(validateUtf8(padded, 2, 2 + buf.length), expected);
    });
  }

  it('agrees with a fatal TextDecoder on 20000 random byte strings', () => {
    const td = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
    let s = 7;
    const rnd = (): number => ((s = (s * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
    const interesting = [0x61, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff];
    for (let n = 0; n < 20000; n++) {
      const len = rnd() % 8;
      const bytes = Buffer.alloc(len);
      for (let i = 0; i < len; i++) bytes[i] = rnd() < 160 ? interesting[rnd() % interesting.length]! : rnd() | 1;
      let expected: number;
      try {
        const str = td.decode(bytes);
        expected = str.includes('\u0000') ? NUL : OK;
      } catch {
        expected = BAD;
      }
      const got = validateUtf8(bytes, 0, len);
      // NUL is reported as soon as it is seen, even if malformed bytes follow.
      if (got === NUL && expected === BAD) assert.ok(bytes.includes(0), bytes.toString('hex'));
      else assert.equal(got, expected, bytes.toString('hex'));
    }
  });
});

describe('isValidMqttString', () => {
  const table: [string, boolean][] = [
    ['abc', true], ['', true], ['😀', true], ['\ufeff', true], ['\u0001', true],
    ['a\u0000', false], ['\ud800', false], ['\udc00', false], ['a\ud83d', false], ['\ud83d\u0041', false],
  ];
  for (const [s, ok] of table) it(JSON.stringify(s), () => assert.equal(isValidMqttString(s), ok));
});

describe('strings through the decoder', () => {
  function decodeTopic(topicBytes: number[]): { packet?: Packet; error?: ProtocolError } {
    const d = new Decoder({ protocolVersion: 4 });
    const out: { packet?: Packet; error?: ProtocolError } = {};
    d.onPacket = (p) => (out.packet = p);
    d.onError = (e) => (out.error = e);
    d.push(Buffer.from([0x30, 2 + topicBytes.length, 0, topicBytes.length, ...topicBytes]));
    return out;
  }
  it('a BOM is kept, not stripped [MQTT-1.5.4-3]', () => {
    assert.equal((decodeTopic([0xef, 0xbb, 0xbf, 0x61]).packet as PublishPacket).topic, '\ufeffa');
  });
  it('4-byte emoji topic', () => {
    assert.equal((decodeTopic([0xf0, 0x9f, 0x98, 0x80]).packet as PublishPacket).topic, '😀');
  });
  it('surrogate ED A0 80 → 0x81', () => {
    assert.equal(decodeTopic([0xed, 0xa0, 0x80]).error?.reasonCode, 0x81);
  });
  it('overlong C0 80 → 0x81', () => {
    assert.equal(decodeTopic([0xc0, 0x80]).error?.reasonCode, 0x81);
  });
  it('U+0000 → 0x81', () => {
    assert.equal(decodeTopic([0x00]).error?.reasonCode, 0x81);
    assert.equal(decodeTopic([0x00]).error?.ref, 'MQTT-1.5.3-2');
  });
});
