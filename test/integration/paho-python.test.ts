// Petrel with the Eclipse Paho Python client (paho-mqtt 1.6.1, Debian's
// python3-paho-mqtt, run with /usr/bin/python3) in MQTT 3.1, 3.1.1 and 5.0.
// Each scenario is a small Python script fed on stdin; it prints one
// `RESULT <json>` line (or `FAIL <why>` and exits non-zero). Every wait in the
// scripts is bounded, and each script is killed if it outlives its budget.

import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { connectMqtt, endAll, versionOptions, type Connected } from '../helpers/mqttjs.js';
import { LineProcess, ProcessTracker, run } from '../helpers/processes.js';
import { testCerts } from '../helpers/certs.js';
import { TEST_TRANSPORT } from '../helpers/transport.js';

const T = { timeout: 30_000 };
/** The scripts' transport arguments: PETREL_TEST_TRANSPORT (paho speaks TLS and WebSocket itself) and the test CA. */
const transportArgs = (): string[] => [TEST_TRANSPORT, testCerts().ca];
const PYTHON = '/usr/bin/python3';
const VERSIONS = [
  { name: '31', level: 3 },
  { name: '311', level: 4 },
  { name: '5', level: 5 },
] as const;

const PRELUDE = String.raw`
import json, sys, threading, time
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

PORT = int(sys.argv[1])
VERSION = sys.argv[2]
PREFIX = sys.argv[3]
# The test transport (PETREL_TEST_TRANSPORT): tcp and proxy (through the front) are plain TCP for the client.
TRANSPORT = sys.argv[4] if len(sys.argv) > 4 else 'tcp'
CA = sys.argv[5] if len(sys.argv) > 5 else None
PROTO = {'31': mqtt.MQTTv31, '311': mqtt.MQTTv311, '5': mqtt.MQTTv5}[VERSION]
V5 = PROTO == mqtt.MQTTv5
DEADLINE = 8

def fail(msg):
    print('FAIL ' + msg, flush=True)
    sys.exit(2)

def result(obj):
    print('RESULT ' + json.dumps(obj), flush=True)

def msg_dict(m):
    d = {'topic': m.topic, 'payload': m.payload.decode('utf-8', 'replace'), 'qos': m.qos, 'retain': bool(m.retain)}
    if V5 and m.properties is not None:
        p = m.properties
        if hasattr(p, 'UserProperty'): d['user'] = [list(x) for x in p.UserProperty]
        if hasattr(p, 'SubscriptionIdentifier'): d['subids'] = sorted(p.SubscriptionIdentifier)
        if hasattr(p, 'ContentType'): d['contentType'] = p.ContentType
        if hasattr(p, 'ResponseTopic'): d['responseTopic'] = p.ResponseTopic
        if hasattr(p, 'CorrelationData'): d['correlation'] = p.CorrelationData.hex()
    return d

class C:
    def __init__(self, client_id, clean=True, expiry=None):
        self.msgs = []
        self.cond = threading.Condition()
        self.connack = None
        self.subacks = {}
        self.clean = clean
        self.expiry = expiry
        web = 'websockets' if TRANSPORT in ('ws', 'wss') else 'tcp'
        if V5:
            self.c = mqtt.Client(client_id=client_id, protocol=PROTO, transport=web)
        else:
            self.c = mqtt.Client(client_id=client_id, clean_session=clean, protocol=PROTO, transport=web)
        if web == 'websockets':
            self.c.ws_set_options(path='/mqtt')
        if TRANSPORT in ('tls', 'wss'):
            self.c.tls_set(ca_certs=CA)
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe

    def _on_connect(self, c, u, flags, rc, props=None):
        with self.cond:
            self.connack = (dict(flags), int(rc.value) if hasattr(rc, 'value') else int(rc))
            self.cond.notify_all()

    def _on_message(self, c, u, m):
        with self.cond:
            self.msgs.append(m)
            self.cond.notify_all()

    def _on_subscribe(self, c, u, mid, granted, props=None):
        with self.cond:
            self.subacks[mid] = [int(g.value) if hasattr(g, 'value') else int(g) for g in granted]
            self.cond.notify_all()

    def wait(self, pred, what, timeout=DEADLINE):
        end = time.time() + timeout
        with self.cond:
            while not pred():
                left = end - time.time()
                if left <= 0:
                    fail('timeout waiting for ' + what)
                self.cond.wait(left)

    def connect(self):
        kw = {}
        if V5:
            kw['clean_start'] = self.clean
            if self.expiry is not None:
                p = Properties(PacketTypes.CONNECT)
                p.SessionExpiryInterval = self.expiry
                kw['properties'] = p
        self.c.connect('127.0.0.1', PORT, 30, **kw)
        self.c.loop_start()
        self.wait(lambda: self.connack is not None, 'CONNACK')
        if self.connack[1] != 0:
            fail('CONNACK refused: %d' % self.connack[1])
        return self.connack[0]

    def subscribe(self, topic, qos, subid=None):
        props = None
        if subid is not None:
            props = Properties(PacketTypes.SUBSCRIBE)
            props.SubscriptionIdentifier = subid
        rc, mid = self.c.subscribe(topic, qos, properties=props) if V5 else self.c.subscribe(topic, qos)
        if rc != 0:
            fail('subscribe rc %d' % rc)
        self.wait(lambda: mid in self.subacks, 'SUBACK')
        return self.subacks[mid]

    def publish(self, topic, payload, qos=0, retain=False, props=None):
        info = self.c.publish(topic, payload, qos, retain, properties=props) if V5 else self.c.publish(topic, payload, qos, retain)
        info.wait_for_publish(DEADLINE)
        if not info.is_published():
            fail('publish not acknowledged: ' + topic)

    def count(self, n, what):
        self.wait(lambda: len(self.msgs) >= n, what)
        return [msg_dict(m) for m in self.msgs]

    def stop(self):
        self.c.disconnect()
        self.c.loop_stop()

def cid(name):
    return (name + VERSION + str(int(time.time() * 1000) % 100000))[:23]
`;

/** Scenario bodies, run after PRELUDE. T = PREFIX topic root. */
const SCENARIOS = {
  // Two paho clients: QoS 0/1/2 from one to the other.
  roundTrip: String.raw`
sub = C(cid('rts'))
sub.connect()
granted = sub.subscribe(PREFIX + '/rt/#', 2)
pub = C(cid('rtp'))
pub.connect()
for q in (0, 1, 2):
    pub.publish(PREFIX + '/rt/q%d' % q, 'q%d' % q, q)
msgs = sub.count(3, 'three messages')
time.sleep(0.2)
result({'granted': granted, 'messages': sorted([msg_dict(m) for m in sub.msgs], key=lambda m: m['topic'])})
pub.stop(); sub.stop()
`,
  // Retained: set, replace, receive with retain 1, clear, a live message is not retained.
  retained: String.raw`
pub = C(cid('rtn'))
pub.connect()
pub.publish(PREFIX + '/ret/a', 'first', 1, True)
pub.publish(PREFIX + '/ret/a', 'second', 1, True)
s1 = C(cid('rs1'))
s1.connect()
s1.subscribe(PREFIX + '/ret/a', 1)
first = s1.count(1, 'the retained message')
pub.publish(PREFIX + '/ret/a', 'live', 1, False)
both = s1.count(2, 'the live message')
pub.publish(PREFIX + '/ret/a', '', 1, True)
s2 = C(cid('rs2'))
s2.connect()
s2.subscribe(PREFIX + '/ret/#', 1)
pub.publish(PREFIX + '/ret/marker', 'marker', 1, False)
after = s2.count(1, 'the marker')
result({'first': both, 'afterClear': after})
pub.stop(); s1.stop(); s2.stop()
`,
  // Persistent session: subscribe, go away, messages queued, come back.
  persistent: String.raw`
ident = cid('ps')
a = C(ident, clean=False, expiry=60)
flags1 = a.connect()
a.subscribe(PREFIX + '/ps/#', 1)
a.stop()
pub = C(cid('psp'))
pub.connect()
pub.publish(PREFIX + '/ps/x', 'one', 1)
pub.publish(PREFIX + '/ps/x', 'two', 1)
b = C(ident, clean=False, expiry=60)
flags2 = b.connect()
msgs = b.count(2, 'the queued messages')
result({'first': flags1.get('session present'), 'second': flags2.get('session present'), 'messages': msgs})
b.stop(); pub.stop()
c = C(ident, clean=True)
c.connect()
c.stop()
`,
  // MQTT 5.0 properties: user properties (order, repeats), content type, response topic, correlation
  // data, and subscription identifiers for overlapping subscriptions.
  v5props: String.raw`
sub = C(cid('v5s'))
sub.connect()
sub.subscribe(PREFIX + '/v5/#', 1, subid=5)
sub.subscribe(PREFIX + '/v5/+', 1, subid=7)
pub = C(cid('v5p'))
pub.connect()
p = Properties(PacketTypes.PUBLISH)
p.UserProperty = [('z', '1'), ('a', '2'), ('z', '3')]
p.ContentType = 'text/plain'
p.ResponseTopic = PREFIX + '/v5reply'
p.CorrelationData = b'\x00\x01\xff'
pub.publish(PREFIX + '/v5/x', 'body', 1, False, p)
pub.publish(PREFIX + '/v5/deep/x', 'deep', 1, False)
msgs = sub.count(2, 'two messages')
result({'messages': msgs})
pub.stop(); sub.stop()
`,
  // Interop with MQTT.js: paho subscribes and reports READY; the test publishes from MQTT.js; then paho
  // publishes QoS 0/1/2 for MQTT.js.
  withMqttjs: String.raw`
c = C(cid('js'))
c.connect()
c.subscribe(PREFIX + '/to-py/#', 2)
print('READY', flush=True)
msgs = c.count(3, 'three messages from MQTT.js')
for q in (0, 1, 2):
    c.publish(PREFIX + '/to-js/q%d' % q, 'from paho q%d' % q, q)
result({'messages': sorted(msgs, key=lambda m: m['topic'])})
c.stop()
`,
} as const;

interface PyMessage {
  topic: string;
  payload: string;
  qos: number;
  retain: boolean;
  user?: [string, string][];
  subids?: number[];
  contentType?: string;
  responseTopic?: string;
  correlation?: string;
}

function resultOf<R>(stdout: string, describe: string): R {
  const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
  assert.ok(line !== undefined, `the script printed a RESULT line\n${describe}`);
  return JSON.parse(line.slice(7)) as R;
}

describe('Eclipse Paho Python client (paho-mqtt 1.6.1)', T, () => {
  let tb: TestBroker;
  const procs = new ProcessTracker();
  const clients: Connected[] = [];

  before(async () => {
    tb = await startBroker();
  });
  afterEach(async () => {
    await procs.killAll();
    await endAll(...clients.splice(0).map((c) => c.client));
  });
  after(() => tb.close());

  async function scenario<R>(body: string, version: string, prefix: string): Promise<R> {
    const r = await run(PYTHON, ['-', String(tb.port), version, prefix, ...transportArgs()], 20_000, { stdin: PRELUDE + body });
    assert.equal(r.code, 0, `python exited with ${r.code}\n${r.describe}`);
    return resultOf<R>(r.stdout, r.describe);
  }

  it('paho-mqtt 1.6.1 is importable by /usr/bin/python3', T, async () => {
    const r = await run(PYTHON, ['-c', 'import paho.mqtt; print(paho.mqtt.__version__)'], 10_000);
    assert.equal(r.code, 0, r.describe);
    assert.equal(r.stdout.trim(), '1.6.1');
  });

  for (const { name, level } of VERSIONS) {
    describe(`MQTT ${name === '31' ? '3.1' : name === '311' ? '3.1.1' : '5.0'}`, T, () => {
      const prefix = `paho/${name}`;

      it('QoS 0/1/2 round trip between two paho clients, each delivered once at its QoS [MQTT-3.8.4-8] [MQTT-4.3.3-10]', T, async () => {
        const r = await scenario<{ granted: number[]; messages: PyMessage[] }>(SCENARIOS.roundTrip, name, prefix);
        assert.deepEqual(r.granted, [2]);
        assert.deepEqual(r.messages.map((m) => [m.topic, m.payload, m.qos]), [
          [`${prefix}/rt/q0`, 'q0', 0],
          [`${prefix}/rt/q1`, 'q1', 1],
          [`${prefix}/rt/q2`, 'q2', 2],
        ]);
      });

      it('retained: the latest retained message is sent with RETAIN 1 on subscribe; live delivery has RETAIN 0; an empty payload clears it [MQTT-3.3.1-5] [MQTT-3.3.1-6]', T, async () => {
        const r = await scenario<{ first: PyMessage[]; afterClear: PyMessage[] }>(SCENARIOS.retained, name, prefix);
        assert.deepEqual(r.first.map((m) => [m.payload, m.retain]), [['second', true], ['live', false]]);
        assert.deepEqual(r.afterClear.map((m) => [m.topic, m.payload]), [[`${prefix}/ret/marker`, 'marker']]);
      });

      it(`persistent session: queued QoS 1 messages are delivered on reconnect${level === 3 ? '' : ' with Session Present 1'} [MQTT-3.1.2-5] [MQTT-3.2.2-3]`, T, async () => {
        const r = await scenario<{ first: number; second: number; messages: PyMessage[] }>(SCENARIOS.persistent, name, prefix);
        assert.equal(r.first, 0);
        // MQTT 3.1 has no Session Present flag (reserved 0).
        assert.equal(r.second, level === 3 ? 0 : 1);
        assert.deepEqual(r.messages.map((m) => [m.payload, m.qos]), [['one', 1], ['two', 1]]);
      });

      it('both directions with MQTT.js: MQTT.js → paho and paho → MQTT.js, QoS 0/1/2', T, async () => {
        const js = await connectMqtt(tb.url, versionOptions(level === 5 ? 5 : 4));
        clients.push(js);
        await js.client.subscribeAsync(`${prefix}/to-js/#`, { qos: 2 });
        const py = procs.track(new LineProcess(PYTHON, ['-u', '-', String(tb.port), name, prefix, ...transportArgs()], { stdin: PRELUDE + SCENARIOS.withMqttjs }));
        await py.waitForLine((l) => l === 'READY', 10_000, 'the paho subscriber');
        for (const q of [0, 1, 2] as const) await js.client.publishAsync(`${prefix}/to-py/q${q}`, `from mqtt.js q${q}`, { qos: q });
        assert.equal(await py.exit(15_000), 0, py.describe());
        const r = resultOf<{ messages: PyMessage[] }>(py.stdout, py.describe());
        assert.deepEqual(r.messages.map((m) => [m.payload, m.qos]), [['from mqtt.js q0', 0], ['from mqtt.js q1', 1], ['from mqtt.js q2', 2]]);
        await js.messages.until((ms) => ms.length >= 3, 5000, 'three messages from paho');
        assert.deepEqual(js.messages.messages.map((m) => [m.payload.toString(), m.packet.qos]), [['from paho q0', 0], ['from paho q1', 1], ['from paho q2', 2]]);
      });
    });
  }

  it('MQTT 5.0: user properties keep their order, content type / response topic / correlation data are forwarded, overlapping subscriptions give one message with both identifiers [MQTT-3.3.2-15..18] [MQTT-3.3.2-20] [MQTT-3.3.4-3] [MQTT-3.3.4-4]', T, async () => {
    const prefix = 'paho/5props';
    const r = await scenario<{ messages: PyMessage[] }>(SCENARIOS.v5props, '5', prefix);
    const byTopic = new Map(r.messages.map((m) => [m.topic, m]));
    assert.equal(r.messages.length, 2, 'one delivery per message despite overlapping subscriptions');
    const x = byTopic.get(`${prefix}/v5/x`)!;
    assert.deepEqual(x.user, [['z', '1'], ['a', '2'], ['z', '3']]);
    assert.equal(x.contentType, 'text/plain');
    assert.equal(x.responseTopic, `${prefix}/v5reply`);
    assert.equal(x.correlation, '0001ff');
    assert.deepEqual(x.subids, [5, 7]);
    const deep = byTopic.get(`${prefix}/v5/deep/x`)!;
    assert.deepEqual(deep.subids, [5], 'only the matching subscription identifier');
  });
});
