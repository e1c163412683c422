// TLS for the tls and wss listeners (node:tls): certificate, key, CA, CRL,
// minimum version, ciphers, SNI certificates; mTLS with the certificate's CN or
// RFC 2253 subject as the user name; certificates re-read on reload() with
// setSecureContext (connections stay); renegotiation refused.

import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import type { ListenerOptions } from './listener-options.js';

/** The TLS settings of a listener, with the files read. Throws when a file cannot be read. */
export function secureContextOptions(l: ListenerOptions): tls.SecureContextOptions {
  const read = (f: string): Buffer => readFileSync(f);
  const o: tls.SecureContextOptions = {
    cert: read(l.cert!),
    key: read(l.key!),
    minVersion: l.minVersion ?? 'TLSv1.2',
  };
  if (l.passphrase !== undefined) o.passphrase = l.passphrase;
  if (l.ca !== undefined) o.ca = read(l.ca);
  if (l.crl !== undefined) o.crl = read(l.crl);
  if (l.ciphers !== undefined) o.ciphers = l.ciphers;
  return o;
}

/** Secure contexts by server name (SNI), names lower-cased. */
function sniContexts(l: ListenerOptions, base: tls.SecureContextOptions): Map<string, tls.SecureContext> {
  const m = new Map<string, tls.SecureContext>();
  for (const [name, c] of Object.entries(l.sni ?? {})) {
    const o: tls.SecureContextOptions = { ...base, cert: readFileSync(c.cert), key: readFileSync(c.key) };
    if (c.passphrase !== undefined) o.passphrase = c.passphrase;
    else delete o.passphrase;
    m.set(name.toLowerCase(), tls.createSecureContext(o));
  }
  return m;
}

/**
 * The TLS server of a listener. It does not listen: the listener's TCP server accepts and hands it sockets
 * (after the listener's limits and the PROXY header). reload() re-reads the files and swaps the server's secure
 * context (setSecureContext) and the SNI contexts: new handshakes use them, open connections keep theirs. A file
 * that cannot be read or parsed throws and leaves the old contexts in place.
 */
export function createTlsServer(l: ListenerOptions, handshakeTimeoutMs: number): { server: tls.Server; reload(): void } {
  const base = secureContextOptions(l);
  let sni = sniContexts(l, base);
  const options: tls.TlsOptions = {
    ...base,
    // mTLS: a client without a valid certificate (none, another CA's, revoked) fails the handshake.
    requestCert: l.requireCertificate === true,
    rejectUnauthorized: l.requireCertificate === true,
    handshakeTimeout: handshakeTimeoutMs,
    // allowHalfOpen: the Connection ends our side once what it must commit went out (see tcp.ts).
    allowHalfOpen: true,
  };
  if (l.sni !== undefined && Object.keys(l.sni).length > 0) {
    // An unknown name gets the default context (undefined: the server's own).
    options.SNICallback = (servername, cb) => cb(null, sni.get(servername.toLowerCase()));
  }
  const server = tls.createServer(options);
  return {
    server,
    reload: () => {
      const next = secureContextOptions(l);
      const nextSni = sniContexts(l, next);
      tls.createSecureContext(next); // throws on a bad key or certificate before anything is swapped
      server.setSecureContext(next);
      sni = nextSni;
    },
  };
}

// ---- the certificate's identity ----

/** Short names OpenSSL prints for attribute types (as in Mosquitto's use_subject_as_username). */
const OID_NAMES: Record<string, string> = {
  '2.5.4.3': 'CN',
  '2.5.4.4': 'SN',
  '2.5.4.5': 'serialNumber',
  '2.5.4.6': 'C',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.9': 'street',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '2.5.4.12': 'title',
  '2.5.4.42': 'GN',
  '2.5.4.46': 'dnQualifier',
  '2.5.4.65': 'pseudonym',
  '0.9.2342.19200300.100.1.1': 'UID',
  '0.9.2342.19200300.100.1.25': 'DC',
  '1.2.840.113549.1.9.1': 'emailAddress',
};

interface Tlv {
  tag: number;
  start: number;
  end: number;
  /** Offset of the whole element (for #hex dumps). */
  from: number;
}

function readTlv(b: Buffer, at: number): Tlv {
  const tag = b[at]!;
  let len = b[at + 1]!;
  let p = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new Error('unsupported DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[p + i]!;
    p += n;
  }
  if (p + len > b.length) throw new Error('DER element past the end');
  return { tag, start: p, end: p + len, from: at };
}

function children(b: Buffer, t: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let p = t.start; p < t.end; ) {
    const c = readTlv(b, p);
    out.push(c);
    p = c.end;
  }
  return out;
}

function oid(b: Buffer, t: Tlv): string {
  const parts: number[] = [];
  let v = 0;
  for (let i = t.start; i < t.end; i++) {
    v = v * 128 + (b[i]! & 0x7f);
    if ((b[i]! & 0x80) === 0) {
      if (parts.length === 0) parts.push(v < 80 ? Math.floor(v / 40) : 2, v < 80 ? v % 40 : v - 80);
      else parts.push(v);
      v = 0;
    }
  }
  return parts.join('.');
}

function stringValue(b: Buffer, t: Tlv): string | null {
  const raw = b.subarray(t.start, t.end);
  switch (t.tag) {
    case 0x0c: // UTF8String
      return raw.toString('utf8');
    case 0x13: // PrintableString
    case 0x16: // IA5String
    case 0x12: // NumericString
    case 0x14: // TeletexString (as Latin-1, like OpenSSL)
      return raw.toString('latin1');
    case 0x1e: { // BMPString: UTF-16BE
      const s = Buffer.from(raw);
      s.swap16();
      return s.toString('utf16le');
    }
    case 0x1c: { // UniversalString: UTF-32BE
      let s = '';
      for (let i = 0; i + 3 < raw.length; i += 4) s += String.fromCodePoint(raw.readUInt32BE(i));
      return s;
    }
    default:
      return null;
  }
}

/** Escape an attribute value as RFC 2253 section 2.4 says (and non-ASCII and control bytes as \XX, as OpenSSL's RFC 2253 mode does). */
function escapeValue(v: string): string {
  const bytes = Buffer.from(v, 'utf8');
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]!;
    const ch = String.fromCharCode(c);
    if (c < 0x20 || c >= 0x7f) out += '\\' + c.toString(16).toUpperCase().padStart(2, '0');
    else if (',+"\\<>;'.includes(ch)) out += '\\' + ch;
    else if ((i === 0 && (ch === '#' || ch === ' ')) || (i === bytes.length - 1 && ch === ' ')) out += '\\' + ch;
    else out += ch;
  }
  return out;
}

/** The subject Name of a DER certificate as RDNs in certificate order; each RDN a list of [type, value]. */
export function subjectRdns(der: Buffer): { type: string; oid: string; value: string | null; dump: string }[][] {
  const cert = readTlv(der, 0);
  const tbs = children(der, cert)[0]!;
  const f = children(der, tbs);
  // version [0] is optional: serial, signature, issuer, validity, subject.
  const i = f[0]!.tag === 0xa0 ? 1 : 0;
  const subject = f[i + 4]!;
  return children(der, subject).map((rdn) =>
    children(der, rdn).map((atv) => {
      const [t, v] = children(der, atv) as [Tlv, Tlv];
      const id = oid(der, t);
      return { oid: id, type: OID_NAMES[id] ?? id, value: stringValue(der, v), dump: der.subarray(v.from, v.end).toString('hex') };
    }),
  );
}

/** The RFC 2253 string of a certificate's subject: last RDN first, ',' between RDNs, '+' inside one. */
export function rfc2253Subject(der: Buffer): string {
  return subjectRdns(der)
    .reverse()
    .map((rdn) =>
      rdn.map((a) => (a.value !== null && a.type !== a.oid ? `${a.type}=${escapeValue(a.value)}` : `${a.oid}=#${a.dump}`)).join('+'),
    )
    .join(',');
}

/** The first Common Name of a certificate's subject (as Mosquitto's use_identity_as_username takes it), or undefined. */
export function commonName(der: Buffer): string | undefined {
  for (const rdn of subjectRdns(der)) for (const a of rdn) if (a.oid === '2.5.4.3' && a.value !== null) return a.value;
  return undefined;
}

/**
 * The user name a verified client certificate gives, for identityAsUsername 'cn' or 'subject'; null when the
 * certificate has none (no certificate, no CN): such a client is closed, as Mosquitto does.
 */
export function certificateIdentity(socket: tls.TLSSocket, mode: 'cn' | 'subject'): string | null {
  const cert = socket.getPeerCertificate(false);
  if (cert === null || cert === undefined || cert.raw === undefined) return null;
  try {
    return (mode === 'cn' ? commonName(cert.raw) : rfc2253Subject(cert.raw)) ?? null;
  } catch {
    return null;
  }
}
