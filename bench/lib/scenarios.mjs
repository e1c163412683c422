// The benchmark scenarios. All MQTT 3.1.1, 64-byte payloads unless said.
//
// kind 'throughput': loadgen publishers -> subscribers; metric = messages per
//   second received by all subscribers together during the measured window.
// kind 'idle': loadgen opens N idle connections on the fresh broker (RSS growth
//   per connection 2 s after the last CONNACK and once idle 15 s more; cold
//   connect rate), closes them, and opens N again (warm connect rate, the
//   goal's figure).
// kind 'inproc': Petrel's in-process API (bench/inproc.mjs), Petrel only.

const P2P = { pubs: 100, subs: 100, pubTopic: 'bench/p2p/%d', subFilter: 'bench/p2p/%d' };
const FANIN = { pubs: 10, subs: 1, pubTopic: 'bench/in/%d', subFilter: 'bench/in/+' };
const FANOUT = { pubs: 1, subs: 100, pubTopic: 'bench/out', subFilter: 'bench/out' };

export const SCENARIOS = [
  {
    id: 'fanin-qos0',
    title: 'Fan-in 10→1 (wildcard), QoS 0',
    kind: 'throughput',
    load: { ...FANIN, qos: 0 },
    metrics: [{ key: 'recv_rate', label: 'msg/s received', better: 'higher' }],
    goal: { vs: 'mosquitto', min: 1.0 },
  },
  {
    id: 'fanin-qos1',
    title: 'Fan-in 10→1 (wildcard), QoS 1',
    kind: 'throughput',
    load: { ...FANIN, qos: 1 },
    metrics: [{ key: 'recv_rate', label: 'msg/s received', better: 'higher' }],
    goal: { vs: 'mosquitto', min: 1.0 },
  },
  {
    id: 'p2p-qos0',
    title: 'Point-to-point 100 pairs, QoS 0',
    kind: 'throughput',
    load: { ...P2P, qos: 0 },
    metrics: [{ key: 'recv_rate', label: 'msg/s received', better: 'higher' }],
    goal: { vs: 'mosquitto', min: 1.0 },
  },
  {
    id: 'p2p-qos1',
    title: 'Point-to-point 100 pairs, QoS 1',
    kind: 'throughput',
    load: { ...P2P, qos: 1 },
    metrics: [{ key: 'recv_rate', label: 'msg/s received', better: 'higher' }],
    goal: { vs: 'mosquitto', min: 1.0 },
  },
  {
    id: 'p2p-qos2',
    title: 'Point-to-point 100 pairs, QoS 2',
    kind: 'throughput',
    load: { ...P2P, qos: 2 },
    metrics: [{ key: 'recv_rate', label: 'msg/s received', better: 'higher' }],
    goal: { vs: ['mosquitto', 'aedes'], min: 1.0 },
  },
  {
    // Mosquitto was seen to lose QoS 2 messages from 3.1.1 publishers with more
    // than 20 in flight: check every broker with a window well above 20.
    id: 'p2p-qos2-w100',
    title: 'Point-to-point 10 pairs, QoS 2, window 100',
    kind: 'throughput',
    load: { pubs: 10, subs: 10, pubTopic: 'bench/w/%d', subFilter: 'bench/w/%d', qos: 2, window: 100, refill: 1 },
    metrics: [{ key: 'recv_rate', label: 'msg/s received', better: 'higher' }],
    check: true,
  },
  {
    id: 'fanout-qos0',
    title: 'Fan-out 1→100, QoS 0',
    kind: 'throughput',
    load: { ...FANOUT, qos: 0 },
    metrics: [{ key: 'recv_rate', label: 'msg/s delivered', better: 'higher' }],
    goal: { vs: 'mosquitto', min: 1.0 },
  },
  {
    id: 'latency-qos1',
    title: 'Latency at 5,000 msg/s, QoS 1 (1→1)',
    kind: 'throughput',
    load: { pubs: 1, subs: 1, pubTopic: 'bench/lat', subFilter: 'bench/lat', qos: 1, rate: 5000 },
    metrics: [
      { key: 'latency.p50_us', label: 'p50 latency ms', short: 'p50', better: 'lower', scale: 1e-3 },
      { key: 'latency.p99_us', label: 'p99 latency ms', short: 'p99', better: 'lower', scale: 1e-3 },
    ],
    goal: { vs: 'aedes', metric: 'latency.p99_us', max: 1.0 },
  },
  {
    id: 'idle-10k',
    title: '10,000 idle connections',
    kind: 'idle',
    load: { conns: 10000, concurrency: 100, settle: 2, idleWait: 15 },
    quickLoad: { conns: 2000, settle: 0.5, idleWait: 0 },
    metrics: [
      { key: 'connect_rate', label: 'connections/s, warm (second round)', short: 'conn/s', better: 'higher' },
      { key: 'connect_rate_cold', label: 'connections/s, cold (first round after start)', short: 'cold conn/s', better: 'higher' },
      { key: 'rss_per_conn_idle_bytes', label: 'KB RSS per connection, idle (17 s after connecting)', short: 'RSS idle', better: 'lower', scale: 1 / 1024 },
      { key: 'rss_per_conn_bytes', label: 'KB RSS per connection, 2 s after connecting', short: 'RSS 2 s', better: 'lower', scale: 1 / 1024 },
    ],
    goal: { vs: 'mosquitto', metric: 'connect_rate', min: 0.5 },
    extraBrokers: ['node-floor'],
  },
  {
    // Same scenario on Petrel --memory and Petrel --data-dir (SQLite): the
    // interesting figure is the ratio petrel-sqlite / petrel.
    id: 'persistent-qos1',
    title: 'Persistent sessions, QoS 1, 100 pairs',
    kind: 'throughput',
    load: { ...P2P, pubTopic: 'bench/ps/%d', subFilter: 'bench/ps/%d', qos: 1, cleanSub: 0 },
    metrics: [{ key: 'recv_rate', label: 'msg/s received', better: 'higher' }],
    extraBrokers: ['petrel-sqlite', 'petrel-sqlite-power'],
  },
  {
    // bench/eventloop.mjs: the broker's own event-loop delay (monitorEventLoopDelay inside it)
    // while a 5,000 msg/s QoS 1 flow runs and SQLite work of each case happens (item 8 of issue 9).
    id: 'eventloop',
    title: 'Event-loop delay (SQLite) under a 5,000 msg/s QoS 1 flow',
    kind: 'eventloop',
    only: ['petrel'],
    metrics: ['delete', 'fanout', 'checkpoint', 'power'].flatMap((c) => [
      { key: `${c}.with.p99`, label: `ms event-loop delay p99, ${c}`, short: `${c} p99`, better: 'lower' },
      { key: `${c}.with.max`, label: `ms event-loop delay max, ${c}`, short: `${c} max`, better: 'lower' },
    ]),
  },
  {
    // The cost of metrics (issue 11): Petrel embedded (bench/metrics-broker.mjs) with /metrics and every latency
    // histogram recorded, against the same with metrics off, in the same run, alternating; the figure is the
    // ratio metrics-on / metrics-off (goal >= 0.95). QoS 1 point-to-point: dispatch, ack round trip and the
    // counters are all on its path.
    id: 'metrics-cost',
    title: 'Metrics on vs off, point-to-point 100 pairs, QoS 1',
    kind: 'throughput',
    only: ['metrics-on', 'metrics-off'],
    extraBrokers: ['metrics-off', 'metrics-on'],
    load: { ...P2P, pubTopic: 'bench/mc/%d', subFilter: 'bench/mc/%d', qos: 1 },
    metrics: [{ key: 'recv_rate', label: 'msg/s received', better: 'higher' }],
  },
  // Cluster (issue 12): 'petrel-cluster' is two nodes and their redis-server on the one broker core, publishers on
  // node 1 and subscribers on node 2 (every message crosses through Redis); single-node Petrel and Mosquitto run the
  // same load on one process. Ratios to both, in the same run.
  {
    id: 'cluster-p2p-qos0',
    title: 'Cluster: point-to-point 100 pairs across nodes, QoS 0',
    kind: 'throughput',
    only: ['petrel', 'mosquitto'],
    extraBrokers: ['petrel-cluster'],
    load: { ...P2P, pubTopic: 'bench/c0/%d', subFilter: 'bench/c0/%d', qos: 0 },
    metrics: [{ key: 'recv_rate', label: 'msg/s received', better: 'higher' }],
  },
  {
    id: 'cluster-p2p-qos1',
    title: 'Cluster: point-to-point 100 pairs across nodes, QoS 1',
    kind: 'throughput',
    only: ['petrel', 'mosquitto'],
    extraBrokers: ['petrel-cluster', 'petrel-cluster-everysec'],
    load: { ...P2P, pubTopic: 'bench/c1/%d', subFilter: 'bench/c1/%d', qos: 1 },
    metrics: [{ key: 'recv_rate', label: 'msg/s received', better: 'higher' }],
  },
  {
    // Half the subscribers on each node: each message is delivered on node 1 and crosses once to node 2.
    id: 'cluster-fanout-qos0',
    title: 'Cluster: fan-out 1→100 through two nodes, QoS 0',
    kind: 'throughput',
    only: ['petrel', 'mosquitto'],
    extraBrokers: ['petrel-cluster'],
    load: { ...FANOUT, pubTopic: 'bench/cf', subFilter: 'bench/cf', qos: 0, subAlt: 1 },
    metrics: [{ key: 'recv_rate', label: 'msg/s delivered', better: 'higher' }],
  },
  {
    id: 'cluster-latency-qos1',
    title: 'Cluster: latency at 5,000 msg/s across nodes, QoS 1 (1→1)',
    kind: 'throughput',
    only: ['petrel', 'mosquitto'],
    extraBrokers: ['petrel-cluster', 'petrel-cluster-everysec', 'petrel-cluster-free', 'petrel-cluster-everysec-free'],
    load: { pubs: 1, subs: 1, pubTopic: 'bench/clat', subFilter: 'bench/clat', qos: 1, rate: 5000 },
    metrics: [
      { key: 'latency.p50_us', label: 'p50 latency ms', short: 'p50', better: 'lower', scale: 1e-3 },
      { key: 'latency.p99_us', label: 'p99 latency ms', short: 'p99', better: 'lower', scale: 1e-3 },
    ],
  },
  {
    // `petrel --workers 2` on the same one core as a single process: what the workers cost where they cannot add
    // a core (this machine has two, and the load generator takes one).
    id: 'workers-p2p-qos1',
    title: '--workers 2 vs one process, point-to-point 100 pairs, QoS 1',
    kind: 'throughput',
    only: ['petrel'],
    extraBrokers: ['petrel-workers2'],
    load: { ...P2P, pubTopic: 'bench/wk/%d', subFilter: 'bench/wk/%d', qos: 1 },
    metrics: [{ key: 'recv_rate', label: 'msg/s received', better: 'higher' }],
  },
  {
    id: 'inproc',
    title: 'In-process API publish → for await, QoS 0',
    kind: 'inproc',
    only: ['petrel'],
    metrics: [{ key: 'rate', label: 'msg/s received', better: 'higher' }],
  },
];

export function getPath(obj, key) {
  let v = obj;
  for (const k of key.split('.')) v = v == null ? undefined : v[k];
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}
