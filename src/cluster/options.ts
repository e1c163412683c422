// Cluster mode's options (cluster.ts), validated without loading the Redis client.

import { hostname } from 'node:os';

export interface ClusterOptions {
  /** redis://host:port, rediss://host:port, unix:///path/redis.sock or /path/redis.sock. */
  redis: string;
  /** This node's name (default: host name and process id). A restart with the same name is a new incarnation. */
  nodeId?: string;
  /** Lease: a node silent for this long is dead, its sessions adopted (ms, default 5000). */
  leaseMs?: number;
  /** Key prefix (default 'petrel:'). */
  prefix?: string;
}

export interface ResolvedClusterOptions {
  redis: string;
  nodeId: string;
  leaseMs: number;
  prefix: string;
}

export function resolveClusterOptions(o: ClusterOptions): ResolvedClusterOptions {
  if (typeof o !== 'object' || o === null) throw new TypeError('cluster: must be { redis: "redis://host:port" }');
  if (typeof o.redis !== 'string' || o.redis === '') throw new TypeError('cluster.redis: must be a redis:// or rediss:// URL or a Unix socket path');
  if (!/^(rediss?:\/\/|unix:\/\/|\/)/.test(o.redis)) {
    throw new TypeError(`cluster.redis: ${JSON.stringify(o.redis)} is not a redis:// or rediss:// URL, unix:// URL or absolute socket path`);
  }
  const leaseMs = o.leaseMs ?? 5000;
  if (!Number.isInteger(leaseMs) || leaseMs < 1000 || leaseMs > 600_000) throw new TypeError('cluster.leaseMs: must be an integer from 1000 to 600000');
  const nodeId = o.nodeId ?? `${hostname()}-${process.pid}`;
  if (typeof nodeId !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(nodeId)) {
    throw new TypeError('cluster.nodeId: 1 to 64 letters, digits, ".", "_" or "-"');
  }
  const prefix = o.prefix ?? 'petrel:';
  return { redis: o.redis, nodeId, leaseMs, prefix };
}

