// One network connection speaking MQTT: decodes what arrives, dispatches each
// packet to its handler (handle-*.ts), and encodes what goes out. Packets are
// handled strictly in order; while an asynchronous hook runs, later packets
// wait in a backlog (and the socket is paused if the backlog grows).

import { Decoder } from '../protocol/decoder.js';
import { encodeAck, encodePacket, encodePublishHeader } from '../protocol/encoder.js';
import { ProtocolError } from '../protocol/errors.js';
import type { Packet, Properties, ProtocolVersion, QoS, WillMessage } from '../protocol/packets.js';
import { PacketType } from '../protocol/packets.js';
import { CONNACK_REFUSAL_CODES, ReasonCode, reasonName, v5ConnackToV3 } from '../protocol/reason-codes.js';
import type { Connection, ConnectionHandler } from '../transport/connection.js';
import type { Broker } from './broker.js';
import type { AckSink } from './committer.js';
import { handleAuth } from './handle-auth.js';
import { handleConnect } from './handle-connect.js';
import { handleDisconnect } from './handle-disconnect.js';
import { handlePuback, handlePubcomp, handlePubrec, handlePubrel } from './handle-acks.js';
import { handlePublish } from './handle-publish.js';
import { TokenBucket } from '../transport/token-bucket.js';
import { handleSubscribe } from './handle-subscribe.js';
import { handleUnsubscribe } from './handle-unsubscribe.js';
import type { ClientInfo } from './hooks.js';
import type { Message } from './message.js';
import type { Session } from './session.js';
import { ClientState } from './client-state.js';


/** Backlogged packets beyond which the socket is paused. */
const BACKLOG_PAUSE = 1000;
/**
 * Bytes of backlogged packets (payload and topic, plus PACKET_OVERHEAD each) beyond which the socket is paused:
 * large PUBLISHes behind a slow hook are bounded in bytes, not only in count.
 */
export const BACKLOG_PAUSE_BYTES = 1024 * 1024;
/** Bytes charged per backlogged packet or held acknowledgement beside its own bytes. */
const PACKET_OVERHEAD = 96;
/**
 * Bytes of acknowledgements of one client waiting in one commit batch beyond which its socket is paused until
 * that commit is done: a client streaming PUBRELs (or PUBLISHes) while a commit is slow cannot grow the batch
 * without bound. A batch is committed within a turn or two, so a reading client is paused for one commit at most.
 */
export const HELD_ACKS_PAUSE_BYTES = 1024 * 1024;

/**
 * Characters of topic names kept for outbound topic aliases per connection: a client announcing Topic Alias
 * Maximum 65535 would otherwise keep up to 65535 topics of up to 65535 bytes alive. Past it, new topics go out
 * in full, without an alias (using one is the sender's choice, section 3.3.2.3.4).
 */
export const ALIASES_OUT_CHARS = 256 * 1024;

/** Why reading a connection is paused (bits): it resumes once none is left. */
const PAUSE_BACKLOG = 1;
const PAUSE_MEMORY = 2;
const PAUSE_ACKS = 4;
const PAUSE_OUTPUT = 8;
const PAUSE_RATE = 16;

export class Client implements ConnectionHandler, AckSink {
  readonly broker: Broker;
  readonly conn: Connection;
  readonly decoder: Decoder;
  state: ClientState = ClientState.New;
  version: ProtocolVersion = 4;
  clientId = '';
  username: string | undefined = undefined;
  session: Session | null = null;
  /** Keep alive deadline in ms (1.5 x the keep alive), 0 = none. */
  keepAliveMs = 0;
  /** Broker.tick of the last input. */
  lastSeen: number;
  /** Place in the broker's deadline wheel (keep-alive.ts). */
  wheelAt = -1;
  wheelPos = 0;

  // Settings the client announced in CONNECT (v5).
  /** Outbound window: min(client Receive Maximum, limits.maxInflight). */
  window: number;
  /** Client's Maximum Packet Size; 0 = no limit. */
  maxPacketSize = 0;
  topicAliasMaximum = 0;
  /** Request Problem Information [MQTT-3.1.2-28/29]. */
  problemInfo = true;
  /** Session Expiry Interval the CONNECT asked for (v5), before limits.maxSessionExpiry capped it. */
  connectExpiry = 0;
  /** Clean Start (v5) / Clean Session (3.1.1) of the CONNECT. */
  cleanStart = false;
  /** When the CONNACK went out and the session was attached (Date.now()), 0 before (the admin API shows it). */
  connectedAt = 0;

  will: WillMessage | undefined = undefined;
  /** Set by DISCONNECT 0x00: the will is not published [MQTT-3.14.4-3]. */
  normalDisconnect = false;
  /** Reason the connection ended (for hooks and logs). */
  closeReason: number = ReasonCode.Success;
  closedByClient = false;
  /** The session's state was already handed over (takeover) or released. */
  released = false;

  aliasesIn: Map<number, string> | null = null;
  aliasesOut: Map<string, number> | null = null;
  /** Characters of the topics in aliasesOut (see ALIASES_OUT_CHARS). */
  private aliasesOutChars = 0;
  /** Inbound QoS 1/2 PUBLISHes not yet acknowledged (Receive Maximum, section 3.3.4). */
  inboundUnacked = 0;

  // Enhanced authentication (v5).
  authMethod: string | undefined = undefined;
  authState: unknown = undefined;
  reauthenticating = false;

  /** Asynchronous steps under way (hooks, an AUTH step): while > 0, later packets wait in the backlog. */
  private holds = 0;
  private backlog: Packet[] | null = null;
  /** Bytes of the backlog (see BACKLOG_PAUSE_BYTES). */
  private backlogBytes = 0;
  /** Reasons reading is paused (PAUSE_* bits). */
  private pauses = 0;
  /** Commit batch the held-ack count below belongs to (Committer.batch), and the bytes held in it. */
  private ackBatch = -1;
  private ackBytes = 0;
  private infoCache: ClientInfo | null = null;
  /** performance.now() at accept and at CONNECT, for the latency histograms (0 when metrics are off). */
  openedAt: number;
  connectAt = 0;

  constructor(broker: Broker, conn: Connection) {
    this.broker = broker;
    this.conn = conn;
    conn.handler = this;
    this.window = broker.limits.maxInflight;
    this.lastSeen = broker.tick;
    this.openedAt = broker.obs.now();
    this.decoder = new ClientDecoder(this, broker.limits.maxPacketSize);
    this.startRates();
  }

  get info(): ClientInfo {
    return (this.infoCache ??= {
      clientId: this.clientId,
      username: this.username,
      protocolVersion: this.version,
      remoteAddress: this.conn.remoteAddress,
      listener: this.conn.meta.listener,
      transport: this.conn.meta.transport,
    });
  }

  // ---- input ----

  onData(chunk: Buffer): void {
    if (this.state === ClientState.Closed) return;
    this.lastSeen = this.broker.tick;
    this.broker.stats.bytesIn += chunk.length;
    try {
      this.decoder.push(chunk);
    } catch (err) {
      this.internalError(err);
    }
    // What the client's input made us write (acks, PINGRESP, SUBACK ...) is not flow-controlled: a client that
    // sends without reading would grow its write buffer without bound. Past 2 x maxWriteBuffer + maxPacketSize
    // (more than a window of PUBLISHes ever leaves there) it is not read until the socket drains.
    if (this.conn.buffered > this.outputPauseAt && (this.pauses & PAUSE_OUTPUT) === 0 && !this.conn.writable) {
      this.setPaused(PAUSE_OUTPUT, true);
    }
  }

  /** Bytes waiting in the connection beyond which its input is not read (see onData). */
  private get outputPauseAt(): number {
    const l = this.broker.limits;
    return 2 * l.maxWriteBuffer + l.maxPacketSize;
  }

  onPacket(p: Packet): void {
    if (this.state === ClientState.Closed) return;
    if (this.holds > 0) {
      if (p.type === PacketType.DISCONNECT && this.state === ClientState.Authenticating) {
        // Gone while its authentication was pending: the connect must never complete (nor take over the
        // session of a live connection with the same client id), so it ends now, not after the hook.
        this.abandonConnect();
        return;
      }
      const b = (this.backlog ??= []);
      b.push(p);
      this.backlogBytes += packetBytes(p);
      if (b.length >= BACKLOG_PAUSE || this.backlogBytes >= BACKLOG_PAUSE_BYTES) this.setPaused(PAUSE_BACKLOG, true);
      return;
    }
    this.dispatch(p);
  }

  /** An asynchronous step started: later packets wait. Steps may nest (an AUTH step, then the hooks). */
  hold(): void {
    this.holds++;
  }

  /** An asynchronous step ended: once none is left, handle what waited, in order. */
  release(): void {
    if (this.holds > 0) this.holds--;
    if (this.holds > 0) return;
    const b = this.backlog;
    if (b === null) return;
    let i = 0;
    try {
      while (i < b.length && this.holds === 0 && this.state !== ClientState.Closed) {
        const p = b[i++]!;
        this.backlogBytes -= packetBytes(p);
        this.dispatch(p);
      }
    } catch (err) {
      this.internalError(err);
      return;
    }
    if (this.backlog !== b) return; // closed meanwhile
    b.splice(0, i);
    if (b.length === 0) {
      this.backlog = null;
      this.backlogBytes = 0;
    }
    if (b.length < BACKLOG_PAUSE && this.backlogBytes < BACKLOG_PAUSE_BYTES) this.setPaused(PAUSE_BACKLOG, false);
  }

  /** Pause or resume reading for one reason; the socket reads while no reason is left. */
  private setPaused(bit: number, on: boolean): void {
    const before = this.pauses;
    this.pauses = on ? before | bit : before & ~bit;
    if (before === 0 && this.pauses !== 0) this.conn.pause();
    else if (before !== 0 && this.pauses === 0 && this.state !== ClientState.Closed) this.conn.resume();
  }

  /** Reading is paused because memory is above the watermark or for the client's rate (the keep-alive deadline waits). */
  get memoryPaused(): boolean {
    return (this.pauses & (PAUSE_MEMORY | PAUSE_RATE)) !== 0;
  }

  /** Publish rate buckets (limits.maxPublishRate, maxPublishBytesRate): null when neither is set. */
  private rates: { messages: TokenBucket | null; bytes: TokenBucket | null } | null = null;
  private rateTimer: NodeJS.Timeout | null = null;

  /** A closed client waits for nothing (the pause for its rate could be long: it would keep the client alive). */
  private stopRateTimer(): void {
    if (this.rateTimer !== null) {
      clearTimeout(this.rateTimer);
      this.rateTimer = null;
    }
  }

  /** Set up the publish rate buckets, if a rate is configured. */
  private startRates(): void {
    const l = this.broker.limits;
    if (l.maxPublishRate === 0 && l.maxPublishBytesRate === 0) return;
    const now = Date.now();
    this.rates = {
      messages: l.maxPublishRate > 0 ? new TokenBucket(l.maxPublishRate, l.maxPublishRate, now) : null,
      bytes: l.maxPublishBytesRate > 0 ? new TokenBucket(l.maxPublishBytesRate, l.maxPublishBytesRate, now) : null,
    };
  }

  /**
   * Count one inbound PUBLISH against the client's rates. Over them: with limits.rateLimitDisconnect the client
   * is disconnected (v5 0x96 Message rate too high) and false returned (the PUBLISH is not handled, nor
   * acknowledged); else its socket is not read until the debt is paid, and the PUBLISH is handled.
   */
  private withinRate(bytes: number): boolean {
    const r = this.rates!;
    const now = Date.now();
    const wait = Math.max(r.messages === null ? 0 : r.messages.take(1, now), r.bytes === null ? 0 : r.bytes.take(bytes, now));
    if (wait === 0) return true;
    const stats = this.broker.stats;
    if (this.broker.limits.rateLimitDisconnect) {
      stats.publishRateDisconnects++;
      this.disconnect(ReasonCode.MessageRateTooHigh, 'publish rate above limits.maxPublishRate / maxPublishBytesRate');
      return false;
    }
    if (this.rateTimer === null) {
      // Later packets (of this chunk too) wait in the backlog, and the socket is not read, until the debt is paid.
      stats.publishRatePauses++;
      this.hold();
      this.setPaused(PAUSE_RATE, true);
      this.rateTimer = setTimeout(() => {
        this.rateTimer = null;
        this.lastSeen = this.broker.tick;
        this.setPaused(PAUSE_RATE, false);
        this.release();
      }, wait);
    }
    return true;
  }

  /** Not connected yet (its CONNECT must be read, to be refused), or its session holds messages in the heap. */
  get mayFreeMemory(): boolean {
    if (this.state !== ClientState.Connected) return true;
    const s = this.session;
    return s !== null && s.out.heapBytes > 0;
  }

  /** The memory guard stops or restarts reading (memory-guard.ts). */
  memoryPause(paused: boolean): void {
    // Input waited in the socket while paused: the keep alive counts from the resumption.
    if (!paused) this.lastSeen = this.broker.tick;
    this.setPaused(PAUSE_MEMORY, paused);
  }

  /** An acknowledgement goes into the committer's batch: count its bytes, and pause reading past the bound. */
  private heldAck(bytes: number): void {
    const committer = this.broker.committer;
    if (!committer.durable || !committer.holding) return;
    if (this.ackBatch !== committer.batch) {
      this.ackBatch = committer.batch;
      this.ackBytes = 0;
    }
    this.ackBytes += bytes + PACKET_OVERHEAD;
    if (this.ackBytes < HELD_ACKS_PAUSE_BYTES || (this.pauses & PAUSE_ACKS) !== 0) return;
    this.setPaused(PAUSE_ACKS, true);
    // Runs once this batch is committed and its acks are out.
    committer.after(() => this.setPaused(PAUSE_ACKS, false));
  }

  /**
   * Wait for an asynchronous step (a hook's promise) with later packets held back; `done` or `failed` runs
   * when it settles. A throw in either closes this client (internalError); it never becomes an unhandled
   * rejection, which would end the process.
   */
  wait<T>(promise: Promise<T>, done: (value: T) => void, failed: (err: unknown) => void): void {
    this.hold();
    promise.then(
      (v) => this.settle(done, v),
      (err: unknown) => this.settle(failed, err),
    );
  }

  private settle<T>(fn: (v: T) => void, v: T): void {
    try {
      fn(v);
    } catch (err) {
      this.internalError(err);
    }
    this.release();
  }

  /**
   * A throw while handling this client (a bug, a broken store or hook): log it, close this client (v5:
   * DISCONNECT, or CONNACK before it was connected, with 0x83 Implementation Specific Error; 3.1.1: close),
   * and let the process and every other client carry on.
   */
  internalError(err: unknown): void {
    this.broker.stats.internalErrors++;
    this.broker.logger.error('internal error; closing the connection', { event: 'client.internal_error', clientId: this.clientId || undefined, remoteAddress: this.conn.remoteAddress, err });
    if (this.state === ClientState.Closed) return;
    try {
      this.fail(ReasonCode.ImplementationSpecificError, 'internal error');
    } catch (again) {
      this.broker.logger.error('internal error while closing the connection', { event: 'client.internal_error', clientId: this.clientId || undefined, err: again });
      this.state = ClientState.Closed;
      this.backlog = null;
      this.conn.destroy();
      this.broker.forgetClient(this);
    }
  }

  /** DISCONNECT before CONNACK: the connect never completes; no will (none was accepted). */
  private abandonConnect(): void {
    this.normalDisconnect = true;
    this.closedByClient = true;
    this.closeNow(ReasonCode.Success, 'client disconnected during authentication');
  }

  private dispatch(p: Packet): void {
    const state = this.state;
    this.broker.obs.packetsIn[p.type]!++;
    if (state === ClientState.New) {
      // The first packet must be CONNECT [MQTT-3.1.0-1].
      if (p.type !== PacketType.CONNECT) {
        this.fail(ReasonCode.ProtocolError, 'first packet was not CONNECT [MQTT-3.1.0-1]');
        return;
      }
      this.broker.stats.packetsIn++;
      this.connectAt = this.broker.obs.now();
      handleConnect(this, p);
      return;
    }
    this.broker.stats.packetsIn++;
    if (state === ClientState.Authenticating) {
      if (p.type === PacketType.AUTH) handleAuth(this, p);
      else if (p.type === PacketType.DISCONNECT) this.abandonConnect();
      else this.fail(ReasonCode.ProtocolError, `${p.type === 1 ? 'second CONNECT' : 'packet'} before authentication completed`);
      return;
    }
    switch (p.type) {
      case PacketType.PUBLISH:
        if (this.rates !== null && !this.withinRate(p.payload.length)) return;
        handlePublish(this, p);
        return;
      case PacketType.PUBACK:
        handlePuback(this, p);
        return;
      case PacketType.PUBREC:
        handlePubrec(this, p);
        return;
      case PacketType.PUBREL:
        handlePubrel(this, p);
        return;
      case PacketType.PUBCOMP:
        handlePubcomp(this, p);
        return;
      case PacketType.SUBSCRIBE:
        handleSubscribe(this, p);
        return;
      case PacketType.UNSUBSCRIBE:
        handleUnsubscribe(this, p);
        return;
      case PacketType.PINGREQ:
        this.sendRaw(PINGRESP);
        return;
      case PacketType.DISCONNECT:
        handleDisconnect(this, p);
        return;
      case PacketType.AUTH:
        handleAuth(this, p);
        return;
      case PacketType.CONNECT:
        // [MQTT-3.1.0-2]
        this.fail(ReasonCode.ProtocolError, 'second CONNECT [MQTT-3.1.0-2]');
        return;
      default:
        // The decoder (side 'server') already refuses packets only a server sends.
        this.fail(ReasonCode.ProtocolError, `unexpected packet type ${p.type}`);
    }
  }

  onProtocolError(e: ProtocolError): void {
    this.broker.stats.protocolErrors++;
    if (this.state === ClientState.New && e.protocolVersion !== undefined) {
      // The CONNECT was bad but its protocol level was read: answer in a form that level understands.
      if (e.protocolVersion === 5) this.version = 5;
      else if (e.protocolVersion === 3 || e.protocolVersion === 4) this.version = e.protocolVersion;
      if (e.reasonCode === ReasonCode.UnsupportedProtocolVersion) {
        // [MQTT-3.1.2-2] (3.1.1): CONNACK 0x01 then close. Levels we do not know get the 3.1.1 form.
        if (e.protocolVersion === 5) this.sendPacket({ type: 2, sessionPresent: false, reasonCode: ReasonCode.UnsupportedProtocolVersion });
        else this.sendRawPacket4({ type: 2, sessionPresent: false, reasonCode: 0x01 });
        this.closeNow(e.reasonCode, e.message);
        return;
      }
    }
    if (this.state !== ClientState.New && e.packetType === 1 && e.reasonCode === ReasonCode.UnsupportedProtocolVersion) {
      // A second CONNECT is a Protocol Error whatever its level [MQTT-3.1.0-2]; 0x84 is not a DISCONNECT
      // reason code [MQTT-3.14.2-1] (fuzz finding second-connect-unsupported-level, test/fixtures/catalogue.ts).
      this.fail(ReasonCode.ProtocolError, `second CONNECT [MQTT-3.1.0-2]: ${e.message}`);
      return;
    }
    this.fail(e.reasonCode, e.message + (e.ref ? ` [${e.ref}]` : ''));
  }

  // ---- output ----

  /** Raw bytes (acks, pings) — AckSink for the committer. */
  sendRaw(data: Buffer): void {
    // Empty: a packet that did not fit the client's Maximum Packet Size (see encode()).
    if (this.state === ClientState.Closed || data.length === 0) return;
    this.broker.obs.packetsOut[data[0]! >> 4]!++;
    // Acks are freshly encoded or immutable constants: no copy needed for the first write of a turn.
    this.conn.write(data, true);
  }

  sendPacket(p: Packet): void {
    if (this.state === ClientState.Closed) return;
    const data = this.encode(p);
    if (data.length === 0) return;
    this.conn.write(data, true);
    this.broker.obs.packetsOut[p.type]!++;
  }

  /**
   * Encode for this client. A packet that would exceed the client's Maximum Packet Size loses its Reason
   * String and User Properties first [MQTT-3.1.2-25] (CONNACK, DISCONNECT, acks [MQTT-3.4.2-2], SUBACK ...);
   * if it still does not fit, it is not sent [MQTT-3.1.2-24]: the result is empty (sendRaw and sendPacket
   * skip it) and stats.packetsTooLarge counts it.
   */
  encode(p: Packet): Buffer {
    let buf: Buffer;
    try {
      buf = encodePacket(p, this.version);
    } catch (err) {
      // A field over 65,535 bytes from the embedder (a hook's or auth method's data): the encoder refuses to write
      // a malformed packet. Nothing is sent; the connection and the process carry on.
      if (!(err instanceof RangeError)) throw err;
      this.broker.logger.error('packet not sent: it cannot be encoded', { event: 'client.packet_not_sent', clientId: this.clientId || undefined, type: p.type, err });
      return NOT_SENT;
    }
    if (this.maxPacketSize === 0 || buf.length <= this.maxPacketSize) return buf;
    if ('properties' in p && p.properties !== undefined) {
      const { reasonString: _r, userProperties: _u, ...rest } = p.properties;
      const smaller = encodePacket({ ...p, properties: rest } as Packet, this.version);
      if (smaller.length <= this.maxPacketSize) return smaller;
    }
    return this.tooLarge();
  }

  /** A packet exceeding the client's Maximum Packet Size: counted, and replaced by nothing [MQTT-3.1.2-24]. */
  private tooLarge(): Buffer {
    this.broker.stats.packetsTooLarge++;
    return NOT_SENT;
  }

  private sendRawPacket4(p: Packet): void {
    this.broker.obs.packetsOut[p.type]!++;
    this.conn.write(encodePacket(p, 4));
  }

  /**
   * Ack (PUBACK/PUBREC/PUBCOMP) that must wait for the store: through the committer. `quota` marks the acks
   * that give the client back one unit of its Receive Maximum (PUBACK, PUBCOMP, a failed PUBREC).
   */
  sendAckAfterCommit(type: 4 | 5 | 7, packetId: number, reasonCode: number, reasonString?: string, quota = false): void {
    let data = encodeAck(type, packetId, this.version === 5 ? reasonCode : 0, this.version);
    if (reasonString !== undefined && this.version === 5 && this.problemInfo) {
      // With a Reason String only if it fits the client's Maximum Packet Size [MQTT-3.4.2-2].
      const withReason = encodeAck(type, packetId, reasonCode, 5, { reasonString });
      if (this.maxPacketSize === 0 || withReason.length <= this.maxPacketSize) data = withReason;
    }
    // Not sent if even the bare ack is too large (a Maximum Packet Size below 5); handled as if sent [MQTT-3.1.2-24].
    if (this.maxPacketSize !== 0 && data.length > this.maxPacketSize) data = this.tooLarge();
    if (quota && this.inboundUnacked > 0) this.inboundUnacked--;
    this.heldAck(data.length);
    this.broker.committer.send(this, data);
  }

  /** Keep what was written to this connection so far off the wire until the store committed what it has been given. */
  holdOutputForCommit(): void {
    const committer = this.broker.committer;
    if (committer.holding) this.conn.holdUntil(committer);
  }

  sendPubrel(packetId: number, reasonCode = 0): void {
    const data = encodeAck(6, packetId, reasonCode, this.version);
    this.heldAck(data.length);
    this.broker.committer.send(this, this.maxPacketSize !== 0 && data.length > this.maxPacketSize ? this.tooLarge() : data);
  }

  /** Room to send now (the socket is not backed up). */
  canSend(): boolean {
    return this.state === ClientState.Connected && this.conn.writable;
  }

  /**
   * Send a PUBLISH. Returns false if it is larger than the client's Maximum Packet Size (then nothing is sent).
   */
  sendPublish(msg: Message, qos: QoS, retain: boolean, subIds: readonly number[] | undefined, packetId: number, dup: boolean): boolean {
    const version = this.version;
    let h;
    if (version === 5 && (subIds !== undefined || this.topicAliasMaximum > 0 || msg.expiresAt !== undefined)) {
      let topic = msg.topic;
      let alias = 0;
      if (this.topicAliasMaximum > 0) {
        const out = (this.aliasesOut ??= new Map());
        const a = out.get(topic);
        if (a !== undefined) {
          alias = a;
          topic = '';
        } else if (out.size < this.topicAliasMaximum && this.aliasesOutChars + topic.length <= ALIASES_OUT_CHARS) {
          // First use of a free alias: topic and alias together, later the alias alone [MQTT-3.3.2-12].
          alias = out.size + 1;
          out.set(topic, alias);
          this.aliasesOutChars += topic.length;
        }
      }
      h = encodePublishHeader(topic, qos, dup, retain, packetId, msg.outboundProperties(Date.now(), subIds, alias), msg.payload.length, 5);
      if (this.maxPacketSize !== 0 && h.header.length + msg.payload.length > this.maxPacketSize) {
        if (alias !== 0 && topic !== '') {
          this.aliasesOut!.delete(msg.topic);
          this.aliasesOutChars -= msg.topic.length;
        }
        this.broker.stats.droppedTooLarge++;
        return false;
      }
      this.conn.writeWithHeader(h.header, -1, 0, 0, msg.payload);
    } else {
      h = msg.header(version, qos, retain);
      if (this.maxPacketSize !== 0 && h.header.length + msg.payload.length > this.maxPacketSize) {
        this.broker.stats.droppedTooLarge++;
        return false;
      }
      this.conn.writeWithHeader(h.header, h.packetIdOffset, packetId, dup ? 0x08 : 0, msg.payload);
    }
    this.broker.stats.messagesOut++;
    this.broker.obs.sent(qos, msg.payload.length);
    if (this.broker.holdDeliveries) this.holdOutputForCommit();
    return true;
  }

  /** v5 reason string property, only when the client did not turn problem information off [MQTT-3.1.2-29]. */
  reasonProps(reasonString: string | undefined): Properties | undefined {
    return reasonString !== undefined && this.problemInfo ? { reasonString } : undefined;
  }

  // ---- ending ----

  /**
   * A protocol or semantic error: tell the client why (v5: DISCONNECT, or CONNACK before the connection was
   * accepted [MQTT-4.13.1-1]; 3.1.1: just close) and close.
   */
  fail(reasonCode: number, reason: string): void {
    if (this.state === ClientState.Closed) return;
    if (this.broker.logger.debugEnabled !== false) {
      this.broker.logger.debug('closing connection', {
        event: 'client.closing',
        clientId: this.clientId || undefined,
        remoteAddress: this.conn.remoteAddress,
        reason: reasonName(reasonCode),
        detail: reason,
      });
    }
    if (this.version === 5) {
      if (this.state === ClientState.Connected) {
        this.sendPacket({ type: 14, reasonCode, properties: { reasonString: reason } });
      } else {
        // Before CONNACK (an AUTH exchange): a code CONNACK cannot carry is sent as Protocol Error [MQTT-3.2.2-8].
        const code = CONNACK_REFUSAL_CODES.has(reasonCode) ? reasonCode : ReasonCode.ProtocolError;
        this.broker.obs.connectDecided(this, code);
        this.sendPacket({ type: 2, sessionPresent: false, reasonCode: code, properties: this.reasonProps(reason) });
      }
    }
    this.closeNow(reasonCode, reason);
  }

  /** Refuse a CONNECT with a reason code (v5) or the matching return code (3.1/3.1.1). */
  refuseConnect(reasonCode: number, reason: string): void {
    if (this.state === ClientState.Closed) return;
    this.broker.stats.connectsRefused++;
    this.broker.obs.connectDecided(this, reasonCode);
    if (this.broker.logger.infoEnabled !== false) this.broker.logger.info('connection refused', {
      event: 'client.connect_refused',
      clientId: this.clientId || undefined,
      username: this.username,
      remoteAddress: this.conn.remoteAddress,
      protocolVersion: this.version,
      reasonCode,
      reason: reasonName(reasonCode),
      detail: reason,
    });
    if (this.version === 5) {
      this.sendPacket({ type: 2, sessionPresent: false, reasonCode, properties: this.reasonProps(reason) });
    } else {
      this.sendPacket({ type: 2, sessionPresent: false, reasonCode: v5ConnackToV3(reasonCode) });
    }
    this.closeNow(reasonCode, reason);
  }

  /** Server-side DISCONNECT (v5) with a reason, then close. */
  disconnect(reasonCode: number, reasonString?: string): void {
    if (this.state === ClientState.Closed) return;
    if (this.version === 5 && this.state === ClientState.Connected) {
      this.sendPacket({ type: 14, reasonCode, properties: reasonString === undefined ? undefined : { reasonString } });
    }
    this.closeNow(reasonCode, reasonString ?? reasonName(reasonCode));
  }

  /** Stop reading and writing, flush, close the socket, and let the broker release the session now. */
  closeNow(reasonCode: number, _reason: string): void {
    if (this.state === ClientState.Closed) return;
    const wasConnected = this.state === ClientState.Connected;
    this.state = ClientState.Closed;
    this.closeReason = reasonCode;
    this.backlog = null;
    this.stopRateTimer();
    if (wasConnected) this.broker.clientGone(this);
    else this.broker.forgetClient(this);
    // The socket closes once what the end of this connection wrote to the store is committed, so a client that
    // sees it close can rely on it: after a normal DISCONNECT its will is gone [MQTT-3.1.2-10], a session
    // with expiry 0 has ended, even if the broker dies right after.
    this.holdOutputForCommit();
    this.conn.end();
  }

  /** The socket closed (the peer went away, or after closeNow). */
  onClose(): void {
    if (this.state !== ClientState.Closed) {
      const wasConnected = this.state === ClientState.Connected;
      this.state = ClientState.Closed;
      this.backlog = null;
      this.stopRateTimer();
      if (!this.normalDisconnect && this.closeReason === ReasonCode.Success) this.closeReason = ReasonCode.UnspecifiedError;
      try {
        if (wasConnected) this.broker.clientGone(this);
        else this.broker.forgetClient(this);
        // The peer only ended its side: ours ends after what its going away wrote is committed (see closeNow).
        this.holdOutputForCommit();
      } catch (err) {
        // Called from the socket's 'close' event: a throw here would end the process.
        this.broker.stats.internalErrors++;
        this.broker.logger.error('internal error releasing a closed connection', { event: 'client.internal_error', clientId: this.clientId || undefined, err });
        this.broker.forgetClient(this);
      }
    }
  }

  onDrain(): void {
    if ((this.pauses & PAUSE_OUTPUT) !== 0) this.setPaused(PAUSE_OUTPUT, false);
    if (this.state !== ClientState.Connected) return;
    try {
      this.session?.pump();
    } catch (err) {
      this.internalError(err);
    }
  }
}

const PINGRESP = Buffer.from([0xd0, 0x00]);

/** Bytes a backlogged packet holds, roughly: its payload and topic, plus a fixed overhead. */
function packetBytes(p: Packet): number {
  if (p.type === PacketType.PUBLISH) return p.payload.length + p.topic.length + PACKET_OVERHEAD;
  return PACKET_OVERHEAD;
}
/** What encode() gives for a packet the client's Maximum Packet Size does not allow: nothing is written. */
const NOT_SENT = Buffer.alloc(0);

/** A decoder that knows its client: its callbacks are shared functions, not closures per connection. */
class ClientDecoder extends Decoder {
  constructor(
    readonly owner: Client,
    maxPacketSize: number,
  ) {
    super({ maxPacketSize, side: 'server' });
    this.onPacket = onDecodedPacket;
    this.onError = onDecodeError;
  }
}
function onDecodedPacket(this: Decoder, p: Packet): void {
  (this as ClientDecoder).owner.onPacket(p);
}
function onDecodeError(this: Decoder, e: ProtocolError): void {
  (this as ClientDecoder).owner.onProtocolError(e);
}
