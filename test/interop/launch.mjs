#!/usr/bin/env node
// Starts Petrel with the settings the Eclipse Paho interoperability suites assume of
// the broker under test (see ../shared/tools/paho/README.md), through the embedding API:
//  - an authorizeSubscribe hook that refuses `test/nosubscribe` with 0x80 (test_subscribe_failure);
//    no such rule is built into the broker;
//  - a maximum keep alive of 60 s (test_server_keep_alive expects Server Keep Alive 60), unless
//    --no-max-keep-alive: the 3.1.1 suite connects with keep alive 0, which a broker with a maximum
//    refuses for 3.1/3.1.1 (return code 2, as Mosquitto does), so it runs against a broker without one.
// Usage: node test/interop/launch.mjs [port] [--sqlite DIR] [--no-max-keep-alive]   (default port 0: prints the bound port)
import { createBroker } from '../../dist/index.js';

const args = process.argv.slice(2);
const port = Number(args.find((a) => /^\d+$/.test(a)) ?? 0);
const sqliteAt = args.indexOf('--sqlite');
const store = sqliteAt >= 0 ? { type: 'sqlite', dataDir: args[sqliteAt + 1] } : { type: 'memory' };

const broker = await createBroker({
  listeners: [{ port, host: '127.0.0.1' }],
  store,
  limits: { maxKeepAlive: args.includes('--no-max-keep-alive') ? 0 : 60 },
  logLevel: process.env.PETREL_LOG_LEVEL ?? 'warn',
  hooks: {
    authorizeSubscribe: (_client, sub) => (sub.filter === 'test/nosubscribe' ? 0x80 : true),
  },
});
const [addr] = await broker.listen();
process.stdout.write(`${addr.port}\n`);
const stop = () => broker.close().then(() => process.exit(0));
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
