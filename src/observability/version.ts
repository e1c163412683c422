// Petrel's version, read once from package.json (found from the compiled file's place: dist/ or build/src/).

import { readFileSync } from 'node:fs';

let cached: string | null = null;

export function petrelVersionSync(): string {
  if (cached !== null) return cached;
  cached = 'unknown';
  for (const rel of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'petrel' && typeof pkg.version === 'string') {
        cached = pkg.version;
        break;
      }
    } catch {
      // next candidate
    }
  }
  return cached;
}
