// Petrel with the Eclipse Mosquitto command-line clients (libmosquitto), in
// MQTT 3.1, 3.1.1 and 5.0: QoS 0/1/2, retained messages, persistent sessions,
// wildcards, and messages crossing between mosquitto and MQTT.js.
// Every mosquitto_sub runs with a -W timeout and is killed after its test; it
// runs under `stdbuf -oL` so that its output arrives line by line through a pipe.

import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { connectMqtt, endAll, versionOptions, type Connected } from '../helpers/mqttjs.js';
import { LineProcess, ProcessTracker, run } from '../helpers/processes.js';
import { clientTarget, type ClientTarget } from '../helpers/transport.js';

const T = { timeout: 30_000 };
const VERSIONS = [
  { flag: 'mqttv31', level: 3 },
  { flag: 'mqttv311', level: 4 },
  { flag: 'mqttv5', level: 5 },
] as const;

interface Msg {
  topic: string;
  qos: number;
  retain: boolean;
  payload: string;
}

const FORMAT = 'MSG|%t|%q|%r|%p';
function parse(lines: string[]): Msg[] {
  return lines
    .filter((l) => l.startsWith('MSG|'))
    .map((l) => {
      const [, topic, qos, retain, ...rest] = l.split('|');
      return { topic: topic!, qos: Number(qos), retain: retain === '1', payload: rest.join('|') };
    });
}

let seq = 0;
/** A client id of at most 23 characters (MQTT 3.1). */
const shortId = (p: string): string => `${p}${process.pid % 100000}x${++seq}`.slice(0, 23);

describe('mosquitto_pub / mosquitto_sub', T, () => {
  let tb: TestBroker;
  const procs = new ProcessTracker();
  const clients: Connected[] = [];

  let target: ClientTarget;
  before(async () => {
    tb = await startBroker();
    target = await clientTarget(tb);
  });
  afterEach(async () => {
    await procs.killAll();
    await endAll(...clients.splice(0).map((c) => c.client));
  });
  after(async () => {
    await target.close();
    await tb.close();
  });

  const base = (flag: string): string[] => [...target.args, '-V', flag];

  /** Start mosquitto_sub (-d to see SUBACK) and wait until it is subscribed. */
  async function sub(flag: string, args: string[], timeoutSecs = 10): Promise<LineProcess> {
    const p = procs.track(new LineProcess('stdbuf', ['-oL', 'mosquitto_sub', ...base(flag), '-d', '-F', FORMAT, '-W', String(timeoutSecs), ...args]));
    await p.waitForLine((l) => l.includes('received SUBACK'), 5000, 'SUBACK');
    return p;
  }

  async function pub(flag: string, args: string[]): Promise<void> {
    const r = await run('mosquitto_pub', [...base(flag), ...args], 10_000);
    assert.equal(r.code, 0, `mosquitto_pub failed\n${r.describe}`);
  }

  async function mqttjs(level: 3 | 4 | 5): Promise<Connected> {
    const c = await connectMqtt(tb.url, versionOptions(level));
    clients.push(c);
    return c;
  }

  for (const { flag, level } of VERSIONS) {
    describe(`-V ${flag}`, T, () => {
      const t = (name: string): string => `mq/${flag}/${name}`;

      it('QoS 0, 1 and 2 from mosquitto_pub reach mosquitto_sub (QoS 2 subscription) at the published QoS [MQTT-3.8.4-8]', T, async () => {
        const s = await sub(flag, ['-t', t('qos/#'), '-q', '2', '-C', '3']);
        for (const q of [0, 1, 2]) await pub(flag, ['-t', t(`qos/${q}`), '-q', String(q), '-m', `q${q}`]);
        assert.equal(await s.exit(10_000), 0, s.describe());
        const got = parse(s.lines).sort((a, b) => a.qos - b.qos);
        assert.deepEqual(got.map((m) => [m.topic, m.qos, m.payload]), [
          [t('qos/0'), 0, 'q0'],
          [t('qos/1'), 1, 'q1'],
          [t('qos/2'), 2, 'q2'],
        ]);
        assert.ok(s.lines.some((l) => l.includes('sending PUBCOMP')), 'the QoS 2 flow completed');
      });

      it('a QoS 1 subscription receives a QoS 2 publication at QoS 1', T, async () => {
        const s = await sub(flag, ['-t', t('down'), '-q', '1', '-C', '1']);
        await pub(flag, ['-t', t('down'), '-q', '2', '-m', 'x']);
        assert.equal(await s.exit(10_000), 0, s.describe());
        assert.deepEqual(parse(s.lines).map((m) => m.qos), [1]);
      });

      it('retained: set with -r, delivered with RETAIN 1 on subscribe, replaced, cleared with -r -n [MQTT-3.3.1-5] [MQTT-3.3.1-6]', T, async () => {
        await pub(flag, ['-t', t('ret/a'), '-r', '-q', '1', '-m', 'first']);
        await pub(flag, ['-t', t('ret/a'), '-r', '-q', '1', '-m', 'second']);
        await pub(flag, ['-t', t('ret/b'), '-r', '-q', '1', '-m', 'other']);
        const s1 = await sub(flag, ['-t', t('ret/#'), '-q', '1', '-C', '2']);
        assert.equal(await s1.exit(10_000), 0, s1.describe());
        const got = parse(s1.lines).sort((a, b) => a.topic.localeCompare(b.topic));
        assert.deepEqual(got.map((m) => [m.topic, m.payload, m.retain]), [
          [t('ret/a'), 'second', true],
          [t('ret/b'), 'other', true],
        ]);
        await pub(flag, ['-t', t('ret/a'), '-r', '-q', '1', '-n']);
        const s2 = await sub(flag, ['-t', t('ret/#'), '-q', '1']);
        // A live message follows the retained ones: once it is here, every retained message was sent.
        await pub(flag, ['-t', t('ret/live'), '-q', '1', '-m', 'live']);
        await s2.waitUntil((ls) => parse(ls).some((m) => m.payload === 'live'), 5000, 'the live marker');
        assert.deepEqual(parse(s2.lines).map((m) => [m.topic, m.payload, m.retain]), [
          [t('ret/b'), 'other', true],
          [t('ret/live'), 'live', false],
        ]);
        await pub(flag, ['-t', t('ret/b'), '-r', '-q', '1', '-n']);
      });

      it('-c persistent session with -i: QoS 1 and 2 messages published while offline are delivered on reconnect [MQTT-3.1.2-5]', T, async () => {
        const id = shortId(`pm${level}`);
        const first = procs.track(new LineProcess('stdbuf', ['-oL', 'mosquitto_sub', ...base(flag), '-c', '-i', id, '-q', '2', '-t', t('ps/#'), '-E', '-d']));
        assert.equal(await first.exit(10_000), 0, first.describe());
        assert.ok(first.lines.some((l) => l.includes('received SUBACK')));
        await pub(flag, ['-t', t('ps/a'), '-q', '1', '-m', 'one']);
        await pub(flag, ['-t', t('ps/b'), '-q', '2', '-m', 'two']);
        const again = procs.track(new LineProcess('stdbuf', ['-oL', 'mosquitto_sub', ...base(flag), '-c', '-i', id, '-q', '2', '-t', t('ps/#'), '-C', '2', '-W', '10', '-d', '-F', FORMAT]));
        assert.equal(await again.exit(10_000), 0, again.describe());
        assert.deepEqual(parse(again.lines).map((m) => [m.topic, m.payload, m.qos]), [
          [t('ps/a'), 'one', 1],
          [t('ps/b'), 'two', 2],
        ]);
        if (level !== 3) assert.ok(again.lines.some((l) => /received CONNACK \(0\)/.test(l)));
        // End the session: connect once with a clean session.
        const clean = await run('mosquitto_sub', [...base(flag), '-i', id, '-t', t('ps/#'), '-E'], 10_000);
        assert.equal(clean.code, 0, clean.describe);
      });

      it("wildcards: '+' and '#' subscriptions receive exactly the matching topics [MQTT-4.7.1-2]", T, async () => {
        const s = await sub(flag, ['-t', t('w/+/x'), '-t', t('w/y/#'), '-q', '1']);
        for (const topic of ['w/a/x', 'w/a/b/x', 'w/y', 'w/y/z/z', 'w/x', 'w/end/x']) await pub(flag, ['-t', t(topic), '-q', '1', '-m', topic]);
        await s.waitUntil((ls) => parse(ls).some((m) => m.payload === 'w/end/x'), 5000, 'the last message');
        assert.deepEqual(parse(s.lines).map((m) => m.payload), ['w/a/x', 'w/y', 'w/y/z/z', 'w/end/x']);
      });

      for (const jsLevel of [4, 5] as const) {
        it(`both directions with MQTT.js (protocol level ${jsLevel}): mosquitto_pub → MQTT.js and MQTT.js → mosquitto_sub, QoS 1 and 2`, T, async () => {
          const js = await mqttjs(jsLevel);
          await js.client.subscribeAsync(t(`x${jsLevel}/to-js/#`), { qos: 2 });
          const s = await sub(flag, ['-t', t(`x${jsLevel}/to-mosq/#`), '-q', '2', '-C', '2']);
          await pub(flag, ['-t', t(`x${jsLevel}/to-js/1`), '-q', '1', '-m', 'from mosquitto 1']);
          await pub(flag, ['-t', t(`x${jsLevel}/to-js/2`), '-q', '2', '-m', 'from mosquitto 2']);
          await js.client.publishAsync(t(`x${jsLevel}/to-mosq/1`), 'from mqtt.js 1', { qos: 1 });
          await js.client.publishAsync(t(`x${jsLevel}/to-mosq/2`), 'from mqtt.js 2', { qos: 2 });
          await js.messages.until((ms) => ms.length >= 2, 5000, 'two messages at MQTT.js');
          assert.deepEqual(js.messages.messages.map((m) => [m.payload.toString(), m.packet.qos]), [['from mosquitto 1', 1], ['from mosquitto 2', 2]]);
          assert.equal(await s.exit(10_000), 0, s.describe());
          assert.deepEqual(parse(s.lines).map((m) => [m.payload, m.qos]), [['from mqtt.js 1', 1], ['from mqtt.js 2', 2]]);
        });
      }
    });
  }

  it('MQTT 5.0 between mosquitto clients: user property, content type and subscription identifier (-D) [MQTT-3.3.2-17] [MQTT-3.3.2-20] [MQTT-3.3.4-3]', T, async () => {
    const p = procs.track(
      new LineProcess('stdbuf', ['-oL', 'mosquitto_sub', ...base('mqttv5'), '-d', '-F', 'V5|%t|%P|%C|%S|%p', '-W', '10', '-t', 'mq/v5props/#', '-q', '1', '-C', '1', '-D', 'subscribe', 'subscription-identifier', '42']),
    );
    await p.waitForLine((l) => l.includes('received SUBACK'), 5000, 'SUBACK');
    await pub('mqttv5', ['-t', 'mq/v5props/x', '-q', '1', '-m', 'body', '-D', 'publish', 'user-property', 'color', 'blue', '-D', 'publish', 'content-type', 'text/plain']);
    assert.equal(await p.exit(10_000), 0, p.describe());
    const line = p.lines.find((l) => l.startsWith('V5|'));
    assert.equal(line, 'V5|mq/v5props/x|color:blue|text/plain|42|body');
  });

  it('MQTT 5.0 user properties from MQTT.js reach mosquitto_sub', T, async () => {
    const p = procs.track(new LineProcess('stdbuf', ['-oL', 'mosquitto_sub', ...base('mqttv5'), '-d', '-F', 'V5|%P|%p', '-W', '10', '-t', 'mq/v5up', '-q', '1', '-C', '1']));
    await p.waitForLine((l) => l.includes('received SUBACK'), 5000, 'SUBACK');
    const js = await mqttjs(5);
    await js.client.publishAsync('mq/v5up', 'x', { qos: 1, properties: { userProperties: { team: 'petrel' } } });
    assert.equal(await p.exit(10_000), 0, p.describe());
    assert.deepEqual(p.lines.filter((l) => l.startsWith('V5|')), ['V5|team:petrel|x']);
  });
});
