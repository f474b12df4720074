// The client-facing gRPC API (proto/admq.proto): produce and consume streams.
//
// Every failure a client can cause ends in a typed error: on the stream as an `Error`
// message when the stream can go on, or as the call's status with `admq-error-code` in
// the trailers when it cannot. Malformed request bytes are caught in the deserializer,
// so a bad frame is answered with ADMQ_ERR_BAD_REQUEST instead of an untyped INTERNAL.
import * as grpc from '@grpc/grpc-js';
import {
  ERROR_CODE_METADATA_KEY,
  ErrorCode,
  loadPackageDefinition,
  type ConsumeRequest,
  type ConsumeResponse,
  type OutboundMessage,
  type ProduceRequest,
  type ProduceResponse,
  type TopicMetadataRequest,
  type WireMessage,
} from '../proto/index.ts';
import type { Broker } from './broker/broker.ts';
import { subscriptionTypeFromWire, type ConsumerSink, type Delivery, type Subscription } from './broker/subscription.ts';
import type { ProducerInfo, Topic } from './broker/topic.ts';
import { AdmqError, BadRequestError, grpcStatusOf, toAdmqError } from './errors.ts';
import { decodeProduceSend, encodeMessageBatch, encodeSendReceipt } from './grpc-codec.ts';
import { parseTopicName, validateProducerName, type TopicName } from './names.ts';
import { SpanKind, endSpans, startMessageSpan, type Span, type Tracer } from '../observability/tracing.ts';
import type { AppendMessage } from './storage/log-store.ts';

const MALFORMED = Symbol('malformed');
interface Malformed {
  [MALFORMED]: Error;
}

function isMalformed(value: unknown): value is Malformed {
  return typeof value === 'object' && value !== null && MALFORMED in value;
}

function statusFor(error: AdmqError): grpc.StatusObject {
  const metadata = new grpc.Metadata();
  metadata.set(ERROR_CODE_METADATA_KEY, error.code);
  return { code: grpcStatusOf(error.code), details: `${error.code}: ${error.message}`, metadata };
}

/** Writes a response already encoded by grpc-codec.ts; the wrapped serializer passes Buffers through. */
function writeEncoded(call: { write(chunk: never): boolean }, bytes: Buffer): void {
  call.write(bytes as never);
}

function failCall(call: grpc.ServerDuplexStream<unknown, unknown>, error: unknown): void {
  const typed = toAdmqError(error);
  call.emit('error', statusFor(typed));
}

/**
 * A stream's first request may have to wait while its topic is prepared (a cluster broker
 * restoring it from its ledgers); the requests that arrive meanwhile wait behind it, and all
 * are then handled in arrival order.
 */
class OpenAfterPrepare<R> {
  #queued: R[] | undefined;

  constructor(private readonly handle: (request: R) => void) {}

  /** Queues `request` while a prepare runs; false when nothing is waiting. */
  hold(request: R): boolean {
    if (!this.#queued) return false;
    this.#queued.push(request);
    return true;
  }

  /** Handles `request`, then what queued meanwhile, once `prepared` resolves (unless the stream ended). */
  after(prepared: Promise<void>, request: R, ended: () => boolean, fail: (error: unknown) => void): void {
    const queued: R[] = (this.#queued = []);
    prepared.then(() => {
      this.#queued = undefined;
      if (ended()) return;
      this.handle(request);
      for (const next of queued) this.handle(next);
    }, fail);
  }
}

function u64(value: string | number | undefined, field: string): number {
  const n = typeof value === 'number' ? value : Number(value ?? 0);
  if (!Number.isSafeInteger(n) || n < 0) throw new BadRequestError(`${field} must be a non-negative integer below 2^53; got ${value}`);
  return n;
}

/**
 * A delivery as the Message object proto-loader would encode. Deliveries are encoded by
 * grpc-codec.ts straight from the entry; this form is the reference its tests compare with.
 */
export function toWireMessage(d: Delivery): WireMessage {
  const e = d.entry;
  return {
    offset: e.offset,
    originRegion: e.originRegion,
    originPosition: e.originPosition,
    hlc: e.hlc.toString(),
    producerName: e.producerName,
    sequenceId: e.sequenceId,
    publishTimeMs: e.publishTimeMs,
    key: e.key ?? '',
    hasKey: e.key !== undefined,
    properties: e.properties,
    payload: e.payload,
    redeliveryCount: d.redeliveryCount,
    eventTimeMs: e.eventTimeMs,
  };
}

export interface GrpcServiceOptions {
  /** Spans for traced messages (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT). */
  tracer?: Tracer;
  broker: Broker;
  nowMs: () => number;
  log: (line: string) => void;
}

let producerCounter = 0;

export function buildBrokerService(options: GrpcServiceOptions): { definition: grpc.ServiceDefinition; implementation: grpc.UntypedServiceImplementation; closeAll(): void } {
  const pkg = grpc.loadPackageDefinition(loadPackageDefinition()) as unknown as {
    admq: { v1: { Broker: { service: grpc.ServiceDefinition } } };
  };
  const base = pkg.admq.v1.Broker.service;
  // Wrap request deserializers so that malformed bytes become a value the handler answers.
  // A produce stream's `send` requests, receipts and deliveries take the hand-written
  // codec (grpc-codec.ts): handlers write receipts and deliveries already encoded, as
  // Buffers, which the serializer passes through.
  const wrapped: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(base)) {
    const decodeFast = name === 'Produce' ? decodeProduceSend : undefined;
    wrapped[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return decodeFast?.(bytes) ?? method.requestDeserialize(bytes);
        } catch (error) {
          return { [MALFORMED]: error as Error };
        }
      },
      responseSerialize: (value: unknown) => (Buffer.isBuffer(value) ? value : method.responseSerialize(value)),
    };
  }
  const definition = wrapped as grpc.ServiceDefinition;
  const { broker } = options;
  const open = new Set<grpc.ServerDuplexStream<unknown, unknown>>();

  const getTopicMetadata: grpc.handleUnaryCall<TopicMetadataRequest | Malformed, unknown> = (call, callback) => {
    try {
      if (isMalformed(call.request)) throw new BadRequestError(`malformed TopicMetadataRequest: ${call.request[MALFORMED].message}`);
      const name = parseTopicName(call.request.topic);
      const record = broker.topicRecord(name.full);
      callback(null, { topic: name.full, partitions: record.partitions });
    } catch (error) {
      const status = statusFor(toAdmqError(error));
      callback({ code: status.code, details: status.details, metadata: status.metadata });
    }
  };

  const produce = (call: grpc.ServerDuplexStream<ProduceRequest | Malformed, ProduceResponse>): void => {
    open.add(call as grpc.ServerDuplexStream<unknown, unknown>);
    let topic: Topic | undefined;
    let topicName: TopicName | undefined;
    let producer: ProducerInfo | undefined;
    let ended = false;
    const finish = (): void => {
      if (ended) return;
      ended = true;
      open.delete(call as grpc.ServerDuplexStream<unknown, unknown>);
      if (topic && producer) topic.producers.delete(producer);
    };
    call.on('error', finish);
    call.on('close', finish);
    call.on('cancelled', finish);
    call.on('end', () => {
      finish();
      call.end();
    });
    const opening = new OpenAfterPrepare<ProduceRequest | Malformed>((request) => onData(request));
    const onData = (request: ProduceRequest | Malformed): void => {
      if (opening.hold(request)) return;
      try {
        if (isMalformed(request)) throw new BadRequestError(`malformed ProduceRequest: ${request[MALFORMED].message}`);
        if (!producer || !topic) {
          if (request.request !== 'open' || !request.open) throw new BadRequestError('the first request of a produce stream must be "open"');
          const name = parseTopicName(request.open.topic);
          if (broker.needsPreparing(name)) {
            opening.after(broker.prepareTopic(name), request, () => ended, (error) => {
              finish();
              failCall(call as grpc.ServerDuplexStream<unknown, unknown>, error);
            });
            return;
          }
          const t = broker.topic(name);
          broker.assertWritable(name);
          topicName = name;
          const producerName = request.open.producerName
            ? validateProducerName(request.open.producerName)
            : `${broker.region}-${process.pid}-${++producerCounter}-${options.nowMs().toString(36)}`;
          for (const p of t.producers) {
            if (p.name === producerName) {
              throw new AdmqError(ErrorCode.InUse, `producer "${producerName}" is already connected to ${name.full}`);
            }
          }
          producer = { name: producerName, connectedAtMs: options.nowMs(), address: call.getPeer(), messagesIn: 0, bytesIn: 0 };
          topic = t;
          t.producers.add(producer);
          // The topic moving away (or deleted) ends the stream: the client looks it up again and resends.
          const stopWatching = t.onClose((reason) => {
            // A deleted topic keeps the stream: its requests fail typed, one by one.
            if (ended || !reason) return;
            finish();
            failCall(call as grpc.ServerDuplexStream<unknown, unknown>, reason);
          });
          call.once('close', stopWatching);
          call.write({
            opened: { topic: name.full, producerName, lastSequenceId: t.lastSequenceId(producerName), region: broker.region },
          });
          return;
        }
        if (request.request !== 'send' || !request.send) throw new BadRequestError('expected a "send" request on an open producer stream');
        // A fence or a placement change ends the stream (the client resends elsewhere or later).
        if (topicName) broker.assertWritable(topicName);
        handleSend(call, topic, producer, request.send.requestId, request.send.messages);
      } catch (error) {
        finish();
        failCall(call as grpc.ServerDuplexStream<unknown, unknown>, error);
      }
    };
    call.on('data', onData);
  };

  const handleSend = (
    call: grpc.ServerDuplexStream<ProduceRequest | Malformed, ProduceResponse>,
    topic: Topic,
    producer: ProducerInfo,
    requestIdRaw: string | number,
    wire: OutboundMessage[],
  ): void => {
    const requestId = requestIdRaw;
    let messages: AppendMessage[];
    try {
      messages = wire.map((m, i) => ({
        producerName: producer.name,
        sequenceId: u64(m.sequenceId, `messages[${i}].sequenceId`),
        key: m.hasKey ? m.key : undefined,
        properties: m.properties ?? {},
        payload: m.payload,
        eventTimeMs: u64(m.eventTimeMs, `messages[${i}].eventTimeMs`),
      }));
      if (messages.length === 0) throw new BadRequestError('a send batch must hold at least one message');
    } catch (error) {
      const typed = toAdmqError(error);
      call.write({ error: { code: typed.code, message: typed.message, requestId } });
      return;
    }
    // Traced messages (a traceparent property) get a publish span: from the batch to durable.
    let spans: Span[] | undefined;
    if (options.tracer) {
      for (const m of messages) {
        const span = startMessageSpan(options.tracer, `publish ${topic.name}`, m.properties, SpanKind.SERVER, { 'messaging.destination.name': topic.name, 'admq.region': broker.region, 'messaging.client.id': producer.name });
        if (span) (spans ??= []).push(span);
      }
    }
    topic.publish(producer, messages).then(
      (results) => {
        writeEncoded(call, encodeSendReceipt(requestId, results));
        if (spans) endSpans(spans);
      },
      (error: unknown) => {
        const typed = toAdmqError(error);
        if (spans) endSpans(spans, typed.message);
        // The topic left this broker: end the stream, so the client reconnects to the new
        // owner and resends (deduplicated there) rather than failing the send.
        if (typed.code === ErrorCode.TopicMoved) failCall(call as grpc.ServerDuplexStream<unknown, unknown>, typed);
        else call.write({ error: { code: typed.code, message: typed.message, requestId } });
      },
    );
  };

  const consume = (call: grpc.ServerDuplexStream<ConsumeRequest | Malformed, ConsumeResponse>): void => {
    open.add(call as grpc.ServerDuplexStream<unknown, unknown>);
    let subscription: Subscription | undefined;
    let sink: ConsumerSink | undefined;
    let ended = false;
    const finish = (): void => {
      if (ended) return;
      ended = true;
      open.delete(call as grpc.ServerDuplexStream<unknown, unknown>);
      if (subscription && sink) subscription.removeConsumer(sink);
    };
    call.on('error', finish);
    call.on('close', finish);
    call.on('cancelled', finish);
    call.on('end', () => {
      finish();
      call.end();
    });
    const opening = new OpenAfterPrepare<ConsumeRequest | Malformed>((request) => onData(request));
    const onData = (request: ConsumeRequest | Malformed): void => {
      if (opening.hold(request)) return;
      try {
        if (isMalformed(request)) throw new BadRequestError(`malformed ConsumeRequest: ${request[MALFORMED].message}`);
        if (!subscription || !sink) {
          if (request.request !== 'subscribe' || !request.subscribe) {
            throw new BadRequestError('the first request of a consume stream must be "subscribe"');
          }
          const s = request.subscribe;
          const name = parseTopicName(s.topic);
          if (broker.needsPreparing(name)) {
            opening.after(broker.prepareTopic(name), request, () => ended, (error) => {
              finish();
              failCall(call as grpc.ServerDuplexStream<unknown, unknown>, error);
            });
            return;
          }
          const topic = broker.topic(name);
          const type = subscriptionTypeFromWire(s.type);
          const consumerName = s.consumerName || `consumer-${++producerCounter}`;
          const newSink: ConsumerSink = {
            name: consumerName,
            priorityLevel: s.priorityLevel ?? 0,
            ackTimeoutMs: s.ackTimeoutMs ?? 0,
            negativeAckRedeliveryDelayMs: s.negativeAckRedeliveryDelayMs ?? 0,
            deliver: (deliveries) => {
              if (!ended) writeEncoded(call, encodeMessageBatch(deliveries));
            },
            activeChanged: (isActive) => {
              if (!ended) call.write({ activeChange: { isActive } });
            },
            seekReset: (requestId, offset) => {
              if (!ended) call.write({ seekDone: { requestId, offset } });
            },
            readFailed: (error) => {
              if (!ended) call.write({ error: { code: error.code, message: error.message, requestId: 0 } });
            },
          };
          // Attach first: a refusal (an exclusive subscription in use) must reach the
          // client as the stream's error, not after it was told it is subscribed.
          subscription = topic.attach(s.subscription, type, s.initialPosition === 'EARLIEST' ? 'earliest' : 'latest', newSink, s.deliveryOrder === 'HLC' ? 'hlc' : 'arrival', s.readCompacted === true);
          sink = newSink;
          const stopWatching = topic.onClose((reason) => {
            // A deleted topic keeps the stream: its requests fail typed, one by one.
            if (ended || !reason) return;
            finish();
            failCall(call as grpc.ServerDuplexStream<unknown, unknown>, reason);
          });
          call.once('close', stopWatching);
          call.write({ subscribed: { topic: name.full, subscription: s.subscription, consumerName, region: broker.region } });
          return;
        }
        switch (request.request) {
          case 'flow':
            subscription.flow(sink, request.flow?.permits ?? 0);
            return;
          case 'ack': {
            const offsets = (request.ack?.offsets ?? []).map((o, i) => u64(o, `offsets[${i}]`));
            if (offsets.length > 0) subscription.ack(offsets, request.ack?.type === 'CUMULATIVE');
            return;
          }
          case 'nack':
            subscription.nack(sink, (request.nack?.offsets ?? []).map((o, i) => u64(o, `offsets[${i}]`)));
            return;
          case 'redeliverUnacked':
            subscription.redeliverUnacked(sink);
            return;
          case 'seek': {
            const seek = request.seek;
            const requestId = u64(seek?.requestId, 'requestId');
            let target: number;
            if (seek?.target === 'offset') target = u64(seek.offset, 'offset');
            else if (seek?.target === 'publishTimeMs') {
              target = broker.store.findOffsetByPublishTime(subscription.log, u64(seek.publishTimeMs, 'publishTimeMs'));
            } else throw new BadRequestError('seek needs an offset or a publishTimeMs');
            subscription.seek(target, requestId);
            return;
          }
          default:
            throw new BadRequestError(`unexpected request "${request.request ?? 'none'}" on a consume stream`);
        }
      } catch (error) {
        const typed = toAdmqError(error);
        if (!subscription) {
          finish();
          failCall(call as grpc.ServerDuplexStream<unknown, unknown>, typed);
        } else {
          // The consumer stays attached: one bad request does not cost it its place.
          call.write({ error: { code: typed.code, message: typed.message, requestId: 0 } });
        }
      }
    };
    call.on('data', onData);
  };

  return {
    definition,
    implementation: {
      GetTopicMetadata: getTopicMetadata as grpc.UntypedHandleCall,
      Produce: produce as grpc.UntypedHandleCall,
      Consume: consume as grpc.UntypedHandleCall,
    },
    closeAll: () => {
      for (const call of open) failCall(call, new AdmqError(ErrorCode.ShuttingDown, 'the node is shutting down'));
    },
  };
}
