// Layering and import cycles (ARCHITECTURE.md): no module of src/ reaches itself through imports that exist at
// run time (type-only imports are erased), and protocol/, store/ and transport/ import nothing from broker/.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const src = join(root, 'src');

function tsFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) tsFiles(p, out);
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** Relative imports of a file that remain at run time. */
function runtimeImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/^import\s+(?!type\b)([\s\S]*?)\s+from\s+'(\.[^']+)';/gm)) {
    const what = m[1]!;
    const braces = /^\{([\s\S]*)\}$/.exec(what.trim());
    // `import { type A, type B } from` is erased too.
    if (braces && braces[1]!.split(',').every((n) => n.trim() === '' || n.trim().startsWith('type '))) continue;
    out.push(normalize(join(dirname(file), m[2]!.replace(/\.js$/, '.ts'))));
  }
  return out;
}

describe('module structure', () => {
  const files = tsFiles(src);
  const graph = new Map(files.map((f) => [f, runtimeImports(f)]));

  it('src/ has no run-time import cycle', () => {
    const cycles: string[] = [];
    const state = new Map<string, 1 | 2>(); // 1: on the stack, 2: done
    const stack: string[] = [];
    const visit = (f: string): void => {
      state.set(f, 1);
      stack.push(f);
      for (const d of graph.get(f) ?? []) {
        if (state.get(d) === 1) cycles.push([...stack.slice(stack.indexOf(d)), d].map((x) => relative(src, x)).join(' -> '));
        else if (state.get(d) === undefined) visit(d);
      }
      stack.pop();
      state.set(f, 2);
    };
    for (const f of files) if (state.get(f) === undefined) visit(f);
    assert.deepEqual(cycles, []);
  });

  it('protocol/, store/ and transport/ import nothing from broker/', () => {
    const bad: string[] = [];
    for (const [f, deps] of graph) {
      const layer = relative(src, f).split('/')[0];
      if (layer !== 'protocol' && layer !== 'store' && layer !== 'transport') continue;
      for (const d of deps) if (relative(src, d).startsWith('broker/')) bad.push(`${relative(src, f)} -> ${relative(src, d)}`);
    }
    assert.deepEqual(bad, []);
  });
});
