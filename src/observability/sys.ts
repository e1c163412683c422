// The $SYS tree, with Mosquitto's topic names and payload formats where the two overlap (Mosquitto 2.x
// src/sys_tree.c), so that tools written for it (MQTT Explorer, the Mosquitto Prometheus exporters) work
// unchanged. Every `sysInterval` seconds (BrokerOptions.sysInterval; 0 = no tree at all, version included)
// each topic whose value changed is published, retained, QoS 0; `clients/maximum` only when it rises; the
// version once, at start. The messages go through the broker's normal routing (Broker.publish), so they reach
// only subscribers whose subscriptions the broker (its ACL included) accepted. Clients cannot publish under
// $SYS (handle-publish.ts).
//
// Values (Mosquitto's meaning, Petrel's source):
// - messages/received|sent: every MQTT packet (Mosquitto counts packets here); publish/messages/*: PUBLISHes.
// - publish/messages/dropped: messages not delivered to a subscriber (QoS 0 to a slow or offline client,
//   queue full, too large, expired).
// - clients/total: sessions (connected or not); connected / disconnected: online and offline sessions;
//   expired: sessions ended by their expiry.
// - messages/stored and store/messages/count|bytes: retained messages and queued messages (count, payload bytes).
// - connections/socket/count: sockets open now.
// - load/<x>/<1min|5min|15min>: per-minute rates smoothed as Mosquitto does: new = rate + e^(-dt/T) (old - rate),
//   published when they move by 0.01 or more, "%.2f".

import type { Broker } from '../broker/broker.js';
import { Message } from '../broker/message.js';
import { petrelVersionSync } from './version.js';

const LOADS = [
  ['messages/received', 'packetsIn'],
  ['messages/sent', 'packetsOut'],
  ['publish/dropped', 'dropped'],
  ['publish/received', 'publishIn'],
  ['publish/sent', 'publishOut'],
  ['bytes/received', 'bytesIn'],
  ['bytes/sent', 'bytesOut'],
  ['sockets', 'sockets'],
  ['connections', 'connects'],
] as const;
type Totals = Record<(typeof LOADS)[number][1], number>;
const PERIODS = [
  ['1min', 60],
  ['5min', 300],
  ['15min', 900],
] as const;

export class SysTree {
  private timer: NodeJS.Timeout | null = null;
  private readonly last = new Map<string, string>();
  private readonly load = new Map<string, number>();
  private lastTotals: Totals | null = null;
  private lastAt = 0;
  private maximum = 0;
  /** Messages published into $SYS (for tests and metrics). */
  published = 0;

  constructor(
    private readonly broker: Broker,
    private readonly intervalSeconds: number,
  ) {}

  start(): void {
    if (this.timer !== null) return;
    this.publish('$SYS/broker/version', `petrel version ${petrelVersionSync()}`);
    this.update();
    this.timer = setInterval(() => this.update(), this.intervalSeconds * 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private totals(): Totals {
    const b = this.broker;
    const s = b.stats;
    const o = b.obs;
    let packetsIn = 0;
    let packetsOut = 0;
    for (let t = 0; t < 16; t++) {
      packetsIn += o.packetsIn[t]!;
      packetsOut += o.packetsOut[t]!;
    }
    let bytesOut = o.bytesOutClosed;
    for (const c of b.clients) bytesOut += c.conn.bytesOut;
    return {
      packetsIn,
      packetsOut,
      dropped: s.droppedQos0 + s.droppedQueueFull + s.droppedTooLarge + s.expired,
      publishIn: s.messagesIn,
      publishOut: s.messagesOut,
      bytesIn: s.bytesIn,
      bytesOut,
      sockets: s.connectionsOpened,
      connects: o.packetsIn[1]!,
    };
  }

  /** One tick: publish what changed. */
  update(): void {
    const b = this.broker;
    if (b.closing) return;
    const now = Date.now();
    const t = this.totals();
    const sys = '$SYS/broker/';
    this.publish(`${sys}uptime`, `${Math.floor((now - (b.startedAt || now)) / 1000)} seconds`);

    let online = 0;
    let offline = 0;
    let queued = 0;
    let queuedBytes = 0;
    let subs = 0;
    let shared = 0;
    for (const session of b.sessions.values()) {
      if (session.client !== null) online++;
      else offline++;
      queued += session.out.queuedCount;
      queuedBytes += session.out.queuedBytes;
      const m = session.subscriptionsIfAny;
      if (m === null) continue;
      for (const sub of m.values()) {
        subs++;
        if (sub.group !== null) shared++;
      }
    }
    const total = online + offline;
    this.publish(`${sys}clients/total`, String(total));
    if (total > this.maximum) {
      this.maximum = total;
      this.publish(`${sys}clients/maximum`, String(total));
    }
    this.publish(`${sys}clients/connected`, String(online));
    this.publish(`${sys}clients/disconnected`, String(offline));
    this.publish(`${sys}clients/expired`, String(b.obs.sessionsExpired));

    // Loads (Mosquitto's calc_load): the first tick publishes 0.00 for each.
    const prev = this.lastTotals;
    const dt = prev === null ? 0 : (now - this.lastAt) / 1000;
    for (const [name, key] of LOADS) {
      const rate = prev === null || dt <= 0 ? 0 : ((t[key] - prev[key]) * 60) / dt;
      for (const [suffix, period] of PERIODS) {
        const topic = `${sys}load/${name}/${suffix}`;
        const old = this.load.get(topic) ?? 0;
        if (prev === null) {
          this.load.set(topic, 0);
          this.publish(topic, '0.00');
          continue;
        }
        const value = rate + Math.exp(-dt / period) * (old - rate);
        this.load.set(topic, value);
        if (Math.abs(value - old) >= 0.01) this.publish(topic, value.toFixed(2));
      }
    }
    this.lastTotals = t;
    this.lastAt = now;

    let retainedBytes = 0;
    for (const m of b.retained.iterate('#')) retainedBytes += m.payload.length;
    for (const m of b.retained.iterate('$SYS/#')) retainedBytes += m.payload.length;
    const stored = b.retained.size + queued;
    this.publish(`${sys}messages/stored`, String(stored));
    this.publish(`${sys}store/messages/count`, String(stored));
    this.publish(`${sys}store/messages/bytes`, String(retainedBytes + queuedBytes));
    this.publish(`${sys}subscriptions/count`, String(subs));
    this.publish(`${sys}shared_subscriptions/count`, String(shared));
    this.publish(`${sys}retained messages/count`, String(b.retained.size));
    this.publish(`${sys}messages/received`, String(t.packetsIn));
    this.publish(`${sys}messages/sent`, String(t.packetsOut));
    this.publish(`${sys}publish/messages/dropped`, String(t.dropped));
    this.publish(`${sys}publish/messages/received`, String(t.publishIn));
    this.publish(`${sys}publish/messages/sent`, String(t.publishOut));
    this.publish(`${sys}bytes/received`, String(t.bytesIn));
    this.publish(`${sys}bytes/sent`, String(t.bytesOut));
    this.publish(`${sys}publish/bytes/received`, String(b.obs.payloadBytesIn));
    this.publish(`${sys}publish/bytes/sent`, String(b.obs.payloadBytesOut));
    this.publish(`${sys}connections/socket/count`, String(b.clients.size));
  }

  /** Publish a retained value if it changed since the last time. */
  private publish(topic: string, value: string): void {
    if (this.last.get(topic) === value || this.broker.closing) return;
    this.last.set(topic, value);
    this.published++;
    // Routed like any message (subscriptions, and whatever authorization they passed, decide who gets it); no
    // onPublish hook, no store write.
    const b = this.broker;
    b.publishMessage(new Message(b.nextMessageId(), topic, Buffer.from(value, 'utf8'), 0, true, undefined, undefined, Date.now(), undefined));
  }
}
