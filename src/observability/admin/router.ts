// The admin API's plumbing: a route table (method, path template, schemas), the bearer-token check, bounded
// JSON bodies, paging, and the error format. The handlers are in handlers.ts; the OpenAPI document
// (openapi.ts) is built from the same table.

import { createHash, timingSafeEqual } from 'node:crypto';
import type http from 'node:http';
import { validate, type Schema, type Violation } from './schema.js';

export const API_PREFIX = '/api/v1';
/** Request bodies larger than this are refused with 413. */
export const MAX_BODY = 1024 * 1024;
/** A larger body is drained and answered 413 up to here; past it the connection is closed. */
const DRAIN_LIMIT = 16 * 1024 * 1024;
export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 1000;

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Violation[],
    readonly headers?: Record<string, string>,
  ) {
    super(message);
  }
}

export const badRequest = (message: string, details?: Violation[]): HttpError => new HttpError(400, 'bad_request', message, details);
export const notFound = (message: string): HttpError => new HttpError(404, 'not_found', message);

/** The JSON error body of the contract. */
export function errorBody(e: HttpError): { error: { status: number; code: string; message: string; details?: Violation[] } } {
  const error: { status: number; code: string; message: string; details?: Violation[] } = { status: e.status, code: e.code, message: e.message };
  if (e.details !== undefined && e.details.length > 0) error.details = e.details;
  return { error };
}

export interface QueryParam {
  name: string;
  description: string;
  schema: Schema;
  required?: boolean;
}

export interface Ctx {
  req: http.IncomingMessage;
  url: URL;
  /** Path parameters, decoded. */
  params: Record<string, string>;
  /** The validated JSON body (undefined for routes without one). */
  body: unknown;
  /** The caller's address, for the audit log. */
  remote: string;
}

export interface Answer {
  status: number;
  body: unknown;
}

export interface Op {
  method: 'GET' | 'POST' | 'DELETE';
  /** Under /api/v1, with {name} for one path segment. */
  path: string;
  summary: string;
  query?: QueryParam[];
  /** The request body's schema (validated), and the name it has under components.schemas. */
  body?: { name: string; schema: Schema; validateWith?: Schema; optional?: boolean };
  /** The success status and the name of its response schema (RESPONSES). */
  ok: { status: number; schema: string };
  /** Other statuses it answers, besides 400 and 401. */
  errors?: number[];
  /** Public: no token needed (only openapi.json). */
  open?: boolean;
  run(ctx: Ctx): Answer | Promise<Answer>;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Authorization: Bearer <token>, compared in constant time (of the digests: no length or prefix leaks). */
export function bearerCheck(token: string): (req: http.IncomingMessage) => boolean {
  const want = digest(token);
  return (req) => {
    const h = req.headers.authorization ?? '';
    const space = h.indexOf(' ');
    if (space < 0 || h.slice(0, space).toLowerCase() !== 'bearer') return false;
    return timingSafeEqual(digest(h.slice(space + 1).trim()), want);
  };
}

/** Read a request body: the bytes, or null if it is larger than MAX_BODY. */
function readBody(req: http.IncomingMessage): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? '0');
    if (declared > DRAIN_LIMIT) {
      req.destroy();
      resolve(null);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
      else if (size > DRAIN_LIMIT) req.destroy();
    });
    req.on('end', () => resolve(size > MAX_BODY ? null : Buffer.concat(chunks)));
    req.on('error', reject);
    req.on('close', () => {
      if (size > MAX_BODY) resolve(null);
    });
  });
}

interface Compiled {
  op: Op;
  segments: string[];
}

function split(path: string): string[] {
  return path.split('/').slice(1);
}

export interface Router {
  handle(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void>;
}

export function createRouter(ops: readonly Op[], authorized: (req: http.IncomingMessage) => boolean): Router {
  const table: Compiled[] = ops.map((op) => ({ op, segments: split(op.path) }));
  const match = (pathname: string): { matched: Compiled[]; params: Record<string, string>[] } => {
    const got = split(pathname.slice(API_PREFIX.length));
    const matched: Compiled[] = [];
    const params: Record<string, string>[] = [];
    for (const c of table) {
      if (c.segments.length !== got.length) continue;
      const p: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < got.length && ok; i++) {
        const want = c.segments[i]!;
        if (want.startsWith('{')) {
          if (got[i] === '') ok = false;
          else {
            try {
              p[want.slice(1, -1)] = decodeURIComponent(got[i]!);
            } catch {
              ok = false;
            }
          }
        } else ok = want === got[i];
      }
      if (ok) {
        matched.push(c);
        params.push(p);
      }
    }
    return { matched, params };
  };

  const send = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': String(Buffer.byteLength(text)), ...headers });
    res.end(text);
  };

  return {
    async handle(req, res, url): Promise<void> {
      const { matched, params } = match(url.pathname);
      // Literal segments win over parameters (/clients/kick before /clients/{clientId}), then the method.
      const method = req.method ?? 'GET';
      let i = matched.findIndex((c) => c.op.method === method);
      if (i >= 0) {
        const literal = matched.findIndex((c) => c.op.method === method && !c.segments.some((s) => s.startsWith('{')));
        if (literal >= 0) i = literal;
      }
      const chosen = i >= 0 ? matched[i]! : undefined;
      if (!(chosen?.op.open ?? false) && !authorized(req)) {
        const e = new HttpError(401, 'unauthorized', 'missing or wrong bearer token (Authorization: Bearer <token>)');
        send(res, 401, errorBody(e), { 'www-authenticate': 'Bearer realm="petrel"' });
        return;
      }
      try {
        if (chosen === undefined) {
          if (matched.length === 0) throw notFound(`no such route: ${req.method ?? 'GET'} ${url.pathname}`);
          const allow = [...new Set(matched.map((c) => c.op.method))].join(', ');
          throw new HttpError(405, 'method_not_allowed', `${method} is not allowed here; use ${allow}`, undefined, { allow });
        }
        const op = chosen.op;
        let body: unknown;
        if (op.body !== undefined) {
          const raw = await readBody(req);
          if (raw === null) throw new HttpError(413, 'payload_too_large', `request body larger than ${MAX_BODY} bytes`, undefined, { connection: 'close' });
          if (raw.length === 0) {
            if (op.body.optional !== true) throw badRequest('a JSON request body is required', [{ path: '', message: 'is required' }]);
            body = {};
          } else {
            try {
              body = JSON.parse(raw.toString('utf8'));
            } catch (err) {
              throw badRequest(`the body is not valid JSON: ${(err as Error).message}`);
            }
          }
          const violations = validate(op.body.validateWith ?? op.body.schema, body);
          if (violations.length > 0) throw badRequest(`invalid request body: ${violations.map((v) => `${v.path || 'body'} ${v.message}`).slice(0, 3).join('; ')}`, violations);
        } else {
          req.resume();
        }
        const answer = await op.run({ req, url, params: params[i]!, body, remote: remoteOf(req) });
        send(res, answer.status, answer.body);
      } catch (err) {
        if (!(err instanceof HttpError)) throw err;
        send(res, err.status, errorBody(err), err.headers);
      }
    },
  };
}

function remoteOf(req: http.IncomingMessage): string {
  const s = req.socket;
  const a = s.remoteAddress ?? '';
  return a.includes(':') ? `[${a}]:${s.remotePort ?? 0}` : `${a}:${s.remotePort ?? 0}`;
}

// ---- query parameters and paging ----

export function queryString(url: URL, name: string): string | undefined {
  const v = url.searchParams.get(name);
  return v === null ? undefined : v;
}

export function queryInt(url: URL, name: string, dflt: number, min: number, max: number): number {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === '') return dflt;
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw badRequest(`query parameter ${name} must be an integer from ${min} to ${max}`, [{ path: name, message: `must be an integer from ${min} to ${max}` }]);
  }
  return Number(raw);
}

export function queryBool(url: URL, name: string): boolean | undefined {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === '') return undefined;
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  throw badRequest(`query parameter ${name} must be true or false`, [{ path: name, message: 'must be true or false' }]);
}

export const PAGING: QueryParam[] = [
  { name: 'limit', description: `items per page (default ${DEFAULT_LIMIT}, at most ${MAX_LIMIT})`, schema: { type: 'integer', minimum: 1, maximum: MAX_LIMIT, default: DEFAULT_LIMIT } },
  { name: 'cursor', description: 'the `next` of the previous page', schema: { type: 'string' } },
];

/**
 * One page of a list sorted by key: the items after the cursor's key. The cursor is the last key of the page,
 * base64url-encoded (opaque to the caller); a list that changes between pages neither repeats nor skips an item
 * that stayed.
 */
export function page<T>(url: URL, items: T[], key: (t: T) => string): { items: T[]; next: string | null; total: number } {
  const limit = queryInt(url, 'limit', DEFAULT_LIMIT, 1, MAX_LIMIT);
  const cursor = url.searchParams.get('cursor');
  const keyed = items.map((t) => [key(t), t] as const);
  keyed.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  let from = 0;
  if (cursor !== null && cursor !== '') {
    const after = Buffer.from(cursor, 'base64url').toString('utf8');
    if (Buffer.from(after, 'utf8').toString('base64url') !== cursor) throw badRequest('cursor is not one this API gave', [{ path: 'cursor', message: 'is not valid' }]);
    // The first key after the cursor's (binary search).
    let lo = 0;
    let hi = keyed.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (keyed[mid]![0] <= after) lo = mid + 1;
      else hi = mid;
    }
    from = lo;
  }
  const slice = keyed.slice(from, from + limit);
  const more = from + limit < keyed.length;
  return { items: slice.map((x) => x[1]), next: more && slice.length > 0 ? Buffer.from(slice[slice.length - 1]![0], 'utf8').toString('base64url') : null, total: keyed.length };
}
