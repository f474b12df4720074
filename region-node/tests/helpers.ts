// Helpers of the independent region-node integration suite: a real node in-process on
// port 0 over a fresh LMDB directory, raw gRPC access, bounded waits and a seeded PRNG.
import * as grpc from '@grpc/grpc-js';
import { AdminClient, AdmqClient, AdmqClientError, ErrorCode, type AdmqConsumer, type Message } from '../../client/index.ts';
import { loadPackageDefinition, type ConsumeResponse, type ProduceResponse } from '../../proto/index.ts';
import { start, type RegionNodeConfig, type RegionNodeHandle } from '../index.ts';
import { removeTempDir, tempDir } from '../../test-support/temp-dir.ts';

export interface TestNode {
  node: RegionNodeHandle;
  admin: AdminClient;
  client: AdmqClient;
  dataDir: string;
  config: Partial<RegionNodeConfig>;
  /** Creates a fresh topic in public/default and returns its full name. */
  topic(prefix?: string, partitions?: number): Promise<string>;
  /** A new client on this node, closed with the node. */
  newClient(options?: { messageBytesMax?: number }): AdmqClient;
  /** Closes clients and the node, then starts a node on the same data directory. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

let topicCounter = 0;

export async function startNode(config: Partial<RegionNodeConfig> = {}): Promise<TestNode> {
  const dataDir = tempDir('admq-it-');
  const boot = (): Promise<RegionNodeHandle> =>
    start({ dataDir, grpcPort: 0, adminPort: 0, region: 'standalone', shutdownGraceMs: 2000, ...config }, { log: () => {} });
  let clients: AdmqClient[] = [];
  const makeClient = (node: RegionNodeHandle, options: { messageBytesMax?: number } = {}): AdmqClient => {
    const c = new AdmqClient({ serviceUrl: node.grpcAddress, backoffInitialMs: 50, backoffMaxMs: 500, operationTimeoutMs: 10_000, ...options });
    clients.push(c);
    return c;
  };
  const node = await boot();
  const handle: TestNode = {
    node,
    admin: new AdminClient(node.adminUrl),
    client: makeClient(node),
    dataDir,
    config,
    async topic(prefix = 'topic', partitions = 0) {
      const name = `persistent://public/default/${prefix}-${process.pid}-${++topicCounter}`;
      await handle.admin.createTopic(name, partitions);
      return name;
    },
    newClient(options) {
      return makeClient(handle.node, options);
    },
    async restart() {
      await Promise.allSettled(clients.map((c) => c.close()));
      clients = [];
      await handle.node.close();
      handle.node = await boot();
      handle.admin = new AdminClient(handle.node.adminUrl);
      handle.client = makeClient(handle.node);
    },
    async close() {
      await Promise.allSettled(clients.map((c) => c.close()));
      clients = [];
      await handle.node.close();
      removeTempDir(dataDir);
    },
  };
  return handle;
}

/** Receives exactly `count` messages; each receive is bounded by `timeoutMs`. */
export async function receiveN(consumer: AdmqConsumer, count: number, timeoutMs = 5000): Promise<Message[]> {
  const out: Message[] = [];
  for (let i = 0; i < count; i++) out.push(await consumer.receive(timeoutMs));
  return out;
}

/** True if no message arrives within `ms` (used only to check that something does NOT happen). */
export async function silentFor(consumer: AdmqConsumer, ms: number): Promise<boolean> {
  try {
    await consumer.receive(ms);
    return false;
  } catch (error) {
    if ((error as AdmqClientError).code === ErrorCode.Timeout) return true;
    throw error;
  }
}

/** Polls `probe` until it returns a truthy value or the deadline passes (bounded in time and count). */
export async function waitFor<T>(what: string, probe: () => Promise<T> | T, timeoutMs = 10_000, intervalMs = 25): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (let i = 0; i < Math.ceil(timeoutMs / intervalMs) + 1 && Date.now() <= deadline; i++) {
    last = await probe();
    if (last) return last as NonNullable<T>;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
}

export { prng, seedFromEnv } from '../../test-support/random.ts';

// ------------------------------------------------------------------ raw gRPC

type RawStub = grpc.Client & {
  Produce(): grpc.ClientDuplexStream<unknown, ProduceResponse>;
  Consume(): grpc.ClientDuplexStream<unknown, ConsumeResponse>;
};

export function rawStub(address: string): RawStub {
  const pkg = grpc.loadPackageDefinition(loadPackageDefinition()) as unknown as {
    admq: { v1: { Broker: new (a: string, c: grpc.ChannelCredentials) => RawStub } };
  };
  return new pkg.admq.v1.Broker(address, grpc.credentials.createInsecure());
}

/** A typed stream whose responses queue up so that tests await them one by one. */
export class RawStream<Res> {
  readonly responses: Res[] = [];
  #waiters: Array<(r: Res) => void> = [];
  status: Promise<grpc.StatusObject>;
  constructor(readonly call: grpc.ClientDuplexStream<unknown, Res>) {
    call.on('data', (r: Res) => {
      const w = this.#waiters.shift();
      if (w) w(r);
      else this.responses.push(r);
    });
    call.on('error', () => {});
    this.status = new Promise((resolve) => call.on('status', resolve));
  }
  write(request: unknown): void {
    this.call.write(request);
  }
  /** The next response, or an error after timeoutMs. */
  next(timeoutMs = 5000): Promise<Res> {
    const queued = this.responses.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(new Error(`no response within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = (r: Res): void => {
        clearTimeout(timer);
        resolve(r);
      };
      this.#waiters.push(waiter);
    });
  }
  end(): void {
    this.call.end();
  }
}

export function outbound(sequenceId: number, payload: string, key?: string): Record<string, unknown> {
  return { sequenceId, payload: Buffer.from(payload), key: key ?? '', hasKey: key !== undefined, properties: {}, eventTimeMs: 0 };
}

/** A stream on which every frame is written byte for byte. */
export function rawBytesStream(address: string, method: 'Produce' | 'Consume'): { client: grpc.Client; call: grpc.ClientDuplexStream<Buffer, Buffer> } {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const identity = (b: Buffer): Buffer => b;
  const call = client.makeBidiStreamRequest(`/admq.v1.Broker/${method}`, identity, identity) as grpc.ClientDuplexStream<Buffer, Buffer>;
  return { client, call };
}

export interface SubStats {
  type: string;
  backlog: number;
  ackedBelow: number;
  readPosition: number;
  unacked: number;
  pendingRedelivery: number;
  msgOutCounter: number;
  consumers: Array<{ name: string; permits: number; unacked: number; delivered: number; active: boolean }>;
}
export interface TopicStatsView {
  topic: string;
  firstOffset: number;
  nextOffset: number;
  entries: number;
  msgInCounter: number;
  bytesInCounter: number;
  msgRateIn: number;
  msgThroughputIn: number;
  msgRateOut: number;
  msgThroughputOut: number;
  producers: Array<{ name: string; messagesIn: number; bytesIn: number }>;
  subscriptions: Record<string, SubStats>;
}

export async function stats(admin: AdminClient, topic: string): Promise<TopicStatsView> {
  return (await admin.topicStats(topic)) as unknown as TopicStatsView;
}
