// Consumer: receives within its permits (flow control), acks individually or
// cumulatively, negatively acks, seeks, and resubscribes with bounded backoff when the
// stream breaks. After a reconnect the node redelivers whatever was not acknowledged.
import type * as grpc from '@grpc/grpc-js';
import {
  ErrorCode,
  type ConsumeResponse,
  type InitialPositionName,
  type SubscriptionTypeName,
  type WireMessage,
} from '../proto/index.ts';
import { SpanKind, startMessageSpan, type Tracer } from '../observability/tracing.ts';
import { Backoff } from './backoff.ts';
import { chainSettlers, sleep, startStream, type BrokerStub, type OpenSettlers } from './connection.ts';
import { AdmqClientError } from './errors.ts';
import { Waiters } from './waiters.ts';
import { nonNegative, positive } from './producer.ts';

export type SubscriptionType = 'exclusive' | 'shared' | 'failover' | 'key_shared';

export interface ConsumerOptions {
  topic: string;
  subscription: string;
  /** Default 'exclusive'. */
  subscriptionType?: SubscriptionType;
  consumerName?: string;
  /** Where a new subscription starts. Default 'latest'. */
  initialPosition?: 'earliest' | 'latest';
  /** Messages buffered ahead of receive(); the permits granted to the node. Default 1,000. */
  receiverQueueSize?: number;
  /** Unacknowledged messages are redelivered after this time. 0 (default) disables it. */
  ackTimeoutMs?: number;
  /** Delay before a negatively acknowledged message comes back. Default: the node's (1,000 ms). */
  negativeAckRedeliveryDelayMs?: number;
  /** Failover subscriptions: lower is preferred. Default 0. */
  priorityLevel?: number;
  /**
   * 'arrival' (default): this region's log order. 'hlc': (HLC, origin) order, the same
   * sequence in every region of the replication set, at the cost of about one replication
   * delay. Applies to the whole subscription; set it while no consumer is attached.
   */
  deliveryOrder?: 'arrival' | 'hlc';
  /** Keyed topics: receive only each key's current value, skipping superseded versions. Default false. */
  readCompacted?: boolean;
}

export interface Message {
  /** Topic (or partition) the message came from; acks go back to it. */
  topic: string;
  offset: number;
  originRegion: string;
  originPosition: number;
  hlc: bigint;
  producerName: string;
  sequenceId: number;
  publishTimeMs: number;
  eventTimeMs: number;
  key: string | undefined;
  properties: Record<string, string>;
  payload: Buffer;
  redeliveryCount: number;
}

const WIRE_TYPE: Record<SubscriptionType, SubscriptionTypeName> = {
  exclusive: 'EXCLUSIVE',
  shared: 'SHARED',
  failover: 'FAILOVER',
  key_shared: 'KEY_SHARED',
};

export interface ConsumerContext {
  stub: BrokerStub;
  /** Regional cluster: the channel to the broker that owns `topic`, when known (else `stub`). */
  stubFor?(topic: string): BrokerStub;
  /** Regional cluster: the topic moved; `owner` (host:port) is where it went, when the broker said. */
  topicMoved?(topic: string, owner: string | undefined): void;
  backoffInitialMs: number;
  backoffMaxMs: number;
  operationTimeoutMs: number;
  /** With a tracer, each received traced message gets a receive span. */
  tracer?: Tracer;
}

type State = 'connecting' | 'ready' | 'closed';

/** What every consumer offers, whether on one topic or on the partitions of one. */
export interface AdmqConsumer extends AsyncIterable<Message> {
  receive(timeoutMs?: number): Promise<Message>;
  ack(message: Message): void;
  ackCumulative(message: Message): void;
  nack(message: Message): void;
  redeliverUnacknowledged(): void;
  seek(target: { offset: number } | { publishTimeMs: number }): Promise<void>;
  close(): Promise<void>;
}

export class Consumer implements AdmqConsumer {
  readonly topic: string;
  readonly subscription: string;
  #state: State = 'connecting';
  #stream: grpc.ClientDuplexStream<unknown, unknown> | undefined;
  #queue: Message[] = [];
  readonly #waiters = new Waiters();
  #consumedSinceFlow = 0;
  #requestId = 0;
  readonly #seeks = new Map<number, { resolve: () => void; reject: (e: AdmqClientError) => void }>();
  readonly #options: Required<Omit<ConsumerOptions, 'consumerName' | 'negativeAckRedeliveryDelayMs'>> & { consumerName: string; negativeAckRedeliveryDelayMs: number };
  readonly #abort = new AbortController();
  /** Cuts a reconnect backoff short when the client moves region. */
  #wake: AbortController | undefined;
  readonly #backoff: Backoff;
  #opened: OpenSettlers | undefined;
  /** The owner the last ADMQ_ERR_TOPIC_MOVED named (regional cluster). */
  #movedTo: string | undefined;
  #active = true;
  /** Server-side errors not tied to a request (e.g. a checksum failure), surfaced on receive(). */
  #failure: AdmqClientError | undefined;
  onActiveChange: ((active: boolean) => void) | undefined;
  /** Called when a message (or a failure) is buffered with no receive() waiting; PartitionedConsumer uses it. */
  onBuffered: (() => void) | undefined;

  constructor(
    private readonly ctx: ConsumerContext,
    options: ConsumerOptions,
  ) {
    this.topic = options.topic;
    this.subscription = options.subscription;
    const type = options.subscriptionType ?? 'exclusive';
    if (!(type in WIRE_TYPE)) throw new AdmqClientError(ErrorCode.Config, `subscriptionType must be one of ${Object.keys(WIRE_TYPE).join(', ')}; got ${type}`);
    this.#options = {
      topic: options.topic,
      subscription: options.subscription,
      subscriptionType: type,
      consumerName: options.consumerName ?? '',
      initialPosition: options.initialPosition ?? 'latest',
      receiverQueueSize: positive('receiverQueueSize', options.receiverQueueSize ?? 1000),
      ackTimeoutMs: nonNegative('ackTimeoutMs', options.ackTimeoutMs ?? 0),
      negativeAckRedeliveryDelayMs: nonNegative('negativeAckRedeliveryDelayMs', options.negativeAckRedeliveryDelayMs ?? 0),
      priorityLevel: options.priorityLevel ?? 0,
      deliveryOrder: options.deliveryOrder ?? 'arrival',
      readCompacted: options.readCompacted ?? false,
    };
    this.#backoff = new Backoff(ctx.backoffInitialMs, ctx.backoffMaxMs);
  }

  /** Failover subscriptions: whether this consumer is the active one. */
  get isActive(): boolean {
    return this.#active;
  }

  async open(): Promise<this> {
    await this.#connect();
    return this;
  }

  #connect(): Promise<void> {
    // A reconnect while an open() still waits settles that open() too.
    const previous = this.#opened;
    return new Promise((resolve, reject) => {
      const opened = (this.#opened = chainSettlers(previous, resolve, reject));
      const stream = startStream(() => this.ctx.stubFor?.(this.topic) ?? this.ctx.stub, 'Consume', opened);
      if (!stream) {
        this.#opened = undefined;
        return;
      }
      this.#stream = stream;
      stream.on('data', (response: ConsumeResponse) => this.#onResponse(stream, response));
      stream.on('error', (error: grpc.ServiceError) => this.#onStreamEnd(stream, AdmqClientError.fromServiceError(error)));
      stream.on('end', () => this.#onStreamEnd(stream, new AdmqClientError(ErrorCode.Connection, 'the node closed the consume stream')));
      const initialPosition: InitialPositionName = this.#options.initialPosition === 'earliest' ? 'EARLIEST' : 'LATEST';
      stream.write({
        subscribe: {
          topic: this.topic,
          subscription: this.subscription,
          type: WIRE_TYPE[this.#options.subscriptionType],
          consumerName: this.#options.consumerName,
          initialPosition,
          ackTimeoutMs: this.#options.ackTimeoutMs,
          negativeAckRedeliveryDelayMs: this.#options.negativeAckRedeliveryDelayMs,
          priorityLevel: this.#options.priorityLevel,
          deliveryOrder: this.#options.deliveryOrder === 'hlc' ? 'HLC' : 'ARRIVAL',
          readCompacted: this.#options.readCompacted,
        },
      });
    });
  }

  #onResponse(stream: grpc.ClientDuplexStream<unknown, unknown>, response: ConsumeResponse): void {
    if (stream !== this.#stream) return;
    switch (response.response) {
      case 'subscribed':
        this.#state = 'ready';
        this.#backoff.reset();
        // Messages buffered from the old stream will be redelivered: drop them.
        this.#queue = [];
        this.#consumedSinceFlow = 0;
        stream.write({ flow: { permits: this.#options.receiverQueueSize } });
        this.#opened?.resolve();
        this.#opened = undefined;
        return;
      case 'messages':
        for (const wire of response.messages?.messages ?? []) this.#push(toMessage(this.topic, wire));
        return;
      case 'seekDone': {
        this.#queue = [];
        this.#consumedSinceFlow = 0;
        stream.write({ flow: { permits: this.#options.receiverQueueSize } });
        const id = Number(response.seekDone?.requestId ?? 0);
        const pending = this.#seeks.get(id);
        this.#seeks.delete(id);
        pending?.resolve();
        return;
      }
      case 'activeChange':
        this.#active = response.activeChange?.isActive ?? false;
        this.onActiveChange?.(this.#active);
        return;
      case 'error': {
        const error = AdmqClientError.fromWire(response.error!);
        if (!this.#waiters.rejectNext(error)) {
          this.#failure = error;
          this.onBuffered?.();
        }
        return;
      }
    }
  }

  #push(message: Message): void {
    if (this.#waiters.length > 0) {
      this.#consumed();
      this.#waiters.resolveNext(message);
    } else {
      this.#queue.push(message);
      this.onBuffered?.();
    }
  }

  /** Grants permits back in half-queue steps, as Pulsar clients do, to keep the pipe full without chattiness. */
  #consumed(): void {
    this.#consumedSinceFlow++;
    if (this.#consumedSinceFlow >= Math.max(1, Math.floor(this.#options.receiverQueueSize / 2))) {
      this.#stream?.write({ flow: { permits: this.#consumedSinceFlow } });
      this.#consumedSinceFlow = 0;
    }
  }

  #onStreamEnd(stream: grpc.ClientDuplexStream<unknown, unknown>, error: AdmqClientError): void {
    if (stream !== this.#stream) return;
    this.#stream = undefined;
    if (error.code === ErrorCode.TopicMoved) {
      const owner = /owner=(\S+)/.exec(error.message)?.[1];
      // A new owner named: go there at once. Otherwise (the topic cannot be served right
      // now) keep backing off, so that clients do not hammer the cluster.
      if (owner !== undefined && owner !== this.#movedTo) this.#backoff.reset();
      this.#movedTo = owner;
      this.ctx.topicMoved?.(this.topic, owner);
    } else if (error.code === ErrorCode.Connection) {
      // The owner we were sent to is gone: ask through the service URL again.
      this.ctx.topicMoved?.(this.topic, undefined);
    }
    if (this.#state === 'closed') return;
    if (!error.retriable) {
      if (this.#opened) {
        this.#opened.reject(error);
        this.#opened = undefined;
      }
      this.#fail(error);
      return;
    }
    this.#state = 'connecting';
    void this.#reconnectLoop();
  }

  async #reconnectLoop(): Promise<void> {
    while (this.#state === 'connecting') {
      await sleep(this.#backoff.next(), AbortSignal.any([this.#abort.signal, (this.#wake = new AbortController()).signal]));
      if (this.#abort.signal.aborted) return;
      try {
        await this.#connect();
        return;
      } catch (error) {
        if (!(error as AdmqClientError).retriable) {
          this.#fail(error as AdmqClientError);
          return;
        }
      }
    }
  }

  #fail(error: AdmqClientError): void {
    this.#state = 'closed';
    this.#abort.abort();
    if (error.code !== ErrorCode.Closed && this.#waiters.length === 0) {
      // Nobody is waiting: keep the cause for the next receive() rather than a bare "closed".
      this.#failure ??= error;
      this.onBuffered?.();
    }
    this.#waiters.rejectAll(error);
    for (const s of this.#seeks.values()) s.reject(error);
    this.#seeks.clear();
  }

  /**
   * Takes a buffered message without waiting, or undefined; throws a pending failure.
   * Taking a message counts toward the permits granted back to the node, as receive() does.
   */
  takeBuffered(): Message | undefined {
    if (this.#failure) {
      const failure = this.#failure;
      this.#failure = undefined;
      throw failure;
    }
    const next = this.#queue.shift();
    if (next) this.#consumed();
    return next;
  }

  /** Resolves with the next message; rejects with ADMQ_ERR_TIMEOUT after timeoutMs if given. */
  receive(timeoutMs?: number): Promise<Message> {
    if (this.#failure) {
      const failure = this.#failure;
      this.#failure = undefined;
      return Promise.reject(failure);
    }
    const next = this.#queue.shift();
    if (next) {
      this.#consumed();
      this.#traceReceive(next);
      return Promise.resolve(next);
    }
    if (this.#state === 'closed') return Promise.reject(new AdmqClientError(ErrorCode.Closed, 'consumer is closed'));
    const waiting = this.#waiters.wait(timeoutMs);
    return this.ctx.tracer ? waiting.then((m) => (this.#traceReceive(m), m)) : waiting;
  }

  /** With a tracer: a receive span continuing the producer's trace (its traceparent). */
  #traceReceive(message: Message): void {
    if (!this.ctx.tracer) return;
    const span = startMessageSpan(this.ctx.tracer, `receive ${this.topic}`, message.properties, SpanKind.CONSUMER, {
      'messaging.destination.name': this.topic,
      'messaging.consumer.group.name': this.subscription,
      'messaging.message.id': `${message.originRegion}:${message.originPosition}`,
    });
    span?.end();
  }

  ack(message: Message): void {
    this.#stream?.write({ ack: { type: 'INDIVIDUAL', offsets: [message.offset] } });
  }

  /** Acknowledges every message up to and including this one (exclusive and failover only). */
  ackCumulative(message: Message): void {
    this.#stream?.write({ ack: { type: 'CUMULATIVE', offsets: [message.offset] } });
  }

  nack(message: Message): void {
    this.#stream?.write({ nack: { offsets: [message.offset] } });
  }

  /**
   * Every unacknowledged message of this consumer comes again, including those still
   * buffered here. The buffered ones are dropped, so their permits go back to the node
   * (it spent them delivering them), or it could not redeliver anything.
   */
  redeliverUnacknowledged(): void {
    const stream = this.#stream;
    const permits = this.#queue.length + this.#consumedSinceFlow;
    this.#queue = [];
    this.#consumedSinceFlow = 0;
    if (!stream) return;
    stream.write({ redeliverUnacked: {} });
    if (permits > 0) stream.write({ flow: { permits } });
  }

  /** Moves the subscription; the next message received is the target. */
  seek(target: { offset: number } | { publishTimeMs: number }): Promise<void> {
    const stream = this.#stream;
    if (!stream || this.#state !== 'ready') return Promise.reject(new AdmqClientError(ErrorCode.Connection, 'consumer is not connected'));
    const requestId = ++this.#requestId;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#seeks.delete(requestId);
        reject(new AdmqClientError(ErrorCode.Timeout, `seek not confirmed within ${this.ctx.operationTimeoutMs} ms`));
      }, this.ctx.operationTimeoutMs);
      this.#seeks.set(requestId, {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      stream.write({ seek: 'offset' in target ? { offset: target.offset, requestId } : { publishTimeMs: target.publishTimeMs, requestId } });
    });
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Message> {
    while (this.#state !== 'closed') {
      try {
        yield await this.receive();
      } catch (error) {
        if ((error as AdmqClientError).code === ErrorCode.Closed) return;
        throw error;
      }
    }
  }

  /** Drops the current stream and resubscribes through the context's stub, which may now point at another region. */
  reconnect(): void {
    const stream = this.#stream;
    if (!stream) {
      // Between attempts (the old region is down): try the new one now, not after the backoff.
      this.#backoff.reset();
      this.#wake?.abort();
      return;
    }
    if (this.#state === 'closed') return;
    this.#onStreamEnd(stream, new AdmqClientError(ErrorCode.Connection, 'moving to another region'));
    stream.cancel();
  }

  /** Idempotent. Unacknowledged messages go back to the subscription. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#fail(new AdmqClientError(ErrorCode.Closed, 'consumer is closed'));
    const stream = this.#stream;
    this.#stream = undefined;
    if (stream) {
      await new Promise<void>((resolve) => {
        stream.once('end', resolve);
        stream.once('error', () => resolve());
        stream.once('close', resolve);
        stream.end();
        setTimeout(resolve, 2000).unref();
      });
    }
  }
}

function toMessage(topic: string, w: WireMessage): Message {
  return {
    topic,
    offset: Number(w.offset),
    originRegion: w.originRegion,
    originPosition: Number(w.originPosition),
    hlc: BigInt(w.hlc),
    producerName: w.producerName,
    sequenceId: Number(w.sequenceId),
    publishTimeMs: Number(w.publishTimeMs),
    eventTimeMs: Number(w.eventTimeMs),
    key: w.hasKey ? w.key : undefined,
    properties: w.properties ?? {},
    payload: w.payload,
    redeliveryCount: w.redeliveryCount,
  };
}

