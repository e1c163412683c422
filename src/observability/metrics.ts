// /metrics: a prom-client registry of Node's default metrics (unprefixed, so stock Node dashboards work) and
// Petrel's own (prefix petrel_). Petrel's are custom metric objects whose get() reads, at scrape time, the
// counters the broker keeps (BrokerStats, counters.ts) and its state (gauges): nothing is maintained per
// message for a metric, and no label is ever a client id, user name or topic.
//
// One registry per exposition format: prom-client renames counters in place for OpenMetrics (it drops
// `_total` from the metric name), so the two formats never share metric objects.

import client from 'prom-client';
import type { Broker } from '../broker/broker.js';
import { ClientState } from '../broker/client-state.js';
import type { Recorder } from './counters.js';
import { petrelVersionSync } from './version.js';

type Labels = Record<string, string | number>;
interface Sample {
  labels?: Labels;
  value: number;
  metricName?: string;
}
type Kind = 'counter' | 'gauge' | 'histogram';

/** A metric prom-client's Registry can render: its get() gives the samples. */
class Custom {
  readonly aggregator = 'sum';
  constructor(
    public name: string,
    readonly help: string,
    readonly type: Kind,
    private readonly read: () => Sample[],
  ) {}
  get(): Promise<{ name: string; help: string; type: Kind; values: Sample[]; aggregator: string }> {
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, values: this.read(), aggregator: this.aggregator });
  }
  reset(): void {}
}

const PACKET_NAMES = ['reserved', 'connect', 'connack', 'publish', 'puback', 'pubrec', 'pubrel', 'pubcomp', 'subscribe', 'suback', 'unsubscribe', 'unsuback', 'pingreq', 'pingresp', 'disconnect', 'auth'];
const COMMON_DISCONNECTS = [
  'client\0client_disconnect',
  'client\0client_disconnect_with_will',
  'server\0connection_lost',
  'server\0keepalive_timeout',
  'server\0taken_over',
  'server\0kicked',
  'server\0protocol_error',
  'server\0shutdown',
];
const RECEIVED_TYPES = [1, 3, 4, 5, 6, 7, 8, 10, 12, 14, 15];
const SENT_TYPES = [2, 3, 4, 5, 6, 7, 9, 11, 13, 14, 15];

/** The broker's state, read once per scrape. */
export interface Snapshot {
  connections: Map<string, number>;
  socketsOpen: Map<string, number>;
  sessionsOnline: number;
  sessionsOffline: number;
  subscriptionsNormal: number;
  subscriptionsShared: number;
  topicFilters: number;
  retainedMessages: number;
  retainedBytes: number;
  queuedMessages: number;
  queuedBytes: number;
  inflightOut: number;
  inflightIn: number;
  backpressured: Map<string, number>;
  bufferedBytes: Map<string, number>;
  willsPending: number;
  bytesSent: number;
}

export function snapshot(broker: Broker): Snapshot {
  const s: Snapshot = {
    connections: new Map(),
    socketsOpen: new Map(),
    sessionsOnline: 0,
    sessionsOffline: 0,
    subscriptionsNormal: 0,
    subscriptionsShared: 0,
    topicFilters: 0,
    retainedMessages: broker.retained.size,
    retainedBytes: 0,
    queuedMessages: 0,
    queuedBytes: 0,
    inflightOut: 0,
    inflightIn: 0,
    backpressured: new Map(),
    bufferedBytes: new Map(),
    willsPending: 0,
    bytesSent: broker.obs.bytesOutClosed,
  };
  const limit = broker.limits.maxWriteBuffer;
  for (const c of broker.clients) {
    const meta = c.conn.meta;
    const where = `${meta.listener}\0${meta.transport}`;
    add(s.socketsOpen, where, 1);
    s.bytesSent += c.conn.bytesOut;
    const buffered = c.conn.buffered;
    add(s.bufferedBytes, meta.listener, buffered);
    add(s.backpressured, meta.listener, buffered >= limit ? 1 : 0);
    if (c.state !== ClientState.Connected) continue;
    add(s.connections, `${where}\0${c.version}`, 1);
    if (c.will !== undefined) s.willsPending++;
  }
  const filters = new Set<string>();
  for (const session of broker.sessions.values()) {
    if (session.client !== null) s.sessionsOnline++;
    else s.sessionsOffline++;
    if (session.pendingWill !== null) s.willsPending++;
    const out = session.out;
    s.queuedMessages += out.queuedCount;
    s.queuedBytes += out.queuedBytes;
    s.inflightOut += out.inflightCount;
    if (session.inboundQos2 !== null) s.inflightIn += session.inboundQos2.size;
    const subs = session.subscriptionsIfAny;
    if (subs === null) continue;
    for (const sub of subs.values()) {
      if (sub.group !== null) s.subscriptionsShared++;
      else s.subscriptionsNormal++;
      filters.add(sub.filter);
    }
  }
  s.topicFilters = filters.size;
  for (const m of broker.retained.iterate('#')) s.retainedBytes += m.payload.length;
  for (const m of broker.retained.iterate('$SYS/#')) s.retainedBytes += m.payload.length;
  return s;
}

function add(map: Map<string, number>, key: string, n: number): void {
  map.set(key, (map.get(key) ?? 0) + n);
}

function split(map: Map<string, number>, names: string[]): Sample[] {
  const out: Sample[] = [];
  for (const [key, value] of map) {
    const parts = key.split('\0');
    const labels: Labels = {};
    names.forEach((n, i) => (labels[n] = parts[i] ?? ''));
    out.push({ labels, value });
  }
  return out;
}

/** The samples of a fixed-bucket recorder, in Prometheus' cumulative form. */
function histogramSamples(name: string, r: Recorder, labels: Labels = {}): Sample[] {
  const out: Sample[] = [];
  let cum = 0;
  for (let i = 0; i < r.bounds.length; i++) {
    cum += r.counts[i]!;
    out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: r.bounds[i]! }, value: cum });
  }
  cum += r.counts[r.bounds.length]!;
  out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: cum });
  out.push({ metricName: `${name}_sum`, labels, value: r.sum });
  out.push({ metricName: `${name}_count`, labels, value: r.count });
  return out;
}

export interface MetricsRegistry {
  readonly registry: client.Registry;
  /** Read the broker's state for the next render. */
  refresh(): void;
}

/** Build the registry for one exposition format. */
export function buildRegistry(broker: Broker, openMetrics: boolean): MetricsRegistry {
  const registry = new client.Registry();
  if (openMetrics) (registry as unknown as client.Registry<client.OpenMetricsContentType>).setContentType(client.Registry.OPENMETRICS_CONTENT_TYPE);
  client.collectDefaultMetrics({ register: registry });
  let snap: Snapshot | null = null;
  const state = (): Snapshot => (snap ??= snapshot(broker));
  const stats = broker.stats;
  const obs = broker.obs;
  const version = petrelVersionSync();

  const metric = (name: string, type: Kind, help: string, read: () => Sample[]): void => {
    // OpenMetrics: a counter's family name has no _total (prom-client adds it to each sample).
    const family = openMetrics && type === 'counter' ? name.replace(/_total$/, '') : name;
    registry.registerMetric(new Custom(family, help, type, read) as unknown as client.Metric);
  };
  const one = (value: number): Sample[] => [{ value }];
  const byLabel = (label: string, values: Record<string, number>): Sample[] =>
    Object.entries(values).map(([k, value]) => ({ labels: { [label]: k }, value }));

  // ---- identity ----
  metric('petrel_build_info', 'gauge', 'Petrel version and Node.js version (value 1).', () => [{ labels: { version, node_version: process.version }, value: 1 }]);
  metric('petrel_uptime_seconds', 'gauge', 'Seconds since the broker opened its store.', () => one(broker.startedAt === 0 ? 0 : (Date.now() - broker.startedAt) / 1000));

  // ---- gauges from state ----
  metric('petrel_connections', 'gauge', 'Connections past CONNACK, by listener, transport and protocol version (3, 4 = 3.1.1, 5).', () =>
    split(state().connections, ['listener', 'transport', 'proto']),
  );
  metric('petrel_connections_max', 'gauge', 'Most connections past CONNACK at once since start.', () => one(obs.maxConnected));
  metric('petrel_sockets_open', 'gauge', 'Open sockets (connected or not yet), by listener and transport.', () => split(state().socketsOpen, ['listener', 'transport']));
  metric('petrel_sessions', 'gauge', 'Sessions, by state (online: a connection holds it; offline: kept for a reconnect).', () =>
    byLabel('state', { online: state().sessionsOnline, offline: state().sessionsOffline }),
  );
  metric('petrel_subscriptions', 'gauge', 'Subscriptions of sessions, by kind (normal, shared: $share/...).', () =>
    byLabel('kind', { normal: state().subscriptionsNormal, shared: state().subscriptionsShared }),
  );
  metric('petrel_topic_filters', 'gauge', 'Distinct topic filters subscribed to.', () => one(state().topicFilters));
  metric('petrel_retained_messages', 'gauge', 'Retained messages held.', () => one(state().retainedMessages));
  metric('petrel_retained_bytes', 'gauge', 'Payload bytes of the retained messages.', () => one(state().retainedBytes));
  metric('petrel_queued_messages', 'gauge', 'QoS 1/2 messages queued or in flight for sessions (heap and store).', () => one(state().queuedMessages));
  metric('petrel_queued_bytes', 'gauge', 'Payload bytes of the queued messages.', () => one(state().queuedBytes));
  metric('petrel_inflight_messages', 'gauge', 'Messages in flight: out = sent to clients, not yet acknowledged; in = inbound QoS 2 awaiting PUBREL.', () =>
    byLabel('direction', { out: state().inflightOut, in: state().inflightIn }),
  );
  metric('petrel_connections_backpressured', 'gauge', 'Connections with at least limits.maxWriteBuffer bytes unsent, by listener.', () =>
    split(state().backpressured, ['listener']),
  );
  metric('petrel_outgoing_buffered_bytes', 'gauge', 'Bytes written to connections and not yet sent, by listener.', () => split(state().bufferedBytes, ['listener']));
  metric('petrel_will_messages_pending', 'gauge', 'Wills that may still be published (connected clients with a will, delayed wills).', () => one(state().willsPending));
  metric('petrel_memory_high', 'gauge', '1 while memory is above limits.memoryLimit (new CONNECTs refused, idle connections not read).', () => one(broker.memory.high ? 1 : 0));

  // ---- counters ----
  metric('petrel_sockets_opened_total', 'counter', 'Sockets accepted, by listener and transport (refused ones are in petrel_connections_rejected_total).', () => {
    const m = new Map(obs.closedByListener);
    for (const [k, v] of state().socketsOpen) add(m, k, v);
    return split(m, ['listener', 'transport']);
  });
  metric('petrel_sockets_closed_total', 'counter', 'Sockets closed, by listener, transport and reason.', () => split(obs.socketsClosed, ['listener', 'transport', 'reason']));
  metric('petrel_connections_rejected_total', 'counter', 'Connections refused before CONNECT was read, or for memory, by reason.', () =>
    byLabel('reason', {
      max_connections: stats.connectionsRefusedLimit + stats.connectionsRefusedMaxConnections,
      rate_limit: stats.connectionsRefusedAddressRate + stats.connectionsRefusedRate,
      memory: stats.connectsRefusedMemory,
      proxy_header: stats.proxyHeadersRefused,
      tls_handshake: stats.tlsHandshakesFailed,
      tls_renegotiation: stats.tlsRenegotiationsRefused,
      websocket_upgrade: stats.wsUpgradesRefused,
    }),
  );
  metric('petrel_connack_sent_total', 'counter', 'CONNACKs sent, by reason code (MQTT 5 codes; 3.1.1 return codes are mapped from them).', () => {
    const out: Sample[] = [];
    for (let code = 0; code < 256; code++) {
      const v = obs.connack[code]!;
      if (v > 0 || code === 0) out.push({ labels: { reason_code: `0x${code.toString(16).padStart(2, '0')}` }, value: v });
    }
    return out;
  });
  metric('petrel_disconnects_total', 'counter', 'Connected clients gone, by initiator (client, server) and reason.', () => {
    // The usual series exist from the start (at 0), so that rate() and alerts see them before the first event.
    const m = new Map(COMMON_DISCONNECTS.map((k) => [k, 0]));
    for (const [k, v] of obs.disconnects) m.set(k, v);
    return split(m, ['initiator', 'reason']);
  });
  metric('petrel_packets_received_total', 'counter', 'MQTT packets received, by type.', () =>
    RECEIVED_TYPES.map((t) => ({ labels: { type: PACKET_NAMES[t]! }, value: obs.packetsIn[t]! })),
  );
  metric('petrel_packets_sent_total', 'counter', 'MQTT packets sent, by type.', () => SENT_TYPES.map((t) => ({ labels: { type: PACKET_NAMES[t]! }, value: obs.packetsOut[t]! })));
  metric('petrel_packet_errors_total', 'counter', 'Packets refused or not sent, by error.', () =>
    byLabel('error', {
      protocol_error: stats.protocolErrors,
      too_large_outbound: stats.packetsTooLarge,
      topic_too_deep: stats.topicLevelsRefused,
      topic_too_long: stats.topicLengthRefused,
      internal: stats.internalErrors,
    }),
  );
  metric('petrel_bytes_received_total', 'counter', 'Bytes read from client connections.', () => one(stats.bytesIn));
  metric('petrel_bytes_sent_total', 'counter', 'Bytes written to client connections.', () => one(state().bytesSent));
  metric('petrel_publish_payload_bytes_received_total', 'counter', 'PUBLISH payload bytes received from clients.', () => one(obs.payloadBytesIn));
  metric('petrel_publish_payload_bytes_sent_total', 'counter', 'PUBLISH payload bytes sent to clients.', () => one(obs.payloadBytesOut));
  const perQos = (a: Float64Array, from = 0): Sample[] => [0, 1, 2].filter((q) => q >= from).map((q) => ({ labels: { qos: q }, value: a[q]! }));
  metric('petrel_messages_received_total', 'counter', 'PUBLISH messages received from clients, by QoS.', () => perQos(obs.messagesIn));
  metric('petrel_messages_sent_total', 'counter', 'PUBLISH messages sent to clients, by QoS (re-sends included).', () => perQos(obs.messagesOut));
  metric('petrel_messages_delivered_total', 'counter', 'Messages handed to session queues (one per matched session), by the QoS of the delivery.', () => perQos(obs.delivered));
  metric('petrel_messages_acked_total', 'counter', 'Outbound QoS 1 PUBACKs and QoS 2 PUBCOMPs received, by QoS.', () => perQos(obs.acked, 1));
  metric('petrel_messages_dropped_total', 'counter', 'Messages not delivered, by reason.', () =>
    byLabel('reason', {
      no_subscribers: obs.droppedNoSubscribers,
      qos0_slow_client: Math.max(0, stats.droppedQos0 - obs.droppedQos0Offline),
      qos0_offline: obs.droppedQos0Offline,
      queue_full: stats.droppedQueueFull,
      too_large: stats.droppedTooLarge,
      expired: stats.expired,
      not_authorized: stats.publishDenied,
      local_subscriber_full: stats.localDropped,
    }),
  );
  metric('petrel_will_messages_published_total', 'counter', 'Wills published.', () => one(stats.willsPublished));
  metric('petrel_session_events_total', 'counter', 'Session events: created, resumed, taken_over (by a new connection), expired.', () =>
    byLabel('event', {
      created: obs.sessionsCreated,
      resumed: obs.sessionsResumed,
      taken_over: obs.disconnects.get('server\0taken_over') ?? 0,
      expired: obs.sessionsExpired,
    }),
  );
  metric('petrel_authentication_total', 'counter', 'CONNECT authentication results (failure: CONNACK 0x86, 0x87 or 0x8C).', () =>
    byLabel('result', { success: obs.connack[0]!, failure: obs.connack[0x86]! + obs.connack[0x87]! + obs.connack[0x8c]! }),
  );
  metric('petrel_authorization_total', 'counter', 'Authorization results, by action and result.', () => [
    { labels: { action: 'publish', result: 'allow' }, value: obs.published },
    { labels: { action: 'publish', result: 'deny' }, value: stats.publishDenied },
    { labels: { action: 'subscribe', result: 'deny' }, value: stats.subscribeDenied },
  ]);
  metric('petrel_store_commits_total', 'counter', 'Store commits (group commits: one per event-loop turn with writes).', () => one(broker.committer.commits));
  metric('petrel_memory_episodes_total', 'counter', 'Times memory went above limits.memoryLimit.', () => one(stats.memoryEpisodes));
  metric('petrel_publish_rate_limited_total', 'counter', 'Clients over limits.maxPublishRate / maxPublishBytesRate, by action (paused, disconnected).', () =>
    byLabel('action', { paused: stats.publishRatePauses, disconnected: stats.publishRateDisconnects }),
  );

  // ---- histograms (recorded only while metrics are on) ----
  if (obs.timing) {
    const h = (name: string, help: string, read: () => Sample[]): void => metric(name, 'histogram', help, read);
    h('petrel_publish_dispatch_seconds', 'From the socket read that brought a PUBLISH to the end of that read\'s work, when the message is in every matching session queue, by QoS.', () =>
      [0, 1, 2].flatMap((q) => histogramSamples('petrel_publish_dispatch_seconds', obs.dispatch[q]!, { qos: q })),
    );
    h('petrel_delivery_ack_seconds', 'PUBLISH sent to a client to its PUBACK (QoS 1) or PUBCOMP (QoS 2).', () =>
      [1, 2].flatMap((q) => histogramSamples('petrel_delivery_ack_seconds', obs.ackRoundTrip[q]!, { qos: q })),
    );
    h('petrel_connect_duration_seconds', 'Socket accepted to CONNACK sent (authentication and session setup included).', () =>
      histogramSamples('petrel_connect_duration_seconds', obs.connectDuration),
    );
    h('petrel_auth_duration_seconds', 'CONNECT received to the authentication decision, by result (success, failure: any refusal).', () => [
      ...histogramSamples('petrel_auth_duration_seconds', obs.authSuccess, { result: 'success' }),
      ...histogramSamples('petrel_auth_duration_seconds', obs.authFailure, { result: 'failure' }),
    ]);
    h('petrel_store_commit_seconds', 'Duration of one store commit (group commit).', () => histogramSamples('petrel_store_commit_seconds', obs.commit));
    h('petrel_eventloop_delay_seconds', 'Event-loop delay, sampled every 50 ms.', () => histogramSamples('petrel_eventloop_delay_seconds', obs.eventLoop));
    h('petrel_publish_payload_size_bytes', 'Payload size of PUBLISH messages received from clients.', () =>
      histogramSamples('petrel_publish_payload_size_bytes', obs.payloadSize),
    );
    h('petrel_publish_fanout', 'Sessions each accepted PUBLISH was routed to.', () => histogramSamples('petrel_publish_fanout', obs.fanout));
  }
  return {
    registry,
    refresh(): void {
      snap = null;
      // Observations waiting for the end of their run (counters.ts) go in before the histograms are read.
      obs.settle();
    },
  };
}

/** Sample the event-loop delay into obs.eventLoop every 50 ms until stopped. */
export function startEventLoopSampler(record: Recorder): () => void {
  const PERIOD = 50;
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    record.observe(Math.max(0, now - last - PERIOD) / 1000);
    last = now;
  }, PERIOD);
  timer.unref();
  return () => clearInterval(timer);
}
