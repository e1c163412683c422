#!/usr/bin/env node
// The long Jazzer.js run: each target (or the one named) for N minutes, side by side, then the figures.
//
//   node test/fuzz/jazzer/long.mjs [--minutes N] [--target decoder|broker] [--seed N]
//
// Needs the compiled tree (npx tsc -p tsconfig.test.json). Works in build/jazzer-long/ (corpus kept between
// runs, so a second run goes on from the first); findings land in build/jazzer-long/findings/<target>/.
// Prints, per target: inputs executed, time, exec/s, coverage (libFuzzer's cov: edges and ft: features),
// corpus size, peak RSS, findings. Exit status 1 if anything was found.
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTarget, summary, TARGETS } from './run.mjs';

const arg = (name) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const minutes = Number(arg('minutes') ?? 10);
const targets = arg('target') ? [arg('target')] : Object.keys(TARGETS);
const seed = arg('seed') !== undefined ? Number(arg('seed')) : 0;
const work = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'build', 'jazzer-long');
console.log(`jazzer long run: ${targets.join(', ')} for ${minutes} min each (seed ${seed}), in ${work}`);
const results = await Promise.all(
  targets.map((target) => runTarget({ target, seconds: Math.round(minutes * 60), seed, keepCorpus: true, quiet: true, work })),
);
for (const r of results) {
  console.log(summary(r));
  if (!r.ok) console.log(r.output.split('\n').filter((l) => /Uncaught|Error|==\d+==|at /.test(l)).slice(0, 40).join('\n'));
}
process.exit(results.every((r) => r.ok) ? 0 : 1);
