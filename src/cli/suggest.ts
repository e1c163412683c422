// "Did you mean ...?" for a mistyped flag or config key: the known name closest by edit distance (case and
// '-'/'_' ignored), if it is close enough to be a likely typo.

function normalize(s: string): string {
  return s.toLowerCase().replace(/[-_]/g, '');
}

/** Levenshtein distance, one row at a time. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}

/** The closest candidate to `name`, or undefined when none is within a third of its length (at least 2 edits). */
export function closest(name: string, candidates: readonly string[]): string | undefined {
  const n = normalize(name);
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = distance(n, normalize(c));
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return bestD <= Math.max(2, Math.floor(n.length / 3)) ? best : undefined;
}

/** ' (did you mean X?)' or ''. */
export function didYouMean(name: string, candidates: readonly string[]): string {
  const c = closest(name, candidates);
  return c === undefined ? '' : ` (did you mean ${c}?)`;
}
