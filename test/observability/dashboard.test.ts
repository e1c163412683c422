// The web dashboard (src/observability/dashboard/) in a real browser: Debian's chromium driven by
// playwright-core, against a live broker (HTTP listener with the admin API, a TCP and a WebSocket listener, all
// on port 0) with MQTT.js clients connected and publishing. Each page is checked against what the clients see:
// the connection count, the client list, a kick (the MQTT.js client sees DISCONNECT 0x98 and the close), the
// topic tree, retained messages (text, JSON, hex; deleted for good), the publish form (delivered with its
// content type) and the page's own MQTT-over-WebSocket client. Screenshots go to build/screenshots/ (and to
// docs/images/ with PETREL_UPDATE_SCREENSHOTS=1).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, copyFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { IDisconnectPacket } from 'mqtt';
import { chromium, type Browser, type Page } from 'playwright-core';
import { createBroker, type PetrelBroker } from '../../src/index.js';
import { CONTENT_SECURITY_POLICY } from '../../src/observability/dashboard/index.js';
import { connectMqtt, endAll, type Connected } from '../helpers/mqttjs.js';
import { sleep, waitFor, withTimeout } from '../helpers/wait.js';

const TOKEN = 'dashboard-test-token-9f8e7d';
const CHROMIUM = '/usr/bin/chromium';
const VIEWPORT = { width: 1280, height: 800 };
const T = { timeout: 20_000 };
// build/test/observability/dashboard.test.js → the repository root.
// Functions passed to page.evaluate run in the page; the tests compile without the DOM library.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Dom = any;
declare const document: Dom;
declare const sessionStorage: Dom;

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const SHOTS = join(ROOT, 'build', 'screenshots');

interface Env {
  broker: PetrelBroker;
  url: string;
  wsPort: number;
  base: string;
  browser: Browser;
  page: Page;
  clients: Map<string, Connected>;
  pageErrors: string[];
}

let env: Env;

/** The PNG's width and height from its IHDR chunk, after checking the signature. */
function pngSize(file: string): { width: number; height: number; bytes: number } {
  const b = readFileSync(file);
  assert.ok(b.length > 1000, `${file} is ${b.length} bytes`);
  assert.deepEqual([...b.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], `${file} is a PNG`);
  assert.equal(b.subarray(12, 16).toString('latin1'), 'IHDR');
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20), bytes: b.length };
}

/** Take a screenshot of the viewport after checking that the given elements are visible; check the file. */
async function screenshot(name: string, visible: string[]): Promise<void> {
  for (const sel of visible) assert.ok(await env.page.locator(sel).first().isVisible(), `${sel} is visible in ${name}`);
  mkdirSync(SHOTS, { recursive: true });
  const file = join(SHOTS, name);
  await env.page.screenshot({ path: file });
  const size = pngSize(file);
  assert.equal(size.width, VIEWPORT.width);
  assert.equal(size.height, VIEWPORT.height);
  if (process.env.PETREL_UPDATE_SCREENSHOTS === '1') copyFileSync(file, join(ROOT, 'docs', 'images', name));
}

async function rowIds(): Promise<string[]> {
  return env.page.locator('#clients-body tr[data-client-id]').evaluateAll((trs) => trs.map((tr) => (tr as Dom).dataset.clientId as string));
}

async function tab(name: string): Promise<void> {
  await env.page.click(`#tab-${name}`);
  await env.page.locator(`#page-${name}`).waitFor({ state: 'visible' });
}

/** Pixels of a canvas within a small distance of an RGB colour. */
async function pixelsOf(canvas: string, rgb: [number, number, number]): Promise<number> {
  return env.page.$eval(canvas, (c, rgb) => {
    const cv = c as Dom;
    const d = cv.getContext('2d')!.getImageData(0, 0, cv.width, cv.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) {
      if (d[i + 3]! > 200 && Math.abs(d[i]! - rgb[0]) < 24 && Math.abs(d[i + 1]! - rgb[1]) < 24 && Math.abs(d[i + 2]! - rgb[2]) < 24) n++;
    }
    return n;
  }, rgb);
}

describe('web dashboard in chromium', { timeout: 60_000 }, () => {
  before(async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: install the Debian package chromium (README, command 2)`);
    const broker = await createBroker({
      store: { type: 'memory' },
      listeners: [
        { port: 0, host: '127.0.0.1', name: 'tcp' },
        { port: 0, host: '127.0.0.1', name: 'ws', transport: 'ws' },
      ],
      logLevel: 'silent',
      closeTimeout: 1,
      sysInterval: 0,
      http: { port: 0, adminToken: TOKEN },
    });
    cleanups.push(() => broker.close());
    const [tcp, ws] = await broker.listen();
    const url = `mqtt://127.0.0.1:${tcp!.port}`;
    const clients = new Map<string, Connected>();
    cleanups.push(() => endAll(...[...clients.values()].map((c) => c.client)));
    for (const [id, username] of [['sensor-kitchen', 'alice'], ['sensor-hall', 'alice'], ['watcher', 'bob']] as const) {
      clients.set(id, await connectMqtt(url, { clientId: id, username, protocolVersion: 5 }));
    }
    await clients.get('watcher')!.client.subscribeAsync({ 'plant/+/temp': { qos: 1 }, 'alerts/#': { qos: 0 } });
    // sensor-kitchen hears itself too: messages out are twice messages in, two lines on the rates chart.
    await clients.get('sensor-kitchen')!.client.subscribeAsync('plant/line1/#', { qos: 0 });
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], timeout: 15_000 });
    cleanups.push(() => browser.close());
    const page = await browser.newPage({ viewport: VIEWPORT });
    page.setDefaultTimeout(8000);
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    // Console errors include CSP violations ("Refused to ..."); the 401 of the wrong token and the 400 of the bad
    // topic are the tests' own doing.
    page.on('console', (m) => {
      if (m.type() === 'error' && !/status of (401|400) /.test(m.text())) pageErrors.push(m.text());
    });
    page.on('dialog', (d) => void d.accept());
    env = { broker, url, wsPort: ws!.port, base: `http://127.0.0.1:${broker.httpAddress!.port}`, browser, page, clients, pageErrors };
  });

  // Undone last first (browser, clients, broker), also when before() failed half way.
  const cleanups: (() => Promise<unknown>)[] = [];
  after(async () => {
    for (const f of cleanups.reverse()) await f().catch(() => {});
  });

  it('serves the page with a strict CSP, content types and cache headers; / redirects; a broker without an admin token has none of it', T, async () => {
    const html = await fetch(`${env.base}/dashboard/`, { signal: AbortSignal.timeout(5000) });
    assert.equal(html.status, 200);
    assert.equal(html.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(html.headers.get('cache-control'), 'no-cache');
    assert.equal(html.headers.get('content-security-policy'), CONTENT_SECURITY_POLICY);
    assert.match(CONTENT_SECURITY_POLICY, /script-src 'self'(;|$)/);
    assert.doesNotMatch(CONTENT_SECURITY_POLICY, /unsafe-inline|unsafe-eval|https?:/);
    assert.equal(html.headers.get('x-content-type-options'), 'nosniff');
    const text = await html.text();
    assert.doesNotMatch(text, /<script>|<script [^>]*>[^<]|\sstyle=|\son[a-z]+=/, 'no inline script, style or handler');
    const js = text.match(/src="(app\.js\?v=[0-9a-f]+)"/)?.[1];
    assert.ok(js, 'the page loads app.js by its hash');
    const jsRes = await fetch(`${env.base}/dashboard/${js}`, { signal: AbortSignal.timeout(5000) });
    assert.equal(jsRes.status, 200);
    assert.equal(jsRes.headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.equal(jsRes.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    const etag = jsRes.headers.get('etag')!;
    const again = await fetch(`${env.base}/dashboard/${js}`, { headers: { 'if-none-match': etag }, signal: AbortSignal.timeout(5000) });
    assert.equal(again.status, 304);
    const css = await fetch(`${env.base}/dashboard/app.css`, { signal: AbortSignal.timeout(5000) });
    assert.equal(css.headers.get('content-type'), 'text/css; charset=utf-8');
    for (const path of ['/', '/dashboard']) {
      const r = await fetch(env.base + path, { redirect: 'manual', signal: AbortSignal.timeout(5000) });
      assert.equal(r.status, 302, path);
      assert.equal(r.headers.get('location'), '/dashboard/');
    }
    const plain = await createBroker({ store: { type: 'memory' }, listeners: [{ port: 0, host: '127.0.0.1' }], logLevel: 'silent', sysInterval: 0, http: { port: 0 } });
    try {
      await plain.listen();
      for (const path of ['/', '/dashboard/', '/dashboard/app.js']) {
        assert.equal((await fetch(`http://127.0.0.1:${plain.httpAddress!.port}${path}`, { signal: AbortSignal.timeout(5000) })).status, 404, path);
      }
    } finally {
      await plain.close();
    }
  });

  it('a wrong token shows an error and keeps the app hidden; the right one opens Overview', T, async () => {
    const { page } = env;
    await page.goto(`${env.base}/`);
    await page.fill('#login-token', 'not-the-token');
    await page.click('#login-submit');
    await page.locator('#login-error', { hasText: 'Wrong token' }).waitFor();
    assert.equal(await page.locator('#app').isVisible(), false);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('petrel.adminToken')), null);
    await page.fill('#login-token', TOKEN);
    await page.click('#login-submit');
    await page.locator('#page-overview').waitFor({ state: 'visible' });
    assert.equal(await page.evaluate(() => sessionStorage.getItem('petrel.adminToken')), TOKEN);
  });

  it('Overview: the connection tile equals the clients connected and both charts are drawn from /history', T, async () => {
    const { page } = env;
    // Traffic for the rates chart: the watcher receives what sensor-kitchen publishes.
    const pub = env.clients.get('sensor-kitchen')!.client;
    const traffic = setInterval(() => pub.publish('plant/line1/temp', '21'), 40);
    try {
      await page.locator('#stat-connections', { hasText: String(env.clients.size) }).waitFor();
      assert.equal(await page.textContent('#stat-connections'), String(env.broker.connectedClients));
      // Wait for a refresh (every 2 s) that drew points with messages in them.
      await page.waitForFunction(() => Number(document.getElementById('chart-rates').dataset.max) > 0 && Number(document.getElementById('chart-rates').dataset.points) >= 6, null, { timeout: 12_000 });
      const points = Number(await page.getAttribute('#chart-rates', 'data-points'));
      assert.ok(points >= 6, `the rates chart has ${points} points`);
      const lineIn = await pixelsOf('#chart-rates', [0x1f, 0x5f, 0xbf]);
      const lineOut = await pixelsOf('#chart-rates', [0xd9, 0x73, 0x0d]);
      assert.ok(lineIn > 20 && lineOut > 20, `the rates chart has ${lineIn} pixels of the in colour and ${lineOut} of the out colour`);
      const conns = await pixelsOf('#chart-connections', [0x2e, 0x7d, 0x32]);
      assert.ok(conns > 20, `the connections chart has ${conns} pixels of its series colour`);
      await screenshot('dashboard-overview.png', ['#stat-connections', '#chart-rates', '#chart-connections', '#tab-overview']);
    } finally {
      clearInterval(traffic);
    }
  });

  it('Clients: lists the connected ids, search filters them, a row opens the details with its subscriptions', T, async () => {
    const { page } = env;
    await tab('clients');
    await page.locator('#clients-body tr[data-client-id="watcher"]').waitFor();
    assert.deepEqual((await rowIds()).sort(), [...env.clients.keys()].sort());
    await page.fill('#clients-q', 'sensor');
    await page.waitForFunction(() => document.querySelectorAll('#clients-body tr[data-client-id]').length === 2);
    assert.deepEqual((await rowIds()).sort(), ['sensor-hall', 'sensor-kitchen']);
    await page.selectOption('#clients-field', 'username');
    await page.fill('#clients-q', 'bob');
    await page.waitForFunction(() => document.querySelectorAll('#clients-body tr[data-client-id]').length === 1);
    assert.deepEqual(await rowIds(), ['watcher']);
    await page.fill('#clients-q', '');
    await page.selectOption('#clients-field', 'clientId');
    await page.waitForFunction(() => document.querySelectorAll('#clients-body tr[data-client-id]').length === 3);
    await page.click('#clients-body tr[data-client-id="watcher"]');
    await page.locator('#client-details').waitFor({ state: 'visible' });
    const filters = await page.locator('#client-subscriptions tbody tr td:first-child').allTextContents();
    assert.deepEqual(filters.sort(), ['alerts/#', 'plant/+/temp']);
    assert.match((await page.textContent('#client-details-session'))!, /User namebob/);
    assert.match((await page.textContent('#client-details-session'))!, /Queued messages0/);
    await page.locator('#client-subscriptions').scrollIntoViewIfNeeded();
    await screenshot('dashboard-clients.png', ['#clients-table', '#client-details', '#client-subscriptions']);
  });

  it('Clients: Kick (confirmed) disconnects the MQTT.js client with 0x98 and its row disappears', T, async () => {
    const { page } = env;
    const victim = env.clients.get('sensor-hall')!.client;
    let reason: number | undefined;
    victim.on('disconnect', (p: IDisconnectPacket) => { reason = p.reasonCode; });
    const closed = new Promise<void>((resolve) => victim.once('close', () => resolve()));
    await page.click('#clients-body tr[data-client-id="sensor-hall"] button', { timeout: 5000 });
    await withTimeout(closed, 5000, 'the kicked MQTT.js client to see the close');
    assert.equal(reason, 0x98, 'DISCONNECT with Administrative action');
    env.clients.delete('sensor-hall');
    await page.waitForFunction(() => document.querySelector('#clients-body tr[data-client-id="sensor-hall"]') === null);
    assert.deepEqual((await rowIds()).sort(), ['sensor-kitchen', 'watcher']);
  });

  it('Clients: pages of 10 with Next and Previous cover every match once', T, async () => {
    const { page } = env;
    const extra = await Promise.all(Array.from({ length: 12 }, (_, i) => connectMqtt(env.url, { clientId: `page-${String(i).padStart(2, '0')}` })));
    try {
      await page.selectOption('#clients-limit', '10');
      await page.fill('#clients-q', 'page-');
      // The unfiltered list (14 clients) also fills a page of 10: wait for the search's answer.
      await page.locator('#clients-summary', { hasText: /^12 clients, page 1$/ }).waitFor();
      const first = await rowIds();
      assert.equal(first.length, 10);
      assert.ok(first.every((id) => id.startsWith('page-')), first.join());
      assert.equal(await page.isDisabled('#clients-prev'), true);
      await page.click('#clients-next');
      await page.locator('#clients-summary', { hasText: /^12 clients, page 2$/ }).waitFor();
      // The last page: its 2 rows, and no Next (waited for, within a bound, rather than read once).
      await page.waitForFunction(() => document.querySelectorAll('#clients-body tr[data-client-id]').length === 2 && document.getElementById('clients-next').disabled === true, null, { timeout: 5000 });
      const second = await rowIds();
      assert.equal(second.length, 2);
      assert.equal(await page.isDisabled('#clients-next'), true);
      assert.deepEqual([...first, ...second].sort(), extra.map((c) => c.client.options.clientId).sort());
      await page.click('#clients-prev');
      await page.locator('#clients-summary', { hasText: /^12 clients, page 1$/ }).waitFor();
      assert.deepEqual(await rowIds(), first);
    } finally {
      await endAll(...extra.map((c) => c.client));
      await page.fill('#clients-q', '');
      await page.selectOption('#clients-limit', '100');
    }
    await waitFor(() => env.broker.connectedClients === env.clients.size, 5000, 'the paging clients to be gone');
  });

  it('Topics: the tree holds the published topics, deeper levels loaded when opened', T, async () => {
    const { page } = env;
    const pub = env.clients.get('sensor-kitchen')!.client;
    await pub.publishAsync('plant/line1/temp', '21.5', { qos: 1, retain: true });
    await pub.publishAsync('plant/line2/pressure', '1013', { qos: 1, retain: true });
    await tab('topics');
    await page.locator('#topics-tree li[data-path="plant/line1"]').waitFor();
    assert.ok(await page.locator('#topics-tree li[data-path="plant/line2"]').isVisible());
    assert.ok(await page.locator('#topics-tree li[data-path="alerts"]').isVisible());
    // plant/line1/temp is a third level: not in the first answer (depth 2), fetched when plant/line1 opens.
    assert.equal(await page.locator('#topics-tree li[data-path="plant/line1/temp"]').count(), 0);
    await page.click('#topics-tree li[data-path="plant/line1"] > details > summary');
    await page.locator('#topics-tree li[data-path="plant/line1/temp"]').waitFor();
    assert.equal(await page.locator('#topics-tree li[data-path="plant/line1/temp"] .badge.r').count(), 1, 'marked retained');
    await page.click('#topics-tree li[data-path="plant/line2"] > details > summary');
    await page.locator('#topics-tree li[data-path="plant/line2/pressure"]').waitFor();
  });

  it('Retained: the payload as text, JSON and hex; Delete removes it (a new subscriber gets no retained message)', T, async () => {
    const { page } = env;
    const topic = 'plant/line1/status';
    const json = { state: 'running', rpm: 1450 };
    await env.clients.get('sensor-kitchen')!.client.publishAsync(topic, JSON.stringify(json), { qos: 1, retain: true, properties: { contentType: 'application/json' } });
    await tab('retained');
    await page.fill('#retained-filter', 'plant/#');
    await page.click('#retained-form button[type=submit]');
    await page.click(`#retained-body tr[data-topic="${topic}"]`);
    await page.locator('#retained-viewer').waitFor({ state: 'visible' });
    assert.equal(await page.textContent('#retained-topic'), topic);
    assert.match((await page.textContent('#retained-props'))!, /Content typeapplication\/json/);
    await page.check('input[name="retained-view"][value="text"]');
    assert.equal(await page.textContent('#retained-payload'), JSON.stringify(json));
    await page.check('input[name="retained-view"][value="json"]');
    assert.equal(await page.textContent('#retained-payload'), JSON.stringify(json, null, 2));
    await screenshot('dashboard-retained.png', ['#retained-table', '#retained-viewer', '#retained-payload', '#retained-delete']);
    await page.check('input[name="retained-view"][value="hex"]');
    const hex = (await page.textContent('#retained-payload'))!;
    assert.match(hex, /^00000000  7b 22 73 74 61 74 65 22  3a 22 72 75 6e 6e 69 6e  \|\{"state":"runnin\|/);
    await page.click('#retained-delete');
    await page.locator('#retained-viewer').waitFor({ state: 'hidden' });
    assert.equal(await page.locator(`#retained-body tr[data-topic="${topic}"]`).count(), 0);
    const fresh = await connectMqtt(env.url, { protocolVersion: 5 });
    try {
      await fresh.client.subscribeAsync(topic, { qos: 1 });
      await fresh.client.subscribeAsync('plant/line1/temp', { qos: 1 });
      // The other retained message on the same level arrives: the subscription works and the deleted one is gone.
      await fresh.messages.count('plant/line1/temp', 1);
      await sleep(200);
      assert.equal(fresh.messages.messages.filter((m) => m.topic === topic).length, 0);
    } finally {
      await endAll(fresh.client);
    }
  });

  it('Publish: the form delivers a message to an MQTT.js subscriber with its content type and user property', T, async () => {
    const { page } = env;
    const sub = await connectMqtt(env.url, { protocolVersion: 5 });
    try {
      await sub.client.subscribeAsync('form/out', { qos: 1 });
      await tab('publish');
      await page.fill('#publish-topic', 'form/out');
      await page.fill('#publish-payload', '{"from":"dashboard"}');
      await page.selectOption('#publish-qos', '1');
      await page.fill('#publish-content-type', 'application/json');
      await page.click('#publish-add-prop');
      await page.fill('#publish-props .prop-key', 'origin');
      await page.fill('#publish-props .prop-value', 'browser');
      await page.click('#publish-submit');
      await page.locator('#publish-result', { hasText: '1 subscriber matched' }).waitFor();
      await sub.messages.count('form/out', 1);
      const m = sub.messages.messages.find((x) => x.topic === 'form/out')!;
      assert.equal(m.payload.toString(), '{"from":"dashboard"}');
      assert.equal(m.packet.qos, 1);
      assert.equal(m.packet.properties?.contentType, 'application/json');
      assert.deepEqual({ ...m.packet.properties?.userProperties }, { origin: 'browser' });
      await page.fill('#publish-topic', 'bad/#');
      await page.click('#publish-submit');
      await page.locator('#publish-result.error', { hasText: '400' }).waitFor();
    } finally {
      await endAll(sub.client);
    }
  });

  it('WebSocket client: connects with the URL from /listeners, subscribes, receives from MQTT.js, publishes to it, pings', T, async () => {
    const { page } = env;
    await tab('ws');
    await page.waitForFunction(() => document.getElementById('ws-url').value !== '');
    assert.equal(await page.inputValue('#ws-url'), `ws://127.0.0.1:${env.wsPort}/mqtt`);
    await page.fill('#ws-client-id', 'browser-ws');
    await page.click('#ws-connect');
    await page.locator('#ws-status', { hasText: 'Connected as browser-ws' }).waitFor();
    await waitFor(() => env.broker.connectedClients === env.clients.size + 1, 5000, 'the browser connection');
    await page.fill('#ws-filter', 'ws/in/#');
    await page.click('#ws-subscribe');
    await page.locator('#ws-status', { hasText: 'Subscribed to ws/in/#' }).waitFor();
    await env.clients.get('sensor-kitchen')!.client.publishAsync('ws/in/a', 'hello browser', { qos: 1 });
    await page.locator('#ws-messages-body tr', { hasText: 'hello browser' }).waitFor();
    assert.equal(await page.textContent('#ws-messages-body tr td:nth-child(2)'), 'ws/in/a');
    const watcher = await connectMqtt(env.url, { protocolVersion: 4 });
    try {
      await watcher.client.subscribeAsync('ws/out', { qos: 0 });
      await page.fill('#ws-pub-topic', 'ws/out');
      await page.fill('#ws-pub-payload', 'hello mqtt.js');
      await page.click('#ws-publish');
      await watcher.messages.count('ws/out', 1);
      assert.equal(watcher.messages.messages[0]!.payload.toString(), 'hello mqtt.js');
    } finally {
      await endAll(watcher.client);
    }
    await page.click('#ws-ping');
    await page.locator('#ws-status', { hasText: 'ping answered' }).waitFor();
    await page.click('#ws-disconnect');
    await page.locator('#ws-status', { hasText: 'Disconnected' }).waitFor();
    assert.deepEqual(env.pageErrors, [], 'no script errors or CSP violations in the page');
  });
});
