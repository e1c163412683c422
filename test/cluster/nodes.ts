// Cluster test harness: a private redis-server and real `petrel --cluster` node processes on port 0.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kill, startPetrel, type PetrelProcess } from '../durability/petrel-process.js';
import { findEvent } from '../helpers/log-lines.js';
import { startRedis, type Persistence, type RedisServer } from '../helpers/redis.js';

export interface Node {
  id: string;
  proc: PetrelProcess;
  port: number;
  url: string;
  /** nodeId#incarnation, as in Redis keys. */
  member: string;
}

export interface TestCluster {
  redis: RedisServer;
  nodes: Node[];
  leaseMs: number;
  /** Start one more node (env: extra environment, e.g. PETREL_CRASH_AT). */
  start(id: string, env?: NodeJS.ProcessEnv): Promise<Node>;
  kill9(node: Node): Promise<void>;
  stop(): Promise<void>;
}

/** The member name a node logs when it joins (its cluster.node_joined record). */
function memberOf(log: string): string {
  const node = findEvent(log, 'cluster.node_joined')?.node;
  if (typeof node !== 'string') throw new Error(`no cluster.node_joined record in:\n${log}`);
  return node;
}

export async function startCluster(ids: string[], options: { leaseMs?: number; persistence?: Persistence } = {}): Promise<TestCluster> {
  const redis = await startRedis({ persistence: options.persistence ?? 'always' });
  const dir = mkdtempSync(join(tmpdir(), 'petrel-cluster-'));
  const leaseMs = options.leaseMs ?? 2000;
  const config = join(dir, 'petrel.json');
  writeFileSync(config, JSON.stringify({ cluster: { leaseMs } }));
  const nodes: Node[] = [];
  const start = async (id: string, env?: NodeJS.ProcessEnv): Promise<Node> => {
    const proc = await startPetrel(['--cluster', redis.socket, '--node-id', id, '--config', config, '--memory'], 15_000, env);
    const n: Node = { id, proc, port: proc.port, url: `mqtt://127.0.0.1:${proc.port}`, member: memberOf(proc.log()) };
    nodes.push(n);
    return n;
  };
  for (const id of ids) await start(id);
  return {
    redis,
    nodes,
    leaseMs,
    start,
    async kill9(node: Node): Promise<void> {
      await kill(node.proc, 'SIGKILL');
    },
    async stop(): Promise<void> {
      await Promise.all(nodes.map(async (n) => {
        if (n.proc.child.exitCode === null && n.proc.child.signalCode === null) await kill(n.proc, 'SIGTERM');
      }));
      await redis.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
