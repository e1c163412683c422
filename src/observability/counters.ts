// The broker's own counters and latency recorders, kept where the work happens (one increment, no labels, no
// allocation), and read at scrape time by metrics.ts and by the $SYS tree (sys.ts). Counters are always kept
// (an increment costs what BrokerStats' do); the latency histograms, which need a clock reading, only while
// `timing` is on (an HTTP listener with metrics enabled).
//
// This module is a leaf: the broker imports it at run time; it imports nothing of the broker at run time.

import type { ConnectionMeta } from '../transport/connection.js';

/** A fixed-bucket histogram: upper bounds, counts per bucket (the last is +Inf), sum and count. */
export class Recorder {
  readonly bounds: Float64Array;
  /** counts[i]: observations <= bounds[i] and > bounds[i - 1]; counts[bounds.length]: above the last bound. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(bounds: readonly number[]) {
    this.bounds = Float64Array.from(bounds);
    this.counts = new Float64Array(bounds.length + 1);
  }
  observe(v: number): void {
    this.observeN(v, 1);
  }
  /** n observations of the same value v. */
  observeN(v: number, n: number): void {
    const b = this.bounds;
    const m = b.length;
    let i = 0;
    while (i < m && v > b[i]!) i++;
    this.counts[i]! += n;
    this.sum += v * n;
    this.count += n;
  }
}

/** Histogram buckets (seconds, bytes or recipients), chosen for what each one measures. */
export const BUCKETS = {
  /** Route one PUBLISH to every matching session queue: microseconds to milliseconds. */
  dispatch: [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
  /** PUBLISH out to PUBACK / PUBCOMP: the network round trip plus the subscriber's own work. */
  ack: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  /** Socket accepted to CONNACK, and CONNECT to the authentication decision. */
  connect: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  /** One store.commit() (a group commit). */
  commit: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
  /** Event-loop delay, sampled by a timer every 50 ms. */
  eventLoop: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  /** PUBLISH payload size. */
  payload: [16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216],
  /** Sessions a PUBLISH was routed to. */
  fanout: [0, 1, 2, 5, 10, 25, 50, 100, 250, 1000, 10000],
} as const;

/** What the counters need of a closing client (broker/client.ts), as a type only. */
interface ClosingClient {
  readonly conn: { readonly meta: ConnectionMeta; readonly bytesOut: number };
  readonly closeReason: number;
  readonly closedByClient: boolean;
  readonly version: number;
  openedAt: number;
  connectAt: number;
}

/** The bounded reason label of a closed socket or a disconnect, from the reason code the connection ended with. */
export function closeReasonLabel(code: number, byClient: boolean, wasConnected: boolean): string {
  if (byClient) return code === 0x04 ? 'client_disconnect_with_will' : 'client_disconnect';
  if (!wasConnected && code !== 0x80 && code !== 0xa0 && code !== 0x8b) return 'connect_refused';
  switch (code) {
    case 0x80:
      // The peer closed the socket (or it failed) without a DISCONNECT.
      return 'connection_lost';
    case 0x8d:
      return 'keepalive_timeout';
    case 0xa0:
      return 'connect_timeout';
    case 0x8e:
      return 'taken_over';
    case 0x98:
      return 'kicked';
    case 0x8b:
      return 'shutdown';
    case 0x81:
    case 0x82:
    case 0x93:
    case 0x94:
    case 0x95:
    case 0x9a:
    case 0x9b:
    case 0x9e:
    case 0xa1:
    case 0xa2:
      return 'protocol_error';
    case 0x96:
      return 'rate_limited';
    case 0x89:
    case 0x97:
      return 'overload';
    case 0x83:
      return 'internal_error';
    case 0x87:
    case 0x8c:
      return 'not_authorized';
    case 0x00:
      return 'normal';
    default:
      return 'other';
  }
}

/** Send stamps are tenths of a millisecond modulo this (about 29.8 hours), so that they stay small integers. */
const STAMP_WRAP = 2 ** 30;
/** Observations waiting for the end of their run, at most (more are put in their histograms at once). */
const PENDING = 1024;
const RESOLVED = Promise.resolve();

export class Obs {
  /** Latency histograms are recorded (a clock reading per run; see startRun). */
  readonly timing: boolean;
  /** Packets received and sent, by MQTT packet type (1..15). */
  readonly packetsIn = new Float64Array(16);
  readonly packetsOut = new Float64Array(16);
  /** PUBLISH messages received from clients and sent to clients, by QoS; their payload bytes. */
  readonly messagesIn = new Float64Array(3);
  readonly messagesOut = new Float64Array(3);
  payloadBytesIn = 0;
  payloadBytesOut = 0;
  /** Deliveries handed to session queues (one per matched session; a shared redelivery counts again), by QoS. */
  readonly delivered = new Float64Array(3);
  /** Outbound QoS 1 PUBACKs and QoS 2 PUBCOMPs received, by QoS. */
  readonly acked = new Float64Array(3);
  /** PUBLISHes accepted (authorized, routed), and those that matched no subscriber. */
  published = 0;
  droppedNoSubscribers = 0;
  /** QoS 0 messages dropped because their (persistent) session was offline (within stats.droppedQos0). */
  droppedQos0Offline = 0;
  /** CONNACKs sent, by (MQTT 5) reason code. */
  readonly connack = new Float64Array(256);
  /** Session events. */
  sessionsCreated = 0;
  sessionsResumed = 0;
  sessionsExpired = 0;
  /** Closed sockets by "listener\0transport\0reason"; disconnects of connected clients by "initiator\0reason". */
  readonly socketsClosed = new Map<string, number>();
  readonly disconnects = new Map<string, number>();
  /** Sockets closed by listener and transport, for the opened count (closed + open now). */
  readonly closedByListener = new Map<string, number>();
  /** Connected clients that have gone, and the highest number connected at once. */
  connectedGone = 0;
  maxConnected = 0;
  /** Bytes written to connections that have closed (the open ones are read at scrape time). */
  bytesOutClosed = 0;

  readonly dispatch: Recorder[];
  readonly ackRoundTrip: Recorder[];
  readonly connectDuration = new Recorder(BUCKETS.connect);
  readonly authSuccess = new Recorder(BUCKETS.connect);
  readonly authFailure = new Recorder(BUCKETS.connect);
  readonly commit = new Recorder(BUCKETS.commit);
  readonly eventLoop = new Recorder(BUCKETS.eventLoop);
  readonly payloadSize = new Recorder(BUCKETS.payload);
  readonly fanout = new Recorder(BUCKETS.fanout);

  constructor(timing: boolean) {
    this.timing = timing;
    this.dispatch = [new Recorder(BUCKETS.dispatch), new Recorder(BUCKETS.dispatch), new Recorder(BUCKETS.dispatch)];
    this.ackRoundTrip = [new Recorder(BUCKETS.ack), new Recorder(BUCKETS.ack), new Recorder(BUCKETS.ack)];
  }

  /** A clock reading for a latency histogram, or 0 when timing is off. */
  now(): number {
    return this.timing ? performance.now() : 0;
  }

  // Per-message timing, kept out of the hot functions. What a message costs here is a field check and a store
  // into a typed array; the clock is read once per run (startRun), and the histograms are filled at the run's
  // end (endRun, a microtask). Observing in place (a bucket search, a clock reading per PUBLISH) made the hot
  // functions bigger where V8 inlines them: with metrics on, handlePublish stopped inlining accept, route
  // stopped inlining deliver, sendPublish its encoder (node --trace-turbo-inlining, on against off). The bench's
  // metrics-cost gave 0.82-0.91x before this, 0.93-0.98x after (a noisy machine; README, Metrics).

  /**
   * The run's clock in tenths of a millisecond (wrapped at STAMP_WRAP, never 0), or 0 until something of this
   * run needed it. A small integer stays unboxed where an outbound entry keeps it (a double field costs an
   * allocation per message sent).
   */
  private stamp = 0;
  /** performance.now() at the run's start, for dispatch. */
  private runStart = 0;
  /** Payload sizes of PUBLISHes received, and fan-outs of PUBLISHes routed, not yet in their histograms. */
  private readonly pendingPayload = new Float64Array(PENDING);
  private nPayload = 0;
  private readonly pendingFanout = new Float64Array(PENDING);
  private nFanout = 0;
  /** PUBLISHes of this run routed and not yet timed, by QoS. */
  private routed0 = 0;
  private routed1 = 0;
  private routed2 = 0;
  /** Send stamps (and QoS) of the deliveries acknowledged in this run, not yet timed. */
  private readonly pendingAckStamp = new Float64Array(PENDING);
  private readonly pendingAckQos = new Uint8Array(PENDING);
  private nAck = 0;

  /** The first thing of a run that needs the clock: read it, and have endRun called when the run is over. */
  private startRun(): number {
    const t = performance.now();
    this.runStart = t;
    this.stamp = (Math.floor(t * 10) % STAMP_WRAP) + 1;
    RESOLVED.then(this.endRun);
    return this.stamp;
  }

  /**
   * The end of a run (a microtask; a resolved promise's then, which costs less than Node's queueMicrotask). The
   * run's routed PUBLISHes get their dispatch time, from the read that brought them to now, when every one of
   * them is in its subscribers' queues (their bytes go out in this event-loop turn's flush, after this): one
   * clock reading per read, not one per PUBLISH. A PUBLISH routed early in a long read is timed to the read's
   * end: an upper bound, exact for the read's last. The run's acknowledgements are timed from their send
   * stamps to the run's stamp (the error is the length of a run, well under the ack histogram's first bucket).
   */
  private readonly endRun = (): void => {
    if (this.routed0 + this.routed1 + this.routed2 > 0) {
      const d = (performance.now() - this.runStart) / 1000;
      if (this.routed0 > 0) this.dispatch[0]!.observeN(d, this.routed0);
      if (this.routed1 > 0) this.dispatch[1]!.observeN(d, this.routed1);
      if (this.routed2 > 0) this.dispatch[2]!.observeN(d, this.routed2);
      this.routed0 = this.routed1 = this.routed2 = 0;
    }
    if (this.nAck > 0) this.settleAcks();
    this.settle();
    this.stamp = 0;
  };

  /** Put what waits in pendingPayload and pendingFanout in their histograms (also before a scrape reads them). */
  settle(): void {
    for (let i = 0; i < this.nPayload; i++) this.payloadSize.observe(this.pendingPayload[i]!);
    this.nPayload = 0;
    for (let i = 0; i < this.nFanout; i++) this.fanout.observe(this.pendingFanout[i]!);
    this.nFanout = 0;
  }

  private settleAcks(): void {
    const now = this.stamp;
    for (let i = 0; i < this.nAck; i++) {
      let d = now - this.pendingAckStamp[i]!;
      if (d < 0) d += STAMP_WRAP;
      this.ackRoundTrip[this.pendingAckQos[i]!]!.observe(d / 10_000);
    }
    this.nAck = 0;
  }

  /**
   * What an outbound entry keeps as its send time: the run's stamp (tenths of a millisecond, wrapped, never 0),
   * or 0 when timing is off.
   */
  sendStamp(): number {
    if (!this.timing) return 0;
    const s = this.stamp;
    return s !== 0 ? s : this.startRun();
  }

  /** A PUBLISH arrived from a client. */
  received(qos: number, bytes: number): void {
    this.messagesIn[qos]!++;
    this.payloadBytesIn += bytes;
    if (!this.timing) return;
    const n = this.nPayload;
    this.pendingPayload[n] = bytes;
    if ((this.nPayload = n + 1) === PENDING) this.settle();
  }

  /** A PUBLISH went out to a client. */
  sent(qos: number, bytes: number): void {
    this.packetsOut[3]!++;
    this.messagesOut[qos]!++;
    this.payloadBytesOut += bytes;
  }

  /**
   * An accepted PUBLISH is about to be routed: the run's clock is read now if nothing of this run read it yet,
   * so that a PUBLISH that waited behind others of the same read counts that wait. Nothing when timing is off.
   */
  routing(): void {
    if (this.timing && this.stamp === 0) this.startRun();
  }

  /** The PUBLISH that routing() announced was routed to `matched` sessions (its dispatch is timed by endRun). */
  routed(qos: number, matched: number): void {
    this.published++;
    if (matched === 0) this.droppedNoSubscribers++;
    if (!this.timing) return;
    if (qos === 0) this.routed0++;
    else if (qos === 1) this.routed1++;
    else this.routed2++;
    const n = this.nFanout;
    this.pendingFanout[n] = matched;
    if ((this.nFanout = n + 1) === PENDING) this.settle();
  }

  /** A QoS 1 PUBACK or QoS 2 PUBCOMP for a message sent at sentAt (sendStamp(), 0 if not timed). */
  ackedAt(qos: number, sentAt: number): void {
    this.acked[qos]!++;
    if (sentAt === 0 || !this.timing) return;
    if (this.stamp === 0) this.startRun();
    const n = this.nAck;
    this.pendingAckStamp[n] = sentAt;
    this.pendingAckQos[n] = qos;
    if ((this.nAck = n + 1) === PENDING) this.settleAcks();
  }

  /** A CONNACK with this reason code goes out (0: accepted): the authentication decision is made. */
  connectDecided(client: ClosingClient, reasonCode: number): void {
    this.connack[reasonCode & 0xff]!++;
    if (!this.timing || client.connectAt === 0) return;
    const s = (performance.now() - client.connectAt) / 1000;
    client.connectAt = 0;
    (reasonCode === 0 ? this.authSuccess : this.authFailure).observe(s);
  }

  /** A session was opened for a CONNECT (resumed or created). */
  sessionOpened(resumed: boolean): void {
    if (resumed) this.sessionsResumed++;
    else this.sessionsCreated++;
  }

  /** The client's CONNACK is out and its session attached; `connectedNow`: clients connected. */
  connected(client: ClosingClient, connectedNow: number): void {
    if (connectedNow > this.maxConnected) this.maxConnected = connectedNow;
    if (this.timing && client.openedAt > 0) this.connectDuration.observe((performance.now() - client.openedAt) / 1000);
  }

  /** A connection is gone (once per connection); wasConnected: it had completed CONNECT. */
  socketClosed(client: ClosingClient, wasConnected: boolean): void {
    const meta = client.conn.meta;
    const reason = closeReasonLabel(client.closeReason, client.closedByClient, wasConnected);
    const where = `${meta.listener}\0${meta.transport}`;
    bump(this.socketsClosed, `${where}\0${reason}`);
    bump(this.closedByListener, where);
    this.bytesOutClosed += client.conn.bytesOut;
    if (!wasConnected) return;
    this.connectedGone++;
    bump(this.disconnects, `${client.closedByClient ? 'client' : 'server'}\0${reason}`);
  }
}

function bump(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}
