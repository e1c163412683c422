#!/usr/bin/env node
// Runs one Jazzer.js fuzz target (coverage-guided, libFuzzer) on the compiled sources (build/, from
// `npx tsc -p tsconfig.test.json`) and reports what libFuzzer measured.
//
//   node test/fuzz/jazzer/run.mjs --target decoder|broker [--seconds N | --runs N] [--seed N] [--keep-corpus]
//
// Seeds come from the packet catalogue (seeds.ts) into build/jazzer/seeds/<target>; new inputs libFuzzer
// finds interesting go to build/jazzer/corpus/<target> (kept between runs with --keep-corpus), findings
// (inputs that crash or break an assertion) to build/jazzer/findings/<target>/. The native addon is the one
// setup.mjs provides (a patched copy on glibc < 2.38: see there). Exit status: 0 when no finding.
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ensureAddon } from './setup.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..', '..');
const build = join(root, 'build');

export const TARGETS = {
  // Only the code under test is instrumented for coverage feedback.
  decoder: { file: 'decoder.target.js', includes: ['build/src/protocol/'], sync: true },
  broker: { file: 'broker.target.js', includes: ['build/src/'], sync: false },
};

function parseStats(text) {
  const stat = (name) => {
    const m = new RegExp(`stat::${name}:\\s+(\\d+)`).exec(text);
    return m ? Number(m[1]) : null;
  };
  // The last status line libFuzzer printed: "#N  DONE  cov: C ft: F corp: K/S ... exec/s: E".
  const lines = text.split('\n').filter((l) => /^#\d+\s/.test(l));
  const last = lines.at(-1) ?? '';
  const num = (re) => {
    const m = re.exec(last);
    return m ? Number(m[1]) : null;
  };
  return {
    executed: stat('number_of_executed_units') ?? num(/^#(\d+)/),
    execPerSec: stat('average_exec_per_sec') ?? num(/exec\/s: (\d+)/),
    cov: num(/cov: (\d+)/),
    ft: num(/ft: (\d+)/),
    corpus: num(/corp: (\d+)/),
    peakRssMb: stat('peak_rss_mb') ?? num(/rss: (\d+)Mb/),
    lastLine: last.trim(),
  };
}

/**
 * Runs a target; resolves { target, ok, seconds, executed, cov, ft, corpus, execPerSec, peakRssMb, findings, output }.
 * findings: the files libFuzzer wrote under build/jazzer/findings/<target>/ during this run.
 */
export async function runTarget({ target, seconds, runs, seed, keepCorpus = false, quiet = false, work = join(build, 'jazzer') }) {
  const t = TARGETS[target];
  if (!t) throw new Error(`unknown target ${target} (decoder, broker)`);
  const addon = ensureAddon({ quiet: true });
  const { writeSeeds } = await import(pathToFileURL(join(build, 'test', 'fuzz', 'jazzer', 'seeds.js')).href);
  const seedDir = join(work, 'seeds', target);
  const corpusDir = join(work, 'corpus', target);
  const findingsDir = join(work, 'findings', target);
  const seeds = writeSeeds(target, seedDir);
  if (!keepCorpus) rmSync(corpusDir, { recursive: true, force: true });
  mkdirSync(corpusDir, { recursive: true });
  mkdirSync(findingsDir, { recursive: true });
  const before = new Set(readdirSync(findingsDir));

  const require = createRequire(join(root, 'package.json'));
  const cli = join(dirname(require.resolve('@jazzer.js/core/package.json')), 'dist', 'cli.js');
  const libFuzzer = [
    `-artifact_prefix=${findingsDir}/`,
    '-print_final_stats=1',
    '-max_len=4096',
    '-rss_limit_mb=2048',
    `-seed=${seed ?? 0}`,
  ];
  if (seconds !== undefined) libFuzzer.push(`-max_total_time=${seconds}`);
  if (runs !== undefined) libFuzzer.push(`-runs=${runs}`);
  const args = [
    '-r', join(here, 'preload.cjs'),
    cli, join(build, 'test', 'fuzz', 'jazzer', t.file), corpusDir, seedDir,
    ...t.includes.flatMap((i) => ['-i', join(root, i)]),
    '-e', 'node_modules',
    '--disableBugDetectors', '.*',
    ...(t.sync ? ['--sync'] : []),
    '--timeout', '10000',
    '--', ...libFuzzer,
  ];
  const started = Date.now();
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: { ...process.env, PETREL_JAZZER_ADDON: addon },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const take = (d) => {
    output += d;
    if (output.length > 4_000_000) output = output.slice(-2_000_000);
    if (!quiet) process.stderr.write(d);
  };
  child.stdout.setEncoding('utf8').on('data', take);
  child.stderr.setEncoding('utf8').on('data', take);
  // A run that overstays (a hang the -timeout did not catch) is ended by its process id.
  const limitMs = ((seconds ?? 600) + 120) * 1000;
  const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
  const code = await new Promise((resolve) => child.on('exit', (c, s) => resolve(c ?? (s ? 128 : 1))));
  clearTimeout(timer);
  const findings = readdirSync(findingsDir).filter((f) => !before.has(f)).map((f) => join(findingsDir, f));
  const stats = parseStats(output);
  return { target, ok: code === 0 && findings.length === 0, code, seeds, seconds: (Date.now() - started) / 1000, ...stats, findings, output };
}

export function summary(r) {
  return `${r.target}: ${r.executed ?? '?'} inputs in ${r.seconds.toFixed(0)} s (${r.execPerSec ?? '?'}/s), cov ${r.cov ?? '?'} edges, ft ${r.ft ?? '?'} features, corpus ${r.corpus ?? '?'} (from ${r.seeds} seeds), peak RSS ${r.peakRssMb ?? '?'} MB, findings ${r.findings.length}${r.findings.length ? ': ' + r.findings.join(', ') : ''}, exit ${r.code}`;
}

function arg(name) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const target = arg('target') ?? 'decoder';
  const seconds = arg('seconds') !== undefined ? Number(arg('seconds')) : arg('runs') === undefined ? 30 : undefined;
  const runs = arg('runs') !== undefined ? Number(arg('runs')) : undefined;
  const r = await runTarget({ target, seconds, runs, seed: arg('seed') !== undefined ? Number(arg('seed')) : undefined, keepCorpus: process.argv.includes('--keep-corpus') });
  console.log(summary(r));
  process.exit(r.ok ? 0 : 1);
}
