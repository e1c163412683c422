#!/usr/bin/env node
// Runs the compiled test files (build/test/**/*.test.js) with node's test runner.
// Usage: node test/run.mjs [substring ...]  (only files whose path contains one of the substrings)
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..');
const testRoot = join(root, 'build', 'test');

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = walk(testRoot, [])
  .filter((f) => filters.length === 0 || filters.some((s) => relative(root, f).includes(s)))
  .sort();
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
const concurrency = process.env.PETREL_TEST_CONCURRENCY ?? '2';
// A test that hangs fails after this long instead of stalling the run (the slowest, the 1,000,000-message
// memory test, takes about a minute).
const timeout = process.env.PETREL_TEST_TIMEOUT ?? '300000';
// Its own process group, so that a run that overstays is killed with every process it started (test files,
// brokers, clients), and nothing is left holding the output open.
const child = spawn(process.execPath, ['--test', `--test-concurrency=${concurrency}`, `--test-timeout=${timeout}`, ...files], {
  stdio: 'inherit',
  cwd: root,
  detached: true,
});
const limit = Number(process.env.PETREL_RUN_TIMEOUT ?? 30 * 60_000);
const timer = setTimeout(() => {
  console.error(`test run stopped after ${limit / 60_000} minutes`);
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {}
}, limit);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {}
    process.exit(1);
  });
}
child.on('exit', (code, signal) => {
  clearTimeout(timer);
  try {
    process.kill(-child.pid, 'SIGKILL'); // whatever the tests left behind
  } catch {}
  process.exit(code ?? (signal ? 1 : 0));
});
