// Long run of the model-based session test: seed after seed for a given time,
// printing every failing seed with its violations; with --shrink, a failing
// sequence is shortened (operations left out while it still fails the same way)
// and printed as JSON, ready to become a named regression test.
//
//   node build/test/model/long.js --minutes 10 [--ops 100] [--seed 1000] [--shrink]
//   node build/test/model/long.js --replay 1234 [--ops 100] [--shrink] [--verbose]
//   node build/test/model/long.js --ops-json '[{"op":"connect",...}]' [--shrink]
//
// Exit code 1 if any sequence failed. (Build first: npm run build && npm run build:test.)

import { parseArgs } from 'node:util';
import { describeOp, generate, type Op } from './model.js';
import { formatResult, runSequence, type RunResult, type Violation } from './harness.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    ops: { type: 'string', default: '100' },
    seed: { type: 'string' },
    replay: { type: 'string' },
    'ops-json': { type: 'string' },
    shrink: { type: 'boolean', default: false },
    verbose: { type: 'boolean', default: false },
  },
});

const OPS = Number(values.ops);
const kinds = (r: RunResult): Set<Violation['kind']> => new Set(r.violations.map((v) => v.kind));

/** Leave out operations (halves, quarters, ... single ones) while the run still shows one of the wanted kinds. */
async function shrink(ops: Op[], wanted: Set<Violation['kind']>): Promise<{ ops: Op[]; result: RunResult }> {
  let best = ops;
  let bestResult: RunResult | null = null;
  const fails = async (cand: Op[]): Promise<RunResult | null> => {
    const r = await runSequence(cand, 'shrink');
    return [...kinds(r)].some((k) => wanted.has(k) && k !== 'error') ? r : null;
  };
  let chunk = Math.max(1, Math.floor(best.length / 2));
  let trials = 0;
  while (chunk >= 1) {
    let i = 0;
    let changed = false;
    while (i < best.length) {
      const cand = best.slice(0, i).concat(best.slice(i + chunk));
      trials++;
      const r = await fails(cand);
      if (r) {
        best = cand;
        bestResult = r;
        changed = true;
        process.stdout.write(`    shrink: ${best.length} operations (${trials} trials)\n`);
      } else i += chunk;
    }
    if (!changed || chunk > 1) chunk = Math.floor(chunk / 2);
  }
  bestResult ??= await runSequence(best, 'shrink');
  return { ops: best, result: bestResult };
}

async function report(label: string, ops: Op[], r: RunResult): Promise<void> {
  const ks = kinds(r);
  console.log(`FAIL ${label}: ${[...ks].join(', ')}`);
  for (const v of r.violations.slice(0, 10)) console.log(`    [${v.kind}] at op ${v.at === Number.MAX_SAFE_INTEGER ? 'final' : v.at}: ${v.detail}`);
  if (values.verbose) console.log(formatResult(r, label));
  if (values.shrink) {
    const s = await shrink(ops, ks);
    console.log(`  minimal sequence (${s.ops.length} operations), ${[...kinds(s.result)].join(', ')}:`);
    for (const o of s.ops) console.log(`    ${describeOp(o)}`);
    console.log(`  JSON: ${JSON.stringify(s.ops)}`);
    console.log(formatResult(s.result, `  minimal run of ${label}`));
  }
}

async function main(): Promise<void> {
  if (values['ops-json'] !== undefined) {
    const ops = JSON.parse(values['ops-json']) as Op[];
    const r = await runSequence(ops, 'json');
    if (r.violations.length === 0) console.log(formatResult(r, 'ok'));
    else await report('given sequence', ops, r);
    process.exit(r.violations.length === 0 ? 0 : 1);
  }
  if (values.replay !== undefined) {
    const seed = Number(values.replay);
    const ops = generate(seed, { ops: OPS });
    const r = await runSequence(ops, `seed ${seed}`);
    if (r.violations.length === 0) console.log(values.verbose ? formatResult(r, `seed ${seed}: ok`) : `seed ${seed}: ok (${r.messages} messages, ${r.ms} ms)`);
    else await report(`seed ${seed}`, ops, r);
    process.exit(r.violations.length === 0 ? 0 : 1);
  }
  const deadline = Date.now() + Number(values.minutes) * 60_000;
  let seed = values.seed !== undefined ? Number(values.seed) : Date.now() % 1_000_000;
  let sequences = 0;
  let opsRun = 0;
  let messages = 0;
  const failing: { seed: number; kinds: string[] }[] = [];
  console.log(`model long run: ${values.minutes} min, ${OPS} operations per sequence, from seed ${seed}`);
  while (Date.now() < deadline) {
    const ops = generate(seed, { ops: OPS });
    const r = await runSequence(ops, `seed ${seed}`);
    sequences++;
    opsRun += r.ops;
    messages += r.messages;
    if (r.violations.length === 0) console.log(`ok   seed ${seed} (${r.messages} messages, ${r.ms} ms)`);
    else {
      failing.push({ seed, kinds: [...kinds(r)] });
      await report(`seed ${seed}`, ops, r);
    }
    seed++;
  }
  console.log(`\n${sequences} sequences, ${opsRun} operations, ${messages} messages published; ${failing.length} failing`);
  for (const f of failing) console.log(`  failing seed ${f.seed} (--replay ${f.seed} --ops ${OPS}): ${f.kinds.join(', ')}`);
  process.exit(failing.length === 0 ? 0 : 1);
}

await main();
