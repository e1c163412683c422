// Scraping a broker's /metrics in tests: the Prometheus text format parsed into samples.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Scrape {
  text: string;
  samples: Sample[];
  /** Families declared by # TYPE lines, with their type. */
  types: Map<string, string>;
  /** Sum of the samples of a series name whose labels include `labels`. */
  value(name: string, labels?: Record<string, string>): number;
  /** Whether any sample of this series name exists. */
  has(name: string): boolean;
}

export function parseMetrics(text: string): Scrape {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^# TYPE (\S+) (\S+)/.exec(line);
      if (m) types.set(m[1]!, m[2]!);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!m) throw new Error(`unparsable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[2]) for (const l of m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    const v = m[3]!;
    samples.push({ name: m[1]!, labels, value: v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : Number(v) });
  }
  const matches = (s: Sample, labels: Record<string, string>): boolean => Object.entries(labels).every(([k, v]) => s.labels[k] === v);
  return {
    text,
    samples,
    types,
    value(name, labels = {}) {
      return samples.filter((s) => s.name === name && matches(s, labels)).reduce((a, s) => a + s.value, 0);
    },
    has(name) {
      return samples.some((s) => s.name === name);
    },
  };
}

export async function scrape(port: number, headers: Record<string, string> = {}): Promise<Scrape> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { headers, signal: AbortSignal.timeout(5000) });
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return parseMetrics(await res.text());
}
