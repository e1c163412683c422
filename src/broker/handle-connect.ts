// CONNECT: client identifier rules, v5 connection properties, authentication
// (a hook or an enhanced AUTH exchange), then session takeover/creation and
// CONNACK (section 3.1 and 3.2 of MQTT 5.0, 3.1/3.2 of 3.1.1).

import { randomBytes } from 'node:crypto';
import type { ConnectPacket, Properties } from '../protocol/packets.js';
import { ReasonCode } from '../protocol/reason-codes.js';
import { Client, ClientState } from './client.js';
import { runAuthStep } from './handle-auth.js';
import type { AuthenticateResult } from './hooks.js';

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
}

export function handleConnect(client: Client, p: ConnectPacket): void {
  const broker = client.broker;
  const limits = broker.limits;
  client.version = p.protocolVersion;
  client.username = p.username;
  client.state = ClientState.Authenticating;
  // Known before anything is sent, a refusal included [MQTT-3.1.2-24].
  if (p.protocolVersion === 5 && p.properties?.maximumPacketSize !== undefined) client.maxPacketSize = p.properties.maximumPacketSize;

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

  // ---- session expiry ----
  const props: Properties | undefined = p.properties;
  let sessionExpiry: number;
  if (p.protocolVersion === 5) sessionExpiry = props?.sessionExpiryInterval ?? 0;
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
  if (limits.maxKeepAlive > 0 && p.protocolVersion === 5 && (keepAlive === 0 || keepAlive > limits.maxKeepAlive)) {
    keepAlive = serverKeepAlive = limits.maxKeepAlive;
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

  const pending: PendingConnect = { packet: p, clientId, assigned, sessionExpiry, cappedExpiry, serverKeepAlive, authData: undefined };

  // ---- authentication ----
  const method = props?.authenticationMethod;
  if (method !== undefined) {
    // Enhanced authentication (MQTT 5.0 section 4.12).
    if (!Object.prototype.hasOwnProperty.call(broker.authMethods, method)) {
      return client.refuseConnect(ReasonCode.BadAuthenticationMethod, `unknown authentication method ${method}`);
    }
    client.authMethod = method;
    runAuthStep(client, props?.authenticationData, false, pending);
    return;
  }
  const hook = broker.hooks.authenticate;
  if (hook === undefined) {
    finishConnect(client, pending);
    return;
  }
  let result: AuthenticateResult | Promise<AuthenticateResult>;
  try {
    result = hook({
      clientId,
      username: p.username,
      password: p.password,
      protocolVersion: p.protocolVersion,
      remoteAddress: client.conn.remoteAddress,
      userProperties: props?.userProperties,
    });
  } catch (err) {
    broker.logger.error('authenticate hook threw', { err });
    return client.refuseConnect(ReasonCode.UnspecifiedError, 'authentication failed');
  }
  if (result instanceof Promise) {
    client.hold();
    result.then(
      (r) => {
        applyAuthResult(client, pending, r);
        client.release();
      },
      (err: unknown) => {
        broker.logger.error('authenticate hook rejected', { err });
        client.refuseConnect(ReasonCode.UnspecifiedError, 'authentication failed');
        client.release();
      },
    );
    return;
  }
  applyAuthResult(client, pending, result);
}

function applyAuthResult(client: Client, pending: PendingConnect, r: AuthenticateResult): void {
  if (client.state === ClientState.Closed) return;
  if (r === true) return finishConnect(client, pending);
  if (r === false) return client.refuseConnect(ReasonCode.BadUserNameOrPassword, 'bad user name or password');
  const code = r.reasonCode >= 0x80 ? r.reasonCode : ReasonCode.NotAuthorized;
  client.refuseConnect(code, r.reasonString ?? 'not authorized');
}

/** Authentication passed: take over or create the session, send CONNACK, resume delivery. */
export function finishConnect(client: Client, pending: PendingConnect): void {
  if (client.state === ClientState.Closed) return;
  const broker = client.broker;
  const limits = broker.limits;
  const p = pending.packet;
  const { clientId, sessionExpiry } = pending;
  if (broker.closing) return client.refuseConnect(ReasonCode.ServerUnavailable, 'server shutting down');

  const { session, sessionPresent } = broker.openSession(client, clientId, p.clean, p.protocolVersion, sessionExpiry);
  client.state = ClientState.Connected;
  client.session = session;
  broker.stats.connects++;

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
    session.attach(client);
    broker.clientConnected(client);
  });
}

export { NO_EXPIRY };

function isUtf8(b: Buffer): boolean {
  // TextDecoder with fatal: true rejects ill-formed sequences and surrogates.
  try {
    utf8.decode(b);
    return true;
  } catch {
    return false;
  }
}
const utf8 = new TextDecoder('utf-8', { fatal: true });
export { isUtf8 };
