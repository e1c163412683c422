// contrib/: the Grafana dashboard and the Prometheus alert rules refer only to metrics that a real Petrel under
// load exports, with samples, and with the labels and label values their selectors use. The YAML files are
// written in a plain subset parsed here (no YAML library): mappings, lists, one-line scalars, flow lists.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createBroker, type PetrelBroker } from '../../src/index.js';
import { connectMqtt, endAll, type Connected } from '../helpers/mqttjs.js';
import { RawClient } from '../helpers/raw-client.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { scrape, type Scrape } from './scrape.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const contrib = join(root, 'contrib');

// ---- a YAML subset ----

interface Line {
  indent: number;
  text: string;
  no: number;
}

function scalar(s: string, no: number): unknown {
  if (s.startsWith("'")) {
    if (!s.endsWith("'") || s.length < 2) throw new Error(`line ${no}: unterminated '...'`);
    return s.slice(1, -1).replace(/''/g, "'");
  }
  if (s.startsWith('"')) return JSON.parse(s) as unknown;
  if (s.startsWith('[')) {
    if (!s.endsWith(']')) throw new Error(`line ${no}: unterminated [...]`);
    const inner = s.slice(1, -1).trim();
    if (inner === '') return [];
    const items: string[] = [];
    let cur = '';
    let quote = '';
    for (const ch of inner) {
      if (quote !== '') {
        cur += ch;
        if (ch === quote) quote = '';
      } else if (ch === "'" || ch === '"') {
        quote = ch;
        cur += ch;
      } else if (ch === ',') {
        items.push(cur.trim());
        cur = '';
      } else cur += ch;
    }
    items.push(cur.trim());
    return items.map((x) => scalar(x, no));
  }
  if (/^[|>&*!{]/.test(s)) throw new Error(`line ${no}: YAML feature outside the subset: ${s}`);
  if (s === 'true' || s === 'false') return s === 'true';
  if (/^-?\d+(\.\d+)?$/.test(s)) return Number(s);
  return s;
}

export function parseYamlSubset(text: string): unknown {
  const lines: Line[] = [];
  text.split('\n').forEach((raw, i) => {
    const t = raw.trimEnd();
    if (t.trim() === '' || t.trim().startsWith('#')) return;
    if (raw.includes('\t')) throw new Error(`line ${i + 1}: tab`);
    lines.push({ indent: t.length - t.trimStart().length, text: t.trim(), no: i + 1 });
  });
  let i = 0;
  const keyOf = (l: Line): [string, string] => {
    const m = /^([A-Za-z0-9_.-]+):(?: (.*))?$/.exec(l.text);
    if (!m) throw new Error(`line ${l.no}: expected "key: value": ${l.text}`);
    return [m[1]!, (m[2] ?? '').trim()];
  };
  const block = (indent: number): unknown => (lines[i]!.text.startsWith('- ') ? list(indent) : map(indent));
  const map = (indent: number): Record<string, unknown> => {
    const obj: Record<string, unknown> = {};
    while (i < lines.length && lines[i]!.indent === indent && !lines[i]!.text.startsWith('- ')) {
      const l = lines[i++]!;
      const [key, rest] = keyOf(l);
      if (key in obj) throw new Error(`line ${l.no}: duplicate key ${key}`);
      if (rest !== '') obj[key] = scalar(rest, l.no);
      else if (i < lines.length && lines[i]!.indent > indent) obj[key] = block(lines[i]!.indent);
      else obj[key] = null;
    }
    if (i < lines.length && lines[i]!.indent > indent) throw new Error(`line ${lines[i]!.no}: bad indentation`);
    return obj;
  };
  const list = (indent: number): unknown[] => {
    const arr: unknown[] = [];
    while (i < lines.length && lines[i]!.indent === indent && lines[i]!.text.startsWith('- ')) {
      const l = lines[i]!;
      const after = l.text.slice(2).trim();
      if (/^[A-Za-z0-9_.-]+:( |$)/.test(after)) {
        lines[i] = { indent: indent + 2, text: after, no: l.no };
        arr.push(map(indent + 2));
      } else {
        arr.push(scalar(after, l.no));
        i++;
      }
    }
    return arr;
  };
  const out = block(0);
  if (i !== lines.length) throw new Error(`line ${lines[i]!.no}: unexpected ${lines[i]!.text}`);
  return out;
}

// ---- PromQL: the metric names and label matchers an expression uses ----

const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan']);
/** Series Prometheus makes itself for every target (not in /metrics). */
const SYNTHETIC = new Set(['up']);

export function metricNames(expr: string): string[] {
  let e = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  e = e.replace(/\{[^}]*\}/g, ' ').replace(/\[[^\]]*\]/g, ' ');
  e = e.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of e.matchAll(/(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    if (m[2] !== undefined || KEYWORDS.has(m[1]!)) continue;
    names.add(m[1]!);
  }
  return [...names];
}

/** name{label op "value", ...} selectors. */
function selectors(expr: string): { name: string; label: string; op: string; value: string }[] {
  const out: { name: string; label: string; op: string; value: string }[] = [];
  for (const m of expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}/g)) {
    for (const x of m[2]!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"/g)) out.push({ name: m[1]!, label: x[1]!, op: x[2]!, value: x[3]! });
  }
  return out;
}

interface Expr {
  where: string;
  expr: string;
}

function dashboardExprs(): Expr[] {
  const dash = JSON.parse(readFileSync(join(contrib, 'grafana', 'petrel.json'), 'utf8')) as { panels: { title: string; type: string; targets?: { expr: string }[] }[] };
  const out: Expr[] = [];
  for (const p of dash.panels) for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}"`, expr: t.expr });
  return out;
}

function alertExprs(): Expr[] {
  const rules = parseYamlSubset(readFileSync(join(contrib, 'prometheus', 'petrel-alerts.yml'), 'utf8')) as { groups: { name: string; rules: { alert: string; expr: string }[] }[] };
  return rules.groups.flatMap((g) => g.rules.map((r) => ({ where: `alert ${r.alert}`, expr: r.expr })));
}

/** Check every expression against a scrape: names exist with samples; selector labels and values exist. */
function check(exprs: Expr[], m: Scrape): string[] {
  const problems: string[] = [];
  for (const { where, expr } of exprs) {
    const names = metricNames(expr);
    if (names.length === 0) problems.push(`${where}: no metric in ${expr}`);
    for (const name of names) {
      if (SYNTHETIC.has(name)) continue;
      if (!m.has(name)) problems.push(`${where}: ${name} has no sample`);
    }
    for (const s of selectors(expr)) {
      if (s.label === 'job' || s.label === 'instance' || SYNTHETIC.has(s.name)) continue;
      const samples = m.samples.filter((x) => x.name === s.name);
      if (!samples.some((x) => s.label in x.labels)) problems.push(`${where}: ${s.name} has no label ${s.label}`);
      else if ((s.op === '=' || s.op === '!=') && !samples.some((x) => x.labels[s.label] === s.value)) problems.push(`${where}: ${s.name}{${s.label}="${s.value}"} never occurs`);
    }
  }
  return problems;
}

describe('contrib: Grafana dashboard, Prometheus rules, docker compose', () => {
  it('the YAML subset parser reads what it claims and refuses the rest', () => {
    assert.deepEqual(parseYamlSubset("a: 1\nb:\n  - x: 'y'\n    z: [\"p\", 'q:r']\n  - plain\nc: true\n"), { a: 1, b: [{ x: 'y', z: ['p', 'q:r'] }, 'plain'], c: true });
    assert.throws(() => parseYamlSubset('a: |\n  text\n'), /outside the subset/);
    assert.deepEqual(metricNames('histogram_quantile(0.99, sum by (le) (rate(x_bucket{job=~"$job"}[5m]))) > 1e6 and on(instance) up == 0'), ['x_bucket', 'up']);
  });

  it('the dashboard is well formed: unique ids, a datasource per panel, inside 24 columns; it has the overview and a "broker is sick" row', () => {
    const dash = JSON.parse(readFileSync(join(contrib, 'grafana', 'petrel.json'), 'utf8')) as {
      uid: string;
      panels: { id: number; type: string; title: string; datasource?: unknown; gridPos: { x: number; w: number }; targets?: { expr: string; refId: string }[] }[];
    };
    assert.equal(dash.uid, 'petrel-overview');
    const ids = dash.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length);
    const rows = dash.panels.filter((p) => p.type === 'row').map((p) => p.title);
    assert.deepEqual(rows, ['Broker is sick', 'Overview']);
    for (const p of dash.panels.filter((x) => x.type !== 'row')) {
      assert.ok(p.datasource, p.title);
      assert.ok(p.gridPos.x + p.gridPos.w <= 24, p.title);
      assert.ok((p.targets ?? []).length > 0, p.title);
    }
    const all = dashboardExprs().map((e) => e.expr).join('\n');
    for (const needed of ['petrel_connections', 'petrel_messages_received_total', 'petrel_messages_sent_total', 'petrel_messages_dropped_total', 'histogram_quantile', 'petrel_queued_messages', 'petrel_eventloop_delay_seconds_bucket', 'process_resident_memory_bytes']) {
      assert.ok(all.includes(needed), `the dashboard shows ${needed}`);
    }
  });

  it('prometheus.yml loads the rules, scrapes job "petrel"; docker-compose.yml mounts files that exist', () => {
    const prom = parseYamlSubset(readFileSync(join(contrib, 'prometheus', 'prometheus.yml'), 'utf8')) as { rule_files: string[]; scrape_configs: { job_name: string; metrics_path: string }[] };
    assert.ok(prom.rule_files.some((f) => f.endsWith('/petrel-alerts.yml')));
    assert.equal(prom.scrape_configs[0]!.job_name, 'petrel');
    assert.equal(prom.scrape_configs[0]!.metrics_path, '/metrics');
    const compose = parseYamlSubset(readFileSync(join(contrib, 'docker-compose.yml'), 'utf8')) as { services: Record<string, { volumes: string[] }> };
    for (const [name, svc] of Object.entries(compose.services)) {
      for (const v of svc.volumes) {
        const src = v.split(':')[0]!;
        assert.ok(existsSync(join(contrib, src)), `${name}: ${src} exists`);
      }
    }
    const rules = parseYamlSubset(readFileSync(join(contrib, 'prometheus', 'petrel-alerts.yml'), 'utf8')) as { groups: { rules: Record<string, unknown>[] }[] };
    for (const r of rules.groups[0]!.rules) {
      assert.equal(typeof r.alert, 'string');
      assert.equal(typeof r.expr, 'string');
      assert.ok(['critical', 'warning'].includes((r.labels as { severity: string }).severity), String(r.alert));
      assert.equal(typeof (r.annotations as { summary: unknown }).summary, 'string');
    }
  });

  it('every metric of every panel and alert exists, with samples, in the /metrics of a Petrel under load', { timeout: 60_000 }, async () => {
    const broker: PetrelBroker = await createBroker({
      store: { type: 'memory' },
      listeners: [{ port: 0, host: '127.0.0.1' }],
      logLevel: 'silent',
      closeTimeout: 1,
      sysInterval: 0,
      http: { port: 0 },
      limits: { maxWriteBuffer: 1024, maxSessionHeapBytes: 64 * 1024 },
      hooks: { authenticate: (req) => req.username !== 'intruder' },
    });
    const [addr] = await broker.listen();
    const url = `mqtt://127.0.0.1:${addr!.port}`;
    const clients: Connected[] = [];
    let slow: RawClient | null = null;
    try {
      for (const v of [3, 4, 5] as const) {
        clients.push(await connectMqtt(url, v === 3 ? { protocolId: 'MQIsdp', protocolVersion: 3, clientId: `g3-${process.pid}` } : { protocolVersion: v }));
      }
      const [a, b, c] = clients as [Connected, Connected, Connected];
      await a.client.subscribeAsync('load/#', { qos: 2 });
      await b.client.subscribeAsync('$share/g/load/#', { qos: 1 });
      slow = (await RawClient.connect(addr!.port, 4, { clientId: 'slow' })).client;
      await slow.subscribe([{ filter: 'load/#', qos: 0 }]);
      slow.socket.pause();
      const refused = await RawClient.connect(addr!.port, 5, { clientId: 'intruder', username: 'intruder', password: Buffer.from('x') }, true);
      assert.equal(refused.connack.reasonCode, 0x86);
      refused.client.destroy();
      const big = Buffer.alloc(16 * 1024, 7);
      for (let i = 0; i < 1500; i++) c.client.publish(`load/${i % 5}`, big, { qos: 0 });
      for (let i = 0; i < 50; i++) await c.client.publishAsync(`load/q${i % 3}`, `m${i}`, { qos: (i % 3) as 0 | 1 | 2, retain: i === 0 });
      await c.client.publishAsync('nobody/listens', 'x', { qos: 1 });
      await waitFor(() => broker.stats.messagesIn >= 1551, 10_000, 'the load to arrive');
      await sleep(200);
      const m = await scrape(broker.httpAddress!.port);
      const problems = [...check(dashboardExprs(), m), ...check(alertExprs(), m)];
      assert.deepEqual(problems, []);
      // The load did what the panels are for.
      assert.ok(m.value('petrel_messages_dropped_total', { reason: 'qos0_slow_client' }) > 0);
      assert.ok(m.value('petrel_delivery_ack_seconds_count') > 0);
      assert.equal(m.value('petrel_connections_backpressured'), 1);
    } finally {
      slow?.destroy();
      await endAll(...clients.map((x) => x.client));
      await broker.close();
    }
  });
});
