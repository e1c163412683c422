// MQTT.js for tests: connect without automatic reconnection, collect messages,
// and wait for them with deadlines.

import { connect, Store, type IClientOptions, type IConnackPacket, type IPublishPacket, type MqttClient } from 'mqtt';
import { sleep } from './wait.js';
import { testCa } from './transport.js';

export type { MqttClient };

export interface Received {
  topic: string;
  payload: Buffer;
  packet: IPublishPacket;
}

let counter = 0;
/** A client id unique in this process. */
export function uniqueId(prefix = 'c'): string {
  return `${prefix}-${process.pid}-${++counter}`;
}

/** MQTT.js options for a protocol level (3 = MQTT 3.1 "MQIsdp"). */
export function versionOptions(version: 3 | 4 | 5): IClientOptions {
  return version === 3 ? { protocolId: 'MQIsdp', protocolVersion: 3 } : { protocolId: 'MQTT', protocolVersion: version };
}

export interface Connected {
  client: MqttClient;
  connack: IConnackPacket;
  /** Every message the client receives, from the moment it was created (so nothing sent right after CONNACK is missed). */
  messages: Collector;
}

/** Connect and wait for CONNACK (success), within ms. Reconnection is off. */
export function connectMqtt(url: string, options: IClientOptions = {}, ms = 4000): Promise<Connected> {
  return new Promise((resolve, reject) => {
    const client = connect(url, {
      reconnectPeriod: 0,
      connectTimeout: ms,
      clientId: uniqueId('mqttjs'),
      // mqtts:// and wss://: trust the test CA (test/helpers/certs.ts).
      ...(url.startsWith('mqtts:') || url.startsWith('wss:') ? { ca: testCa() } : {}),
      ...options,
    });
    const messages = new Collector(client);
    const timer = setTimeout(() => {
      cleanup();
      client.end(true);
      reject(new Error(`MQTT.js: no CONNACK within ${ms} ms`));
    }, ms);
    const onConnect = (connack: IConnackPacket): void => {
      cleanup();
      resolve({ client, connack, messages });
    };
    const onError = (err: Error): void => {
      cleanup();
      client.end(true);
      reject(err);
    };
    const onClose = (): void => {
      cleanup();
      client.end(true);
      reject(new Error('MQTT.js: connection closed before CONNACK'));
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      client.off('connect', onConnect);
      client.off('error', onError);
      client.off('close', onClose);
    };
    client.on('connect', onConnect);
    client.on('error', onError);
    client.on('close', onClose);
  });
}

/** Records every message a client receives; wait for them with a bound. */
export class Collector {
  readonly messages: Received[] = [];
  private waiters: (() => void)[] = [];
  constructor(readonly client: MqttClient) {
    client.on('message', (topic: string, payload: Buffer, packet: IPublishPacket) => {
      this.messages.push({ topic, payload: Buffer.from(payload), packet });
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
    });
  }

  on(topic: string): Received[] {
    return this.messages.filter((m) => m.topic === topic);
  }

  payloads(topic?: string): string[] {
    return (topic === undefined ? this.messages : this.on(topic)).map((m) => m.payload.toString());
  }

  /** Wait until the predicate holds over the messages received so far. */
  async until(predicate: (messages: Received[]) => boolean, ms: number, what: string): Promise<Received[]> {
    const deadline = Date.now() + ms;
    while (!predicate(this.messages)) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`timed out after ${ms} ms waiting for ${what}; received ${JSON.stringify(this.messages.map((m) => [m.topic, m.payload.toString()]))}`);
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.messages;
  }

  /** Wait for at least n messages on a topic; returns them. */
  async count(topic: string, n: number, ms = 4000): Promise<Received[]> {
    await this.until((m) => m.filter((x) => x.topic === topic).length >= n, ms, `${n} message(s) on ${topic}`);
    return this.on(topic);
  }
}

/** End clients (forcefully, bounded); never throws. */
export async function endAll(...clients: (MqttClient | undefined | null)[]): Promise<void> {
  await Promise.all(
    clients.map(async (c) => {
      if (!c) return;
      try {
        await Promise.race([c.endAsync(true), sleep(2000)]);
      } catch {
        /* already gone */
      }
    }),
  );
}

/**
 * A packet store that outlives its MQTT.js client (end() closes the store it was given): shared by a client and
 * the one that resumes its session, it keeps the QoS 1/2 state across the reconnect, as an exactly-once client must.
 */
export class KeptStore extends Store {
  override close(cb?: () => void): void {
    cb?.();
  }
}

/** Connect, retrying while a cluster adopts a dead node's (or worker's) client ids (bounded by ms). */
export async function connectRetry(url: string, options: IClientOptions, ms = 20_000): Promise<Connected> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await connectMqtt(url, options, 8000);
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(200);
    }
  }
}
