// A Petrel broker in its own process for the fuzz test, so that its memory
// (RSS) can be measured apart from the test's. Started with an IPC channel:
// it sends { type: 'ready', port } once listening, answers { type: 'stats' }
// with its counters and memory, and { type: 'close' } with a graceful close
// and exit. It exits by itself if the parent goes away.

import { createBroker } from '../../src/index.js';

const broker = await createBroker({
  store: { type: 'memory' },
  listeners: [{ port: 0, host: '127.0.0.1' }],
  logLevel: 'silent',
  closeTimeout: 1,
  limits: { maxPacketSize: 256 * 1024, connectTimeout: 2 },
});
const [addr] = await broker.listen();

type Request = { type: 'stats' | 'gc' | 'close' };

process.on('message', (m: Request) => {
  if (m.type === 'stats') {
    process.send!({
      type: 'stats',
      stats: { ...broker.stats },
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
  } else if (m.type === 'close') {
    void broker.close().finally(() => process.exit(0));
    setTimeout(() => process.exit(3), 5000).unref();
  }
});
process.on('disconnect', () => process.exit(0));
process.send!({ type: 'ready', port: addr!.port });
