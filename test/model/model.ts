// The operations of the model-based session test, their seeded generator, and
// the MQTT topic matching the reference model uses (our own, kept apart from
// the broker's topic tree on purpose).
//
// A sequence is generated up front from a seed and depends on nothing the broker
// answers, so the same seed always gives the same operations (PETREL_MODEL_SEED
// replays it), and a failing sequence can be shortened by leaving operations out:
// the harness skips an operation that does not apply in the state it finds (a
// SUBSCRIBE of a subscriber that is not connected, say).

import { prng } from '../helpers/random.js';

export type QoS = 0 | 1 | 2;

/** Session Expiry Interval meaning "never" (3.1.1 clean session 0 is kept this long by default). */
export const NEVER = 0xffffffff;
/** The short and the long Session Expiry Interval a v5 CONNECT or DISCONNECT may choose, seconds. */
export const SHORT_EXPIRY = 1;
export const LONG_EXPIRY = 3600;

/** Subscriber client ids s0..s(n-1); publishers p0 (3.1.1) and p1 (5.0). */
export const SUBSCRIBERS = 3;
export const PUBLISHERS = 2;

export const TOPICS = ['t/a', 't/b', 't/a/x', 't/b/y'] as const;
export const FILTERS = ['t/a', 't/b', 't/+', 't/#', 't/a/#', 't/+/y', 't/a/x'] as const;

export type Op =
  /** CONNECT for subscriber s; if s has a live connection this is a takeover. expiry: v5 Session Expiry Interval. */
  | { op: 'connect'; s: number; version: 4 | 5; clean: boolean; expiry: number; will: boolean; receiveMaximum?: number; ackDelayMs?: number }
  | { op: 'subscribe'; s: number; filter: string; qos: QoS }
  | { op: 'unsubscribe'; s: number; filter: string }
  /** One PUBLISH from publisher p, waited for (PUBACK / PUBCOMP; QoS 0: a QoS 1 barrier behind it). */
  | { op: 'publish'; p: number; topic: string; qos: QoS }
  /**
   * n QoS 1/2 PUBLISHes from p at once (MQTT.js in-flight window), all waited for; with killAfter, the broker is
   * SIGKILLed once that many were acknowledged, and restarted.
   */
  | { op: 'burst'; p: number; topic: string; qos: 1 | 2; n: number; killAfter?: number }
  /** Normal DISCONNECT; v5 may set a new Session Expiry Interval (only if its CONNECT had a non-zero one [MQTT-3.14.2-2]). */
  | { op: 'disconnect'; s: number; expiry?: number }
  /** Destroy the socket without DISCONNECT. */
  | { op: 'drop'; s: number }
  /**
   * SIGKILL the broker and start it again on the same data directory. With onArrival, the kill is sent the moment
   * subscriber s receives a PUBLISH (within 2 s), the sharpest point to catch a send that preceded its commit.
   */
  | { op: 'restart'; onArrival?: number }
  | { op: 'sleep'; ms: number };

export function describeOp(o: Op): string {
  switch (o.op) {
    case 'connect':
      return `connect s${o.s} v${o.version} clean=${o.clean ? 1 : 0}${o.version === 5 ? ` expiry=${o.expiry}` : ''}${o.will ? ' will' : ''}${o.receiveMaximum !== undefined ? ` receiveMaximum=${o.receiveMaximum}` : ''}${o.ackDelayMs ? ` ackDelay=${o.ackDelayMs}ms` : ''}`;
    case 'subscribe':
      return `subscribe s${o.s} ${o.filter} qos${o.qos}`;
    case 'unsubscribe':
      return `unsubscribe s${o.s} ${o.filter}`;
    case 'publish':
      return `publish p${o.p} ${o.topic} qos${o.qos}`;
    case 'burst':
      return `burst p${o.p} ${o.topic} qos${o.qos} x${o.n}${o.killAfter !== undefined ? ` kill after ${o.killAfter} acks` : ''}`;
    case 'disconnect':
      return `disconnect s${o.s}${o.expiry !== undefined ? ` expiry=${o.expiry}` : ''}`;
    case 'drop':
      return `drop s${o.s}`;
    case 'restart':
      return `restart (SIGKILL)${o.onArrival !== undefined ? ` when s${o.onArrival} receives a PUBLISH` : ''}`;
    case 'sleep':
      return `sleep ${o.ms} ms`;
  }
}

/** MQTT topic filter matching (§4.7): '+' one level, '#' this level and everything below. */
export function matches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

export interface GenOptions {
  ops: number;
  /** Chance that a burst is large enough (over 500) to leave a backlog in the store. Default 0.25. */
  bigBurst?: number;
}

/** A sequence of operations from a seed. Only the subscribers' connected flags are simulated. */
export function generate(seed: number, opts: GenOptions): Op[] {
  const rand = prng(seed);
  // A second stream for what was added later (kills in a burst), so that a seed keeps its other operations.
  const kills = prng(seed ^ 0x5bd1e995);
  // And one for slow subscribers (acknowledging a few ms late, so that catching up on a backlog takes a while).
  const slow = prng(seed ^ 0x27d4eb2f);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const chance = (p: number): boolean => rand() < p;
  const connected: boolean[] = new Array(SUBSCRIBERS).fill(false);
  const out: Op[] = [];
  const connectOp = (s: number): Op => {
    const version = chance(0.5) ? 5 : 4;
    const op: Op = { op: 'connect', s, version, clean: chance(0.3), expiry: version === 5 ? pick([0, SHORT_EXPIRY, LONG_EXPIRY, LONG_EXPIRY]) : 0, will: chance(0.3) };
    if (version === 5 && chance(0.4)) op.receiveMaximum = pick([1, 3, 10]);
    if (slow() < 0.3) op.ackDelayMs = 1 + Math.floor(slow() * 4);
    return op;
  };
  // Start with every subscriber connected and subscribed, so that short sequences do something.
  for (let s = 0; s < SUBSCRIBERS; s++) {
    out.push(connectOp(s));
    connected[s] = true;
    out.push({ op: 'subscribe', s, filter: pick(FILTERS), qos: pick([1, 2, 1, 0] as const) });
  }
  while (out.length < opts.ops) {
    const s = Math.floor(rand() * SUBSCRIBERS);
    const r = rand() * 100;
    if (r < 14) {
      out.push(connectOp(s)); // a takeover when s is connected
      connected[s] = true;
    } else if (r < 26) {
      if (connected[s]) out.push({ op: 'subscribe', s, filter: pick(FILTERS), qos: pick([0, 1, 2, 1, 2] as const) });
    } else if (r < 31) {
      if (connected[s]) out.push({ op: 'unsubscribe', s, filter: pick(FILTERS) });
    } else if (r < 60) {
      out.push({ op: 'publish', p: Math.floor(rand() * PUBLISHERS), topic: pick(TOPICS), qos: pick([0, 1, 2, 1, 2] as const) });
    } else if (r < 65) {
      const big = chance(opts.bigBurst ?? 0.25);
      out.push({ op: 'burst', p: Math.floor(rand() * PUBLISHERS), topic: pick(TOPICS), qos: pick([1, 2, 1] as const), n: big ? 520 + Math.floor(rand() * 200) : 5 + Math.floor(rand() * 40) });
    } else if (r < 77) {
      if (connected[s]) {
        const op: Op = { op: 'disconnect', s };
        if (chance(0.3)) op.expiry = pick([0, SHORT_EXPIRY, LONG_EXPIRY]);
        out.push(op);
        connected[s] = false;
      }
    } else if (r < 86) {
      if (connected[s]) {
        out.push({ op: 'drop', s });
        connected[s] = false;
      }
    } else if (r < 90) {
      // Half of the kills come in the middle of a burst, while deliveries are under way.
      if (kills() < 0.5) out.push({ op: 'restart' });
      else {
        const n = 20 + Math.floor(kills() * 300);
        out.push({ op: 'burst', p: Math.floor(kills() * PUBLISHERS), topic: pick(TOPICS), qos: kills() < 0.5 ? 1 : 2, n, killAfter: 1 + Math.floor(kills() * (n - 1)) });
      }
      connected.fill(false);
    } else if (r < 93) {
      out.push({ op: 'sleep', ms: 300 + Math.floor(rand() * 3000) });
    } else {
      // A subscriber that is offline comes back (more resumptions, with or without clean start).
      if (!connected[s]) {
        out.push(connectOp(s));
        connected[s] = true;
      }
    }
  }
  return out;
}
