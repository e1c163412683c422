// The admin API (/api/v1, src/observability/admin/) against a live broker driven by real MQTT.js clients: auth,
// lists with filters and paging, kick, sessions, subscriptions, retained messages, publish, status mapping, bans,
// listeners, the topic tree, history, the OpenAPI document and the audit log.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IClientOptions, IConnackPacket, IDisconnectPacket } from 'mqtt';
import { connect } from 'mqtt';
import { createBroker, type BrokerOptions, type Logger, type PetrelBroker } from '../../src/index.js';
import { connectMqtt, endAll, uniqueId, type MqttClient } from '../helpers/mqttjs.js';
import { sleep, waitFor, withTimeout } from '../helpers/wait.js';
import { scrape } from './scrape.js';

const TOKEN = 'test-admin-token-0123456789';
const T = { timeout: 20_000 };

interface LogLine {
  level: string;
  msg: string;
  fields: Record<string, unknown>;
}

function captureLogger(lines: LogLine[]): Logger {
  const at = (level: string) => (msg: string, fields: Record<string, unknown> = {}) => {
    lines.push({ level, msg, fields });
  };
  return { error: at('error'), warn: at('warn'), info: at('info'), debug: () => {}, debugEnabled: false };
}

interface Running {
  broker: PetrelBroker;
  url: string;
  http: number;
  logs: LogLine[];
}

async function start(options: BrokerOptions = {}, adminToken: string | null = TOKEN): Promise<Running> {
  const logs: LogLine[] = [];
  const broker = await createBroker({
    store: { type: 'memory' },
    listeners: [{ port: 0, host: '127.0.0.1', name: 'main' }],
    logger: captureLogger(logs),
    closeTimeout: 1,
    sysInterval: 0,
    http: adminToken === null ? { port: 0 } : { port: 0, adminToken },
    ...options,
  });
  const [a] = await broker.listen();
  return { broker, url: `mqtt://127.0.0.1:${a!.port}`, http: broker.httpAddress!.port, logs };
}

interface Reply {
  status: number;
  headers: Headers;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

async function api(b: Running, method: string, path: string, body?: unknown, token: string | null = TOKEN): Promise<Reply> {
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`http://127.0.0.1:${b.http}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

const enc = encodeURIComponent;

/** The CONNACK code a CONNECT gets (v5 reason code, 3.1.1 return code), bounded. */
function connackCode(url: string, options: IClientOptions): Promise<number> {
  return withTimeout(
    new Promise<number>((resolve) => {
      const c = connect(url, { reconnectPeriod: 0, connectTimeout: 4000, ...options });
      c.on('packetreceive', (p) => {
        if (p.cmd === 'connack') {
          const ack = p as IConnackPacket;
          resolve(ack.reasonCode ?? ack.returnCode ?? -1);
          c.end(true);
        }
      });
      c.on('error', () => {});
    }),
    5000,
    'CONNACK',
  );
}

/** The DISCONNECT a v5 client receives, and its close, bounded. */
function disconnectOf(client: MqttClient): Promise<{ reasonCode: number | undefined; closed: Promise<void> }> {
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
  return withTimeout(
    new Promise((resolve) => {
      client.once('disconnect', (p: IDisconnectPacket) => resolve({ reasonCode: p.reasonCode, closed: withTimeout(closed, 5000, 'close after DISCONNECT') }));
    }),
    5000,
    'DISCONNECT',
  );
}

function audits(b: Running, event: string): LogLine[] {
  return b.logs.filter((l) => l.fields.event === event);
}

describe('admin API: off without a token, auth', () => {
  it('answers 404 on every /api/v1 path when no admin token is configured', T, async () => {
    const b = await start({}, null);
    try {
      for (const p of ['/api/v1/stats', '/api/v1/openapi.json', '/api/v1/clients', '/api/v1/nothing']) {
        const r = await api(b, 'GET', p);
        assert.equal(r.status, 404, p);
      }
      assert.equal((await api(b, 'POST', '/api/v1/publish', { topic: 'a' })).status, 404);
    } finally {
      await b.broker.close();
    }
  });

  it('refuses http.adminToken that is empty or has white space, naming the key', T, async () => {
    for (const adminToken of ['', 'a b', 42]) {
      await assert.rejects(
        createBroker({ store: { type: 'memory' }, logLevel: 'silent', http: { port: 0, adminToken } } as unknown as BrokerOptions),
        (err: Error & { code?: string; key?: string }) => {
          assert.equal(err.code, 'PETREL_ERR_OPTION');
          assert.equal(err.key, 'http.adminToken');
          assert.match(err.message, /http\.adminToken/);
          return true;
        },
      );
    }
  });

  it('401 with WWW-Authenticate: Bearer without the token or with a wrong one; openapi.json is public', T, async () => {
    const b = await start();
    try {
      const none = await api(b, 'GET', '/api/v1/stats', undefined, null);
      assert.equal(none.status, 401);
      assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer/);
      assert.equal(none.body.error.status, 401);
      assert.equal(none.body.error.code, 'unauthorized');
      const wrong = await api(b, 'GET', '/api/v1/stats', undefined, TOKEN + 'x');
      assert.equal(wrong.status, 401);
      const short = await api(b, 'GET', '/api/v1/clients', undefined, 'x');
      assert.equal(short.status, 401);
      // Unknown routes do not tell an unauthenticated caller they do not exist.
      assert.equal((await api(b, 'GET', '/api/v1/nothing', undefined, null)).status, 401);
      assert.equal((await api(b, 'GET', '/api/v1/nothing')).status, 404);
      assert.equal((await api(b, 'GET', '/api/v1/stats')).status, 200);
      assert.equal((await api(b, 'GET', '/api/v1/openapi.json', undefined, null)).status, 200);
      // The token never reaches the log.
      assert.ok(!b.logs.some((l) => JSON.stringify(l).includes(TOKEN)));
    } finally {
      await b.broker.close();
    }
  });
});

describe('admin API on a live broker', () => {
  let b: Running;
  const clients: MqttClient[] = [];
  before(async () => {
    b = await start({
      limits: { maxPacketSize: 4096 },
      hooks: { authorizePublish: (_info, msg) => (msg.topic.startsWith('forbidden/') ? false : undefined) },
    });
  });
  after(async () => {
    await endAll(...clients);
    await b.broker.close();
  });
  const mqtt = async (options: IClientOptions) => {
    const c = await connectMqtt(b.url, options);
    clients.push(c.client);
    return c;
  };

  it('GET /stats counts what clients did', T, async () => {
    const sub = await mqtt({ protocolVersion: 5, clientId: uniqueId('stats') });
    await sub.client.subscribeAsync('stats/#', { qos: 1 });
    await sub.client.publishAsync('stats/r', 'kept', { qos: 1, retain: true });
    await sub.messages.count('stats/r', 1);
    const r = await api(b, 'GET', '/api/v1/stats');
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(typeof r.body.version, 'string');
    assert.ok(r.body.connections >= 1);
    assert.ok(r.body.sessions.online >= 1);
    assert.ok(r.body.subscriptions.normal >= 1);
    assert.ok(r.body.retained.count >= 1);
    assert.ok(r.body.retained.bytes >= 4);
    assert.ok(r.body.messages.received >= 1);
    assert.ok(r.body.messages.sent >= 1);
    assert.ok(r.body.memory.rss > 0 && r.body.memory.heapUsed > 0);
    assert.ok(r.body.uptimeSeconds >= 0);
  });

  it('GET /clients filters by client id, user name, listener and connected, and pages with a cursor', T, async () => {
    const tag = uniqueId('list');
    for (let i = 0; i < 5; i++) await mqtt({ protocolVersion: i % 2 === 0 ? 5 : 4, clientId: `${tag}-${i}`, username: i < 2 ? `${tag}-user` : undefined, clean: false, ...(i % 2 === 0 ? { properties: { sessionExpiryInterval: 300 } } : {}) });
    const all = await api(b, 'GET', `/api/v1/clients?clientId=${enc(tag)}`);
    assert.equal(all.status, 200);
    assert.equal(all.body.total, 5);
    assert.equal(all.body.next, null);
    const item = all.body.items.find((x: { clientId: string }) => x.clientId === `${tag}-0`);
    assert.equal(item.connected, true);
    assert.equal(item.listener, 'main');
    assert.equal(item.transport, 'tcp');
    assert.equal(item.protocolVersion, 5);
    assert.match(item.remoteAddress, /^127\.0\.0\.1:\d+$/);
    assert.ok(!Number.isNaN(Date.parse(item.connectedAt)));
    assert.equal(item.cleanStart, false);
    assert.equal(item.sessionExpiryInterval, 300);
    assert.equal(item.username, `${tag}-user`);
    for (const k of ['keepAlive', 'subscriptions', 'queued', 'inflightOut', 'inflightIn']) assert.equal(typeof item[k], 'number', k);
    const users = await api(b, 'GET', `/api/v1/clients?username=${enc(`${tag}-user`)}`);
    assert.deepEqual(users.body.items.map((x: { clientId: string }) => x.clientId).sort(), [`${tag}-0`, `${tag}-1`]);
    assert.equal((await api(b, 'GET', `/api/v1/clients?clientId=${enc(tag)}&listener=nope`)).body.total, 0);
    assert.equal((await api(b, 'GET', `/api/v1/clients?clientId=${enc(tag)}&listener=main`)).body.total, 5);
    // Pages of 2: every client once, in order, then next null.
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let i = 0; i < 5; i++) {
      const r: Reply = await api(b, 'GET', `/api/v1/clients?clientId=${enc(tag)}&limit=2${cursor !== null ? `&cursor=${enc(cursor)}` : ''}`);
      assert.equal(r.status, 200);
      assert.ok(r.body.items.length <= 2);
      seen.push(...r.body.items.map((x: { clientId: string }) => x.clientId));
      cursor = r.body.next;
      if (cursor === null) break;
    }
    assert.deepEqual(seen, [0, 1, 2, 3, 4].map((i) => `${tag}-${i}`));
    // A client that goes away with a session is listed as not connected.
    const gone = clients.find((c) => c.options.clientId === `${tag}-2`)!;
    await gone.endAsync();
    await waitFor(() => b.broker.session(`${tag}-2`)?.online === false, 3000, 'offline session');
    const off = await api(b, 'GET', `/api/v1/clients?clientId=${enc(tag)}&connected=false`);
    assert.deepEqual(off.body.items.map((x: { clientId: string; connected: boolean }) => [x.clientId, x.connected]), [[`${tag}-2`, false]]);
    assert.equal((await api(b, 'GET', `/api/v1/clients?clientId=${enc(tag)}&connected=true`)).body.total, 4);
    assert.equal((await api(b, 'GET', '/api/v1/clients?limit=0')).status, 400);
    assert.equal((await api(b, 'GET', '/api/v1/clients?limit=1001')).status, 400);
    assert.equal((await api(b, 'GET', '/api/v1/clients?connected=maybe')).status, 400);
  });

  it('GET /clients/{clientId} has the subscription list and queued bytes; 404 for an unknown one', T, async () => {
    const id = `${uniqueId('one')}/with slash`;
    const c = await mqtt({ protocolVersion: 5, clientId: id });
    await c.client.subscribeAsync({ 'one/a': { qos: 1, nl: true, rap: true, rh: 1 }, '$share/g/one/b': { qos: 0 } });
    const r = await api(b, 'GET', `/api/v1/clients/${enc(id)}`);
    assert.equal(r.status, 200);
    assert.equal(r.body.clientId, id);
    assert.equal(r.body.subscriptions, 2);
    assert.equal(r.body.queuedBytes, 0);
    const list = [...r.body.subscriptionList].sort((x: { filter: string }, y: { filter: string }) => (x.filter < y.filter ? -1 : 1));
    assert.deepEqual(list, [
      { filter: '$share/g/one/b', qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0, shareName: 'g' },
      { filter: 'one/a', qos: 1, noLocal: true, retainAsPublished: true, retainHandling: 1 },
    ]);
    const missing = await api(b, 'GET', '/api/v1/clients/no-such-client');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'not_found');
  });

  it('kick: the v5 client gets DISCONNECT 0x98 then the close; disconnect reason kicked in /metrics; audit logged', T, async () => {
    const id = uniqueId('kick');
    const c = await mqtt({ protocolVersion: 5, clientId: id });
    const before = (await scrape(b.http)).value('petrel_disconnects_total', { initiator: 'server', reason: 'kicked' });
    const seen = disconnectOf(c.client);
    const r = await api(b, 'POST', `/api/v1/clients/${enc(id)}/kick`, { reason: 'maintenance' });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { kicked: 1 });
    const d = await seen;
    assert.equal(d.reasonCode, 0x98);
    await d.closed;
    await waitFor(() => b.broker.session(id) === undefined, 3000, 'session gone');
    const m = await scrape(b.http);
    assert.equal(m.value('petrel_disconnects_total', { initiator: 'server', reason: 'kicked' }), before + 1);
    const a = audits(b, 'admin.kick').find((l) => l.fields.clientId === id);
    assert.ok(a, 'audit line');
    assert.equal(a!.level, 'info');
    assert.match(String(a!.fields.remote), /^127\.0\.0\.1:\d+$/);
    // Not connected now: 404.
    assert.equal((await api(b, 'POST', `/api/v1/clients/${enc(id)}/kick`)).status, 404);
  });

  it('kick by user name disconnects every client of that user (3.1.1 and v5)', T, async () => {
    const user = uniqueId('kuser');
    const c1 = await mqtt({ protocolVersion: 4, clientId: uniqueId('ku'), username: user });
    const c2 = await mqtt({ protocolVersion: 5, clientId: uniqueId('ku'), username: user });
    const other = await mqtt({ protocolVersion: 5, clientId: uniqueId('ku'), username: 'someone-else' });
    const closed = Promise.all([c1, c2].map((c) => new Promise<void>((resolve) => c.client.once('close', () => resolve()))));
    const r = await api(b, 'POST', '/api/v1/clients/kick', { username: user });
    assert.deepEqual(r.body, { kicked: 2 });
    await withTimeout(closed, 5000, 'both closed');
    assert.equal(other.client.connected, true);
    assert.equal((await api(b, 'POST', '/api/v1/clients/kick', {})).status, 400);
    assert.equal((await api(b, 'POST', '/api/v1/clients/kick', { username: 'a', clientId: 'b' })).status, 400);
  });

  it('sessions: list, get, discard; the reconnecting client gets sessionPresent false', T, async () => {
    const id = uniqueId('sess');
    const opts = { protocolVersion: 5 as const, clientId: id, clean: false, properties: { sessionExpiryInterval: 600 } };
    const c = await mqtt(opts);
    await c.client.subscribeAsync('sess/x', { qos: 1 });
    await c.client.endAsync();
    await waitFor(() => b.broker.session(id)?.online === false, 3000, 'offline');
    // Something queued for the offline session.
    await b.broker.publish('sess/x', 'queued', { qos: 1 });
    const list = await api(b, 'GET', `/api/v1/sessions?clientId=${enc(id)}`);
    assert.deepEqual(list.body.items, [{ clientId: id, connected: false, expiryInterval: 600, subscriptions: 1, queued: 1, inflightOut: 0 }]);
    const one = await api(b, 'GET', `/api/v1/sessions/${enc(id)}`);
    assert.equal(one.status, 200);
    assert.equal(one.body.subscriptionList[0].filter, 'sess/x');
    // Resumable now (sessionPresent true), then connected while it is discarded.
    const again = await mqtt(opts);
    assert.equal(again.connack.sessionPresent, true);
    const seen = disconnectOf(again.client);
    const d = await api(b, 'DELETE', `/api/v1/sessions/${enc(id)}`);
    assert.equal(d.status, 200);
    assert.deepEqual(d.body, { discarded: true });
    assert.equal((await seen).reasonCode, 0x98);
    assert.equal(b.broker.session(id), undefined);
    const fresh = await mqtt(opts);
    assert.equal(fresh.connack.sessionPresent, false);
    assert.equal(b.broker.session(id)?.subscriptions, 0);
    assert.equal(audits(b, 'admin.session_discard').filter((l) => l.fields.clientId === id).length, 1);
    assert.equal((await api(b, 'DELETE', '/api/v1/sessions/no-such-session')).status, 404);
    assert.equal((await api(b, 'GET', '/api/v1/sessions/no-such-session')).status, 404);
  });

  it('subscriptions: added to a client (messages and the retained one arrive), listed, removed', T, async () => {
    const id = uniqueId('subs');
    await b.broker.publish('added/kept', 'retained-one', { qos: 1, retain: true });
    const c = await mqtt({ protocolVersion: 5, clientId: id });
    const r = await api(b, 'POST', `/api/v1/clients/${enc(id)}/subscriptions`, { filter: 'added/#', qos: 1 });
    assert.equal(r.status, 201);
    assert.deepEqual(r.body, { filter: 'added/#', qos: 1 });
    const [kept] = await c.messages.count('added/kept', 1);
    assert.equal(kept!.payload.toString(), 'retained-one');
    assert.equal(kept!.packet.retain, true);
    await b.broker.publish('added/live', 'now', { qos: 1 });
    const [live] = await c.messages.count('added/live', 1);
    assert.equal(live!.packet.qos, 1);
    const list = await api(b, 'GET', `/api/v1/subscriptions?clientId=${enc(id)}`);
    assert.deepEqual(list.body.items, [{ clientId: id, filter: 'added/#', qos: 1 }]);
    assert.equal((await api(b, 'GET', `/api/v1/subscriptions?filter=${enc('added/#')}`)).body.total, 1);
    const rm = await api(b, 'DELETE', `/api/v1/clients/${enc(id)}/subscriptions?filter=${enc('added/#')}`);
    assert.equal(rm.status, 200);
    assert.deepEqual(rm.body, { removed: true });
    await b.broker.publish('added/after', 'not for it', { qos: 1 });
    await sleep(200);
    assert.equal(c.messages.on('added/after').length, 0);
    assert.equal((await api(b, 'DELETE', `/api/v1/clients/${enc(id)}/subscriptions?filter=${enc('added/#')}`)).status, 404);
    const bad = await api(b, 'POST', `/api/v1/clients/${enc(id)}/subscriptions`, { filter: 'a/#/b' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.details[0].path, '/filter');
    assert.equal((await api(b, 'POST', '/api/v1/clients/nobody-here/subscriptions', { filter: 'a' })).status, 404);
    assert.equal(audits(b, 'admin.subscription_add').filter((l) => l.fields.clientId === id).length, 1);
    assert.equal(audits(b, 'admin.subscription_remove').filter((l) => l.fields.clientId === id).length, 1);
  });

  it('retained: list, get with payload and properties, delete one, delete by filter with a dry run first', T, async () => {
    const pub = await mqtt({ protocolVersion: 5, clientId: uniqueId('ret') });
    await pub.client.publishAsync('ret/a', 'alpha', { qos: 1, retain: true, properties: { contentType: 'text/plain', userProperties: { k: 'v' }, correlationData: Buffer.from([1, 2, 3]) } });
    for (const t of ['ret/b', 'ret/c/d', 'ret/c/e']) await pub.client.publishAsync(t, t, { qos: 0, retain: true });
    await waitFor(() => b.broker.retainedCount >= 4, 3000, 'retained stored');
    const list = await api(b, 'GET', `/api/v1/retained?filter=${enc('ret/#')}`);
    assert.equal(list.body.total, 4);
    assert.deepEqual(list.body.items[0], { topic: 'ret/a', qos: 1, bytes: 5 });
    const one = await api(b, 'GET', `/api/v1/retained/message?topic=${enc('ret/a')}`);
    assert.equal(one.status, 200);
    assert.equal(Buffer.from(one.body.payload, 'base64').toString(), 'alpha');
    assert.equal(one.body.properties.contentType, 'text/plain');
    assert.deepEqual(one.body.properties.userProperties, [['k', 'v']]);
    assert.equal(one.body.properties.correlationData, Buffer.from([1, 2, 3]).toString('base64'));
    assert.equal((await api(b, 'GET', `/api/v1/retained/message?topic=${enc('ret/none')}`)).status, 404);
    assert.equal((await api(b, 'GET', `/api/v1/retained/message?topic=${enc('ret/+')}`)).status, 400);
    assert.deepEqual((await api(b, 'DELETE', `/api/v1/retained/message?topic=${enc('ret/b')}`)).body, { deleted: 1 });
    assert.equal((await api(b, 'DELETE', `/api/v1/retained/message?topic=${enc('ret/b')}`)).status, 404);
    const dry = await api(b, 'POST', '/api/v1/retained/delete', { filter: 'ret/c/#' });
    assert.deepEqual({ ...dry.body, topics: [...dry.body.topics].sort() }, { dryRun: true, count: 2, topics: ['ret/c/d', 'ret/c/e'] });
    assert.equal((await api(b, 'GET', `/api/v1/retained?filter=${enc('ret/c/#')}`)).body.total, 2);
    const real = await api(b, 'POST', '/api/v1/retained/delete', { filter: 'ret/c/#', dryRun: false });
    assert.equal(real.body.count, 2);
    assert.equal(real.body.dryRun, false);
    assert.equal((await api(b, 'GET', `/api/v1/retained?filter=${enc('ret/#')}`)).body.total, 1);
    // A new subscriber gets only what is left.
    const sub = await mqtt({ protocolVersion: 5, clientId: uniqueId('ret') });
    await sub.client.subscribeAsync('ret/#');
    await sub.messages.count('ret/a', 1);
    await sleep(150);
    assert.deepEqual(sub.messages.messages.map((m) => m.topic), ['ret/a']);
    assert.equal(audits(b, 'admin.retained_delete').length, 2);
  });

  it('publish one and bulk with v5 properties: the subscriber sees contentType and userProperties', T, async () => {
    const sub = await mqtt({ protocolVersion: 5, clientId: uniqueId('pub') });
    await sub.client.subscribeAsync('pub/#', { qos: 2 });
    const r = await api(b, 'POST', '/api/v1/publish', {
      topic: 'pub/one',
      payload: 'héllo',
      qos: 1,
      properties: { contentType: 'text/plain', userProperties: [['a', '1'], ['a', '2']], responseTopic: 'pub/reply', correlationData: Buffer.from('cd').toString('base64'), messageExpiryInterval: 60 },
    });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { matched: 1 });
    const [m] = await sub.messages.count('pub/one', 1);
    assert.equal(m!.payload.toString(), 'héllo');
    assert.equal(m!.packet.qos, 1);
    assert.equal(m!.packet.properties?.contentType, 'text/plain');
    assert.deepEqual({ ...m!.packet.properties?.userProperties }, { a: ['1', '2'] });
    assert.equal(m!.packet.properties?.responseTopic, 'pub/reply');
    assert.equal(m!.packet.properties?.correlationData?.toString(), 'cd');
    const bulk = await api(b, 'POST', '/api/v1/publish/bulk', {
      messages: [
        { topic: 'pub/b1', payloadBase64: Buffer.from([0, 1, 2]).toString('base64'), qos: 2, properties: { userProperties: [['x', 'y']] } },
        { topic: 'pub/+', payload: 'bad topic' },
        { topic: 'nobody/listens', payload: 'x' },
        { topic: 'pub/b2', payload: 'two', retain: true },
      ],
    });
    assert.equal(bulk.status, 200);
    assert.equal(bulk.body.results.length, 4);
    assert.deepEqual(bulk.body.results[0], { status: 200, matched: 1 });
    assert.equal(bulk.body.results[1].status, 400);
    assert.equal(bulk.body.results[1].error.details[0].path, '/messages/1/topic');
    assert.deepEqual(bulk.body.results[2], { status: 200, matched: 0 });
    assert.deepEqual(bulk.body.results[3], { status: 200, matched: 1 });
    const [b1] = await sub.messages.count('pub/b1', 1);
    assert.deepEqual([...b1!.payload], [0, 1, 2]);
    assert.deepEqual({ ...b1!.packet.properties?.userProperties }, { x: 'y' });
    await sub.messages.count('pub/b2', 1);
    assert.equal(b.broker.retainedCount > 0, true);
    assert.ok(audits(b, 'admin.publish').some((l) => l.fields.topic === 'pub/one'));
    assert.equal(audits(b, 'admin.publish_bulk').at(-1)!.fields.published, 3);
    assert.equal((await api(b, 'POST', '/api/v1/publish/bulk', { messages: [] })).status, 400);
    assert.equal((await api(b, 'POST', '/api/v1/publish/bulk', { messages: new Array(1001).fill({ topic: 'a' }) })).status, 400);
  });

  it('status mapping: 400 with details, 413 too large, 403 refused by the hook or $SYS, 405, bad JSON', T, async () => {
    const invalid = await api(b, 'POST', '/api/v1/publish', { topic: 'a/#', qos: 3, extra: true });
    assert.equal(invalid.status, 400);
    assert.equal(invalid.body.error.code, 'bad_request');
    const paths = invalid.body.error.details.map((d: { path: string }) => d.path).sort();
    assert.deepEqual(paths, ['/extra', '/qos']);
    assert.equal(invalid.body.error.details.find((d: { path: string }) => d.path === '/qos').message, 'must be 0, 1 or 2');
    const topic = await api(b, 'POST', '/api/v1/publish', { topic: 'a/#' });
    assert.equal(topic.status, 400);
    assert.deepEqual(topic.body.error.details.map((d: { path: string }) => d.path), ['/topic']);
    assert.equal((await api(b, 'POST', '/api/v1/publish', { payload: 'x' })).body.error.details[0].path, '/topic');
    assert.equal((await api(b, 'POST', '/api/v1/publish', { topic: 'a', payload: 'x', payloadBase64: 'eA==' })).status, 400);
    assert.equal((await api(b, 'POST', '/api/v1/publish', { topic: 'a', payloadBase64: 'not base64!' })).status, 400);
    assert.equal((await api(b, 'POST', '/api/v1/publish', '{"topic":')).status, 400);
    assert.equal((await api(b, 'POST', '/api/v1/publish')).status, 400);
    // limits.maxPacketSize is 4096 on this broker.
    const big = await api(b, 'POST', '/api/v1/publish', { topic: 'big', payload: 'x'.repeat(5000) });
    assert.equal(big.status, 413);
    assert.equal(big.body.error.code, 'payload_too_large');
    const body = await api(b, 'POST', '/api/v1/publish', { topic: 'big', payload: 'x'.repeat(1024 * 1024 + 10) });
    assert.equal(body.status, 413);
    const refused = await api(b, 'POST', '/api/v1/publish', { topic: 'forbidden/x', payload: 'no' });
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error.code, 'forbidden');
    assert.equal((await api(b, 'POST', '/api/v1/publish', { topic: '$SYS/broker/x', payload: 'no' })).status, 403);
    const wrong = await api(b, 'DELETE', '/api/v1/stats');
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers.get('allow'), 'GET');
  });

  it('bans: a banned client id is refused (0x8A v5, return code 5 on 3.1.1); adding a ban kicks it; deleting lets it in', T, async () => {
    const id = uniqueId('banned');
    const c = await mqtt({ protocolVersion: 5, clientId: id });
    const seen = disconnectOf(c.client);
    const add = await api(b, 'POST', '/api/v1/bans', { kind: 'clientId', value: id, reason: 'abuse' });
    assert.equal(add.status, 201);
    assert.equal(add.body.kind, 'clientId');
    assert.equal(add.body.value, id);
    assert.equal(add.body.reason, 'abuse');
    assert.ok(!Number.isNaN(Date.parse(add.body.createdAt)));
    assert.equal((await seen).reasonCode, 0x98);
    assert.equal(await connackCode(b.url, { protocolVersion: 5, clientId: id }), 0x8a);
    assert.equal(await connackCode(b.url, { protocolVersion: 4, clientId: id }), 5);
    const list = await api(b, 'GET', '/api/v1/bans');
    assert.ok(list.body.items.some((x: { id: string }) => x.id === add.body.id));
    const del = await api(b, 'DELETE', `/api/v1/bans/${enc(add.body.id)}`);
    assert.equal(del.status, 200);
    assert.equal((await api(b, 'DELETE', `/api/v1/bans/${enc(add.body.id)}`)).status, 404);
    const back = await mqtt({ protocolVersion: 5, clientId: id });
    assert.equal(back.connack.reasonCode ?? 0, 0);
    assert.equal(audits(b, 'admin.ban_add').filter((l) => l.fields.value === id).length, 1);
    assert.equal(audits(b, 'admin.ban_remove').filter((l) => l.fields.id === add.body.id).length, 1);
  });

  it('bans by user name and by address (CIDR); a bad address is 400; an expired ban lets the client in', T, async () => {
    const user = uniqueId('buser');
    const u = await api(b, 'POST', '/api/v1/bans', { kind: 'username', value: user });
    assert.equal(await connackCode(b.url, { protocolVersion: 5, clientId: uniqueId('bu'), username: user }), 0x8a);
    await api(b, 'DELETE', `/api/v1/bans/${u.body.id}`);
    const bad = await api(b, 'POST', '/api/v1/bans', { kind: 'address', value: 'not-an-ip' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.details[0].path, '/value');
    const other = await api(b, 'POST', '/api/v1/bans', { kind: 'address', value: '10.0.0.0/8' });
    assert.equal(other.status, 201);
    await mqtt({ protocolVersion: 5, clientId: uniqueId('bu') });
    await api(b, 'DELETE', `/api/v1/bans/${other.body.id}`);
    const here = await api(b, 'POST', '/api/v1/bans', { kind: 'address', value: '127.0.0.0/8', durationSeconds: 1 });
    assert.ok(here.body.expiresAt);
    assert.equal(await connackCode(b.url, { protocolVersion: 4, clientId: uniqueId('bu') }), 5);
    await sleep(1100);
    await mqtt({ protocolVersion: 4, clientId: uniqueId('bu') });
    assert.ok(!(await api(b, 'GET', '/api/v1/bans')).body.items.some((x: { id: string }) => x.id === here.body.id));
    assert.equal((await api(b, 'POST', '/api/v1/bans', { kind: 'ip', value: '1.2.3.4' })).status, 400);
  });

  it('GET /listeners lists the MQTT listener and the HTTP one with their connections', T, async () => {
    const r = await api(b, 'GET', '/api/v1/listeners');
    assert.equal(r.status, 200);
    const mqttL = r.body.items.find((x: { protocol: string }) => x.protocol === 'mqtt');
    assert.equal(mqttL.port, Number(new URL(b.url).port));
    assert.equal(mqttL.host, '127.0.0.1');
    assert.equal(mqttL.connections, b.broker.connectedClients);
    const httpL = r.body.items.find((x: { protocol: string }) => x.protocol === 'http');
    assert.equal(httpL.port, b.http);
    assert.ok(httpL.connections >= 1);
  });

  it('GET /topics builds the tree from retained topics and subscription filters', T, async () => {
    await b.broker.publish('tree/a/b', 'x', { retain: true });
    await b.broker.publish('tree/c', 'x', { retain: true });
    const c = await mqtt({ protocolVersion: 5, clientId: uniqueId('tree') });
    await c.client.subscribeAsync(['tree/a/b', 'tree/+/z']);
    const r = await api(b, 'GET', '/api/v1/topics?prefix=tree&depth=2');
    assert.equal(r.status, 200);
    assert.equal(r.body.name, 'tree');
    assert.equal(r.body.path, 'tree');
    const names = r.body.children.map((x: { name: string }) => x.name);
    assert.deepEqual(names, ['+', 'a', 'c']);
    const a = r.body.children.find((x: { name: string }) => x.name === 'a');
    assert.equal(a.path, 'tree/a');
    assert.equal(a.retained, false);
    assert.deepEqual(a.children.map((x: { path: string; retained: boolean; subscribers: number }) => [x.path, x.retained, x.subscribers]), [['tree/a/b', true, 1]]);
    assert.equal(r.body.children.find((x: { name: string }) => x.name === 'c').retained, true);
    const shallow = await api(b, 'GET', '/api/v1/topics?prefix=tree');
    assert.deepEqual(shallow.body.children.find((x: { name: string }) => x.name === 'a').children, []);
    const root = await api(b, 'GET', '/api/v1/topics');
    assert.ok(root.body.children.some((x: { name: string }) => x.name === 'tree'));
    assert.equal((await api(b, 'GET', '/api/v1/topics?prefix=no/such')).status, 404);
  });

  it('GET /history has per-second points after a few seconds', T, async () => {
    const c = await mqtt({ protocolVersion: 5, clientId: uniqueId('hist') });
    await c.client.subscribeAsync('hist/#');
    for (let i = 0; i < 3; i++) {
      await c.client.publishAsync('hist/x', 'p', { qos: 1 });
      await sleep(1000);
    }
    const r = await api(b, 'GET', '/api/v1/history?seconds=60');
    assert.equal(r.status, 200);
    assert.equal(r.body.intervalSeconds, 1);
    assert.ok(r.body.points.length >= 2, `points: ${r.body.points.length}`);
    const p = r.body.points.at(-1);
    for (const k of ['t', 'connections', 'messagesIn', 'messagesOut', 'bytesIn', 'bytesOut', 'dropped']) assert.equal(typeof p[k], 'number', k);
    assert.ok(p.connections >= 1);
    assert.ok(r.body.points.some((x: { messagesIn: number }) => x.messagesIn >= 1));
    assert.ok(r.body.points.some((x: { bytesOut: number }) => x.bytesOut > 0));
    const ts = r.body.points.map((x: { t: number }) => x.t);
    assert.deepEqual([...ts].sort((x: number, y: number) => x - y), ts);
    assert.ok(Date.now() - ts[0] <= 61_000);
    assert.equal((await api(b, 'GET', '/api/v1/history?seconds=3601')).status, 400);
  });

  it('openapi.json is OpenAPI 3.1 with every route of the contract', T, async () => {
    const r = await api(b, 'GET', '/api/v1/openapi.json', undefined, null);
    assert.equal(r.status, 200);
    const doc = r.body;
    assert.equal(typeof doc, 'object');
    assert.equal(doc.openapi, '3.1.0');
    const contract: [string, string][] = [
      ['get', '/stats'], ['get', '/history'], ['get', '/clients'], ['get', '/clients/{clientId}'], ['post', '/clients/{clientId}/kick'],
      ['post', '/clients/kick'], ['get', '/sessions'], ['get', '/sessions/{clientId}'], ['delete', '/sessions/{clientId}'],
      ['get', '/subscriptions'], ['post', '/clients/{clientId}/subscriptions'], ['delete', '/clients/{clientId}/subscriptions'],
      ['get', '/retained'], ['get', '/retained/message'], ['delete', '/retained/message'], ['post', '/retained/delete'],
      ['post', '/publish'], ['post', '/publish/bulk'], ['get', '/bans'], ['post', '/bans'], ['delete', '/bans/{id}'],
      ['get', '/listeners'], ['get', '/topics'], ['get', '/openapi.json'],
    ];
    for (const [method, path] of contract) assert.ok(doc.paths[`/api/v1${path}`]?.[method], `${method.toUpperCase()} /api/v1${path}`);
    let ops = 0;
    for (const p of Object.values(doc.paths) as Record<string, unknown>[]) ops += Object.keys(p).length;
    assert.equal(ops, contract.length);
    const ids = Object.values(doc.paths).flatMap((p) => Object.values(p as Record<string, { operationId: string }>).map((o) => o.operationId));
    assert.equal(new Set(ids).size, ids.length, 'operationIds are unique');
    // Every $ref resolves.
    const refs = JSON.stringify(doc).match(/"\$ref":"#\/components\/schemas\/[^"]+"/g) ?? [];
    for (const ref of refs) {
      const name = ref.split('/').pop()!.slice(0, -1);
      assert.ok(doc.components.schemas[name], name);
    }
    assert.equal(doc.paths['/api/v1/publish'].post.requestBody.content['application/json'].schema.$ref, '#/components/schemas/publishBody');
    assert.deepEqual(doc.components.schemas.publishBody.required, ['topic']);
  });
});

describe('admin API: the OpenAPI document', () => {
  it('is a valid OpenAPI 3.1 document (@seriousme/openapi-schema-validator, the specification\'s JSON Schemas)', T, async () => {
    const b = await start();
    try {
      const r = await api(b, 'GET', '/api/v1/openapi.json', undefined, null);
      const { Validator } = await import('@seriousme/openapi-schema-validator');
      const v = new Validator();
      const res = await v.validate(r.body as Parameters<typeof v.validate>[0]);
      assert.equal(v.version, '3.1');
      assert.deepEqual(res.errors ?? [], []);
      assert.equal(res.valid, true);
    } finally {
      await b.broker.close();
    }
  });
});

describe('admin API: session discard against a reconnect', () => {
  it('a CONNECT still authenticating while its session is discarded gets a fresh session (sessionPresent false)', T, async () => {
    let release: (() => void) | null = null;
    let waiting = false;
    const b = await start({
      hooks: {
        authenticate: (req) => {
          if (!req.clientId.startsWith('slow-')) return true;
          waiting = true;
          return new Promise<boolean>((resolve) => {
            release = () => resolve(true);
          });
        },
      },
    });
    const opts = { protocolVersion: 5 as const, clientId: 'slow-race', clean: false, properties: { sessionExpiryInterval: 600 } };
    let c1: MqttClient | undefined;
    let c2: MqttClient | undefined;
    try {
      const first = connectMqtt(b.url, opts);
      await waitFor(() => waiting, 3000, 'authenticate hook called');
      release!();
      c1 = (await first).client;
      await c1.subscribeAsync('race/x', { qos: 1 });
      await c1.endAsync();
      await waitFor(() => b.broker.session('slow-race')?.online === false, 3000, 'offline');
      waiting = false;
      // The second CONNECT waits in its authenticate hook while the session is discarded.
      const second = connectMqtt(b.url, opts);
      await waitFor(() => waiting, 3000, 'second authenticate');
      const d = await api(b, 'DELETE', '/api/v1/sessions/slow-race');
      assert.equal(d.status, 200);
      release!();
      const s = await second;
      c2 = s.client;
      assert.equal(s.connack.sessionPresent, false);
      assert.equal(b.broker.session('slow-race')?.subscriptions, 0);
    } finally {
      await endAll(c1, c2);
      await b.broker.close();
    }
  });
});

describe('admin API: ACL file, memory limit, close', () => {
  it('403 when the ACL file does not let $admin write the topic', T, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'petrel-admin-'));
    const acl = join(dir, 'acl');
    writeFileSync(acl, 'user $admin\ntopic write open/#\n');
    const b = await start({ auth: { aclFile: acl } });
    try {
      assert.equal((await api(b, 'POST', '/api/v1/publish', { topic: 'open/x', payload: 'ok' })).status, 200);
      const r = await api(b, 'POST', '/api/v1/publish', { topic: 'closed/x', payload: 'no' });
      assert.equal(r.status, 403);
      assert.match(r.body.error.message, /\$admin/);
    } finally {
      await b.broker.close();
    }
  });

  it('publish answers 503 with Retry-After while memory is above limits.memoryLimit', T, async () => {
    // Any process's RSS is above 1 MiB: the guard's next sample (250 ms) starts an episode.
    const b = await start({ limits: { memoryLimit: 1024 * 1024 } });
    try {
      let r: Reply | undefined;
      const deadline = Date.now() + 5000;
      do {
        r = await api(b, 'POST', '/api/v1/publish', { topic: 'mem/x', payload: 'x' });
        if (r.status === 503) break;
        await sleep(50);
      } while (Date.now() < deadline);
      assert.equal(r!.status, 503);
      assert.equal(r!.body.error.code, 'unavailable');
      assert.equal(r!.headers.get('retry-after'), '5');
    } finally {
      await b.broker.close();
    }
  });

  it('closing the broker closes the admin API with its HTTP listener', T, async () => {
    const b = await start();
    assert.equal((await api(b, 'GET', '/api/v1/stats')).status, 200);
    await b.broker.close();
    await assert.rejects(fetch(`http://127.0.0.1:${b.http}/api/v1/stats`, { signal: AbortSignal.timeout(2000) }));
  });
});
