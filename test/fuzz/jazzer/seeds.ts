// Seed corpora for the Jazzer.js targets, from the packet catalogue (test/fixtures/catalogue.ts: valid and
// malformed packets, every version), in each target's input format (see decoder.target.ts and
// broker.target.ts for what the leading bytes mean). Written by run.mjs before each run.

import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectFor, malformedPackets, validPackets, type CatalogueEntry } from '../../fixtures/catalogue.js';

const VERSION_INDEX = { 3: 1, 4: 2, 5: 3 } as const; // decoder.target.ts: mode & 3 → 0, 3, 4, 5
const BROKER_VERSION = { 3: 0, 4: 1, 5: 2 } as const; // broker.target.ts: data[0] % 3 → 3, 4, 5

const all: CatalogueEntry[] = [...validPackets, ...malformedPackets];
const isConnect = (e: CatalogueEntry): boolean => e.bytes[0]! >> 4 === 1;

export function decoderSeeds(): Buffer[] {
  const out: Buffer[] = [];
  for (const e of all) {
    const side = e.side === 'client' ? 4 : 0;
    // A CONNECT is read by a decoder that does not know the version yet, the rest by one that does.
    const v = isConnect(e) && e.side === 'server' ? 0 : VERSION_INDEX[e.version];
    out.push(Buffer.concat([Buffer.from([v | side, 0]), e.bytes]));
    // The same after a valid CONNECT, and cut into chunks.
    if (e.side === 'server' && !isConnect(e)) out.push(Buffer.concat([Buffer.from([0x20, 0x35]), connectFor(e.version).bytes, e.bytes]));
  }
  return out;
}

export function brokerSeeds(): Buffer[] {
  const out: Buffer[] = [];
  for (const e of all) {
    if (e.side !== 'server') continue;
    for (const prelude of [0, 1, 2, 3, 4]) out.push(Buffer.concat([Buffer.from([BROKER_VERSION[e.version], prelude << 3, 0]), e.bytes]));
  }
  return out;
}

/** Writes the seeds of a target into dir (replacing what was there); returns how many. */
export function writeSeeds(target: 'decoder' | 'broker', dir: string): number {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const seeds = target === 'decoder' ? decoderSeeds() : brokerSeeds();
  seeds.forEach((s, i) => writeFileSync(join(dir, `seed-${String(i).padStart(4, '0')}`), s));
  return readdirSync(dir).length;
}
