// PUBLISH from a client: topic aliases, limits, QoS 2 duplicate detection,
// authorization, then routing; the acknowledgement (PUBACK / PUBREC) waits for
// the store (section 3.3, 4.3 of MQTT 5.0).

import type { PublishPacket } from '../protocol/packets.js';
import { ReasonCode } from '../protocol/reason-codes.js';
import { isSysTopic } from '../protocol/topic.js';
import { isUtf8 } from '../protocol/utf8.js';
import type { Client } from './client.js';
import { ClientState } from './client-state.js';
import type { AuthorizePublishResult } from './hooks.js';
import { forwardableProperties, Message } from './message.js';

export function handlePublish(client: Client, p: PublishPacket): void {
  const broker = client.broker;
  const limits = broker.limits;
  const session = client.session!;
  broker.stats.messagesIn++;
  broker.obs.received(p.qos, p.payload.length);
  let topic = p.topic;
  const props = p.properties;

  if (client.version === 5 && props !== undefined) {
    const alias = props.topicAlias;
    if (alias !== undefined) {
      // [MQTT-3.3.2-8] 0 is invalid (the decoder refuses it); above our maximum is invalid [MQTT-3.3.2-9].
      if (alias > limits.topicAliasMaximum) {
        client.fail(ReasonCode.TopicAliasInvalid, `topic alias ${alias} above maximum ${limits.topicAliasMaximum}`);
        return;
      }
      const aliases = (client.aliasesIn ??= new Map());
      if (topic === '') {
        const t = aliases.get(alias);
        if (t === undefined) {
          client.fail(ReasonCode.ProtocolError, `topic alias ${alias} not set`);
          return;
        }
        topic = t;
      } else {
        aliases.set(alias, topic);
      }
    }
  }

  const qos = p.qos;
  if (qos > limits.maxQoS) {
    // §3.2.2.3.4
    client.fail(ReasonCode.QoSNotSupported, `QoS ${qos} above maximum ${limits.maxQoS}`);
    return;
  }
  if (p.retain && !limits.retainAvailable) {
    // §3.2.2.3.5
    client.fail(ReasonCode.RetainNotSupported, 'retain not supported');
    return;
  }

  if (qos === 2) {
    // A PUBLISH with a packet id still waiting for PUBREL is a re-send: acknowledge, do not deliver again [MQTT-4.3.3-9].
    if (session.inboundQos2 !== null && session.inboundQos2.has(p.packetId)) {
      client.sendAckAfterCommit(5, p.packetId, ReasonCode.Success);
      return;
    }
  }
  if (qos > 0) {
    // Receive Maximum (section 3.3.4, [MQTT-3.3.4-7]); 3.1.1 clients are held to the packet id space.
    const max = client.version === 5 ? limits.receiveMaximum : 65535;
    if (++client.inboundUnacked > max) {
      client.fail(ReasonCode.ReceiveMaximumExceeded, `more than ${max} QoS 1/2 messages unacknowledged`);
      return;
    }
  }

  if (isSysTopic(topic)) {
    // '$SYS' is the broker's own namespace: clients do not publish into it (§4.7.2).
    refuse(client, p, ReasonCode.NotAuthorized, 'topics under $SYS are reserved for the broker');
    return;
  }
  const deep = broker.tooDeep(topic);
  if (deep !== null) {
    // Not routed. v5 QoS 1/2: PUBACK/PUBREC 0x90 Topic Name invalid; QoS 0 and 3.1.1 have no way to say it (see refuse).
    refuse(client, p, ReasonCode.TopicNameInvalid, deep);
    return;
  }
  if (props?.payloadFormatIndicator === 1 && !isUtf8(p.payload)) {
    // [MQTT-3.3.2-4]: a receiver may check; we refuse rather than forward a payload that lies about itself.
    refuse(client, p, ReasonCode.PayloadFormatInvalid, 'payload is not valid UTF-8');
    return;
  }

  const expiry = props?.messageExpiryInterval;
  const now = Date.now();
  const msg = new Message(
    broker.nextMessageId(),
    topic,
    p.payload,
    qos,
    p.retain,
    forwardableProperties(props),
    expiry === undefined ? undefined : now + expiry * 1000,
    now,
    client.clientId,
  );

  const hook = broker.hooks.authorizePublish;
  if (hook !== undefined) {
    let result: AuthorizePublishResult | Promise<AuthorizePublishResult>;
    try {
      result = hook(client.info, msg.toBrokerMessage(now));
    } catch (err) {
      broker.logger.error('authorizePublish hook threw', { event: 'hook.failed', hook: 'authorizePublish', err });
      result = ReasonCode.UnspecifiedError;
    }
    if (result instanceof Promise) {
      msg.own(); // the socket chunk is not ours beyond this turn
      client.wait(
        result,
        (r) => {
          if (client.state !== ClientState.Closed) decide(client, p, msg, r);
        },
        (err: unknown) => {
          broker.logger.error('authorizePublish hook rejected', { event: 'hook.failed', hook: 'authorizePublish', err });
          if (client.state !== ClientState.Closed) decide(client, p, msg, ReasonCode.UnspecifiedError);
        },
      );
      return;
    }
    decide(client, p, msg, result);
    return;
  }
  // Without an ACL file nothing more is checked here.
  if (broker.acl !== null) return decide(client, p, msg, undefined);
  accept(client, p, msg);
}

function decide(client: Client, p: PublishPacket, msg: Message, r: AuthorizePublishResult): void {
  if (r === undefined) {
    // No hook, or it deferred: the ACL file; allowed without one.
    const acl = client.broker.acl;
    r = acl === null || acl.canWrite(client.info, msg.topic);
  }
  if (r === true) return accept(client, p, msg);
  const code = typeof r === 'number' && r >= 0x80 ? r : ReasonCode.NotAuthorized;
  client.broker.stats.publishDenied++;
  refuse(client, p, code, 'not authorized');
}

/** Not routed. v5: the ack carries the reason. 3.1.1: a positive ack, as the spec allows [MQTT-3.3.5-2]. */
function refuse(client: Client, p: PublishPacket, code: number, reason: string): void {
  if (p.qos === 1) {
    client.sendAckAfterCommit(4, p.packetId, code, reason, true);
  } else if (p.qos === 2) {
    if (client.version === 5) {
      // A PUBREC with a failure code ends the exchange: no PUBREL follows (§4.3.3).
      client.sendAckAfterCommit(5, p.packetId, code, reason, true);
    } else {
      rememberQos2(client, p.packetId);
      client.sendAckAfterCommit(5, p.packetId, 0);
    }
  }
}

function accept(client: Client, p: PublishPacket, msg: Message): void {
  const broker = client.broker;
  if (msg.qos > 0 || msg.retain) msg.own();
  // Dispatch is timed from the socket read that brought this PUBLISH (one clock reading per read, shared by
  // its packets), so a PUBLISH that waited behind others of the same read counts that wait.
  broker.obs.routing();
  let matched: number;
  if (p.qos === 2 && client.session!.stored && broker.committer.durable) {
    // An inbound QoS 2 message reaches subscribers only once its packet id is committed (rememberQos2 below,
    // in the same commit): a crash before it cannot let the publisher's re-send deliver it twice [MQTT-4.3.3-9].
    broker.holdDeliveries = true;
    try {
      matched = broker.publishMessage(msg);
    } finally {
      broker.holdDeliveries = false;
    }
  } else {
    matched = broker.publishMessage(msg);
  }
  broker.obs.routed(msg.qos, matched);
  broker.notifyPublish(client, msg);
  if (p.qos === 1) {
    client.sendAckAfterCommit(4, p.packetId, matched === 0 ? ReasonCode.NoMatchingSubscribers : ReasonCode.Success, undefined, true);
  } else if (p.qos === 2) {
    rememberQos2(client, p.packetId);
    client.sendAckAfterCommit(5, p.packetId, matched === 0 ? ReasonCode.NoMatchingSubscribers : ReasonCode.Success);
  }
}

function rememberQos2(client: Client, packetId: number): void {
  const session = client.session!;
  (session.inboundQos2 ??= new Set()).add(packetId);
  if (session.stored) {
    client.broker.store.addInboundQos2(session.id, packetId);
    client.broker.committer.touch();
  }
}
