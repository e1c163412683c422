// A Petrel broker in its own process for the fuzz test, so that its memory
// (RSS) can be measured apart from the test's. Started with an IPC channel:
// it sends { type: 'ready', port } once listening, answers { type: 'stats' }
// with its counters and memory, and { type: 'close' } with a graceful close
// and exit. It exits by itself if the parent goes away. An unhandled rejection is counted (and reported in
// the stats) instead of ending the process, so that the test can say which; an uncaught exception still ends
// it (the test sees a dead child). A v5 enhanced authentication method, FUZZ-2STEP, is configured for the
// campaign's AUTH sequences: CONNECT data 'hello' → continue with 'challenge'; AUTH data 'answer' → success;
// anything else → fail 0x87.

import { writeHeapSnapshot } from 'node:v8';
import { createBroker } from '../../src/index.js';

let unhandledRejections = 0;
process.on('unhandledRejection', (e) => {
  unhandledRejections++;
  console.error('unhandled rejection in the broker child:', e);
});

const broker = await createBroker({
  authMethods: {
    'FUZZ-2STEP': (req) => {
      const data = req.data?.toString() ?? '';
      if (req.state === undefined && data === 'hello') return { result: 'continue', data: Buffer.from('challenge'), state: 1 };
      if (req.state === 1 && data === 'answer') return { result: 'success' };
      return { result: 'fail', reasonCode: 0x87 };
    },
  },
  store: { type: 'memory' },
  listeners: [{ port: 0, host: '127.0.0.1' }],
  logLevel: 'silent',
  closeTimeout: 1,
  // PETREL_FUZZ_LIMITS (JSON) adds to or overrides these (the campaign bounds the offline queues with it).
  limits: { maxPacketSize: 256 * 1024, connectTimeout: 2, ...(JSON.parse(process.env.PETREL_FUZZ_LIMITS ?? '{}') as object) },
});
const [addr] = await broker.listen();

type Request = { type: 'stats' | 'gc' | 'close' | 'snapshot' };

process.on('message', (m: Request) => {
  if (m.type === 'stats') {
    process.send!({
      type: 'stats',
      stats: { ...broker.stats },
      unhandledRejections,
      connectedClients: broker.connectedClients,
      sessionCount: broker.sessionCount,
      retainedCount: broker.retainedCount,
      memory: process.memoryUsage(),
    });
  } else if (m.type === 'gc') {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (gc) {
      gc();
      gc();
    }
    process.send!({ type: 'gc' });
  } else if (m.type === 'snapshot') {
    // PETREL_FUZZ_SNAPSHOT=<dir>: a heap snapshot, to see what memory the fuzz left behind.
    process.send!({ type: 'snapshot', file: writeHeapSnapshot(undefined) });
  } else if (m.type === 'close') {
    void broker.close().finally(() => process.exit(0));
    setTimeout(() => process.exit(3), 5000).unref();
  }
});
process.on('disconnect', () => process.exit(0));
process.send!({ type: 'ready', port: addr!.port });
