// Coverage-guided fuzzing with Jazzer.js (libFuzzer), bounded for CI: each target of test/fuzz/jazzer/
// (the wire decoder; the broker's connection state machine) for PETREL_JAZZER_SECONDS (default 30 and 40 s),
// from seeds made of the packet catalogue. A finding (an input that breaks one of the target's assertions or
// throws) fails the test and is written to build/jazzer/findings/<target>/; its bytes and stack are in the
// output. The long run is `node test/fuzz/jazzer/long.mjs --minutes N`. On glibc < 2.38 (Debian 12) the
// shipped addon is replaced by a patched copy (test/fuzz/jazzer/setup.mjs says exactly how and why).

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

interface RunResult {
  ok: boolean;
  code: number;
  executed: number | null;
  cov: number | null;
  ft: number | null;
  findings: string[];
  output: string;
}
interface Runner {
  runTarget(o: { target: string; seconds: number; seed: number; quiet: boolean }): Promise<RunResult>;
  summary(r: RunResult): string;
}

// The runner is plain JavaScript next to the sources (test/fuzz/jazzer/run.mjs), not compiled.
// This file runs as build/test/fuzz/jazzer.test.js.
const root = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');
const runner = (): Promise<Runner> => import(pathToFileURL(join(root, 'test', 'fuzz', 'jazzer', 'run.mjs')).href) as Promise<Runner>;
const SECONDS = process.env.PETREL_JAZZER_SECONDS !== undefined ? Number(process.env.PETREL_JAZZER_SECONDS) : undefined;
const SEED = Number(process.env.PETREL_JAZZER_SEED ?? (Date.now() % 1_000_000));

describe(`jazzer.js: coverage-guided fuzzing (seed ${SEED})`, { concurrency: false }, () => {
  for (const [target, seconds, minRuns, what] of [
    ['decoder', SECONDS ?? 30, 10_000, 'every version and side: only documented ProtocolErrors, the same result whatever the chunking, and decoded packets re-encode to themselves'],
    ['broker', SECONDS ?? 40, 1_000, 'any bytes after a valid CONNECT (mid QoS 2, with aliases, subscriptions): no throw, no unhandled rejection, internalErrors 0, output that decodes, a healthy client served'],
  ] as const) {
    it(`${target}: ${what}`, { timeout: (seconds + 120) * 1000 }, async (t) => {
      const { runTarget, summary } = await runner();
      const r = await runTarget({ target, seconds, seed: SEED, quiet: true });
      t.diagnostic(summary(r));
      console.log(`# ${summary(r)}`);
      const crash = r.output.split('\n').filter((l) => /Uncaught|Error|==\d+==|^\s+at |Base64|crash-/.test(l)).slice(0, 30).join('\n');
      assert.deepEqual(r.findings, [], `findings (replay: node test/fuzz/jazzer/run.mjs --target ${target} --seed ${SEED}):\n${crash}`);
      assert.equal(r.code, 0, `jazzer exited with ${r.code}:\n${r.output.slice(-3000)}`);
      assert.ok((r.executed ?? 0) >= minRuns, `at least ${minRuns} inputs executed (${r.executed})`);
      assert.ok((r.cov ?? 0) > 100, `coverage feedback works (cov ${r.cov})`);
    });
  }
});
