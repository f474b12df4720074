// Producers and consumers over the partitions of a partitioned topic. A key always goes
// to the same partition (so per-key order holds); messages without a key are spread
// round-robin.
import { ErrorCode } from '../proto/index.ts';
import { AdmqClientError } from './errors.ts';
import { Waiters } from './waiters.ts';
import type { AdmqConsumer, Consumer, Message } from './consumer.ts';
import type { MessageId, OutgoingMessage, Producer } from './producer.ts';

function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

export function partitionForKey(key: string, partitions: number): number {
  return fnv1a(key) % partitions;
}

export class PartitionedProducer {
  #next = 0;
  constructor(
    readonly topic: string,
    readonly partitions: Producer[],
  ) {}

  send(message: OutgoingMessage): Promise<MessageId> {
    const index = message.key !== undefined ? partitionForKey(message.key, this.partitions.length) : this.#next++ % this.partitions.length;
    return (this.partitions[index] as Producer).send(message);
  }

  flush(): void {
    for (const p of this.partitions) p.flush();
  }

  async drain(): Promise<void> {
    await Promise.all(this.partitions.map((p) => p.drain()));
  }

  async close(): Promise<void> {
    await Promise.all(this.partitions.map((p) => p.close()));
  }
}

/**
 * One consumer over every partition. Messages stay in each partition consumer's buffer
 * until the application receives them, so each partition's flow control
 * (receiverQueueSize) holds; receive() takes from the partitions in turn.
 */
export class PartitionedConsumer implements AdmqConsumer {
  readonly #waiters = new Waiters();
  #closed = false;
  #next = 0;
  readonly #byTopic: Map<string, Consumer>;

  constructor(
    readonly topic: string,
    readonly partitions: Consumer[],
  ) {
    this.#byTopic = new Map(partitions.map((c) => [c.topic, c]));
    for (const c of partitions) c.onBuffered = () => this.#serveWaiters();
  }

  /** A buffered message from the next partition that has one, round-robin; throws a partition's failure. */
  #takeAny(): Message | undefined {
    const count = this.partitions.length;
    for (let i = 0; i < count; i++) {
      const index = (this.#next + i) % count;
      const message = (this.partitions[index] as Consumer).takeBuffered();
      if (message) {
        this.#next = (index + 1) % count;
        return message;
      }
    }
    return undefined;
  }

  #serveWaiters(): void {
    while (this.#waiters.length > 0) {
      let message: Message | undefined;
      try {
        message = this.#takeAny();
      } catch (error) {
        this.#waiters.rejectNext(error as AdmqClientError);
        continue;
      }
      if (!message) return;
      this.#waiters.resolveNext(message);
    }
  }

  receive(timeoutMs?: number): Promise<Message> {
    if (this.#closed) return Promise.reject(new AdmqClientError(ErrorCode.Closed, 'consumer is closed'));
    try {
      const next = this.#takeAny();
      if (next) return Promise.resolve(next);
    } catch (error) {
      return Promise.reject(error as AdmqClientError);
    }
    return this.#waiters.wait(timeoutMs);
  }

  #owner(message: Message): Consumer {
    const owner = this.#byTopic.get(message.topic);
    if (!owner) throw new AdmqClientError(ErrorCode.BadRequest, `message from ${message.topic} does not belong to ${this.topic}`);
    return owner;
  }

  ack(message: Message): void {
    this.#owner(message).ack(message);
  }

  ackCumulative(message: Message): void {
    this.#owner(message).ackCumulative(message);
  }

  nack(message: Message): void {
    this.#owner(message).nack(message);
  }

  redeliverUnacknowledged(): void {
    for (const c of this.partitions) c.redeliverUnacknowledged();
  }

  /** Seeking by publish time applies to every partition; by offset is refused (offsets are per partition). */
  async seek(target: { offset: number } | { publishTimeMs: number }): Promise<void> {
    if ('offset' in target) {
      throw new AdmqClientError(ErrorCode.BadRequest, 'seek by offset needs a single partition; subscribe to a partition topic instead');
    }
    await Promise.all(this.partitions.map((c) => c.seek(target)));
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Message> {
    while (!this.#closed) {
      try {
        yield await this.receive();
      } catch (error) {
        if ((error as AdmqClientError).code === ErrorCode.Closed) return;
        throw error;
      }
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#waiters.rejectAll(new AdmqClientError(ErrorCode.Closed, 'consumer is closed'));
    await Promise.all(this.partitions.map((c) => c.close()));
  }
}
