// CONNECT: client identifier rules, v5 connection properties, authentication
// (a hook or an enhanced AUTH exchange), then session takeover/creation and
// CONNACK (section 3.1 and 3.2 of MQTT 5.0, 3.1/3.2 of 3.1.1).

import { randomBytes } from 'node:crypto';
import type { ConnectPacket, Properties } from '../protocol/packets.js';
import { CONNACK_REFUSAL_CODES, ReasonCode } from '../protocol/reason-codes.js';
import { isSysTopic } from '../protocol/topic.js';
import { isUtf8 } from '../protocol/utf8.js';
import type { Client } from './client.js';
import { ClientState } from './client-state.js';
import { runAuthStep } from './handle-auth.js';
import type { AuthenticateResult, AuthorizePublishResult, BrokerMessage } from './hooks.js';
import { forwardableProperties } from './message.js';
import { addressPart } from '../auth/login-guard.js';

const NO_EXPIRY = 0xffffffff;

/** What CONNECT asked for, kept while authentication runs. */
export interface PendingConnect {
  packet: ConnectPacket;
  clientId: string;
  assigned: boolean;
  sessionExpiry: number;
  /** Session expiry the client asked for, when the broker capped it (sent back in CONNACK). */
  cappedExpiry: boolean;
  serverKeepAlive: number | undefined;
  /** Authentication Data to send in CONNACK (enhanced auth). */
  authData: Buffer | undefined;
  /** Called once the enhanced-authentication method accepted (finishConnect; handle-auth.ts needs no import of this file). */
  authenticated: (client: Client, pending: PendingConnect) => void;
  /** Cluster mode: the client id was claimed cluster-wide. */
  claimed?: boolean;
}

export function handleConnect(client: Client, p: ConnectPacket): void {
  const broker = client.broker;
  const limits = broker.limits;
  client.version = p.protocolVersion;
  client.cleanStart = p.clean;
  // A certificate identity (the listener's identityAsUsername) is the user name, whatever the CONNECT says.
  const certUser = client.conn.meta.certificateUsername;
  client.username = certUser ?? p.username;
  client.state = ClientState.Authenticating;
  // Known before anything is sent, a refusal included [MQTT-3.1.2-24].
  if (p.protocolVersion === 5 && p.properties?.maximumPacketSize !== undefined) client.maxPacketSize = p.properties.maximumPacketSize;
  if (broker.memory.high) {
    // Global backpressure (limits.memoryLimit): 0x89 Server busy says "try again later", which is what the
    // client should do; 0x97 Quota exceeded would blame a quota of its own. 3.1/3.1.1: 3 Server unavailable.
    broker.stats.connectsRefusedMemory++;
    return client.refuseConnect(ReasonCode.ServerBusy, 'server busy: memory above limits.memoryLimit, try again later');
  }
  const guard = broker.auth.guard;
  if (guard !== null && guard.banned(remoteIp(client))) {
    // Before anything costs a hash: 0x8A Banned (3.1/3.1.1: 5 Not authorized).
    broker.stats.authBanned++;
    return client.refuseConnect(ReasonCode.Banned, 'too many failed logins from this address; try again later');
  }

  // ---- client identifier [MQTT-3.1.3-*] ----
  let clientId = p.clientId;
  let assigned = false;
  if (clientId === '') {
    if (p.protocolVersion === 5) {
      // The server assigns one and returns it in CONNACK [MQTT-3.1.3-6/7].
      assigned = true;
    } else if (p.protocolVersion === 4) {
      // 3.1.1: zero-length only with clean session 1 [MQTT-3.1.3-7/8].
      if (!p.clean) return client.refuseConnect(ReasonCode.ClientIdentifierNotValid, 'empty client id needs clean session 1 [MQTT-3.1.3-8]');
      if (!limits.allowZeroLengthClientId) return client.refuseConnect(ReasonCode.ClientIdentifierNotValid, 'empty client id not allowed');
      assigned = true;
    } else {
      // 3.1: 1 to 23 characters.
      return client.refuseConnect(ReasonCode.ClientIdentifierNotValid, 'MQTT 3.1 requires a client id');
    }
    if (assigned) clientId = 'petrel-' + randomBytes(9).toString('base64url');
  }
  if (clientId.length > limits.maxClientIdLength) {
    return client.refuseConnect(ReasonCode.ClientIdentifierNotValid, `client id longer than ${limits.maxClientIdLength}`);
  }
  if (p.protocolVersion === 3 && clientId.length > 23 && limits.maxClientIdLength <= 23) {
    return client.refuseConnect(ReasonCode.ClientIdentifierNotValid, 'MQTT 3.1 client id longer than 23');
  }
  client.clientId = clientId;
  const banned = broker.banned;
  if (banned !== null) {
    // The admin API's ban list: 0x8A Banned (3.1/3.1.1: return code 5 Not authorized) [MQTT-3.2.2-8].
    const why = banned(clientId, client.username, remoteIp(client));
    if (why !== null) return client.refuseConnect(ReasonCode.Banned, why);
  }

  // ---- session expiry ----
  const props: Properties | undefined = p.properties;
  let sessionExpiry: number;
  if (p.protocolVersion === 5) client.connectExpiry = sessionExpiry = props?.sessionExpiryInterval ?? 0;
  else sessionExpiry = p.clean ? 0 : limits.persistentSessionExpiry;
  let cappedExpiry = false;
  if (sessionExpiry > limits.maxSessionExpiry) {
    sessionExpiry = limits.maxSessionExpiry;
    cappedExpiry = p.protocolVersion === 5;
  }

  // ---- v5 connection properties ----
  if (p.protocolVersion === 5 && props !== undefined) {
    if (props.receiveMaximum !== undefined) client.window = Math.min(props.receiveMaximum, limits.maxInflight);
    if (props.topicAliasMaximum !== undefined) client.topicAliasMaximum = props.topicAliasMaximum;
    if (props.requestProblemInformation === 0) client.problemInfo = false;
  }

  // ---- keep alive [MQTT-3.1.2-22..24]; v5 Server Keep Alive [MQTT-3.2.2-21] ----
  let keepAlive = p.keepAlive;
  let serverKeepAlive: number | undefined;
  const maxKeepAlive = limits.maxKeepAlive;
  if (maxKeepAlive > 0 && (keepAlive === 0 || keepAlive > maxKeepAlive)) {
    if (p.protocolVersion === 5) {
      // The client must use the Server Keep Alive instead of its own [MQTT-3.2.2-21].
      keepAlive = serverKeepAlive = maxKeepAlive;
    } else {
      // 3.1/3.1.1 have no way to tell the client another keep alive: refused with return code 2 (Identifier
      // Rejected), as Mosquitto does, rather than accepted and then closed earlier than the client expects.
      return client.refuseConnect(ReasonCode.ClientIdentifierNotValid, `keep alive ${keepAlive} not within maxKeepAlive ${maxKeepAlive}`);
    }
  }
  client.keepAliveMs = keepAlive * 1500;

  // ---- will ----
  if (p.will) {
    if (p.will.qos > limits.maxQoS) {
      // [MQTT-3.2.2-12]
      return client.refuseConnect(ReasonCode.QoSNotSupported, `will QoS ${p.will.qos} above maximum ${limits.maxQoS}`);
    }
    if (p.will.retain && !limits.retainAvailable) {
      // [MQTT-3.2.2-13]
      return client.refuseConnect(ReasonCode.RetainNotSupported, 'retained wills are not supported');
    }
    const deep = broker.tooDeep(p.will.topic);
    if (deep !== null) {
      // v5: CONNACK 0x90 Topic Name invalid; 3.1/3.1.1: return code 5 (see v5ConnackToV3).
      return client.refuseConnect(ReasonCode.TopicNameInvalid, `will topic has ${deep}`);
    }
    if (p.will.properties?.payloadFormatIndicator === 1 && !isUtf8(p.will.payload)) {
      return client.refuseConnect(ReasonCode.PayloadFormatInvalid, 'will payload is not UTF-8 (§3.1.3.2.3)');
    }
    client.will = { ...p.will, payload: Buffer.from(p.will.payload) };
  }

  const pending: PendingConnect = { packet: p, clientId, assigned, sessionExpiry, cappedExpiry, serverKeepAlive, authData: undefined, authenticated: finishConnect };

  // ---- authentication: the enhanced method (if named), then the authenticate hook, then the will ----
  const method = props?.authenticationMethod;
  if (method !== undefined) {
    // Enhanced authentication (MQTT 5.0 section 4.12); finishConnect follows once the method accepts.
    if (!Object.prototype.hasOwnProperty.call(broker.authMethods, method)) {
      return client.refuseConnect(ReasonCode.BadAuthenticationMethod, `unknown authentication method ${method}`);
    }
    client.authMethod = method;
    runAuthStep(client, props?.authenticationData, false, pending);
    return;
  }
  finishConnect(client, pending);
}

/**
 * The enhanced authentication method, if the CONNECT named one, accepted the client: now the authenticate
 * hook (told the method's name), then the will's authorization, then the session and CONNACK. Each check
 * must accept; each may be asynchronous.
 */
export function finishConnect(client: Client, pending: PendingConnect): void {
  if (client.state === ClientState.Closed) return;
  const broker = client.broker;
  const hook = broker.hooks.authenticate;
  if (hook === undefined) return authenticateDefault(client, pending);
  const p = pending.packet;
  runConnectHook(
    client,
    'authenticate hook',
    'authentication failed',
    () =>
      hook({
        clientId: pending.clientId,
        username: client.username,
        password: p.password,
        protocolVersion: p.protocolVersion,
        remoteAddress: client.conn.remoteAddress,
        userProperties: p.properties?.userProperties,
        authenticationMethod: client.authMethod,
      }),
    (r) => applyAuthResult(client, pending, r),
  );
}

/**
 * Run a hook that decides a CONNECT, synchronous or not: its answer goes to `decide`; a throw or a rejection
 * refuses the connection (0x80) and is logged.
 */
function runConnectHook<R>(client: Client, what: string, refusal: string, call: () => R | Promise<R>, decide: (r: R) => void, tag = ''): void {
  const logger = client.broker.logger;
  let result: R | Promise<R>;
  try {
    result = call();
  } catch (err) {
    logger.error(`${what} threw${tag}`, { event: 'hook.failed', hook: what, err });
    return client.refuseConnect(ReasonCode.UnspecifiedError, refusal);
  }
  if (result instanceof Promise) {
    client.wait(result, decide, (err: unknown) => {
      logger.error(`${what} rejected${tag}`, { event: 'hook.failed', hook: what, err });
      client.refuseConnect(ReasonCode.UnspecifiedError, refusal);
    });
    return;
  }
  decide(result);
}

function applyAuthResult(client: Client, pending: PendingConnect, r: AuthenticateResult): void {
  if (client.state === ClientState.Closed) return;
  if (r === undefined) return authenticateDefault(client, pending);
  if (r === true) return authorizeWill(client, pending);
  if (r === false) return loginFailed(client, ReasonCode.BadUserNameOrPassword, 'bad user name or password');
  const code = r.reasonCode >= 0x80 ? r.reasonCode : ReasonCode.NotAuthorized;
  loginFailed(client, code, r.reasonString ?? 'not authorized');
}

/** The client's IP address: the transport's (PROXY-aware) one, else the address part of remoteAddress. */
function remoteIp(client: Client): string {
  return client.conn.meta.remoteIp || addressPart(client.conn.remoteAddress);
}

/** A failed login: counted, told to the login guard (which may ban the address), refused. */
function loginFailed(client: Client, code: number, reason: string): void {
  const broker = client.broker;
  broker.stats.authFailures++;
  // The user name and the address, never the password.
  if (broker.logger.infoEnabled !== false) broker.logger.info('login failed', {
    event: 'auth.failed',
    clientId: client.clientId,
    username: client.username,
    remoteAddress: client.conn.remoteAddress,
    reasonCode: code,
    detail: reason,
  });
  const guard = broker.auth.guard;
  if (guard !== null) {
    const ip = remoteIp(client);
    if (guard.failed(ip)) {
      broker.stats.authBans++;
      // The address and the user name, never the password.
      broker.logger.warn('address banned after failed logins', {
        event: 'auth.banned',
        address: ip,
        failures: guard.options.maxFailures,
        windowSeconds: guard.options.windowSeconds,
        banSeconds: guard.options.banSeconds,
        username: client.username,
      });
    }
  }
  client.refuseConnect(code, reason);
}

/**
 * No hook decided: an accepted enhanced method, then the certificate identity, then the password file, then
 * the anonymous rule (the order in hooks.ts).
 */
function authenticateDefault(client: Client, pending: PendingConnect): void {
  const broker = client.broker;
  if (client.authMethod !== undefined) return authorizeWill(client, pending);
  if (client.conn.meta.certificateUsername !== undefined) return authorizeWill(client, pending);
  const auth = broker.auth;
  const username = client.username;
  const passwords = auth.passwords;
  if (passwords !== null && username !== undefined) {
    const entry = passwords.get(username);
    const r = auth.verifier!.verify(entry, pending.packet.password, remoteIp(client));
    const decide = (v: 'ok' | 'bad' | 'busy'): void => {
      if (client.state === ClientState.Closed) return;
      if (v === 'ok') {
        auth.byPassword.set(client, entry!.text);
        return authorizeWill(client, pending);
      }
      if (v === 'busy') {
        broker.stats.authBusy++;
        return client.refuseConnect(ReasonCode.ServerBusy, 'server busy: too many logins waiting, try again later');
      }
      loginFailed(client, ReasonCode.BadUserNameOrPassword, 'bad user name or password');
    };
    if (typeof r === 'string') return decide(r);
    client.wait(r, decide, (err: unknown) => {
      broker.logger.error('password verification failed', { event: 'auth.error', err });
      client.refuseConnect(ReasonCode.UnspecifiedError, 'authentication failed');
    });
    return;
  }
  if (username === undefined && !auth.options.allowAnonymous) {
    broker.stats.authAnonymousRefused++;
    return loginFailed(client, ReasonCode.NotAuthorized, 'anonymous clients are not allowed');
  }
  authorizeWill(client, pending);
}

/**
 * The will is authorized at CONNECT, as the client it belongs to (its ClientInfo), under the rules of its
 * PUBLISH: a refused will refuses the connection (0x87; 3.1.1 return code 5), so a will that fires later
 * was allowed when it was set.
 */
function authorizeWill(client: Client, pending: PendingConnect): void {
  const will = client.will;
  if (will === undefined) return openConnection(client, pending);
  const broker = client.broker;
  if (isSysTopic(will.topic)) {
    // '$SYS' is the broker's own namespace, for wills too (§4.7.2).
    return client.refuseConnect(ReasonCode.NotAuthorized, 'will topics under $SYS are reserved for the broker');
  }
  const hook = broker.hooks.authorizePublish;
  if (hook === undefined) return willDecided(client, pending, undefined);
  const msg: BrokerMessage = {
    topic: will.topic,
    payload: will.payload,
    qos: will.qos,
    retain: will.retain,
    properties: willProperties(will.properties),
  };
  runConnectHook(
    client,
    'authorizePublish hook',
    'will authorization failed',
    () => hook(client.info, msg),
    (r) => willDecided(client, pending, r),
    ' (will)',
  );
}

function willDecided(client: Client, pending: PendingConnect, r: AuthorizePublishResult): void {
  if (client.state === ClientState.Closed) return;
  if (r === undefined) {
    // No hook, or it deferred: the ACL file, as for a PUBLISH of the client.
    const acl = client.broker.acl;
    r = acl === null || acl.canWrite(client.info, client.will!.topic);
  }
  if (r === true) return openConnection(client, pending);
  client.broker.stats.publishDenied++;
  // A hook's own reason code if CONNACK can carry it, else Not Authorized.
  const code = typeof r === 'number' && CONNACK_REFUSALS.has(r) ? r : ReasonCode.NotAuthorized;
  client.refuseConnect(code, 'will not authorized');
}

const CONNACK_REFUSALS = CONNACK_REFUSAL_CODES;

/** The will's properties as its PUBLISH will carry them (with its Message Expiry Interval). */
function willProperties(p: Properties | undefined): Properties | undefined {
  const out = forwardableProperties(p);
  const expiry = p?.messageExpiryInterval;
  return expiry === undefined ? out : { ...out, messageExpiryInterval: expiry };
}

/** Every check passed: take over or create the session, send CONNACK, resume delivery. */
function openConnection(client: Client, pending: PendingConnect): void {
  if (client.state === ClientState.Closed) return;
  const broker = client.broker;
  const limits = broker.limits;
  const p = pending.packet;
  const { clientId, sessionExpiry } = pending;
  if (broker.closing) return client.refuseConnect(ReasonCode.ServerUnavailable, 'server shutting down');
  const cluster = broker.cluster;
  if (cluster !== null && !pending.claimed) {
    // Cluster mode: the client id is claimed cluster-wide first (a takeover on another node, the session
    // loaded from Redis), then the session opens here as on a single node.
    pending.claimed = true;
    client.wait(cluster.claim(clientId, p.clean), () => openConnection(client, pending), (err: unknown) => {
      broker.logger.warn('cluster claim failed', { event: 'cluster.claim_failed', clientId, err });
      client.refuseConnect(ReasonCode.ServerUnavailable, 'server unavailable: the session could not be claimed');
    });
    return;
  }

  const { session, sessionPresent } = broker.openSession(client, clientId, p.clean, p.protocolVersion, sessionExpiry);
  client.state = ClientState.Connected;
  client.session = session;
  // A resumed session's subscriptions are held to the rights of whoever connected now.
  if (broker.acl !== null) broker.recheckSubscriptions(session, client.info);
  broker.keepAliveStarts(client);
  broker.stats.connects++;
  broker.obs.connectDecided(client, 0);

  let connack: Buffer;
  if (p.protocolVersion === 5) {
    const props: Properties = {};
    if (pending.cappedExpiry) props.sessionExpiryInterval = sessionExpiry;
    if (limits.receiveMaximum < 65535) props.receiveMaximum = limits.receiveMaximum;
    if (limits.maxQoS < 2) props.maximumQoS = limits.maxQoS;
    if (!limits.retainAvailable) props.retainAvailable = 0;
    if (limits.maxPacketSize < 268_435_460) props.maximumPacketSize = limits.maxPacketSize;
    if (pending.assigned) props.assignedClientIdentifier = clientId;
    if (limits.topicAliasMaximum > 0) props.topicAliasMaximum = limits.topicAliasMaximum;
    if (!limits.wildcardSubscriptions) props.wildcardSubscriptionAvailable = 0;
    if (!limits.subscriptionIdentifiers) props.subscriptionIdentifiersAvailable = 0;
    if (!limits.sharedSubscriptions) props.sharedSubscriptionAvailable = 0;
    if (pending.serverKeepAlive !== undefined) props.serverKeepAlive = pending.serverKeepAlive;
    if (p.properties?.requestResponseInformation === 1 && broker.responseInformation !== undefined) {
      props.responseInformation = broker.responseInformation;
    }
    if (client.authMethod !== undefined) {
      props.authenticationMethod = client.authMethod;
      if (pending.authData !== undefined) props.authenticationData = pending.authData;
    }
    connack = client.encode({ type: 2, sessionPresent, reasonCode: ReasonCode.Success, properties: props });
  } else {
    connack = client.encode({ type: 2, sessionPresent, reasonCode: 0 });
  }
  if (connack.length === 0) {
    // Too large for the client's Maximum Packet Size even without optional properties: not sent [MQTT-3.1.2-24],
    // and a connection that cannot be told it was accepted is closed.
    client.closeNow(ReasonCode.PacketTooLarge, 'CONNACK larger than the client Maximum Packet Size');
    return;
  }
  // A persistent session's record must be stored before the client is told it exists.
  broker.committer.send(client, connack);
  broker.committer.after(() => {
    if (client.state !== ClientState.Connected || client.session !== session) return;
    try {
      session.attach(client);
      broker.clientConnected(client, p.clean, sessionPresent);
    } catch (err) {
      client.internalError(err);
    }
  });
}

export { NO_EXPIRY };

