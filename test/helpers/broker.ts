// Start a broker for a test on a free loopback port (never 1883), with an
// in-memory store and no logging unless the options say otherwise.

import { createBroker, type BrokerOptions, type PetrelBroker } from '../../src/index.js';

export interface TestBroker {
  broker: PetrelBroker;
  port: number;
  /** mqtt://127.0.0.1:PORT */
  url: string;
  /** Close the broker (idempotent). */
  close(): Promise<void>;
}

export async function startBroker(options: BrokerOptions = {}): Promise<TestBroker> {
  const broker = await createBroker({
    store: { type: 'memory' },
    listeners: [{ port: 0, host: '127.0.0.1' }],
    logLevel: 'silent',
    closeTimeout: 1,
    // No $SYS tree unless a test asks for it: its retained messages would be in every count.
    sysInterval: 0,
    ...options,
  });
  let addresses;
  try {
    addresses = await broker.listen();
  } catch (err) {
    await broker.close();
    throw err;
  }
  const port = addresses[0]!.port;
  let closing: Promise<void> | null = null;
  return {
    broker,
    port,
    url: `mqtt://127.0.0.1:${port}`,
    close: () => (closing ??= broker.close()),
  };
}
