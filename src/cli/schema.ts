// The JSON Schema (draft 2020-12) of the `petrel` config file, made from the options table of config.ts, so that
// an editor completes and checks petrel.json / petrel.yaml / petrel.toml. `petrel --print-schema` prints it;
// schema/petrel.schema.json is its committed copy (npm run schema writes it; test/cli/schema.test.ts keeps them equal).
// It states what the file accepts at its strictest (numbers as numbers, booleans as booleans): the loader also
// takes "1883" and "yes" there, as in the PETREL_* variables.

import { INT_LIMITS } from '../broker/options.js';
import { LOG_FORMATS, LOG_LEVELS } from '../broker/logger.js';
import { formatDefault, helpSentence, settings, type Setting } from './config.js';

type Schema = Record<string, unknown>;

/** The schema of one setting's value. */
function valueSchema(st: Readonly<Setting>): Schema {
  const limit = st.key.startsWith('limits.') ? INT_LIMITS[st.key.slice('limits.'.length)] : undefined;
  const min = limit?.[0] ?? st.min;
  const max = limit?.[1] ?? st.max;
  let out: Schema;
  switch (st.kind) {
    case 'int':
      out = { type: 'integer' };
      if (min !== undefined) out.minimum = min;
      if (max !== undefined) out.maximum = max;
      break;
    case 'port':
      out = { type: 'integer', minimum: 0, maximum: 65535 };
      break;
    case 'number':
      out = { type: 'number', minimum: min ?? 0 };
      if (max !== undefined) out.maximum = max;
      break;
    case 'bool':
      out = { type: 'boolean' };
      break;
    case 'string':
    case 'path':
      out = { type: 'string', minLength: 1 };
      break;
    case 'wspath':
      out = { type: 'string', pattern: '^/[^\\s?#]*$' };
      break;
    case 'level':
      out = { enum: [...LOG_LEVELS] };
      break;
    case 'durability':
      out = { enum: ['process', 'power'] };
      break;
    case 'logformat':
      out = { enum: [...LOG_FORMATS] };
      break;
    default:
      // A kind added to config.ts without a case here (test/cli/schema.test.ts names it).
      out = { type: 'string', minLength: 1 };
  }
  // The help sentence, less its default (the schema says that in "default"), and where else it is set.
  const flag = st.flag === undefined ? '' : ` Flag ${st.flag}${st.env ? `, variable ${st.env}` : ''}.`;
  out = { description: helpSentence({ ...st, dflt: undefined, value: undefined }) + flag, ...out };
  const dflt = formatDefault(st);
  if (st.value !== undefined) out.default = st.value;
  if (dflt !== undefined) out.description += ` Default: ${dflt}.`;
  if (st.deprecated) out.deprecated = true;
  return out;
}

const str = (description: string): Schema => ({ description, type: 'string', minLength: 1 });
const bool = (description: string): Schema => ({ description, type: 'boolean' });

/** One entry of `listeners` (config.ts parseListener, transport/listener-options.ts). */
export function listenerSchema(): Schema {
  const properties: Record<string, Schema> = {
    transport: { description: "tcp (default), tls (MQTT over TLS), ws (MQTT over WebSocket) or wss (WebSocket over TLS).", enum: ['tcp', 'tls', 'ws', 'wss'], default: 'tcp' },
    port: { description: 'Port; 0 picks a free one. Default 1883 (tcp), 8883 (tls), 8080 (ws), 8081 (wss).', type: 'integer', minimum: 0, maximum: 65535 },
    host: str("Address to bind. Default: all addresses ('::' with dual stack, else '0.0.0.0')."),
    name: str('Name in logs and metrics. Default: transport:port.'),
    cert: str('tls, wss: PEM certificate chain file (required), relative to the config file.'),
    key: str('tls, wss: PEM private key file (required), relative to the config file.'),
    passphrase: { description: 'tls, wss: passphrase of the key, if it is encrypted.', type: 'string' },
    ca: str('tls, wss: PEM CA bundle that client certificates are checked against.'),
    requireCertificate: { ...bool('tls, wss: refuse clients without a certificate signed by ca (mutual TLS); needs ca.'), default: false },
    crl: str('tls, wss: PEM certificate revocation list of ca; needs requireCertificate.'),
    identityAsUsername: {
      description: "tls, wss: the client certificate's CN ('cn') or RFC 2253 subject ('subject') as the user name; needs requireCertificate.",
      enum: ['none', 'cn', 'subject'],
      default: 'none',
    },
    minVersion: { description: 'tls, wss: lowest TLS version accepted.', enum: ['TLSv1.2', 'TLSv1.3'], default: 'TLSv1.2' },
    ciphers: str('tls, wss: OpenSSL cipher list (TLS 1.2 and below). Default: Node.js\'s.'),
    sni: {
      description: 'tls, wss: certificates by server name (SNI).',
      type: 'object',
      additionalProperties: {
        type: 'object',
        properties: { cert: str('PEM certificate chain file.'), key: str('PEM private key file.'), passphrase: { type: 'string', description: 'Passphrase of the key.' } },
        required: ['cert', 'key'],
        additionalProperties: false,
      },
    },
    path: { description: 'ws, wss: HTTP path of the WebSocket endpoint.', type: 'string', pattern: '^/[^\\s?#]*$', default: '/mqtt' },
    allowedOrigins: { description: "ws, wss: Origin header values allowed ('https://app.example'). Default: any.", type: 'array', items: { type: 'string', minLength: 1 } },
    perMessageDeflate: { ...bool('ws, wss: negotiate permessage-deflate.'), default: false },
    proxyProtocol: { ...bool('Expect a PROXY protocol v1 or v2 header first on every connection.'), default: false },
    trustedProxies: {
      description: "Addresses or CIDRs allowed to send a PROXY header ('10.0.0.0/8', '::1/128'); needs proxyProtocol. Default: loopback.",
      type: 'array',
      items: { type: 'string', minLength: 1 },
    },
    maxConnections: { description: 'Connections open at once on this listener; 0 means no limit.', type: 'integer', minimum: 0, default: 0 },
    connectionRate: { description: 'New connections per second on this listener; 0 means no limit.', type: 'number', minimum: 0, default: 0 },
  };
  const tlsOnly = ['cert', 'key', 'passphrase', 'ca', 'requireCertificate', 'crl', 'identityAsUsername', 'minVersion', 'ciphers', 'sni'];
  const wsOnly = ['path', 'allowedOrigins', 'perMessageDeflate'];
  const transportIs = (t: string[]): Schema => ({ properties: { transport: { enum: t } }, required: ['transport'] });
  const none = (keys: string[]): Schema => ({ not: { anyOf: keys.map((k) => ({ required: [k] })) } });
  return {
    type: 'object',
    properties,
    additionalProperties: false,
    allOf: [
      { if: transportIs(['tls', 'wss']), then: { required: ['cert', 'key'] }, else: none(tlsOnly) },
      { if: transportIs(['ws', 'wss']), else: none(wsOnly) },
    ],
  };
}

/** The config file's schema. */
export function configSchema(): Schema {
  const top: Record<string, Schema> = {
    $schema: { description: 'The JSON Schema of this file (for editors).', type: 'string' },
  };
  const sections = new Map<string, Record<string, Schema>>();
  for (const st of settings()) {
    const [first, rest] = st.key.split(/\.(.*)/s) as [string, string | undefined];
    if (rest === undefined) {
      top[first] = valueSchema(st);
      continue;
    }
    if (!sections.has(first)) sections.set(first, {});
    sections.get(first)![rest] = valueSchema(st);
  }
  sections.get('auth')!.loginGuard = {
    description: 'After maxFailures failed logins from one address within windowSeconds, refuse its CONNECTs for banSeconds. Default: on with a password file.',
    oneOf: [
      { type: 'boolean' },
      {
        type: 'object',
        properties: {
          maxFailures: { description: 'Failed logins that ban an address.', type: 'integer', minimum: 1, default: 5 },
          windowSeconds: { description: 'Seconds within which they count.', type: 'number', exclusiveMinimum: 0, default: 60 },
          banSeconds: { description: 'Seconds an address stays banned.', type: 'number', exclusiveMinimum: 0, default: 300 },
          maxTracked: { description: 'Addresses remembered at most.', type: 'integer', minimum: 1, default: 100000 },
        },
        additionalProperties: false,
      },
    ],
  };
  const titles: Record<string, string> = {
    limits: 'Limits and the MQTT features announced to clients.',
    auth: 'Password and ACL files, anonymous access, the failed-login guard.',
    cluster: 'Cluster mode: one node of several sharing one Redis.',
  };
  for (const [name, properties] of sections) {
    top[name] = { description: titles[name] ?? `The ${name} settings.`, type: 'object', properties, additionalProperties: false };
  }
  top.listeners = {
    description: 'Listeners of any transport, each with its own settings; replaces port, tlsPort, wsPort and wssPort of the same or lower precedence.',
    type: 'array',
    items: listenerSchema(),
  };
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'Petrel configuration file',
    description: 'petrel --config FILE: JSON, YAML (.yaml, .yml) or TOML (.toml). Relative paths are read from the file\'s directory.',
    type: 'object',
    properties: top,
    additionalProperties: false,
  };
}

/** The schema as it is published: two-space JSON with a final newline. */
export function configSchemaText(): string {
  return JSON.stringify(configSchema(), null, 2) + '\n';
}
