// A seconds-long run of the benchmark's load generator against a real Petrel
// listener, so that bench/ cannot rot unnoticed (the full bench is not part of
// the test suite: see bench/README.md).

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startPetrel, kill } from '../durability/petrel-process.js';

interface SmokeResult {
  received: number;
  lost: number;
  duplicates: number;
  ok: boolean;
  error: string | null;
}

describe('benchmark smoke run', () => {
  it('the C load generator builds and measures Petrel: QoS 1 fan-in with no loss and no duplicates', async () => {
    const url = new URL('../../../bench/smoke.mjs', import.meta.url).href;
    const { smoke } = (await import(url)) as { smoke: (o: { host: string; port: number; brokerPid?: number }) => Promise<SmokeResult> };
    const broker = await startPetrel(['--memory']);
    try {
      const r = await smoke({ host: '127.0.0.1', port: broker.port, brokerPid: broker.pid });
      console.log(`  received ${r.received}, lost ${r.lost}, duplicates ${r.duplicates}`);
      assert.equal(r.error, null);
      assert.ok(r.received > 100, `received ${r.received}`);
      assert.equal(r.lost, 0);
      assert.equal(r.duplicates, 0);
      assert.equal(r.ok, true);
    } finally {
      await kill(broker, 'SIGTERM');
    }
  });
});
