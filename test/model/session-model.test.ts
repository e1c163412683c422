// Model-based randomized test of session semantics (harness.ts has the model):
// seeded sequences of connect (3.1.1 / 5.0, Clean Start, Session Expiry, will,
// Receive Maximum), takeover, subscribe, unsubscribe, publishes at QoS 0/1/2 from
// other clients, DISCONNECT, dropped connections and broker SIGKILL + restart,
// against a real `petrel` process with the SQLite store.
//
// PETREL_MODEL_SEED=1234 (or 1,2,3) replays seeds; PETREL_MODEL_OPS sets the
// length (default 100); PETREL_MODEL_SEEDS how many fresh seeds (default 3).
// Longer runs: node build/test/model/long.js --minutes 10.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generate } from './model.js';
import { formatResult, runSequence } from './harness.js';

const OPS = Number(process.env.PETREL_MODEL_OPS ?? 100);
const given = process.env.PETREL_MODEL_SEED;
const base = Date.now() % 1_000_000;
const seeds = given ? given.split(',').map((s) => Number(s.trim())) : Array.from({ length: Number(process.env.PETREL_MODEL_SEEDS ?? 3) }, (_, i) => base + i * 7919);

describe(`session model: ${seeds.length} seeds x ${OPS} operations (PETREL_MODEL_SEED=${seeds.join(',')} replays)`, () => {
  for (const seed of seeds) {
    it(`seed ${seed}: every acknowledged message reaches the sessions it matched, nothing reaches an ended session, order and QoS 2 exactly once hold`, async () => {
      const ops = generate(seed, { ops: OPS });
      const r = await runSequence(ops, `seed ${seed}`);
      console.log(`  seed ${seed}: ${r.ops} operations, ${r.messages} messages, ${r.violations.length} violations, ${r.ms} ms`);
      assert.deepEqual(r.violations, [], formatResult(r, `seed ${seed} (PETREL_MODEL_SEED=${seed} replays it)`));
    });
  }
});
