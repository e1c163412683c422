// contrib/ against a real Prometheus (Debian's `prometheus`): it scrapes a Petrel that real MQTT.js clients
// load, evaluates every expression of every Grafana panel (with $job and $__rate_interval filled in as Grafana
// does) and loads and evaluates the alert rules; the traffic panels show the traffic. Prometheus's own graph
// page then draws the "Messages in/s by QoS" panel's expression in Chromium, and so do Grafana's own panel
// components (@grafana/ui, grafana-panel/panel.jsx; Grafana's server is not packaged in Debian) from the panel's
// query_range: the screenshots are checked and, with PETREL_UPDATE_SCREENSHOTS=1, copied to docs/images/.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';
import { chromium } from 'playwright-core';
import { createBroker, type PetrelBroker } from '../../src/index.js';
import { connectMqtt, endAll, type Connected } from '../helpers/mqttjs.js';
import { sleep } from '../helpers/wait.js';
import { freePorts } from '../cli/cli-process.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const CONTRIB = join(ROOT, 'contrib');
const SHOTS = join(ROOT, 'build', 'screenshots');
const PROMETHEUS = '/usr/bin/prometheus';
const CHROMIUM = '/usr/bin/chromium';
const RATE = '10s';

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

async function query(port: number, expr: string): Promise<{ status: string; error?: string; data?: { resultType: string; result: Sample[] } }> {
  const r = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(expr)}`);
  return (await r.json()) as { status: string; error?: string; data?: { resultType: string; result: Sample[] } };
}

/** A panel's expression as Grafana sends it for this job. */
const asGrafana = (expr: string): string => expr.replaceAll('$job', 'petrel').replaceAll('$__rate_interval', RATE);

interface DashboardPanel {
  title: string;
  type: string;
  fieldConfig?: { defaults?: { unit?: string } };
  targets?: { expr: string; legendFormat?: string }[];
}

/** The dashboard's panels (rows left out). */
function dashboardPanels(): DashboardPanel[] {
  const dash = JSON.parse(readFileSync(join(CONTRIB, 'grafana', 'petrel.json'), 'utf8')) as { panels: DashboardPanel[] };
  return dash.panels.filter((p) => p.type !== 'row');
}

function panels(): { title: string; exprs: string[] }[] {
  return dashboardPanels().map((p) => ({ title: p.title, exprs: (p.targets ?? []).map((t) => t.expr) }));
}

/** A panel's title, first query, its legend format and the unit of its fields. */
function panelDefinition(title: string): { title: string; expr: string; legendFormat: string; unit: string } {
  const p = dashboardPanels().find((x) => x.title === title)!;
  return { title, expr: p.targets![0]!.expr, legendFormat: p.targets![0]!.legendFormat ?? '', unit: p.fieldConfig?.defaults?.unit ?? 'short' };
}

describe('contrib: a real Prometheus scrapes Petrel and evaluates the dashboard and the alerts', { timeout: 120_000 }, () => {
  it('every panel expression evaluates, the traffic panels show the traffic, every alert rule is healthy; a panel is drawn by Prometheus and by Grafana\'s panel code', async () => {
    assert.ok(existsSync(PROMETHEUS), `${PROMETHEUS} is missing: install the Debian package prometheus (README, command 2)`);
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: install the Debian package chromium (README, command 2)`);
    const version = spawnSync(PROMETHEUS, ['--version'], { encoding: 'utf8' });
    assert.match(`${version.stdout}${version.stderr}`, /prometheus, version 2\./);

    const broker: PetrelBroker = await createBroker({ store: { type: 'memory' }, listeners: [{ port: 0, host: '127.0.0.1' }], logLevel: 'silent', closeTimeout: 1, sysInterval: 0, http: { port: 0 } });
    const [addr] = await broker.listen();
    const url = `mqtt://127.0.0.1:${addr!.port}`;
    const dir = mkdtempSync(join(tmpdir(), 'petrel-prometheus-'));
    const [promPort] = (await freePorts(1)) as [number];
    let prom: ChildProcess | null = null;
    const clients: Connected[] = [];
    let loading = true;
    let load: Promise<void> = Promise.resolve();
    try {
      // Real clients: a subscriber per QoS and a publisher that keeps publishing until the end (bounded).
      for (let i = 0; i < 3; i++) clients.push(await connectMqtt(url, { protocolVersion: 5 }));
      const [s1, s2, pub] = clients as [Connected, Connected, Connected];
      await s1.client.subscribeAsync('plant/#', { qos: 1 });
      await s2.client.subscribeAsync('plant/+/temp', { qos: 2 });
      load = (async () => {
        for (let i = 0; loading && i < 200_000; i++) {
          // Three QoS at three rates (3:2:1), so the graph has three lines.
          await pub.client.publishAsync(`plant/${i % 4}/temp`, String(20 + (i % 7)), { qos: ([0, 0, 0, 1, 1, 2] as const)[i % 6] });
          if (i % 20 === 0) await sleep(10);
        }
      })();

      writeFileSync(
        join(dir, 'prometheus.yml'),
        [
          'global:',
          '  scrape_interval: 1s',
          '  evaluation_interval: 1s',
          'rule_files:',
          `  - ${join(CONTRIB, 'prometheus', 'petrel-alerts.yml')}`,
          'scrape_configs:',
          '  - job_name: petrel',
          '    metrics_path: /metrics',
          '    static_configs:',
          `      - targets: ['127.0.0.1:${broker.httpAddress!.port}']`,
          '',
        ].join('\n'),
      );
      let promLog = '';
      prom = spawn(PROMETHEUS, [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${promPort}`], { stdio: ['ignore', 'ignore', 'pipe'] });
      prom.stderr!.on('data', (d: Buffer) => {
        promLog += d.toString();
      });
      const promUp = async (): Promise<boolean> => {
        try {
          const r = await query(promPort, 'up{job="petrel"} == 1');
          return r.status === 'success' && (r.data?.result.length ?? 0) === 1;
        } catch {
          return false;
        }
      };
      const deadline = Date.now() + 30_000;
      while (!(await promUp())) {
        if (Date.now() > deadline || prom.exitCode !== null) throw new Error(`Prometheus did not scrape Petrel:\n${promLog.slice(-2000)}`);
        await sleep(250);
      }
      // Enough scrapes for rate() over the panels' interval.
      await sleep(12_000);

      const problems: string[] = [];
      const first = new Map<string, Sample[]>();
      for (const p of panels()) {
        for (const e of p.exprs) {
          const r = await query(promPort, asGrafana(e));
          if (r.status !== 'success') problems.push(`panel "${p.title}": ${r.error} in ${e}`);
          else if (!first.has(p.title)) first.set(p.title, r.data!.result);
        }
      }
      assert.deepEqual(problems, [], 'every panel expression is valid PromQL that Prometheus evaluates');
      // What the load did shows in the panels (values, not only series).
      const total = (title: string): number => (first.get(title) ?? []).reduce((s, x) => s + Number(x.value[1]), 0);
      assert.ok(total('Messages in/s by QoS') > 10, `messages in/s: ${total('Messages in/s by QoS')}`);
      assert.deepEqual(new Set((first.get('Messages in/s by QoS') ?? []).map((x) => x.metric.qos)), new Set(['0', '1', '2']));
      assert.ok(total('Messages out/s by QoS') > 10);
      assert.equal(total('Connections'), 3);
      assert.ok(total('Dispatch latency (PUBLISH in to last queue)') > 0);
      assert.ok(total('Ack round trip (PUBLISH out to PUBACK/PUBCOMP)') > 0);
      assert.ok(total('Memory') > 1e6);
      assert.ok(total('CPU') > 0);
      assert.equal(total('Broker up'), 1);

      // The alert rules: all loaded from the file, each evaluated without error, none firing on a healthy broker.
      const rulesFile = readFileSync(join(CONTRIB, 'prometheus', 'petrel-alerts.yml'), 'utf8');
      const want = (rulesFile.match(/^\s*- alert: /gm) ?? []).length;
      assert.ok(want >= 5, `${want} alert rules in the file`);
      let rules: { name: string; health: string; lastEvaluation: string; lastError?: string }[] = [];
      for (const until = Date.now() + 10_000; ; await sleep(250)) {
        const r = (await (await fetch(`http://127.0.0.1:${promPort}/api/v1/rules`)).json()) as { data: { groups: { rules: typeof rules }[] } };
        rules = r.data.groups.flatMap((g) => g.rules);
        if (rules.length === want && rules.every((x) => x.health === 'ok' && !x.lastEvaluation.startsWith('0001'))) break;
        if (Date.now() > until) break;
      }
      assert.equal(rules.length, want, 'every rule of the file loaded');
      assert.deepEqual(rules.filter((x) => x.health !== 'ok').map((x) => `${x.name}: ${x.health} ${x.lastError ?? ''}`), [], 'every rule evaluated without error');
      const alerts = (await (await fetch(`http://127.0.0.1:${promPort}/api/v1/alerts`)).json()) as { data: { alerts: { labels: { alertname: string }; state: string }[] } };
      assert.deepEqual(alerts.data.alerts.filter((a) => a.state === 'firing').map((a) => a.labels.alertname), []);

      // Prometheus's graph of the panel "Messages in/s by QoS", in Chromium.
      const expr = asGrafana(panels().find((p) => p.title === 'Messages in/s by QoS')!.exprs[0]!);
      const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], timeout: 15_000 });
      try {
        const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
        await page.goto(`http://127.0.0.1:${promPort}/graph?g0.expr=${encodeURIComponent(expr)}&g0.tab=0&g0.range_input=30s`);
        await page.locator('.rickshaw_graph svg path').first().waitFor({ timeout: 15_000 });
        const lines = await page.locator('.rickshaw_graph svg path').count();
        assert.ok(lines >= 3, `one line per QoS drawn (${lines})`);
        mkdirSync(SHOTS, { recursive: true });
        const file = join(SHOTS, 'prometheus-messages-in.png');
        await page.screenshot({ path: file });
        const png = readFileSync(file);
        assert.equal(png.subarray(1, 4).toString(), 'PNG');
        assert.equal(png.readUInt32BE(16), 1280);
        assert.ok(statSync(file).size > 10_000, 'a screenshot with a drawn graph');
        if (process.env.PETREL_UPDATE_SCREENSHOTS === '1') copyFileSync(file, join(ROOT, 'docs', 'images', 'prometheus-messages-in.png'));

        // The same panel drawn by Grafana's own panel components (grafana-panel/panel.jsx) from the panel's
        // query over the last 30 s, as Grafana would ask this Prometheus for it (query_range, legendFormat).
        const def = panelDefinition('Messages in/s by QoS');
        const end = Date.now() / 1000;
        const range = (await (
          await fetch(`http://127.0.0.1:${promPort}/api/v1/query_range?query=${encodeURIComponent(asGrafana(def.expr))}&start=${end - 30}&end=${end}&step=1`)
        ).json()) as { status: string; data: { result: { metric: Record<string, string>; values: [number, string][] }[] } };
        assert.equal(range.status, 'success');
        const series = range.data.result
          .map((r) => ({ name: def.legendFormat.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, k: string) => r.metric[k] ?? ''), points: r.values.map(([t, v]) => [t * 1000, Number(v)]) }))
          .sort((a, b) => a.name.localeCompare(b.name));
        assert.deepEqual(series.map((x) => x.name), ['in QoS 0', 'in QoS 1', 'in QoS 2']);
        assert.ok(series.every((x) => x.points.some((p) => p[1]! > 0)), 'each series has traffic');
        const bundle = buildSync({
          entryPoints: [join(ROOT, 'test', 'observability', 'grafana-panel', 'panel.jsx')],
          bundle: true,
          write: false,
          minify: true,
          outdir: 'grafana-panel',
          logLevel: 'error',
          define: { 'process.env.NODE_ENV': '"production"', global: 'window' },
          loader: { '.ttf': 'empty', '.woff': 'empty', '.woff2': 'empty', '.svg': 'empty', '.png': 'empty' },
        });
        const out = (ext: string): string => bundle.outputFiles.find((f) => f.path.endsWith(ext))?.text ?? '';
        // From the first sample (the broker started a few seconds before) to now.
        const from = Math.min(...series.flatMap((x) => x.points.map((p) => p[0]!)));
        const data = { title: def.title, unit: def.unit, from, to: end * 1000, series };
        const errors: string[] = [];
        const gpage = await browser.newPage({ viewport: { width: 820, height: 340 } });
        gpage.on('pageerror', (e) => errors.push(e.message));
        // Served from an http origin of its own (Grafana's code reads localStorage, which about:blank refuses).
        const html =
          `<!doctype html><html><head><meta charset="utf-8"><style>${out('.css')}</style></head><body style="margin:0">` +
          `<div id="root"></div><script>window.PANEL = ${JSON.stringify(data).replaceAll('<', '\\u003c')};</script><script>${out('.js')}</script></body></html>`;
        await gpage.route('http://grafana-panel.test/', (r) => r.fulfill({ status: 200, contentType: 'text/html', body: html }));
        await gpage.goto('http://grafana-panel.test/');
        await gpage.locator('#panel canvas').first().waitFor({ timeout: 15_000 });
        assert.deepEqual(errors, []);
        const text = await gpage.locator('#panel').innerText();
        assert.ok(text.includes(def.title), 'the panel title');
        for (const x of series) assert.ok(text.includes(x.name), `the legend names ${x.name}`);
        assert.equal(await gpage.locator('#panel canvas').count(), 1, 'one uPlot canvas');
        const gfile = join(SHOTS, 'grafana-messages-in.png');
        await gpage.locator('#panel').screenshot({ path: gfile });
        const gpng = readFileSync(gfile);
        assert.equal(gpng.subarray(1, 4).toString(), 'PNG');
        assert.equal(gpng.readUInt32BE(16), 800);
        assert.ok(gpng.length > 10_000, 'a screenshot with a drawn graph');
        if (process.env.PETREL_UPDATE_SCREENSHOTS === '1') copyFileSync(gfile, join(ROOT, 'docs', 'images', 'grafana-messages-in.png'));
      } finally {
        await browser.close();
      }
    } finally {
      loading = false;
      await load.catch(() => {});
      await endAll(...clients.map((c) => c.client));
      prom?.kill('SIGTERM');
      if (prom && prom.exitCode === null) await new Promise((r) => prom!.once('exit', r));
      await broker.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
