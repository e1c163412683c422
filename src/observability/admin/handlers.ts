// The admin API's routes (the contract is README "Admin API" and GET /api/v1/openapi.json): what each one reads
// from or does to the broker. Every mutating action writes an audit line at info: `event: 'admin.<action>'`, its
// target and the caller's address (never the token).

import type { Broker } from '../../broker/broker.js';
import type { Client } from '../../broker/client.js';
import { ClientState } from '../../broker/client-state.js';
import { subscribeSession } from '../../broker/handle-subscribe.js';
import type { BrokerMessage, ClientInfo } from '../../broker/hooks.js';
import type { Session } from '../../broker/session.js';
import type { Subscription } from '../../broker/topic-tree.js';
import { PetrelError } from '../../broker/errors.js';
import type { Message } from '../../broker/message.js';
import { addressPart } from '../../auth/login-guard.js';
import type { Properties, QoS } from '../../protocol/packets.js';
import { propertiesLength } from '../../protocol/properties.js';
import { isSysTopic, parseSharedFilter, validateTopicFilter, validateTopicName } from '../../protocol/topic.js';
import { isUtf8 } from '../../protocol/utf8.js';
import type { HttpListener } from '../http.js';
import { snapshot } from '../metrics.js';
import { petrelVersionSync } from '../version.js';
import { addressMatcher, BanList, type BanKind } from './bans.js';
import { droppedTotal, HISTORY_SECONDS, type History } from './history.js';
import { badRequest, HttpError, notFound, page, PAGING, queryBool, queryInt, queryString, type Answer, type Ctx, type Op } from './router.js';
import { SCHEMAS, validate, type Violation } from './schema.js';

const ok = (body: unknown, status = 200): Answer => ({ status, body });

/** The identity the authorizePublish hook and the ACL file see for the admin API's publishes. */
export const ADMIN_CLIENT_ID = '$admin';

interface Env {
  broker: Broker;
  http: HttpListener;
  history: History;
  bans: BanList;
}

function ipOf(c: Client): string {
  return c.conn.meta.remoteIp || addressPart(c.conn.remoteAddress);
}

function subscriptionItem(sub: Subscription): Record<string, unknown> {
  const o: Record<string, unknown> = {
    filter: sub.filter,
    qos: sub.qos,
    noLocal: sub.noLocal,
    retainAsPublished: sub.retainAsPublished,
    retainHandling: sub.retainHandling,
  };
  if (sub.group !== null) o.shareName = sub.group;
  return o;
}

function clientItem(broker: Broker, s: Session): Record<string, unknown> {
  const c = broker.liveClient(s.id);
  const out = s.out;
  const base = {
    clientId: s.id,
    username: c?.username ?? null,
    connected: c !== undefined,
    listener: c?.conn.meta.listener ?? null,
    transport: c?.conn.meta.transport ?? null,
    protocolVersion: c?.version ?? s.protocolVersion,
    remoteAddress: c?.conn.remoteAddress ?? null,
    connectedAt: c === undefined ? null : new Date(c.connectedAt || Date.now()).toISOString(),
    keepAlive: c === undefined ? null : Math.round(c.keepAliveMs / 1500),
    cleanStart: c?.cleanStart ?? null,
    sessionExpiryInterval: s.expiryInterval,
    subscriptions: s.subscriptionsIfAny?.size ?? 0,
    queued: out.queuedCount,
    inflightOut: out.inflightCount,
    inflightIn: c?.inboundUnacked ?? s.inboundQos2?.size ?? 0,
  };
  return base;
}

function sessionItem(broker: Broker, s: Session): Record<string, unknown> {
  return {
    clientId: s.id,
    connected: broker.liveClient(s.id) !== undefined,
    expiryInterval: s.expiryInterval,
    subscriptions: s.subscriptionsIfAny?.size ?? 0,
    queued: s.out.queuedCount,
    inflightOut: s.out.inflightCount,
  };
}

function sessionOf(broker: Broker, clientId: string): Session {
  const s = broker.sessions.get(clientId);
  if (s === undefined || s.ended) throw notFound(`no session for client id ${JSON.stringify(clientId)}`);
  return s;
}

function audit(broker: Broker, action: string, ctx: Ctx, fields: Record<string, unknown>): void {
  broker.logger.info(`admin ${action.replace(/_/g, ' ')}`, { event: `admin.${action}`, ...fields, remote: ctx.remote });
}

function requiredQuery(ctx: Ctx, name: string): string {
  const v = queryString(ctx.url, name);
  if (v === undefined || v === '') throw badRequest(`query parameter ${name} is required`, [{ path: name, message: 'is required' }]);
  return v;
}

function checkFilter(broker: Broker, filter: string, path: string, shared = true): void {
  const bad = validateTopicFilter(filter) ?? (!shared && parseSharedFilter(filter) !== null ? 'a shared subscription filter is not allowed here' : null) ?? broker.tooDeep(filter);
  if (bad !== null) throw badRequest(`invalid topic filter: ${bad}`, [{ path, message: bad }]);
}

function checkTopic(broker: Broker, topic: string, path: string): void {
  const bad = validateTopicName(topic) ?? broker.tooDeep(topic);
  if (bad !== null) throw badRequest(`invalid topic: ${bad}`, [{ path, message: bad }]);
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2,3})?$/;

function base64(value: string, path: string): Buffer {
  if (!BASE64.test(value)) throw badRequest(`${path} is not base64`, [{ path, message: 'must be base64' }]);
  return Buffer.from(value, 'base64');
}

/** The message properties of the API (JSON) as MQTT properties. */
function toProperties(broker: Broker, p: Record<string, unknown> | undefined, path: string): Properties | undefined {
  if (p === undefined) return undefined;
  const out: Properties = {};
  if (p.contentType !== undefined) out.contentType = p.contentType as string;
  if (p.payloadFormatIndicator !== undefined) out.payloadFormatIndicator = p.payloadFormatIndicator as number;
  if (p.messageExpiryInterval !== undefined) out.messageExpiryInterval = p.messageExpiryInterval as number;
  if (p.responseTopic !== undefined) {
    // The Response Topic is a Topic Name [MQTT-3.3.2-14].
    const bad = validateTopicName(p.responseTopic as string);
    if (bad !== null) throw badRequest(`invalid responseTopic: ${bad}`, [{ path: `${path}/responseTopic`, message: bad }]);
    out.responseTopic = p.responseTopic as string;
  }
  if (p.correlationData !== undefined) out.correlationData = base64(p.correlationData as string, `${path}/correlationData`);
  if (p.userProperties !== undefined) out.userProperties = (p.userProperties as [string, string][]).map(([k, v]) => [k, v]);
  void broker;
  return Object.keys(out).length > 0 ? out : undefined;
}

/** MQTT properties of a held message as the API shows them. */
function fromProperties(m: Message, now: number): Record<string, unknown> {
  const p = m.properties;
  const o: Record<string, unknown> = {};
  if (p?.contentType !== undefined) o.contentType = p.contentType;
  if (p?.payloadFormatIndicator !== undefined) o.payloadFormatIndicator = p.payloadFormatIndicator;
  if (m.expiresAt !== undefined) o.messageExpiryInterval = m.remainingExpiry(now);
  if (p?.responseTopic !== undefined) o.responseTopic = p.responseTopic;
  if (p?.correlationData !== undefined) o.correlationData = Buffer.from(p.correlationData).toString('base64');
  if (p?.userProperties !== undefined) o.userProperties = p.userProperties;
  return o;
}

function varintLength(n: number): number {
  return n < 128 ? 1 : n < 16384 ? 2 : n < 2097152 ? 3 : 4;
}

interface ParsedPublish {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  properties: Properties | undefined;
}

/** A publish body (already schema-valid) checked against the topic rules and the broker's limits. */
function parsePublish(broker: Broker, b: Record<string, unknown>, path: string): ParsedPublish {
  const topic = b.topic as string;
  checkTopic(broker, topic, `${path}/topic`);
  if (b.payload !== undefined && b.payloadBase64 !== undefined) {
    throw badRequest('give payload or payloadBase64, not both', [{ path: `${path}/payloadBase64`, message: 'not allowed with payload' }]);
  }
  const payload = b.payloadBase64 !== undefined ? base64(b.payloadBase64 as string, `${path}/payloadBase64`) : Buffer.from((b.payload as string | undefined) ?? '', 'utf8');
  const qos = ((b.qos as number | undefined) ?? 0) as QoS;
  const limits = broker.limits;
  if (qos > limits.maxQoS) throw badRequest(`QoS ${qos} is above limits.maxQoS ${limits.maxQoS}`, [{ path: `${path}/qos`, message: `must be at most ${limits.maxQoS}` }]);
  const retain = b.retain === true;
  if (retain && !limits.retainAvailable) throw badRequest('retained messages are not available (limits.retainAvailable)', [{ path: `${path}/retain`, message: 'retain is not available' }]);
  const properties = toProperties(broker, b.properties as Record<string, unknown> | undefined, `${path}/properties`);
  if (properties?.payloadFormatIndicator === 1 && !isUtf8(payload)) {
    // [MQTT-3.3.2-4]: as for a client's PUBLISH, a payload that says it is UTF-8 must be.
    throw badRequest('payloadFormatIndicator is 1 but the payload is not UTF-8', [{ path: `${path}/payloadBase64`, message: 'is not UTF-8' }]);
  }
  let propsLen: number;
  try {
    propsLen = propertiesLength(properties);
  } catch (err) {
    throw badRequest(`properties: ${(err as Error).message}`, [{ path: `${path}/properties`, message: (err as Error).message }]);
  }
  // The PUBLISH packet it would be: no client could send one larger than limits.maxPacketSize.
  const remaining = 2 + Buffer.byteLength(topic, 'utf8') + (qos > 0 ? 2 : 0) + propsLen + varintLength(propsLen) + payload.length;
  const size = 1 + varintLength(remaining) + remaining;
  if (size > limits.maxPacketSize) {
    throw new HttpError(413, 'payload_too_large', `the PUBLISH would be ${size} bytes, larger than limits.maxPacketSize (${limits.maxPacketSize})`);
  }
  return { topic, payload, qos, retain, properties };
}

/** The authorizePublish hook, then the ACL file, for the admin identity ($admin): 403 if refused. */
async function authorize(broker: Broker, m: ParsedPublish, remote: string): Promise<void> {
  if (isSysTopic(m.topic)) throw new HttpError(403, 'forbidden', 'topics under $SYS are reserved for the broker');
  const info: ClientInfo = { clientId: ADMIN_CLIENT_ID, username: ADMIN_CLIENT_ID, protocolVersion: 5, remoteAddress: remote, listener: 'http', transport: 'tcp' };
  let r: unknown;
  const hook = broker.hooks.authorizePublish;
  if (hook !== undefined) {
    const msg: BrokerMessage = { topic: m.topic, payload: m.payload, qos: m.qos, retain: m.retain, properties: m.properties };
    try {
      r = await hook(info, msg);
    } catch (err) {
      broker.logger.error('authorizePublish hook failed (admin publish)', { event: 'hook.failed', hook: 'authorizePublish', err });
      throw new HttpError(403, 'forbidden', 'the authorizePublish hook failed');
    }
  }
  if (r === undefined) {
    const acl = broker.acl;
    r = acl === null || acl.canWrite(info, m.topic);
  }
  if (r !== true) throw new HttpError(403, 'forbidden', `publishing to ${JSON.stringify(m.topic)} is not authorized for ${ADMIN_CLIENT_ID}${typeof r === 'number' ? ` (reason code 0x${r.toString(16)})` : ''}`);
}

async function publishOne(broker: Broker, b: Record<string, unknown>, path: string, remote: string): Promise<number> {
  const m = parsePublish(broker, b, path);
  await authorize(broker, m, remote);
  if (broker.closing) throw new HttpError(503, 'unavailable', 'the broker is shutting down');
  if (broker.memory.high) throw new HttpError(503, 'unavailable', 'the broker is above limits.memoryLimit; try again later', undefined, { 'retry-after': '5' });
  try {
    const opts: { qos: QoS; retain: boolean; properties?: Properties } = { qos: m.qos, retain: m.retain };
    if (m.properties !== undefined) opts.properties = m.properties;
    return await broker.publish(m.topic, m.payload, opts);
  } catch (err) {
    if (err instanceof PetrelError) {
      if (err.code === 'PETREL_ERR_CLOSED') throw new HttpError(503, 'unavailable', err.message);
      throw badRequest(err.message);
    }
    throw err;
  }
}

/** Kick connected clients; the number kicked. */
function kickAll(broker: Broker, clients: Client[], reason: string): number {
  let n = 0;
  for (const c of clients) if (broker.kick(c.clientId, reason)) n++;
  return n;
}

function connectedClients(broker: Broker): Client[] {
  const out: Client[] = [];
  for (const c of broker.clients) if (c.state === ClientState.Connected) out.push(c);
  return out;
}

interface TopicNode {
  name: string;
  path: string;
  retained: boolean;
  subscribers: number;
  childCount: number;
  children: TopicNode[];
}

interface Trie {
  retained: boolean;
  subscribers: number;
  children: Map<string, Trie> | null;
}

function trieAt(root: Trie, levels: readonly string[]): Trie {
  let n = root;
  for (const l of levels) {
    const kids = (n.children ??= new Map());
    let next = kids.get(l);
    if (next === undefined) kids.set(l, (next = { retained: false, subscribers: 0, children: null }));
    n = next;
  }
  return n;
}

function treeOf(t: Trie, name: string, path: string | null, depth: number): TopicNode {
  const kids = t.children === null ? [] : [...t.children.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return {
    name,
    path: path ?? '',
    retained: t.retained,
    subscribers: t.subscribers,
    childCount: kids.length,
    children: depth <= 0 ? [] : kids.map(([k, c]) => treeOf(c, k, path === null ? k : `${path}/${k}`, depth - 1)),
  };
}

export function routes(env: Env): Op[] {
  const { broker, history, bans } = env;
  const clientIdParam = { name: 'clientId', description: 'substring of the client id', schema: { type: 'string' as const } };
  const connectedParam = { name: 'connected', description: 'true: connected only; false: offline sessions only', schema: { type: 'boolean' as const } };

  const sessionRows = (url: URL): Session[] => {
    const sub = queryString(url, 'clientId');
    const connected = queryBool(url, 'connected');
    const out: Session[] = [];
    for (const s of broker.sessions.values()) {
      if (s.ended) continue;
      if (sub !== undefined && sub !== '' && !s.id.includes(sub)) continue;
      if (connected !== undefined && (broker.liveClient(s.id) !== undefined) !== connected) continue;
      out.push(s);
    }
    return out;
  };

  return [
    {
      method: 'GET',
      path: '/stats',
      summary: 'Broker totals now',
      ok: { status: 200, schema: 'stats' },
      run: () => {
        const s = snapshot(broker);
        const mem = process.memoryUsage();
        return ok({
          version: petrelVersionSync(),
          uptimeSeconds: Math.floor((Date.now() - broker.startedAt) / 1000),
          connections: broker.connectedCount,
          sessions: { online: s.sessionsOnline, offline: s.sessionsOffline },
          subscriptions: { normal: s.subscriptionsNormal, shared: s.subscriptionsShared },
          retained: { count: s.retainedMessages, bytes: s.retainedBytes },
          messages: { received: broker.stats.messagesIn, sent: broker.stats.messagesOut, dropped: droppedTotal(broker) },
          queued: { messages: s.queuedMessages, bytes: s.queuedBytes },
          memory: { rss: mem.rss, heapUsed: mem.heapUsed },
        });
      },
    },
    {
      method: 'GET',
      path: '/history',
      summary: 'Per-second rates of the last seconds (1 s samples, one hour kept)',
      query: [{ name: 'seconds', description: `how far back (default 300, at most ${HISTORY_SECONDS})`, schema: { type: 'integer', minimum: 1, maximum: HISTORY_SECONDS, default: 300 } }],
      ok: { status: 200, schema: 'history' },
      run: (ctx) => ok({ intervalSeconds: 1, points: history.points(queryInt(ctx.url, 'seconds', 300, 1, HISTORY_SECONDS)) }),
    },
    {
      method: 'GET',
      path: '/clients',
      summary: 'Clients: connected ones and offline sessions',
      query: [
        clientIdParam,
        { name: 'username', description: 'exact user name', schema: { type: 'string' } },
        { name: 'listener', description: 'exact listener name', schema: { type: 'string' } },
        connectedParam,
        ...PAGING,
      ],
      ok: { status: 200, schema: 'clientList' },
      run: (ctx) => {
        const username = queryString(ctx.url, 'username');
        const listener = queryString(ctx.url, 'listener');
        const rows = sessionRows(ctx.url).filter((s) => {
          if (username === undefined && listener === undefined) return true;
          const c = broker.liveClient(s.id);
          if (username !== undefined && c?.username !== username) return false;
          if (listener !== undefined && c?.conn.meta.listener !== listener) return false;
          return true;
        });
        const p = page(ctx.url, rows, (s) => s.id);
        return ok({ ...p, items: p.items.map((s) => clientItem(broker, s)) });
      },
    },
    {
      method: 'POST',
      path: '/clients/kick',
      summary: 'Disconnect every client of a user name, or one client id',
      body: { name: 'kickManyBody', schema: SCHEMAS.kickManyBody },
      ok: { status: 200, schema: 'kicked' },
      run: (ctx) => {
        const b = ctx.body as { username?: string; clientId?: string };
        if ((b.username === undefined) === (b.clientId === undefined)) {
          throw badRequest('give exactly one of username and clientId', [{ path: '', message: 'needs exactly one of username and clientId' }]);
        }
        const targets = connectedClients(broker).filter((c) => (b.username !== undefined ? c.username === b.username : c.clientId === b.clientId));
        const kicked = kickAll(broker, targets, 'kicked by an administrator');
        audit(broker, 'kick', ctx, { ...(b.username !== undefined ? { username: b.username } : { clientId: b.clientId }), kicked });
        return ok({ kicked });
      },
    },
    {
      method: 'GET',
      path: '/clients/{clientId}',
      summary: 'One client, with its subscriptions',
      ok: { status: 200, schema: 'client' },
      errors: [404],
      run: (ctx) => {
        const s = sessionOf(broker, ctx.params.clientId!);
        return ok({ ...clientItem(broker, s), subscriptionList: [...(s.subscriptionsIfAny?.values() ?? [])].map(subscriptionItem), queuedBytes: s.out.queuedBytes });
      },
    },
    {
      method: 'POST',
      path: '/clients/{clientId}/kick',
      summary: 'Disconnect a client (v5: DISCONNECT 0x98 Administrative action)',
      body: { name: 'kickBody', schema: SCHEMAS.kickBody, optional: true },
      ok: { status: 200, schema: 'kicked' },
      errors: [404],
      run: (ctx) => {
        const id = ctx.params.clientId!;
        const reason = (ctx.body as { reason?: string }).reason;
        if (!broker.kick(id, reason ?? 'kicked by an administrator')) throw notFound(`client id ${JSON.stringify(id)} is not connected`);
        audit(broker, 'kick', ctx, { clientId: id, reason });
        return ok({ kicked: 1 });
      },
    },
    {
      method: 'GET',
      path: '/sessions',
      summary: 'Sessions, connected or not',
      query: [clientIdParam, connectedParam, ...PAGING],
      ok: { status: 200, schema: 'sessionList' },
      run: (ctx) => {
        const p = page(ctx.url, sessionRows(ctx.url), (s) => s.id);
        return ok({ ...p, items: p.items.map((s) => sessionItem(broker, s)) });
      },
    },
    {
      method: 'GET',
      path: '/sessions/{clientId}',
      summary: 'One session, with its subscriptions',
      ok: { status: 200, schema: 'session' },
      errors: [404],
      run: (ctx) => {
        const s = sessionOf(broker, ctx.params.clientId!);
        return ok({ ...sessionItem(broker, s), subscriptionList: [...(s.subscriptionsIfAny?.values() ?? [])].map(subscriptionItem) });
      },
    },
    {
      method: 'DELETE',
      path: '/sessions/{clientId}',
      summary: 'Discard a session (its connection is kicked first)',
      ok: { status: 200, schema: 'discarded' },
      errors: [404],
      run: (ctx) => {
        const id = ctx.params.clientId!;
        if (!broker.discardSession(id)) throw notFound(`no session for client id ${JSON.stringify(id)}`);
        audit(broker, 'session_discard', ctx, { clientId: id });
        return ok({ discarded: true });
      },
    },
    {
      method: 'GET',
      path: '/subscriptions',
      summary: 'Subscriptions of every session',
      query: [clientIdParam, { name: 'filter', description: 'exact topic filter', schema: { type: 'string' } }, ...PAGING],
      ok: { status: 200, schema: 'subscriptionList' },
      run: (ctx) => {
        const filter = queryString(ctx.url, 'filter');
        const rows: { key: string; item: Record<string, unknown> }[] = [];
        for (const s of sessionRows(ctx.url)) {
          const subs = s.subscriptionsIfAny;
          if (subs === null) continue;
          for (const sub of subs.values()) {
            if (filter !== undefined && filter !== '' && sub.filter !== filter) continue;
            const item: Record<string, unknown> = { clientId: s.id, filter: sub.filter, qos: sub.qos };
            if (sub.group !== null) item.shareName = sub.group;
            rows.push({ key: `${s.id}\u0000${sub.filter}`, item });
          }
        }
        const p = page(ctx.url, rows, (r) => r.key);
        return ok({ ...p, items: p.items.map((r) => r.item) });
      },
    },
    {
      method: 'POST',
      path: '/clients/{clientId}/subscriptions',
      summary: "Add a subscription to a client's session (retained messages are sent as for a SUBSCRIBE)",
      body: { name: 'subscriptionBody', schema: SCHEMAS.subscriptionBody },
      ok: { status: 201, schema: 'subscribed' },
      errors: [404],
      run: (ctx) => {
        const id = ctx.params.clientId!;
        const b = ctx.body as { filter: string; qos?: QoS; noLocal?: boolean; retainAsPublished?: boolean; retainHandling?: 0 | 1 | 2 };
        checkFilter(broker, b.filter, '/filter');
        if (b.noLocal === true && parseSharedFilter(b.filter) !== null) {
          // [MQTT-3.8.3-4]: No Local on a shared subscription is a Protocol Error.
          throw badRequest('noLocal is not allowed on a shared subscription [MQTT-3.8.3-4]', [{ path: '/noLocal', message: 'must be false for a shared subscription' }]);
        }
        const s = sessionOf(broker, id);
        const req = { filter: b.filter, qos: b.qos ?? 0, noLocal: b.noLocal ?? false, retainAsPublished: b.retainAsPublished ?? false, retainHandling: b.retainHandling ?? 0 };
        const bad = subscribeSession(broker, s, req);
        if (bad !== null) throw badRequest(`cannot subscribe: ${bad}`, [{ path: '/filter', message: bad }]);
        const qos = s.subscriptions.get(b.filter)!.qos;
        audit(broker, 'subscription_add', ctx, { clientId: id, filter: b.filter, qos });
        return ok({ filter: b.filter, qos }, 201);
      },
    },
    {
      method: 'DELETE',
      path: '/clients/{clientId}/subscriptions',
      summary: "Remove a subscription from a client's session",
      query: [{ name: 'filter', description: 'the topic filter, exactly as subscribed', schema: { type: 'string' }, required: true }],
      ok: { status: 200, schema: 'removed' },
      errors: [404],
      run: (ctx) => {
        const id = ctx.params.clientId!;
        const filter = requiredQuery(ctx, 'filter');
        const s = sessionOf(broker, id);
        if (!broker.removeSubscription(s, filter)) throw notFound(`the session of ${JSON.stringify(id)} has no subscription ${JSON.stringify(filter)}`);
        audit(broker, 'subscription_remove', ctx, { clientId: id, filter });
        return ok({ removed: true });
      },
    },
    {
      method: 'GET',
      path: '/retained',
      summary: 'Retained messages whose topic matches a filter',
      query: [{ name: 'filter', description: "topic filter (default '#'; '$SYS/#' for the broker's own)", schema: { type: 'string', default: '#' } }, ...PAGING],
      ok: { status: 200, schema: 'retainedList' },
      run: (ctx) => {
        const filter = queryString(ctx.url, 'filter') || '#';
        checkFilter(broker, filter, 'filter', false);
        const rows = [...broker.retained.iterate(filter)];
        const p = page(ctx.url, rows, (m) => m.topic);
        return ok({ ...p, items: p.items.map((m) => ({ topic: m.topic, qos: m.qos, bytes: m.payload.length })) });
      },
    },
    {
      method: 'GET',
      path: '/retained/message',
      summary: 'One retained message, with its payload and properties',
      query: [{ name: 'topic', description: 'topic name', schema: { type: 'string' }, required: true }],
      ok: { status: 200, schema: 'retainedMessage' },
      errors: [404],
      run: (ctx) => {
        const topic = requiredQuery(ctx, 'topic');
        checkTopic(broker, topic, 'topic');
        const m = broker.retained.get(topic);
        const now = Date.now();
        if (m === undefined || m.isExpired(now)) throw notFound(`no retained message on ${JSON.stringify(topic)}`);
        return ok({ topic, qos: m.qos, bytes: m.payload.length, payload: m.payload.toString('base64'), properties: fromProperties(m, now) });
      },
    },
    {
      method: 'DELETE',
      path: '/retained/message',
      summary: 'Delete one retained message (nothing is published)',
      query: [{ name: 'topic', description: 'topic name', schema: { type: 'string' }, required: true }],
      ok: { status: 200, schema: 'deleted' },
      errors: [404],
      run: (ctx) => {
        const topic = requiredQuery(ctx, 'topic');
        checkTopic(broker, topic, 'topic');
        if (!broker.deleteRetained(topic)) throw notFound(`no retained message on ${JSON.stringify(topic)}`);
        audit(broker, 'retained_delete', ctx, { topic });
        return ok({ deleted: 1 });
      },
    },
    {
      method: 'POST',
      path: '/retained/delete',
      summary: 'Delete the retained messages matching a filter (dryRun, the default, only counts them)',
      body: { name: 'retainedDeleteBody', schema: SCHEMAS.retainedDeleteBody },
      ok: { status: 200, schema: 'retainedDeleted' },
      run: (ctx) => {
        const b = ctx.body as { filter: string; dryRun?: boolean };
        checkFilter(broker, b.filter, '/filter', false);
        const dryRun = b.dryRun ?? true;
        const topics = [...broker.retained.iterate(b.filter)].map((m) => m.topic);
        if (!dryRun) {
          for (const t of topics) broker.deleteRetained(t);
          audit(broker, 'retained_delete', ctx, { filter: b.filter, count: topics.length });
        }
        return ok({ dryRun, count: topics.length, topics: topics.slice(0, 100) });
      },
    },
    {
      method: 'POST',
      path: '/publish',
      summary: 'Publish a message, routed as the in-process API does (authorizePublish and the ACL see client id $admin)',
      body: { name: 'publishBody', schema: SCHEMAS.publishBody },
      ok: { status: 200, schema: 'published' },
      errors: [403, 413, 503],
      run: async (ctx) => {
        const b = ctx.body as Record<string, unknown>;
        const matched = await publishOne(broker, b, '', ctx.remote);
        audit(broker, 'publish', ctx, { topic: b.topic, qos: b.qos ?? 0, retain: b.retain === true, matched });
        return ok({ matched });
      },
    },
    {
      method: 'POST',
      path: '/publish/bulk',
      summary: 'Publish up to 1000 messages in order; one result each',
      body: {
        name: 'bulkBody',
        schema: SCHEMAS.bulkBody,
        // Each message is checked on its own (a bad one gets its own 400 result).
        validateWith: { ...SCHEMAS.bulkBody, properties: { messages: { type: 'array', minItems: 1, maxItems: 1000 } } },
      },
      ok: { status: 200, schema: 'bulkPublished' },
      run: async (ctx) => {
        const messages = (ctx.body as { messages: unknown[] }).messages;
        const results: Record<string, unknown>[] = [];
        let published = 0;
        for (let i = 0; i < messages.length; i++) {
          const path = `/messages/${i}`;
          try {
            const m = messages[i];
            const v: Violation[] = validate(SCHEMAS.publishBody, m).map((x) => ({ path: path + x.path, message: x.message }));
            if (v.length > 0) throw badRequest(`invalid message ${i}: ${v[0]!.path} ${v[0]!.message}`, v);
            results.push({ status: 200, matched: await publishOne(broker, m as Record<string, unknown>, path, ctx.remote) });
            published++;
          } catch (err) {
            if (!(err instanceof HttpError)) throw err;
            const error: Record<string, unknown> = { status: err.status, code: err.code, message: err.message };
            if (err.details !== undefined) error.details = err.details;
            results.push({ status: err.status, error });
          }
        }
        audit(broker, 'publish_bulk', ctx, { messages: messages.length, published });
        return ok({ results });
      },
    },
    {
      method: 'GET',
      path: '/bans',
      summary: 'Bans in force (held in memory)',
      ok: { status: 200, schema: 'banList' },
      run: () => ok({ items: bans.list() }),
    },
    {
      method: 'POST',
      path: '/bans',
      summary: 'Ban a client id, user name or address / CIDR: matching clients are kicked, their CONNECTs refused (0x8A; 3.1.1: 5)',
      body: { name: 'banBody', schema: SCHEMAS.banBody },
      ok: { status: 201, schema: 'ban' },
      run: (ctx) => {
        const b = ctx.body as { kind: BanKind; value: string; reason?: string; durationSeconds?: number };
        const matcher = b.kind === 'address' ? addressMatcher(b.value) : null;
        if (b.kind === 'address' && matcher === null) {
          throw badRequest('value must be an IP address or a CIDR range for kind address', [{ path: '/value', message: 'must be an IPv4 or IPv6 address or CIDR range' }]);
        }
        const ban = bans.add(b.kind, b.value, matcher, b.reason, b.durationSeconds);
        const targets = connectedClients(broker).filter((c) => BanList.matches(ban, matcher, c.clientId, c.username, ipOf(c)));
        const kicked = kickAll(broker, targets, `banned${b.reason !== undefined ? `: ${b.reason}` : ''}`);
        audit(broker, 'ban_add', ctx, { id: ban.id, kind: b.kind, value: b.value, reason: b.reason, durationSeconds: b.durationSeconds, kicked });
        return ok(ban, 201);
      },
    },
    {
      method: 'DELETE',
      path: '/bans/{id}',
      summary: 'Lift a ban',
      ok: { status: 200, schema: 'banDeleted' },
      errors: [404],
      run: (ctx) => {
        const id = ctx.params.id!;
        if (!bans.delete(id)) throw notFound(`no ban ${JSON.stringify(id)}`);
        audit(broker, 'ban_remove', ctx, { id });
        return ok({ deleted: true });
      },
    },
    {
      method: 'GET',
      path: '/listeners',
      summary: 'Bound listeners and their open connections',
      ok: { status: 200, schema: 'listeners' },
      run: () => {
        const byName = new Map<string, number>();
        for (const c of broker.clients) byName.set(c.conn.meta.listener, (byName.get(c.conn.meta.listener) ?? 0) + 1);
        const protocol = { tcp: 'mqtt', tls: 'mqtts', ws: 'ws', wss: 'wss' } as const;
        const items: Record<string, unknown>[] = broker.boundAddresses.map((a) => ({ protocol: protocol[a.transport], name: a.name, host: a.host, port: a.port, connections: byName.get(a.name) ?? 0 }));
        items.push({ protocol: 'http', name: 'http', host: env.http.address.host, port: env.http.address.port, connections: env.http.connections });
        return ok({ items });
      },
    },
    {
      method: 'GET',
      path: '/topics',
      summary: 'Topic tree of the retained topics and the subscription filters',
      query: [
        { name: 'prefix', description: 'start at this topic (levels separated by /); absent: the root', schema: { type: 'string' } },
        { name: 'depth', description: 'levels of children to include (default 1, at most 32)', schema: { type: 'integer', minimum: 0, maximum: 32, default: 1 } },
      ],
      ok: { status: 200, schema: 'topicNode' },
      run: (ctx) => {
        const prefix = queryString(ctx.url, 'prefix');
        const depth = queryInt(ctx.url, 'depth', 1, 0, 32);
        const root: Trie = { retained: false, subscribers: 0, children: null };
        for (const m of broker.retained.all()) trieAt(root, m.topic.split('/')).retained = true;
        for (const s of broker.sessions.values()) {
          const subs = s.subscriptionsIfAny;
          if (subs === null || s.ended) continue;
          for (const sub of subs.values()) trieAt(root, sub.topicFilter.split('/')).subscribers++;
        }
        if (prefix === undefined || prefix === '') return ok(treeOf(root, '', null, depth));
        const levels = prefix.split('/');
        let n: Trie | undefined = root;
        for (let i = 0; i < levels.length && n !== undefined; i++) n = n.children?.get(levels[i]!);
        if (n === undefined) throw notFound(`no topic or filter under ${JSON.stringify(prefix)}`);
        return ok(treeOf(n, levels[levels.length - 1]!, prefix, depth));
      },
    },
  ];
}
