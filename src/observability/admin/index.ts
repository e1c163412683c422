// The admin API (/api/v1) on the HTTP listener, started by observability/index.ts only when http.adminToken is
// set: without it every /api/v1 path is 404. Routes: handlers.ts; plumbing: router.ts; schemas and their
// validator: schema.ts; the OpenAPI document: openapi.ts; the per-second history: history.ts; bans: bans.ts.

import type { Broker } from '../../broker/broker.js';
import type { HttpListener } from '../http.js';
import { BanList } from './bans.js';
import { routes } from './handlers.js';
import { History } from './history.js';
import { openApiDocument } from './openapi.js';
import { API_PREFIX, bearerCheck, createRouter, type Op } from './router.js';

export interface AdminApi {
  readonly history: History;
  readonly bans: BanList;
  stop(): void;
}

export function startAdmin(broker: Broker, http: HttpListener, token: string): AdminApi {
  const history = new History(broker);
  const bans = new BanList();
  const ops = routes({ broker, http, history, bans });
  let doc: string | null = null;
  const openapi: Op = {
    method: 'GET',
    path: '/openapi.json',
    summary: 'This document (no token needed)',
    ok: { status: 200, schema: 'openapi' },
    open: true,
    run: () => ({ status: 200, body: JSON.parse((doc ??= JSON.stringify(openApiDocument(all)))) as unknown }),
  };
  const all = [...ops, openapi];
  const router = createRouter(all, bearerCheck(token));
  const route = { methods: ['GET', 'POST', 'DELETE'], access: 'open' as const, handler: router.handle };
  http.addPrefix(`${API_PREFIX}/`, route);
  broker.banned = (clientId, username, ip) => {
    const b = bans.match(clientId, username, ip);
    return b === null ? null : `banned by an administrator${b.reason !== undefined ? `: ${b.reason}` : ''}`;
  };
  history.start();
  const stop = (): void => {
    history.stop();
    broker.banned = null;
  };
  http.onClose(stop);
  return { history, bans, stop };
}
