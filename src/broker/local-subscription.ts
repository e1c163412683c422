// In-process subscriptions: `for await (const msg of broker.subscribe('a/#'))`.
// A LocalSubscription is a recipient in the same subscription tree as network
// sessions, so it sees exactly what they see, and can be a member of a shared
// group beside network clients (a worker pool).
//
// Overflow policy: the buffer holds at most highWaterMark messages, and at most
// highWaterMarkBytes bytes of them (payload plus ENTRY_BYTES each; one message
// always fits, however large). A message
// arriving at a full buffer is dropped and counted (subscription.dropped and
// the broker's localDropped counter); a full member of a shared group is
// skipped while another member has room. The consumer never blocks the broker.

import type { QoS } from '../protocol/packets.js';
import type { BrokerMessage } from './hooks.js';
import type { Message } from './message.js';
import type { Recipient, SharedGroup, Subscription } from './topic-tree.js';

export interface SubscribeOptions {
  /** Maximum QoS, as in a SUBSCRIBE (the message's QoS is the minimum of both). Default 2. */
  qos?: QoS;
  /** Ends the iteration when aborted. */
  signal?: AbortSignal;
  /** Messages buffered at most before new ones are dropped. Default 1000. */
  highWaterMark?: number;
  /** Bytes buffered at most (payload plus 160 per message; one message always fits) before new ones are dropped. Default 16 MiB. */
  highWaterMarkBytes?: number;
}

/** Default highWaterMarkBytes. */
export const LOCAL_HWM_BYTES = 16 * 1024 * 1024;
/** Bytes charged per buffered message beside its payload. */
const ENTRY_BYTES = 160;

interface Owner {
  removeLocal(sub: LocalSubscription): void;
  countLocalDrop(): void;
}

export class LocalSubscription implements Recipient, AsyncIterableIterator<BrokerMessage> {
  readonly id: string;
  readonly persistent = false;
  /** Messages dropped because the buffer was full. */
  dropped = 0;
  /** The tree entries, filled by the broker. */
  readonly entries: Subscription[] = [];
  private buffer: BrokerMessage[] = [];
  private head = 0;
  /** Bytes of the buffered messages (payload + ENTRY_BYTES each). */
  private bytes = 0;
  private waiter: ((r: IteratorResult<BrokerMessage>) => void) | null = null;
  private done = false;
  private readonly onAbort: (() => void) | null = null;

  constructor(
    private readonly owner: Owner,
    id: string,
    readonly filters: readonly string[],
    readonly qos: QoS,
    private readonly highWaterMark: number,
    private readonly signal: AbortSignal | undefined,
    private readonly highWaterMarkBytes = LOCAL_HWM_BYTES,
  ) {
    this.id = id;
    if (signal !== undefined) {
      this.onAbort = () => this.close();
      signal.addEventListener('abort', this.onAbort, { once: true });
    }
  }

  get online(): boolean {
    return !this.done;
  }

  /** Messages waiting to be read. */
  get size(): number {
    return this.buffer.length - this.head;
  }

  hasRoom(): boolean {
    return !this.done && this.size < this.highWaterMark && this.bytes < this.highWaterMarkBytes;
  }

  deliver(msg: Message, qos: QoS, retain: boolean, _subIds: readonly number[] | undefined, _group: SharedGroup | null): void {
    if (this.done) return;
    if (this.size >= this.highWaterMark || (this.bytes > 0 && this.bytes + msg.payload.length + ENTRY_BYTES > this.highWaterMarkBytes)) {
      this.dropped++;
      this.owner.countLocalDrop();
      return;
    }
    msg.own(); // it outlives the socket chunk it came in
    const m: BrokerMessage = {
      topic: msg.topic,
      payload: msg.payload,
      qos,
      retain,
      properties: msg.expiresAt === undefined ? msg.properties : { ...msg.properties, messageExpiryInterval: msg.remainingExpiry(Date.now()) },
    };
    const w = this.waiter;
    if (w !== null) {
      this.waiter = null;
      w({ value: m, done: false });
      return;
    }
    this.buffer.push(m);
    this.bytes += m.payload.length + ENTRY_BYTES;
  }

  next(): Promise<IteratorResult<BrokerMessage>> {
    if (this.head < this.buffer.length) {
      const value = this.buffer[this.head]!;
      this.buffer[this.head++] = undefined as unknown as BrokerMessage;
      this.bytes -= value.payload.length + ENTRY_BYTES;
      if (this.head === this.buffer.length) {
        this.buffer = [];
        this.head = 0;
      } else if (this.head > 1024 && this.head * 2 > this.buffer.length) {
        this.buffer = this.buffer.slice(this.head);
        this.head = 0;
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => {
      this.waiter = resolve;
    });
  }

  /** `break` out of for-await, or an explicit stop: unsubscribe. */
  return(): Promise<IteratorResult<BrokerMessage>> {
    this.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** Stop: unsubscribe; what is buffered is still read, then the iteration ends. */
  close(): void {
    if (this.done) return;
    this.done = true;
    if (this.signal !== undefined && this.onAbort !== null) this.signal.removeEventListener('abort', this.onAbort);
    this.owner.removeLocal(this);
    const w = this.waiter;
    if (w !== null) {
      this.waiter = null;
      w({ value: undefined, done: true });
    }
  }
}
