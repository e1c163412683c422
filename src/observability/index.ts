// What the broker starts beside MQTT: the $SYS tree (sys.ts, from start()) and the HTTP listener with /metrics,
// the health probes and, with http.adminToken, the admin API (http.ts, metrics.ts, admin/, from listen()).
// prom-client and node:http are loaded only when an HTTP listener is configured.

import type { Broker } from '../broker/broker.js';
import type { ResolvedOptions } from '../broker/options.js';
import type { HttpAddress, HttpListener } from './http.js';
import { SysTree } from './sys.js';

export type { HttpAddress };

export interface Observability {
  /** Open the HTTP listener if one is configured (once; later calls do nothing). */
  listen(): Promise<void>;
  /** Shutdown began: $SYS stops, /readyz answers 503. */
  draining(): void;
  /** Close the HTTP listener. */
  close(): Promise<void>;
  readonly httpAddress: HttpAddress | null;
}

export function startObservability(broker: Broker, options: ResolvedOptions): Observability {
  const sys = options.sysInterval > 0 ? new SysTree(broker, options.sysInterval) : null;
  sys?.start();
  let http: HttpListener | null = null;
  let opening: Promise<void> | null = null;
  return {
    listen(): Promise<void> {
      const h = options.http;
      if (h === undefined) return Promise.resolve();
      opening ??= (async () => {
        const { startHttp } = await import('./http.js');
        http = await startHttp(broker, h, options.metrics);
        if (h.adminToken !== undefined) {
          // The admin API (/api/v1, admin/): only with its token; without one every /api/v1 path is 404.
          const { startAdmin } = await import('./admin/index.js');
          startAdmin(broker, http, h.adminToken);
          // The web dashboard (/dashboard/, dashboard/): a page that calls the admin API with the token typed into it.
          const { mountDashboard } = await import('./dashboard/index.js');
          mountDashboard(http);
        }
        broker.logger.info('listening', { event: 'listener.listening', transport: 'http', host: http.address.host, port: http.address.port, admin: h.adminToken !== undefined });
      })();
      return opening;
    },
    draining(): void {
      sys?.stop();
    },
    async close(): Promise<void> {
      sys?.stop();
      if (opening !== null) await opening.catch(() => {});
      await http?.close();
      http = null;
    },
    get httpAddress(): HttpAddress | null {
      return http?.address ?? null;
    },
  };
}
