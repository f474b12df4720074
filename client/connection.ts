// The gRPC stub shared by a client's producers and consumers.
import * as grpc from '@grpc/grpc-js';
import { ErrorCode, loadPackageDefinition, type TopicMetadata } from '../proto/index.ts';
import { AdmqClientError } from './errors.ts';
import { decodeConsumeMessages, decodeProduceReceipt } from './grpc-codec.ts';

export interface BrokerStub extends grpc.Client {
  GetTopicMetadata(
    request: { topic: string },
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    callback: (error: grpc.ServiceError | null, response?: TopicMetadata) => void,
  ): grpc.ClientUnaryCall;
  Produce(options?: grpc.CallOptions): grpc.ClientDuplexStream<unknown, unknown>;
  Consume(options?: grpc.CallOptions): grpc.ClientDuplexStream<unknown, unknown>;
}

type StubConstructor = new (address: string, credentials: grpc.ChannelCredentials, options: grpc.ChannelOptions) => BrokerStub;
let stubConstructor: StubConstructor | undefined;

/**
 * The Broker client class, with the hand-written codec (grpc-codec.ts) on the hot paths:
 * receipts and message batches are decoded by it, and a producer writes its send batches
 * already encoded, as Buffers, which the serializer passes through. Everything else goes
 * through proto-loader.
 */
function brokerStubConstructor(): StubConstructor {
  if (stubConstructor) return stubConstructor;
  const service = loadPackageDefinition()['admq.v1.Broker'] as grpc.ServiceDefinition;
  const methods: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(service)) {
    const decodeFast = name === 'Produce' ? decodeProduceReceipt : name === 'Consume' ? decodeConsumeMessages : undefined;
    methods[name] = {
      ...method,
      requestSerialize: (value: unknown) => (Buffer.isBuffer(value) ? value : method.requestSerialize(value)),
      responseDeserialize: decodeFast ? (bytes: Buffer) => decodeFast(bytes) ?? method.responseDeserialize(bytes) : method.responseDeserialize,
    };
  }
  stubConstructor = grpc.makeClientConstructor(methods, 'Broker') as unknown as StubConstructor;
  return stubConstructor;
}

export function createStub(serviceUrl: string, credentials: grpc.ChannelCredentials, messageBytesMax: number, extra: grpc.ChannelOptions = {}): BrokerStub {
  const Broker = brokerStubConstructor();
  return new Broker(serviceUrl, credentials, {
    'grpc.max_receive_message_length': messageBytesMax * 2 + 1024 * 1024,
    'grpc.max_send_message_length': messageBytesMax * 2 + 1024 * 1024,
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 5000,
    'grpc.keepalive_time_ms': 30_000,
    // A 64 KiB HTTP/2 window caps a connection near 64 MB/s on a busy event loop.
    'grpc-node.flow_control_window': 16 * 1024 * 1024,
    ...extra,
  });
}

export function topicMetadata(stub: BrokerStub, topic: string, timeoutMs: number): Promise<TopicMetadata> {
  return new Promise((resolve, reject) => {
    stub.GetTopicMetadata({ topic }, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (error, response) => {
      if (error) reject(AdmqClientError.fromServiceError(error));
      else resolve(response as TopicMetadata);
    });
  });
}

/** How a connect settles the open() waiting for it. */
export interface OpenSettlers {
  resolve(): void;
  reject(error: AdmqClientError): void;
}

/** Settlers of a connect that also settle the open() still waiting from an earlier connect. */
export function chainSettlers(previous: OpenSettlers | undefined, resolve: () => void, reject: (error: AdmqClientError) => void): OpenSettlers {
  return {
    resolve: () => {
      previous?.resolve();
      resolve();
    },
    reject: (error) => {
      previous?.reject(error);
      reject(error);
    },
  };
}

/**
 * A new Produce or Consume stream, or undefined when the channel is already closed (it
 * throws at once): then `opened` is rejected, which settles every open() waiting on it.
 */
export function startStream(stub: () => BrokerStub, method: 'Produce' | 'Consume', opened: OpenSettlers): grpc.ClientDuplexStream<unknown, unknown> | undefined {
  try {
    return stub()[method]();
  } catch (error) {
    opened.reject(new AdmqClientError(ErrorCode.Closed, `cannot open a stream: ${(error as Error).message}`, { cause: error }));
    return undefined;
  }
}

/** Bounded-time wait used between reconnect attempts; cancelled when the owner closes. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}
