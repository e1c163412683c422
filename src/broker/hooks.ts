// The closed vocabulary of hooks an embedder may implement. Names are checked
// when the broker is created: an unknown name is an error, not a silent no-op.

import type { Properties, ProtocolVersion, QoS } from '../protocol/packets.js';
import { PetrelError } from './errors.js';

/** What hooks learn about a connected (or connecting) client. */
export interface ClientInfo {
  readonly clientId: string;
  readonly username: string | undefined;
  readonly protocolVersion: ProtocolVersion;
  /** e.g. '127.0.0.1:53211' or '[::1]:53211': the client's, as a PROXY header gave it where the listener takes one. */
  readonly remoteAddress: string;
  /** Name of the listener the client came in on (ListenerOptions.name; default `${transport}:${port}`). */
  readonly listener: string;
  readonly transport: 'tcp' | 'tls' | 'ws' | 'wss';
}

/** A message as the hooks and the in-process API see it. */
export interface BrokerMessage {
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: QoS;
  readonly retain: boolean;
  /** Forwarded application properties (v5): payloadFormatIndicator, contentType, responseTopic, correlationData, userProperties, messageExpiryInterval. */
  readonly properties: Properties | undefined;
}

export interface AuthenticateRequest {
  readonly clientId: string;
  readonly username: string | undefined;
  readonly password: Buffer | undefined;
  readonly protocolVersion: ProtocolVersion;
  readonly remoteAddress: string;
  /** CONNECT user properties (v5). */
  readonly userProperties: ReadonlyArray<[string, string]> | undefined;
  /**
   * The enhanced authentication method (v5, options.authMethods) the CONNECT named. When set, that method
   * has already accepted the client; the hook must accept too.
   */
  readonly authenticationMethod: string | undefined;
}

/**
 * `true` accepts, `false` refuses with Bad User Name or Password (0x86; 3.1.1 return code 4).
 * An object refuses with the given v5 reason code (mapped to the closest 3.1.1 return code).
 * `undefined` has no opinion: the broker's own authentication decides (see "Order of decisions" below).
 */
export type AuthenticateResult = boolean | { reasonCode: number; reasonString?: string } | undefined;

export interface SubscribeRequest {
  readonly filter: string;
  readonly qos: QoS;
}

/**
 * `true` grants the requested QoS, `false` refuses (Not Authorized 0x87 in v5, 0x80 in 3.1.1).
 * A number 0..2 grants that QoS (at most the requested one); a number >= 0x80 refuses with that reason code
 * (3.1/3.1.1 clients always see 0x80).
 */
export type AuthorizeSubscribeResult = boolean | number | undefined;

/**
 * `true` allows; `false` refuses with Not Authorized (0x87); a number >= 0x80 refuses with that reason code.
 * `undefined` defers to the ACL file (allowed without one).
 */
export type AuthorizePublishResult = boolean | number | undefined;

export type MaybePromise<T> = T | Promise<T>;

export interface DisconnectInfo {
  /** Why the connection ended: a v5 reason code (0 = normal DISCONNECT from the client). */
  readonly reasonCode: number;
  /** Whether the client sent DISCONNECT itself. */
  readonly byClient: boolean;
}

/**
 * Order of decisions: the first definite answer wins.
 *
 * Authentication (CONNECT), after the protocol checks:
 *   0. A client address banned by the login guard (options.auth.loginGuard: maxFailures failed logins within
 *      windowSeconds ban it for banSeconds) is refused first: 0x8A Banned (3.1/3.1.1: return code 5).
 *   1. The enhanced authentication method, if the CONNECT names one, must accept (MQTT 5.0 section 4.12).
 *   2. The `authenticate` hook: true accepts; false refuses 0x86 (3.1.1: 4); { reasonCode } refuses with it;
 *      undefined defers. A throw or rejection refuses 0x80 (3.1.1: 3).
 *   3. An enhanced authentication method that accepted (step 1) accepts.
 *   4. A client certificate identity (the listener's identityAsUsername): the client is authenticated by its
 *      certificate, and its user name is that identity, whatever the CONNECT said (set before step 2, so the
 *      hooks see it; Mosquitto's use_identity_as_username).
 *   5. The password file (options.auth.passwordFile), for a client with a user name: the right password
 *      accepts; a wrong one, an unknown user, a missing password or one containing NUL refuse 0x86 (3.1.1: 4),
 *      all after one hash of the same cost. With the hash queue full (auth.maxPendingHashes): 0x89 Server busy
 *      (3.1.1: 3).
 *   6. No answer yet: a client without a user name is accepted if allowAnonymous (default: true without a
 *      password file, false with one), else refused 0x87 Not authorized (3.1.1: 5). A client with a user name
 *      and no password file is accepted.
 *   Refusals of steps 2, 5 and 6 count as failed logins for the login guard (stats.authFailures).
 * The session of a live connection with the same client id is not touched before every step accepted.
 *
 * Authorization, per PUBLISH, per SUBSCRIBE filter, and for the will at CONNECT: the hook (authorizePublish,
 * authorizeSubscribe) first; undefined defers to the ACL file (options.auth.aclFile); without one, allowed.
 *   - PUBLISH refused by the ACL: not routed; v5 PUBACK/PUBREC 0x87; 3.1.1 acknowledged and dropped.
 *   - Will refused: CONNACK 0x87 (3.1.1: 5).
 *   - SUBSCRIBE: a filter (a shared one by its inner filter) of which no topic is readable is refused (v5 0x87,
 *     3.1.1 0x80); one of which some topics are readable is granted, and each delivery to it (retained messages
 *     included) is checked (stats.aclFiltered). A hook's true grants without any per-message check.
 *   - broker.reload() re-reads both files: clients authenticated by a password entry that was removed or
 *     changed are disconnected (v5 DISCONNECT 0x87), ACL-granted subscriptions are re-checked at once.
 */
export interface Hooks {
  /** Called on CONNECT, after protocol checks (and after the enhanced authentication method, if any) and before CONNACK. */
  authenticate?(request: AuthenticateRequest): MaybePromise<AuthenticateResult>;
  /**
   * Called for every PUBLISH from a network client, and for its will at CONNECT (after authenticate, with the
   * same ClientInfo): a refused will refuses the connection (0x87; 3.1.1 return code 5).
   */
  authorizePublish?(client: ClientInfo, message: BrokerMessage): MaybePromise<AuthorizePublishResult>;
  /** Called for every topic filter of a SUBSCRIBE (including `$share/...` filters, as written). */
  authorizeSubscribe?(client: ClientInfo, subscription: SubscribeRequest): MaybePromise<AuthorizeSubscribeResult>;
  /** Notified of every message accepted for routing; `client` is null for broker.publish() and wills. */
  onPublish?(client: ClientInfo | null, message: BrokerMessage): void;
  /** Notified after CONNACK (success) went out. */
  onConnect?(client: ClientInfo): void;
  /** Notified when a connected client's connection ends. */
  onDisconnect?(client: ClientInfo, info: DisconnectInfo): void;
}

export const HOOK_NAMES = [
  'authenticate',
  'authorizePublish',
  'authorizeSubscribe',
  'onPublish',
  'onConnect',
  'onDisconnect',
] as const;

export function validateHooks(hooks: unknown): Hooks {
  if (hooks === undefined) return {};
  if (hooks === null || typeof hooks !== 'object') {
    throw new PetrelError('PETREL_ERR_OPTION', 'hooks: must be an object of functions', { key: 'hooks' });
  }
  for (const [name, fn] of Object.entries(hooks)) {
    if (!(HOOK_NAMES as readonly string[]).includes(name)) {
      throw new PetrelError(
        'PETREL_ERR_UNKNOWN_HOOK',
        `hooks.${name}: unknown hook; known hooks are ${HOOK_NAMES.join(', ')}`,
        { key: `hooks.${name}` },
      );
    }
    if (typeof fn !== 'function') {
      throw new PetrelError('PETREL_ERR_OPTION', `hooks.${name}: must be a function`, { key: `hooks.${name}` });
    }
  }
  return hooks as Hooks;
}

// ---- enhanced authentication (MQTT 5.0 section 4.12) ----

export interface AuthStepRequest {
  readonly clientId: string;
  readonly username: string | undefined;
  readonly method: string;
  /** Authentication Data the client sent in this step (CONNECT or AUTH). */
  readonly data: Buffer | undefined;
  /** True for the first step of a re-authentication (AUTH 0x19 from a connected client). */
  readonly reauthenticate: boolean;
  /** Whatever the previous step returned as `state` (undefined on the first step). */
  readonly state: unknown;
}

export type AuthStepResult =
  | { result: 'continue'; data?: Buffer; state?: unknown }
  | { result: 'success'; data?: Buffer }
  | { result: 'fail'; reasonCode?: number; reasonString?: string };

/** One enhanced authentication method: called once per step until it returns success or fail. */
export type AuthMethod = (request: AuthStepRequest) => MaybePromise<AuthStepResult>;
