// Result summarising: machine facts, medians, ratios, the markdown table for
// bench/README.md and the SVG chart bench/results/latest.svg (no dependencies).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { aedesVersion, findMosquitto } from './brokers.mjs';
import { REPO_DIR } from './loadgen.mjs';
import { getPath } from './scenarios.mjs';

export function machineFacts() {
  let cpuModel = os.cpus()[0]?.model ?? null;
  try {
    const m = /model name\s*:\s*(.*)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpuModel = m[1].trim();
  } catch {}
  let distro = null;
  try {
    distro = /PRETTY_NAME="?([^"\n]*)/.exec(fs.readFileSync('/etc/os-release', 'utf8'))?.[1] ?? null;
  } catch {}
  const git = (...a) => {
    const r = spawnSync('git', a, { cwd: REPO_DIR, encoding: 'utf8' });
    return r.status === 0 ? r.stdout.trim() : null;
  };
  const commit = git('rev-parse', 'HEAD');
  const dirty = git('status', '--porcelain', '--untracked-files=no');
  return {
    cpu_model: cpuModel,
    cores: os.cpus().length,
    memory_gb: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: os.release(),
    os: distro,
    node: process.version,
    mosquitto: findMosquitto()?.version ?? null,
    aedes: aedesVersion(),
    petrel_commit: commit,
    petrel_commit_short: commit ? commit.slice(0, 7) : 'nogit',
    petrel_dirty: dirty === null ? null : dirty.length > 0,
    clocksource: readOr('/sys/devices/system/clocksource/clocksource0/current_clocksource'),
  };
}

function readOr(p) {
  try {
    return fs.readFileSync(p, 'utf8').trim();
  } catch {
    return null;
  }
}

export function median(xs) {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** Per scenario and broker: median of each metric over the repetitions, plus check totals. */
export function summarise(scenario, runsByBroker) {
  const out = {};
  for (const [broker, runs] of Object.entries(runsByBroker)) {
    const s = { reps: runs.length, errors: runs.filter((r) => r.error).map((r) => r.error) };
    for (const m of scenario.metrics) s[m.key] = median(runs.map((r) => getPath(r, m.key)));
    if (scenario.kind === 'throughput') {
      for (const k of ['loadgen_cpu_pct', 'broker_cpu_pct', 'redis_cpu_pct', 'redis_us_per_msg']) s[k] = median(runs.map((r) => getPath(r, k)));
      s.core0_busy_pct = median(runs.map((r) => r.core_busy_pct?.[0]));
      s.core1_busy_pct = median(runs.map((r) => r.core_busy_pct?.[1]));
      s.lost = sum(runs.map((r) => r.lost));
      s.duplicates = sum(runs.map((r) => r.duplicates));
      s.dup_redelivered = sum(runs.map((r) => r.dup_redelivered));
      s.inflight_unacked = sum(runs.map((r) => r.inflight_unacked));
      s.sent = sum(runs.map((r) => r.sent));
      s.ok = runs.every((r) => r.ok === true);
    }
    if (scenario.kind === 'idle') {
      s.loadgen_cpu_s = median(runs.map((r) => r.loadgen_cpu_s));
      s.broker_cpu_s = median(runs.map((r) => r.broker_cpu_s));
      s.connect_seconds = median(runs.map((r) => r.connect_seconds));
      s.failed = sum(runs.map((r) => r.failed));
    }
    out[broker] = s;
  }
  // metrics-cost: the two brokers run one after the other in each repetition (ABBA order), so each rep's
  // on/off ratio has the same machine under it; their geometric mean is reported beside the ratio of medians.
  const on = runsByBroker['metrics-on'];
  const off = runsByBroker['metrics-off'];
  if (scenario.id === 'metrics-cost' && on && off) {
    const logs = on.map((r, i) => Math.log(r.recv_rate / off[i]?.recv_rate)).filter(Number.isFinite);
    if (logs.length) out['metrics-on'].paired_ratio = Math.exp(logs.reduce((a, x) => a + x, 0) / logs.length);
  }
  return out;
}

const sum = (xs) => xs.reduce((a, x) => a + (typeof x === 'number' ? x : 0), 0);

// ------------------------------------------------------------------ table rows

const SHORT = {
  'fanin-qos0': 'fan-in Q0',
  'fanin-qos1': 'fan-in Q1',
  'p2p-qos0': 'p2p Q0',
  'p2p-qos1': 'p2p Q1',
  'p2p-qos2': 'p2p Q2',
  'p2p-qos2-w100': 'p2p Q2 w100',
  'fanout-qos0': 'fan-out Q0',
  'latency-qos1': 'latency',
  'idle-10k': 'idle',
  'persistent-qos1': 'persistent Q1',
  inproc: 'in-process',
  'metrics-cost': 'metrics on/off',
  eventloop: 'event loop',
};

/**
 * Flatten scenarios x metrics into table rows:
 * { id, title, label, better, scale, values: {broker: v}, goalText, goalMet }
 */
export function tableRows(results) {
  const rows = [];
  for (const sc of results.scenarios) {
    for (const m of sc.metrics) {
      const values = {};
      for (const [b, s] of Object.entries(sc.summary)) values[b] = s[m.key] ?? null;
      const row = {
        id: sc.id,
        short: SHORT[sc.id] ?? sc.id,
        title: sc.title,
        metricKey: m.key,
        label: m.label,
        better: m.better,
        scale: m.scale ?? 1,
        values,
      };
      if (sc.metrics.length > 1) row.short += ` ${m.short ?? m.label.split(' ')[0]}`;
      const [goalText, goalMet] = goalFor(sc, m, values, sc.summary);
      row.goalText = goalText;
      row.goalMet = goalMet;
      rows.push(row);
    }
  }
  return rows;
}

function ratio(a, b) {
  return a != null && b != null && b !== 0 ? a / b : null;
}

/** `text` followed by the bare Node net.Server's figure for an idle-10k metric (connect rate or RSS), if measured. */
function withNodeFloor(text, m, v) {
  const f = v['node-floor'];
  if (f == null) return text;
  const floor = `(bare Node net.Server: ${m.key.startsWith('rss') ? `${(f / 1024).toFixed(1)} KB` : `${(f / 1000).toFixed(1)}k/s`})`;
  return text === '' ? floor : `${text} ${floor}`;
}

function goalFor(sc, m, v, summary = {}) {
  const p = v.petrel;
  switch (`${sc.id}|${m.key}`) {
    case 'latency-qos1|latency.p99_us': {
      const r = ratio(p, v.aedes);
      return ['p99 ≤ Aedes', r == null ? null : r <= 1.0];
    }
    case 'latency-qos1|latency.p50_us':
      return ['', null];
    case 'idle-10k|connect_rate': {
      const r = ratio(p, v.mosquitto);
      return [withNodeFloor('≥ 0.5× Mosquitto', m, v), r == null ? null : r >= 0.5];
    }
    case 'idle-10k|connect_rate_cold':
    case 'idle-10k|rss_per_conn_bytes':
      return [withNodeFloor('', m, v), null];
    case 'idle-10k|rss_per_conn_idle_bytes':
      return [withNodeFloor('≤ 4 KB', m, v), p == null ? null : p <= 4096];
    case 'p2p-qos2|recv_rate': {
      const r1 = ratio(p, v.mosquitto);
      const r2 = ratio(p, v.aedes);
      return ['≥ 1.0× Mosquitto, ≥ Aedes', r1 == null && r2 == null ? null : (r1 == null || r1 >= 1) && (r2 == null || r2 >= 1)];
    }
    case 'persistent-qos1|recv_rate': {
      const r = ratio(v['petrel-sqlite'], p);
      const rp = ratio(v['petrel-sqlite-power'], p);
      const text = (r == null ? 'SQLite/memory ≥ 0.5×' : `SQLite/memory ${r.toFixed(2)}× (goal ≥ 0.5×)`) + (rp == null ? '' : `; fsync per commit ${rp.toFixed(2)}×`);
      return [text, r == null ? null : r >= 0.5];
    }
    case 'p2p-qos2-w100|recv_rate':
      return ['no loss with > 20 in flight', null];
    case 'inproc|rate':
      return ['', null];
    // Issue 12's goals are the cluster's (two nodes, every message crossing), not single Petrel's.
    case 'cluster-p2p-qos1|recv_rate': {
      const r = ratio(v['petrel-cluster'], v.mosquitto);
      return [r == null ? 'cluster ≥ 1.0× Mosquitto' : `cluster ${r.toFixed(2)}× Mosquitto (goal ≥ 1.0×)`, r == null ? null : r >= 1.0];
    }
    case 'cluster-latency-qos1|latency.p99_us': {
      const c = v['petrel-cluster'];
      return [c == null ? 'cluster p99 ≤ 2 ms' : `cluster p99 ${(c / 1000).toFixed(2)} ms (goal ≤ 2 ms)`, c == null ? null : c <= 2000];
    }
    case 'cluster-latency-qos1|latency.p50_us':
      return ['', null];
    case 'metrics-cost|recv_rate': {
      const r = ratio(v['metrics-on'], v['metrics-off']);
      const paired = summary['metrics-on']?.paired_ratio;
      const text = r == null ? 'on/off ≥ 0.95×' : `on/off ${r.toFixed(3)}× (goal ≥ 0.95×)${paired == null ? '' : `; per-rep pairs, geometric mean ${paired.toFixed(3)}×`}`;
      return [text, r == null ? null : r >= 0.95];
    }
    case 'eventloop|delete.with.p99':
    case 'eventloop|fanout.with.p99':
    case 'eventloop|checkpoint.with.p99':
    case 'eventloop|power.with.p99':
      return ['≤ 5 ms', p == null ? null : p <= 5];
    case 'eventloop|delete.with.max':
    case 'eventloop|fanout.with.max':
    case 'eventloop|checkpoint.with.max':
    case 'eventloop|power.with.max':
      return ['≤ 50 ms', p == null ? null : p <= 50];
    default: {
      if (sc.kind !== 'throughput') return ['', null];
      const r = ratio(p, v.mosquitto);
      return ['≥ 1.0× Mosquitto', r == null ? null : r >= 1.0];
    }
  }
}

export function fmtValue(v, row) {
  if (v == null) return '—';
  const x = v * row.scale;
  if (row.label.startsWith('msg/s') || row.label.startsWith('connections')) {
    if (x >= 1e6) return `${(x / 1e6).toFixed(2)}M`;
    if (x >= 1e3) return `${(x / 1e3).toFixed(1)}k`;
    return x.toFixed(0);
  }
  if (x >= 100) return x.toFixed(0);
  if (x >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

const fmtRatio = (r) => (r == null ? '—' : `${r.toFixed(2)}×`);

function checkText(sc, b) {
  const s = sc.summary[b];
  if (!s) return '';
  if (s.errors?.length) return `error: ${String(s.errors[0]).split('\n')[0].slice(0, 80)}`;
  if (sc.kind !== 'throughput') return s.failed ? `${s.failed} failed connects` : 'ok';
  const parts = [];
  const qos = sc.load.qos;
  if (s.lost) parts.push(`${s.lost} lost${qos === 0 ? ' (QoS 0, allowed)' : ''}`);
  if (s.duplicates) parts.push(`${s.duplicates} duplicates`);
  if (s.dup_redelivered) parts.push(`${s.dup_redelivered} redelivered dups`);
  if (s.inflight_unacked) parts.push(`${s.inflight_unacked} never acknowledged`);
  return parts.length ? parts.join(', ') : 'ok';
}

/** Markdown written between the results markers of bench/README.md. */
export function markdown(results) {
  const brokers = results.brokers;
  const has = (b) => brokers.includes(b);
  const cols = ['petrel', 'mosquitto', 'aedes'].filter(has);
  const L = [];
  const mf = results.machine;
  L.push(
    `Run \`${results.file}\` — ${results.date}${results.quick ? ' (quick mode: 1 repetition, ~1 s)' : ''}, ` +
      `median of ${results.config.reps}, ${results.config.duration} s measured after ${results.config.warmup} s warm-up. ` +
      `${mf.cpu_model}, ${mf.cores} cores, Linux ${mf.kernel}, Node ${mf.node}, Mosquitto ${mf.mosquitto ?? 'n/a'}, ` +
      `Aedes ${mf.aedes ?? 'n/a'}, Petrel ${mf.petrel_commit_short}${mf.petrel_dirty ? ' (uncommitted changes)' : ''}.`,
  );
  if (results.background_busy_max_pct > 15) {
    L.push('');
    L.push(`**Warning:** other processes kept the machine up to ${results.background_busy_max_pct}% busy just before some runs; those figures are distorted.`);
  }
  if (results.skipped.length) {
    L.push('');
    for (const s of results.skipped) L.push(`- skipped ${s.broker}: ${s.reason}`);
  }
  L.push('');
  const head = ['Scenario', 'Metric', ...cols.map((b) => label(b))];
  if (has('petrel') && has('mosquitto')) head.push('Petrel/Mosquitto');
  if (has('petrel') && has('aedes')) head.push('Petrel/Aedes');
  if (!has('petrel') && has('mosquitto') && has('aedes')) head.push('Aedes/Mosquitto');
  head.push('Goal');
  L.push(`| ${head.join(' | ')} |`);
  L.push(`|${head.map((h, i) => (i < 2 || h === 'Goal' ? ' --- ' : ' ---: ')).join('|')}|`);
  for (const row of tableRows(results)) {
    const v = row.values;
    const cells = [row.title, `${row.label} (${row.better} is better)`, ...cols.map((b) => fmtValue(v[b], row))];
    if (row.id === 'persistent-qos1' && has('petrel')) {
      cells[2] = `${fmtValue(v.petrel, row)} (memory) / ${fmtValue(v['petrel-sqlite'], row)} (SQLite)`;
      if (v['petrel-sqlite-power'] != null) cells[2] += ` / ${fmtValue(v['petrel-sqlite-power'], row)} (SQLite, fsync)`;
    }
    if (has('petrel') && has('mosquitto')) cells.push(fmtRatio(ratio(v.petrel, v.mosquitto)));
    if (has('petrel') && has('aedes')) cells.push(fmtRatio(ratio(v.petrel, v.aedes)));
    if (!has('petrel') && has('mosquitto') && has('aedes')) cells.push(fmtRatio(ratio(v.aedes, v.mosquitto)));
    const mark = row.goalMet === true ? ' ✅' : row.goalMet === false ? ' ❌' : '';
    cells.push(`${row.goalText}${mark}`);
    L.push(`| ${cells.join(' | ')} |`);
  }
  L.push('');
  L.push('Ratios are raw value ratios: for latency and RSS lower is better, so a ratio below 1.0× favours Petrel there.');
  // delivery checks
  L.push('');
  L.push('Delivery checks (all repetitions; QoS 1/2 must lose nothing that was acknowledged, no duplicates except redelivery):');
  L.push('');
  const allB = [...new Set(results.scenarios.flatMap((s) => Object.keys(s.summary)))];
  L.push(`| Scenario | ${allB.map(label).join(' | ')} |`);
  L.push(`| --- |${allB.map(() => ' --- ').join('|')}|`);
  for (const sc of results.scenarios) L.push(`| ${sc.title} | ${allB.map((b) => checkText(sc, b) || '—').join(' | ')} |`);
  // CPU table
  L.push('');
  L.push('CPU during the measured window (median): load generator process CPU % / broker process CPU % (per-core `/proc/stat` figures are in the JSON as `core_busy_pct`):');
  L.push('');
  L.push(`| Scenario | ${allB.map(label).join(' | ')} |`);
  L.push(`| --- |${allB.map(() => ' --- ').join('|')}|`);
  for (const sc of results.scenarios) {
    if (sc.kind === 'throughput') {
      L.push(
        `| ${sc.title} | ${allB
          .map((b) => {
            const s = sc.summary[b];
            if (!s || s.loadgen_cpu_pct == null) return '—';
            return `${pct(s.loadgen_cpu_pct)} / ${pct(s.broker_cpu_pct)}`;
          })
          .join(' | ')} |`,
      );
    } else if (sc.kind === 'idle') {
      L.push(
        `| ${sc.title} (warm connect phase: load generator / broker CPU seconds in wall seconds) | ${allB
          .map((b) => {
            const s = sc.summary[b];
            if (!s || s.loadgen_cpu_s == null) return '—';
            return `${s.loadgen_cpu_s.toFixed(2)} s / ${s.broker_cpu_s?.toFixed(2)} s in ${s.connect_seconds?.toFixed(2)} s`;
          })
          .join(' | ')} |`,
      );
    }
  }
  L.push('');
  L.push('![Petrel relative to Mosquitto and Aedes](results/latest.svg)');
  return L.join('\n');
}

const pct = (x) => (x == null ? '—' : `${Math.round(x)}%`);
const LABELS = { petrel: 'Petrel', 'petrel-sqlite': 'Petrel SQLite', 'petrel-sqlite-power': 'Petrel SQLite (fsync)', mosquitto: 'Mosquitto', 'mosquitto-defaults': 'Mosquitto (defaults)', aedes: 'Aedes' };
const label = (b) => LABELS[b] ?? b;

export function writeReadmeTable(readmePath, md) {
  const START = '<!-- results:start -->';
  const END = '<!-- results:end -->';
  let text = fs.readFileSync(readmePath, 'utf8');
  const a = text.indexOf(START);
  const b = text.indexOf(END);
  if (a < 0 || b < a) {
    text += `\n${START}\n${md}\n${END}\n`;
  } else {
    text = `${text.slice(0, a + START.length)}\n${md}\n${text.slice(b)}`;
  }
  fs.writeFileSync(readmePath, text);
}

// ----------------------------------------------------------------------- SVG

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * Grouped bars per scenario metric: Petrel vs Mosquitto and Petrel vs Aedes,
 * as "advantage" factors (> 1 = Petrel better: throughput Petrel/other,
 * latency and RSS other/Petrel), on a log scale centred on 1.
 */
export function svgChart(results) {
  const rows = tableRows(results).filter((r) => r.id !== 'inproc' && r.id !== 'persistent-qos1' && r.id !== 'eventloop');
  const petrel = results.brokers.includes('petrel');
  const series = petrel
    ? [
        { name: 'Petrel vs Mosquitto', a: 'petrel', b: 'mosquitto', color: '#2f6db5' },
        { name: 'Petrel vs Aedes', a: 'petrel', b: 'aedes', color: '#e08a1e' },
      ]
    : [{ name: 'Aedes vs Mosquitto (Petrel not measured)', a: 'aedes', b: 'mosquitto', color: '#888888' }];
  const adv = (row, s) => {
    const x = row.values[s.a];
    const y = row.values[s.b];
    if (x == null || y == null || x <= 0 || y <= 0) return null;
    return row.better === 'higher' ? x / y : y / x;
  };
  const groups = rows
    .map((r) => ({ row: r, vals: series.map((s) => adv(r, s)) }))
    .filter((g) => g.vals.some((v) => v != null));
  const W = Math.max(640, 110 + groups.length * 86);
  const H = 420;
  const top = 60;
  const bottom = 330;
  const left = 70;
  let maxV = 4;
  let minV = 1 / 4;
  for (const g of groups)
    for (const v of g.vals)
      if (v != null) {
        maxV = Math.max(maxV, v);
        minV = Math.min(minV, v);
      }
  const lo = Math.log2(Math.max(minV, 1 / 64)) - 0.6; // room for value labels under downward bars
  const hi = Math.log2(Math.min(maxV, 64)) + 0.3;
  const yOf = (v) => {
    const l = Math.log2(Math.min(Math.max(v, 1 / 64), 64));
    return bottom - ((l - lo) / (hi - lo)) * (bottom - top);
  };
  const o = [];
  o.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  o.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  o.push(`<text x="${left}" y="24" font-size="16" font-weight="bold">${esc(petrel ? 'Petrel relative performance' : 'Aedes relative to Mosquitto')}</text>`);
  o.push(
    `<text x="${left}" y="42" fill="#555">${esc(
      `> 1 = ${petrel ? 'Petrel' : 'Aedes'} better (throughput: ratio of msg/s; latency, RSS: inverse ratio). Log scale. ${results.date.slice(0, 10)}, ${results.machine.petrel_commit_short}${results.quick ? ', quick run' : ''}`,
    )}</text>`,
  );
  // grid
  for (let e = Math.ceil(lo); e <= Math.floor(hi); e++) {
    const v = 2 ** e;
    const y = yOf(v);
    o.push(`<line x1="${left}" y1="${y.toFixed(1)}" x2="${W - 20}" y2="${y.toFixed(1)}" stroke="${e === 0 ? '#000' : '#ddd'}" stroke-width="${e === 0 ? 1.5 : 1}"/>`);
    o.push(`<text x="${left - 8}" y="${(y + 4).toFixed(1)}" text-anchor="end" fill="#333">${v >= 1 ? `${v}×` : `1/${1 / v}×`}</text>`);
  }
  const gw = (W - left - 30) / Math.max(groups.length, 1);
  const bw = Math.min(28, (gw - 16) / series.length);
  groups.forEach((g, i) => {
    const x0 = left + 10 + i * gw;
    g.vals.forEach((v, k) => {
      if (v == null) return;
      const x = x0 + (gw - 16 - bw * series.length) / 2 + k * bw;
      const y1 = yOf(1);
      const y2 = yOf(v);
      const y = Math.min(y1, y2);
      const h = Math.max(Math.abs(y2 - y1), 1);
      o.push(`<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${(bw - 2).toFixed(1)}" height="${h.toFixed(1)}" fill="${series[k].color}"><title>${esc(`${g.row.title} — ${g.row.label}: ${series[k].name} ${v.toFixed(2)}×`)}</title></rect>`);
      const ty = v >= 1 ? y - 3 : y + h + 11;
      o.push(`<text x="${(x + bw / 2 - 1).toFixed(1)}" y="${ty.toFixed(1)}" text-anchor="middle" font-size="9" fill="#222">${v >= 10 ? v.toFixed(0) : v.toFixed(2)}</text>`);
    });
    const cx = x0 + (gw - 16) / 2;
    const words = g.row.short.split(' ');
    const lines = words.length > 1 ? [words[0], words.slice(1).join(' ')] : words;
    lines.forEach((ln, li) => {
      o.push(`<text x="${cx.toFixed(1)}" y="${bottom + 18 + li * 14}" text-anchor="middle" fill="#222">${esc(ln)}</text>`);
    });
  });
  if (!groups.length) o.push(`<text x="${W / 2}" y="${(top + bottom) / 2}" text-anchor="middle" fill="#888">no comparable measurements in this run</text>`);
  // legend
  series.forEach((s, k) => {
    const x = left + k * 220;
    o.push(`<rect x="${x}" y="${H - 24}" width="14" height="14" fill="${s.color}"/>`);
    o.push(`<text x="${x + 20}" y="${H - 13}">${esc(s.name)}</text>`);
  });
  o.push('</svg>');
  return `${o.join('\n')}\n`;
}
