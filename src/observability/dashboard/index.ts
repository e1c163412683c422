// The web dashboard on the HTTP listener: /dashboard/ (one page, app.js, app.css, favicon.svg), and / and
// /dashboard redirecting there. Mounted only when the admin API is on (an admin token is configured): the page
// is public, but shows nothing until the token typed into its login box is accepted by /api/v1, and every call
// it makes carries that token (Authorization: Bearer). No inline script or style, no third-party origin: the
// Content-Security-Policy says so, and the browser enforces it.

import type http from 'node:http';
import type { HttpListener, RouteHandler } from '../http.js';
import { dashboardAssets, type Asset } from './assets.js';

export const DASHBOARD_PATH = '/dashboard/';

/**
 * Scripts and styles from this origin only (app.js, app.css), nothing inline; API calls to this origin, and
 * WebSocket connections to any ws:/wss: address (the MQTT-over-WebSocket listener has its own port).
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self' ws: wss:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

/** A year: app.js and app.css are asked for with ?v=<their hash>, so a changed file has a new address. */
const IMMUTABLE = 'public, max-age=31536000, immutable';

function serve(a: Asset, versioned: boolean): RouteHandler {
  return (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => {
    // The HTML is revalidated on every load; a file asked for by its current hash may be kept for good; one
    // asked for by another (or no) hash is served, but not for long (an old page after an upgrade).
    const cache = !versioned ? 'no-cache' : url.searchParams.get('v') === a.hash ? IMMUTABLE : 'public, max-age=60';
    const headers = { ...SECURITY_HEADERS, 'cache-control': cache, etag: a.etag };
    const match = req.headers['if-none-match'];
    if (match !== undefined && match.split(',').some((t) => t.trim() === a.etag || t.trim() === `W/${a.etag}`)) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    res.writeHead(200, { ...headers, 'content-type': a.contentType, 'content-length': String(a.body.length) });
    res.end(req.method === 'HEAD' ? undefined : a.body);
  };
}

function redirect(to: string): RouteHandler {
  return (_req, res) => {
    res.writeHead(302, { location: to, 'cache-control': 'no-cache', 'content-type': 'text/plain; charset=utf-8' });
    res.end(`see ${to}\n`);
  };
}

/** Add the dashboard's routes to the HTTP listener. */
export function mountDashboard(listener: HttpListener): void {
  const files = dashboardAssets();
  const methods = ['GET', 'HEAD'];
  listener.addRoute('/', { methods, access: 'open', handler: redirect(DASHBOARD_PATH) });
  listener.addRoute('/dashboard', { methods, access: 'open', handler: redirect(DASHBOARD_PATH) });
  listener.addRoute(DASHBOARD_PATH, { methods, access: 'open', handler: serve(files.get('index.html')!, false) });
  listener.addRoute(`${DASHBOARD_PATH}index.html`, { methods, access: 'open', handler: serve(files.get('index.html')!, false) });
  for (const name of ['app.js', 'app.css', 'favicon.svg']) {
    listener.addRoute(DASHBOARD_PATH + name, { methods, access: 'open', handler: serve(files.get(name)!, true) });
  }
}
