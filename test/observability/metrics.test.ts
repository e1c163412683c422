// /metrics scraped from a broker driven by real clients (MQTT.js, raw sockets), checked against what the
// clients did; the HTTP listener's options, auth, formats and health probes.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createBroker, type BrokerOptions, type PetrelBroker } from '../../src/index.js';
import { connectMqtt, endAll } from '../helpers/mqttjs.js';
import { RawClient } from '../helpers/raw-client.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { parseMetrics, scrape } from './scrape.js';
import net from 'node:net';
import { encodePacket } from '../../src/protocol/encoder.js';
import type { ConnectPacket } from '../../src/protocol/packets.js';

async function start(options: BrokerOptions = {}): Promise<{ broker: PetrelBroker; url: string; port: number; http: number }> {
  const broker = await createBroker({
    store: { type: 'memory' },
    listeners: [{ port: 0, host: '127.0.0.1', name: 'tcp' }],
    logLevel: 'silent',
    closeTimeout: 1,
    sysInterval: 0,
    http: { port: 0 },
    ...options,
  });
  const [a] = await broker.listen();
  return { broker, url: `mqtt://127.0.0.1:${a!.port}`, port: a!.port, http: broker.httpAddress?.port ?? 0 };
}

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`http://127.0.0.1:${port}${path}`, { headers, signal: AbortSignal.timeout(5000) });
}

describe('observability options', () => {
  for (const [options, key] of [
    [{ http: { port: -1 } }, 'http.port'],
    [{ http: { port: 0, host: '' } }, 'http.host'],
    [{ http: { port: 0, token: '' } }, 'http.token'],
    [{ http: { port: 0, basicAuth: { username: 'a:b', password: 'x' } } }, 'http.basicAuth.username'],
    [{ http: { port: 0, basicAuth: { username: 'a', password: '' } } }, 'http.basicAuth.password'],
    [{ http: { port: 0, tls: true } }, 'http.tls'],
    [{ metrics: 'yes' }, 'metrics'],
    [{ sysInterval: -1 }, 'sysInterval'],
    [{ sysInterval: 1.5 }, 'sysInterval'],
  ] as [Record<string, unknown>, string][]) {
    it(`refuses ${JSON.stringify(options)} naming ${key}`, async () => {
      await assert.rejects(createBroker({ store: { type: 'memory' }, logLevel: 'silent', ...options } as BrokerOptions), (err: Error & { code?: string; key?: string }) => {
        assert.equal(err.code, 'PETREL_ERR_OPTION');
        assert.equal(err.key, key);
        return true;
      });
    });
  }

  it('binds the HTTP listener to loopback by default', async () => {
    const b = await start();
    try {
      assert.equal(b.broker.httpAddress?.host, '127.0.0.1');
    } finally {
      await b.broker.close();
    }
  });
});

describe('/metrics against what clients did', () => {
  it('counts connections, messages per QoS, drops without subscribers, acks and histogram observations', async () => {
    const b = await start();
    const sub = await connectMqtt(b.url, { protocolVersion: 5 });
    const pub = await connectMqtt(b.url, { protocolVersion: 4 });
    try {
      await sub.client.subscribeAsync('m/#', { qos: 2 });
      for (let i = 0; i < 3; i++) await pub.client.publishAsync('m/x', `zero ${i}`, { qos: 0 });
      for (let i = 0; i < 4; i++) await pub.client.publishAsync('m/x', `one ${i}`, { qos: 1 });
      for (let i = 0; i < 2; i++) await pub.client.publishAsync('m/x', `two ${i}`, { qos: 2 });
      for (let i = 0; i < 2; i++) await pub.client.publishAsync('nobody/x', 'lost', { qos: 1 });
      await sub.messages.count('m/x', 9);
      // MQTT.js acknowledges a QoS 2 message with PUBCOMP after PUBREL: wait until the broker saw every ack.
      let m = await scrape(b.http);
      for (let i = 0; i < 100 && m.value('petrel_messages_acked_total') < 6; i++) {
        await sleep(20);
        m = await scrape(b.http);
      }

      assert.equal(m.value('petrel_connections', { proto: '5' }), 1);
      assert.equal(m.value('petrel_connections', { proto: '4' }), 1);
      assert.equal(m.value('petrel_connections', { listener: 'tcp', transport: 'tcp' }), 2);
      assert.equal(m.value('petrel_connack_sent_total', { reason_code: '0x00' }), 2);
      assert.equal(m.value('petrel_session_events_total', { event: 'created' }), 2);
      assert.equal(m.value('petrel_sessions', { state: 'online' }), 2);
      assert.equal(m.value('petrel_subscriptions', { kind: 'normal' }), 1);

      assert.equal(m.value('petrel_messages_received_total', { qos: '0' }), 3);
      assert.equal(m.value('petrel_messages_received_total', { qos: '1' }), 6);
      assert.equal(m.value('petrel_messages_received_total', { qos: '2' }), 2);
      assert.equal(m.value('petrel_packets_received_total', { type: 'publish' }), 11);
      assert.equal(m.value('petrel_messages_sent_total', { qos: '0' }), 3);
      assert.equal(m.value('petrel_messages_sent_total', { qos: '1' }), 4);
      assert.equal(m.value('petrel_messages_sent_total', { qos: '2' }), 2);
      assert.equal(m.value('petrel_packets_sent_total', { type: 'publish' }), 9);
      assert.equal(m.value('petrel_messages_delivered_total'), 9);
      assert.equal(m.value('petrel_messages_acked_total', { qos: '1' }), 4);
      assert.equal(m.value('petrel_messages_acked_total', { qos: '2' }), 2);
      assert.equal(m.value('petrel_messages_dropped_total', { reason: 'no_subscribers' }), 2);
      assert.equal(m.value('petrel_publish_payload_bytes_received_total'), 3 * 6 + 4 * 5 + 2 * 5 + 2 * 4);

      // Histograms: one observation per event.
      assert.equal(m.value('petrel_delivery_ack_seconds_count', { qos: '1' }), 4);
      assert.equal(m.value('petrel_delivery_ack_seconds_count', { qos: '2' }), 2);
      assert.equal(m.value('petrel_delivery_ack_seconds_bucket', { qos: '1', le: '+Inf' }), 4);
      assert.equal(m.value('petrel_publish_dispatch_seconds_count', { qos: '0' }), 3);
      assert.equal(m.value('petrel_publish_dispatch_seconds_count', { qos: '1' }), 6);
      assert.equal(m.value('petrel_publish_dispatch_seconds_count', { qos: '2' }), 2);
      assert.equal(m.value('petrel_publish_fanout_count'), 11);
      assert.equal(m.value('petrel_publish_fanout_bucket', { le: '0' }), 2, 'the two PUBLISHes without subscribers');
      assert.equal(m.value('petrel_publish_fanout_bucket', { le: '1' }), 11);
      assert.equal(m.value('petrel_publish_payload_size_bytes_count'), 11);
      assert.equal(m.value('petrel_connect_duration_seconds_count'), 2);
      assert.equal(m.value('petrel_auth_duration_seconds_count', { result: 'success' }), 2);
      assert.ok(m.value('petrel_delivery_ack_seconds_sum', { qos: '1' }) > 0);
      // Buckets are cumulative.
      const buckets = m.samples.filter((s) => s.name === 'petrel_delivery_ack_seconds_bucket' && s.labels.qos === '1').map((s) => s.value);
      assert.deepEqual([...buckets].sort((x, y) => x - y), buckets);
      // Node's default metrics, unprefixed.
      assert.ok(m.has('process_resident_memory_bytes'));
      assert.ok(m.has('nodejs_heap_size_used_bytes'));
      assert.equal(m.types.get('petrel_messages_received_total'), 'counter');
      assert.equal(m.types.get('petrel_delivery_ack_seconds'), 'histogram');
    } finally {
      await endAll(sub.client, pub.client);
      await b.broker.close();
    }
  });

  it('counts QoS 0 drops for a subscriber that does not read, and its backpressure', async () => {
    const b = await start({ limits: { maxWriteBuffer: 1024, maxSessionHeapBytes: 64 * 1024 } });
    const slow = (await RawClient.connect(b.port, 4, { clientId: 'slow', clean: true })).client;
    const pub = await connectMqtt(b.url);
    try {
      await slow.subscribe([{ filter: 'flood', qos: 0 }]);
      slow.socket.pause();
      const payload = Buffer.alloc(16 * 1024, 1);
      const n = 2000;
      for (let i = 0; i < n; i++) pub.client.publish('flood', payload, { qos: 0 });
      await pub.client.publishAsync('flood/end', 'x', { qos: 1 });
      await waitFor(() => b.broker.stats.messagesIn >= n + 1, 10000, 'the publisher\'s messages to arrive');
      const m = await scrape(b.http);
      const dropped = m.value('petrel_messages_dropped_total', { reason: 'qos0_slow_client' });
      assert.ok(dropped > 0, 'some QoS 0 messages were dropped');
      assert.equal(dropped, b.broker.stats.droppedQos0);
      assert.equal(m.value('petrel_messages_delivered_total', { qos: '0' }), n);
      assert.ok(m.value('petrel_messages_sent_total', { qos: '0' }) + dropped <= n);
      assert.equal(m.value('petrel_connections_backpressured', { listener: 'tcp' }), 1);
      assert.ok(m.value('petrel_outgoing_buffered_bytes') >= 1024);
    } finally {
      slow.destroy();
      await endAll(pub.client);
      await b.broker.close();
    }
  });

  it('counts disconnects by initiator and reason: keep-alive timeout, takeover, client DISCONNECT, lost connection', async () => {
    const b = await start();
    try {
      // Keep alive 1 s and silence: closed after 1.5 s.
      const silent = (await RawClient.connect(b.port, 4, { clientId: 'silent', keepAlive: 1 })).client;
      const first = await connectMqtt(b.url, { clientId: 'twin', protocolVersion: 5 });
      const second = await connectMqtt(b.url, { clientId: 'twin', protocolVersion: 5 });
      const lost = (await RawClient.connect(b.port, 4, { clientId: 'lost' })).client;
      lost.destroy();
      await silent.closed(4000);
      await second.client.endAsync(); // a DISCONNECT
      await endAll(first.client);
      await waitFor(() => b.broker.connectedClients === 0, 3000, 'every client gone');
      const m = await scrape(b.http);
      assert.equal(m.value('petrel_disconnects_total', { initiator: 'server', reason: 'keepalive_timeout' }), 1);
      assert.equal(m.value('petrel_disconnects_total', { initiator: 'server', reason: 'taken_over' }), 1);
      assert.equal(m.value('petrel_session_events_total', { event: 'taken_over' }), 1);
      assert.equal(m.value('petrel_disconnects_total', { initiator: 'client', reason: 'client_disconnect' }), 1);
      assert.equal(m.value('petrel_disconnects_total', { initiator: 'server', reason: 'connection_lost' }), 1);
      assert.equal(m.value('petrel_sockets_closed_total', { reason: 'keepalive_timeout' }), 1);
      assert.equal(m.value('petrel_sockets_opened_total'), 4);
      assert.equal(m.value('petrel_sockets_closed_total'), 4);
      assert.equal(m.value('petrel_connections_max'), 3);
    } finally {
      await b.broker.close();
    }
  });

  it('counts refused CONNECTs by reason code', async () => {
    const b = await start({ hooks: { authenticate: (req) => req.username === 'good' } });
    try {
      const bad = await RawClient.connect(b.port, 5, { clientId: 'bad', username: 'bad', password: Buffer.from('x') }, true);
      assert.equal(bad.connack.reasonCode, 0x86);
      bad.client.destroy();
      const good = await RawClient.connect(b.port, 5, { clientId: 'good', username: 'good', password: Buffer.from('x') });
      good.client.destroy();
      const m = await scrape(b.http);
      assert.equal(m.value('petrel_connack_sent_total', { reason_code: '0x86' }), 1);
      assert.equal(m.value('petrel_connack_sent_total', { reason_code: '0x00' }), 1);
      assert.equal(m.value('petrel_authentication_total', { result: 'failure' }), 1);
      assert.equal(m.value('petrel_authentication_total', { result: 'success' }), 1);
      assert.equal(m.value('petrel_auth_duration_seconds_count', { result: 'failure' }), 1);
    } finally {
      await b.broker.close();
    }
  });
});

describe('the HTTP listener', () => {
  it('protects /metrics with a bearer token; the probes stay open', async () => {
    const b = await start({ http: { port: 0, token: 's3cret' } });
    try {
      const no = await get(b.http, '/metrics');
      assert.equal(no.status, 401);
      assert.match(no.headers.get('www-authenticate') ?? '', /^Bearer/);
      assert.equal((await get(b.http, '/metrics', { authorization: 'Bearer wrong' })).status, 401);
      const yes = await get(b.http, '/metrics', { authorization: 'Bearer s3cret' });
      assert.equal(yes.status, 200);
      assert.ok(parseMetrics(await yes.text()).has('petrel_build_info'));
      for (const p of ['/livez', '/readyz', '/healthz']) assert.equal((await get(b.http, p)).status, 200, p);
      assert.equal((await get(b.http, '/nothing')).status, 404);
      assert.equal((await fetch(`http://127.0.0.1:${b.http}/metrics`, { method: 'POST' })).status, 405);
    } finally {
      await b.broker.close();
    }
  });

  it('protects /metrics with basic auth', async () => {
    const b = await start({ http: { port: 0, basicAuth: { username: 'prom', password: 'pw' } } });
    const basic = (u: string, p: string): Record<string, string> => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });
    try {
      assert.equal((await get(b.http, '/metrics')).status, 401);
      assert.equal((await get(b.http, '/metrics', basic('prom', 'nope'))).status, 401);
      assert.equal((await get(b.http, '/metrics', basic('prom', 'pw'))).status, 200);
    } finally {
      await b.broker.close();
    }
  });

  it('serves OpenMetrics when Accept asks for it, and Prometheus text otherwise (both more than once)', async () => {
    const b = await start();
    try {
      for (let i = 0; i < 2; i++) {
        const om = await get(b.http, '/metrics', { accept: 'application/openmetrics-text; version=1.0.0' });
        assert.match(om.headers.get('content-type') ?? '', /^application\/openmetrics-text/);
        const omText = await om.text();
        assert.match(omText, /# EOF\n$/);
        assert.match(omText, /^# TYPE petrel_messages_received counter$/m);
        assert.match(omText, /^petrel_messages_received_total\{qos="0"\} 0$/m);
        const prom = await get(b.http, '/metrics');
        assert.match(prom.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
        const promText = await prom.text();
        assert.match(promText, /^# TYPE petrel_messages_received_total counter$/m);
        assert.match(promText, /^process_cpu_seconds_total /m);
      }
    } finally {
      await b.broker.close();
    }
  });

  it('/readyz answers 503 with Retry-After while the broker drains; /livez stays 200', async () => {
    const b = await start({ closeTimeout: 2 });
    // A client that does not close its side when the broker ends its own: close() waits for it (up to closeTimeout).
    const raw = net.connect({ port: b.port, host: '127.0.0.1', allowHalfOpen: true });
    raw.on('error', () => {});
    await new Promise((resolve) => raw.once('connect', resolve));
    raw.write(encodePacket({ type: 1, protocolName: 'MQTT', protocolVersion: 4, clientId: 'stays', clean: true, keepAlive: 0 } as ConnectPacket, 4));
    await waitFor(() => b.broker.connectedClients === 1, 3000, 'the client connected');
    try {
      const ready = await get(b.http, '/readyz?verbose');
      assert.equal(ready.status, 200);
      assert.match(await ready.text(), /\[\+\]listeners ok/);
      const closing = b.broker.close();
      await sleep(50);
      const draining = await get(b.http, '/readyz');
      assert.equal(draining.status, 503);
      assert.equal(draining.headers.get('retry-after'), '5');
      assert.equal((await get(b.http, '/healthz')).status, 503);
      assert.equal((await get(b.http, '/livez')).status, 200);
      await closing;
      await assert.rejects(get(b.http, '/livez'), 'the HTTP listener is closed by close()');
    } finally {
      raw.destroy();
      await b.broker.close();
    }
  });

  it('with metrics: false serves the probes but no /metrics', async () => {
    const b = await start({ metrics: false });
    try {
      assert.equal((await get(b.http, '/metrics')).status, 404);
      assert.equal((await get(b.http, '/readyz')).status, 200);
    } finally {
      await b.broker.close();
    }
  });
});
