// The dashboard's script, served as /dashboard/app.js (never inline: the Content-Security-Policy allows scripts
// from the page's own origin only). Plain browser JavaScript, no framework, no build step; written without
// template literals so that it can live in this String.raw literal. It talks to the admin API (/api/v1) with
// the token from the login box (kept in sessionStorage), and has a minimal MQTT 3.1.1 client over WebSocket.

export const APP_JS = String.raw`'use strict';
(function () {
  const TOKEN_KEY = 'petrel.adminToken';
  const API = '/api/v1';
  const $ = (id) => document.getElementById(id);
  const state = { token: null, page: null, timer: null };

  // ---------- small helpers ----------
  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    if (attrs) for (const k of Object.keys(attrs)) {
      const v = attrs[k];
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') e.textContent = String(v);
      else if (k === 'class') e.className = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k === 'dataset') Object.assign(e.dataset, v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    if (children) for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }
  const intFmt = new Intl.NumberFormat('en-US');
  function fmtInt(n) { return typeof n === 'number' && isFinite(n) ? intFmt.format(Math.round(n)) : '–'; }
  function fmtBytes(n) {
    if (typeof n !== 'number' || !isFinite(n)) return '–';
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i === 0 ? String(n) : n.toFixed(n < 10 ? 2 : 1)) + ' ' + u[i];
  }
  function fmtDuration(s) {
    if (typeof s !== 'number' || !isFinite(s)) return '–';
    s = Math.floor(s);
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    if (d > 0) return d + 'd ' + h + 'h';
    if (h > 0) return h + 'h ' + m + 'm';
    return m + 'm ' + (s % 60) + 's';
  }
  function pad2(n) { return (n < 10 ? '0' : '') + n; }
  function clock(t) { const d = new Date(t); return pad2(d.getHours()) + ':' + pad2(d.getMinutes()) + ':' + pad2(d.getSeconds()); }
  function query(params) {
    const q = new URLSearchParams();
    for (const k of Object.keys(params)) if (params[k] !== undefined && params[k] !== null && params[k] !== '') q.set(k, String(params[k]));
    const s = q.toString();
    return s ? '?' + s : '';
  }
  function showError(e) {
    const b = $('api-error');
    b.textContent = describe(e);
    b.hidden = false;
  }
  function clearError() { $('api-error').hidden = true; }
  function describe(e) {
    if (e instanceof ApiError) {
      let s = e.message + ' (' + e.status + (e.code ? ' ' + e.code : '') + ')';
      if (e.details && e.details.length) s += ': ' + e.details.map((d) => (d.path || '') + ' ' + (d.message || '')).join('; ');
      return s;
    }
    return 'Cannot reach the broker: ' + (e && e.message ? e.message : String(e));
  }

  // ---------- the admin API ----------
  class ApiError extends Error {
    constructor(status, code, message, details) { super(message); this.status = status; this.code = code; this.details = details || []; }
  }
  async function call(token, method, path, body) {
    const headers = { Authorization: 'Bearer ' + token, Accept: 'application/json' };
    const init = { method: method, headers: headers, cache: 'no-store', credentials: 'omit' };
    if (body !== undefined) { headers['Content-Type'] = 'application/json'; init.body = JSON.stringify(body); }
    const res = await fetch(API + path, init);
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
    if (!res.ok) {
      const e = data && data.error ? data.error : {};
      throw new ApiError(res.status, e.code || '', e.message || (res.statusText || 'HTTP error'), e.details);
    }
    return data;
  }
  async function api(method, path, body) {
    try {
      return await call(state.token, method, path, body);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) logout('The broker refused the token: sign in again.');
      throw e;
    }
  }

  // ---------- login ----------
  async function login(token, quiet) {
    const err = $('login-error');
    err.textContent = '';
    if (!token) { err.textContent = 'Enter the admin token.'; return; }
    $('login-submit').disabled = true;
    try {
      const stats = await call(token, 'GET', '/stats');
      state.token = token;
      sessionStorage.setItem(TOKEN_KEY, token);
      $('login-token').value = '';
      $('broker-version').textContent = stats && stats.version ? 'v' + stats.version : '';
      $('login').hidden = true;
      $('app').hidden = false;
      $('logout').hidden = false;
      route();
    } catch (e) {
      sessionStorage.removeItem(TOKEN_KEY);
      if (e instanceof ApiError && e.status === 401) err.textContent = quiet ? 'The saved token was refused: sign in again.' : 'Wrong token: the broker refused it.';
      else if (e instanceof ApiError && e.status === 404) err.textContent = 'The admin API is not enabled on this broker.';
      else err.textContent = describe(e);
    } finally {
      $('login-submit').disabled = false;
    }
  }
  function logout(message) {
    stopTimer();
    ws.close();
    state.token = null;
    state.page = null;
    sessionStorage.removeItem(TOKEN_KEY);
    $('app').hidden = true;
    $('logout').hidden = true;
    $('login').hidden = false;
    $('broker-version').textContent = '';
    $('refresh-state').textContent = '';
    $('login-error').textContent = message || '';
    $('login-token').focus();
  }

  // ---------- pages ----------
  const pages = {};
  const PAGE_NAMES = ['overview', 'clients', 'topics', 'retained', 'publish', 'ws'];
  function stopTimer() { if (state.timer !== null) { clearInterval(state.timer); state.timer = null; } }
  function route() {
    if (state.token === null) return;
    let name = location.hash.replace(/^#/, '');
    if (!PAGE_NAMES.includes(name)) name = 'overview';
    if (name === state.page) return;
    stopTimer();
    clearError();
    $('refresh-state').textContent = '';
    state.page = name;
    for (const n of PAGE_NAMES) {
      const tab = $('tab-' + n);
      const on = n === name;
      tab.setAttribute('aria-selected', on ? 'true' : 'false');
      tab.tabIndex = on ? 0 : -1;
      $('page-' + n).hidden = !on;
    }
    pages[name].enter();
  }
  function go(name) { if (location.hash !== '#' + name) location.hash = name; else route(); }

  // ---------- Overview ----------
  function drawChart(canvas, points, series) {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || canvas.width, h = canvas.clientHeight || canvas.height;
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const left = 54, right = 10, top = 8, bottom = 22;
    const pw = w - left - right, ph = h - top - bottom;
    let max = 0;
    for (const p of points) for (const s of series) max = Math.max(max, Number(p[s.key]) || 0);
    // A round upper bound: 1, 2 or 5 times a power of ten.
    let step = 1;
    if (max > 0) {
      const raw = max / 4, mag = Math.pow(10, Math.floor(Math.log10(raw)));
      step = raw <= mag ? mag : raw <= 2 * mag ? 2 * mag : raw <= 5 * mag ? 5 * mag : 10 * mag;
      if (series.every((s) => s.integer) && step < 1) step = 1;
    }
    const ymax = step * 4;
    // The last 5 minutes, or less when the broker has not been up that long (at least 20 s).
    const now = points.length ? points[points.length - 1].t : Date.now();
    const span = Math.min(300000, Math.max(20000, now - (points.length ? points[0].t : now)));
    const t0 = now - span;
    const x = (t) => left + (t - t0) / span * pw;
    const y = (v) => top + ph - v / ymax * ph;
    ctx.font = '11px system-ui, sans-serif';
    ctx.fillStyle = '#5b6475';
    ctx.strokeStyle = '#e3e6eb';
    ctx.lineWidth = 1;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (let i = 0; i <= 4; i++) {
      const v = step * i, yy = Math.round(y(v)) + 0.5;
      ctx.beginPath(); ctx.moveTo(left, yy); ctx.lineTo(left + pw, yy); ctx.stroke();
      ctx.fillText(v >= 1000 ? intFmt.format(v) : String(+v.toPrecision(3)), left - 6, yy);
    }
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    for (let i = 0; i <= 5; i++) {
      const t = t0 + i * span / 5;
      ctx.fillText(clock(t), Math.min(Math.max(x(t), left + 24), left + pw - 24), top + ph + 5);
    }
    if (points.length === 0) {
      ctx.fillText('No data yet', left + pw / 2, top + ph / 2);
    }
    ctx.lineWidth = 2;
    ctx.lineJoin = 'round';
    for (const s of series) {
      ctx.strokeStyle = s.color;
      ctx.beginPath();
      let first = true;
      for (const p of points) {
        if (p.t < t0) continue;
        const xx = x(p.t), yy = y(Number(p[s.key]) || 0);
        if (first) { ctx.moveTo(xx, yy); first = false; } else ctx.lineTo(xx, yy);
      }
      ctx.stroke();
    }
    canvas.dataset.points = String(points.length);
    canvas.dataset.max = String(max);
    canvas.dataset.drawnAt = String(Date.now());
  }
  const css = getComputedStyle(document.documentElement);
  const color = (name, fallback) => (css.getPropertyValue(name) || fallback).trim();
  pages.overview = {
    enter() {
      this.refresh();
      state.timer = setInterval(() => this.refresh(), 2000);
    },
    async refresh() {
      if (document.hidden) return;
      try {
        const r = await Promise.all([api('GET', '/stats'), api('GET', '/history?seconds=300')]);
        if (state.page !== 'overview') return;
        const s = r[0], hist = r[1];
        $('stat-connections').textContent = fmtInt(s.connections);
        $('stat-sessions').textContent = fmtInt(s.sessions && s.sessions.online) + ' / ' + fmtInt(s.sessions && s.sessions.offline);
        $('stat-subscriptions').textContent = fmtInt(s.subscriptions && s.subscriptions.normal) + (s.subscriptions && s.subscriptions.shared ? ' + ' + fmtInt(s.subscriptions.shared) + ' shared' : '');
        $('stat-retained').textContent = fmtInt(s.retained && s.retained.count) + ' (' + fmtBytes(s.retained && s.retained.bytes) + ')';
        $('stat-messages').textContent = fmtInt(s.messages && s.messages.received) + ' / ' + fmtInt(s.messages && s.messages.sent);
        $('stat-dropped').textContent = fmtInt(s.messages && s.messages.dropped);
        $('stat-queued').textContent = fmtInt(s.queued && s.queued.messages) + ' (' + fmtBytes(s.queued && s.queued.bytes) + ')';
        $('stat-memory').textContent = fmtBytes(s.memory && s.memory.rss) + ' / ' + fmtBytes(s.memory && s.memory.heapUsed);
        $('stat-uptime').textContent = fmtDuration(s.uptimeSeconds);
        if (s.version) $('broker-version').textContent = 'v' + s.version;
        const points = hist && Array.isArray(hist.points) ? hist.points : [];
        drawChart($('chart-rates'), points, [
          { key: 'messagesIn', color: color('--in', '#1f5fbf') },
          { key: 'messagesOut', color: color('--out', '#d9730d') },
        ]);
        drawChart($('chart-connections'), points, [{ key: 'connections', color: color('--conn', '#2e7d32'), integer: true }]);
        clearError();
        $('refresh-state').textContent = 'Updated ' + clock(Date.now());
      } catch (e) {
        if (state.token !== null) showError(e);
      }
    },
  };

  // ---------- Clients ----------
  const clients = { cursors: [null], index: 0, debounce: null, selected: null, seq: 0 };
  pages.clients = {
    enter() { this.load(); },
    reset() { clients.cursors = [null]; clients.index = 0; },
    async load() {
      const field = $('clients-field').value, q = $('clients-q').value.trim();
      const params = { limit: $('clients-limit').value, cursor: clients.cursors[clients.index] };
      if (q) params[field] = q;
      if (!$('clients-offline').checked) params.connected = 'true';
      // Only the answer to the latest request is shown (typing, paging and kicks may overlap).
      const seq = ++clients.seq;
      try {
        const r = await api('GET', '/clients' + query(params));
        if (seq !== clients.seq) return;
        this.render(r);
        clearError();
      } catch (e) { showError(e); }
    },
    render(r) {
      const body = $('clients-body');
      const rows = [];
      for (const c of r.items) {
        const kick = c.connected ? el('button', { type: 'button', class: 'danger', text: 'Kick', 'aria-label': 'Kick ' + c.clientId, onclick: (ev) => { ev.stopPropagation(); this.kick(c.clientId); } }) : null;
        const tr = el('tr', { class: 'clickable', tabindex: '0', dataset: { clientId: c.clientId }, 'aria-selected': c.clientId === clients.selected ? 'true' : 'false',
          onclick: () => this.details(c.clientId),
          onkeydown: (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); this.details(c.clientId); } } }, [
          el('td', { class: 'mono', text: c.clientId }),
          el('td', { text: c.username === undefined || c.username === null ? '' : c.username }),
          el('td', { class: c.connected ? 'ok' : 'muted', text: c.connected ? 'online' : 'offline' }),
          el('td', { text: (c.listener || '') + (c.transport ? ' (' + c.transport + ')' : '') }),
          el('td', { text: c.protocolVersion === 5 ? '5.0' : c.protocolVersion === 4 ? '3.1.1' : c.protocolVersion === 3 ? '3.1' : '' }),
          el('td', { class: 'mono', text: c.remoteAddress || '' }),
          el('td', { text: c.connectedAt ? new Date(c.connectedAt).toLocaleString() : '' }),
          el('td', { class: 'num', text: fmtInt(c.subscriptions) }),
          el('td', { class: 'num', text: fmtInt(c.queued) }),
          el('td', { class: 'num', text: fmtInt(c.inflightOut) + ' / ' + fmtInt(c.inflightIn) }),
          el('td', null, [kick]),
        ]);
        rows.push(tr);
      }
      if (rows.length === 0) rows.push(el('tr', null, [el('td', { colspan: '11', class: 'muted', text: 'No clients match.' })]));
      body.replaceChildren(...rows);
      const next = r.next || null;
      clients.cursors.length = clients.index + 1;
      if (next !== null) clients.cursors.push(next);
      $('clients-prev').disabled = clients.index === 0;
      $('clients-next').disabled = next === null;
      $('clients-summary').textContent = fmtInt(r.total) + (r.total === 1 ? ' client' : ' clients') + (clients.index > 0 || next !== null ? ', page ' + (clients.index + 1) : '');
    },
    async kick(clientId) {
      if (!confirm('Disconnect client "' + clientId + '"?')) return;
      try {
        await api('POST', '/clients/' + encodeURIComponent(clientId) + '/kick', { reason: 'dashboard' });
        if (clients.selected === clientId) this.closeDetails();
        $('clients-summary').textContent = 'Kicked ' + clientId;
        // The session of a clean client goes with its connection; wait a moment so that the list is current.
        // Not if the list was asked for again meanwhile (a search, a page): that answer is newer than this one.
        const asked = clients.seq;
        await new Promise((r) => setTimeout(r, 150));
        if (clients.seq === asked) await this.load();
      } catch (e) { showError(e); }
    },
    async details(clientId) {
      try {
        const c = await api('GET', '/clients/' + encodeURIComponent(clientId));
        clients.selected = clientId;
        for (const tr of $('clients-body').children) tr.setAttribute('aria-selected', tr.dataset.clientId === clientId ? 'true' : 'false');
        $('client-details-title').textContent = 'Client ' + clientId;
        const facts = [
          ['State', c.connected ? 'online' : 'offline'], ['User name', c.username], ['Listener', c.listener], ['Transport', c.transport],
          ['Protocol version', c.protocolVersion], ['Remote address', c.remoteAddress], ['Connected at', c.connectedAt],
          ['Keep alive', c.keepAlive === undefined ? undefined : c.keepAlive + ' s'], ['Clean start', c.cleanStart],
          ['Session expiry interval', c.sessionExpiryInterval === undefined ? undefined : c.sessionExpiryInterval + ' s'],
          ['Subscriptions', c.subscriptions], ['Queued messages', c.queued], ['Queued bytes', c.queuedBytes === undefined ? undefined : fmtBytes(c.queuedBytes)],
          ['In-flight out', c.inflightOut], ['In-flight in', c.inflightIn],
        ];
        const dl = [];
        for (const f of facts) {
          if (f[1] === undefined || f[1] === null || f[1] === '') continue;
          dl.push(el('dt', { text: f[0] }), el('dd', { text: String(f[1]) }));
        }
        $('client-details-session').replaceChildren(...dl);
        const subs = (c.subscriptionList || []).map((s) => el('tr', null, [
          el('td', { class: 'mono', text: s.filter }), el('td', { text: s.qos }), el('td', { text: s.noLocal ? 'yes' : 'no' }),
          el('td', { text: s.retainAsPublished ? 'yes' : 'no' }), el('td', { text: s.retainHandling === undefined ? '' : s.retainHandling }),
          el('td', { text: s.shareName || '' }),
        ]));
        if (subs.length === 0) subs.push(el('tr', null, [el('td', { colspan: '6', class: 'muted', text: 'No subscriptions.' })]));
        $('client-subscriptions').tBodies[0].replaceChildren(...subs);
        $('client-details').hidden = false;
        clearError();
      } catch (e) { showError(e); }
    },
    closeDetails() { clients.selected = null; $('client-details').hidden = true; },
  };

  // ---------- Topics ----------
  // The API answers a node with its children to a depth (default 1) and each node's childCount: the first two
  // levels come at once, deeper ones when their parent is opened.
  pages.topics = {
    enter() { this.load(); },
    async load() {
      const prefix = $('topics-prefix').value.trim();
      try {
        const root = await api('GET', '/topics' + query({ prefix: prefix, depth: 2 }));
        const tree = $('topics-tree');
        const top = prefix ? [root] : (root.children || []);
        tree.replaceChildren(top.length ? el('ul', { role: 'tree', 'aria-label': 'Topic tree' }, top.map((n) => this.node(n, 0))) : el('p', { class: 'muted', text: 'No topics.' }));
        clearError();
      } catch (e) { showError(e); }
    },
    node(n, depth) {
      const label = [
        el('span', { class: n.name === '' ? 'muted' : 'mono name', text: n.name === '' ? '(empty level)' : n.name }),
        n.retained ? el('span', { class: 'badge r', title: 'retained message', text: 'R' }) : null,
        n.subscribers ? el('span', { class: 'badge s', title: n.subscribers + ' subscribers', text: String(n.subscribers) }) : null,
        el('span', { class: 'path', text: n.path }),
      ];
      const kids = Array.isArray(n.children) ? n.children : [];
      const count = typeof n.childCount === 'number' ? n.childCount : kids.length;
      if (count === 0) return el('li', { class: 'leaf', role: 'treeitem', dataset: { path: n.path } }, label);
      const ul = el('ul', { role: 'group' }, kids.map((k) => this.node(k, depth + 1)));
      const d = el('details', { open: depth === 0 && kids.length > 0 }, [el('summary', null, label), ul]);
      const li = el('li', { role: 'treeitem', 'aria-expanded': d.open ? 'true' : 'false', dataset: { path: n.path } }, [d]);
      let loaded = kids.length > 0;
      d.addEventListener('toggle', async () => {
        li.setAttribute('aria-expanded', d.open ? 'true' : 'false');
        if (!d.open || loaded) return;
        loaded = true;
        try {
          const sub = await api('GET', '/topics' + query({ prefix: n.path, depth: 1 }));
          ul.replaceChildren(...(sub.children || []).map((k) => this.node(k, depth + 1)));
        } catch (e) { loaded = false; showError(e); }
      });
      return li;
    },
    all(open) { for (const d of $('topics-tree').querySelectorAll('details')) d.open = open; },
  };

  // ---------- Retained ----------
  const retained = { cursor: null, message: null };
  function base64Bytes(b64) {
    const s = atob(b64 || '');
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }
  function hexDump(bytes) {
    const lines = [];
    for (let off = 0; off < bytes.length; off += 16) {
      const row = bytes.subarray(off, off + 16);
      let hex = '', ascii = '';
      for (let i = 0; i < 16; i++) {
        if (i < row.length) { hex += (row[i] < 16 ? '0' : '') + row[i].toString(16) + ' '; ascii += row[i] >= 32 && row[i] < 127 ? String.fromCharCode(row[i]) : '.'; }
        else hex += '   ';
        if (i === 7) hex += ' ';
      }
      lines.push(off.toString(16).padStart(8, '0') + '  ' + hex + ' |' + ascii + '|');
    }
    return lines.join('\n');
  }
  pages.retained = {
    enter() { this.load(false); },
    async load(more) {
      const filter = $('retained-filter').value.trim() || '#';
      if (!more) retained.cursor = null;
      try {
        const r = await api('GET', '/retained' + query({ filter: filter, limit: 200, cursor: more ? retained.cursor : null }));
        const rows = r.items.map((m) => el('tr', { class: 'clickable', tabindex: '0', dataset: { topic: m.topic },
          onclick: () => this.show(m.topic), onkeydown: (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); this.show(m.topic); } } }, [
          el('td', { class: 'mono', text: m.topic }), el('td', { class: 'num', text: m.qos }), el('td', { class: 'num', text: fmtInt(m.bytes) }),
        ]));
        const body = $('retained-body');
        if (more) body.append(...rows); else body.replaceChildren(...rows);
        retained.cursor = r.next || null;
        $('retained-more').hidden = retained.cursor === null;
        $('retained-summary').textContent = fmtInt(r.total) + (r.total === 1 ? ' retained message' : ' retained messages') + ' match ' + filter;
        clearError();
      } catch (e) { showError(e); }
    },
    async show(topic) {
      try {
        const m = await api('GET', '/retained/message' + query({ topic: topic }));
        retained.message = m;
        retained.bytes = base64Bytes(m.payload);
        for (const tr of $('retained-body').children) tr.setAttribute('aria-selected', tr.dataset.topic === topic ? 'true' : 'false');
        $('retained-topic').textContent = m.topic;
        const p = m.properties || {};
        const facts = [['QoS', m.qos], ['Bytes', fmtInt(m.bytes)], ['Content type', p.contentType], ['Payload format', p.payloadFormatIndicator === 1 ? 'UTF-8' : p.payloadFormatIndicator === 0 ? 'bytes' : undefined],
          ['Message expiry', p.messageExpiryInterval === undefined ? undefined : p.messageExpiryInterval + ' s'], ['Response topic', p.responseTopic], ['Correlation data', p.correlationData]];
        const dl = [];
        for (const f of facts) if (f[1] !== undefined && f[1] !== null && f[1] !== '') dl.push(el('dt', { text: f[0] }), el('dd', { text: String(f[1]) }));
        for (const kv of p.userProperties || []) dl.push(el('dt', { text: 'User property ' + kv[0] }), el('dd', { text: kv[1] }));
        $('retained-props').replaceChildren(...dl);
        this.render();
        $('retained-viewer').hidden = false;
        clearError();
      } catch (e) { showError(e); }
    },
    render() {
      if (!retained.message) return;
      const view = document.querySelector('input[name="retained-view"]:checked').value;
      const bytes = retained.bytes;
      const out = $('retained-payload');
      out.classList.remove('error');
      out.dataset.view = view;
      if (view === 'hex') out.textContent = bytes.length ? hexDump(bytes) : '(empty)';
      else {
        const text = new TextDecoder('utf-8').decode(bytes);
        if (view === 'text') out.textContent = text;
        else {
          try { out.textContent = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { out.textContent = 'Not JSON: ' + e.message; out.classList.add('error'); }
        }
      }
    },
    async remove() {
      const m = retained.message;
      if (!m || !confirm('Delete the retained message on "' + m.topic + '"?')) return;
      try {
        await api('DELETE', '/retained/message' + query({ topic: m.topic }));
        retained.message = null;
        $('retained-viewer').hidden = true;
        for (const tr of [...$('retained-body').children]) if (tr.dataset.topic === m.topic) tr.remove();
        $('retained-summary').textContent = 'Deleted the retained message on ' + m.topic;
      } catch (e) { showError(e); }
    },
  };

  // ---------- Publish ----------
  let propRows = 0;
  pages.publish = {
    enter() { $('publish-topic').focus(); },
    addProp() {
      const n = ++propRows;
      const row = el('div', { class: 'row prop' }, [
        el('label', { for: 'publish-prop-k' + n, text: 'Name' }), el('input', { id: 'publish-prop-k' + n, type: 'text', class: 'prop-key' }),
        el('label', { for: 'publish-prop-v' + n, text: 'Value' }), el('input', { id: 'publish-prop-v' + n, type: 'text', class: 'prop-value' }),
      ]);
      row.append(el('button', { type: 'button', text: 'Remove', 'aria-label': 'Remove user property', onclick: () => row.remove() }));
      $('publish-props').append(row);
      row.querySelector('input').focus();
    },
    async submit() {
      const out = $('publish-result');
      const topic = $('publish-topic').value;
      const body = { topic: topic, payload: $('publish-payload').value, qos: Number($('publish-qos').value), retain: $('publish-retain').checked };
      const props = {};
      const ct = $('publish-content-type').value.trim();
      if (ct) props.contentType = ct;
      const ups = [];
      for (const row of $('publish-props').querySelectorAll('.prop')) {
        const k = row.querySelector('.prop-key').value;
        if (k !== '') ups.push([k, row.querySelector('.prop-value').value]);
      }
      if (ups.length) props.userProperties = ups;
      if (Object.keys(props).length) body.properties = props;
      out.className = '';
      out.textContent = 'Publishing…';
      $('publish-submit').disabled = true;
      try {
        const r = await api('POST', '/publish', body);
        out.className = 'ok';
        out.textContent = 'Published to ' + topic + ': ' + fmtInt(r.matched) + (r.matched === 1 ? ' subscriber' : ' subscribers') + ' matched.';
      } catch (e) {
        out.className = 'error';
        out.textContent = 'Not published: ' + describe(e);
      } finally {
        $('publish-submit').disabled = false;
      }
    },
  };

  // ---------- WebSocket client: MQTT 3.1.1, QoS 0 ----------
  const enc = new TextEncoder();
  const dec = new TextDecoder('utf-8');
  function concat(parts) {
    let n = 0;
    for (const p of parts) n += p.length;
    const out = new Uint8Array(n);
    let o = 0;
    for (const p of parts) { out.set(p, o); o += p.length; }
    return out;
  }
  const u16 = (n) => Uint8Array.of(n >> 8, n & 255);
  const mqttString = (s) => { const b = enc.encode(s); return concat([u16(b.length), b]); };
  function remainingLength(n) {
    const out = [];
    do { let d = n % 128; n = Math.floor(n / 128); if (n > 0) d |= 128; out.push(d); } while (n > 0);
    return Uint8Array.from(out);
  }
  const mqttPacket = (first, body) => concat([Uint8Array.of(first), remainingLength(body.length), body]);
  const KEEP_ALIVE = 30;
  const ws = {
    sock: null, buf: new Uint8Array(0), nextId: 1, connected: false, pingTimer: null, pingSent: 0, subs: new Map(),
    status(text, cls) { const s = $('ws-status'); s.textContent = text; s.className = cls || ''; },
    controls(connected) {
      $('ws-connect').disabled = connected || this.sock !== null;
      $('ws-disconnect').disabled = this.sock === null;
      $('ws-subscribe').disabled = !connected;
      $('ws-publish').disabled = !connected;
      $('ws-ping').disabled = !connected;
    },
    open(url, clientId, username, password) {
      if (this.sock !== null) return;
      let sock;
      try { sock = new WebSocket(url, ['mqtt']); } catch (e) { this.status('Cannot connect: ' + e.message, 'error'); return; }
      sock.binaryType = 'arraybuffer';
      this.sock = sock;
      this.buf = new Uint8Array(0);
      this.controls(false);
      this.status('Connecting to ' + url + '…');
      sock.onopen = () => {
        // CONNECT: protocol name "MQTT", level 4, clean session [MQTT-3.1.2-1, MQTT-3.1.2-2].
        let flags = 0x02;
        const payload = [mqttString(clientId)];
        if (username) { flags |= 0x80; payload.push(mqttString(username)); if (password) { flags |= 0x40; payload.push(mqttString(password)); } }
        this.send(mqttPacket(0x10, concat([mqttString('MQTT'), Uint8Array.of(4, flags), u16(KEEP_ALIVE), ...payload])));
      };
      sock.onmessage = (ev) => {
        this.buf = concat([this.buf, new Uint8Array(ev.data)]);
        this.parse();
      };
      sock.onerror = () => this.status('WebSocket error (is the URL right?)', 'error');
      sock.onclose = (ev) => {
        const was = this.connected;
        this.reset();
        this.status((was ? 'Disconnected' : 'Connection closed') + (ev.code ? ' (WebSocket code ' + ev.code + ')' : ''), was ? '' : 'error');
      };
    },
    reset() {
      if (this.pingTimer !== null) clearInterval(this.pingTimer);
      this.pingTimer = null;
      this.sock = null;
      this.connected = false;
      this.subs.clear();
      this.controls(false);
    },
    close() {
      if (this.sock === null) return;
      if (this.connected) this.send(Uint8Array.of(0xe0, 0));
      this.sock.onclose = null;
      this.sock.onerror = null;
      this.sock.close(1000);
      this.reset();
      this.status('Disconnected');
    },
    send(bytes) { if (this.sock !== null && this.sock.readyState === WebSocket.OPEN) this.sock.send(bytes); },
    subscribe(filter) {
      const id = this.nextId;
      this.nextId = this.nextId === 65535 ? 1 : this.nextId + 1;
      this.subs.set(id, filter);
      // SUBSCRIBE: fixed header flags 0010 [MQTT-3.8.1-1]; one filter at QoS 0.
      this.send(mqttPacket(0x82, concat([u16(id), mqttString(filter), Uint8Array.of(0)])));
    },
    publish(topic, text) {
      this.send(mqttPacket(0x30, concat([mqttString(topic), enc.encode(text)])));
      this.status('Published to ' + topic, 'ok');
    },
    ping() { this.pingSent = Date.now(); this.send(Uint8Array.of(0xc0, 0)); },
    parse() {
      for (;;) {
        const b = this.buf;
        if (b.length < 2) return;
        let len = 0, mul = 1, i = 1;
        for (;;) {
          if (i >= b.length) return;
          const d = b[i++];
          len += (d & 127) * mul;
          mul *= 128;
          if ((d & 128) === 0) break;
          if (i > 4) { this.status('Malformed packet from the broker', 'error'); this.sock.close(); return; }
        }
        if (b.length < i + len) return;
        const body = b.subarray(i, i + len);
        this.buf = b.slice(i + len);
        this.packet(b[0], body);
      }
    },
    packet(first, body) {
      const type = first >> 4;
      if (type === 2) { // CONNACK
        const rc = body[1];
        if (rc !== 0) { this.status('Refused by the broker: return code ' + rc, 'error'); return; }
        this.connected = true;
        this.controls(true);
        this.status('Connected as ' + $('ws-client-id').value, 'ok');
        this.pingTimer = setInterval(() => this.ping(), KEEP_ALIVE * 1000 / 2);
      } else if (type === 9) { // SUBACK
        const id = (body[0] << 8) | body[1];
        const filter = this.subs.get(id);
        this.subs.delete(id);
        if (body[2] === 0x80) this.status('Subscription to ' + filter + ' refused', 'error');
        else this.status('Subscribed to ' + filter, 'ok');
      } else if (type === 3) { // PUBLISH
        const qos = (first >> 1) & 3;
        const tlen = (body[0] << 8) | body[1];
        const topic = dec.decode(body.subarray(2, 2 + tlen));
        let o = 2 + tlen;
        if (qos > 0) {
          const id = body.subarray(o, o + 2);
          o += 2;
          if (qos === 1) this.send(concat([Uint8Array.of(0x40, 2), id]));
        }
        this.message(topic, body.subarray(o), (first & 1) === 1, qos);
      } else if (type === 13) { // PINGRESP
        if (this.pingSent) this.status('Connected; ping answered in ' + (Date.now() - this.pingSent) + ' ms', 'ok');
      }
    },
    message(topic, payload, retain, qos) {
      const text = dec.decode(payload);
      const tr = el('tr', null, [
        el('td', { text: clock(Date.now()) }), el('td', { class: 'mono', text: topic }),
        el('td', { class: 'mono', text: text.length > 300 ? text.slice(0, 300) + '…' : text }),
        el('td', { text: (retain ? 'retained ' : '') + 'QoS ' + qos }),
      ]);
      const body = $('ws-messages-body');
      body.prepend(tr);
      while (body.children.length > 200) body.lastElementChild.remove();
    },
  };
  pages.ws = {
    async enter() {
      if (!$('ws-client-id').value) $('ws-client-id').value = 'dashboard-' + Math.random().toString(16).slice(2, 10);
      if ($('ws-url').value) return;
      try {
        const r = await api('GET', '/listeners');
        const secure = location.protocol === 'https:';
        const items = (r.items || []).filter((l) => l.protocol === 'ws' || l.protocol === 'wss');
        items.sort((a, b) => ((a.protocol === 'wss') === secure ? 0 : 1) - ((b.protocol === 'wss') === secure ? 0 : 1));
        const l = items[0];
        if (!l) { this.hint('This broker has no WebSocket listener (start it with --ws-port).'); return; }
        let host = !l.host || l.host === '0.0.0.0' || l.host === '::' ? location.hostname : l.host;
        if (host.includes(':') && !host.startsWith('[')) host = '[' + host + ']';
        $('ws-url').value = l.protocol + '://' + host + ':' + l.port + '/mqtt';
      } catch (e) { showError(e); }
    },
    hint(text) { if (ws.sock === null) ws.status(text); },
  };

  // ---------- wiring ----------
  function on(id, event, fn) { $(id).addEventListener(event, fn); }
  on('login-form', 'submit', (ev) => { ev.preventDefault(); login($('login-token').value, false); });
  on('logout', 'click', () => logout(''));
  const tabs = PAGE_NAMES.map((n) => $('tab-' + n));
  tabs.forEach((tab, i) => {
    tab.addEventListener('click', () => go(tab.dataset.page));
    tab.addEventListener('keydown', (ev) => {
      const j = ev.key === 'ArrowRight' ? (i + 1) % tabs.length : ev.key === 'ArrowLeft' ? (i + tabs.length - 1) % tabs.length : -1;
      if (j >= 0) { ev.preventDefault(); tabs[j].focus(); go(tabs[j].dataset.page); }
    });
  });
  window.addEventListener('hashchange', route);
  on('clients-search', 'submit', (ev) => { ev.preventDefault(); pages.clients.reset(); pages.clients.load(); });
  on('clients-q', 'input', () => {
    clearTimeout(clients.debounce);
    clients.debounce = setTimeout(() => { pages.clients.reset(); pages.clients.load(); }, 250);
  });
  on('clients-field', 'change', () => { $('clients-q').placeholder = $('clients-field').value === 'username' ? 'exact user name' : 'part of a client id'; });
  for (const id of ['clients-field', 'clients-offline', 'clients-limit']) on(id, 'change', () => { pages.clients.reset(); pages.clients.load(); });
  on('clients-prev', 'click', () => { if (clients.index > 0) { clients.index--; pages.clients.load(); } });
  on('clients-next', 'click', () => { if (clients.index + 1 < clients.cursors.length) { clients.index++; pages.clients.load(); } });
  on('client-details-close', 'click', () => pages.clients.closeDetails());
  on('topics-form', 'submit', (ev) => { ev.preventDefault(); pages.topics.load(); });
  on('topics-expand', 'click', () => pages.topics.all(true));
  on('topics-collapse', 'click', () => pages.topics.all(false));
  on('retained-form', 'submit', (ev) => { ev.preventDefault(); pages.retained.load(false); });
  on('retained-more', 'click', () => pages.retained.load(true));
  on('retained-delete', 'click', () => pages.retained.remove());
  for (const r of document.querySelectorAll('input[name="retained-view"]')) r.addEventListener('change', () => pages.retained.render());
  on('publish-add-prop', 'click', () => pages.publish.addProp());
  on('publish-form', 'submit', (ev) => { ev.preventDefault(); pages.publish.submit(); });
  on('ws-connect-form', 'submit', (ev) => {
    ev.preventDefault();
    const url = $('ws-url').value.trim();
    if (!url) { ws.status('Enter the WebSocket URL', 'error'); return; }
    ws.open(url, $('ws-client-id').value, $('ws-username').value, $('ws-password').value);
  });
  on('ws-disconnect', 'click', () => ws.close());
  on('ws-ping', 'click', () => ws.ping());
  on('ws-subscribe-form', 'submit', (ev) => { ev.preventDefault(); const f = $('ws-filter').value; if (f) ws.subscribe(f); });
  on('ws-publish-form', 'submit', (ev) => { ev.preventDefault(); const t = $('ws-pub-topic').value; if (t) ws.publish(t, $('ws-pub-payload').value); });
  document.addEventListener('visibilitychange', () => { if (!document.hidden && state.page === 'overview') pages.overview.refresh(); });

  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) login(saved, true); else $('login-token').focus();
})();
`;
