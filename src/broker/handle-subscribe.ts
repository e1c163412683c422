// SUBSCRIBE: one reason code per filter, in order (section 3.8, 3.9 of MQTT 5.0).
// The filters are handled as if they came in separate SUBSCRIBE packets
// [MQTT-3.8.4-4]; authorization may be asynchronous, and then the whole packet
// waits. SUBACK goes out after the subscriptions are stored; retained messages
// follow the SUBACK.

import { parseSharedFilter } from '../protocol/topic.js';
import type { QoS, SubscribePacket, SubscriptionRequest } from '../protocol/packets.js';
import { ReasonCode } from '../protocol/reason-codes.js';
import type { Client } from './client.js';
import { ClientState } from './client-state.js';
import type { AuthorizeSubscribeResult } from './hooks.js';
import type { AclIdentity } from '../auth/acl.js';
import type { Broker } from './broker.js';
import type { Message } from './message.js';
import type { Session } from './session.js';

/** Retained messages of a partially granted subscription: only those its client may read (at the time they are sent). */
function* readableOnly(broker: Broker, identity: AclIdentity, items: Iterator<Message>): Generator<Message, undefined, undefined> {
  for (let r = items.next(); !r.done; r = items.next()) {
    if (broker.aclReadable(identity, r.value.topic)) yield r.value;
  }
  return undefined;
}

/** Decide one filter before authorization: a failure code, or -1 if it may go on. */
function precheck(client: Client, req: SubscriptionRequest, isNew: boolean, added: number): number {
  const limits = client.broker.limits;
  const shared = req.filter.startsWith('$share/');
  if (shared && !limits.sharedSubscriptions) return ReasonCode.SharedSubscriptionsNotSupported; // §3.2.2.3.13
  if (!limits.wildcardSubscriptions && /[+#]/.test(shared ? parseSharedFilter(req.filter)!.filter : req.filter)) {
    return ReasonCode.WildcardSubscriptionsNotSupported; // §3.2.2.3.11
  }
  // New filters earlier in this packet count too: one SUBSCRIBE cannot go past the limit.
  if (isNew && client.session!.subscriptions.size + added >= limits.maxSubscriptionsPerSession) return ReasonCode.QuotaExceeded;
  // Deeper than limits.maxTopicLevels: 0x8F Topic Filter invalid (3.1.1: 0x80, in apply).
  if (client.broker.tooDeep(req.filter) !== null) return ReasonCode.TopicFilterInvalid;
  return -1;
}

/** No hook answered (none, or it returned undefined): the ACL file decides in apply(). */
const ACL_DECIDES = -2;

/** Map a hook result to a granted QoS (0..2), a failure reason code (>= 0x80), or ACL_DECIDES. */
function grant(req: SubscriptionRequest, r: AuthorizeSubscribeResult, maxQoS: QoS): number {
  if (r === undefined) return ACL_DECIDES;
  if (r === true) return Math.min(req.qos, maxQoS);
  if (r === false) return ReasonCode.NotAuthorized;
  if (r >= 0 && r <= 2) return Math.min(req.qos, maxQoS, r);
  return r >= 0x80 ? r : ReasonCode.UnspecifiedError;
}

export function handleSubscribe(client: Client, p: SubscribePacket): void {
  const broker = client.broker;
  const limits = broker.limits;
  const session = client.session!;
  const subId = p.properties?.subscriptionIdentifiers?.[0];
  if (subId !== undefined && !limits.subscriptionIdentifiers) {
    // §3.2.2.3.12: not announced as available, so a Protocol Error.
    client.fail(ReasonCode.SubscriptionIdentifiersNotSupported, 'subscription identifiers are not supported');
    return;
  }
  const hook = broker.hooks.authorizeSubscribe;
  const codes: (number | Promise<AuthorizeSubscribeResult>)[] = [];
  let async = false;
  // New filters of this packet that may be added (a filter repeated in the packet counts once; one that
  // authorizeSubscribe refuses keeps its place: the hook may answer later).
  let added = 0;
  const fresh = p.subscriptions.length > 1 ? new Set<string>() : null;
  for (const req of p.subscriptions) {
    const isNew = !session.subscriptions.has(req.filter) && (fresh === null || !fresh.has(req.filter));
    const pre = precheck(client, req, isNew, added);
    if (pre < 0 && isNew) {
      added++;
      fresh?.add(req.filter);
    }
    if (client.version === 5 && (pre === ReasonCode.WildcardSubscriptionsNotSupported || pre === ReasonCode.SharedSubscriptionsNotSupported)) {
      // CONNACK said they are not available: using them is a Protocol Error (§3.2.2.3.11, §3.2.2.3.13).
      client.fail(pre, `${pre === ReasonCode.SharedSubscriptionsNotSupported ? 'shared' : 'wildcard'} subscriptions are not supported`);
      return;
    }
    if (pre >= 0) {
      codes.push(pre);
      continue;
    }
    if (hook === undefined) {
      codes.push(broker.acl === null ? Math.min(req.qos, limits.maxQoS) : ACL_DECIDES);
      continue;
    }
    let r: AuthorizeSubscribeResult | Promise<AuthorizeSubscribeResult>;
    try {
      r = hook(client.info, { filter: req.filter, qos: req.qos });
    } catch (err) {
      broker.logger.error('authorizeSubscribe hook threw', { event: 'hook.failed', hook: 'authorizeSubscribe', err });
      r = ReasonCode.UnspecifiedError;
    }
    if (r instanceof Promise) {
      async = true;
      codes.push(r);
    } else {
      codes.push(grant(req, r, limits.maxQoS));
    }
  }
  if (!async) {
    apply(client, p, codes as number[], subId);
    return;
  }
  client.wait(
    Promise.all(
    codes.map((c, i) =>
      typeof c === 'number'
        ? c
        : c.then(
            (r) => grant(p.subscriptions[i]!, r, limits.maxQoS),
            (err: unknown) => {
              broker.logger.error('authorizeSubscribe hook rejected', { event: 'hook.failed', hook: 'authorizeSubscribe', err });
              return ReasonCode.UnspecifiedError as number;
            },
          ),
    ),
    ),
    (granted) => {
      if (client.state === ClientState.Connected) apply(client, p, granted, subId);
    },
    (err: unknown) => client.internalError(err),
  );
}

function apply(client: Client, p: SubscribePacket, granted: number[], subId: number | undefined): void {
  const broker = client.broker;
  const session = client.session!;
  const retainedFor: RetainedFor[] = [];
  const codes: number[] = new Array(granted.length);
  const acl = broker.acl;
  for (let i = 0; i < granted.length; i++) {
    const req = p.subscriptions[i]!;
    let code = granted[i]!;
    let partial = false;
    let byAcl = false;
    if (code === ACL_DECIDES) {
      // The ACL file: refused if no topic the filter (a shared one: its inner filter) can match is readable;
      // granted in part (each delivery checked) if some are.
      code = Math.min(req.qos, broker.limits.maxQoS);
      if (acl !== null) {
        const c = acl.classify(client.info, parseSharedFilter(req.filter)?.filter ?? req.filter);
        if (c === 'none') code = ReasonCode.NotAuthorized;
        partial = c === 'partial';
        byAcl = true;
      }
    }
    if (code < 0x80) {
      const { sub, existed } = broker.addSubscription(session, req, code as QoS, subId);
      sub.aclIdentity = partial ? client.info : null;
      if (byAcl) broker.auth.aclGranted.add(sub);
      // Retained messages on subscribe, per Retain Handling; never for shared subscriptions [MQTT-3.3.1-6..10, 3.8.4].
      if (sub.group === null && (req.retainHandling === 0 || (req.retainHandling === 1 && !existed))) {
        retainedFor.push({ filter: sub.topicFilter, qos: code as QoS, subIds: sub.subIds, noLocal: req.noLocal, identity: sub.aclIdentity });
      }
    } else {
      broker.stats.subscribeDenied++;
      // 3.1/3.1.1 know only 0x80 as a failure (§3.9.3 of 3.1.1).
      if (client.version !== 5) code = 0x80;
    }
    codes[i] = code;
  }
  broker.committer.send(client, client.encode({ type: 9, packetId: p.packetId, reasonCodes: codes }));
  sendRetained(broker, session, client, retainedFor);
}

interface RetainedFor {
  filter: string;
  qos: QoS;
  subIds: readonly number[] | undefined;
  noLocal: boolean;
  identity: AclIdentity | null;
}

/** Once the subscriptions are stored: their retained messages, owed to the session (after the SUBACK, if any). */
function sendRetained(broker: Broker, session: Session, client: Client | null, retainedFor: RetainedFor[]): void {
  if (retainedFor.length === 0) return;
  broker.committer.after(() => {
    if (client !== null ? client.state !== ClientState.Connected || client.session !== session : session.ended) return;
    // Owed to the session and sent as its socket and window allow (OutboundQueue.deliverRetained), so a
    // client that reads gets every one, at any QoS; an offline stored session queues them.
    for (const r of retainedFor) {
      const items = broker.retained.iterate(r.filter);
      session.out.deliverRetained(r.filter, r.identity === null ? items : readableOnly(broker, r.identity, items), r.qos, r.subIds, r.noLocal);
    }
  });
}

/**
 * A subscription added to a session by the admin API (no SUBSCRIBE packet, granted as asked: the caller holds
 * the admin token). Stored and sent its retained messages exactly as for a SUBSCRIBE, per Retain Handling
 * [MQTT-3.3.1-9/10/11]; never for a shared subscription [MQTT-3.8.4]. A reason the filter cannot be added
 * (limits), or null.
 */
export function subscribeSession(broker: Broker, session: Session, req: SubscriptionRequest): string | null {
  const limits = broker.limits;
  const shared = parseSharedFilter(req.filter);
  if (shared !== null && !limits.sharedSubscriptions) return 'shared subscriptions are not supported (limits.sharedSubscriptions)';
  if (!limits.wildcardSubscriptions && /[+#]/.test(shared ? shared.filter : req.filter)) return 'wildcard subscriptions are not supported (limits.wildcardSubscriptions)';
  if (!session.subscriptions.has(req.filter) && session.subscriptions.size >= limits.maxSubscriptionsPerSession) {
    return `the session has limits.maxSubscriptionsPerSession (${limits.maxSubscriptionsPerSession}) subscriptions`;
  }
  const deep = broker.tooDeep(req.filter);
  if (deep !== null) return deep;
  const qos = Math.min(req.qos, limits.maxQoS) as QoS;
  const { sub, existed } = broker.addSubscription(session, req, qos, undefined);
  sub.aclIdentity = null;
  if (sub.group === null && (req.retainHandling === 0 || (req.retainHandling === 1 && !existed))) {
    sendRetained(broker, session, session.client, [{ filter: sub.topicFilter, qos, subIds: sub.subIds, noLocal: req.noLocal, identity: null }]);
  }
  return null;
}
