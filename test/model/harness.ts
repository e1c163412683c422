// Runs a sequence of model operations (model.ts) against a real `petrel` process
// with the SQLite store in a temporary directory, keeps the reference model of
// MQTT session semantics beside it, and reports every place where the broker
// did what the model does not allow.
//
// The reference model, per client id:
// - A session ("incarnation") begins with a CONNECT that gets Session Present 0 and
//   ends with Clean Start / Clean Session 1 on a later CONNECT [MQTT-3.1.2-4],
//   [MQTT-3.1.2-5]; with the close of its connection if its expiry is 0 (3.1.1:
//   Clean Session 1 [MQTT-3.1.2-6]; 5.0: Session Expiry 0, also when set at
//   DISCONNECT), a takeover included; or when its Session Expiry Interval has
//   passed offline [MQTT-3.1.2-23]. A 3.1.1 Clean Session 0 session never expires
//   (Petrel's default persistentSessionExpiry). A broker restart ends the
//   connections; the sessions whose connections were live count their expiry from
//   the restart (ARCHITECTURE.md, "Durability rule").
// - Expiry is measured with the test's own clock, so each offline session has a
//   window in which it may or may not have expired; a CONNECT in that window
//   accepts either Session Present, and the answer settles which it was.
// - A message published while a session exists and matches one of its
//   subscriptions is *allowed* for it, at min(publish QoS, highest matching
//   granted QoS) [MQTT-3.8.4-8]; at QoS 1/2, once the publisher had its
//   PUBACK/PUBCOMP, it is *required*: it must arrive at least once if the session
//   is still there at the end [MQTT-4.5.0-1] (QoS 2 exactly once [MQTT-4.3.3]).
//   UNSUBSCRIBE lets the broker drop what it had queued only for that filter
//   [MQTT-3.10.4-3], so such messages stop being required.
// - Nothing else may arrive: a message published before a clean start, after the
//   session expired, or to a removed subscription is a delivery to a session that
//   had ended (or never asked for it).
// - Per publisher and topic, first deliveries at QoS 1/2 to one session keep the
//   publish order [MQTT-4.6.0-6]; a QoS 1 message seen again must carry DUP
//   [MQTT-3.3.1-1].
// - Wills (QoS 1, delay 0) go to a persistent watcher: required after a drop
//   [MQTT-3.1.2-8] and after a broker kill (Petrel restores them), allowed after a
//   takeover, forbidden after a normal DISCONNECT [MQTT-3.1.2-10].
// - Before an operation ends a connected session, and at the end (every session
//   still there reconnected), the harness waits, bounded, for what is required.
// - No drop is allowed: the broker runs with its default limits (maxQueuedMessages
//   100,000, maxQueuedBytes 256 MiB per session), far above what a sequence queues
//   (a few thousand small messages), so no message may be dropped under a limit.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { kill, startPetrel, type PetrelProcess } from '../durability/petrel-process.js';
import { connectMqtt, endAll } from '../helpers/mqttjs.js';
import { sleep } from '../helpers/wait.js';
import { ClientSessionState, ModelConnection, type Arrival } from './client.js';
import { describeOp, matches, NEVER, PUBLISHERS, SUBSCRIBERS, type Op, type QoS } from './model.js';

/** A session may expire this much before its interval counted from the moment before the disconnect was sent. */
const EARLY_MS = 50;
/** ...and this much after it counted from when the test saw the connection end (the broker may notice later, and timers run late). */
const LATE_MS = 2000;
/** Waiting for required messages ends when nothing arrived for this long (or at SETTLE_MAX_MS). */
const QUIET_MS = Number(process.env.PETREL_MODEL_QUIET_MS ?? 5000);
const SETTLE_MAX_MS = 30_000;
/**
 * Known broker bugs the model can be told to accept (comma list in PETREL_MODEL_TOLERATE), so that a long run
 * looks for other ones: a violation kind ('dup-flag', 'will-unexpected', ...) is then logged, not reported; and
 * 'takeover-present' accepts Session Present 1 (and an unchecked session) for a Clean Start 0 CONNECT that takes
 * over, or follows within 2 s the drop of, a connection whose session had expiry 0.
 */
const TOLERATE = new Set((process.env.PETREL_MODEL_TOLERATE ?? '').split(',').map((s) => s.trim()).filter(Boolean));

export interface Violation {
  kind:
    | 'session-present'
    | 'lost'
    | 'not-allowed'
    | 'qos'
    | 'qos2-duplicate'
    | 'dup-flag'
    | 'order'
    | 'will-missing'
    | 'will-unexpected'
    | 'unexpected-close'
    | 'error';
  /** Index of the operation during which it was seen (ops.length: the final check). */
  at: number;
  detail: string;
}

export interface RunResult {
  violations: Violation[];
  /** One line per operation, with what the broker answered. */
  log: string[];
  ops: number;
  messages: number;
  ms: number;
}

interface MessageRecord {
  id: number;
  pub: number;
  topic: string;
  qos: QoS;
  at: number; // op index
}

interface Allowed {
  qos: QoS;
  required: boolean;
}

class Incarnation {
  readonly subs = new Map<string, QoS>();
  ended = false;
  conn: Conn | null = null;
  offline: { lo: number; hi: number } | null = null;
  readonly allowed = new Map<number, Allowed>();
  readonly delivered = new Map<number, number>();
  readonly lastFirst = new Map<string, number>();
  state = new ClientSessionState();
  /** After the broker disagreed about Session Present: contents unknown, deliveries not checked. */
  lenient = false;
  constructor(
    readonly id: number,
    readonly sid: number,
    public version: 4 | 5,
    public expiry: number,
    readonly startedAt: number,
  ) {}
  get name(): string {
    return `s${this.sid}#${this.id}`;
  }
  missing(): number[] {
    const out: number[] = [];
    for (const [id, a] of this.allowed) if (a.required && !this.delivered.has(id)) out.push(id);
    return out;
  }
}

interface Conn {
  key: string;
  mc: ModelConnection;
  inc: Incarnation;
  /** Will payload, if the CONNECT carried one. */
  will: string | null;
  connectExpiry: number;
  /** The test closed it (or expects the broker to): a close is not a violation. */
  closing: boolean;
}

interface Publisher {
  client: MqttClient;
}

export class Harness {
  private dir = mkdtempSync(join(tmpdir(), 'petrel-model-'));
  private broker: PetrelProcess | null = null;
  private pubs: Publisher[] = [];
  private watcher: ModelConnection | null = null;
  private watcherState = new ClientSessionState();
  private readonly willsSeen = new Map<string, number>();
  private readonly willsRequired = new Set<string>();
  private readonly willsAllowed = new Set<string>();
  private readonly sessions: (Incarnation | null)[] = new Array(SUBSCRIBERS).fill(null);
  private readonly incarnations: Incarnation[] = [];
  private readonly messages = new Map<number, MessageRecord>();
  /** When a subscriber's expiry-0 session last ended by a dropped connection (for 'takeover-present'). */
  private readonly droppedAt: number[] = [];
  private readonly violations: Violation[] = [];
  private readonly log: string[] = [];
  private nextMsg = 1;
  private nextInc = 1;
  private nextConn = 1;
  private opIndex = 0;
  private progress = 0; // arrivals, for the quiet wait
  private readonly prefix: string;
  /** restart onArrival: kill the broker from the arrival handler of this session's connection. */
  private killOnArrival: { inc: Incarnation; kill: () => void } | null = null;

  constructor(readonly label: string) {
    this.prefix = `m${process.pid}x${Math.random().toString(36).slice(2, 6)}`;
  }

  private violate(kind: Violation['kind'], detail: string): void {
    if (TOLERATE.has(kind)) {
      this.log.push(`    (tolerated) ${kind}: ${detail}`);
      return;
    }
    this.violations.push({ kind, at: this.opIndex, detail });
    this.log.push(`    !! ${kind}: ${detail}`);
  }

  private get port(): number {
    return this.broker!.port;
  }

  private clientId(sid: number): string {
    return `${this.prefix}-s${sid}`;
  }

  // ---- broker and the fixed clients ----

  private async startBroker(): Promise<void> {
    this.broker = await startPetrel(['--data-dir', this.dir, '--close-timeout', '1']);
    const listenedAt = Date.now();
    for (const inc of this.sessions) if (inc?.offline && inc.offline.hi === -1) inc.offline.hi = listenedAt;
    this.pubs = [];
    for (let p = 0; p < PUBLISHERS; p++) {
      const { client } = await connectMqtt(`mqtt://127.0.0.1:${this.port}`, {
        clientId: `${this.prefix}-p${p}`,
        protocolVersion: p === 0 ? 4 : 5,
        clean: true,
        ...(p === 1 ? { properties: { sessionExpiryInterval: 0 } } : {}),
      }, 10_000);
      client.on('error', () => {});
      this.pubs.push({ client });
    }
    const { conn, connack } = await ModelConnection.connect(this.port, { clientId: `${this.prefix}-w`, version: 4, clean: false, expiry: 0 }, this.watcherState);
    if (this.watcher !== null && !connack.sessionPresent) this.violate('session-present', 'the will watcher (3.1.1, clean session 0) lost its session');
    this.watcher = conn;
    conn.onArrival = (a) => this.onWill(a);
    if (!connack.sessionPresent) await conn.subscribe('will/#', 1);
  }

  private onWill(a: Arrival): void {
    this.progress++;
    if (!a.delivered) return;
    const w = a.packet.payload.toString();
    this.willsSeen.set(w, (this.willsSeen.get(w) ?? 0) + 1);
  }

  // ---- the model ----

  private status(inc: Incarnation, t: number): 'alive' | 'maybe' | 'ended' {
    if (inc.ended) return 'ended';
    if (inc.conn !== null || inc.offline === null || inc.expiry === NEVER) return 'alive';
    const hi = inc.offline.hi === -1 ? t : inc.offline.hi;
    if (t < inc.offline.lo + inc.expiry * 1000 - EARLY_MS) return 'alive';
    if (t > hi + inc.expiry * 1000 + LATE_MS) return 'ended';
    return 'maybe';
  }

  private end(inc: Incarnation, why: string): void {
    if (inc.ended) return;
    inc.ended = true;
    this.log.push(`    ${inc.name} ended: ${why}`);
    if (this.sessions[inc.sid] === inc) this.sessions[inc.sid] = null;
  }

  /** The current session of sid, with lazy expiry. */
  private current(sid: number, t = Date.now()): Incarnation | null {
    const inc = this.sessions[sid];
    if (inc && this.status(inc, t) === 'ended') this.end(inc, 'expired');
    return this.sessions[sid] ?? null;
  }

  private onArrival(c: Conn, a: Arrival): void {
    this.progress++;
    if (this.killOnArrival?.inc === c.inc) {
      this.killOnArrival.kill();
      this.killOnArrival = null;
    }
    const p = a.packet;
    const text = p.payload.toString();
    const inc = c.inc;
    const m = /^m:(\d+)$/.exec(text);
    if (!m) {
      this.violate('not-allowed', `${inc.name} on ${c.key} got an unknown payload ${JSON.stringify(text.slice(0, 40))} on ${p.topic}`);
      return;
    }
    const id = Number(m[1]);
    const rec = this.messages.get(id);
    if (inc.lenient) return;
    const allowed = inc.allowed.get(id);
    if (allowed === undefined) {
      const others = this.incarnations.filter((i) => i.allowed.has(id)).map((i) => i.name);
      this.violate(
        'not-allowed',
        `${inc.name} (connection ${c.key}) got message ${id} (${rec ? `${rec.topic} qos${rec.qos} from p${rec.pub}, published at op ${rec.at}` : 'unknown'}), which it was not subscribed to while it existed${others.length ? `; it was for ${others.join(', ')}` : ''}`,
      );
      return;
    }
    if (p.qos !== allowed.qos) this.violate('qos', `${inc.name} got message ${id} at QoS ${p.qos}, expected ${allowed.qos}`);
    if (!a.delivered) return; // a QoS 2 re-send of a packet id still held: the same delivery
    const n = (inc.delivered.get(id) ?? 0) + 1;
    inc.delivered.set(id, n);
    if (n > 1) {
      if (p.qos === 2) this.violate('qos2-duplicate', `${inc.name} got QoS 2 message ${id} a second time (packet id ${p.packetId}, dup=${p.dup}) on ${c.key}`);
      else if (p.qos === 1 && !p.dup) this.violate('dup-flag', `${inc.name} got QoS 1 message ${id} again without DUP (packet id ${p.packetId}) on ${c.key}`);
      return;
    }
    if (p.qos > 0 && rec) {
      const key = `${rec.pub}|${rec.topic}`;
      const last = inc.lastFirst.get(key) ?? 0;
      if (id < last) this.violate('order', `${inc.name} got message ${id} after ${last} (both from p${rec.pub} on ${rec.topic})`);
      else inc.lastFirst.set(key, id);
    }
  }

  /** Wait until inc has every required message, or nothing arrived for QUIET_MS. */
  private async settle(incs: Incarnation[]): Promise<void> {
    const start = Date.now();
    let last = this.progress;
    let lastChange = Date.now();
    const done = (): boolean => incs.every((i) => i.lenient || i.conn === null || i.conn.mc.closed || i.missing().length === 0);
    while (!done() && Date.now() - start < SETTLE_MAX_MS) {
      await sleep(10);
      if (this.progress !== last) {
        last = this.progress;
        lastChange = Date.now();
      } else if (Date.now() - lastChange > QUIET_MS) break;
    }
  }

  private reportMissing(inc: Incarnation, when: string): void {
    const missing = inc.missing();
    if (inc.lenient || missing.length === 0) return;
    const sample = missing.slice(0, 8).map((id) => {
      const r = this.messages.get(id)!;
      return `${id} (${r.topic} qos${r.qos} p${r.pub}, op ${r.at})`;
    });
    this.violate(
      'lost',
      `${inc.name} (v${inc.version}, expiry ${inc.expiry}) ${when}: ${missing.length} acknowledged message(s) never arrived: ${sample.join(', ')}${missing.length > 8 ? ', ...' : ''}; delivered ${inc.delivered.size}`,
    );
  }

  /** Settle, then report what a connected session that is about to end never got. */
  private async settleBeforeEnd(incs: Incarnation[], when: string): Promise<void> {
    const live = incs.filter((i) => i.conn !== null && !i.ended);
    if (live.length === 0) return;
    await this.settle(live);
    for (const inc of live) this.reportMissing(inc, when);
    // Reported once: what is missing now is not required again.
    for (const inc of live) for (const id of inc.missing()) inc.allowed.get(id)!.required = false;
  }

  private watchClose(c: Conn): void {
    void c.mc.closedPromise.then(() => {
      if (c.closing) return;
      this.violate('unexpected-close', `the broker closed ${c.key} (${c.inc.name}) without being asked to`);
      if (c.inc.conn === c) {
        // Treat it as a drop, so that the model stays consistent.
        c.inc.conn = null;
        if (c.inc.expiry === 0) this.end(c.inc, 'connection closed by the broker');
        else c.inc.offline = { lo: Date.now(), hi: Date.now() };
      }
    });
  }

  // ---- operations ----

  private async connect(o: Extract<Op, { op: 'connect' }>): Promise<string> {
    const sid = o.s;
    const t0 = Date.now();
    const cur = this.current(sid, t0);
    const old = cur?.conn ?? null;
    const expiry = o.version === 5 ? o.expiry : o.clean ? 0 : NEVER;
    let expected: boolean | null;
    const dropped = this.droppedAt[sid];
    if (o.clean) expected = false;
    else if (cur === null) expected = TOLERATE.has('takeover-present') && dropped !== undefined && t0 - dropped < 2000 ? null : false;
    else if (old !== null) {
      // An expiry-0 session ends with the connection taken over [MQTT-3.1.2-6], [MQTT-3.1.2-23].
      expected = cur.expiry !== 0 ? true : TOLERATE.has('takeover-present') ? null : false;
    }
    else {
      const st = this.status(cur, t0);
      expected = st === 'alive' ? true : st === 'ended' ? false : null;
    }
    if (old !== null && cur !== null && (o.clean || cur.expiry === 0)) await this.settleBeforeEnd([cur], 'before a takeover that ends it');
    if (old !== null) {
      old.closing = true;
      if (old.will) this.willsAllowed.add(old.will);
    }
    const key = `c${this.nextConn++}`;
    const will = o.will ? `will:${key}` : null;
    const state = cur !== null && !cur.ended ? cur.state : new ClientSessionState();
    const { conn: mc, connack } = await ModelConnection.connect(
      this.port,
      {
        clientId: this.clientId(sid),
        version: o.version,
        clean: o.clean,
        expiry: o.expiry,
        ...(o.receiveMaximum !== undefined && o.version === 5 ? { receiveMaximum: o.receiveMaximum } : {}),
        ...(o.ackDelayMs !== undefined ? { ackDelayMs: o.ackDelayMs } : {}),
        ...(will !== null ? { will: { topic: `will/s${sid}`, payload: Buffer.from(will), qos: 1, retain: false } } : {}),
      },
      state,
    );
    if (connack.reasonCode !== 0) throw new Error(`CONNACK refused 0x${connack.reasonCode.toString(16)}`);
    const present = connack.sessionPresent;
    let note = '';
    if (expected !== null && present !== expected) {
      this.violate(
        'session-present',
        `${describeOp(o)}: Session Present ${present ? 1 : 0}, expected ${expected ? 1 : 0} (${cur === null ? 'no session' : `${cur.name} v${cur.version} expiry ${cur.expiry}, ${old ? `connected as ${old.key}` : 'offline'}`})`,
      );
      note = ' (following the broker)';
    }
    let inc: Incarnation;
    if (present && cur !== null && !cur.ended) {
      inc = cur;
      if (expected === false) inc.lenient = true;
    } else {
      if (cur !== null) this.end(cur, o.clean ? 'clean start' : old ? 'taken over (expiry 0)' : 'expired (Session Present 0)');
      inc = new Incarnation(this.nextInc++, sid, o.version, expiry, t0);
      if (present) inc.lenient = true; // the broker has a session the model does not know
      this.incarnations.push(inc);
      this.sessions[sid] = inc;
    }
    // On Session Present 0 the connection started a fresh client state; otherwise it continues the session's.
    inc.state = mc.state;
    inc.version = o.version;
    inc.expiry = expiry;
    inc.offline = null;
    const c: Conn = { key, mc, inc, will, connectExpiry: o.version === 5 ? o.expiry : expiry, closing: false };
    inc.conn = c;
    mc.onArrival = (a) => this.onArrival(c, a);
    this.watchClose(c);
    if (old !== null) await old.mc.waitClosed(5000);
    return `${old ? 'takeover: ' : ''}${key} ${inc.name} present=${present ? 1 : 0}${expected === null ? ' (either allowed)' : ''}${note}`;
  }

  /**
   * Publish n messages from p (all at once) and wait for their PUBACK/PUBCOMP. With killAfter, the broker is
   * SIGKILLed as soon as that many were acknowledged (deliveries to subscribers are under way) and restarted:
   * only what was acknowledged by then is required.
   */
  private async publish(p: number, topic: string, qos: QoS, n: number, killAfter?: number): Promise<string> {
    const t0 = Date.now();
    const ids: number[] = [];
    for (let i = 0; i < n; i++) {
      const id = this.nextMsg++;
      ids.push(id);
      this.messages.set(id, { id, pub: p, topic, qos, at: this.opIndex });
    }
    // Which sessions may get it: those that exist now (or may: an offline session in its expiry window).
    const targets: [Incarnation, QoS][] = [];
    for (let s = 0; s < SUBSCRIBERS; s++) {
      const inc = this.current(s, t0);
      if (inc === null) continue;
      let max = -1;
      for (const [f, q] of inc.subs) if (matches(f, topic) && q > max) max = q;
      if (max >= 0) targets.push([inc, Math.min(max, qos) as QoS]);
    }
    // Allowed before it is sent (it may arrive before the PUBACK), required once acknowledged.
    for (const [inc, q] of targets) for (const id of ids) inc.allowed.set(id, { qos: q, required: false });
    const client = this.pubs[p]!.client;
    const acked: number[] = [];
    let note = '';
    if (killAfter === undefined) {
      await Promise.all(ids.map((id) => client.publishAsync(topic, `m:${id}`, { qos }).then(() => void acked.push(id))));
      // QoS 0: a QoS 1 PUBLISH behind it on the same connection is a barrier (packets are handled in order).
      if (qos === 0) await client.publishAsync('sync/barrier', 'b', { qos: 1 });
    } else {
      const broker = this.broker!;
      let killed = false;
      await new Promise<void>((resolve) => {
        let settled = 0;
        for (const id of ids) {
          client.publishAsync(topic, `m:${id}`, { qos }).then(
            () => {
              if (killed) return;
              acked.push(id);
              if (acked.length >= killAfter) {
                killed = true;
                broker.child.kill('SIGKILL');
                resolve();
              }
            },
            () => {},
          ).finally(() => {
            if (++settled === ids.length) resolve();
          });
        }
      });
      note = ` (killed after ${acked.length} acknowledgements; ${await this.restart(true)})`;
    }
    for (const [inc, q] of targets) {
      if (q === 0) continue;
      for (const id of acked) inc.allowed.get(id)!.required = true;
    }
    return `ids ${ids[0]}${n > 1 ? `..${ids[ids.length - 1]}` : ''} for ${targets.map(([i, q]) => `${i.name}@${q}`).join(' ') || 'nobody'}${note}`;
  }

  /** SIGKILL the broker (unless killed already) and start it again on the same data directory. */
  private async restart(killed: boolean): Promise<string> {
    const live = this.sessions.filter((i): i is Incarnation => i !== null && i.conn !== null);
    if (!killed) await this.settleBeforeEnd(live.filter((i) => i.expiry === 0), 'before a broker kill that ends it');
    for (const inc of live) inc.conn!.closing = true;
    const killedAt = Date.now();
    await kill(this.broker!, 'SIGKILL');
    for (const inc of live) {
      const c = inc.conn!;
      // The connection ended without DISCONNECT: Petrel publishes its will after the restart.
      if (c.will) this.willsRequired.add(c.will);
      c.mc.destroy();
      inc.conn = null;
      if (inc.expiry === 0) this.end(inc, 'broker killed (expiry 0)');
      else inc.offline = { lo: killedAt, hi: -1 }; // hi: when the new broker listens
    }
    this.watcher?.destroy();
    await endAll(...this.pubs.map((pub) => pub.client));
    await this.startBroker();
    return `restarted on port ${this.port}`;
  }

  private async runOp(o: Op): Promise<string> {
    switch (o.op) {
      case 'connect':
        return this.connect(o);
      case 'subscribe': {
        const inc = this.current(o.s);
        if (inc?.conn == null) return 'skipped (not connected)';
        const granted = await inc.conn.mc.subscribe(o.filter, o.qos);
        if (granted < 0x80) inc.subs.set(o.filter, granted as QoS);
        return `granted ${granted}`;
      }
      case 'unsubscribe': {
        const inc = this.current(o.s);
        if (inc?.conn == null) return 'skipped (not connected)';
        await inc.conn.mc.unsubscribe(o.filter);
        inc.subs.delete(o.filter);
        // What was queued only for the removed filter may be dropped [MQTT-3.10.4-3].
        for (const [id, a] of inc.allowed) {
          if (!a.required || inc.delivered.has(id)) continue;
          const topic = this.messages.get(id)!.topic;
          if (![...inc.subs.keys()].some((f) => matches(f, topic))) a.required = false;
        }
        return 'ok';
      }
      case 'publish':
        return this.publish(o.p, o.topic, o.qos, 1);
      case 'burst':
        return this.publish(o.p, o.topic, o.qos, o.n, o.killAfter);
      case 'disconnect': {
        const inc = this.current(o.s);
        const c = inc?.conn;
        if (!inc || !c) return 'skipped (not connected)';
        const newExpiry = o.expiry !== undefined && c.mc.version === 5 && c.connectExpiry !== 0 ? o.expiry : undefined;
        const ends = (newExpiry ?? inc.expiry) === 0;
        if (ends) await this.settleBeforeEnd([inc], 'before a DISCONNECT that ends it');
        c.closing = true;
        if (c.will) this.willsAllowed.delete(c.will);
        const lo = Date.now();
        await c.mc.disconnect(newExpiry);
        const hi = Date.now();
        inc.conn = null;
        if (newExpiry !== undefined) inc.expiry = newExpiry;
        if (ends) this.end(inc, 'DISCONNECT with expiry 0');
        else inc.offline = { lo, hi };
        return newExpiry !== undefined ? `expiry now ${newExpiry}` : o.expiry !== undefined ? 'expiry change not allowed: plain DISCONNECT' : 'ok';
      }
      case 'drop': {
        const inc = this.current(o.s);
        const c = inc?.conn;
        if (!inc || !c) return 'skipped (not connected)';
        if (inc.expiry === 0) await this.settleBeforeEnd([inc], 'before a drop that ends it');
        c.closing = true;
        if (c.will) this.willsRequired.add(c.will);
        const lo = Date.now();
        c.mc.destroy();
        inc.conn = null;
        if (inc.expiry === 0) {
          this.end(inc, 'connection dropped (expiry 0)');
          this.droppedAt[o.s] = lo;
        }
        else inc.offline = { lo, hi: lo };
        return 'ok';
      }
      case 'restart': {
        const inc = o.onArrival !== undefined ? this.current(o.onArrival) : null;
        if (inc?.conn == null) return this.restart(false);
        const broker = this.broker!;
        let killed = false;
        const kill = (): void => {
          killed = true;
          // Before the signal: the connections' closes that follow it are expected (restart() would mark them
          // only after this handler returned, and a loaded machine can deliver a close in between).
          for (const i of this.sessions) if (i?.conn) i.conn.closing = true;
          broker.child.kill('SIGKILL');
        };
        this.killOnArrival = { inc, kill };
        const deadline = Date.now() + 2000;
        while (!killed && Date.now() < deadline) await sleep(1);
        this.killOnArrival = null;
        if (!killed) kill();
        return this.restart(true);
      }
      case 'sleep':
        await sleep(o.ms);
        return 'ok';
    }
  }

  /** Run the operations, then reconnect every session still there, wait for what it is owed, and check. */
  async run(ops: Op[]): Promise<RunResult> {
    const started = Date.now();
    try {
      await this.startBroker();
      for (this.opIndex = 0; this.opIndex < ops.length; this.opIndex++) {
        const o = ops[this.opIndex]!;
        let res: string;
        try {
          res = await this.runOp(o);
        } catch (err) {
          this.log.push(`${this.opIndex}: ${describeOp(o)} -> ERROR`);
          this.violate('error', `${describeOp(o)}: ${(err as Error).message}`);
          break;
        }
        this.log.push(`${this.opIndex}: ${describeOp(o)} -> ${res}`);
      }
      if (!this.violations.some((v) => v.kind === 'error')) await this.finish();
    } catch (err) {
      this.violate('error', `harness: ${(err as Error).stack ?? String(err)}`);
    } finally {
      await this.close();
    }
    return { violations: this.violations, log: this.log, ops: ops.length, messages: this.nextMsg - 1, ms: Date.now() - started };
  }

  private async finish(): Promise<void> {
    this.opIndex = Number.MAX_SAFE_INTEGER;
    const t = Date.now();
    for (let s = 0; s < SUBSCRIBERS; s++) {
      const inc = this.current(s, t);
      if (inc === null || inc.conn !== null) continue;
      const res = await this.connect({ op: 'connect', s, version: inc.version, clean: false, expiry: inc.version === 5 ? inc.expiry : 0, will: false });
      this.log.push(`final: reconnect s${s} -> ${res}`);
    }
    const live = this.sessions.filter((i): i is Incarnation => i !== null && i.conn !== null);
    await this.settle(live);
    for (const inc of live) this.reportMissing(inc, 'at the end');
    // Wills: the watcher is persistent, so each will queued for it arrives.
    const owed = (): string[] => [...this.willsRequired].filter((w) => !this.willsSeen.has(w));
    const start = Date.now();
    while (owed().length > 0 && Date.now() - start < QUIET_MS) await sleep(10);
    await sleep(50);
    for (const w of owed()) this.violate('will-missing', `the will of connection ${w.slice(5)} (dropped without DISCONNECT, or live at a broker kill) never arrived`);
    for (const w of this.willsSeen.keys()) {
      if (!this.willsRequired.has(w) && !this.willsAllowed.has(w)) this.violate('will-unexpected', `the will of connection ${w.slice(5)} arrived although it ended with a normal DISCONNECT`);
    }
    this.log.push(`final: ${live.map((i) => `${i.name} got ${i.delivered.size}/${i.allowed.size}`).join(', ')}; wills seen ${this.willsSeen.size}, required ${this.willsRequired.size}`);
  }

  private async close(): Promise<void> {
    for (const inc of this.incarnations) {
      if (inc.conn) {
        inc.conn.closing = true;
        inc.conn.mc.destroy();
      }
    }
    this.watcher?.destroy();
    await endAll(...this.pubs.map((p) => p.client));
    if (this.broker) {
      this.broker.child.kill('SIGKILL');
      await this.broker.exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Run one sequence on a fresh broker. */
export function runSequence(ops: Op[], label = 'sequence'): Promise<RunResult> {
  return new Harness(label).run(ops);
}

/** The violations and the log, for an assertion message. */
export function formatResult(r: RunResult, header: string): string {
  const lines = [header, `${r.ops} operations, ${r.messages} messages, ${r.ms} ms`, 'violations:'];
  for (const v of r.violations) lines.push(`  [${v.kind}] at op ${v.at === Number.MAX_SAFE_INTEGER ? 'final' : v.at}: ${v.detail}`);
  lines.push('log:', ...r.log.map((l) => '  ' + l));
  return lines.join('\n');
}
