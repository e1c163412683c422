// The $SYS tree read by the real mosquitto_sub (Debian mosquitto-clients): Mosquitto's topic names and payload
// formats, retained, published every sysInterval seconds and only on change; none with sysInterval 0.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startBroker } from '../helpers/broker.js';
import { connectMqtt, endAll } from '../helpers/mqttjs.js';
import { run } from '../helpers/processes.js';
import { sleep } from '../helpers/wait.js';

const T = { timeout: 30_000 };
const VERSION = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const LOADS = ['messages/received', 'messages/sent', 'publish/dropped', 'publish/received', 'publish/sent', 'bytes/received', 'bytes/sent', 'sockets', 'connections'];
/** The topics Mosquitto 2.x publishes (src/sys_tree.c) that Petrel publishes too, below $SYS/broker/. */
const NAMES = [
  'version',
  'uptime',
  'clients/total',
  'clients/maximum',
  'clients/connected',
  'clients/disconnected',
  'clients/expired',
  'messages/stored',
  'messages/received',
  'messages/sent',
  'store/messages/count',
  'store/messages/bytes',
  'subscriptions/count',
  'shared_subscriptions/count',
  'retained messages/count',
  'publish/messages/dropped',
  'publish/messages/received',
  'publish/messages/sent',
  'publish/bytes/received',
  'publish/bytes/sent',
  'bytes/received',
  'bytes/sent',
  'connections/socket/count',
  ...LOADS.flatMap((l) => ['1min', '5min', '15min'].map((p) => `load/${l}/${p}`)),
].map((n) => `$SYS/broker/${n}`);

/** mosquitto_sub -v lines ("topic payload"); topics may hold a space ("retained messages/count"). */
function parseLines(stdout: string): Map<string, string> {
  const out = new Map<string, string>();
  const known = [...NAMES].sort((a, b) => b.length - a.length);
  for (const line of stdout.split('\n')) {
    if (line === '') continue;
    const topic = known.find((t) => line.startsWith(`${t} `));
    if (topic !== undefined) out.set(topic, line.slice(topic.length + 1));
    else out.set(line.slice(0, line.indexOf(' ')), line.slice(line.indexOf(' ') + 1));
  }
  return out;
}

async function mosquittoSub(port: number, filter: string, seconds: number): Promise<Map<string, string>> {
  const r = await run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port), '-V', 'mqttv311', '-t', filter, '-v', '-W', String(seconds)], (seconds + 5) * 1000);
  // -W ends it with exit status 27 (timed out) once the retained messages are in.
  assert.ok(r.code === 0 || r.code === 27, `mosquitto_sub failed\n${r.describe}`);
  return parseLines(r.stdout);
}

describe('$SYS', T, () => {
  it('mosquitto_sub -t $SYS/# -v reads Mosquitto\'s names with Mosquitto\'s payload formats', T, async () => {
    const tb = await startBroker({ sysInterval: 1 });
    const c = await connectMqtt(tb.url, { clientId: 'sys-test' });
    try {
      await c.client.subscribeAsync('a/#', { qos: 1 });
      await c.client.subscribeAsync('$share/g/b/#', { qos: 0 });
      await c.client.publishAsync('a/kept', 'twelve bytes', { qos: 1, retain: true });
      await c.client.publishAsync('a/x', '12345', { qos: 1 });
      await c.messages.count('a/x', 1);
      await sleep(1300); // one tick after the publishes
      const sys = await mosquittoSub(tb.port, '$SYS/#', 2);
      for (const name of NAMES) assert.ok(sys.has(name), `${name} missing; got ${[...sys.keys()].join(', ')}`);
      assert.equal(sys.get('$SYS/broker/version'), `petrel version ${VERSION}`);
      assert.match(sys.get('$SYS/broker/uptime')!, /^\d+ seconds$/);
      for (const name of NAMES.filter((n) => n.includes('/load/'))) assert.match(sys.get(name)!, /^\d+\.\d\d$/, name);
      for (const name of NAMES.filter((n) => !n.includes('/load/') && !n.endsWith('version') && !n.endsWith('uptime'))) {
        assert.match(sys.get(name)!, /^\d+$/, name);
      }
      assert.equal(sys.get('$SYS/broker/publish/messages/received'), '2');
      assert.equal(sys.get('$SYS/broker/publish/bytes/received'), '17');
      // Ours, and mosquitto_sub's own $SYS/# if a tick came after it subscribed.
      assert.ok(['2', '3'].includes(sys.get('$SYS/broker/subscriptions/count')!), sys.get('$SYS/broker/subscriptions/count'));
      assert.equal(sys.get('$SYS/broker/shared_subscriptions/count'), '1');
      assert.equal(sys.get('$SYS/broker/clients/expired'), '0');
      // The MQTT.js client (and mosquitto_sub if it connected before the last tick).
      assert.ok(Number(sys.get('$SYS/broker/clients/connected')) >= 1);
      assert.ok(Number(sys.get('$SYS/broker/retained messages/count')) >= 1);
      assert.ok(Number(sys.get('$SYS/broker/bytes/received')) > 17);
      assert.ok(Number(sys.get('$SYS/broker/messages/received')) >= 4, 'CONNECT, 2 SUBSCRIBEs, 2 PUBLISHes: packets, as Mosquitto counts');
    } finally {
      await endAll(c.client);
      await tb.close();
    }
  });

  it('publishes a topic again only when its value changes; clients/total follows connections', T, async () => {
    const tb = await startBroker({ sysInterval: 1 });
    const watcher = await connectMqtt(tb.url, { clientId: 'watcher' });
    let other: Awaited<ReturnType<typeof connectMqtt>> | null = null;
    try {
      await watcher.client.subscribeAsync(['$SYS/broker/clients/total', '$SYS/broker/version'], { qos: 0 });
      await sleep(1500);
      await watcher.client.subscribeAsync('$SYS/broker/clients/total', { qos: 0 }); // retained again, once
      await sleep(2200);
      const versions = watcher.messages.on('$SYS/broker/version');
      assert.equal(versions.length, 1, 'the version is published once (and delivered once, as retained)');
      const totals = watcher.messages.payloads('$SYS/broker/clients/total');
      // The retained value at SUBSCRIBE, the watcher's own session at the next tick, the re-SUBSCRIBE's retained copy.
      assert.ok(totals.length <= 3, `no republication without a change: ${JSON.stringify(totals)}`);
      assert.equal(totals.at(-1), '1');
      other = await connectMqtt(tb.url, { clientId: 'other' });
      await watcher.messages.until((m) => m.some((x) => x.topic === '$SYS/broker/clients/total' && x.payload.toString() === '2'), 3000, 'clients/total 2');
    } finally {
      await endAll(watcher.client, other?.client);
      await tb.close();
    }
  });

  it('computes load/publish/received/1min as Mosquitto does: about the messages of the last interval', T, async () => {
    const tb = await startBroker({ sysInterval: 1 });
    const c = await connectMqtt(tb.url, { clientId: 'loader' });
    try {
      await c.client.subscribeAsync('$SYS/broker/load/publish/received/1min', { qos: 0 });
      await sleep(1100);
      for (let i = 0; i < 60; i++) c.client.publish('load/x', 'x', { qos: 0 });
      await sleep(2300);
      const values = c.messages.payloads('$SYS/broker/load/publish/received/1min').map(Number);
      // 60 messages in an interval of dt s: rate 3600/dt per minute, smoothed with e^(-dt/60): about 60 x (1 - dt/120).
      const max = Math.max(...values);
      assert.ok(max > 30 && max <= 60, `load after 60 messages: ${JSON.stringify(values)}`);
    } finally {
      await endAll(c.client);
      await tb.close();
    }
  });

  it('with sysInterval 0 publishes nothing under $SYS', T, async () => {
    const tb = await startBroker({ sysInterval: 0 });
    try {
      const sys = await mosquittoSub(tb.port, '$SYS/#', 1);
      assert.equal(sys.size, 0);
      assert.equal(tb.broker.retainedCount, 0);
    } finally {
      await tb.close();
    }
  });
});
