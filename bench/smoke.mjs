#!/usr/bin/env node
// Seconds-long smoke check of the benchmark machinery, for the test suite.
//
//   node bench/smoke.mjs --host 127.0.0.1 --port N      (broker started by the caller)
//   node bench/smoke.mjs [--broker petrel|aedes|mosquitto] (starts that broker itself)
//
// Compiles bench/loadgen.c, runs a ~1 s fan-in (2 publishers -> 1 subscriber,
// QoS 1, window 16) and checks that messages arrived with no loss and no
// duplicates. Exit status 0 on success, 1 on failure.
//
// As a module:
//   import { smoke } from './bench/smoke.mjs';
//   const { received, lost, duplicates } = await smoke({ host: '127.0.0.1', port });
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runLoadgen } from './lib/loadgen.mjs';

/**
 * @param {{ host?: string, port: number, duration?: number, brokerPid?: number }} opts
 * @returns {Promise<{ received: number, lost: number, duplicates: number, ok: boolean, recvRate: number, error: string | null, raw: object }>}
 */
export async function smoke({ host = '127.0.0.1', port, duration = 1, brokerPid } = {}) {
  if (!port) throw new Error('smoke: port required');
  const r = await runLoadgen({
    mode: 'throughput',
    host,
    port,
    brokerPid,
    pubs: 2,
    subs: 1,
    pubTopic: `smoke/${process.pid}/%d`,
    subFilter: `smoke/${process.pid}/+`,
    qos: 1,
    window: 16,
    refill: 1, // top up after every ack: no Nagle/delayed-ACK stalls with brokers that leave Nagle on
    warmup: 0.2,
    duration,
    drain: 3,
    setupTimeout: 10,
  });
  const received = r.received ?? 0;
  const lost = r.lost ?? 0;
  const duplicates = r.duplicates ?? 0;
  const ok = r.ok === true && received > 0 && lost === 0 && duplicates === 0;
  return { received, lost, duplicates, ok, recvRate: r.recv_rate ?? 0, error: r.error ?? null, raw: r };
}

async function cli() {
  const args = process.argv.slice(2);
  const opt = (name) => {
    const i = args.indexOf(name);
    return i >= 0 && i + 1 < args.length ? args[i + 1] : undefined;
  };
  const host = opt('--host') ?? '127.0.0.1';
  let port = opt('--port') ? Number(opt('--port')) : undefined;
  let broker = null;
  try {
    if (!port) {
      const { startBroker, unavailableReason } = await import('./lib/brokers.mjs');
      const name = opt('--broker') ?? (unavailableReason('petrel') ? 'aedes' : 'petrel');
      const why = unavailableReason(name);
      if (why) throw new Error(why);
      broker = await startBroker(name);
      port = broker.port;
      console.error(`smoke: started ${name} on ${host}:${port}`);
    }
    const r = await smoke({ host, port, brokerPid: broker?.pid });
    console.log(
      `smoke: ${r.ok ? 'ok' : 'FAILED'}: received ${r.received} (${Math.round(r.recvRate)} msg/s), lost ${r.lost}, duplicates ${r.duplicates}` +
        (r.error ? `, error: ${r.error}` : ''),
    );
    return r.ok ? 0 : 1;
  } catch (e) {
    console.error(`smoke: FAILED: ${e.message ?? e}`);
    return 1;
  } finally {
    if (broker) await broker.stop();
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  cli().then((code) => process.exit(code));
}
