#!/usr/bin/env node
// Makes Jazzer.js's native addon loadable on this machine, idempotently, without touching node_modules.
//
// @jazzer.js/fuzzer 4.0.0 ships one prebuilt linux-x64 addon, built against glibc 2.38 and GCC 13's libstdc++.
// Debian 12 (here and in CI) has glibc 2.36 and GCC 12's libstdc++, so the loader refuses it ("version
// `GLIBC_2.38' not found"). What the addon actually needs from the newer libraries is small (readelf -V,
// objdump -T, readelf -r):
//   - __isoc23_strtol@GLIBC_2.38 and __isoc23_strtoul@GLIBC_2.38: the C23 strtol/strtoul, which differ from the
//     C99 ones only in also accepting a "0b" binary prefix. libFuzzer calls them to parse its numeric flags
//     (-max_len=, -runs=, ...), which we always give in decimal.
//   - _ZSt21ios_base_library_initv@GLIBCXX_3.4.32: GCC 13's marker that makes the linker keep libstdc++'s
//     iostream initialisation. The addon has no relocation against it (it is never looked up); Node itself
//     links libstdc++ and initialises iostreams.
// The patched copy, written to build/jazzer/fuzzer-linux-x64.node, differs from the shipped one in exactly:
//   1. the two __isoc23_* dynamic symbols are renamed to strtol/strtoul (their st_name moves 9 bytes into the
//      same string: "__isoc23_strtol" ends in "strtol"; no string is rewritten) and bound to libc's
//      GLIBC_2.2.5 version (their .gnu.version entry);
//   2. the GLIBC_2.38 and GLIBCXX_3.4.32 version requirements get VER_FLG_WEAK, so the dynamic loader does not
//      refuse a library that lacks them (glibc's dl-version.c: a weak version that is missing is not fatal).
// Nothing here needs a compiler, patchelf or the network. On a machine whose glibc is 2.38 or newer the
// shipped addon loads as it is and no copy is made. test/fuzz/jazzer/preload.cjs (node -r) loads whichever
// applies in place of the shipped file.
//
// Usage: node test/fuzz/jazzer/setup.mjs   (prints the addon path to use; exit 1 when it cannot be made)
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, existsSync, renameSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const outDir = join(root, 'build', 'jazzer');
export const patchedPath = join(outDir, 'fuzzer-linux-x64.node');

function shippedPath() {
  const require = createRequire(join(root, 'package.json'));
  const pkg = require.resolve('@jazzer.js/fuzzer/package.json');
  return join(dirname(pkg), 'prebuilds', `fuzzer-${process.platform}-${process.arch}.node`);
}

function glibcAtLeast(major, minor) {
  const v = process.report?.getReport?.().header?.glibcVersionRuntime;
  if (typeof v !== 'string') return false;
  const [a, b] = v.split('.').map(Number);
  return a > major || (a === major && b >= minor);
}

const VER_FLG_WEAK = 0x2;
const RENAMES = new Map([
  ['__isoc23_strtol', 'strtol'],
  ['__isoc23_strtoul', 'strtoul'],
]);
const WEAKEN = new Set(['GLIBC_2.38', 'GLIBCXX_3.4.32']);

function cstr(buf, off) {
  let end = off;
  while (buf[end] !== 0) end++;
  return buf.toString('latin1', off, end);
}

/** Patches an ELF64 little-endian shared object in memory; returns a list of what it changed. */
export function patchElf(buf) {
  if (buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2 || buf[5] !== 1) throw new Error('not an ELF64 LE file');
  const shoff = Number(buf.readBigUInt64LE(0x28));
  const shentsize = buf.readUInt16LE(0x3a);
  const shnum = buf.readUInt16LE(0x3c);
  const sections = [];
  for (let i = 0; i < shnum; i++) {
    const o = shoff + i * shentsize;
    sections.push({
      type: buf.readUInt32LE(o + 4),
      offset: Number(buf.readBigUInt64LE(o + 0x18)),
      size: Number(buf.readBigUInt64LE(o + 0x20)),
      link: buf.readUInt32LE(o + 0x28),
      entsize: Number(buf.readBigUInt64LE(o + 0x38)),
    });
  }
  const SHT_DYNSYM = 11, SHT_GNU_verneed = 0x6ffffffe, SHT_GNU_versym = 0x6fffffff;
  const dynsym = sections.find((s) => s.type === SHT_DYNSYM);
  const versym = sections.find((s) => s.type === SHT_GNU_versym);
  const verneed = sections.find((s) => s.type === SHT_GNU_verneed);
  if (!dynsym || !versym || !verneed) throw new Error('no .dynsym/.gnu.version/.gnu.version_r');
  const strtab = sections[dynsym.link].offset;
  const changes = [];

  // The version index of libc's GLIBC_2.2.5, and the requirements to weaken.
  let base = -1;
  for (let o = verneed.offset; ; ) {
    const file = cstr(buf, strtab + buf.readUInt32LE(o + 4));
    const cnt = buf.readUInt16LE(o + 2);
    for (let a = o + buf.readUInt32LE(o + 8), k = 0; k < cnt; k++) {
      const name = cstr(buf, strtab + buf.readUInt32LE(a + 8));
      const flags = buf.readUInt16LE(a + 4);
      if (file === 'libc.so.6' && name === 'GLIBC_2.2.5') base = buf.readUInt16LE(a + 6);
      if (WEAKEN.has(name) && (flags & VER_FLG_WEAK) === 0) {
        buf.writeUInt16LE(flags | VER_FLG_WEAK, a + 4);
        changes.push(`${file} ${name}: weak`);
      }
      const next = buf.readUInt32LE(a + 12);
      if (next === 0) break;
      a += next;
    }
    const next = buf.readUInt32LE(o + 12);
    if (next === 0) break;
    o += next;
  }
  if (base < 0) throw new Error('no libc.so.6 GLIBC_2.2.5 requirement to bind to');

  const count = dynsym.size / dynsym.entsize;
  for (let i = 0; i < count; i++) {
    const o = dynsym.offset + i * dynsym.entsize;
    const nameOff = buf.readUInt32LE(o);
    const name = cstr(buf, strtab + nameOff);
    const to = RENAMES.get(name);
    if (!to) continue;
    if (buf.readUInt16LE(o + 6) !== 0) throw new Error(`${name} is defined here, not imported`);
    buf.writeUInt32LE(nameOff + (name.length - to.length), o); // the tail of the same string
    if (cstr(buf, strtab + buf.readUInt32LE(o)) !== to) throw new Error(`renaming ${name} failed`);
    buf.writeUInt16LE(base, versym.offset + 2 * i);
    changes.push(`${name} -> ${to}@GLIBC_2.2.5`);
  }
  return changes;
}

/** The path of an addon that loads here: the shipped one when glibc is new enough, else the patched copy. */
export function ensureAddon({ quiet = false } = {}) {
  const shipped = shippedPath();
  if (process.platform !== 'linux' || process.arch !== 'x64' || glibcAtLeast(2, 38)) return shipped;
  const src = readFileSync(shipped);
  const stamp = createHash('sha256').update(src).digest('hex');
  const stampPath = patchedPath + '.source-sha256';
  if (existsSync(patchedPath) && existsSync(stampPath) && readFileSync(stampPath, 'utf8') === stamp) return patchedPath;
  const out = Buffer.from(src);
  const changes = patchElf(out);
  mkdirSync(outDir, { recursive: true });
  writeFileSync(patchedPath + '.tmp', out);
  renameSync(patchedPath + '.tmp', patchedPath);
  writeFileSync(stampPath, stamp);
  if (!quiet) console.error(`jazzer setup: patched copy ${patchedPath}: ${changes.join('; ')}`);
  return patchedPath;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    console.log(ensureAddon());
  } catch (e) {
    console.error(`jazzer setup failed: ${e.message}`);
    process.exit(1);
  }
}
