// The dashboard's one HTML page. No inline script or style (the Content-Security-Policy forbids both):
// app.js and app.css are separate files, referenced with a version query so that they can be cached for good.
// Every tab is a <section role="tabpanel">; app.js shows one at a time.

export const INDEX_HTML = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Petrel dashboard</title>
<link rel="icon" href="favicon.svg?v=@FAVICON@" type="image/svg+xml">
<link rel="stylesheet" href="app.css?v=@APP_CSS@">
<script src="app.js?v=@APP_JS@" defer></script>
</head>
<body>
<header class="top">
  <span class="brand">Petrel</span>
  <span id="broker-version" class="muted"></span>
  <span class="spacer"></span>
  <span id="refresh-state" class="muted" role="status" aria-live="polite"></span>
  <button type="button" id="logout" hidden>Log out</button>
</header>

<section id="login" class="login" aria-labelledby="login-title">
  <h1 id="login-title">Sign in to the Petrel dashboard</h1>
  <form id="login-form" novalidate>
    <label for="login-token">Admin token</label>
    <input id="login-token" name="token" type="password" autocomplete="current-password" required>
    <button type="submit" id="login-submit">Sign in</button>
    <p id="login-error" class="error" role="alert"></p>
  </form>
  <p class="muted">The token is the broker's admin token (<code>--admin-token-file</code> or <code>PETREL_ADMIN_TOKEN</code>). It is kept in this tab's session storage only.</p>
</section>

<div id="app" hidden>
<nav class="tabs" role="tablist" aria-label="Dashboard pages">
  <button type="button" role="tab" id="tab-overview" aria-controls="page-overview" data-page="overview">Overview</button>
  <button type="button" role="tab" id="tab-clients" aria-controls="page-clients" data-page="clients">Clients</button>
  <button type="button" role="tab" id="tab-topics" aria-controls="page-topics" data-page="topics">Topics</button>
  <button type="button" role="tab" id="tab-retained" aria-controls="page-retained" data-page="retained">Retained</button>
  <button type="button" role="tab" id="tab-publish" aria-controls="page-publish" data-page="publish">Publish</button>
  <button type="button" role="tab" id="tab-ws" aria-controls="page-ws" data-page="ws">WebSocket client</button>
</nav>
<p id="api-error" class="error banner" role="alert" hidden></p>
<main>

<section id="page-overview" role="tabpanel" aria-labelledby="tab-overview" hidden>
  <h1>Overview</h1>
  <div id="tiles" class="tiles" aria-live="off">
    <div class="tile"><span class="label">Connections</span><span class="value" id="stat-connections">–</span></div>
    <div class="tile"><span class="label">Sessions online / offline</span><span class="value" id="stat-sessions">–</span></div>
    <div class="tile"><span class="label">Subscriptions</span><span class="value" id="stat-subscriptions">–</span></div>
    <div class="tile"><span class="label">Retained</span><span class="value" id="stat-retained">–</span></div>
    <div class="tile"><span class="label">Messages in / out</span><span class="value" id="stat-messages">–</span></div>
    <div class="tile"><span class="label">Dropped</span><span class="value" id="stat-dropped">–</span></div>
    <div class="tile"><span class="label">Queued</span><span class="value" id="stat-queued">–</span></div>
    <div class="tile"><span class="label">Memory (RSS / heap)</span><span class="value" id="stat-memory">–</span></div>
    <div class="tile"><span class="label">Uptime</span><span class="value" id="stat-uptime">–</span></div>
  </div>
  <figure class="chart">
    <figcaption>Messages per second (up to the last 5 minutes): <span class="key in">in</span> <span class="key out">out</span></figcaption>
    <canvas id="chart-rates" width="900" height="220" role="img" aria-label="Messages per second in and out over the last 5 minutes"></canvas>
  </figure>
  <figure class="chart">
    <figcaption>Connections (up to the last 5 minutes)</figcaption>
    <canvas id="chart-connections" width="900" height="160" role="img" aria-label="Connection count over the last 5 minutes"></canvas>
  </figure>
</section>

<section id="page-clients" role="tabpanel" aria-labelledby="tab-clients" hidden>
  <h1>Clients</h1>
  <form id="clients-search" class="row" role="search">
    <label for="clients-field">Search in</label>
    <select id="clients-field">
      <option value="clientId">client id</option>
      <option value="username">user name</option>
    </select>
    <label for="clients-q" class="visually-hidden">Search text</label>
    <input id="clients-q" type="search" placeholder="part of a client id">
    <label><input id="clients-offline" type="checkbox"> include offline sessions</label>
    <label for="clients-limit">Per page</label>
    <select id="clients-limit"><option>10</option><option>25</option><option selected>100</option><option>500</option></select>
    <button type="submit">Search</button>
  </form>
  <p id="clients-summary" class="muted" role="status"></p>
  <div class="scroll">
  <table id="clients-table" class="grid">
    <caption class="visually-hidden">Clients</caption>
    <thead><tr><th scope="col">Client id</th><th scope="col">User</th><th scope="col">State</th><th scope="col">Listener</th><th scope="col">MQTT</th><th scope="col">Address</th><th scope="col">Connected at</th><th scope="col" class="num">Subs</th><th scope="col" class="num">Queued</th><th scope="col" class="num">In-flight</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
    <tbody id="clients-body"></tbody>
  </table>
  </div>
  <div class="row pager">
    <button type="button" id="clients-prev" disabled>Previous page</button>
    <button type="button" id="clients-next" disabled>Next page</button>
  </div>
  <section id="client-details" class="card" aria-labelledby="client-details-title" hidden>
    <div class="row"><h2 id="client-details-title">Client</h2><span class="spacer"></span><button type="button" id="client-details-close">Close</button></div>
    <dl id="client-details-session" class="facts wide"></dl>
    <h3>Subscriptions</h3>
    <table class="grid" id="client-subscriptions">
      <thead><tr><th scope="col">Filter</th><th scope="col">QoS</th><th scope="col">No local</th><th scope="col">Retain as published</th><th scope="col">Retain handling</th><th scope="col">Share</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
</section>

<section id="page-topics" role="tabpanel" aria-labelledby="tab-topics" hidden>
  <h1>Topics</h1>
  <form id="topics-form" class="row">
    <label for="topics-prefix">Prefix</label>
    <input id="topics-prefix" type="text" placeholder="(all)">
    <button type="submit">Show</button>
    <button type="button" id="topics-expand">Expand all</button>
    <button type="button" id="topics-collapse">Collapse all</button>
  </form>
  <p class="muted">From retained topics and subscription filters. <span class="badge r">R</span> retained message, <span class="badge s">n</span> subscribers.</p>
  <div id="topics-tree" class="tree"></div>
</section>

<section id="page-retained" role="tabpanel" aria-labelledby="tab-retained" hidden>
  <h1>Retained messages</h1>
  <form id="retained-form" class="row">
    <label for="retained-filter">Filter</label>
    <input id="retained-filter" type="text" value="#" required>
    <button type="submit">Browse</button>
  </form>
  <p id="retained-summary" class="muted" role="status"></p>
  <div class="split">
    <div class="scroll list">
      <table class="grid" id="retained-table">
        <thead><tr><th scope="col">Topic</th><th scope="col" class="num">QoS</th><th scope="col" class="num">Bytes</th></tr></thead>
        <tbody id="retained-body"></tbody>
      </table>
      <div class="row pager"><button type="button" id="retained-more" hidden>More</button></div>
    </div>
    <section id="retained-viewer" class="card" aria-labelledby="retained-topic" hidden>
      <div class="row"><h2 id="retained-topic"></h2><span class="spacer"></span><button type="button" id="retained-delete" class="danger">Delete</button></div>
      <dl id="retained-props" class="facts"></dl>
      <fieldset class="row">
        <legend>Show payload as</legend>
        <label><input type="radio" name="retained-view" value="text" checked> Text</label>
        <label><input type="radio" name="retained-view" value="json"> JSON</label>
        <label><input type="radio" name="retained-view" value="hex"> Hex</label>
      </fieldset>
      <pre id="retained-payload" class="payload" tabindex="0"></pre>
    </section>
  </div>
</section>

<section id="page-publish" role="tabpanel" aria-labelledby="tab-publish" hidden>
  <h1>Publish</h1>
  <form id="publish-form" class="stack">
    <label for="publish-topic">Topic</label>
    <input id="publish-topic" type="text" required>
    <label for="publish-payload">Payload (UTF-8 text)</label>
    <textarea id="publish-payload" rows="5"></textarea>
    <div class="row">
      <label for="publish-qos">QoS</label>
      <select id="publish-qos"><option value="0">0</option><option value="1">1</option><option value="2">2</option></select>
      <label><input id="publish-retain" type="checkbox"> Retain</label>
      <label for="publish-content-type">Content type</label>
      <input id="publish-content-type" type="text" placeholder="application/json">
    </div>
    <fieldset>
      <legend>User properties</legend>
      <div id="publish-props"></div>
      <button type="button" id="publish-add-prop">Add user property</button>
    </fieldset>
    <div class="row"><button type="submit" id="publish-submit">Publish</button></div>
    <p id="publish-result" role="status"></p>
  </form>
</section>

<section id="page-ws" role="tabpanel" aria-labelledby="tab-ws" hidden>
  <h1>WebSocket client</h1>
  <p class="muted">An MQTT 3.1.1 client in this page, over the broker's MQTT-over-WebSocket listener.</p>
  <form id="ws-connect-form" class="row">
    <label for="ws-url">URL</label>
    <input id="ws-url" type="text" size="40" placeholder="ws://127.0.0.1:8080/mqtt">
    <label for="ws-client-id">Client id</label>
    <input id="ws-client-id" type="text" size="18">
    <label for="ws-username">User name</label>
    <input id="ws-username" type="text" size="12" autocomplete="off">
    <label for="ws-password">Password</label>
    <input id="ws-password" type="password" size="12" autocomplete="off">
    <button type="submit" id="ws-connect">Connect</button>
    <button type="button" id="ws-disconnect" disabled>Disconnect</button>
    <button type="button" id="ws-ping" disabled>Ping</button>
  </form>
  <p id="ws-status" role="status">Not connected</p>
  <form id="ws-subscribe-form" class="row">
    <label for="ws-filter">Subscribe to</label>
    <input id="ws-filter" type="text" value="#">
    <button type="submit" id="ws-subscribe" disabled>Subscribe</button>
  </form>
  <form id="ws-publish-form" class="row">
    <label for="ws-pub-topic">Publish to</label>
    <input id="ws-pub-topic" type="text">
    <label for="ws-pub-payload">Payload</label>
    <input id="ws-pub-payload" type="text">
    <button type="submit" id="ws-publish" disabled>Publish (QoS 0)</button>
  </form>
  <h2>Messages</h2>
  <div class="scroll">
  <table class="grid" id="ws-messages">
    <thead><tr><th scope="col">Time</th><th scope="col">Topic</th><th scope="col">Payload</th><th scope="col">Flags</th></tr></thead>
    <tbody id="ws-messages-body"></tbody>
  </table>
  </div>
</section>

</main>
</div>
</body>
</html>
`;
