// PROXY protocol v1 (text) and v2 (binary) headers, as a load balancer sends
// them first on a connection (HAProxy's proxy-protocol.txt). The header is read
// before anything else (before a TLS handshake or an HTTP upgrade); the bytes
// after it are put back on the socket for the next stage. Only sources in the
// listener's trustedProxies may send one: the listener checks that first.

import net from 'node:net';

/** The v2 signature: \r\n\r\n\0\r\nQUIT\n. */
export const PROXY_V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
/** A v1 line is at most 107 bytes, CRLF included. */
const V1_MAX = 107;
/** Address block and TLVs of a v2 header accepted at most (TLVs are skipped, not kept). */
export const PROXY_V2_MAX_BODY = 4096;

export interface ProxyResult {
  /** The client address the header carries; null for v2 LOCAL, v1 UNKNOWN and v2 UNSPEC/UNIX (the socket's own address stands). */
  source: { ip: string; port: number } | null;
  version: 1 | 2;
}

/** Outcome of looking at the bytes received so far. */
type Parse = { done: false } | { done: true; result: ProxyResult; length: number } | { error: string };

function parseV1(buf: Buffer): Parse {
  const end = buf.indexOf('\r\n', 0, 'latin1');
  if (end < 0) return buf.length >= V1_MAX ? { error: 'v1 header longer than 107 bytes' } : { done: false };
  if (end + 2 > V1_MAX) return { error: 'v1 header longer than 107 bytes' };
  const line = buf.toString('latin1', 0, end);
  const f = line.split(' ');
  if (f[1] === 'UNKNOWN') return { done: true, result: { source: null, version: 1 }, length: end + 2 };
  if (f.length !== 6) return { error: 'v1 header must have 6 fields' };
  const [, proto, src, dst, sport, dport] = f as [string, string, string, string, string, string];
  const family = proto === 'TCP4' ? 4 : proto === 'TCP6' ? 6 : 0;
  if (family === 0) return { error: `v1 protocol ${JSON.stringify(proto)} is not TCP4, TCP6 or UNKNOWN` };
  if (net.isIP(src) !== family || net.isIP(dst) !== family) return { error: `v1 addresses are not ${proto} addresses` };
  const port = (s: string): number => (/^(0|[1-9]\d{0,4})$/.test(s) && Number(s) <= 65535 ? Number(s) : -1);
  const sp = port(sport);
  if (sp < 0 || port(dport) < 0) return { error: 'v1 ports must be decimal numbers from 0 to 65535' };
  return { done: true, result: { source: { ip: src, port: sp }, version: 1 }, length: end + 2 };
}

function ipv6(b: Buffer, at: number): string {
  const g: string[] = [];
  for (let i = 0; i < 8; i++) g.push(b.readUInt16BE(at + i * 2).toString(16));
  // Let node's canonical form compress it (and show ::ffff:a.b.c.d for mapped IPv4).
  const s = g.join(':');
  const sock = new net.SocketAddress({ address: s, family: 'ipv6' });
  return sock.address;
}

function parseV2(buf: Buffer): Parse {
  if (buf.length < 16) return { done: false };
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) return { error: `v2 version ${verCmd >> 4} is not 2` };
  const cmd = verCmd & 0x0f;
  if (cmd > 1) return { error: `v2 command ${cmd} is neither LOCAL nor PROXY` };
  const fam = buf[13]!;
  const len = buf.readUInt16BE(14);
  if (len > PROXY_V2_MAX_BODY) return { error: `v2 header of ${len} bytes is larger than ${PROXY_V2_MAX_BODY}` };
  if (buf.length < 16 + len) return { done: false };
  const length = 16 + len;
  // LOCAL: the proxy speaks for itself (health checks); the address block is ignored.
  if (cmd === 0) return { done: true, result: { source: null, version: 2 }, length };
  const af = fam >> 4;
  const proto = fam & 0x0f;
  if (af === 0) return { done: true, result: { source: null, version: 2 }, length }; // UNSPEC
  if (proto !== 1) return { error: `v2 transport ${proto} is not STREAM` };
  if (af === 1) {
    if (len < 12) return { error: 'v2 TCP4 address block shorter than 12 bytes' };
    const ip = `${buf[16]}.${buf[17]}.${buf[18]}.${buf[19]}`;
    return { done: true, result: { source: { ip, port: buf.readUInt16BE(24) }, version: 2 }, length };
  }
  if (af === 2) {
    if (len < 36) return { error: 'v2 TCP6 address block shorter than 36 bytes' };
    return { done: true, result: { source: { ip: ipv6(buf, 16), port: buf.readUInt16BE(48) }, version: 2 }, length };
  }
  if (af === 3) {
    if (len < 216) return { error: 'v2 UNIX address block shorter than 216 bytes' };
    return { done: true, result: { source: null, version: 2 }, length };
  }
  return { error: `v2 address family ${af} is unknown` };
}

/** Parse a PROXY header at the start of buf (v1 or v2, told apart by the first bytes). */
export function parseProxyHeader(buf: Buffer): Parse {
  // Each prefix is checked as far as bytes have come, so a wrong first byte is refused at once.
  const n = Math.min(buf.length, PROXY_V2_SIGNATURE.length);
  if (buf.length > 0 && buf[0] === 0x0d) {
    if (!buf.subarray(0, n).equals(PROXY_V2_SIGNATURE.subarray(0, n))) return { error: 'not a PROXY v2 signature' };
    return buf.length < PROXY_V2_SIGNATURE.length ? { done: false } : parseV2(buf);
  }
  const m = Math.min(buf.length, V1_PREFIX.length);
  if (!buf.subarray(0, m).equals(V1_PREFIX.subarray(0, m))) return { error: 'no PROXY header' };
  return buf.length < V1_PREFIX.length ? { done: false } : parseV1(buf);
}

/**
 * Read the PROXY header from a socket. On success the socket is paused with the bytes after the header put
 * back (unshift), ready for the next stage; on failure the caller closes it. The caller bounds the wait.
 */
export function readProxyHeader(socket: net.Socket, done: (err: string | null, result?: ProxyResult) => void): void {
  let buf: Buffer = Buffer.alloc(0);
  let finished = false;
  const finish = (err: string | null, result?: ProxyResult, rest?: Buffer): void => {
    if (finished) return;
    finished = true;
    socket.off('data', onData);
    socket.off('close', onClose);
    if (err === null) {
      socket.pause();
      if (rest !== undefined && rest.length > 0) socket.unshift(rest);
    }
    done(err, result);
  };
  const onData = (chunk: Buffer): void => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    const p = parseProxyHeader(buf);
    if ('error' in p) finish(p.error);
    else if (p.done) finish(null, p.result, buf.subarray(p.length));
  };
  const onClose = (): void => finish('closed before the PROXY header was complete');
  socket.on('data', onData);
  socket.on('close', onClose);
}

/** A v1 header line (for tests and tools). */
export function proxyV1(src: string, dst: string, sport: number, dport: number): Buffer {
  const fam = net.isIPv6(src) ? 'TCP6' : 'TCP4';
  return Buffer.from(`PROXY ${fam} ${src} ${dst} ${sport} ${dport}\r\n`, 'latin1');
}

/** A v2 header: PROXY over TCP4/TCP6, or LOCAL (src null). `tlvs` are appended to the address block. */
export function proxyV2(src: { ip: string; port: number } | null, dst: { ip: string; port: number } | null, tlvs = Buffer.alloc(0)): Buffer {
  if (src === null || dst === null) {
    const h = Buffer.alloc(16);
    PROXY_V2_SIGNATURE.copy(h);
    h[12] = 0x20; // v2 LOCAL
    h[13] = 0x00;
    h.writeUInt16BE(tlvs.length, 14);
    return Buffer.concat([h, tlvs]);
  }
  const v6 = net.isIPv6(src.ip);
  const addrLen = v6 ? 36 : 12;
  const h = Buffer.alloc(16 + addrLen);
  PROXY_V2_SIGNATURE.copy(h);
  h[12] = 0x21; // v2 PROXY
  h[13] = v6 ? 0x21 : 0x11;
  h.writeUInt16BE(addrLen + tlvs.length, 14);
  const put = (ip: string, at: number): void => {
    if (!v6) {
      ip.split('.').forEach((o, i) => (h[at + i] = Number(o)));
      return;
    }
    const full = expandIpv6(ip);
    for (let i = 0; i < 8; i++) h.writeUInt16BE(full[i]!, at + i * 2);
  };
  const size = v6 ? 16 : 4;
  put(src.ip, 16);
  put(dst.ip, 16 + size);
  h.writeUInt16BE(src.port, 16 + 2 * size);
  h.writeUInt16BE(dst.port, 16 + 2 * size + 2);
  return Buffer.concat([h, tlvs]);
}

function expandIpv6(ip: string): number[] {
  const [head, tail] = ip.split('::') as [string, string | undefined];
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.map((g) => parseInt(g, 16));
}
