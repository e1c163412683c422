// Obs (src/observability/counters.ts): per-message timing is deferred to the end of the run (a microtask) and
// to a scrape's settle(); these tests hold it to the counts and values the histograms would get if each
// observation were made in place.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Obs } from '../../src/observability/counters.js';

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('Obs: deferred per-message timing', () => {
  it("fills the dispatch, fan-out and payload histograms at the run's end, one observation per PUBLISH", async () => {
    const obs = new Obs(true);
    for (let i = 0; i < 5; i++) {
      obs.received(1, 100 * (i + 1));
      obs.routing();
      obs.routed(1, i === 0 ? 0 : 1);
    }
    obs.received(0, 10);
    obs.routing();
    obs.routed(0, 3);
    // Within the run, nothing is observed yet.
    assert.equal(obs.dispatch[1]!.count, 0);
    await tick();
    assert.equal(obs.dispatch[1]!.count, 5);
    assert.equal(obs.dispatch[0]!.count, 1);
    assert.equal(obs.dispatch[2]!.count, 0);
    assert.ok(obs.dispatch[1]!.sum >= 0);
    assert.equal(obs.fanout.count, 6);
    assert.equal(obs.fanout.counts[0], 1, 'one PUBLISH without subscribers: the le=0 bucket');
    assert.equal(obs.fanout.sum, 4 + 3);
    assert.equal(obs.payloadSize.count, 6);
    assert.equal(obs.payloadSize.sum, 100 + 200 + 300 + 400 + 500 + 10);
    assert.equal(obs.published, 6);
    assert.equal(obs.droppedNoSubscribers, 1);
  });

  it('settle() puts received payloads in their histogram before a scrape, even with no run end scheduled', () => {
    const obs = new Obs(true);
    // A PUBLISH that is refused (no routing) schedules nothing.
    obs.received(1, 64);
    obs.received(1, 65);
    assert.equal(obs.payloadSize.count, 0);
    obs.settle();
    assert.equal(obs.payloadSize.count, 2);
    assert.equal(obs.payloadSize.sum, 129);
    obs.settle();
    assert.equal(obs.payloadSize.count, 2, 'a second settle adds nothing');
  });

  it('keeps every observation of a run longer than its buffers (more than 1024 PUBLISHes and acks in one run)', async () => {
    const obs = new Obs(true);
    const N = 3000;
    const stamps: number[] = [];
    // Each kind alone, so that no buffer's overflow is hidden by another's (one settle() empties two).
    for (let i = 0; i < N; i++) obs.received(2, 1);
    for (let i = 0; i < N; i++) {
      obs.routing();
      obs.routed(2, 2);
      stamps.push(obs.sendStamp());
    }
    for (const s of stamps) obs.ackedAt(2, s);
    await tick();
    assert.equal(obs.payloadSize.sum, N);
    assert.equal(obs.dispatch[2]!.count, N);
    assert.equal(obs.fanout.count, N);
    assert.equal(obs.fanout.sum, 2 * N);
    assert.equal(obs.payloadSize.count, N);
    assert.equal(obs.ackRoundTrip[2]!.count, N);
    assert.equal(obs.acked[2], N);
  });

  it('times an acknowledgement from its send stamp in a later run', async () => {
    const obs = new Obs(true);
    const sentAt = obs.sendStamp();
    assert.ok(sentAt > 0 && Number.isInteger(sentAt));
    assert.equal(obs.sendStamp(), sentAt, 'one stamp per run');
    await tick();
    const t0 = performance.now();
    while (performance.now() - t0 < 3) {
      // 3 ms later
    }
    obs.ackedAt(1, sentAt);
    assert.equal(obs.ackRoundTrip[1]!.count, 0, 'observed at the end of the run');
    await tick();
    assert.equal(obs.ackRoundTrip[1]!.count, 1);
    const s = obs.ackRoundTrip[1]!.sum;
    assert.ok(s >= 0.0029 && s < 1, `ack round trip ${s} s, 3 ms or more expected`);
    // The next run has a stamp of its own, later than the first.
    assert.ok(obs.sendStamp() > sentAt);
  });

  it('observes nothing, and stamps 0, when timing is off (counters are still kept)', async () => {
    const obs = new Obs(false);
    obs.received(1, 64);
    obs.routing();
    obs.routed(1, 1);
    assert.equal(obs.sendStamp(), 0);
    obs.ackedAt(1, 0);
    await tick();
    obs.settle();
    assert.equal(obs.dispatch[1]!.count, 0);
    assert.equal(obs.fanout.count, 0);
    assert.equal(obs.payloadSize.count, 0);
    assert.equal(obs.ackRoundTrip[1]!.count, 0);
    assert.equal(obs.messagesIn[1], 1);
    assert.equal(obs.published, 1);
    assert.equal(obs.acked[1], 1);
  });
});
