#!/usr/bin/env node
// Runs the compiled test files (build/test/**/*.test.js) with node's test runner.
// Usage: node test/run.mjs [substring ...]  (only files whose path contains one of the substrings)
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawn } from 'node:child_process';
import { StringDecoder } from 'node:string_decoder';
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
  stdio: ['inherit', 'pipe', 'inherit'],
  cwd: root,
  detached: true,
});
// The TAP output goes through unchanged; every failing test (its name, the subtests above it and its YAML
// block) is also kept and printed again at the end, where a reader of a long log (or of its tail) finds it.
const failures = [];
let pending = '';
let path = []; // names of the enclosing subtests by indent
let current = null; // lines of the failure block being collected
let currentIndent = -1;
function onLine(line) {
  const m = /^( *)(?:# Subtest: (.*)|(not ok|ok) \d+ - (.*))$/.exec(line);
  if (current) {
    const indent = /^ */.exec(line)[0].length;
    if (line.trim() !== '' && indent <= currentIndent && !line.trimStart().startsWith('---')) {
      failures.push(current.join('\n'));
      current = null;
    } else {
      current.push(line);
      return;
    }
  }
  if (!m) return;
  const depth = m[1].length / 4;
  if (m[2] !== undefined) {
    path.length = depth;
    path[depth] = m[2];
  } else if (m[3] === 'not ok') {
    const names = path.slice(0, depth).filter(Boolean);
    current = [`not ok: ${[...names, m[4]].join(' › ')}`, line];
    currentIndent = m[1].length;
  }
}
const utf8 = new StringDecoder('utf8'); // a character split between two chunks is decoded whole
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  pending += utf8.write(chunk);
  let i;
  while ((i = pending.indexOf('\n')) >= 0) {
    onLine(pending.slice(0, i));
    pending = pending.slice(i + 1);
  }
});
function summary() {
  if (current) failures.push(current.join('\n'));
  current = null;
  // A suite fails when a test in it fails: keep only the innermost failures (those no other failure is under).
  const leaves = failures.filter((f, i) => !failures.some((g, j) => j !== i && g.split('\n')[0].startsWith(f.split('\n')[0] + ' › ')));
  if (leaves.length === 0) return;
  process.stdout.write(`\n# ${leaves.length} failing test(s):\n${leaves.map(shortStack).join('\n\n')}\n`);
}
// The first lines of a stack say where; the test runner's own frames below them do not.
function shortStack(block) {
  const out = [];
  let stackIndent = -1;
  let kept = 0;
  for (const line of block.split('\n')) {
    const indent = /^ */.exec(line)[0].length;
    if (stackIndent >= 0 && indent > stackIndent) {
      if (kept++ < 3) out.push(line);
      continue;
    }
    stackIndent = /^ *stack: \|-$/.test(line) ? indent : -1;
    kept = 0;
    out.push(line);
  }
  return out.join('\n');
}
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
  const finish = () => {
    if (pending) onLine(pending);
    pending = '';
    summary();
    process.exit(code ?? (signal ? 1 : 0));
  };
  // The rest of the output, once nothing holds the pipe open any more.
  if (child.stdout.readableEnded) finish();
  else {
    child.stdout.once('end', finish);
    setTimeout(finish, 2000).unref();
  }
});
