// A small JSON Schema validator (the subset the admin API's schemas use: type, properties, required,
// additionalProperties: false, enum, minimum, maximum, minLength, maxLength, items, minItems, maxItems), and
// the request and response schemas themselves. The OpenAPI document (openapi.ts) embeds the same objects, so
// what is documented is what is enforced.

export interface Schema {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean' | 'null' | readonly ('string' | 'null' | 'integer' | 'number' | 'boolean' | 'object' | 'array')[];
  description?: string;
  properties?: Record<string, Schema>;
  required?: readonly string[];
  additionalProperties?: boolean | Schema;
  enum?: readonly unknown[];
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  items?: Schema;
  minItems?: number;
  maxItems?: number;
  format?: string;
  default?: unknown;
  $ref?: string;
}

export interface Violation {
  /** JSON Pointer of the offending value ('' for the body itself). */
  path: string;
  message: string;
}

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function pointer(path: string, key: string | number): string {
  return `${path}/${String(key).replace(/~/g, '~0').replace(/\//g, '~1')}`;
}

/** Every violation of the schema by the value (at most `max` of them). */
export function validate(schema: Schema, value: unknown, max = 50): Violation[] {
  const out: Violation[] = [];
  check(schema, value, '', out, max);
  return out;
}

function check(schema: Schema, v: unknown, path: string, out: Violation[], max: number): void {
  if (out.length >= max) return;
  if (schema.type !== undefined) {
    const types = typeof schema.type === 'string' ? [schema.type] : schema.type;
    const t = typeOf(v);
    if (!types.includes(t as never) && !(t === 'integer' && types.includes('number'))) {
      out.push({ path, message: `must be ${types.map((x) => (x === 'integer' || x === 'array' || x === 'object' ? `an ${x}` : `a ${x}`)).join(' or ')}` });
      return;
    }
  }
  if (schema.enum !== undefined && !schema.enum.includes(v)) {
    const list = schema.enum.map((x) => JSON.stringify(x));
    out.push({ path, message: `must be ${list.length === 1 ? list[0] : `${list.slice(0, -1).join(', ')} or ${list[list.length - 1]}`}` });
    return;
  }
  if (typeof v === 'number') {
    if (schema.minimum !== undefined && v < schema.minimum) out.push({ path, message: `must be >= ${schema.minimum}` });
    if (schema.maximum !== undefined && v > schema.maximum) out.push({ path, message: `must be <= ${schema.maximum}` });
  } else if (typeof v === 'string') {
    // Characters as JSON Schema counts them (code points).
    const n = schema.minLength !== undefined || schema.maxLength !== undefined ? [...v].length : 0;
    if (schema.minLength !== undefined && n < schema.minLength) out.push({ path, message: schema.minLength === 1 ? 'must not be empty' : `must be at least ${schema.minLength} characters` });
    if (schema.maxLength !== undefined && n > schema.maxLength) out.push({ path, message: `must be at most ${schema.maxLength} characters` });
  } else if (Array.isArray(v)) {
    if (schema.minItems !== undefined && v.length < schema.minItems) out.push({ path, message: `must have at least ${schema.minItems} item(s)` });
    if (schema.maxItems !== undefined && v.length > schema.maxItems) {
      out.push({ path, message: `must have at most ${schema.maxItems} items` });
      return;
    }
    if (schema.items !== undefined) for (let i = 0; i < v.length && out.length < max; i++) check(schema.items, v[i], pointer(path, i), out, max);
  } else if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    for (const k of schema.required ?? []) if (o[k] === undefined) out.push({ path: pointer(path, k), message: 'is required' });
    const props = schema.properties ?? {};
    for (const [k, x] of Object.entries(o)) {
      if (out.length >= max) return;
      const ps = Object.prototype.hasOwnProperty.call(props, k) ? props[k] : undefined;
      if (ps !== undefined) check(ps, x, pointer(path, k), out, max);
      else if (schema.additionalProperties === false) out.push({ path: pointer(path, k), message: 'is not allowed (unknown property)' });
      else if (typeof schema.additionalProperties === 'object') check(schema.additionalProperties, x, pointer(path, k), out, max);
    }
  }
}

// ---- the admin API's schemas ----

const U32 = 0xffffffff;
const qos: Schema = { type: 'integer', enum: [0, 1, 2], description: 'QoS 0, 1 or 2' };
const str = (description: string, maxLength = 65535, minLength = 0): Schema => ({ type: 'string', description, maxLength, ...(minLength > 0 ? { minLength } : {}) });
const int = (description: string, minimum = 0, maximum = Number.MAX_SAFE_INTEGER): Schema => ({ type: 'integer', description, minimum, maximum });
const nullable = (s: Schema): Schema => ({ ...s, type: [s.type as 'string', 'null'] });
const obj = (properties: Record<string, Schema>, required: string[] = [], description?: string): Schema => ({
  type: 'object',
  ...(description !== undefined ? { description } : {}),
  properties,
  required,
  additionalProperties: false,
});
const list = (item: Schema): Schema =>
  obj({ items: { type: 'array', items: item }, next: nullable(str('cursor of the next page; null on the last page')), total: int('items matching the query, all pages') }, ['items', 'next', 'total']);

/** v5 message properties, as the API writes and reads them. */
export const messageProperties: Schema = obj({
  contentType: str('Content Type'),
  payloadFormatIndicator: { type: 'integer', enum: [0, 1], description: '1: the payload is UTF-8 text' },
  messageExpiryInterval: int('seconds', 0, U32),
  responseTopic: str('Response Topic', 65535, 1),
  correlationData: str('Correlation Data, base64', 87384),
  userProperties: { type: 'array', description: 'User Properties, [name, value] pairs', maxItems: 1000, items: { type: 'array', items: str('name or value'), minItems: 2, maxItems: 2 } },
});

export const publishBody: Schema = obj(
  {
    topic: str('topic name (no wildcards)', 65535, 1),
    payload: str('UTF-8 text payload', 1 << 20),
    payloadBase64: str('binary payload, base64', Math.ceil((1 << 20) / 3) * 4),
    qos,
    retain: { type: 'boolean' },
    properties: messageProperties,
  },
  ['topic'],
  'at most one of payload and payloadBase64; neither: an empty payload',
);

export const SCHEMAS = {
  kickBody: obj({ reason: str('reason string sent in the DISCONNECT (v5)', 256) }),
  kickManyBody: obj({ username: str('every client with this user name', 65535, 1), clientId: str('this client id', 65535, 1) }, [], 'exactly one of username and clientId'),
  subscriptionBody: obj(
    {
      filter: str('topic filter ($share/{group}/... included)', 65535, 1),
      qos,
      noLocal: { type: 'boolean' },
      retainAsPublished: { type: 'boolean' },
      retainHandling: { type: 'integer', enum: [0, 1, 2], description: '0: send retained messages, 1: only if new, 2: do not' },
    },
    ['filter'],
  ),
  retainedDeleteBody: obj({ filter: str('topic filter', 65535, 1), dryRun: { type: 'boolean', default: true } }, ['filter']),
  publishBody,
  bulkBody: obj({ messages: { type: 'array', items: publishBody, minItems: 1, maxItems: 1000 } }, ['messages']),
  banBody: obj(
    {
      kind: { type: 'string', enum: ['clientId', 'username', 'address'] },
      value: str('client id, user name, or IP address / CIDR', 65535, 1),
      reason: str('shown in logs and the ban list', 1024),
      durationSeconds: int('the ban ends after this many seconds; absent: until deleted', 1, 10 * 365 * 86400),
    },
    ['kind', 'value'],
  ),
} satisfies Record<string, Schema>;

const subscriptionItem = obj(
  {
    filter: str('topic filter as subscribed'),
    qos,
    noLocal: { type: 'boolean' },
    retainAsPublished: { type: 'boolean' },
    retainHandling: { type: 'integer', enum: [0, 1, 2] },
    shareName: str('shared subscription group'),
  },
  ['filter', 'qos', 'noLocal', 'retainAsPublished', 'retainHandling'],
);

const clientItemProps: Record<string, Schema> = {
  clientId: str('client id'),
  username: nullable(str('user name')),
  connected: { type: 'boolean' },
  listener: nullable(str('listener name')),
  transport: nullable({ type: 'string', enum: ['tcp', 'tls', 'ws', 'wss', null] }),
  protocolVersion: { type: 'integer', enum: [3, 4, 5] },
  remoteAddress: nullable(str('host:port')),
  connectedAt: nullable({ type: 'string', format: 'date-time' }),
  keepAlive: nullable(int('seconds')),
  cleanStart: nullable({ type: 'boolean' }),
  sessionExpiryInterval: int('seconds', 0, U32),
  subscriptions: int('count'),
  queued: int('QoS 1/2 messages queued'),
  inflightOut: int('sent, not acknowledged'),
  inflightIn: int('received, not acknowledged'),
};
const clientItem = obj(clientItemProps, Object.keys(clientItemProps));
const clientDetail = obj(
  { ...clientItemProps, subscriptionList: { type: 'array', items: subscriptionItem }, queuedBytes: int('payload bytes queued') },
  [...Object.keys(clientItemProps), 'subscriptionList', 'queuedBytes'],
);
const sessionProps: Record<string, Schema> = {
  clientId: str('client id'),
  connected: { type: 'boolean' },
  expiryInterval: int('Session Expiry Interval, seconds', 0, U32),
  subscriptions: int('count'),
  queued: int('QoS 1/2 messages queued'),
  inflightOut: int('sent, not acknowledged'),
};
const banItem = obj(
  {
    id: str('ban id'),
    kind: { type: 'string', enum: ['clientId', 'username', 'address'] },
    value: str('what is banned'),
    reason: str('why'),
    createdAt: { type: 'string', format: 'date-time' },
    expiresAt: { type: 'string', format: 'date-time' },
  },
  ['id', 'kind', 'value', 'createdAt'],
);
const topicNode: Schema = {
  type: 'object',
  properties: {
    name: str('this level'),
    path: str('the topic up to this level'),
    retained: { type: 'boolean', description: 'a retained message is held at exactly this topic' },
    subscribers: int('subscriptions whose filter is exactly this path'),
    childCount: int('children, also those below the depth asked for'),
    children: { type: 'array', items: { $ref: '#/components/schemas/topicNode' } },
  },
  required: ['name', 'path', 'retained', 'subscribers', 'children'],
};
const errorBody = obj(
  {
    error: obj(
      {
        status: int('HTTP status', 400, 599),
        code: str('bad_request, unauthorized, not_found, payload_too_large, forbidden, unavailable, ...'),
        message: str('a human sentence'),
        details: { type: 'array', items: obj({ path: str('JSON Pointer into the body, or the query parameter'), message: str('what is wrong') }, ['path', 'message']) },
      },
      ['status', 'code', 'message'],
    ),
  },
  ['error'],
);

export const RESPONSES = {
  stats: obj(
    {
      version: str('Petrel version'),
      uptimeSeconds: int('seconds since start'),
      connections: int('connected clients'),
      sessions: obj({ online: int('connected'), offline: int('kept for a client that is not connected') }, ['online', 'offline']),
      subscriptions: obj({ normal: int('non-shared'), shared: int('$share/...') }, ['normal', 'shared']),
      retained: obj({ count: int('messages'), bytes: int('payload bytes') }, ['count', 'bytes']),
      messages: obj({ received: int('PUBLISH from clients'), sent: int('PUBLISH to clients'), dropped: int('not delivered: slow or offline QoS 0, full queues, too large, expired') }, ['received', 'sent', 'dropped']),
      queued: obj({ messages: int('QoS 1/2 queued'), bytes: int('their payload bytes') }, ['messages', 'bytes']),
      memory: obj({ rss: int('bytes'), heapUsed: int('bytes') }, ['rss', 'heapUsed']),
    },
    ['version', 'uptimeSeconds', 'connections', 'sessions', 'subscriptions', 'retained', 'messages', 'queued', 'memory'],
  ),
  history: obj(
    {
      intervalSeconds: { type: 'integer', enum: [1] },
      points: {
        type: 'array',
        items: obj(
          { t: int('unix ms'), connections: int('connected'), messagesIn: int('per second'), messagesOut: int('per second'), bytesIn: int('per second'), bytesOut: int('per second'), dropped: int('per second') },
          ['t', 'connections', 'messagesIn', 'messagesOut', 'bytesIn', 'bytesOut', 'dropped'],
        ),
      },
    },
    ['intervalSeconds', 'points'],
  ),
  clientList: list(clientItem),
  client: clientDetail,
  kicked: obj({ kicked: int('clients disconnected') }, ['kicked']),
  sessionList: list(obj(sessionProps, Object.keys(sessionProps))),
  session: obj({ ...sessionProps, subscriptionList: { type: 'array', items: subscriptionItem } }, [...Object.keys(sessionProps), 'subscriptionList']),
  discarded: obj({ discarded: { type: 'boolean', enum: [true] } }, ['discarded']),
  subscriptionList: list(obj({ clientId: str('client id'), filter: str('topic filter'), qos, shareName: str('group') }, ['clientId', 'filter', 'qos'])),
  subscribed: obj({ filter: str('topic filter'), qos }, ['filter', 'qos']),
  removed: obj({ removed: { type: 'boolean', enum: [true] } }, ['removed']),
  retainedList: list(obj({ topic: str('topic'), qos, bytes: int('payload bytes') }, ['topic', 'qos', 'bytes'])),
  retainedMessage: obj({ topic: str('topic'), qos, bytes: int('payload bytes'), payload: str('base64', Number.MAX_SAFE_INTEGER), properties: messageProperties }, ['topic', 'qos', 'bytes', 'payload', 'properties']),
  deleted: obj({ deleted: int('messages deleted') }, ['deleted']),
  retainedDeleted: obj({ dryRun: { type: 'boolean' }, count: int('topics matched (deleted unless dryRun)'), topics: { type: 'array', items: str('topic'), maxItems: 100 } }, ['dryRun', 'count', 'topics']),
  published: obj({ matched: int('subscriptions the message went to') }, ['matched']),
  bulkPublished: obj(
    { results: { type: 'array', items: obj({ status: int('HTTP status of this message', 200, 599), matched: int('subscriptions'), error: errorBody.properties!.error! }, ['status']) } },
    ['results'],
  ),
  banList: obj({ items: { type: 'array', items: banItem } }, ['items']),
  ban: banItem,
  banDeleted: obj({ deleted: { type: 'boolean', enum: [true] } }, ['deleted']),
  listeners: obj(
    {
      items: {
        type: 'array',
        items: obj(
          { protocol: { type: 'string', enum: ['mqtt', 'mqtts', 'ws', 'wss', 'http'] }, name: str('listener name'), host: str('bound address'), port: int('port', 0, 65535), connections: int('open connections') },
          ['protocol', 'host', 'port', 'connections'],
        ),
      },
    },
    ['items'],
  ),
  topicNode,
  error: errorBody,
} satisfies Record<string, Schema>;
