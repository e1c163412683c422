#!/usr/bin/env node
// RSS of the broker when persistent sessions with large backlogs reconnect and
// do not read (issue 9): N sessions subscribe at QoS 1 and go offline, a
// publisher sends M distinct payloads of S bytes (each queued for every
// session: N x M x S bytes of backlog), then all N reconnect and stop reading.
// The broker's RSS (from /proc) is reported before publishing, after, and at
// its peak over a few seconds with everyone reconnected, for Petrel (SQLite
// store) and Mosquitto (persistence on, queue limits raised so it keeps every
// message) side by side. Not a timed test: a report.
//
//   node bench/memory-reconnect.mjs [--sessions 16] [--messages 128] [--size 524288]
//                                   [--brokers petrel,mosquitto,mosquitto-inflight20] [--hold 3]
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { findMosquitto, HOST, PETREL_CLI } from './lib/brokers.mjs';
import { freePort, sleep, waitForPort } from './lib/proc.mjs';

function parseArgs(argv) {
  const o = { sessions: 16, messages: 128, size: 512 * 1024, brokers: ['petrel', 'mosquitto', 'mosquitto-inflight20'], hold: 3 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[++i];
    if (v === undefined) throw new Error(`${a} needs a value`);
    if (a === '--sessions') o.sessions = Number(v);
    else if (a === '--messages') o.messages = Number(v);
    else if (a === '--size') o.size = Number(v);
    else if (a === '--hold') o.hold = Number(v);
    else if (a === '--brokers') o.brokers = v.split(',').filter(Boolean);
    else throw new Error(`unknown option ${a}`);
  }
  return o;
}

const rssMb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;

async function start(name, port, dir) {
  let argv;
  if (name === 'petrel') {
    argv = [process.execPath, PETREL_CLI, '--port', String(port), '--host', HOST, '--data-dir', dir, '--log-level', 'error',
      '--max-packet-size', String(16 * 1024 * 1024)];
  } else {
    const m = findMosquitto();
    if (!m) return null;
    const conf = path.join(dir, 'mosquitto.conf');
    fs.writeFileSync(conf, [
      `listener ${port} ${HOST}`, 'allow_anonymous true', 'persistence true', `persistence_location ${dir}/`,
      'max_queued_messages 1000000', 'max_queued_bytes 0',
      // "mosquitto": in flight up to 1000 per client, as Petrel's maxInflight; "mosquitto-inflight20": its default.
      ...(name === 'mosquitto' ? ['max_inflight_messages 1000'] : []),
      'log_dest stderr', 'log_type error', '',
    ].join('\n'));
    argv = [m.bin, '-c', conf];
  }
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'inherit'] });
  let alive = true;
  child.once('exit', () => (alive = false));
  if (!(await waitForPort(HOST, port, 20_000, () => alive))) throw new Error(`${name} did not start`);
  return child;
}

function connect(port, clientId, clean) {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect({ host: HOST, port, clientId, clean, protocolVersion: 4, reconnectPeriod: 0, keepalive: 0 });
    c.once('connect', (ack) => resolve({ c, ack }));
    c.once('error', reject);
  });
}

async function run(name, o) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `memrec-${name}-`));
  fs.chmodSync(dir, 0o777); // mosquitto started as root writes its persistence file as user mosquitto
  const port = await freePort();
  const child = await start(name, port, dir);
  if (child === null) return { name, skipped: 'mosquitto not installed' };
  try {
    for (let i = 0; i < o.sessions; i++) {
      const { c } = await connect(port, `mr${i}`, false);
      await c.subscribeAsync('mr/#', { qos: 1 });
      await c.endAsync();
    }
    await sleep(300);
    const before = rssMb(child.pid);
    const { c: pub } = await connect(port, 'mrpub', true);
    const t0 = Date.now();
    const inflight = [];
    for (let i = 0; i < o.messages; i++) {
      const p = Buffer.alloc(o.size, i & 0xff);
      p.writeUInt32BE(i, 0);
      inflight.push(pub.publishAsync('mr/t', p, { qos: 1 }));
      if (inflight.length >= 8) await inflight.shift();
    }
    await Promise.all(inflight);
    const publishS = (Date.now() - t0) / 1000;
    await pub.endAsync();
    await sleep(500);
    const afterPublish = rssMb(child.pid);
    const subs = [];
    for (let i = 0; i < o.sessions; i++) {
      const { c, ack } = await connect(port, `mr${i}`, false);
      if (!ack.sessionPresent) throw new Error(`${name}: session mr${i} not present`);
      c.stream.pause(); // does not read
      subs.push(c);
    }
    let peak = 0;
    const end = Date.now() + o.hold * 1000;
    while (Date.now() < end) {
      peak = Math.max(peak, rssMb(child.pid));
      await sleep(50);
    }
    for (const c of subs) c.end(true);
    return { name, before, afterPublish, peak, publishS };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const o = parseArgs(process.argv.slice(2));
const backlog = (o.messages * o.size) / 1024 / 1024;
console.log(`memory-reconnect: ${o.sessions} persistent sessions x ${backlog.toFixed(0)} MiB backlog (${o.messages} x ${o.size} B), reconnect and do not read`);
console.log('| broker | RSS before | after publishing | peak, all reconnected | publish time |');
console.log('| --- | --- | --- | --- | --- |');
for (const b of o.brokers) {
  const r = await run(b, o);
  if (r.skipped) console.log(`| ${b} | skipped: ${r.skipped} | | | |`);
  else console.log(`| ${b} | ${r.before.toFixed(0)} MB | ${r.afterPublish.toFixed(0)} MB | ${r.peak.toFixed(0)} MB | ${r.publishS.toFixed(1)} s |`);
}
