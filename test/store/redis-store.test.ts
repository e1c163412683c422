// The Store contract on RedisStore (cluster mode's store), against a private redis-server.

import { after, before } from 'node:test';
import { Redis } from 'ioredis';
import { RedisStore } from '../../src/cluster/redis-store.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { storeContract } from './contract.js';

let server: RedisServer;
const clients: Redis[] = [];
let n = 0;

before(async () => {
  server = await startRedis();
});
after(async () => {
  for (const c of clients) c.disconnect();
  await server.stop();
});

function open(prefix: string): RedisStore {
  const redis = new Redis({ path: server.socket, maxRetriesPerRequest: null });
  clients.push(redis);
  return new RedisStore({ redis, prefix, member: '', load: 'all' });
}

storeContract('redis', async () => {
  // Each harness its own key prefix: a fresh, empty store on the shared server.
  const prefix = `contract${++n}:`;
  return { store: open(prefix), reopen: async () => open(prefix), cleanup: async () => {} };
});
