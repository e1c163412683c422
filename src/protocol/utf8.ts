// MQTT UTF-8 Encoded Strings (MQTT 5.0 section 1.5.4, 3.1.1 section 1.5.3).
//
// The character data MUST be well-formed UTF-8 as defined by RFC 3629, in
// particular it MUST NOT include encodings of code points between U+D800 and
// U+DFFF [MQTT-1.5.4-1], and MUST NOT include U+0000 [MQTT-1.5.4-2]. A receiver
// that gets a string breaking these rules treats the packet as malformed.
//
// Control characters (U+0001..U+001F, U+007F..U+009F) and non-characters are
// only "SHOULD NOT" in the spec, so they are accepted. A BOM (EF BB BF) is a
// U+FEFF like any other and is never stripped [MQTT-1.5.4-3].

/** Result of {@link validateUtf8}. */
export const Utf8Status = {
  Ok: 0,
  /** Not well-formed UTF-8: bad lead/continuation byte, overlong form, surrogate, > U+10FFFF, truncated. */
  Malformed: 1,
  /** Contains U+0000. */
  Null: 2,
} as const;
export type Utf8StatusCode = (typeof Utf8Status)[keyof typeof Utf8Status];

/**
 * Validate bytes [start, end) of `buf` as an MQTT UTF-8 string. Pure ASCII
 * (the common case for topics and client ids) takes a one-compare-per-byte loop.
 */
export function validateUtf8(buf: Uint8Array, start: number, end: number): Utf8StatusCode {
  let i = start;
  // Fast path: ASCII.
  while (i < end) {
    const c = buf[i]!;
    if (c >= 0x80) break;
    if (c === 0) return Utf8Status.Null;
    i++;
  }
  if (i === end) return Utf8Status.Ok;
  return validateUtf8Slow(buf, i, end);
}

// RFC 3629 section 4 (the byte-sequence table), which excludes overlong forms,
// surrogates (ED A0..BF ..) and code points above U+10FFFF (F4 90.. and F5..FF).
function validateUtf8Slow(buf: Uint8Array, i: number, end: number): Utf8StatusCode {
  while (i < end) {
    const c = buf[i]!;
    if (c < 0x80) {
      if (c === 0) return Utf8Status.Null;
      i++;
      continue;
    }
    if (c < 0xc2) return Utf8Status.Malformed; // continuation byte as lead, or overlong C0/C1
    if (c < 0xe0) {
      if (i + 1 >= end) return Utf8Status.Malformed;
      if ((buf[i + 1]! & 0xc0) !== 0x80) return Utf8Status.Malformed;
      i += 2;
      continue;
    }
    if (c < 0xf0) {
      if (i + 2 >= end) return Utf8Status.Malformed;
      const c1 = buf[i + 1]!;
      const c2 = buf[i + 2]!;
      if ((c2 & 0xc0) !== 0x80) return Utf8Status.Malformed;
      if (c === 0xe0) {
        if (c1 < 0xa0 || c1 > 0xbf) return Utf8Status.Malformed; // overlong
      } else if (c === 0xed) {
        if (c1 < 0x80 || c1 > 0x9f) return Utf8Status.Malformed; // U+D800..U+DFFF [MQTT-1.5.4-1]
      } else if ((c1 & 0xc0) !== 0x80) {
        return Utf8Status.Malformed;
      }
      i += 3;
      continue;
    }
    if (c < 0xf5) {
      if (i + 3 >= end) return Utf8Status.Malformed;
      const c1 = buf[i + 1]!;
      if ((buf[i + 2]! & 0xc0) !== 0x80 || (buf[i + 3]! & 0xc0) !== 0x80) return Utf8Status.Malformed;
      if (c === 0xf0) {
        if (c1 < 0x90 || c1 > 0xbf) return Utf8Status.Malformed; // overlong
      } else if (c === 0xf4) {
        if (c1 < 0x80 || c1 > 0x8f) return Utf8Status.Malformed; // > U+10FFFF
      } else if ((c1 & 0xc0) !== 0x80) {
        return Utf8Status.Malformed;
      }
      i += 4;
      continue;
    }
    return Utf8Status.Malformed; // F5..FF
  }
  return Utf8Status.Ok;
}

/**
 * Check a JavaScript string before it is encoded as an MQTT string: no U+0000
 * and no lone surrogate (which Buffer.write would silently turn into U+FFFD).
 */
export function isValidMqttString(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0) return false;
    if (c >= 0xd800 && c <= 0xdfff) {
      if (c >= 0xdc00) return false; // low surrogate without a high one
      const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (d < 0xdc00 || d > 0xdfff) return false;
      i++;
    }
  }
  return true;
}

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Whether a buffer is well-formed UTF-8 (no ill-formed sequences, no surrogates): Payload Format Indicator 1. */
export function isUtf8(b: Uint8Array): boolean {
  try {
    fatalUtf8.decode(b);
    return true;
  } catch {
    return false;
  }
}
