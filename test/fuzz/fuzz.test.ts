// Bounded fuzzing of a live broker: 10,000 random and mutated packets (bit
// flips, truncation, Remaining Length changes, random overwrites, insertions,
// splices, random flags, pure noise) derived from the catalogue, over many raw
// connections, against a broker running in a child process. Throughout, a
// healthy MQTT.js client exchanges QoS 1 messages and must lose none. At the
// end the broker still accepts connections, has counted protocol errors, and
// its resident memory grew by less than a bound.
//
// The PRNG is seedable: PETREL_FUZZ_SEED=<n> replays a run (the seed is printed).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Decoder } from '../../src/protocol/decoder.js';
import type { ProtocolVersion } from '../../src/protocol/packets.js';
import { connectFor, malformedPackets, validPackets, vbi, type CatalogueEntry } from '../fixtures/catalogue.js';
import { connectMqtt, endAll, versionOptions, type Connected } from '../helpers/mqttjs.js';
import { RawClient } from '../helpers/raw-client.js';
import { sleep, withTimeout } from '../helpers/wait.js';
import { prng } from '../helpers/random.js';
import { BrokerProcess } from './broker-process.js';

/** PETREL_FUZZ_PACKETS=<n> runs a longer (or shorter) fuzz. */
const TOTAL_PACKETS = Number(process.env.PETREL_FUZZ_PACKETS ?? 10_000);
/** Fuzz packets sent as the first packet of their own connection (mutated CONNECTs and noise). */
const SINGLE_SHARE = Math.round(TOTAL_PACKETS / 10);
const PER_CONNECTION = 50;
const PARALLEL = 16;
const RSS_BOUND_MB = 64;

// ---------------------------------------------------------------------------
// Seeded randomness (PETREL_FUZZ_SEED replays a run)

const SEED = process.env.PETREL_FUZZ_SEED !== undefined ? Number(process.env.PETREL_FUZZ_SEED) >>> 0 : (Date.now() ^ (process.pid << 16)) >>> 0;
const rnd = prng(SEED);
const int = (n: number): number => Math.floor(rnd() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;

// ---------------------------------------------------------------------------
// Corpus and mutations

const isConnect = (e: CatalogueEntry): boolean => e.bytes[0]! >> 4 === 1;
const clientSide = [...validPackets, ...malformedPackets].filter((e) => e.side === 'server');
const connects = [...clientSide.filter(isConnect).map((e) => e.bytes), ...([3, 4, 5] as const).map((v) => connectFor(v).bytes)];
const byVersion = new Map<ProtocolVersion, Buffer[]>(
  ([3, 4, 5] as const).map((v) => [v, clientSide.filter((e) => e.version === v && !isConnect(e)).map((e) => e.bytes)]),
);
const validByVersion = new Map<ProtocolVersion, Buffer[]>(
  ([3, 4, 5] as const).map((v) => [v, validPackets.filter((e) => e.side === 'server' && e.version === v && !isConnect(e)).map((e) => e.bytes)]),
);

/** Offset of the body (after the Remaining Length), or -1 if the header is not well formed. */
function bodyOffset(b: Buffer): number {
  for (let i = 1; i < Math.min(b.length, 5); i++) if ((b[i]! & 0x80) === 0) return i + 1;
  return -1;
}

const MUTATIONS: [string, (b: Buffer) => Buffer][] = [
  ['bit flips', (b) => {
    const c = Buffer.from(b);
    const n = 1 + int(4);
    for (let i = 0; i < n; i++) {
      const at = int(c.length);
      c[at]! ^= 1 << int(8);
    }
    return c;
  }],
  ['truncation', (b) => b.subarray(0, Math.max(1, int(b.length)))],
  ['remaining length', (b) => {
    const off = bodyOffset(b);
    if (off < 0) return b;
    const body = b.subarray(off);
    const choices = [body.length + 1 + int(8), Math.max(0, body.length - 1 - int(4)), int(300), 0, 2_000_000 + int(1000), 127, 128, 16383, 16384];
    return Buffer.concat([b.subarray(0, 1), vbi(pick(choices)), body]);
  }],
  ['overwrite', (b) => {
    const c = Buffer.from(b);
    const n = 1 + int(3);
    for (let i = 0; i < n; i++) c[int(c.length)] = pick([0x00, 0xff, 0x7f, 0x80, 0xc0, 0xed, 0x2b, 0x23, int(256)]);
    return c;
  }],
  ['insertion', (b) => {
    const at = int(b.length + 1);
    const ins = Buffer.from(Array.from({ length: 1 + int(6) }, () => int(256)));
    return Buffer.concat([b.subarray(0, at), ins, b.subarray(at)]);
  }],
  ['splice', (b) => {
    const other = pick(clientSide).bytes;
    return Buffer.concat([b.subarray(0, int(b.length + 1)), other.subarray(int(other.length))]);
  }],
  ['flags', (b) => {
    const c = Buffer.from(b);
    c[0] = (c[0]! & 0xf0) | int(16);
    return c;
  }],
  ['type', (b) => {
    const c = Buffer.from(b);
    c[0] = (int(16) << 4) | (c[0]! & 0x0f);
    return c;
  }],
  ['noise', () => {
    const len = 1 + int(64);
    const c = Buffer.from(Array.from({ length: len }, () => int(256)));
    c[0] = (int(16) << 4) | int(16);
    if (len > 1) c[1] = len - 2 < 128 ? len - 2 : c[1]!;
    return c;
  }],
];

function mutate(b: Buffer): { bytes: Buffer; how: string } {
  const rounds = 1 + (rnd() < 0.25 ? 1 : 0);
  let out = b;
  const how: string[] = [];
  for (let i = 0; i < rounds; i++) {
    const [name, f] = pick(MUTATIONS);
    out = f(out);
    how.push(name);
  }
  return { bytes: out.length > 0 ? out : Buffer.from([int(256)]), how: how.join('+') };
}

// ---------------------------------------------------------------------------
// Fuzz connections

interface FuzzStats {
  packets: number;
  connections: number;
  closedByServer: number;
  /** Bytes the broker sent on connections whose version is known, that did not decode. */
  badOutput: string[];
  mutations: Map<string, number>;
}

/** Open a socket; resolves null if it cannot connect within 2 s. */
function openSocket(port: number): Promise<net.Socket | null> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1', noDelay: true });
    const t = setTimeout(() => {
      s.destroy();
      resolve(null);
    }, 2000);
    s.once('connect', () => {
      clearTimeout(t);
      resolve(s);
    });
    s.once('error', () => {
      clearTimeout(t);
      resolve(null);
    });
  });
}

/**
 * One fuzz connection. With `version`, a valid CONNECT goes first and up to `count` packets follow (each
 * mutated or not) until the server closes; without, the one packet is sent as the first packet.
 */
async function fuzzConnection(port: number, first: Buffer | null, packets: Buffer[], version: ProtocolVersion | null, st: FuzzStats): Promise<number> {
  const s = await openSocket(port);
  if (s === null) throw new Error('the broker stopped accepting connections');
  st.connections++;
  let closed = false;
  let ours = false;
  let wake: (() => void) | null = null;
  const decoder = version !== null ? new Decoder({ side: 'client', protocolVersion: version }) : null;
  const inbound: Buffer[] = [];
  const outbound: Buffer[] = [];
  if (decoder) {
    decoder.onError = (e) => {
      // Report what was sent and received, to reproduce.
      if (st.badOutput.length < 5) {
        st.badOutput.push(
          `v${version}: ${e.toString()}\n    received: ${Buffer.concat(inbound).toString('hex')}\n    sent: ${outbound.map((b) => b.toString('hex')).join(' ')}`,
        );
      }
    };
  }
  s.on('data', (d: Buffer) => {
    if (decoder) {
      inbound.push(d);
      decoder.push(d);
    }
  });
  const onGone = (): void => {
    if (!closed) {
      closed = true;
      if (!ours) st.closedByServer++;
    }
    wake?.();
  };
  s.on('end', onGone);
  s.on('close', onGone);
  s.on('error', () => {});
  const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
  let written = 0;
  try {
    if (first !== null) s.write(first);
    if (first !== null && decoder) outbound.push(first);
    for (const p of packets) {
      if (closed) break;
      s.write(p);
      if (decoder) outbound.push(p);
      st.packets++;
      written++;
      // Let the broker act; a few packets go out back to back so that the decoder sees them coalesced.
      if (rnd() < 0.7) await tick();
    }
    if (!closed) {
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 60);
      });
    }
  } finally {
    ours = true;
    s.destroy();
  }
  return written;
}

function nextPacket(version: ProtocolVersion, st: FuzzStats): Buffer {
  if (rnd() < 0.3) return pick(validByVersion.get(version)!);
  const { bytes, how } = mutate(pick(byVersion.get(version)!));
  st.mutations.set(how, (st.mutations.get(how) ?? 0) + 1);
  return bytes;
}

// ---------------------------------------------------------------------------

describe(`fuzz: ${TOTAL_PACKETS} random and mutated packets against a live broker (seed ${SEED})`, { timeout: 120_000 }, () => {
  const broker = new BrokerProcess();
  let healthy: Connected | null = null;

  before(async () => {
    await broker.start();
  });
  after(async () => {
    await endAll(healthy?.client);
    await broker.stop();
  });

  it('the broker survives, keeps serving a healthy QoS 1 client without loss, counts protocol errors, and its RSS stays bounded', { timeout: 110_000 }, async (t) => {
    t.diagnostic(`seed ${SEED} (replay with PETREL_FUZZ_SEED=${SEED})`);
    console.log(`# fuzz seed ${SEED} (replay with PETREL_FUZZ_SEED=${SEED})`);
    const start = Date.now();

    // A healthy client exchanging QoS 1 messages with itself the whole time.
    healthy = await connectMqtt(`mqtt://127.0.0.1:${broker.port}`, { ...versionOptions(5), clientId: `healthy-fuzz-${SEED}` });
    const h = healthy;
    await h.client.subscribeAsync('healthy-fuzz/#', { qos: 1 });
    const sent = new Set<string>();
    let stopHealthy = false;
    let healthyError: unknown = null;
    const healthyLoop = (async () => {
      let i = 0;
      while (!stopHealthy) {
        const payload = `h-${SEED}-${++i}`;
        try {
          await withTimeout(h.client.publishAsync(`healthy-fuzz/${i % 7}`, payload, { qos: 1 }), 15_000, `PUBACK for ${payload}`);
        } catch (err) {
          healthyError = err;
          return;
        }
        sent.add(payload);
        await sleep(10);
      }
    })();

    // Warm-up, then the baseline RSS.
    const st: FuzzStats = { packets: 0, connections: 0, closedByServer: 0, badOutput: [], mutations: new Map() };
    for (let i = 0; i < 50; i++) {
      const v = pick([3, 4, 5] as const);
      await fuzzConnection(broker.port, connectFor(v).bytes, [nextPacket(v, st)], v, st);
    }
    await broker.gc();
    await sleep(200);
    const rssBefore = broker.rss();
    const statsBefore = await broker.stats();
    st.packets = 0;

    // The fuzz: PARALLEL workers take jobs until the packet budget is spent.
    let budgetMulti = TOTAL_PACKETS - SINGLE_SHARE;
    let budgetSingle = SINGLE_SHARE;
    const worker = async (): Promise<void> => {
      while ((budgetMulti > 0 || budgetSingle > 0) && !broker.exited) {
        if (budgetSingle > 0 && (budgetMulti <= 0 || rnd() < SINGLE_SHARE / TOTAL_PACKETS)) {
          budgetSingle--;
          const base = rnd() < 0.8 ? pick(connects) : pick(clientSide).bytes;
          const { bytes, how } = mutate(base);
          st.mutations.set(`first:${how}`, (st.mutations.get(`first:${how}`) ?? 0) + 1);
          await fuzzConnection(broker.port, null, [bytes], null, st);
        } else {
          const version = pick([3, 4, 5] as const);
          // Reserve the packets, then give back what the connection did not use (closed early).
          const n = Math.min(budgetMulti, PER_CONNECTION);
          budgetMulti -= n;
          const packets = Array.from({ length: n }, () => nextPacket(version, st));
          const written = await fuzzConnection(broker.port, connectFor(version).bytes, packets, version, st);
          budgetMulti += n - Math.max(1, written);
        }
      }
    };
    await Promise.all(Array.from({ length: PARALLEL }, worker));
    assert.equal(broker.exited, false, `the broker process died:\n${broker.stderr}`);
    const fuzzMs = Date.now() - start;

    // The healthy client lost nothing.
    stopHealthy = true;
    await withTimeout(healthyLoop, 6000, 'the healthy loop to stop');
    assert.equal(healthyError, null, `the healthy client failed: ${String(healthyError)}`);
    await h.messages.until(
      (ms) => {
        const got = new Set(ms.map((m) => m.payload.toString()));
        for (const p of sent) if (!got.has(p)) return false;
        return true;
      },
      5000,
      'every healthy message back',
    );
    const received = h.messages.messages.filter((m) => m.payload.toString().startsWith(`h-${SEED}-`));
    assert.equal(new Set(received.map((m) => m.payload.toString())).size, sent.size, 'each healthy message received');
    assert.ok(sent.size > 20, `the healthy client kept publishing (${sent.size} messages)`);

    // The broker still accepts connections and works.
    for (const v of [3, 4, 5] as const) {
      const { client, connack } = await RawClient.connect(broker.port, v, { clientId: `after-fuzz-${v}-${SEED}` });
      try {
        assert.equal(connack.reasonCode, 0);
        const suback = await client.subscribe([{ filter: 'after-fuzz/x', qos: 1 }]);
        assert.deepEqual(suback.reasonCodes, [1]);
        client.sendPacket({ type: 12 });
        await client.expect(13);
      } finally {
        client.destroy();
      }
    }

    const statsAfter = await broker.stats();
    const errors = statsAfter.stats.protocolErrors! - statsBefore.stats.protocolErrors!;
    assert.ok(errors > 0, 'protocol errors were counted');
    assert.equal(statsAfter.unhandledRejections, 0, 'unhandled rejections in the broker');
    assert.equal(statsAfter.stats.internalErrors, 0, 'stats.internalErrors');

    // Memory: let the last connections go, collect, measure.
    await sleep(300);
    await broker.gc();
    await sleep(200);
    const rssAfter = broker.rss();
    const growth = (rssAfter - rssBefore) / (1024 * 1024);
    const mem = (await broker.stats()).memory;
    const lines = [
      `fuzz: ${st.packets} fuzz packets over ${st.connections} connections in ${fuzzMs} ms (seed ${SEED})`,
      `  closed by the broker: ${st.closedByServer}; protocol errors counted: ${errors}; connects: ${statsAfter.stats.connects! - statsBefore.stats.connects!}; refused: ${statsAfter.stats.connectsRefused! - statsBefore.stats.connectsRefused!}`,
      `  healthy QoS 1 messages: ${sent.size} sent, ${received.length} received`,
      `  sessions ${statsAfter.sessionCount}, retained ${statsAfter.retainedCount}, connected ${statsAfter.connectedClients}`,
      `  RSS before ${(rssBefore / 1048576).toFixed(1)} MB, after ${(rssAfter / 1048576).toFixed(1)} MB, growth ${growth.toFixed(1)} MB (bound ${RSS_BOUND_MB} MB); heapUsed ${(mem.heapUsed / 1048576).toFixed(1)} MB, external ${(mem.external / 1048576).toFixed(1)} MB, arrayBuffers ${(mem.arrayBuffers / 1048576).toFixed(1)} MB`,
      `  mutations: ${[...st.mutations.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([k, v]) => `${k}=${v}`).join(', ')}`,
    ];
    for (const l of lines) {
      t.diagnostic(l);
      console.log(`# ${l}`);
    }
    assert.ok(st.packets >= TOTAL_PACKETS * 0.95, `about ${TOTAL_PACKETS} packets were sent (${st.packets})`);
    assert.deepEqual(st.badOutput, [], 'everything the broker sent on connections of a known version decodes');
    assert.ok(growth < RSS_BOUND_MB, `RSS grew by ${growth.toFixed(1)} MB`);
  });
});
