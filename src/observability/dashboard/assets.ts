// The dashboard's files, as text compiled into dist/ with the rest of the broker (no copy step, no bundler).
// Each file has a content hash: the HTML names app.js and app.css with ?v=<hash>, so that the browser may keep
// them for good (a new build has new hashes), while the HTML itself is revalidated (ETag) on every load.

import { createHash } from 'node:crypto';
import { APP_CSS } from './app-css.js';
import { APP_JS } from './app-js.js';
import { INDEX_HTML } from './index-html.js';

export const FAVICON_SVG = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" fill="#1f5fbf"/>'
  + '<path d="M5 20c6-1 9-5 11-11 2 6 5 10 11 11-5 0-8 2-11 5-3-3-6-5-11-5z" fill="#fff"/></svg>\n';

export interface Asset {
  body: Buffer;
  contentType: string;
  /** The first 16 hex digits of the body's SHA-256. */
  hash: string;
  etag: string;
}

function asset(text: string, contentType: string): Asset {
  const body = Buffer.from(text, 'utf8');
  const hash = createHash('sha256').update(body).digest('hex').slice(0, 16);
  return { body, contentType, hash, etag: `"${hash}"` };
}

let cache: Map<string, Asset> | null = null;

/** The files by name ('index.html', 'app.js', 'app.css', 'favicon.svg'), built once. */
export function dashboardAssets(): Map<string, Asset> {
  if (cache !== null) return cache;
  const js = asset(APP_JS, 'text/javascript; charset=utf-8');
  const css = asset(APP_CSS, 'text/css; charset=utf-8');
  const icon = asset(FAVICON_SVG, 'image/svg+xml');
  const html = asset(
    INDEX_HTML.replace('@APP_JS@', js.hash).replace('@APP_CSS@', css.hash).replace('@FAVICON@', icon.hash),
    'text/html; charset=utf-8',
  );
  cache = new Map([['index.html', html], ['app.js', js], ['app.css', css], ['favicon.svg', icon]]);
  return cache;
}
