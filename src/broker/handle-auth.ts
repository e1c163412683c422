// AUTH: enhanced authentication and re-authentication (MQTT 5.0 section 4.12).
// The method itself is an embedder's function (options.authMethods), called
// once per step; the broker carries the exchange: AUTH 0x18 while the method
// wants to continue, CONNACK (or AUTH 0x00 on re-authentication) on success,
// CONNACK / DISCONNECT with a reason code on failure.

import type { AuthPacket } from '../protocol/packets.js';
import { ReasonCode } from '../protocol/reason-codes.js';
import type { Client } from './client.js';
import { ClientState } from './client-state.js';
import type { PendingConnect } from './handle-connect.js';
import type { AuthStepResult } from './hooks.js';

/** Connect state kept between AUTH steps of the initial authentication. */
const pendingConnects = new WeakMap<Client, PendingConnect>();

export function runAuthStep(client: Client, data: Buffer | undefined, reauthenticate: boolean, pending: PendingConnect | null): void {
  const broker = client.broker;
  const method = client.authMethod!;
  const fn = broker.authMethods[method]!;
  if (pending !== null) pendingConnects.set(client, pending);
  let result: AuthStepResult | Promise<AuthStepResult>;
  try {
    result = fn({ clientId: client.clientId, username: client.username, method, data, reauthenticate, state: client.authState });
  } catch (err) {
    broker.logger.error('authentication method threw', { event: 'hook.failed', hook: `authMethods.${method}`, err });
    stepFailed(client, ReasonCode.UnspecifiedError, 'authentication failed');
    return;
  }
  if (result instanceof Promise) {
    client.wait(
      result,
      (r) => applyStep(client, r),
      (err: unknown) => {
        broker.logger.error('authentication method rejected', { event: 'hook.failed', hook: `authMethods.${method}`, err });
        stepFailed(client, ReasonCode.UnspecifiedError, 'authentication failed');
      },
    );
    return;
  }
  applyStep(client, result);
}

function applyStep(client: Client, r: AuthStepResult): void {
  if (client.state === ClientState.Closed) return;
  const method = client.authMethod!;
  if (r.result === 'continue') {
    client.authState = r.state;
    client.sendPacket({
      type: 15,
      reasonCode: ReasonCode.ContinueAuthentication,
      properties: r.data === undefined ? { authenticationMethod: method } : { authenticationMethod: method, authenticationData: r.data },
    });
    return;
  }
  client.authState = undefined;
  if (r.result === 'success') {
    if (client.state === ClientState.Authenticating) {
      const pending = pendingConnects.get(client)!;
      pendingConnects.delete(client);
      pending.authData = r.data;
      pending.authenticated(client, pending);
    } else {
      // Re-authentication succeeded (§4.12.1): AUTH with Success.
      client.reauthenticating = false;
      client.sendPacket({
        type: 15,
        reasonCode: ReasonCode.Success,
        properties: r.data === undefined ? { authenticationMethod: method } : { authenticationMethod: method, authenticationData: r.data },
      });
    }
    return;
  }
  stepFailed(client, r.reasonCode !== undefined && r.reasonCode >= 0x80 ? r.reasonCode : ReasonCode.NotAuthorized, r.reasonString ?? 'authentication failed');
}

function stepFailed(client: Client, reasonCode: number, reason: string): void {
  pendingConnects.delete(client);
  // The method and the outcome, never the authentication data.
  if (client.broker.logger.infoEnabled !== false) client.broker.logger.info('authentication failed', {
    event: 'auth.failed',
    clientId: client.clientId,
    username: client.username,
    remoteAddress: client.conn.remoteAddress,
    method: client.authMethod,
    reauthenticate: client.state !== ClientState.Authenticating,
    reasonCode,
    detail: reason,
  });
  if (client.state === ClientState.Authenticating) client.refuseConnect(reasonCode, reason);
  else client.disconnect(reasonCode, client.problemInfo ? reason : undefined);
}

export function handleAuth(client: Client, p: AuthPacket): void {
  const method = p.properties?.authenticationMethod;
  if (client.authMethod === undefined) {
    // AUTH without enhanced authentication in CONNECT is a Protocol Error [MQTT-4.12.0-6?].
    client.fail(ReasonCode.ProtocolError, 'AUTH without an authentication method in CONNECT');
    return;
  }
  if (method !== client.authMethod) {
    // The method must stay the same for the whole exchange [MQTT-4.12.0-5] and re-authentication [MQTT-4.12.1-1].
    client.fail(ReasonCode.ProtocolError, 'authentication method differs from CONNECT');
    return;
  }
  if (client.state === ClientState.Authenticating) {
    if (p.reasonCode !== ReasonCode.ContinueAuthentication) {
      client.fail(ReasonCode.ProtocolError, 'AUTH during authentication must be Continue Authentication');
      return;
    }
    runAuthStep(client, p.properties?.authenticationData, false, null);
    return;
  }
  // Connected: re-authentication starts with 0x19, continues with 0x18.
  if (p.reasonCode === ReasonCode.ReAuthenticate) {
    if (client.reauthenticating) {
      client.fail(ReasonCode.ProtocolError, 'Re-authenticate while a re-authentication is under way');
      return;
    }
    client.reauthenticating = true;
    client.authState = undefined;
    runAuthStep(client, p.properties?.authenticationData, true, null);
  } else if (p.reasonCode === ReasonCode.ContinueAuthentication && client.reauthenticating) {
    runAuthStep(client, p.properties?.authenticationData, true, null);
  } else {
    client.fail(ReasonCode.ProtocolError, 'unexpected AUTH reason code');
  }
}
