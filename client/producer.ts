// Producer: batches sends, resolves each only after the node has durably committed it,
// and reconnects with bounded backoff, resending unacknowledged messages with their
// original sequence ids (the node deduplicates them).
import type * as grpc from '@grpc/grpc-js';
import { ErrorCode, type ProduceResponse, type SendReceipt } from '../proto/index.ts';
import { context, SpanKind, SpanStatusCode, type Tracer } from '@opentelemetry/api';
import { TRACEPARENT, formatTraceparent } from '../observability/tracing.ts';
import { Backoff } from './backoff.ts';
import { chainSettlers, sleep, startStream, type BrokerStub, type OpenSettlers } from './connection.ts';
import { AdmqClientError } from './errors.ts';
import { encodeSendBatch, type DecodedReceipt, type SendItem } from './grpc-codec.ts';

export interface ProducerOptions {
  topic: string;
  /** Names the producer for deduplication; a restarted producer with the same name continues its sequence. */
  producerName?: string;
  /** Maximum messages in one batch. Default 1,000. 1 disables batching. */
  batchingMaxMessages?: number;
  /** Maximum payload bytes in one batch. Default 512 KiB. */
  batchingMaxBytes?: number;
  /**
   * How long a batch may wait for more messages while four batches are in flight, in ms.
   * Default 1. With fewer in flight a batch leaves at the end of the event-loop turn.
   */
  batchingMaxDelayMs?: number;
  /** Maximum messages sent but not yet acknowledged; send() fails with ADMQ_ERR_QUEUE_FULL beyond it. Default 50,000. */
  maxPendingMessages?: number;
  /** A send not acknowledged within this time fails with ADMQ_ERR_TIMEOUT. 0: never. Default 30,000 ms. */
  sendTimeoutMs?: number;
}

export interface OutgoingMessage {
  payload: Buffer | string | Uint8Array;
  key?: string;
  properties?: Record<string, string>;
  eventTimeMs?: number;
}

export interface MessageId {
  /** The topic (or partition) that stored the message. */
  topic: string;
  /** Local position in that topic's log; -1 for a duplicate whose original position is no longer known. */
  offset: number;
  sequenceId: number;
  /** True when the node had stored this sequence id before (a resend). */
  duplicate: boolean;
  /** Hybrid logical clock timestamp assigned by the node. */
  hlc: bigint;
  /** The region whose node acknowledged the send (with region failover, not always the client's current one). */
  region: string;
}

/** A message from send() until its receipt; it is also what the send batch encoder reads. */
interface PendingSend extends SendItem {
  bytes: number;
  enqueuedAtMs: number;
  resolve: (id: MessageId) => void;
  reject: (error: AdmqClientError) => void;
}

/**
 * Batches that may be in flight before new messages wait (for a receipt, a full batch or
 * batchingMaxDelayMs) instead of leaving at the end of the event-loop turn. The node's
 * group commit already merges batches that arrive during a commit, so a message need not
 * wait in the client for the previous batch's fsync: at 5,000 msg/s, waiting behind one
 * in-flight batch (the rule before) put the linger time, about a millisecond, into most
 * sends. Four, like Kafka's in-flight requests per connection, keeps a moderate rate
 * flowing at the cost of a few more, smaller requests; at full load batches fill anyway.
 */
const EAGER_BATCHES_IN_FLIGHT = 4;
/** Retry interval while the tenant is fenced for a planned failover. */
const FENCED_RETRY_MS = 200;
type State = 'connecting' | 'ready' | 'closing' | 'closed';

export interface ProducerContext {
  stub: BrokerStub;
  /** Regional cluster: the channel to the broker that owns `topic`, when known (else `stub`). */
  stubFor?(topic: string): BrokerStub;
  /** Regional cluster: the topic moved; `owner` (host:port) is where it went, when the broker said. */
  topicMoved?(topic: string, owner: string | undefined): void;
  messageBytesMax: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  operationTimeoutMs: number;
  /** With a tracer, every send gets a span whose context travels in the message (observability/tracing.ts). */
  tracer?: Tracer;
  /** Called while the node refuses the tenant's writes (planned failover): the client looks for the new home region. */
  onTenantFenced?: () => void;
}

export class Producer {
  readonly topic: string;
  #name: string;
  #state: State = 'connecting';
  /** Moving region gracefully: batches wait in #unsent while the in-flight ones are acked. */
  #holding = false;
  /** moveGracefully() waiting for the batches in flight to settle. */
  #moveWaiter: (() => void) | undefined;
  /** Region of the node on the current stream, as it said when the producer opened. */
  #streamRegion = '';
  #stream: grpc.ClientDuplexStream<unknown, unknown> | undefined;
  #lastSequenceId = -1;
  #batch: PendingSend[] = [];
  #batchBytes = 0;
  #lingerTimer: NodeJS.Timeout | undefined;
  #microtaskFlush = false;
  #requestId = 0;
  readonly #inflight = new Map<number, PendingSend[]>();
  #unsent: PendingSend[][] = [];
  #pendingCount = 0;
  readonly #options: Required<Omit<ProducerOptions, 'producerName'>>;
  readonly #abort = new AbortController();
  /** Cuts a reconnect backoff short when the client moves region. */
  #wake: AbortController | undefined;
  readonly #backoff: Backoff;
  #timeoutTimer: NodeJS.Timeout | undefined;
  #drainWaiters: Array<() => void> = [];
  #opened: OpenSettlers | undefined;
  /** The owner the last ADMQ_ERR_TOPIC_MOVED named (regional cluster). */
  #movedTo: string | undefined;

  constructor(
    private readonly ctx: ProducerContext,
    options: ProducerOptions,
  ) {
    this.topic = options.topic;
    this.#name = options.producerName ?? '';
    this.#options = {
      topic: options.topic,
      batchingMaxMessages: positive('batchingMaxMessages', options.batchingMaxMessages ?? 1000),
      batchingMaxBytes: positive('batchingMaxBytes', options.batchingMaxBytes ?? 512 * 1024),
      batchingMaxDelayMs: nonNegative('batchingMaxDelayMs', options.batchingMaxDelayMs ?? 1),
      maxPendingMessages: positive('maxPendingMessages', options.maxPendingMessages ?? 50_000),
      sendTimeoutMs: nonNegative('sendTimeoutMs', options.sendTimeoutMs ?? 30_000),
    };
    this.#backoff = new Backoff(ctx.backoffInitialMs, ctx.backoffMaxMs);
  }

  get producerName(): string {
    return this.#name;
  }

  get lastSequenceId(): number {
    return this.#lastSequenceId;
  }

  get pendingCount(): number {
    return this.#pendingCount;
  }

  /** Opens the stream; resolves when the node has accepted the producer. */
  async open(): Promise<this> {
    await this.#connect();
    if (this.#options.sendTimeoutMs > 0) {
      this.#timeoutTimer = setInterval(() => this.#expire(), Math.min(1000, this.#options.sendTimeoutMs));
      this.#timeoutTimer.unref();
    }
    return this;
  }

  #connect(): Promise<void> {
    // A reconnect while an open() still waits settles that open() too.
    const previous = this.#opened;
    return new Promise((resolve, reject) => {
      const opened = (this.#opened = chainSettlers(previous, resolve, reject));
      const stream = startStream(() => this.ctx.stubFor?.(this.topic) ?? this.ctx.stub, 'Produce', opened);
      if (!stream) {
        this.#opened = undefined;
        return;
      }
      this.#stream = stream;
      stream.on('data', (response: ProduceResponse) => this.#onResponse(stream, response));
      stream.on('error', (error: grpc.ServiceError) => this.#onStreamEnd(stream, AdmqClientError.fromServiceError(error)));
      stream.on('end', () => this.#onStreamEnd(stream, new AdmqClientError(ErrorCode.Connection, 'the node closed the produce stream')));
      stream.write({ open: { topic: this.topic, producerName: this.#name } });
    });
  }

  #onResponse(stream: grpc.ClientDuplexStream<unknown, unknown>, response: ProduceResponse | { response: 'receipt'; receipt: DecodedReceipt }): void {
    if (stream !== this.#stream) return;
    switch (response.response) {
      case 'opened': {
        const opened = response.opened!;
        this.#name = opened.producerName;
        this.#streamRegion = opened.region ?? '';
        const stored = Number(opened.lastSequenceId);
        if (stored > this.#lastSequenceId) this.#lastSequenceId = stored;
        this.#state = this.#state === 'closing' ? 'closing' : 'ready';
        this.#backoff.reset();
        // Resend everything not acknowledged, oldest first, with the original sequence ids.
        const resend = [...this.#inflight.values(), ...this.#unsent];
        this.#inflight.clear();
        this.#unsent = [];
        for (const batch of resend) this.#write(batch);
        this.#opened?.resolve();
        this.#opened = undefined;
        return;
      }
      case 'receipt':
        this.#onReceipt(response.receipt!);
        return;
      case 'error': {
        const error = response.error!;
        const requestId = Number(error.requestId);
        const batch = this.#inflight.get(requestId);
        if (!batch) return;
        this.#inflight.delete(requestId);
        const typed = AdmqClientError.fromWire(error);
        for (const p of batch) p.reject(typed);
        this.#settled(batch.length);
        return;
      }
    }
  }

  /** Receipts usually come from grpc-codec.ts (HLC as a bigint), else from proto-loader (a string). */
  #onReceipt(receipt: SendReceipt | DecodedReceipt): void {
    const requestId = Number(receipt.requestId);
    const batch = this.#inflight.get(requestId);
    if (!batch) return;
    this.#inflight.delete(requestId);
    batch.forEach((p, i) => {
      const r = receipt.results[i];
      if (!r) {
        p.reject(new AdmqClientError(ErrorCode.Internal, `receipt ${requestId} lacks result ${i}`));
        return;
      }
      p.resolve({ topic: this.topic, offset: Number(r.offset), sequenceId: p.sequenceId, duplicate: r.duplicate, hlc: BigInt(r.hlc), region: this.#streamRegion });
    });
    this.#settled(batch.length);
    if (this.#inflight.size < EAGER_BATCHES_IN_FLIGHT && this.#batch.length > 0) this.#flushBatch();
  }

  #settled(count: number): void {
    this.#pendingCount -= count;
    if (this.#inflight.size === 0) this.#wakeMoveWaiter();
    if (this.#pendingCount === 0 && this.#batch.length === 0) {
      const waiters = this.#drainWaiters;
      this.#drainWaiters = [];
      for (const w of waiters) w();
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
    this.#wakeMoveWaiter();
    if (this.#state === 'closed') return;
    if (this.#opened && !error.retriable) {
      this.#opened.reject(error);
      this.#opened = undefined;
      this.#fail(error);
      return;
    }
    if (!error.retriable) {
      this.#fail(error);
      return;
    }
    this.#state = this.#state === 'closing' ? 'closing' : 'connecting';
    void this.#reconnectLoop(error);
  }

  async #reconnectLoop(error?: AdmqClientError): Promise<void> {
    let fenced = error?.code === ErrorCode.TenantFenced;
    while (this.#state === 'connecting' || this.#state === 'closing') {
      // A fence lasts as long as a planned failover's drain: retry often rather than back
      // off, and let the client look for the tenant's new home region meanwhile.
      if (fenced) this.ctx.onTenantFenced?.();
      await sleep(fenced ? Math.min(FENCED_RETRY_MS, this.#backoff.next()) : this.#backoff.next(), AbortSignal.any([this.#abort.signal, (this.#wake = new AbortController()).signal]));
      if (this.#abort.signal.aborted) return;
      try {
        await this.#connect();
        // The fence is over: the tenant's home has probably moved; look again.
        if (fenced) this.ctx.onTenantFenced?.();
        return;
      } catch (error) {
        const typed = error as AdmqClientError;
        if (!typed.retriable) {
          this.#fail(typed);
          return;
        }
        fenced = typed.code === ErrorCode.TenantFenced;
      }
    }
  }

  #fail(error: AdmqClientError): void {
    this.#state = 'closed';
    this.#abort.abort();
    const all = [...this.#inflight.values(), ...this.#unsent, this.#batch].flat();
    this.#inflight.clear();
    this.#unsent = [];
    this.#batch = [];
    for (const p of all) p.reject(error);
    this.#settled(all.length);
    if (this.#timeoutTimer) clearInterval(this.#timeoutTimer);
  }

  #expire(): void {
    const now = Date.now();
    const limit = this.#options.sendTimeoutMs;
    for (const [requestId, batch] of this.#inflight) {
      const first = batch[0];
      if (first && now - first.enqueuedAtMs > limit) {
        this.#inflight.delete(requestId);
        const error = new AdmqClientError(ErrorCode.Timeout, `send not acknowledged within sendTimeoutMs (${limit} ms)`);
        for (const p of batch) p.reject(error);
        this.#settled(batch.length);
      }
    }
    this.#unsent = this.#unsent.filter((batch) => {
      const first = batch[0];
      if (!first || now - first.enqueuedAtMs <= limit) return true;
      const error = new AdmqClientError(ErrorCode.Timeout, `send not acknowledged within sendTimeoutMs (${limit} ms); the node is unreachable`);
      for (const p of batch) p.reject(error);
      this.#settled(batch.length);
      return false;
    });
  }

  /** Queues a message; resolves with its id once the node has durably stored it. */
  send(message: OutgoingMessage): Promise<MessageId> {
    if (this.#state === 'closed' || this.#state === 'closing') {
      return Promise.reject(new AdmqClientError(ErrorCode.Closed, `producer ${this.#name} is closed`));
    }
    if (this.#pendingCount >= this.#options.maxPendingMessages) {
      return Promise.reject(
        new AdmqClientError(ErrorCode.QueueFull, `producer has ${this.#pendingCount} unacknowledged messages (maxPendingMessages)`),
      );
    }
    const raw = message.payload;
    const payload = typeof raw === 'string' ? Buffer.from(raw) : Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    let size = payload.length + (message.key ? Buffer.byteLength(message.key) : 0);
    for (const name in message.properties ?? {}) size += name.length + (message.properties?.[name]?.length ?? 0);
    if (size > this.ctx.messageBytesMax) {
      return Promise.reject(
        new AdmqClientError(ErrorCode.MessageTooLarge, `message of ${size} bytes exceeds messageBytesMax (${this.ctx.messageBytesMax} bytes)`),
      );
    }
    const eventTimeMs = message.eventTimeMs ?? 0;
    if (!Number.isSafeInteger(eventTimeMs) || eventTimeMs < 0) {
      return Promise.reject(new AdmqClientError(ErrorCode.BadRequest, `eventTimeMs must be a non-negative integer below 2^53; got ${eventTimeMs}`));
    }
    const sequenceId = ++this.#lastSequenceId;
    // With a tracer: a send span, whose context travels in the message (traceparent).
    const span = this.ctx.tracer?.startSpan(`send ${this.topic}`, { kind: SpanKind.PRODUCER, attributes: { 'messaging.system': 'admq', 'messaging.destination.name': this.topic } }, context.active());
    const properties = span ? { ...message.properties, [TRACEPARENT]: formatTraceparent(span.spanContext()) } : message.properties;
    const sent = new Promise<MessageId>((resolve, reject) => {
      if (this.#batch.length > 0 && this.#batchBytes + payload.length > this.#options.batchingMaxBytes) this.#flushBatch();
      this.#batch.push({
        sequenceId,
        payload,
        key: message.key,
        properties,
        eventTimeMs,
        bytes: payload.length,
        enqueuedAtMs: Date.now(),
        resolve,
        reject,
      });
      this.#batchBytes += payload.length;
      this.#pendingCount++;
      if (this.#batch.length >= this.#options.batchingMaxMessages || this.#batchBytes >= this.#options.batchingMaxBytes) {
        this.#flushBatch();
      } else if (this.#inflight.size < EAGER_BATCHES_IN_FLIGHT && !this.#microtaskFlush) {
        // Few batches in flight: waiting would only add latency. Send what this turn of
        // the event loop queued. Under load EAGER_BATCHES_IN_FLIGHT batches are in flight,
        // and messages gather until one returns, the batch fills, or the linger time passes.
        this.#microtaskFlush = true;
        queueMicrotask(() => {
          this.#microtaskFlush = false;
          if (this.#inflight.size < EAGER_BATCHES_IN_FLIGHT) this.#flushBatch();
          else this.#armLinger();
        });
      } else {
        this.#armLinger();
      }
    });
    if (!span) return sent;
    return sent.then(
      (id) => {
        span.setAttribute('messaging.message.id', `${id.region}:${id.offset}`);
        span.end();
        return id;
      },
      (error: AdmqClientError) => {
        span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
        span.end();
        throw error;
      },
    );
  }

  #armLinger(): void {
    if (!this.#lingerTimer && this.#batch.length > 0) {
      this.#lingerTimer = setTimeout(() => this.#flushBatch(), this.#options.batchingMaxDelayMs);
    }
  }

  /** Sends the current batch now. */
  flush(): void {
    this.#flushBatch();
  }

  #flushBatch(): void {
    if (this.#lingerTimer) clearTimeout(this.#lingerTimer);
    this.#lingerTimer = undefined;
    if (this.#batch.length === 0) return;
    const batch = this.#batch;
    this.#batch = [];
    this.#batchBytes = 0;
    if ((this.#state === 'ready' || this.#state === 'closing') && this.#stream && !this.#opened && !this.#holding) this.#write(batch);
    else this.#unsent.push(batch);
  }

  #write(batch: PendingSend[]): void {
    const stream = this.#stream;
    if (!stream) {
      this.#unsent.push(batch);
      return;
    }
    const requestId = ++this.#requestId;
    this.#inflight.set(requestId, batch);
    // Encoded here (grpc-codec.ts); the stub's serializer passes the Buffer through.
    stream.write(encodeSendBatch(requestId, batch));
  }

  /** Waits until every queued message is acknowledged (or failed). */
  async drain(): Promise<void> {
    this.#flushBatch();
    if (this.#pendingCount === 0) return;
    await new Promise<void>((resolve) => this.#drainWaiters.push(resolve));
  }

  /** Flushes, waits for outstanding acknowledgements, and closes the stream. Idempotent. */
  /**
   * Drops the current stream and reconnects through the context's stub, which may now
   * point at another region; unacknowledged sends go again with the same sequence ids.
   */
  /**
   * Moves to the client's new region when the old one is still up (the tenant's home moved,
   * or the client returns home): new batches wait while the ones in flight are
   * acknowledged, at most `timeoutMs`, and only then does the producer reconnect. Resending
   * in the new region a message the old one had stored but not yet replicated would store
   * it twice under two origins; waiting for its ack avoids that.
   */
  async moveGracefully(timeoutMs = 5000): Promise<void> {
    const stream = this.#stream;
    if (!stream || this.#state !== 'ready') {
      this.reconnect();
      return;
    }
    this.#holding = true;
    try {
      // Woken when the last batch in flight settles or the stream ends; bounded by timeoutMs.
      if (this.#inflight.size > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, timeoutMs);
          this.#moveWaiter = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    } finally {
      this.#moveWaiter = undefined;
      this.#holding = false;
    }
    if (this.#stream === stream) this.reconnect();
  }

  #wakeMoveWaiter(): void {
    const wake = this.#moveWaiter;
    this.#moveWaiter = undefined;
    wake?.();
  }

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

  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    if (this.#state !== 'closing') {
      this.#state = 'closing';
      await this.drain();
    }
    this.#state = 'closed';
    this.#abort.abort();
    if (this.#timeoutTimer) clearInterval(this.#timeoutTimer);
    this.#stream?.end();
    this.#stream = undefined;
  }
}

function positive(field: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new AdmqClientError(ErrorCode.Config, `${field} must be a positive integer; got ${value}`);
  return value;
}

function nonNegative(field: string, value: number): number {
  if (!Number.isInteger(value) || value < 0) throw new AdmqClientError(ErrorCode.Config, `${field} must be a non-negative integer; got ${value}`);
  return value;
}

export { positive, nonNegative };
