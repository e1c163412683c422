// Start a broker for a test on a free loopback port (never 1883), with an
// in-memory store and no logging unless the options say otherwise. Without
// `listeners` in the options, the listener is that of the test transport
// (PETREL_TEST_TRANSPORT, see transport.ts); `port` and `url` are where a
// client of that transport connects (for 'proxy', the front proxy's port).

import { createBroker, type BoundAddress, type BrokerOptions, type PetrelBroker } from '../../src/index.js';
import { listenerFor, startFront, TEST_TRANSPORT, urlFor, type Front, type TestTransport } from './transport.js';

export interface TestBroker {
  broker: PetrelBroker;
  port: number;
  /** mqtt://127.0.0.1:PORT (mqtts://, ws://…/mqtt, wss://…/mqtt for the other transports). */
  url: string;
  /** The transport clients use; 'tcp' when the test gave its own listeners. */
  transport: TestTransport;
  /** Every bound address of the broker itself. */
  addresses: BoundAddress[];
  /** Close the broker (idempotent). */
  close(): Promise<void>;
}

export async function startBroker(options: BrokerOptions = {}): Promise<TestBroker> {
  const own = options.listeners === undefined;
  const transport: TestTransport = own ? TEST_TRANSPORT : 'tcp';
  const broker = await createBroker({
    store: { type: 'memory' },
    listeners: [listenerFor(transport)],
    logLevel: 'silent',
    closeTimeout: 1,
    // No $SYS tree unless a test asks for it: its retained messages would be in every count.
    sysInterval: 0,
    ...options,
  });
  let addresses: BoundAddress[];
  let front: Front | null = null;
  try {
    addresses = await broker.listen();
    if (transport === 'proxy') front = await startFront('proxy', addresses[0]!.port);
  } catch (err) {
    await broker.close();
    throw err;
  }
  const port = front?.port ?? addresses[0]!.port;
  let closing: Promise<void> | null = null;
  return {
    broker,
    port,
    url: urlFor(transport, port),
    transport,
    addresses,
    // The broker first: what it sends while closing (DISCONNECT 0x8B) still passes the front.
    close: () => (closing ??= broker.close().then(() => front?.close())),
  };
}
