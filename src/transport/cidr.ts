// CIDR allow-lists for IPv4 and IPv6 (trusted PROXY sources). An IPv4-mapped
// IPv6 address (::ffff:10.0.0.1) matches IPv4 ranges, and an IPv4 range
// written as mapped IPv6 (::ffff:10.0.0.0/104) matches plain IPv4 addresses.

import net from 'node:net';

interface Range {
  /** 16 bytes (IPv4 as mapped IPv6). */
  bytes: Uint8Array;
  /** Prefix length in bits over the 128-bit form. */
  bits: number;
}

/** 16 bytes of an IPv4 or IPv6 address (IPv4 mapped into ::ffff:0:0/96), or null if it is not one. */
export function addressBytes(address: string): Uint8Array | null {
  let a = address;
  const zone = a.indexOf('%');
  if (zone >= 0) a = a.slice(0, zone);
  if (a.startsWith('[') && a.endsWith(']')) a = a.slice(1, -1);
  const out = new Uint8Array(16);
  if (net.isIPv4(a)) {
    out[10] = 0xff;
    out[11] = 0xff;
    const parts = a.split('.');
    for (let i = 0; i < 4; i++) out[12 + i] = Number(parts[i]);
    return out;
  }
  if (!net.isIPv6(a)) return null;
  // An embedded dotted quad at the end (::ffff:1.2.3.4) becomes two groups.
  const lastColon = a.lastIndexOf(':');
  const tail = a.slice(lastColon + 1);
  if (tail.includes('.')) {
    const q = tail.split('.').map(Number);
    a = `${a.slice(0, lastColon + 1)}${((q[0]! << 8) | q[1]!).toString(16)}:${((q[2]! << 8) | q[3]!).toString(16)}`;
  }
  const halves = a.split('::');
  const head = halves[0] === '' ? [] : halves[0]!.split(':');
  const rest = halves.length > 1 ? (halves[1] === '' ? [] : halves[1]!.split(':')) : [];
  const groups = halves.length > 1 ? [...head, ...new Array<string>(8 - head.length - rest.length).fill('0'), ...rest] : head;
  if (groups.length !== 8) return null;
  for (let i = 0; i < 8; i++) {
    const g = parseInt(groups[i]!, 16);
    out[i * 2] = g >>> 8;
    out[i * 2 + 1] = g & 0xff;
  }
  return out;
}

/** Parse 'a.b.c.d/n', 'x::y/n' or a bare address (a /32 or /128). Throws an Error naming the problem. */
export function parseCidr(cidr: string): Range {
  if (typeof cidr !== 'string') throw new Error(`${JSON.stringify(cidr)} is not a CIDR string`);
  const slash = cidr.indexOf('/');
  const addr = slash < 0 ? cidr : cidr.slice(0, slash);
  const bytes = addressBytes(addr);
  if (bytes === null) throw new Error(`${JSON.stringify(cidr)}: ${JSON.stringify(addr)} is not an IPv4 or IPv6 address`);
  const v4 = net.isIPv4(addr);
  const max = v4 ? 32 : 128;
  let bits = max;
  if (slash >= 0) {
    const p = cidr.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) throw new Error(`${JSON.stringify(cidr)}: prefix must be an integer from 0 to ${max}`);
    bits = Number(p);
  }
  return { bytes, bits: v4 ? bits + 96 : bits };
}

/** Tests addresses against a list of CIDRs. */
export class CidrMatcher {
  private readonly ranges: Range[];
  constructor(cidrs: readonly string[]) {
    this.ranges = cidrs.map(parseCidr);
  }

  matches(address: string | undefined): boolean {
    if (address === undefined) return false;
    const b = addressBytes(address);
    if (b === null) return false;
    for (const r of this.ranges) if (inRange(b, r)) return true;
    return false;
  }
}

function inRange(b: Uint8Array, r: Range): boolean {
  const full = r.bits >>> 3;
  for (let i = 0; i < full; i++) if (b[i] !== r.bytes[i]) return false;
  const rem = r.bits & 7;
  if (rem === 0) return true;
  const mask = (0xff << (8 - rem)) & 0xff;
  return (b[full]! & mask) === (r.bytes[full]! & mask);
}
